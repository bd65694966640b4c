import type { EntityManager } from '@mikro-orm/mysql';
import pLimit from 'p-limit';
import type { Stage } from '../../contract/stages.ts';
import type { SparkJob } from '../../contract/steps.ts';
import { Job, Run } from '../state/entities/index.ts';
import { isTerminal } from '../state/status.ts';
import type { LiveCluster, LiveStep, StepControl, StepState } from '../steps/step-runner.ts';
import type { EngineResources } from './run-engine.ts';

export interface OrphanSweepOptions {
  /**
   * An orphan younger than this is left for a later sweep, and so is one whose job or run ended more recently:
   * the worker that ran it may still be stopping it.
   */
  graceMs: number;
  /**
   * Cancels and terminations in flight at once (an EMR cancel waits for CANCELLED).
   * @default 4
   */
  concurrency?: number;
}

export interface OrphanSweepReport {
  /** Steps the sweep cancelled that reached CANCELLED. */
  stepsCancelled: string[];
  /** Transient clusters the sweep terminated. */
  clustersTerminated: string[];
  /** Orphans left alone this time: inside the grace period. */
  deferred: number;
  /** Cancels and terminations that failed (each one logged); the next sweep tries again. */
  failed: number;
}

/** Why nobody owns a step or a cluster, and since when (the grace period counts from then). */
interface Orphan {
  why: string;
  since: Date;
}

const STAGE_OF: Record<SparkJob, Stage> = { split_tables: 'transform', load_warehouse: 'load' };

/**
 * Stops the step work no active run owns. The reconciler starts from MySQL (RUNNING jobs); this starts from
 * where the work runs (EMR, and the local pid files of Spark and embedded steps, through
 * {@link StepControl.listLive}) and finds what MySQL does not account for:
 * - a live step whose job is COMPLETED, FAILED or CANCELLED, whose run has ended, or whose job is not in MySQL
 *   at all (a lost row, another database) is cancelled;
 * - a run's transient cluster whose run has ended or is not in MySQL is terminated.
 *
 * A PENDING or RUNNING job owns its step: a job is RUNNING before its worker submits the step, and a job waiting
 * for a retry, or released by a worker that shut down, is reattached to its step by the next attempt. A run that
 * has not ended owns its cluster: it is RUNNING before its cluster is started, and a reopened run reuses it.
 * Nothing is stopped inside the grace period. Only what the runner lists is looked at: this deployment's
 * afluente steps and clusters, never the configured AFLUENTE_EMR_CLUSTER_ID as a cluster.
 */
export class OrphanSweep {
  readonly #res: Pick<EngineResources, 'orm' | 'logger' | 'metrics'>;
  readonly #runner: StepControl;
  readonly #graceMs: number;
  readonly #concurrency: number;
  #inFlight: Promise<OrphanSweepReport> | undefined;

  constructor(
    res: Pick<EngineResources, 'orm' | 'logger' | 'metrics'>,
    runner: StepControl,
    options: OrphanSweepOptions,
  ) {
    this.#res = res;
    this.#runner = runner;
    this.#graceMs = options.graceMs;
    this.#concurrency = options.concurrency ?? 4;
  }

  /** One sweep; a call while one is in flight (a slow cancel) gets that one's report. */
  sweep(): Promise<OrphanSweepReport> {
    this.#inFlight ??= this.#sweep().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #sweep(): Promise<OrphanSweepReport> {
    // Listed before MySQL is read: a step submitted after the listing is not judged on older state.
    const live = await this.#runner.listLive();
    const em = this.#res.orm.em.fork() as EntityManager;
    const report: OrphanSweepReport = { stepsCancelled: [], clustersTerminated: [], deferred: 0, failed: 0 };
    const now = Date.now();
    const due = <T>(orphan: Orphan | undefined, item: T): [T, Orphan][] => {
      if (!orphan) return [];
      if (now - orphan.since.getTime() >= this.#graceMs) return [[item, orphan]];
      report.deferred += 1;
      return [];
    };

    const runs = await this.#runs(em, live.clusters);
    const clusters = live.clusters.flatMap((c) => due(clusterOrphan(c, runs.get(c.runId)), c));
    await inPool(clusters, this.#concurrency, async ([cluster, orphan]) => {
      if (await this.#terminate(cluster, orphan)) report.clustersTerminated.push(cluster.clusterId);
      else report.failed += 1;
    });

    // A terminated cluster's steps end with it.
    const gone = new Set(report.clustersTerminated);
    const candidates = live.steps.filter((s) => !s.handle.clusterId || !gone.has(s.handle.clusterId));
    const jobs = await this.#jobs(em, candidates);
    const steps = candidates.flatMap((s) => due(stepOrphan(s, jobs.get(s.jobId)), s));
    await inPool(steps, this.#concurrency, async ([step, orphan]) => {
      const state = await this.#cancel(step, orphan);
      if (state === 'CANCELLED') report.stepsCancelled.push(step.handle.stepId);
      else if (state === undefined) report.failed += 1;
    });
    return report;
  }

