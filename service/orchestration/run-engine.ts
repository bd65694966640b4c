import { LockMode, OptimisticLockError, type EntityManager, type MikroORM } from '@mikro-orm/mysql';
import type { StepEngine } from '../../contract/source-config.ts';
import type { Stage } from '../../contract/stages.ts';
import type { Dependencies } from '../observability/dependencies.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { Job, LakeFile, Run, SourceState, type ErrorInfo } from '../state/entities/index.ts';
import { Status, isTerminal } from '../state/status.ts';
import { transitionJob, transitionRun } from '../state/transitions.ts';
import { queueJobId, type JobCatalog, type StageJobData } from './catalog.ts';
import type { OutputFile, StageOutcome } from './stage-handler.ts';

/** The small set of things the orchestration classes share. No DI framework: one object, passed in. */
export interface EngineResources {
  orm: MikroORM;
  catalog: JobCatalog;
  metrics: Metrics;
  logger: Logger;
  /** Whether MySQL and Redis are up; failures an outage explains are logged through it, once per outage. */
  dependencies: Dependencies;
}

/** A job that must be put on its queue once the transaction that created it has committed. */
export interface Dispatch {
  stage: Stage;
  data: StageJobData;
}

/** A job {@link RunEngine.expire} failed, with what the caller still has to clean up. */
export interface ExpiredJob {
  stage: Stage;
  /** What the job was before it failed: RUNNING (a worker holds it) or PENDING (waiting for a retry). */
  was: Status;
  /** Its BullMQ job, which a PENDING job still has in its queue. */
  queueJobId: string;
  /** The Lambda request id or the Spark step id it last recorded. */
  externalId: string | null;
  /** The run's EMR cluster, if any. */
  clusterId: string | null;
}

export type StartDecision =
  { action: 'run'; run: Run; job: Job } | { action: 'skip'; why: string; dispatch?: Dispatch };

/**
 * Retries a read-modify-write whose flush lost an optimistic-lock race. Each try reloads the rows, so the
 * second try decides on fresh state (for instance, a job cancelled meanwhile is no longer completed).
 */
export async function retryOnConflict<T>(fn: () => Promise<T>, tries = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (error) {
      if (!(error instanceof OptimisticLockError) || i >= tries) throw error;
    }
  }
}

/**
 * Moves runs and jobs through their lifecycle in MySQL. Each method is one transaction; queue side effects
 * are returned as {@link Dispatch}es for the caller to apply after commit, so MySQL stays the source of truth.
 */
export class RunEngine {
  private readonly res: EngineResources;
  /**
   * Told when a run of a source reaches a final status, so a run waiting for the source's slot is admitted
   * (Admission.admit). Set once by the orchestration plugin; the engine does not know the sources' limits.
   */
  onSlotFreed?: (source: string) => Promise<unknown>;

  constructor(res: EngineResources) {
    this.res = res;
  }

  private freeSlot(source: string): void {
    this.onSlotFreed?.(source).catch((error: unknown) => {
      this.res.dependencies.failed(error, 'could not admit waiting runs', { bindings: { source } });
    });
  }

  private em(): EntityManager {
    return this.res.orm.em.fork();
  }

  /** Marks the job RUNNING (and its run, if it was PENDING), or says why the delivery must be skipped. */
  async start(jobId: number, attempt: number): Promise<StartDecision> {
    return retryOnConflict(() =>
      this.em().transactional(async (em): Promise<StartDecision> => {
        const job = await em.findOne(Job, jobId, { populate: ['run'] });
        if (!job) return { action: 'skip', why: `job ${jobId} does not exist` };
        const run = job.run;
        if (job.status === Status.Completed) {
          // A redelivery after the commit but before the next stage was queued: queue it now.
          const next = await this.nextPendingJob(em, run, job);
          return {
            action: 'skip',
            why: 'job already completed',
            dispatch: next ? dispatchOf(next) : undefined,
          };
        }
        if (isTerminal(job.status)) return { action: 'skip', why: `job is ${job.status}` };
        if (isTerminal(run.status)) {
          transitionJob(job, Status.Cancelled);
          return { action: 'skip', why: `run is ${run.status}` };
        }
        // RUNNING here means a worker died holding it and BullMQ redelivered it as stalled.
        if (job.status === Status.Pending) transitionJob(job, Status.Running);
        if (run.status === Status.Pending) transitionRun(run, Status.Running);
        job.attempt = attempt;
        job.heartbeatAt = new Date();
        job.error = null;
        run.stage = job.stage;
        return { action: 'run', run, job };
      }),
    );
  }

