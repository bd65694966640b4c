import { UnavailableError } from '../errors.ts';
import type { Logger } from './logger.ts';

/** The dependencies the service cannot work without. */
export const DEPENDENCIES = ['mysql', 'redis'] as const;
export type Dependency = (typeof DEPENDENCIES)[number];

/** How an operator spells each one, in logs and in 503 answers. */
export const DEPENDENCY_NAMES: Record<Dependency, string> = { mysql: 'MySQL', redis: 'Redis' };

export interface DependencyCheck {
  ok: boolean;
  error?: string;
}

export interface DependencyState {
  up: boolean;
  /** When the current outage began (the first failed probe); null while up. */
  downSince: Date | null;
  /** Failures the current (or the last) outage explained, logged at debug instead of on their own. */
  failures: number;
}

export interface DependenciesOptions {
  /** One cheap request per dependency (`SELECT 1`, `PING`); it rejects when the dependency does not answer. */
  probes: Record<Dependency, () => Promise<unknown>>;
  logger: Logger;
  /** A probe that has not answered within this long has failed. @default 2000 */
  timeoutMs?: number;
  /** While a dependency is down, it is probed this often, to log the end of the outage. @default 1000 */
  pollMs?: number;
}

type Level = 'warn' | 'error';

/**
 * The one place that knows whether MySQL and Redis are up. A failure anywhere (a sweep, a worker's error event,
 * a request) is handed to {@link failed}: when a probe finds a dependency down, the outage is logged once at
 * error, and every failure it explains goes to debug until a probe finds the dependency back, which is logged
 * once too. Without that, every sweep, worker and client logs its own line on every retry (114 error lines in
 * 33 s of a Redis outage). Routes that must not wait for a dependency ask {@link require} first.
 */
export class Dependencies {
  private readonly probes: Record<Dependency, () => Promise<unknown>>;
  private readonly logger: Logger;
  private readonly timeoutMs: number;
  private readonly pollMs: number;
  private readonly states: Record<Dependency, DependencyState & { poll?: NodeJS.Timeout }>;
  private readonly probing = new Map<Dependency, Promise<DependencyCheck>>();
  private closed = false;

  constructor(options: DependenciesOptions) {
    this.probes = options.probes;
    this.logger = options.logger;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.pollMs = options.pollMs ?? 1000;
    // The service starts only once both answered, so both start up.
    this.states = {
      mysql: { up: true, downSince: null, failures: 0 },
      redis: { up: true, downSince: null, failures: 0 },
    };
  }

  isDown(dependency: Dependency): boolean {
    return !this.states[dependency].up;
  }

  state(dependency: Dependency): DependencyState {
    const { up, downSince, failures } = this.states[dependency];
    return { up, downSince, failures };
  }

  /**
   * Throws a 503 naming the dependency if it is known to be down, so a request that needs it answers at once
   * instead of waiting for it. `consequence` tells the client what became of its request.
   */
  require(dependency: Dependency, consequence: string): void {
    if (this.isDown(dependency)) throw this.unavailable([dependency], consequence);
  }

  /** The 503 for a request that failed because these dependencies are down. */
  unavailable(down: Dependency[], consequence = 'retry later'): UnavailableError {
    const names = down.map((d) => DEPENDENCY_NAMES[d]).join(' and ');
    return new UnavailableError(`${names} ${down.length > 1 ? 'are' : 'is'} unreachable; ${consequence}`);
  }

  /** Probes every dependency now; a change from up to down or back is logged. */
  async check(): Promise<Record<Dependency, DependencyCheck>> {
    const [mysql, redis] = await Promise.all([this.probe('mysql'), this.probe('redis')]);
    return { mysql, redis };
  }

  /** The dependencies that are down, probing those not already known to be: what may explain a failure. */
  async down(): Promise<Dependency[]> {
    const checks = await Promise.all(
      DEPENDENCIES.map(async (d) => (this.isDown(d) ? false : (await this.probe(d)).ok)),
    );
    return DEPENDENCIES.filter((_, i) => !checks[i]);
  }

  /**
   * Logs a failure: at `level` when nothing is down, or, when an outage explains it, at debug (the outage itself
   * is logged once). Fire and forget: callers are event handlers and sweeps.
   */
  failed(
    error: unknown,
    message: string,
    options: { level?: Level; logger?: Logger; bindings?: Record<string, unknown> } = {},
  ): void {
    const logger = options.logger ?? this.logger;
    const detail = { ...options.bindings, err: error };
    // During an outage every client fails many times a second: a known outage explains them without a probe.
    const known = DEPENDENCIES.filter((d) => this.isDown(d));
    (known.length > 0 ? Promise.resolve(known) : this.down()).then(
      (down) => {
        if (down.length === 0) return logger[options.level ?? 'warn'](detail, message);
        for (const d of down) this.states[d].failures += 1;
        logger.debug({ ...detail, down }, message);
      },
      () => logger[options.level ?? 'warn'](detail, message),
    );
  }

  /** Stops the polling; nothing is logged after this (the service is closing its clients). */
  close(): void {
    this.closed = true;
    for (const state of Object.values(this.states)) clearInterval(state.poll);
  }

  /** One probe per dependency at a time: concurrent callers share it. */
  private probe(dependency: Dependency): Promise<DependencyCheck> {
    let pending = this.probing.get(dependency);
    if (!pending) {
      pending = this.runProbe(dependency).finally(() => this.probing.delete(dependency));
      this.probing.set(dependency, pending);
    }
    return pending;
  }

  private async runProbe(dependency: Dependency): Promise<DependencyCheck> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      await Promise.race([this.probes[dependency](), timeout]);
      this.markUp(dependency);
      return { ok: true };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.markDown(dependency, message);
      return { ok: false, error: message };
    } finally {
      clearTimeout(timer);
    }
  }

  private markDown(dependency: Dependency, reason: string): void {
    const state = this.states[dependency];
    if (!state.up || this.closed) return;
    Object.assign(state, { up: false, downSince: new Date(), failures: 0 });
    this.logger.error(
      { dependency, reason },
      `${DEPENDENCY_NAMES[dependency]} is unreachable: ${reason}; failures it causes are logged at debug until it is back`,
    );
    state.poll = setInterval(() => void this.probe(dependency), this.pollMs);
    state.poll.unref();
  }

  private markUp(dependency: Dependency): void {
    const state = this.states[dependency];
    if (state.up || this.closed) return;
    clearInterval(state.poll);
    const downForMs = Date.now() - (state.downSince?.getTime() ?? Date.now());
    this.logger.info(
      { dependency, downForMs, failures: state.failures },
      `${DEPENDENCY_NAMES[dependency]} is reachable again after ${(downForMs / 1000).toFixed(1)} s ` +
        `(${state.failures} failures in between)`,
    );
    Object.assign(state, { up: true, downSince: null, poll: undefined });
  }
}
