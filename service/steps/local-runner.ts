import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { constants, createWriteStream } from 'node:fs';
import { access, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { SPARK_JOBS, WAREHOUSE_PASSWORD_ENV, type SparkJob } from '../../contract/steps.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import type { StepsConfig } from '../config/env.ts';
import type { Logger } from '../observability/logger.ts';
import { stageIn, stageOut } from './lake-staging.ts';
import { isSparkSubmitOf, killGroup, reapGroup } from './process-group.ts';
import { failureMessage, Tail } from './spark-log.ts';
import {
  parseStepName,
  type LiveStep,
  type LiveWork,
  type RunStepOptions,
  type StepHandle,
  type StepRequest,
  type StepRunner,
  type StepRef,
  type StepStatus,
} from './step-runner.ts';

export interface LocalStepRunnerOptions {
  lake: Lake;
  logger: Logger;
  spark: StepsConfig['spark'];
  /** AFLUENTE_WAREHOUSE_PASSWORD: it reaches the step through its environment only, never its arguments. */
  warehousePassword?: string;
  /**
   * How long a cancelled step has to stop after SIGTERM before the rest of its process group gets SIGKILL.
   * @default 10000
   */
  killGraceMs?: number;
  /**
   * Keeps this deployment's pid files and logs apart from another's in the same temp folder (the queue prefix).
   * @default '' (directly under `<tempDir>/afluente-steps/`)
   */
  namespace?: string;
}

interface SparkTools {
  sparkSubmit: string;
  sparkHome: string;
  python: string;
}

interface Started {
  handle: StepHandle;
  /** Kills the step's process group; `done` then resolves CANCELLED. */
  stop: () => void;
  /** Resolves when the step's processes are gone; never rejects. */
  done: Promise<StepStatus>;
}

const STEP_ID = /^local:(\d+)$/;
/** A pid file's name: {@link fileName} of a step name, then `.pid`. */
const PID_FILE = /^afluente_run=(\d+)_job=(\d+)_(\w+)\.pid$/;
// Enough to answer for the steps a reconciler may still poll; older ones read as gone.
const FINISHED_KEPT = 1000;

/** A step name as a file name: `afluente run=7 job=12 split_tables` → `afluente_run=7_job=12_split_tables`. */
function fileName(stepName: string): string {
  return stepName.replace(/[^A-Za-z0-9._=-]+/g, '_');
}

function lost(handle: StepHandle): StepStatus {
  return {
    state: 'FAILED',
    reason: 'step_lost',
    message: "the local step's process is gone; it ran in another worker that stopped",
    ...(handle.logs ? { logs: handle.logs } : {}),
  };
}

/**
 * Runs Spark steps with spark-submit from the project's venv, Spark in local mode. Each step is a child process
 * group of this service: its id is `local:<pid>`, its whole log goes to `<tempDir>/afluente-steps/<name>.log`,
 * and a cancel stops every process in the group (spark-submit's JVM, the Python driver and its workers).
 *
 * A `file://` lake is read and written in place. An `s3://` lake is staged: the step's inputs are copied into a
 * temp folder, the step runs against that folder (`--lake-root`), and on success its outputs are copied back.
 *
 * A step started by a worker that died is not reattached (its exit code is lost with its parent); the next run
 * of the same step kills it first (it is found through `<name>.pid`), and `cancel` kills it too.
 */
export class LocalStepRunner implements StepRunner {
  readonly kind = 'local';
  readonly #lake: Lake;
  readonly #logger: Logger;
  readonly #spark: StepsConfig['spark'];
  readonly #password: string | undefined;
  readonly #killGraceMs: number;
  readonly #dir: string;
  readonly #scripts: string[];
  readonly #running = new Map<number, Started>();
  readonly #finished = new Map<string, StepStatus>();
  #tools: Promise<SparkTools> | undefined;

  constructor(options: LocalStepRunnerOptions) {
    this.#lake = options.lake;
    this.#logger = options.logger;
    this.#spark = options.spark;
    this.#password = options.warehousePassword;
    this.#killGraceMs = options.killGraceMs ?? 10_000;
    // Per deployment (its queue prefix): two services sharing a temp folder must not take each other's run ids'
    // pid files for leftovers of their own.
    this.#dir = join(options.spark.tempDir, 'afluente-steps', options.namespace ?? '');
    this.#scripts = SPARK_JOBS.map((job) => this.#script(job));
  }

  async run(request: StepRequest, { signal, onSubmitted }: RunStepOptions): Promise<StepStatus> {
    signal.throwIfAborted();
    const tools = await this.#findTools(request.job);
    await mkdir(this.#dir, { recursive: true });
    const base = join(this.#dir, fileName(request.name));
    await this.#stopLeftover(`${base}.pid`, request.name);
    const staging = this.#lake.root.startsWith('file://') ? undefined : await mkdtemp(`${base}.stage-`);
    try {
      let stepArgs = ['--spec', this.#lake.uri(request.specKey)];
      if (staging) {
        await stageIn(this.#lake, [request.specKey, ...request.inputs], staging, signal);
        const spec = pathToFileURL(join(staging, ...request.specKey.split('/'))).href;
        stepArgs = ['--spec', spec, '--lake-root', pathToFileURL(staging).href];
      }
      signal.throwIfAborted();
      const started = await this.#start(request, tools, stepArgs, base);
      const status = await this.#await(started, signal, onSubmitted);
      if (status.state === 'COMPLETED' && staging) {
        const keys = await stageOut(this.#lake, request.outputs, staging, signal);
        this.#logger.debug(
          { step: request.name, files: keys.length },
          'copied a local step’s outputs to the lake',
        );
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
    const pid = pidOf(handle);
    const running = this.#running.get(pid);
    if (running) return { state: 'RUNNING', ...logsOf(running.handle) };
    const done = this.#finished.get(handle.stepId);
    if (done) return done;
    if (await isSparkSubmitOf(pid, this.#scripts)) {
      return {
        state: 'RUNNING',
        message: 'the step runs in another process on this machine, not a child of this one',
        ...logsOf(handle),
      };
    }
    return lost(handle);
  }

  async cancel(handle: StepHandle): Promise<StepStatus> {
    const pid = pidOf(handle);
    const running = this.#running.get(pid);
    if (running) {
      running.stop();
      return running.done;
    }
    const done = this.#finished.get(handle.stepId);
    if (done) return done;
    if (await isSparkSubmitOf(pid, this.#scripts)) {
      this.#logger.warn({ step: handle.stepId }, 'killing a local step that another worker left behind');
      await killGroup(pid, this.#killGraceMs);
      // Its worker is gone and will not remove its pid file.
      for (const file of await this.#pidFiles()) if (file.pid === pid) await this.#removeIfStill(file);
      return { state: 'CANCELLED', ...logsOf(handle) };
    }
    return lost(handle);
  }

  /**
   * The steps of this deployment alive on this machine, from their pid files, whichever worker started them.
   * Each one's process must still be the spark-submit of that very step (its `--name`): a pid reused by another
   * step is not it. A pid file whose process is no spark-submit at all (its worker died) is removed on the way.
   */
  async listLive(): Promise<LiveWork> {
    const steps: LiveStep[] = [];
    for (const file of await this.#pidFiles()) {
      const { ref, pid } = file;
      if (this.#running.has(pid) || (await this.#runsStep(pid, ref.name))) {
        const logs = join(this.#dir, `${fileName(ref.name)}.log`);
        steps.push({ ...ref, handle: { stepId: `local:${pid}`, logs }, createdAt: file.mtime });
      } else if (!(await isSparkSubmitOf(file.pid, this.#scripts))) {
        await this.#removeIfStill(file);
      }
    }
    return { steps, clusters: [] };
  }

  async terminateCluster(clusterId: string): Promise<void> {
    throw new Error(`local steps run on no cluster (asked to terminate ${clusterId})`);
  }

  async close(): Promise<void> {
    const running = [...this.#running.values()];
    for (const step of running) step.stop();
    await Promise.all(running.map((step) => step.done));
  }

  async #pidFiles(): Promise<PidFile[]> {
    const names = await readdir(this.#dir).catch(() => [] as string[]);
    const files: PidFile[] = [];
    for (const base of names) {
      const match = PID_FILE.exec(base);
      const ref = match && parseStepName(`afluente run=${match[1]} job=${match[2]} ${match[3]}`);
      if (!ref) continue;
      const path = join(this.#dir, base);
      const [text, info] = await Promise.all([
        readFile(path, 'utf8').catch(() => ''),
        stat(path).catch(() => undefined),
      ]);
      const pid = Number(text);
      if (!Number.isInteger(pid) || pid <= 1 || !info) continue;
      files.push({ path, pid, mtime: info.mtime, ref });
    }
    return files;
  }

  /** Removes a pid file unless a new attempt of its step has written its own pid into it meanwhile. */
  async #removeIfStill(file: PidFile): Promise<void> {
    if (Number(await readFile(file.path, 'utf8').catch(() => '')) === file.pid)
      await rm(file.path, { force: true });
  }

  /** Whether `pid` is the spark-submit of the step named `name` (before or after it execs its JVM). */
  async #runsStep(pid: number, name: string): Promise<boolean> {
    if (!(await isSparkSubmitOf(pid, this.#scripts))) return false;
    // spark-submit's launcher rebuilds the JVM's arguments, but keeps `--name <name>` as a pair.
    const args = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
    return args.some((arg, i) => arg === '--name' && args[i + 1] === name);
  }

  #script(job: SparkJob): string {
    return join(this.#spark.scripts, `${job}.py`);
  }

  async #findTools(job: SparkJob): Promise<SparkTools> {
    // A failed lookup is not kept: the venv may be set up while the service runs.
    this.#tools ??= findSparkTools(this.#spark.venv).catch((error: unknown) => {
      this.#tools = undefined;
      throw error;
    });
    const tools = await this.#tools;
    const script = this.#script(job);
    await access(script).catch(() => {
      throw new Error(`the Spark job ${script} is missing (AFLUENTE_SPARK_SCRIPTS=${this.#spark.scripts})`);
    });
    return tools;
  }

  /** Stops the previous spark-submit of the same step, if one is still alive: two must never write at once. */
  async #stopLeftover(pidFile: string, name: string): Promise<void> {
    const pid = Number(await readFile(pidFile, 'utf8').catch(() => ''));
    if (!pid) return;
    const ours = this.#running.get(pid);
    if (ours) {
      ours.stop();
      await ours.done;
    } else if (await isSparkSubmitOf(pid, this.#scripts)) {
      this.#logger.warn({ step: name, pid }, 'killing a local step that a previous attempt left behind');
      await killGroup(pid, this.#killGraceMs);
    }
  }

  async #start(request: StepRequest, tools: SparkTools, stepArgs: string[], base: string): Promise<Started> {
    const spark = this.#spark;
    const args = [
      ...['--master', spark.master, '--driver-memory', spark.driverMemory],
      // The step's name in its command line: the orphan sweep tells its process from a reused pid by it.
      ...['--name', request.name],
      ...(spark.jars ? ['--jars', spark.jars] : []),
      ...['--conf', 'spark.sql.session.timeZone=UTC', '--conf', 'spark.ui.enabled=false'],
      this.#script(request.job),
      ...stepArgs,
    ];
    // The service's own settings (and secrets) stay out of the step; only the warehouse password goes in.
    const env: NodeJS.ProcessEnv = Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !name.startsWith('AFLUENTE_')),
    );
    Object.assign(env, {
      SPARK_HOME: tools.sparkHome,
      PYSPARK_PYTHON: tools.python,
      PYTHONPATH: spark.scripts,
      // The scripts folder is code, not a cache: no __pycache__ in the repo (or a read-only image).
      PYTHONDONTWRITEBYTECODE: '1',
      ...(this.#password ? { [WAREHOUSE_PASSWORD_ENV]: this.#password } : {}),
    });
    // detached: the step leads its own process group, so a cancel reaches the JVM and every Python worker.
    const child = spawn(tools.sparkSubmit, args, {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env,
      cwd: this.#dir,
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, sig) => resolve({ code, signal: sig })),
    );
    const closed = once(child, 'close').catch(() => undefined);
    await once(child, 'spawn');
    child.on('error', (error) =>
      this.#logger.error({ err: error, step: request.name }, 'local step process error'),
    );
    const pid = child.pid as number;
    const logs = `${base}.log`;
    const handle: StepHandle = { stepId: `local:${pid}`, logs };
    const log = createWriteStream(logs, { flags: 'a' });
    log.on('error', (error) => this.#logger.warn({ err: error, logs }, 'could not write a local step’s log'));
    log.write(`==== ${new Date().toISOString()} ${handle.stepId} ${request.name}\n`);
    const tail = new Tail();
    // Both streams: spark-submit's JVM logs to stderr, but it relays the Python driver's stderr on its stdout.
    const record = (chunk: Buffer): void => {
      log.write(chunk);
      tail.push(chunk);
    };
    child.stdout.on('data', record);
    child.stderr.on('data', record);
    await writeFile(`${base}.pid`, String(pid));

    let killing: Promise<void> | undefined;
    const stop = (): void => {
      killing ??= killGroup(pid, this.#killGraceMs).catch((error: unknown) => {
        this.#logger.error({ err: error, step: handle.stepId }, 'could not kill a local step');
      });
    };
    const done = (async (): Promise<StepStatus> => {
      const exit = await exited;
      // Whatever the JVM left behind (a Python worker) goes with it; stdio closes once nothing holds it.
      reapGroup(pid);
      await Promise.race([closed, sleep(5000)]);
      await killing;
      log.end();
      await finished(log).catch(() => undefined);
      await rm(`${base}.pid`, { force: true });
      let status: StepStatus;
      if (exit.code === 0) status = { state: 'COMPLETED', logs };
      else if (killing) status = { state: 'CANCELLED', logs };
      else {
        const message = failureMessage(tail.text, request.job, exit);
        status = { state: 'FAILED', reason: 'spark_failed', message, logs };
      }
      this.#running.delete(pid);
      this.#remember(handle.stepId, status);
      this.#logger.info(
        { step: request.name, stepId: handle.stepId, state: status.state },
        'local step ended',
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
}

interface PidFile {
  path: string;
  pid: number;
  /** When the step was started (the file is written right after the spawn). */
  mtime: Date;
  /** The step, from the file's name. */
  ref: StepRef;
}

function pidOf(handle: StepHandle): number {
  const match = STEP_ID.exec(handle.stepId);
  if (!match) throw new Error(`not a local step id: "${handle.stepId}" (expected local:<pid>)`);
  return Number(match[1]);
}

function logsOf(handle: StepHandle): { logs?: string } {
  return handle.logs ? { logs: handle.logs } : {};
}

/** spark-submit, pyspark's SPARK_HOME and the Python of a venv set up by scripts/setup-python.sh. */
async function findSparkTools(venv: string): Promise<SparkTools> {
  const sparkSubmit = join(venv, 'bin', 'spark-submit');
  const python = join(venv, 'bin', 'python');
  const fix = `run \`bash scripts/setup-python.sh\`, or point AFLUENTE_SPARK_VENV at a venv with pyspark (now ${venv})`;
  await access(sparkSubmit, constants.X_OK).catch(() => {
    throw new Error(`${sparkSubmit} is missing: ${fix}`);
  });
  const pythons = (await readdir(join(venv, 'lib')).catch(() => [] as string[]))
    .filter((name) => /^python3\.\d+$/.test(name))
    .sort((a, b) => Number(b.split('.')[1]) - Number(a.split('.')[1]));
  for (const name of pythons) {
    const sparkHome = join(venv, 'lib', name, 'site-packages', 'pyspark');
    const found = await access(join(sparkHome, 'bin', 'spark-class')).then(
      () => true,
      () => false,
    );
    if (found) return { sparkSubmit, sparkHome, python };
  }
  throw new Error(`pyspark is not installed in ${venv}/lib/python3.*/site-packages: ${fix}`);
}