  /**
   * Records a stage's success and advances the run: the next stage's job is created in the same transaction,
   * or, when the plan is done, the run is COMPLETED. A result for a job that is no longer RUNNING (cancelled
   * meanwhile) is ignored.
   */
  async complete(jobId: number, outcome: StageOutcome): Promise<Dispatch | undefined> {
    const { dispatch, record } = await retryOnConflict(() =>
      this.em().transactional(async (em) => {
        const job = await em.findOneOrFail(Job, jobId, { populate: ['run'] });
        if (job.status !== Status.Running) {
          this.res.logger.warn(
            { jobId, status: job.status },
            'ignoring the result of a job that is no longer running',
          );
          return { dispatch: undefined, record: () => undefined };
        }
        const run = job.run;
        transitionJob(job, Status.Completed);
        job.metrics = { ...job.metrics, ...outcome.metrics, ...outcome.counts };
        addCounts(run, outcome);
        const files = await recordFiles(em, run, job, outcome.files ?? []);
        const stageDone = (): void => this.res.metrics.stageFinished(run.source, job.stage, 'completed', job);

        const nextStage = run.plan[run.plan.indexOf(job.stage) + 1];
        if (nextStage) {
          const next = this.createJob(em, run, nextStage);
          // Lineage: the next stage reads what this one committed (rejected records stop here).
          next.inputs.set(files.filter((f) => f.layer !== 'rejected'));
          if (outcome.nextParams) next.params = outcome.nextParams;
          await em.flush();
          return { dispatch: dispatchOf(next), record: stageDone };
        }
        transitionRun(run, Status.Completed);
        await advanceCursor(em, run);
        return {
          dispatch: undefined,
          record: () => {
            stageDone();
            const rows = Object.values(run.rows ?? {}).reduce((a, b) => a + b, 0);
            this.res.metrics.runFinished(run.source, 'completed', rows);
            this.freeSlot(run.source);
          },
        };
      }),
    );
    // Metrics count what committed, once, even if an optimistic-lock retry ran the transaction twice.
    record();
    return dispatch;
  }

  /**
   * Records a failed attempt. A final failure fails the job and its run with the error on both; otherwise the
   * job waits for BullMQ's retry as PENDING, with the error of the attempt kept on it.
   */
  async fail(jobId: number, error: ErrorInfo, final: boolean, partial?: StageOutcome): Promise<void> {
    const record = await retryOnConflict(() =>
      this.em().transactional(async (em): Promise<() => void> => {
        const job = await em.findOneOrFail(Job, jobId, { populate: ['run'] });
        if (job.status !== Status.Running) return () => undefined;
        job.error = error;
        const stage = job.stage;
        if (!final) {
          transitionJob(job, Status.Pending);
          return () => this.res.metrics.attemptFailed(stage);
        }
        if (partial) {
          job.metrics = { ...job.metrics, ...partial.metrics, ...partial.counts };
          addCounts(job.run, partial);
          await recordFiles(em, job.run, job, partial.files ?? []);
        }
        return this.failForGood(job, error, true);
      }),
    );
    record();
  }

  /**
   * Fails an open job for good, whatever attempts it has left, and its run with it: a stage past its deadline.
   * Unlike {@link fail}, it also takes a job that is PENDING between two attempts. A worker still running the job
   * stops at its next heartbeat, which reports the run FAILED, and records nothing more. Returns where the job's
   * queue entry and external work are, for the caller to remove and cancel, or undefined when the job or its run
   * had already finished. The error gets the job's stage and the attempt it was on.
   */
  async expire(jobId: number, why: Pick<ErrorInfo, 'reason' | 'message'>): Promise<ExpiredJob | undefined> {
    const { expired, record } = await retryOnConflict(() =>
      this.em().transactional(async (em) => {
        const job = await em.findOneOrFail(Job, jobId, { populate: ['run'] });
        const open = job.status === Status.Running || job.status === Status.Pending;
        if (!open || isTerminal(job.run.status)) return { expired: undefined, record: () => undefined };
        const expired: ExpiredJob = {
          stage: job.stage,
          was: job.status,
          queueJobId: job.queueJobId,
          externalId: job.externalId ?? null,
          clusterId: job.run.clusterId ?? null,
        };
        const error: ErrorInfo = { ...why, stage: job.stage, attempt: job.attempt };
        // A PENDING job's last attempt was counted when it failed; a RUNNING one's is cut off now.
        return { expired, record: this.failForGood(job, error, job.status === Status.Running) };
      }),
    );
    // Metrics count what committed, once, even if an optimistic-lock retry ran the transaction twice.
    record();
    return expired;
  }

