import { UniqueConstraintViolationException, type EntityManager } from '@mikro-orm/mysql';
import { createHash } from 'node:crypto';
import type { Engine } from '../../contract/source-config.ts';
import { STAGES, type Stage } from '../../contract/stages.ts';
import { BadRequestError, ConflictError, NotFoundError, UnprocessableError } from '../errors.ts';
import { QUEUE_WAIT_MS, queueCommitted } from '../orchestration/dispatcher.ts';
import type { StageQueues } from '../orchestration/queues.ts';
import {
  dispatchOf,
  retryOnConflict,
  type EngineResources,
  type RunEngine,
} from '../orchestration/run-engine.ts';
import { Job, Run, type RunParams } from '../state/entities/index.ts';
import { Status, Trigger, isTerminal } from '../state/status.ts';
import { reopenRun, transitionJob, transitionRun } from '../state/transitions.ts';
import type { StepControl } from '../steps/step-runner.ts';
import { STEP_STAGES } from '../orchestration/reconciler.ts';
import type { LoadedSource } from '../config/sources.ts';
import type { Admission } from './admission.ts';
import { createFirstJob, planReplay, type ReplayFrom } from './replay.ts';
import {
  RunReads,
  type JobFields,
  type LakeFileFields,
  type ReadsSchema,
  type RunFields,
  type SourceDriftRow,
} from './run-reads.ts';

export interface CreateRunInput {
  source: string;
  params?: { from?: string; to?: string; cursor?: string };
  /** The engine of the run's transform and load, over the source's `engine`; stored as `params.engine`. */
  engine?: Engine;
  /** A replay: a new run that starts at `stage`, on the lake files run `run` committed before it. */
  from?: ReplayFrom;
  trigger?: Trigger;
}

/** What the run service needs to know of a source. */
export type SourceLimits = Pick<LoadedSource, 'window'>;

export interface ListRunsQuery {
  source?: string;
  status?: Status;
  limit: number;
  cursor?: string;
}

export interface RunDetail {
  run: RunFields;
  jobs: JobFields[];
  files: LakeFileFields[];
}

/** The run operations behind the HTTP API and the scheduler. */
export class RunService {
  private readonly res: EngineResources;
  private readonly engine: RunEngine;
  private readonly queues: StageQueues;
  private readonly sources: () => ReadonlyMap<string, SourceLimits>;
  private readonly steps?: StepControl;
  private readonly admission: Admission;
  /** The API's reads: plain rows on the ORM's pool, no entities (see run-reads.ts). */
  private readonly reads: RunReads;

  constructor(
    res: EngineResources,
    deps: {
      engine: RunEngine;
      queues: StageQueues;
      sources: () => ReadonlyMap<string, SourceLimits>;
      /** Cancels the Spark step of a cancelled run's running job, even when no worker is left to do it. */
      steps?: StepControl;
      /** Each source's `maxActiveRuns`: a run past it waits or is refused. */
      admission: Admission;
    },
  ) {
    this.res = res;
    this.engine = deps.engine;
    this.queues = deps.queues;
    this.sources = deps.sources;
    this.steps = deps.steps;
    this.admission = deps.admission;
    this.reads = new RunReads(res.orm.em.getKysely<ReadsSchema>());
  }

  private em(): EntityManager {
    return this.res.orm.em.fork();
  }

