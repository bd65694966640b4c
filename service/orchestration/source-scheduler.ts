import { Queue, UnrecoverableError, Worker, type ConnectionOptions, type Job as QueueJob } from 'bullmq';
import { isDeepStrictEqual } from 'node:util';
import type { Schedule } from '../../contract/source-config.ts';
import { ConflictError, DomainError } from '../errors.ts';
import type { Dependencies } from '../observability/dependencies.ts';
import type { Logger } from '../observability/logger.ts';
import type { RunService } from '../runs/run-service.ts';
import { Trigger } from '../state/status.ts';

/** The queue of the schedule ticks: its own, so the schedulers afluente owns are easy to tell apart. */
export const SCHEDULE_QUEUE = 'schedule';
/** Every scheduler this service owns has a key with this prefix; sync touches no other. */
export const SCHEDULER_KEY_PREFIX = 'source:';
const TICK = 'tick';
const DAY_SECONDS = 24 * 3600;
/** Redis is asked for a next fire time for at most this long; the API answers without one rather than hang. */
const NEXT_RUN_TIMEOUT_MS = 1000;

/** The data of every tick job: which source to run. */
export interface TickData {
  source: string;
}

/** What a tick did. */
export type TickOutcome =
  | { outcome: 'created' | 'replayed'; runId: number; key: string }
  /** The source's active-run limit turned the run away (onActiveRun: reject); the tick is done. */
  | { outcome: 'rejected'; key: string }
  /** The source is no longer configured, or no longer has a schedule. */
  | { outcome: 'dropped' };

export interface SyncReport {
  /** Schedulers created or changed. */
  upserted: string[];
  /** Schedulers already as configured, left alone (so a pending, even overdue, tick survives a restart). */
  kept: string[];
  /** Schedulers of sources that no longer have a schedule. */
  removed: string[];
}

export interface SourceSchedulerOptions {
  connection: ConnectionOptions;
  /** The stage queues' prefix. */
  prefix: string;
  logger: Logger;
  /** Creates the tick's run; only the tick worker uses it. */
  runs: Pick<RunService, 'create'>;
  /** The configured sources at the time of a tick. */
  sources: () => ReadonlyMap<string, { schedule?: Schedule }>;
  /**
   * Logs Redis failures once per outage, and skips the next fire time while Redis is down.
   * @default every failure is logged on its own
   */
  dependencies?: Pick<Dependencies, 'failed' | 'isDown'>;
}

// A tick that fails on a transient error (MySQL away) is retried a few times; its idempotency key keeps
// a retry of a tick whose run was committed from making a second run.
const TEMPLATE_OPTS = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 7 * DAY_SECONDS, count: 1000 },
  removeOnFail: { age: 30 * DAY_SECONDS, count: 1000 },
};

export function schedulerKey(source: string): string {
  return `${SCHEDULER_KEY_PREFIX}${source}`;
}

/**
 * Turns each source's `schedule` into runs, through one BullMQ job scheduler per source in a queue of its own.
 * The scheduler keeps exactly one pending tick job in Redis; a tick creates a run with trigger "schedule" and an
 * idempotency key made of the scheduler key and the tick's fire time, so a tick processed twice makes one run.
 * Ticks missed while no tick worker was up collapse into the one pending job: it runs once on restart, and the
 * next tick is computed from then.
 */
export class SourceScheduler {
  readonly queue: Queue<TickData>;
  private readonly options: SourceSchedulerOptions;
  private worker?: Worker<TickData>;

  constructor(options: SourceSchedulerOptions) {
    this.options = options;
    this.queue = new Queue<TickData>(SCHEDULE_QUEUE, {
      connection: options.connection,
      prefix: options.prefix,
    });
    // Without a listener BullMQ prints each connection error to stderr.
    this.queue.on('error', (error) => this.failed(error, 'schedule queue error'));
  }

  private failed(
    error: unknown,
    message: string,
    level: 'warn' | 'error' = 'error',
    bindings: Record<string, unknown> = {},
  ): void {
    const { dependencies, logger } = this.options;
    if (dependencies) dependencies.failed(error, message, { level, bindings });
    else logger[level]({ ...bindings, err: error }, message);
  }

