import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { STEP_EXIT_PERMANENT, WAREHOUSE_PASSWORD_ENV, type SparkJob } from '../../contract/steps.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import type { Logger } from '../observability/logger.ts';
import { stageIn, stageOut } from './lake-staging.ts';
import { PidFiles } from './pid-files.ts';
import { commandLine, killGroup, reapGroup } from './process-group.ts';
import { failureMessage, Tail } from './spark-log.ts';
import type {
  LiveStep,
  LiveWork,
  RunStepOptions,
  StepHandle,
  StepRequest,
  StepRunner,
  StepStatus,
} from './step-runner.ts';

/** How to start one step as a local process. */
export interface StepCommand {
  file: string;
  args: string[];
  /** Added to the service's environment minus every `AFLUENTE_*` variable. */
  env: Record<string, string>;
  /** A folder the step writes scratch to (DuckDB's spill): made before the step starts, removed after it ends. */
  scratch?: string;
}

/**
 * What tells one engine's local steps apart: how one is started, and how its process is recognised in `/proc`
 * when this runner did not start it (a step left by a worker that died).
 */
export interface StepProgram {
  /** The runner's kind, and the prefix of its step ids (`local:<pid>`, `embedded:<pid>`). */
  readonly kind: 'local' | 'embedded';
  /** What a failure's message calls the process when the step said nothing better: `spark-submit`. */
  readonly tool: string;
  /** The `reason` of a failed step. */
  readonly failedReason: string;
  /** Throws a clear error when what the step needs is missing (the venv, the job's code). */
  prepare(job: SparkJob): Promise<void>;
  /** The step's command; `spec` and `lakeRoot` are file:// URIs, `base` is where its log and pid file go. */
  command(
    request: StepRequest,
    lake: { spec: string; lakeRoot?: string },
    base: string,
  ): Promise<StepCommand>;
  /** Whether a command line is a step of this engine, whichever step. */
  isStepProcess(args: string[]): boolean;
  /** Whether a command line is the step named `name`. */
  isStep(args: string[], name: string): boolean;
}

export interface ProcessStepRunnerOptions {
  lake: Lake;
  logger: Logger;
  /** Where the steps' pid files, logs and staging folders go. */
  dir: string;
  /** AFLUENTE_WAREHOUSE_PASSWORD: it reaches the step through its environment only, never its arguments. */
  warehousePassword?: string;
  /**
   * How long a cancelled step has to stop after SIGTERM before the rest of its process group gets SIGKILL.
   * @default 10000
   */
  killGraceMs?: number;
}

interface Started {
  handle: StepHandle;
  /** Kills the step's process group; `done` then resolves CANCELLED. */
  stop: () => void;
  /** Resolves when the step's processes are gone; never rejects. */
  done: Promise<StepStatus>;
}

// Enough to answer for the steps a reconciler may still poll; older ones read as gone.
const FINISHED_KEPT = 1000;

/**
 * Runs steps as child processes of this service, each the leader of its own process group: its id is
 * `<kind>:<pid>`, its whole output goes to `<dir>/<name>.log`, and a cancel stops every process in the group.
 * The {@link StepProgram} says which command a step is; the lifecycle here is the same for every engine.
 *
 * A `file://` lake is read and written in place. An `s3://` lake is staged: the step's inputs are copied into a
 * temp folder, the step runs against that folder (`--lake-root`), and on success its outputs are copied back.
 *
 * A step started by a worker that died is not reattached (its exit code is lost with its parent); the next run
 * of the same step kills it first (it is found through `<name>.pid`), and `cancel` kills it too.
 */
export class ProcessStepRunner implements StepRunner {
  readonly kind: StepProgram['kind'];
  readonly #program: StepProgram;
  readonly #lake: Lake;
  readonly #logger: Logger;
  readonly #password: string | undefined;
  readonly #killGraceMs: number;
  readonly #pids: PidFiles;
  readonly #stepId: RegExp;
  readonly #running = new Map<number, Started>();
  readonly #finished = new Map<string, StepStatus>();

  constructor(options: ProcessStepRunnerOptions, program: StepProgram) {
    this.kind = program.kind;
    this.#program = program;
    this.#lake = options.lake;
    this.#logger = options.logger;
    this.#password = options.warehousePassword;
    this.#killGraceMs = options.killGraceMs ?? 10_000;
    this.#pids = new PidFiles(options.dir);
    this.#stepId = new RegExp(`^${program.kind}:(\\d+)$`);
  }

  /** Whether a step id is one of this runner's (`<kind>:<pid>`). */
  owns(stepId: string): boolean {
    return this.#stepId.test(stepId);
  }