  async #jobs(em: EntityManager, steps: LiveStep[]): Promise<Map<number, Job>> {
    const ids = [...new Set(steps.map((s) => s.jobId))];
    if (ids.length === 0) return new Map();
    const jobs = await em.find(Job, { id: { $in: ids } }, { populate: ['run'] });
    return new Map(jobs.map((job) => [job.id, job]));
  }

  async #runs(em: EntityManager, clusters: LiveCluster[]): Promise<Map<number, Run>> {
    const ids = [...new Set(clusters.map((c) => c.runId))];
    if (ids.length === 0) return new Map();
    const runs = await em.find(Run, { id: { $in: ids } });
    return new Map(runs.map((run) => [run.id, run]));
  }

  /** Cancels the step; the state it ended in, or undefined if the cancel failed. */
  async #cancel(step: LiveStep, orphan: Orphan): Promise<StepState | undefined> {
    const { stepId, clusterId } = step.handle;
    const where = { runId: step.runId, jobId: step.jobId, step: stepId, name: step.name, clusterId };
    try {
      const { state } = await this.#runner.cancel(step.handle);
      if (state === 'CANCELLED') this.#res.metrics.orphanStopped('step');
      this.#res.logger.warn(
        { ...where, why: orphan.why, state },
        state === 'CANCELLED'
          ? 'cancelled an orphaned step'
          : 'an orphaned step ended before its cancel took effect',
      );
      return state;
    } catch (error) {
      this.#res.logger.warn({ ...where, why: orphan.why, err: error }, 'could not cancel an orphaned step');
      return undefined;
    }
  }

  async #terminate(cluster: LiveCluster, orphan: Orphan): Promise<boolean> {
    const where = { runId: cluster.runId, clusterId: cluster.clusterId, why: orphan.why };
    try {
      await this.#runner.terminateCluster(cluster.clusterId);
      this.#res.metrics.orphanStopped('cluster');
      this.#res.logger.warn(where, 'terminated an orphaned EMR cluster');
      return true;
    } catch (error) {
      this.#res.logger.warn({ ...where, err: error }, 'could not terminate an orphaned EMR cluster');
      return false;
    }
  }
}

/** Why no active job owns the step, or undefined when one does. */
function stepOrphan(step: LiveStep, job: Job | undefined): Orphan | undefined {
  if (!job || job.run.id !== step.runId || job.stage !== STAGE_OF[step.job]) {
    return {
      why: `no ${STAGE_OF[step.job]} job ${step.jobId} of run ${step.runId} in MySQL`,
      since: step.createdAt,
    };
  }
  if (isTerminal(job.run.status)) {
    return { why: `its run is ${job.run.status}`, since: latest(step.createdAt, job.run.finishedAt) };
  }
  if (isTerminal(job.status)) {
    return { why: `its job is ${job.status}`, since: latest(step.createdAt, job.finishedAt) };
  }
  return undefined;
}

/** Why no active run owns the cluster, or undefined when its run does. */
function clusterOrphan(cluster: LiveCluster, run: Run | undefined): Orphan | undefined {
  if (!run) return { why: `no run ${cluster.runId} in MySQL`, since: cluster.createdAt };
  if (isTerminal(run.status)) {
    return { why: `its run is ${run.status}`, since: latest(cluster.createdAt, run.finishedAt) };
  }
  return undefined;
}

function latest(a: Date, b: Date | null | undefined): Date {
  return b && b > a ? b : a;
}

/** Runs `task` over `items`, at most `limit` at once. */
async function inPool<T>(items: T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  const pool = pLimit(limit);
  await Promise.all(items.map((item) => pool(() => task(item))));
}
