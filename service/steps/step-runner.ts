import type { SparkJob } from '../../contract/steps.ts';

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
  /** The EMR step id, or `local:<pid>` for the local runner. */
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
}

export interface RunStepOptions {
  signal: AbortSignal;
  /** Called once the step is submitted or reattached, before it is awaited. */
  onSubmitted: (handle: StepHandle) => Promise<void>;
}

/**
 * Runs Spark steps: `local` (spark-submit from the project's venv) or `emr` (AddJobFlowSteps on a cluster).
 * Both sit behind this port so the transform and load stages don't know where Spark runs.
 */
export interface StepRunner {
  readonly kind: 'local' | 'emr';
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
  close(): Promise<void>;
}

/** `afluente run=<runId> job=<jobId> <job>`: unique per job, stable across worker restarts and attempts. */
export function stepName(runId: number, jobId: number, job: SparkJob): string {
  return `afluente run=${runId} job=${jobId} ${job}`;
}
