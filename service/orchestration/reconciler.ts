import type { EntityManager } from '@mikro-orm/mysql';
import type { Stage } from '../../contract/stages.ts';
import { Job } from '../state/entities/index.ts';
import { Status, isTerminal } from '../state/status.ts';
import type { StepControl, StepHandle, StepStatus } from '../steps/step-runner.ts';
import type { StageQueues } from './queues.ts';
import type { EngineResources, RunEngine } from './run-engine.ts';

/** Seconds each stage may take from its first start (a source's `deadlineSeconds`). */
export type StageDeadlines = Readonly<Record<Stage, number>>;

export interface ReconcilerOptions {
  /** A RUNNING job whose last heartbeat is older than this has lost its worker for good and is failed. */
  heartbeatDeadlineMs: number;
  /**
   * A source's stage deadlines. A source it has none for (one removed from the sources file) has no deadline.
   * @default no deadlines
   */
  deadlinesOf?: (source: string) => StageDeadlines | undefined;
}

export interface ReconcileReport {
  /** RUNNING jobs whose Spark step was looked up and polled. */
  polled: number;
  /** Jobs failed because their heartbeat lapsed past the deadline. */
  failed: number;
  /** Jobs (RUNNING, or PENDING between attempts) failed because their stage passed its deadline. */
  expired: number;
}

/** The stages whose external id is a step (an EMR step id, a local Spark step, or an embedded one). */
export const STEP_STAGES: ReadonlySet<Stage> = new Set(['transform', 'load']);

/**
 * Keeps MySQL honest about work that runs outside the service. At start-up and then periodically, every
 * RUNNING job with an external Spark step is re-attached and polled, and what the step is doing is recorded on
 * the job. A job whose heartbeat has lapsed past the deadline has no worker left (BullMQ's stalled-job check
 * would have handed it to another one long before), so it is failed with a reason that says so, and its step is
 * cancelled: an orphaned run never leaves a step running on the cluster.
 *
 * It also enforces each source's stage deadlines: a stage still open (RUNNING, or PENDING waiting for a retry)
 * past `deadlineSeconds` from its first start fails its run (`deadline_exceeded`), whatever attempts it has left.
 * Its queued retry is removed, its Spark step cancelled, and a worker still running it stops at its next
 * heartbeat.
 */
export class Reconciler {
  private readonly res: EngineResources;
  private readonly engine: RunEngine;
  private readonly runner: StepControl;
  private readonly queues: StageQueues;
  private readonly options: ReconcilerOptions;

  constructor(
    res: EngineResources,
    deps: { engine: RunEngine; runner: StepControl; queues: StageQueues },
    options: ReconcilerOptions,
  ) {
    this.res = res;
    this.engine = deps.engine;
    this.runner = deps.runner;
    this.queues = deps.queues;
    this.options = options;
  }

  async sweep(limit = 500): Promise<ReconcileReport> {
    const em = this.res.orm.em.fork() as EntityManager;
    // A PENDING job that has started before waits for a retry, and its deadline still runs.
    const jobs = await em.find(
      Job,
      { $or: [{ status: Status.Running }, { status: Status.Pending, startedAt: { $ne: null } }] },
      { populate: ['run'], limit, orderBy: { id: 'asc' } },
    );
    const report: ReconcileReport = { polled: 0, failed: 0, expired: 0 };
    // Confirming an EMR step reached CANCELLED can take minutes: the other jobs don't wait for it.
    const cancels: Promise<void>[] = [];
    const now = Date.now();
    for (const job of jobs) {
      const due = this.dueAt(job);
      if (due && now > due.getTime()) {
        if (await this.expire(job, due, cancels)) report.expired += 1;
        continue;
      }
      if (job.status !== Status.Running) continue;
      const last = job.heartbeatAt ?? job.startedAt ?? job.updatedAt;
      const lapsed = now - last.getTime() > this.options.heartbeatDeadlineMs;
      let step: StepStatus | undefined;
      let handle: StepHandle | undefined;
      if (job.externalId && STEP_STAGES.has(job.stage)) {
        handle = { stepId: job.externalId, clusterId: job.run.clusterId ?? undefined };
        step = await this.poll(em, job, handle);
        report.polled += 1;
      }
      if (!lapsed) continue;
      if (handle && step && (step.state === 'PENDING' || step.state === 'RUNNING')) {
        step = await this.runner.cancel(handle).catch((error: unknown) => {
          this.res.logger.warn(
            { err: error, jobId: job.id, step: handle?.stepId },
            'could not cancel a step',
          );
          return step;
        });
      }
      const seconds = Math.round(this.options.heartbeatDeadlineMs / 1000);
      const stepNote = handle ? `; its step ${handle.stepId} is ${step?.state ?? 'unknown'}` : '';
      await this.engine.fail(
        job.id,
        {
          reason: 'heartbeat_lapsed',
          message:
            `no heartbeat from the worker running stage "${job.stage}" since ${last.toISOString()}, ` +
            `past the ${seconds} s deadline: the worker is gone${stepNote}`,
          stage: job.stage,
          attempt: job.attempt,
          logs: step?.logs,
        },
        true,
      );
      report.failed += 1;
      this.res.logger.warn(
        { jobId: job.id, runId: job.run.id, stage: job.stage },
        'failed a job whose heartbeat lapsed',
      );
    }
    await Promise.all(cancels);
    return report;
  }

