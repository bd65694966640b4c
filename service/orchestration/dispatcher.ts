import type { EntityManager } from '@mikro-orm/mysql';
import { Job } from '../state/entities/index.ts';
import { Status } from '../state/status.ts';
import type { Admission } from '../runs/admission.ts';
import type { StageQueues } from './queues.ts';
import { dispatchOf, type Dispatch, type EngineResources } from './run-engine.ts';

/** How long a request waits for Redis to take a job it committed, before it answers and leaves it to the sweep. */
export const QUEUE_WAIT_MS = 1000;

/**
 * Queues a job just committed to MySQL for a caller that must answer promptly (a request, a freed slot): not at
 * all while Redis is known to be down, and waiting at most {@link QUEUE_WAIT_MS} otherwise. Whatever it leaves
 * unqueued, the dispatcher's sweep queues once Redis is back, and a job queued twice still runs once. Returns
 * whether the job was queued.
 */
export async function queueCommitted(
  res: EngineResources,
  queues: StageQueues,
  { stage, data }: Dispatch,
): Promise<boolean> {
  const where = { runId: data.runId, jobId: data.jobId, stage };
  if (res.dependencies.isDown('redis')) {
    res.logger.debug(where, 'Redis is down: the dispatcher will queue the job once it is back');
    return false;
  }
  try {
    await queues.enqueue(stage, data, QUEUE_WAIT_MS);
    return true;
  } catch (error) {
    res.dependencies.failed(error, 'could not queue a job; the dispatcher will', { bindings: where });
    return false;
  }
}

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
    // Without Redis there is nothing to queue to; the first sweep after it is back does the work.
    if (this.res.dependencies.isDown('redis')) return 0;
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
