import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { TOKEN } from './env.ts';
import { freePort } from './net.ts';
import { waitFor } from './wait.ts';

/** One line of the service's JSON log (pino). */
export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

export interface RunView {
  id: number;
  status: string;
  attempt: number;
  counts: {
    fetched: number | null;
    valid: number | null;
    rejected: number | null;
    rows: Record<string, number> | null;
  };
  error: { reason: string; message: string } | null;
  jobs: {
    id: number;
    stage: string;
    status: string;
    attempt: number;
    externalId: string | null;
    metrics: Record<string, unknown> | null;
  }[];
  files: { records: number }[];
}

/**
 * The real entry point (`service/main.ts`, as `npm start` runs it) in a child process on a free port, with the
 * environment the test gives and nothing inherited but PATH and HOME. It leads its own process group, so a test
 * can signal the group as a terminal or a container runtime would (`signalGroup`).
 */
export class ServiceProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  private text = '';

  private constructor(child: ChildProcess, port: number) {
    this.child = child;
    this.port = port;
    this.exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    child.stdout?.on('data', (d: Buffer) => (this.text += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.text += d.toString()));
  }

  /** Starts the service and waits until `/health/ready` answers 200. */
  static async start(env: Record<string, string>, timeoutMs = 60_000): Promise<ServiceProcess> {
    const port = await freePort();
    const child = spawn(process.execPath, ['service/main.ts'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        AFLUENTE_PORT: String(port),
        AFLUENTE_API_TOKENS: TOKEN,
        // Tests poll their runs often.
        AFLUENTE_RATE_LIMIT_MAX: '100000',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const service = new ServiceProcess(child, port);
    let gone = false;
    void service.exited.then(() => (gone = true));
    await waitFor(
      async () => {
        if (gone) throw new Error(`the service exited while starting:\n${service.output()}`);
        const res = await fetch(`${service.url}/health/ready`).catch(() => undefined);
        return res?.status === 200 ? true : undefined;
      },
      'the service to be ready',
      timeoutMs,
    );
    return service;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  output(): string {
    return this.text;
  }

  logs(): LogLine[] {
    return this.text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogLine);
  }

  /** Sends `signal` to the service's whole process group, as a terminal's Ctrl-C or `docker stop` of a shell would. */
  signalGroup(signal: NodeJS.Signals): void {
    process.kill(-(this.child.pid as number), signal);
  }

  /** SIGKILL to the service alone (what an OOM kill or a lost host does); its detached children live on. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }

  async request(path: string, init: { method?: string; body?: unknown } = {}): Promise<Response> {
    return fetch(`${this.url}${path}`, {
      method: init.method ?? 'GET',
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    });
  }

  async createRun(body: Record<string, unknown>): Promise<number> {
    const res = await this.request('/runs', { method: 'POST', body });
    if (res.status !== 202) throw new Error(`POST /runs answered ${res.status}: ${await res.text()}`);
    return ((await res.json()) as { id: number }).id;
  }

  async getRun(id: number): Promise<RunView> {
    const res = await this.request(`/runs/${id}`);
    if (!res.ok) throw new Error(`GET /runs/${id} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as RunView;
  }

  /** Polls the run until `pick` returns a value; a request that fails (the service restarting) is polled again. */
  async waitForRun<T>(
    id: number,
    pick: (run: RunView) => T | undefined,
    what: string,
    timeoutMs: number,
  ): Promise<T> {
    return waitFor(async () => pick(await this.getRun(id)), what, timeoutMs);
  }

  async waitForEnd(id: number, timeoutMs: number): Promise<RunView> {
    return this.waitForRun(
      id,
      (run) => (['COMPLETED', 'FAILED', 'CANCELLED'].includes(run.status) ? run : undefined),
      `run ${id} to end`,
      timeoutMs,
    );
  }
}