  /** FAILED for the job, and for its run unless already final; returns the metrics to record after commit. */
  private failForGood(job: Job, error: ErrorInfo, attemptFailed: boolean): () => void {
    const run = job.run;
    transitionJob(job, Status.Failed);
    job.error = error;
    const runFailed = !isTerminal(run.status);
    if (runFailed) {
      transitionRun(run, Status.Failed);
      run.error = error;
    }
    return () => {
      if (attemptFailed) this.res.metrics.attemptFailed(job.stage);
      this.res.metrics.stageFinished(run.source, job.stage, 'failed', job);
      if (runFailed) this.res.metrics.runFinished(run.source, 'failed');
      if (runFailed) this.freeSlot(run.source);
    };
  }

  /**
   * Records on a job what cancelling its Spark step came to: CANCELLED when the step really stopped, or the
   * state it had already ended in. The job's status is not touched (it is CANCELLED or FAILED already).
   */
  async recordStepCancel(jobId: number, state: string): Promise<void> {
    await retryOnConflict(() =>
      this.em().transactional(async (em) => {
        const job = await em.findOneOrFail(Job, jobId);
        job.metrics = { ...job.metrics, stepCancel: { state, at: new Date().toISOString() } };
      }),
    );
  }

  /** Hands a job back (worker shutdown): it is PENDING again and the attempt does not count. */
  async release(jobId: number): Promise<void> {
    await retryOnConflict(() =>
      this.em().transactional(async (em) => {
        const job = await em.findOneOrFail(Job, jobId);
        if (job.status !== Status.Running) return;
        transitionJob(job, Status.Pending);
        job.attempt = Math.max(0, job.attempt - 1);
      }),
    );
  }

  /**
   * Stamps the job's heartbeat and reports its run's status, so a worker learns of a cancel within one beat.
   * A plain UPDATE: a heartbeat is not a state change and must not bump the optimistic-lock version.
   */
  async heartbeat(jobId: number, runId: number): Promise<Status | undefined> {
    const em = this.em();
    await em.nativeUpdate(Job, { id: jobId, status: Status.Running }, { heartbeatAt: new Date() });
    const run = await em.findOne(Run, runId, { fields: ['status'] });
    return run?.status;
  }

  /** The run's final status, or undefined while it has not ended. */
  async runEnded(runId: number): Promise<Status | undefined> {
    const run = await this.em().findOne(Run, runId, { fields: ['status'] });
    return run && isTerminal(run.status) ? run.status : undefined;
  }

  /**
   * Records where a running job's external work is (an EMR step id, the cluster) as soon as it is submitted,
   * so a restarted worker or the reconciler can find it. Plain UPDATEs: not a state change.
   */
  async attachExternal(jobId: number, runId: number, externalId: string, clusterId?: string): Promise<void> {
    // One transaction: a reader (the reconciler, GET /runs/:id) that sees the step must see its cluster too, or
    // it would look the step up on no cluster or on the run's previous one.
    await this.em().transactional(async (em) => {
      if (clusterId) await em.nativeUpdate(Run, { id: runId }, { clusterId });
      await em.nativeUpdate(Job, { id: jobId, status: Status.Running }, { externalId });
    });
  }

  /**
   * Records the engine a transform or load job runs on, and why, on the job and on its run (which shows its
   * latest step's). Plain UPDATEs, before the step starts: not a state change.
   */
  async recordEngine(
    jobId: number,
    runId: number,
    choice: { engine: StepEngine; reason: string },
  ): Promise<void> {
    const em = this.em();
    const recorded = { engine: choice.engine, engineReason: choice.reason.slice(0, 255) };
    await em.nativeUpdate(Job, { id: jobId, status: Status.Running }, recorded);
    await em.nativeUpdate(Run, { id: runId }, recorded);
  }