  async run(request: StepRequest, { signal, onSubmitted }: RunStepOptions): Promise<StepStatus> {
    signal.throwIfAborted();
    await this.#program.prepare(request.job);
    await mkdir(this.#pids.dir, { recursive: true });
    const base = this.#pids.base(request.name);
    await this.#stopLeftover(request.name);
    const staging = this.#lake.root.startsWith('file://') ? undefined : await mkdtemp(`${base}.stage-`);
    try {
      let lake: { spec: string; lakeRoot?: string } = { spec: this.#lake.uri(request.specKey) };
      if (staging) {
        await stageIn(this.#lake, [request.specKey, ...request.inputs], staging, signal);
        const spec = pathToFileURL(join(staging, ...request.specKey.split('/'))).href;
        lake = { spec, lakeRoot: pathToFileURL(staging).href };
      }
      signal.throwIfAborted();
      const command = await this.#program.command(request, lake, base);
      const started = await this.#start(request, command, base);
      const status = await this.#await(started, signal, onSubmitted);
      if (status.state === 'COMPLETED' && staging) {
        const keys = await stageOut(this.#lake, request.outputs, staging, signal);
        this.#logger.debug({ step: request.name, files: keys.length }, 'copied a step’s outputs to the lake');
      }
      return status;
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      throw error;
    } finally {
      if (staging) await rm(staging, { recursive: true, force: true });
    }
  }

  async status(handle: StepHandle): Promise<StepStatus> {
    const pid = this.#pidOf(handle);
    const running = this.#running.get(pid);
    if (running) return { state: 'RUNNING', ...logsOf(running.handle) };
    const done = this.#finished.get(handle.stepId);
    if (done) return done;
    if (this.#program.isStepProcess(await commandLine(pid))) {
      return {
        state: 'RUNNING',
        message: 'the step runs in another process on this machine, not a child of this one',
        ...logsOf(handle),
      };
    }
    return this.#lost(handle);
  }

  async cancel(handle: StepHandle): Promise<StepStatus> {
    const pid = this.#pidOf(handle);
    const running = this.#running.get(pid);
    if (running) {
      running.stop();
      return running.done;
    }
    const done = this.#finished.get(handle.stepId);
    if (done) return done;
    if (this.#program.isStepProcess(await commandLine(pid))) {
      this.#logger.warn({ step: handle.stepId }, 'killing a local step that another worker left behind');
      await killGroup(pid, this.#killGraceMs);
      // Its worker is gone and will not remove its pid file.
      for (const file of await this.#pids.list()) if (file.pid === pid) await this.#pids.removeIfStill(file);
      return { state: 'CANCELLED', ...logsOf(handle) };
    }
    return this.#lost(handle);
  }

  /**
   * The steps of this deployment alive on this machine, from their pid files, whichever worker started them.
   * Each one's process must still be that very step (its name is in its command line): a pid reused by another
   * step is not it. A pid file whose process is no step of this engine at all (its worker died) is removed.
   */
  async listLive(): Promise<LiveWork> {
    const steps: LiveStep[] = [];
    for (const file of await this.#pids.list()) {
      const { ref, pid } = file;
      const args = this.#running.has(pid) ? [] : await commandLine(pid);
      if (this.#running.has(pid) || this.#runsStep(args, ref.name)) {
        const logs = `${this.#pids.base(ref.name)}.log`;
        steps.push({ ...ref, handle: { stepId: `${this.kind}:${pid}`, logs }, createdAt: file.mtime });
      } else if (!this.#program.isStepProcess(args)) {
        await this.#pids.removeIfStill(file);
      }
    }
    return { steps, clusters: [] };
  }

  async terminateCluster(clusterId: string): Promise<void> {
    throw new Error(`${this.kind} steps run on no cluster (asked to terminate ${clusterId})`);
  }

  async close(): Promise<void> {
    const running = [...this.#running.values()];
    for (const step of running) step.stop();
    await Promise.all(running.map((step) => step.done));
  }

  #runsStep(args: string[], name: string): boolean {
    return this.#program.isStepProcess(args) && this.#program.isStep(args, name);
  }

  /** Stops the previous process of the same step, if one is still alive: two must never write at once. */
  async #stopLeftover(name: string): Promise<void> {
    const pid = await this.#pids.read(name);
    if (!pid) return;
    const ours = this.#running.get(pid);
    if (ours) {
      ours.stop();
      await ours.done;
    } else if (this.#program.isStepProcess(await commandLine(pid))) {
      this.#logger.warn({ step: name, pid }, 'killing a local step that a previous attempt left behind');
      await killGroup(pid, this.#killGraceMs);
    }
  }

  async #start(request: StepRequest, command: StepCommand, base: string): Promise<Started> {
    // The service's own settings (and secrets) stay out of the step; only the warehouse password goes in.
    const env: NodeJS.ProcessEnv = Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !name.startsWith('AFLUENTE_')),
    );
    Object.assign(env, command.env, this.#password ? { [WAREHOUSE_PASSWORD_ENV]: this.#password } : {});
    if (command.scratch) await mkdir(command.scratch, { recursive: true });
    // detached: the step leads its own process group, so a cancel reaches every process it started.
    const child = spawn(command.file, command.args, {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
      cwd: this.#pids.dir,
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, sig) => resolve({ code, signal: sig })),
    );
    const closed = once(child, 'close').catch(() => undefined);
    await once(child, 'spawn');
    child.on('error', (error) =>
      this.#logger.error({ err: error, step: request.name }, 'step process error'),
    );
    const pid = child.pid as number;
    const logs = `${base}.log`;
    const handle: StepHandle = { stepId: `${this.kind}:${pid}`, logs };
    const log = createWriteStream(logs, { flags: 'a' });
    log.on('error', (error) => this.#logger.warn({ err: error, logs }, 'could not write a step’s log'));
    log.write(`==== ${new Date().toISOString()} ${handle.stepId} ${request.name}\n`);
    // Both streams, each with its own tail: spark-submit's JVM logs to stderr, but it relays the Python driver's
    // stderr on its stdout, and a chunk of one stream may end mid-line (see failureMessage).
    const tails = { stdout: new Tail(), stderr: new Tail() };
    const record =
      (tail: Tail) =>
      (chunk: Buffer): void => {
        log.write(chunk);
        tail.push(chunk);
      };
    child.stdout.on('data', record(tails.stdout));
    child.stderr.on('data', record(tails.stderr));
    await this.#pids.write(request.name, pid);

    let killing: Promise<void> | undefined;
    const stop = (): void => {
      killing ??= killGroup(pid, this.#killGraceMs).catch((error: unknown) => {
        this.#logger.error({ err: error, step: handle.stepId }, 'could not kill a local step');
      });
    };
    const done = (async (): Promise<StepStatus> => {
      const exit = await exited;
      // Whatever the leader left behind (a Python worker) goes with it; stdio closes once nothing holds it.
      reapGroup(pid);
      await Promise.race([closed, sleep(5000)]);
      await killing;
      log.end();
      await finished(log).catch(() => undefined);
      await this.#pids.remove(request.name);
      if (command.scratch) await rm(command.scratch, { recursive: true, force: true });
      let status: StepStatus;
      if (exit.code === 0) status = { state: 'COMPLETED', logs };
      else if (killing) status = { state: 'CANCELLED', logs };
      else {
        const output = [tails.stdout.text, tails.stderr.text];
        const message = failureMessage(output, request.job, exit, this.#program.tool);
        const retryable = exit.code !== STEP_EXIT_PERMANENT;
        status = { state: 'FAILED', reason: this.#program.failedReason, message, logs, retryable };
      }
      this.#running.delete(pid);
      this.#remember(handle.stepId, status);
      this.#logger.info(
        { step: request.name, stepId: handle.stepId, state: status.state },
        `${this.kind} step ended`,
      );
      return status;
    })();
    const started = { handle, stop, done };
    this.#running.set(pid, started);
    return started;
  }

  async #await(
    started: Started,
    signal: AbortSignal,
    onSubmitted: RunStepOptions['onSubmitted'],
  ): Promise<StepStatus> {
    const { stop, done, handle } = started;
    signal.addEventListener('abort', stop, { once: true });
    if (signal.aborted) stop();
    try {
      // A step nobody has recorded must not run on: nothing could find it to cancel it.
      await onSubmitted(handle).catch(async (error: unknown) => {
        stop();
        await done;
        throw error;
      });
      const status = await done;
      signal.throwIfAborted();
      return status;
    } finally {
      signal.removeEventListener('abort', stop);
    }
  }

  #remember(stepId: string, status: StepStatus): void {
    this.#finished.set(stepId, status);
    if (this.#finished.size > FINISHED_KEPT) {
      const oldest = this.#finished.keys().next().value;
      if (oldest !== undefined) this.#finished.delete(oldest);
    }
  }

  #pidOf(handle: StepHandle): number {
    const match = this.#stepId.exec(handle.stepId);
    if (!match) {
      const kind = `${this.kind === 'embedded' ? 'an' : 'a'} ${this.kind}`;
      throw new Error(`not ${kind} step id: "${handle.stepId}" (expected ${this.kind}:<pid>)`);
    }
    return Number(match[1]);
  }

  #lost(handle: StepHandle): StepStatus {
    return {
      state: 'FAILED',
      reason: 'step_lost',
      message: `the ${this.kind} step's process is gone; it ran in another worker that stopped`,
      ...logsOf(handle),
    };
  }
}

function logsOf(handle: StepHandle): { logs?: string } {
  return handle.logs ? { logs: handle.logs } : {};
}
