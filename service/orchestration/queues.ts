import { Queue, type ConnectionOptions } from 'bullmq';
import { STAGES, type Stage } from '../../contract/stages.ts';
import { queueJobId, type JobCatalog, type StagePayloads } from './catalog.ts';

const DAY_SECONDS = 24 * 3600;

/** One BullMQ queue per stage, so each stage's concurrency and depth are visible and tunable on their own. */
export class StageQueues {
  readonly prefix: string;
  readonly catalog: JobCatalog;
  private readonly queues: Map<Stage, Queue>;

  constructor(connection: ConnectionOptions, prefix: string, catalog: JobCatalog) {
    this.prefix = prefix;
    this.catalog = catalog;
    this.queues = new Map(STAGES.map((stage) => [stage, new Queue(stage, { connection, prefix })]));
  }

  get(stage: Stage): Queue {
    const queue = this.queues.get(stage);
    if (!queue) throw new Error(`no queue for stage "${stage}"`);
    return queue;
  }

  all(): [Stage, Queue][] {
    return [...this.queues.entries()];
  }

  /**
   * Adds the stage's job. Idempotent: BullMQ ignores an add whose job id already exists. The queue's connection
   * waits for Redis as long as it is away (workers need that); a caller that must answer promptly passes
   * `timeoutMs`, and gets a {@link QueueTimeoutError} after it, while the add itself may still land later.
   */
  async enqueue<S extends Stage>(stage: S, data: StagePayloads[S], timeoutMs?: number): Promise<string> {
    const entry = this.catalog[stage];
    const id = queueJobId(data.runId, stage, data.runAttempt);
    const adding = this.get(stage).add(stage, data, {
      jobId: id,
      attempts: entry.attempts,
      backoff: entry.backoff,
      removeOnComplete: { age: 7 * DAY_SECONDS, count: 10_000 },
      removeOnFail: { age: 30 * DAY_SECONDS, count: 10_000 },
    });
    await within(adding, timeoutMs, `queueing job ${id}`);
    return id;
  }

  /** Removes a job that is still waiting or delayed; an active job is left to its worker. */
  async removeIfQueued(stage: Stage, id: string, timeoutMs?: number): Promise<boolean> {
    return within(this.remove(stage, id), timeoutMs, `removing job ${id}`);
  }

  private async remove(stage: Stage, id: string): Promise<boolean> {
    const job = await this.get(stage).getJob(id);
    if (!job) return false;
    const state = await job.getState();
    if (state !== 'waiting' && state !== 'delayed' && state !== 'prioritized') return false;
    await job.remove();
    return true;
  }

  async depth(timeoutMs?: number): Promise<Record<Stage, Record<string, number>>> {
    return within(this.counts(), timeoutMs, 'counting queued jobs');
  }

  private async counts(): Promise<Record<Stage, Record<string, number>>> {
    const entries = await Promise.all(
      this.all().map(
        async ([stage, q]) =>
          [stage, await q.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed')] as const,
      ),
    );
    return Object.fromEntries(entries) as Record<Stage, Record<string, number>>;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}

/** Redis did not answer a queue operation within the time its caller can wait. */
export class QueueTimeoutError extends Error {
  override name = 'QueueTimeoutError';
}

/**
 * `work`, or a {@link QueueTimeoutError} after `timeoutMs`. Written by hand: BullMQ's calls take no timeout or
 * signal, and an ioredis `commandTimeout` would also cut the workers' blocking reads, which must wait.
 */
async function within<T>(work: Promise<T>, timeoutMs: number | undefined, what: string): Promise<T> {
  if (timeoutMs === undefined) return work;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new QueueTimeoutError(`Redis did not answer ${what} within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  // The late outcome of an abandoned operation is not anyone's to handle any more.
  work.catch(() => undefined);
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
