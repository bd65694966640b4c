import type { EntityManager } from '@mikro-orm/mysql';
import type { Stage } from '../../contract/stages.ts';
import { Job } from '../state/entities/index.ts';
import { Status } from '../state/status.ts';
import type { StepHandle, StepRunner, StepStatus } from '../steps/step-runner.ts';
import type { EngineResources, RunEngine } from './run-engine.ts';

export interface ReconcilerOptions {
  /** A RUNNING job whose last heartbeat is older than this has lost its worker for good and is failed. */
  heartbeatDeadlineMs: number;
}

export interface ReconcileReport {
  /** RUNNING jobs whose Spark step was looked up and polled. */
  polled: number;
  /** Jobs failed because their heartbeat lapsed past the deadline. */
  failed: number;
}

/** The stages whose external id is a Spark step (EMR step id, or a local step). */
export const STEP_STAGES: ReadonlySet<Stage> = new Set(['transform', 'load']);

/**
 * Keeps MySQL honest about work that runs outside the service. At start-up and then periodically, every
 * RUNNING job with an external Spark step is re-attached and polled, and what the step is doing is recorded on
 * the job. A job whose heartbeat has lapsed past the deadline has no worker left (BullMQ's stalled-job check
 * would have handed it to another one long before), so it is failed with a reason that says so, and its step is
 * cancelled: an orphaned run never leaves a step running on the cluster.
 */
export class Reconciler {
  private readonly res: EngineResources;
  private readonly engine: RunEngine;
  private readonly runner: StepRunner;
  private readonly options: ReconcilerOptions;

  constructor(
    res: EngineResources,
    deps: { engine: RunEngine; runner: StepRunner },
    options: ReconcilerOptions,
  ) {
    this.res = res;
    this.engine = deps.engine;
    this.runner = deps.runner;
    this.options = options;
  }

  async sweep(limit = 500): Promise<ReconcileReport> {
    const em = this.res.orm.em.fork() as EntityManager;
    const jobs = await em.find(
      Job,
      { status: Status.Running },
      { populate: ['run'], limit, orderBy: { id: 'asc' } },
    );
    const report: ReconcileReport = { polled: 0, failed: 0 };
    const now = Date.now();
    for (const job of jobs) {
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
    return report;
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
