import type { Stage } from '../../contract/stages.ts';
import type { Logger } from '../observability/logger.ts';
import type { Job, Run } from '../state/entities/index.ts';
import type { StagePayloads } from './catalog.ts';

/** What a stage reports when it succeeds. Counts add to the run's; metrics are stored on the job. */
export interface StageOutcome {
  counts?: { fetched?: number; valid?: number; rejected?: number };
  rows?: Record<string, number>;
  metrics?: Record<string, unknown>;
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

/**
 * A failure no retry can fix: a bad source config, a 401 from the source, a stage that doesn't exist yet.
 * The job fails at once, whatever attempts are left.
 */
export class NonRetryableError extends Error {
  override name = 'NonRetryableError';
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/**
 * The handlers the service ships until each stage lands. They fail loudly instead of completing with
 * nothing done.
 */
export function notImplemented<S extends Stage>(stage: S): StageHandler<S> {
  return () =>
    Promise.reject(new NonRetryableError('not_implemented', `stage "${stage}" is not implemented yet`));
}

export const DEFAULT_STAGE_HANDLERS: StageHandlers = {
  ingest: notImplemented('ingest'),
  validate: notImplemented('validate'),
  transform: notImplemented('transform'),
  load: notImplemented('load'),
};
