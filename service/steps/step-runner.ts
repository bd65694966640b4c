import { SPARK_JOBS, type SparkJob } from '../../contract/steps.ts';

/** One Spark step to run: which job, and the lake key of the spec it reads. */
export interface StepRequest {
  job: SparkJob;
  runId: number;
  jobId: number;
  /** The step's name: it holds the run and job ids, so a restarted worker finds the step again (see stepName). */
  name: string;
  /** Key of the spec document in the lake (contract/steps.ts). */
  specKey: string;
  /** Keys the step reads; a runner that stages through a temp folder copies these in first. */
  inputs: string[];
  /** Prefixes (or keys) the step writes; a staging runner copies everything under them back to the lake. */
  outputs: string[];
  /** The EMR cluster the run already uses, if any (a transient cluster is reused by the run's next step). */
  clusterId?: string | null;
}

/** Where a step is running: recorded on the job (and the cluster on the run) as soon as it is known. */
export interface StepHandle {
  /** The EMR step id, `local:<pid>` for the local Spark runner, or `embedded:<pid>` for the embedded engine. */
  stepId: string;
  clusterId?: string;
  /** Where the step's logs are: an S3 URI on EMR, a file locally. */
  logs?: string;
}

export type StepState = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';

export interface StepStatus {
  state: StepState;
  /** On FAILED: why, in the runner's words (EMR's FailureDetails reason/message, or spark-submit's stderr). */
  reason?: string;
  message?: string;
  logs?: string;
  /**
   * On FAILED: false when the step said it will fail the same way until its spec, its data or the warehouse
   * changes (a local step's exit code STEP_EXIT_PERMANENT, contract/steps.ts); the job then fails without a retry. EMR does
   * not tell a step's exit code, so an EMR step's failure is always retried.
   */
  retryable?: boolean;
}

export interface RunStepOptions {
  signal: AbortSignal;
  /** Called once the step is submitted or reattached, before it is awaited. */
  onSubmitted: (handle: StepHandle) => Promise<void>;
}

/**
 * Runs the steps of the transform and load: Spark's `local` (spark-submit from the project's venv) or `emr`
 * (AddJobFlowSteps on a cluster), or the `embedded` engine (DuckDB in a child process of the worker). All sit
 * behind this port so the transform and load stages don't know where their step runs.
 */
export interface StepRunner {
  readonly kind: 'local' | 'emr' | 'embedded';
  /**
   * Submits the step, or reattaches to a live or finished step with the same name, and waits for its end.
   * Resolves with COMPLETED, FAILED or CANCELLED (CANCELLED: someone else cancelled it). An abort of `signal`
   * cancels the step and then rejects with `signal.reason`; but when that reason is a shutdown
   * (`{ kind: 'shutdown' }`), the emr runner leaves the step running for the worker that takes the job over.
   */
  run(request: StepRequest, options: RunStepOptions): Promise<StepStatus>;
  /** The step's current state (the reconciler polls a RUNNING job's step with this). */
  status(handle: StepHandle): Promise<StepStatus>;
  /** Cancels the step and confirms it reached CANCELLED (or had already ended). */
  cancel(handle: StepHandle): Promise<StepStatus>;
  /**
   * What this deployment has running now, whoever started it: live steps with afluente step names, and (EMR)
   * the transient clusters it started. The orphan sweep judges each against MySQL. Never lists another
   * deployment's work, a step without an afluente name, or the configured AFLUENTE_EMR_CLUSTER_ID as a cluster.
   */
  listLive(): Promise<LiveWork>;
  /**
   * Terminates a run's transient cluster. The configured AFLUENTE_EMR_CLUSTER_ID is never terminated, and the
   * local runner has no clusters: it refuses.
   */
  terminateCluster(clusterId: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * What the reconciler, a cancel and the orphan sweep do to steps they did not start, whichever engine runs them
 * (see StepRunners, which routes each step to its runner by its id).
 */
export type StepControl = Pick<StepRunner, 'status' | 'cancel' | 'listLive' | 'terminateCluster' | 'close'>;

/** What a step's name says: the run and the job that submitted it. */
export interface StepRef {
  name: string;
  runId: number;
  jobId: number;
  job: SparkJob;
}

/** A step that is PENDING or RUNNING, found on EMR or through a local pid file. */
export interface LiveStep extends StepRef {
  handle: StepHandle;
  /** When it was submitted (EMR's CreationDateTime; a local step's pid file time). */
  createdAt: Date;
}

/** A run's transient EMR cluster, still up (starting, running or waiting). */
export interface LiveCluster {
  clusterId: string;
  /** Its `run` tag. */
  runId: number;
  /** EMR's CreationDateTime. */
  createdAt: Date;
}

export interface LiveWork {
  steps: LiveStep[];
  clusters: LiveCluster[];
}

/**
 * A step's failure message naming its job exactly once, `<job>: <why>`. The job's own line on stderr already starts
 * with its name, and so may a message a runner passes on (EMR's FailureDetails): every leading `<job>:` goes first.
 */
export function namedOnce(job: SparkJob, message: string): string {
  // Job names are plain identifiers (SPARK_JOBS): nothing in them needs escaping.
  const prefixes = new RegExp(`^(?:${job}:\\s*)+`);
  return `${job}: ${message.trim().replace(prefixes, '')}`;
}

/** `afluente run=<runId> job=<jobId> <job>`: unique per job, stable across worker restarts and attempts. */
export function stepName(runId: number, jobId: number, job: SparkJob): string {
  return `afluente run=${runId} job=${jobId} ${job}`;
}

const STEP_NAME = new RegExp(`^afluente run=([1-9]\\d*) job=([1-9]\\d*) (${SPARK_JOBS.join('|')})$`);

/** The run and job a step name holds, or undefined for a name {@link stepName} did not make. */
export function parseStepName(name: string): StepRef | undefined {
  const match = STEP_NAME.exec(name);
  if (!match) return undefined;
  return { name, runId: Number(match[1]), jobId: Number(match[2]), job: match[3] as SparkJob };
}
