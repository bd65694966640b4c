import type { Layer } from '../../contract/lake-layout.ts';
import type { Stage } from '../../contract/stages.ts';
import type { Logger } from '../observability/logger.ts';
import type { Job, Run } from '../state/entities/index.ts';
import type { StagePayloads } from './catalog.ts';

/** A lake file a stage committed; recorded as a LakeFile produced by the stage's job. */
export interface OutputFile {
  uri: string;
  layer: Layer;
  table?: string;
  records?: number;
  bytes: number;
  sha256?: string;
}

/** What a stage reports when it succeeds. Counts add to the run's; metrics are stored on the job. */
export interface StageOutcome {
  counts?: { fetched?: number; valid?: number; rejected?: number; duplicates?: number };
  /** Rows per warehouse table, stored on the run. */
  rows?: Record<string, number>;
  metrics?: Record<string, unknown>;
  files?: OutputFile[];
  /** The incremental cursor the run reached; the source's cursor becomes it only when the run COMPLETES. */
  cursor?: string | null;
  /**
   * Params of the next stage's job, stored on it when it is created in the same transaction (the seed's state
   * control: the load job exists with its files and params before its step starts).
   */
  nextParams?: Record<string, unknown>;
}

export interface StageContext<S extends Stage> {
  stage: S;
  payload: StagePayloads[S];
  /** Snapshots as they were when the job started; the handler must not write them. */
  run: Readonly<Run>;
  job: Readonly<Job>;
  /** Aborted on timeout, cancel, or shutdown; `signal.reason` is a {@link StopReason}. */
  signal: AbortSignal;
  logger: Logger;
}

export type StageHandler<S extends Stage> = (ctx: StageContext<S>) => Promise<StageOutcome>;

/** Every stage needs a handler: leaving one out is a compile error. */
export type StageHandlers = { [S in Stage]: StageHandler<S> };

/** Why a running stage was told to stop. */
export type StopReason = { kind: 'timeout'; afterMs: number } | { kind: 'cancelled' } | { kind: 'shutdown' };

/** Where a failure happened, when it was an HTTP request: recorded on the job and the run. */
export interface FailureDetails {
  httpStatus?: number;
  /** With credentials removed. */
  url?: string;
  /** Where the logs of the failed work are (an EMR step's log file, a local step's log). */
  logs?: string;
}

/** A stage failure with a machine reason and details; BullMQ retries it while attempts are left. */
export class StageError extends Error {
  override name = 'StageError';
  readonly reason: string;
  readonly details: FailureDetails;
  /** What the stage wrote before it failed (a quality gate fails after writing its outputs), recorded with the failure. */
  readonly partial?: StageOutcome;
  constructor(reason: string, message: string, details: FailureDetails = {}, partial?: StageOutcome) {
    super(message);
    this.reason = reason;
    this.details = details;
    this.partial = partial;
  }
}

/**
 * A failure no retry can fix: a bad source config, a 401 from the source, a stage that doesn't exist yet.
 * The job fails at once, whatever attempts are left.
 */
export class NonRetryableError extends StageError {
  override name = 'NonRetryableError';
}