  /**
   * Creates a run with its plan and its first job, then queues that job. With an idempotency key, a retry
   * of the same request returns the run the first one created; the same key on a different request is an error.
   * Past the source's `maxActiveRuns`, the run waits without a job (`queuedBehind` names the active runs) or,
   * with `onActiveRun: reject`, nothing is created and a 409 names them. While Redis is known to be down nothing
   * is created either, and a 503 names it: the client retries. If Redis goes between the commit and the queueing,
   * the run is returned all the same, and the dispatcher queues its first stage once Redis is back.
   */
  async create(
    input: CreateRunInput,
    idempotencyKey?: string,
  ): Promise<{ run: Run; replayed: boolean; queuedBehind?: number[] }> {
    const source = this.sources().get(input.source);
    if (!source) throw new BadRequestError(`unknown source "${input.source}"`);
    const asked = toRunParams(input.params);
    if (asked?.window && !source.window)
      throw new BadRequestError(
        `body.params: source "${input.source}" has no \`window\` in its config, so a window (from/to) cannot be sent to its API`,
      );
    if (input.from && asked)
      throw new BadRequestError(
        'body.params cannot be given with body.from: a replay reads the lake files of the run it replays, not the API',
      );
    const params = withEngine(asked, input.engine);
    const requestHash = idempotencyKey ? hashRequest(input) : null;
    if (idempotencyKey) {
      const existing = await this.findByKey(idempotencyKey, requestHash);
      if (existing) return { run: existing, replayed: true };
    }

    const replay = input.from ? await planReplay(this.em(), input.source, input.from) : undefined;
    const plan: Stage[] = replay ? replay.plan : [...STAGES];
    const limit = this.admission.limit(input.source);
    let created: { run: Run; job: Job | null; queuedBehind: number[] };
    try {
      created = await this.em().transactional(async (em) => {
        await this.admission.lock(em, input.source);
        const active = await this.admission.active(em, input.source);
        const full = active.length >= limit.maxActiveRuns;
        if (full && limit.onActiveRun === 'reject')
          throw this.admission.full(
            input.source,
            active,
            'its onActiveRun is "reject", so no run was created',
          );
        this.res.dependencies.require('redis', NOT_QUEUED);
        const run = em.create(Run, {
          source: input.source,
          trigger: input.trigger ?? (replay ? Trigger.Replay : Trigger.Manual),
          plan,
          params,
          idempotencyKey: idempotencyKey ?? null,
          requestHash,
          replayOf: replay ? em.getReference(Run, replay.of.id) : null,
        });
        await em.flush();
        // Past the limit the run waits without a job; Admission.admit gives it one when a slot frees.
        const job = full ? null : await createFirstJob(this.engine, em, run);
        await em.flush();
        return { run, job, queuedBehind: full ? active.map((r) => r.id) : [] };
      });
    } catch (error) {
      // Two requests with one key raced; the loser answers with the winner's run.
      if (idempotencyKey && error instanceof UniqueConstraintViolationException) {
        const existing = await this.findByKey(idempotencyKey, requestHash);
        if (existing) return { run: existing, replayed: true };
      }
      throw error;
    }
    this.res.metrics.runCreated(created.run.source, created.run.trigger);
    if (!created.job) return { run: created.run, replayed: false, queuedBehind: created.queuedBehind };
    // The run is committed: if Redis went meanwhile, the dispatcher queues its first stage once it is back.
    await queueCommitted(this.res, this.queues, dispatchOf(created.job));
    return { run: created.run, replayed: false };
  }

  /** For a run still waiting for a slot (PENDING, no job yet): the active runs it waits behind. */
  async queuedBehind(run: RunFields, jobs: JobFields[]): Promise<number[] | undefined> {
    if (run.status !== Status.Pending || jobs.length > 0) return undefined;
    const active = await this.admission.active(this.em(), run.source, run.id);
    return active.map((r) => r.id);
  }

  async list(query: ListRunsQuery): Promise<{ items: RunFields[]; nextCursor: string | null }> {
    const before = query.cursor === undefined ? undefined : decodeCursor(query.cursor);
    const items = await this.reads.runs({
      source: query.source,
      status: query.status,
      before,
      limit: query.limit + 1,
    });
    const more = items.length > query.limit;
    const page = more ? items.slice(0, query.limit) : items;
    const last = page.at(-1);
    return { items: page, nextCursor: more && last ? encodeCursor(last.id) : null };
  }

  async get(id: number): Promise<RunDetail> {
    const { run, jobs, files } = await this.reads.runDetail(id);
    if (!run) throw new NotFoundError(`run ${id} not found`);
    return { run, jobs, files };
  }

  async recentForSource(source: string, limit: number): Promise<RunFields[]> {
    return this.reads.runs({ source, limit });
  }

  /** The validate metrics, with its drift, of the source's latest run whose validate stage counted drift. */
  async latestDrift(source: string): Promise<SourceDriftRow | undefined> {
    return this.reads.latestDrift(source);
  }

