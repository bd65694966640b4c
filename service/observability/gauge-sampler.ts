import type { EntityManager, MikroORM } from '@mikro-orm/mysql';
import { Run } from '../state/entities/index.ts';
import { Status } from '../state/status.ts';
import type { StageQueues } from '../orchestration/queues.ts';
import type { Gauges, Metrics } from './metrics.ts';

const ACTIVE = [Status.Pending, Status.Running];

/**
 * Samples what CloudWatch cannot scrape: active runs, the age of the oldest one (the "run past its deadline"
 * alarm), and the jobs waiting in each stage queue (what the worker service scales on). The scheduler role
 * pushes a sample as EMF on an interval; Prometheus computes the same figures on each scrape.
 */
export class GaugeSampler {
  private readonly orm: MikroORM;
  private readonly queues: Pick<StageQueues, 'depth'>;
  private readonly metrics: Pick<Metrics, 'gauges'>;

  constructor(deps: { orm: MikroORM; queues: Pick<StageQueues, 'depth'>; metrics: Pick<Metrics, 'gauges'> }) {
    this.orm = deps.orm;
    this.queues = deps.queues;
    this.metrics = deps.metrics;
  }

  async sample(now = new Date()): Promise<Gauges> {
    const em = this.orm.em.fork() as EntityManager;
    const [runsActive, oldest, depth] = await Promise.all([
      em.count(Run, { status: { $in: ACTIVE } }),
      em.findOne(Run, { status: { $in: ACTIVE } }, { orderBy: { id: 'asc' }, fields: ['createdAt'] }),
      this.queues.depth(),
    ]);
    const queueWaiting = Object.fromEntries(
      Object.entries(depth).map(([queue, counts]) => [
        queue,
        (counts.waiting ?? 0) + (counts.delayed ?? 0) + (counts.prioritized ?? 0),
      ]),
    );
    return {
      runsActive,
      oldestActiveRunAge: oldest ? Math.max(0, (now.getTime() - oldest.createdAt.getTime()) / 1000) : 0,
      queueWaiting,
    };
  }

  /** Samples and emits; the caller logs a failure (a metrics sink must never stop the scheduler). */
  async emit(): Promise<Gauges> {
    const sample = await this.sample();
    this.metrics.gauges(sample);
    return sample;
  }
}