  /** The EMR cluster recorded on the run, if any. */
  async clusterOf(runId: number): Promise<string | null> {
    const run = await this.em().findOne(Run, runId, { fields: ['clusterId'] });
    return run?.clusterId ?? null;
  }

  /** Creates the next job of a run as PENDING; the caller flushes. */
  createJob(em: EntityManager, run: Run, stage: Stage): Job {
    const entry = this.res.catalog[stage];
    return em.create(Job, {
      run,
      stage,
      runAttempt: run.attempt,
      maxAttempts: entry.attempts,
      queueJobId: queueJobId(run.id, stage, run.attempt),
    });
  }

  private async nextPendingJob(em: EntityManager, run: Run, job: Job): Promise<Job | null> {
    const nextStage = run.plan[run.plan.indexOf(job.stage) + 1];
    if (!nextStage) return null;
    return em.findOne(Job, { run, stage: nextStage, runAttempt: run.attempt, status: Status.Pending });
  }
}

export function dispatchOf(job: Job): Dispatch {
  return { stage: job.stage, data: { runId: job.run.id, jobId: job.id, runAttempt: job.runAttempt } };
}

/**
 * Records a stage's lake files in the transaction that completes it. Keys are deterministic, so a retried stage
 * finds its earlier rows by URI and updates them instead of adding duplicates.
 */
async function recordFiles(em: EntityManager, run: Run, job: Job, files: OutputFile[]): Promise<LakeFile[]> {
  if (files.length === 0) return [];
  const existing = await em.find(LakeFile, { uri: { $in: files.map((f) => f.uri) } });
  const byUri = new Map(existing.map((f) => [f.uri, f]));
  const rows: LakeFile[] = [];
  for (const file of files) {
    const data = {
      layer: file.layer,
      table: file.table ?? null,
      records: file.records ?? null,
      bytes: file.bytes,
      sha256: file.sha256 ?? null,
      run,
      producedBy: job,
    };
    const row = byUri.get(file.uri);
    if (row) em.assign(row, data);
    rows.push(row ?? em.create(LakeFile, { uri: file.uri, ...data }));
  }
  return rows;
}

/**
 * Moves the source's cursor to the one the run reached, in the transaction that marks the run COMPLETED, so the
 * cursor never runs ahead of the warehouse. It never moves backwards: a replay of an old window leaves it alone.
 */
async function advanceCursor(em: EntityManager, run: Run): Promise<void> {
  const next = run.nextCursor;
  if (next === null || next === undefined) return;
  const state = await em.findOne(SourceState, run.source, { lockMode: LockMode.PESSIMISTIC_WRITE });
  if (!state) {
    em.create(SourceState, { source: run.source, cursor: next, lastRunId: run.id });
    return;
  }
  if (state.cursor !== null && state.cursor !== undefined && !cursorAhead(next, state.cursor)) return;
  state.cursor = next;
  state.lastRunId = run.id;
}

/** Whether cursor `a` is past `b`: as numbers when both are, as instants when both are dates, else as text. */
export function cursorAhead(a: string, b: string): boolean {
  const [na, nb] = [Number(a), Number(b)];
  if (a.trim() !== '' && b.trim() !== '' && Number.isFinite(na) && Number.isFinite(nb)) return na > nb;
  const [da, db] = [Date.parse(a), Date.parse(b)];
  if (!Number.isNaN(da) && !Number.isNaN(db) && da !== db) return da > db;
  return a > b;
}

function addCounts(run: Run, outcome: StageOutcome): void {
  const { counts, rows } = outcome;
  if (counts?.fetched !== undefined) run.fetched = (run.fetched ?? 0) + counts.fetched;
  if (counts?.valid !== undefined) run.valid = (run.valid ?? 0) + counts.valid;
  if (counts?.rejected !== undefined) run.rejected = (run.rejected ?? 0) + counts.rejected;
  if (counts?.duplicates !== undefined) run.duplicates = counts.duplicates;
  if (outcome.cursor !== undefined) run.nextCursor = outcome.cursor;
  if (rows) run.rows = { ...run.rows, ...rows };
}