  /** Cancels a run that has not finished: its open jobs are cancelled, queued ones removed, running ones told to stop. */
  async cancel(id: number, by: string, reason?: string): Promise<Run> {
    const { run, jobs, steps } = await retryOnConflict(() =>
      this.em().transactional(async (em) => {
        const run = await em.findOne(Run, id);
        if (!run) throw new NotFoundError(`run ${id} not found`);
        if (isTerminal(run.status))
          throw new ConflictError(`run ${id} is already ${run.status} and cannot be cancelled`);
        const open = await em.find(Job, { run, status: { $in: [Status.Pending, Status.Running] } });
        const steps = open
          .filter((j) => j.status === Status.Running && j.externalId && STEP_STAGES.has(j.stage))
          .map((j) => ({
            jobId: j.id,
            handle: { stepId: j.externalId as string, clusterId: run.clusterId ?? undefined },
          }));
        transitionRun(run, Status.Cancelled);
        run.cancelledBy = by;
        run.error = { reason: 'cancelled', message: `cancelled by ${by}${reason ? `: ${reason}` : ''}` };
        for (const job of open) transitionJob(job, Status.Cancelled);
        return { run, jobs: open, steps };
      }),
    );
    // The job's worker cancels its step within a heartbeat; this does it too, for a step whose worker is gone.
    // In the background: confirming an EMR step reached CANCELLED can take minutes.
    for (const { jobId, handle } of steps) {
      void this.steps
        ?.cancel(handle)
        .then(async (status) => {
          // The job says whether its step really stopped (CANCELLED), or had already ended another way.
          await this.engine.recordStepCancel(jobId, status.state);
          this.res.logger.info({ runId: id, step: handle.stepId, state: status.state }, 'cancelled a step');
        })
        .catch((error: unknown) =>
          this.res.logger.warn({ err: error, runId: id, step: handle.stepId }, 'could not cancel a step'),
        );
    }
    this.res.metrics.runFinished(run.source, 'cancelled');
    // A freed slot goes to the source's next waiting run.
    await this.admission.admit(run.source).catch((error: unknown) => {
      this.res.dependencies.failed(error, 'could not admit waiting runs', {
        bindings: { source: run.source },
      });
    });
    // Tidying only: a worker that takes a cancelled job skips it, so without Redis the cancel holds all the same.
    for (const job of jobs) {
      if (this.res.dependencies.isDown('redis')) break;
      await this.queues.removeIfQueued(job.stage, job.queueJobId, QUEUE_WAIT_MS).catch((error: unknown) => {
        this.res.dependencies.failed(error, 'could not remove a cancelled job from its queue', {
          bindings: { jobId: job.id },
        });
      });
    }
    return run;
  }

  /**
   * Resumes a FAILED run from its failed stage, as a new attempt of the same run: the new job reads the inputs
   * and params the failed one had (the files earlier stages committed to the lake), so nothing upstream runs
   * again. Jobs of every attempt are kept (`runAttempt`), which is the run's attempt history. A retry takes a
   * slot under the source's maxActiveRuns like any run, and is refused with 409 when none is free. An `engine`
   * becomes the run's `params.engine`, for the retried stage and the ones after it; `acceptKeyChange` its
   * `params.acceptKeyChange` (the load then goes ahead with a key change it would refuse). While Redis is known
   * to be down the run is left as it was and a 503 names Redis, as for {@link create}.
   */
  async retry(
    id: number,
    by: string,
    engine?: Engine,
    options: { acceptKeyChange?: boolean } = {},
  ): Promise<Run> {
    const source = (await this.em().findOne(Run, id, { fields: ['source'] }))?.source;
    if (!source) throw new NotFoundError(`run ${id} not found`);
    const { run, job } = await retryOnConflict(() =>
      this.em().transactional(async (em) => {
        await this.admission.lock(em, source);
        const run = await em.findOneOrFail(Run, id, { refresh: true });
        if (run.status !== Status.Failed)
          throw new ConflictError(`run ${id} is ${run.status}: only a FAILED run can be retried`);
        const failed = await em.findOne(
          Job,
          { run, runAttempt: run.attempt, status: Status.Failed },
          { orderBy: { id: 'desc' }, populate: ['inputs'] },
        );
        if (!failed)
          throw new ConflictError(`run ${id} has no failed stage in attempt ${run.attempt} to resume`);
        const active = await this.admission.active(em, source, id);
        const { maxActiveRuns } = this.admission.limit(source);
        if (active.length >= maxActiveRuns)
          throw this.admission.full(source, active, 'retry when one has finished');
        this.res.dependencies.require('redis', `run ${id} was not retried; retry the request later`);
        reopenRun(run);
        run.attempt += 1;
        run.error = null;
        if (engine) run.params = withEngine(run.params ?? null, engine);
        if (options.acceptKeyChange !== undefined)
          run.params = withKeyChange(run.params ?? null, options.acceptKeyChange);
        resetStageCounts(run, failed.stage);
        const job = this.engine.createJob(em, run, failed.stage);
        job.params = failed.params;
        job.inputs.set(failed.inputs.getItems());
        await em.flush();
        return { run, job };
      }),
    );
    this.res.logger.info(
      { runId: id, attempt: run.attempt, stage: job.stage, by, engine, ...options },
      'retrying a failed run from its failed stage',
    );
    await queueCommitted(this.res, this.queues, dispatchOf(job));
    return run;
  }