  /** When the job's stage must have finished, or undefined when it has no deadline (not started, no config). */
  private dueAt(job: Job): Date | undefined {
    if (!job.startedAt || isTerminal(job.run.status)) return undefined;
    const seconds = this.options.deadlinesOf?.(job.run.source)?.[job.stage];
    return seconds === undefined ? undefined : new Date(job.startedAt.getTime() + seconds * 1000);
  }

  /**
   * Fails a job past its deadline through the engine (which frees the run's slot and counts it once), then
   * removes its queued retry and starts cancelling its Spark step. False when it had finished meanwhile.
   */
  private async expire(job: Job, due: Date, cancels: Promise<void>[]): Promise<boolean> {
    const started = job.startedAt as Date;
    const seconds = Math.round((due.getTime() - started.getTime()) / 1000);
    const expired = await this.engine.expire(job.id, {
      reason: 'deadline_exceeded',
      message:
        `stage "${job.stage}" passed its ${seconds} s deadline: it started at ${started.toISOString()} ` +
        `and had to finish by ${due.toISOString()}`,
    });
    if (!expired) return false;
    const log = { jobId: job.id, runId: job.run.id, stage: expired.stage, was: expired.was };
    this.res.logger.warn({ ...log, deadlineSeconds: seconds }, 'failed a stage past its deadline');
    // A job waiting for a retry still has its BullMQ job (delayed or waiting): that attempt must not come.
    await this.queues.removeIfQueued(expired.stage, expired.queueJobId).catch((error: unknown) => {
      this.res.logger.warn({ ...log, err: error }, 'could not remove an expired job from its queue');
    });
    // A PENDING job may have a step too: a worker that shut down leaves it running for the next one.
    if (expired.externalId && STEP_STAGES.has(expired.stage)) {
      const handle: StepHandle = { stepId: expired.externalId, clusterId: expired.clusterId ?? undefined };
      cancels.push(
        this.runner
          .cancel(handle)
          .then(async (status) => {
            // The job says whether its step really stopped (CANCELLED), or had already ended another way.
            await this.engine.recordStepCancel(job.id, status.state);
            this.res.logger.info({ ...log, step: handle.stepId, state: status.state }, 'cancelled a step');
          })
          .catch((error: unknown) => {
            this.res.logger.warn({ ...log, err: error, step: handle.stepId }, 'could not cancel a step');
          }),
      );
    }
    return true;
  }

  /** Looks the step up and records its state on the job (a plain UPDATE: not a state change of the job). */
  private async poll(em: EntityManager, job: Job, handle: StepHandle): Promise<StepStatus | undefined> {
    try {
      const step = await this.runner.status(handle);
      await em.nativeUpdate(
        Job,
        { id: job.id, status: Status.Running },
        {
          metrics: {
            ...job.metrics,
            step: {
              id: handle.stepId,
              state: step.state,
              checkedAt: new Date().toISOString(),
              message: step.message,
            },
          },
        },
      );
      return step;
    } catch (error) {
      this.res.logger.warn({ err: error, jobId: job.id, step: handle.stepId }, 'could not poll a step');
      return undefined;
    }
  }
}
