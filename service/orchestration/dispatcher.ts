import type { EntityManager } from '@mikro-orm/mysql';
import { Job } from '../state/entities/index.ts';
import { Status } from '../state/status.ts';
import type { Admission } from '../runs/admission.ts';
import type { StageQueues } from './queues.ts';
import { dispatchOf, type EngineResources } from './run-engine.ts';

/**
 * MySQL is the outbox: a job is committed as PENDING first and queued after. If the queueing is lost (Redis
 * down during POST /runs, a crash between commit and add), this sweep queues it again. Adds are idempotent by
 * job id, and a worker skips a job MySQL no longer has as PENDING, so a sweep can never run a stage twice.
 */
export class Dispatcher {
  private readonly res: EngineResources;
  private readonly queues: StageQueues;
  private readonly admission?: Pick<Admission, 'admit' | 'waitingSources'>;

  constructor(
    res: EngineResources,
    queues: StageQueues,
    admission?: Pick<Admission, 'admit' | 'waitingSources'>,
  ) {
    this.res = res;
    this.queues = queues;
    this.admission = admission;
  }

  /** Queues PENDING jobs of live runs not touched for `olderThanMs`; returns how many it queued. */
  async sweep(olderThanMs: number, limit = 500): Promise<number> {
    const em = this.res.orm.em.fork() as EntityManager;
    const jobs = await em.find(
      Job,
      {
        status: Status.Pending,
        updatedAt: { $lt: new Date(Date.now() - olderThanMs) },
        run: { status: { $in: [Status.Pending, Status.Running] } },
      },
      { populate: ['run'], limit, orderBy: { id: 'asc' } },
    );
    for (const job of jobs) {
      const { stage, data } = dispatchOf(job);
      await this.queues.enqueue(stage, data);
    }
    if (jobs.length > 0) this.res.logger.info({ queued: jobs.length }, 'dispatcher queued pending jobs');
    // A slot freed while the instance that would have admitted the next run died: admit it now.
    for (const source of (await this.admission?.waitingSources()) ?? []) await this.admission?.admit(source);
    return jobs.length;
  }
}
