import {
  UnrecoverableError,
  WaitingError,
  Worker,
  type ConnectionOptions,
  type Job as QueueJob,
} from 'bullmq';
import { setTimeout as sleep } from 'node:timers/promises';
import { STAGES, type Stage } from '../../contract/stages.ts';
import type { ErrorInfo } from '../state/entities/index.ts';
import { Status, isTerminal } from '../state/status.ts';
import type { StageJobData, StagePayloads } from './catalog.ts';
import type { StageQueues } from './queues.ts';
import type { RunEngine, EngineResources } from './run-engine.ts';
import {
  NonRetryableError,
  StageError,
  type StageHandler,
  type StageHandlers,
  type StopReason,
} from './stage-handler.ts';

export interface StageWorkersOptions {
  connection: ConnectionOptions;
  prefix: string;
  /** Jobs one worker runs at once, per stage. */
  concurrency: number;
  /** How often a running job stamps its heartbeat and checks for a cancel. */
  heartbeatMs: number;
  /**
   * A worker that dies holding a job loses its lock after this long; another worker then takes the job over
   * (BullMQ's stalled-job check runs at the same interval).
   */
  lockDurationMs: number;
}

const SHUTDOWN = 'shutdown';

/**
 * One BullMQ worker per stage. It wraps each stage handler with the job's lifecycle: start, heartbeat,
 * timeout, cancel, and the final record in MySQL. Handlers only do the work.
 */
export class StageWorkers {
  private readonly workers: Worker[];
  private readonly res: EngineResources;
  private readonly engine: RunEngine;
  private readonly queues: StageQueues;
  private readonly handlers: StageHandlers;
  private readonly options: StageWorkersOptions;

  constructor(
    res: EngineResources,
    deps: { engine: RunEngine; queues: StageQueues; handlers: StageHandlers },
    options: StageWorkersOptions,
  ) {
    this.res = res;
    this.engine = deps.engine;
    this.queues = deps.queues;
    this.handlers = deps.handlers;
    this.options = options;
    this.workers = STAGES.map((stage) => {
      const worker = new Worker<StageJobData>(
        stage,
        (job, token, signal) => this.process(stage, job, token, signal),
        {
          connection: options.connection,
          prefix: options.prefix,
          concurrency: options.concurrency,
          lockDuration: options.lockDurationMs,
          stalledInterval: options.lockDurationMs,
        },
      );
      worker.on('error', (error) =>
        res.dependencies.failed(error, 'stage worker error', { level: 'error', bindings: { stage } }),
      );
      worker.on('failed', (job, error) => {
        if (job) void this.recordQueueFailure(stage, job, error);
      });
      return worker;
    });
  }