  private async findByKey(key: string, requestHash: string | null): Promise<Run | null> {
    const existing = await this.em().findOne(Run, { idempotencyKey: key });
    if (existing && existing.requestHash !== requestHash) {
      throw new UnprocessableError(
        `Idempotency-Key "${key}" was already used for a different request (run ${existing.id}); use a new key`,
      );
    }
    return existing;
  }
}

/** What a 503 from POST /runs tells the client: nothing was written, and a retry is safe. */
const NOT_QUEUED =
  'no run was created; retry the request (with the same Idempotency-Key it returns one run however often it is sent)';

/** What the retried stage will count again: its earlier, partial counts must not be added twice. */
function resetStageCounts(run: Run, stage: Stage): void {
  switch (stage) {
    case 'ingest':
      run.fetched = null;
      run.nextCursor = null;
      return;
    case 'validate':
      run.valid = null;
      run.rejected = null;
      return;
    case 'transform':
      run.duplicates = null;
      return;
    case 'load':
      run.rows = null;
      return;
  }
}

function toRunParams(params: CreateRunInput['params']): RunParams | null {
  if (!params) return null;
  const out: RunParams = {};
  if (params.from || params.to) {
    const from = params.from ? new Date(params.from) : undefined;
    const to = params.to ? new Date(params.to) : undefined;
    if (from && to && from >= to) throw new BadRequestError('body.params.from must be before body.params.to');
    out.window = {
      ...(from ? { from: from.toISOString() } : {}),
      ...(to ? { to: to.toISOString() } : {}),
    };
  }
  if (params.cursor !== undefined) {
    if (out.window)
      throw new BadRequestError(
        'body.params.cursor cannot be given with a window (from/to): a run with a window neither sends nor moves the cursor',
      );
    out.cursor = params.cursor;
  }
  return Object.keys(out).length > 0 ? out : null;
}

/** The run's params accepting a key change (service/schema/key-change.ts), or no longer. */
function withKeyChange(params: RunParams | null, accept: boolean): RunParams | null {
  const { acceptKeyChange: _was, ...rest } = params ?? {};
  const next = accept ? { ...rest, acceptKeyChange: true } : rest;
  return Object.keys(next).length > 0 ? next : null;
}

/** The run's params with the engine a caller asked for, if any. */
function withEngine(params: RunParams | null, engine: Engine | undefined): RunParams | null {
  return engine ? { ...params, engine } : params;
}

function hashRequest(input: CreateRunInput): string {
  // Fixed key order, so the same request with its fields in another order hashes the same.
  const { from = null, to = null, cursor = null } = input.params ?? {};
  const replay = input.from ? [input.from.run, input.from.stage] : null;
  // The engine only when asked for, so a request without one hashes as it did before engines existed.
  const engine = input.engine ? [input.engine] : [];
  const canonical = JSON.stringify([
    input.source,
    input.trigger ?? null,
    from,
    to,
    cursor,
    replay,
    ...engine,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}

// Cursors are opaque to clients so the keyset can change without breaking them.
function encodeCursor(id: number): string {
  return Buffer.from(JSON.stringify({ before: id })).toString('base64url');
}

function decodeCursor(cursor: string): number {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { before?: unknown };
    if (typeof parsed.before === 'number' && Number.isInteger(parsed.before) && parsed.before > 0)
      return parsed.before;
  } catch {
    // fall through to the error below
  }
  throw new BadRequestError('querystring.cursor is not a cursor returned by GET /runs');
}
