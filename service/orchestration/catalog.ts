import type { BackoffOptions } from 'bullmq';
import type { Stage } from '../../contract/stages.ts';

/** What every stage job carries: ids only. The run, its params and its files are read from MySQL. */
export interface StageJobData {
  runId: number;
  jobId: number;
  runAttempt: number;
}

/** The payload of each stage's queue job. A stage that needs more (a continuation, say) widens its entry. */
export interface StagePayloads {
  ingest: StageJobData;
  validate: StageJobData;
  transform: StageJobData;
  load: StageJobData;
}

export interface CatalogEntry {
  /** Attempts BullMQ makes before the job, and so its run, fails for good. */
  attempts: number;
  backoff: BackoffOptions;
  /** A single attempt is aborted after this long. */
  timeoutMs: number;
}

const MINUTE = 60_000;

/** One entry per stage; `satisfies` makes a missing stage a compile error. */
export const JOB_CATALOG = {
  ingest: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 5_000, jitter: 0.5 },
    timeoutMs: 60 * MINUTE,
  },
  validate: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 5_000, jitter: 0.5 },
    timeoutMs: 60 * MINUTE,
  },
  transform: {
    attempts: 2,
    backoff: { type: 'exponential', delay: 30_000, jitter: 0.5 },
    timeoutMs: 180 * MINUTE,
  },
  load: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 30_000, jitter: 0.5 },
    timeoutMs: 180 * MINUTE,
  },
} as const satisfies Record<Stage, CatalogEntry>;

export type JobCatalog = Record<Stage, CatalogEntry>;

/**
 * The BullMQ id of a stage job. It is derived from the run, its attempt and the stage, so enqueuing twice is
 * one job. BullMQ reserves ':' in ids, hence the dots.
 */
export function queueJobId(runId: number, stage: Stage, runAttempt: number): string {
  return `run-${runId}.${stage}.${runAttempt}`;
}