  /**
   * Makes Redis hold one scheduler per source with a schedule, and none for the others. Idempotent, and safe to
   * run from several instances at once: a scheduler already as configured is left alone, and the upsert of one
   * that is not replaces it in place (one key per source), so concurrent runs converge.
   */
  async sync(sources: Iterable<{ name: string; schedule?: Schedule }>): Promise<SyncReport> {
    const report: SyncReport = { upserted: [], kept: [], removed: [] };
    const wanted = new Set<string>();
    for (const source of sources) {
      if (!source.schedule) continue;
      const key = schedulerKey(source.name);
      wanted.add(key);
      const pattern = source.schedule.cron;
      const tz = source.schedule.timezone ?? 'UTC';
      if (await this.isCurrent(key, source.name, pattern, tz)) {
        report.kept.push(key);
        continue;
      }
      // An upsert replaces the pending tick with one computed from now, so it is only done on a change.
      await this.queue.upsertJobScheduler(
        key,
        { pattern, tz },
        { name: TICK, data: { source: source.name }, opts: TEMPLATE_OPTS },
      );
      report.upserted.push(key);
    }
    for (const scheduler of await this.queue.getJobSchedulers()) {
      if (!scheduler.key.startsWith(SCHEDULER_KEY_PREFIX) || wanted.has(scheduler.key)) continue;
      await this.queue.removeJobScheduler(scheduler.key);
      report.removed.push(scheduler.key);
    }
    this.options.logger.info(report, 'source schedules synced');
    return report;
  }

  /** The source scheduler's next fire time; null with no scheduler, or when Redis is down or slow to answer. */
  async nextRunAt(source: string): Promise<Date | null> {
    if (this.options.dependencies?.isDown('redis')) return null;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), NEXT_RUN_TIMEOUT_MS);
    });
    try {
      const scheduler = await Promise.race([this.queue.getJobScheduler(schedulerKey(source)), timeout]);
      if (scheduler === 'timeout') {
        const error = new Error(`Redis did not answer within ${NEXT_RUN_TIMEOUT_MS} ms`);
        this.failed(error, 'Redis did not answer for the next scheduled run in time', 'warn', { source });
        return null;
      }
      return typeof scheduler?.next === 'number' ? new Date(scheduler.next) : null;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts processing ticks (the scheduler role). */
  async startWorker(): Promise<void> {
    if (this.worker) return;
    const worker = new Worker<TickData>(SCHEDULE_QUEUE, (job) => this.processTick(job), {
      connection: this.options.connection,
      prefix: this.options.prefix,
    });
    worker.on('error', (error) => this.failed(error, 'schedule worker error'));
    worker.on('failed', (job, error) => {
      this.failed(error, 'a schedule tick failed', 'error', {
        source: job?.data.source,
        jobId: job?.id,
        attempt: job?.attemptsMade,
      });
    });
    this.worker = worker;
    await worker.waitUntilReady();
  }

  /** Creates the run of one tick. Safe to call twice for the same tick: the second returns the first's run. */
  async processTick(
    job: Pick<QueueJob<TickData>, 'data' | 'id' | 'opts' | 'timestamp'>,
  ): Promise<TickOutcome> {
    const { logger, runs, sources } = this.options;
    const { source } = job.data;
    if (!sources().get(source)?.schedule) {
      logger.warn({ source, jobId: job.id }, 'dropped a schedule tick: the source has no schedule any more');
      return { outcome: 'dropped' };
    }
    const key = `schedule:${source}:${tickMillis(job)}`;
    try {
      const { run, replayed } = await runs.create({ source, trigger: Trigger.Schedule }, key);
      if (!replayed) logger.info({ source, runId: run.id, key }, 'scheduled run created');
      return { outcome: replayed ? 'replayed' : 'created', runId: run.id, key };
    } catch (error) {
      if (error instanceof ConflictError) {
        logger.warn(
          { err: error, source, key },
          'scheduled run not created: the source is at its active-run limit',
        );
        return { outcome: 'rejected', key };
      }
      // Another refusal (an unknown source, a reused key) will not change on a retry.
      if (error instanceof DomainError) throw new UnrecoverableError(error.message);
      throw error;
    }
  }

  async stopWorker(): Promise<void> {
    await this.worker?.close();
  }

  async close(): Promise<void> {
    await this.stopWorker();
    await this.queue.close();
  }

  /** Whether the scheduler in Redis is the configured one and still has its pending tick job. */
  private async isCurrent(key: string, source: string, pattern: string, tz: string): Promise<boolean> {
    const existing = await this.queue.getJobScheduler(key);
    if (
      existing?.pattern !== pattern ||
      existing.tz !== tz ||
      existing.name !== TICK ||
      existing.every !== undefined ||
      !isDeepStrictEqual(existing.template?.data, { source }) ||
      !isDeepStrictEqual(existing.template?.opts, TEMPLATE_OPTS) ||
      existing.next === undefined
    ) {
      return false;
    }
    const pending = await this.queue.getJob(`repeat:${key}:${existing.next}`);
    if (!pending) return false;
    const state = await pending.getState();
    return state === 'delayed' || state === 'waiting' || state === 'prioritized' || state === 'active';
  }
}

/** The tick's scheduled fire time: BullMQ stamps it on every job a scheduler makes (and in its id). */
function tickMillis(job: Pick<QueueJob<TickData>, 'id' | 'opts' | 'timestamp'>): number {
  if (typeof job.opts.prevMillis === 'number') return job.opts.prevMillis;
  const fromId = /:(\d+)$/.exec(job.id ?? '')?.[1];
  if (fromId !== undefined) return Number(fromId);
  return job.timestamp;
}
