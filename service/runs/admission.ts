import { LockMode, type EntityManager } from '@mikro-orm/mysql';
import type { ActiveRunPolicy } from '../../contract/source-config.ts';
import { ConflictError } from '../errors.ts';
import type { StageQueues } from '../orchestration/queues.ts';
import { queueCommitted } from '../orchestration/dispatcher.ts';
import { dispatchOf, type EngineResources, type RunEngine } from '../orchestration/run-engine.ts';
import { Run, SourceState, type Job } from '../state/entities/index.ts';
import { createFirstJob } from './replay.ts';
import { Status } from '../state/status.ts';

/** A source's concurrency settings (`maxActiveRuns`, `onActiveRun` in the sources file). */
export interface RunLimit {
  maxActiveRuns: number;
  onActiveRun: ActiveRunPolicy;
}

const ACTIVE = [Status.Pending, Status.Running];

/**
 * Keeps each source within its `maxActiveRuns`. A run is *admitted* once it has its first job; a run created
 * past the limit under `onActiveRun: queue` waits, PENDING and without jobs, until a slot frees. Every decision
 * takes the source's row in `source_states` FOR UPDATE first, so two triggers, or a trigger and a finishing
 * run, on any instances, can never both take the last slot.
 */
export class Admission {
  private readonly res: EngineResources;
  private readonly engine: RunEngine;
  private readonly queues: StageQueues;
  private readonly limitOf: (source: string) => RunLimit | undefined;

  constructor(
    res: EngineResources,
    deps: { engine: RunEngine; queues: StageQueues; limitOf: (source: string) => RunLimit | undefined },
  ) {
    this.res = res;
    this.engine = deps.engine;
    this.queues = deps.queues;
    this.limitOf = deps.limitOf;
  }

  limit(source: string): RunLimit {
    return this.limitOf(source) ?? { maxActiveRuns: 1, onActiveRun: 'queue' };
  }

  /** Serializes admission decisions for one source until the transaction ends. */
  async lock(em: EntityManager, source: string): Promise<void> {
    // The row may not exist yet (a source that never completed a run). It is inserted outside the transaction,
    // in autocommit: an INSERT inside concurrent transactions would take gap locks that deadlock each other.
    await this.res.orm.em
      .fork()
      .execute('insert ignore into source_states (source, updated_at, version) values (?, now(3), 1)', [
        source,
      ]);
    await em.findOneOrFail(SourceState, source, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
  }

  /** The source's admitted runs that have not finished (call under {@link lock}). */
  async active(em: EntityManager, source: string, exceptRun?: number): Promise<Run[]> {
    return em.find(
      Run,
      {
        source,
        status: { $in: ACTIVE },
        jobs: { $some: {} },
        ...(exceptRun === undefined ? {} : { id: { $ne: exceptRun } }),
      },
      { orderBy: { id: 'asc' } },
    );
  }

  /** The 409 for a trigger or a retry that finds no free slot: it names the active runs, and what to do. */
  full(source: string, active: Run[], advice: string): ConflictError {
    const names = active.map((r) => `run ${r.id} (${r.status})`).join(', ');
    return new ConflictError(
      `source "${source}" already has ${active.length} active run(s), its maxActiveRuns: ${names}; ${advice}`,
    );
  }

  /**
   * Admits the source's waiting runs, oldest first, while slots are free, and queues their first stage.
   * Called whenever a run of the source finishes, and by the dispatcher's sweep as a safety net.
   */
  async admit(source: string): Promise<number[]> {
    const { maxActiveRuns } = this.limit(source);
    const admitted = await this.res.orm.em.fork().transactional(async (em) => {
      await this.lock(em, source);
      const free = maxActiveRuns - (await this.active(em, source)).length;
      if (free <= 0) return [];
      const waiting = await em.find(
        Run,
        { source, status: Status.Pending, jobs: { $none: {} } },
        { orderBy: { id: 'asc' }, limit: free },
      );
      const jobs: Job[] = [];
      for (const run of waiting) jobs.push(await createFirstJob(this.engine, em, run));
      await em.flush();
      return jobs;
    });
    // If Redis is away, the dispatcher queues the committed jobs later.
    for (const job of admitted) await queueCommitted(this.res, this.queues, dispatchOf(job));
    if (admitted.length > 0)
      this.res.logger.info({ source, runs: admitted.map((j) => j.run.id) }, 'admitted waiting runs');
    return admitted.map((j) => j.run.id);
  }

  /** Sources that have a run waiting for a slot (the dispatcher's safety net). */
  async waitingSources(): Promise<string[]> {
    const em = this.res.orm.em.fork();
    const runs = await em.find(
      Run,
      { status: Status.Pending, jobs: { $none: {} } },
      { fields: ['source'], orderBy: { id: 'asc' }, limit: 1000 },
    );
    return [...new Set(runs.map((r) => r.source))];
  }
}