  async waitUntilReady(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  /**
   * Stops taking jobs and lets the active ones finish within `graceMs`. Jobs still running then are aborted
   * and handed back to their queue, so another worker picks them up without losing an attempt.
   */
  async close(graceMs: number): Promise<void> {
    const closing = Promise.all(this.workers.map((w) => w.close()));
    const drained = await Promise.race([closing.then(() => true), sleep(graceMs).then(() => false)]);
    if (drained) return;
    this.res.logger.warn({ graceMs }, 'jobs still running after the grace period: releasing them');
    for (const worker of this.workers) worker.cancelAllJobs(SHUTDOWN);
    await closing;
  }

  /**
   * BullMQ fails a job by itself when it stalls more often than it allows (workers dying while holding it). The
   * processor never sees that, so the job would stay RUNNING in MySQL; this records the failure there. Failures
   * the processor already recorded are no-ops here, because the MySQL job is no longer RUNNING.
   */
  private async recordQueueFailure(stage: Stage, job: QueueJob<StageJobData>, error: Error): Promise<void> {
    try {
      if (!(await job.isFailed())) return;
      const info: ErrorInfo = {
        reason: 'stalled',
        message: `stage "${stage}": ${error.message}`,
        stage,
        attempt: job.attemptsMade,
      };
      await this.engine.fail(job.data.jobId, info, true);
    } catch (failure) {
      this.res.dependencies.failed(failure, 'could not record a queue failure', {
        level: 'error',
        bindings: { stage, jobId: job.data.jobId },
      });
    }
  }

  private async process<S extends Stage>(
    stage: S,
    qjob: QueueJob<StagePayloads[S]>,
    token?: string,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const { jobId, runId } = qjob.data;
    const attempt = qjob.attemptsMade + 1;
    const logger = this.res.logger.child({ runId, jobId, stage, attempt });
    const decision = await this.engine.start(jobId, attempt);
    if (decision.action === 'skip') {
      logger.info({ why: decision.why }, 'skipping a stage job');
      if (decision.dispatch) await this.queues.enqueue(decision.dispatch.stage, decision.dispatch.data);
      return { skipped: decision.why };
    }

    const timeoutMs = this.res.catalog[stage].timeoutMs;
    const controller = new AbortController();
    const stop = (reason: StopReason): void => {
      if (!controller.signal.aborted) controller.abort(reason);
    };
    const onWorkerAbort = (): void =>
      stop(signal?.reason === SHUTDOWN ? { kind: 'shutdown' } : { kind: 'cancelled' });
    signal?.addEventListener('abort', onWorkerAbort, { once: true });
    const timer = setTimeout(() => stop({ kind: 'timeout', afterMs: timeoutMs }), timeoutMs);
    // A run that ended while its stage runs was ended from outside: cancelled by an operator, or failed by the
    // reconciler (a stage past its deadline, a lapsed heartbeat). Either way the stage stops as for a cancel,
    // which also cancels its Spark step, and the worker records nothing: the run's end is already recorded.
    let runEnded: Status | undefined;
    const beat = setInterval(() => {
      this.engine.heartbeat(jobId, runId).then(
        (status) => {
          if (!status || !isTerminal(status)) return;
          runEnded ??= status;
          stop({ kind: 'cancelled' });
        },
        (error: unknown) => this.res.dependencies.failed(error, 'heartbeat failed', { logger }),
      );
    }, this.options.heartbeatMs);

    logger.info('stage started');
    try {
      const handler: StageHandler<S> = this.handlers[stage];
      // A handler that ignores its signal must not hold a timeout, a cancel or a shutdown hostage.
      const outcome = await Promise.race([
        handler({
          stage,
          payload: qjob.data,
          run: decision.run,
          job: decision.job,
          signal: controller.signal,
          logger,
        }),
        rejectOnAbort(controller.signal),
      ]);
      const dispatch = await this.engine.complete(jobId, outcome);
      if (dispatch) await this.queues.enqueue(dispatch.stage, dispatch.data);
      logger.info({ next: dispatch?.stage ?? null }, 'stage completed');
      return { completed: true };
    } catch (error) {
      const stopped = controller.signal.aborted ? (controller.signal.reason as StopReason) : undefined;
      if (stopped?.kind === 'shutdown') {
        await this.engine.release(jobId);
        await qjob.moveToWait(token);
        logger.info('released the job to its queue on shutdown');
        throw new WaitingError();
      }
      // The run may have ended before a heartbeat said so: a cancel stops the Spark step directly, and the
      // step's end (CANCELLED, "cancelled outside afluente") can reach the handler first. That is no failure.
      if (!stopped) runEnded ??= await this.engine.runEnded(runId).catch(() => undefined);
      if (stopped?.kind === 'cancelled' || (!stopped && runEnded)) {
        logger.info({ run: runEnded ?? Status.Cancelled }, 'stage stopped: its run ended');
        return { cancelled: true };
      }
      const info = errorInfo(error, stage, attempt, stopped);
      const final = error instanceof NonRetryableError || attempt >= (qjob.opts.attempts ?? 1);
      await this.engine.fail(jobId, info, final, error instanceof StageError ? error.partial : undefined);
      // A non-retryable error is an expected outcome with a clear message; a stack adds nothing for the operator.
      const detail = error instanceof NonRetryableError ? { reason: info.reason } : { err: error };
      logger[final ? 'error' : 'warn']({ ...detail, final }, `stage failed: ${info.message}`);
      if (final) throw new UnrecoverableError(info.message);
      throw error;
    } finally {
      clearTimeout(timer);
      clearInterval(beat);
      signal?.removeEventListener('abort', onWorkerAbort);
    }
  }
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    signal.addEventListener('abort', () => reject(new Error('stage aborted')), { once: true });
  });
}

function errorInfo(error: unknown, stage: Stage, attempt: number, stopped?: StopReason): ErrorInfo {
  if (stopped?.kind === 'timeout') {
    return {
      reason: 'timeout',
      message: `stage "${stage}" timed out after ${stopped.afterMs} ms`,
      stage,
      attempt,
    };
  }
  if (error instanceof StageError)
    return { reason: error.reason, message: error.message, stage, attempt, ...error.details };
  const message = error instanceof Error ? error.message : String(error);
  return { reason: 'error', message, stage, attempt };
}
