import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Stage } from '../../contract/stages.ts';
import type { EmfEmitter } from './emf.ts';
import type { Logger } from './logger.ts';

export interface MetricsOptions {
  /** Also emit the run and stage metrics as CloudWatch EMF (see {@link createEmfEmitter}). @default undefined */
  emf?: EmfEmitter;
  /** Collect Node's process metrics (event loop, heap) too. @default true */
  processMetrics?: boolean;
}

type Outcome = 'completed' | 'failed' | 'cancelled';

/**
 * The service's metrics. Prometheus is scraped at /metrics; the same run and stage counters go to CloudWatch
 * as EMF when enabled. Each app gets its own registry so tests and several apps in one process don't collide.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly options: MetricsOptions;
  private readonly logger: Logger;
  private readonly runsCreated: Counter<'source' | 'trigger'>;
  private readonly runsFinished: Counter<'source' | 'status'>;
  private readonly stageDuration: Histogram<'source' | 'stage' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;

  constructor(options: MetricsOptions, logger: Logger) {
    this.options = options;
    this.logger = logger;
    const registers = [this.registry];
    this.runsCreated = new Counter({
      name: 'afluente_runs_created_total',
      help: 'Runs created, by source and trigger.',
      labelNames: ['source', 'trigger'],
      registers,
    });
    this.runsFinished = new Counter({
      name: 'afluente_runs_finished_total',
      help: 'Runs that reached a final status (completed, failed, cancelled), by source.',
      labelNames: ['source', 'status'],
      registers,
    });
    this.stageDuration = new Histogram({
      name: 'afluente_stage_duration_seconds',
      help: 'Wall time of a stage job from start to its final status.',
      labelNames: ['source', 'stage', 'status'],
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
      registers,
    });
    this.httpDuration = new Histogram({
      name: 'afluente_http_request_duration_seconds',
      help: 'HTTP request latency, by route template.',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    if (options.processMetrics ?? true)
      collectDefaultMetrics({ register: this.registry, prefix: 'afluente_' });
  }

  /** Reports queue depth on every scrape, from a function the queue layer provides. */
  queueDepth(read: () => Promise<Record<string, Record<string, number>>>): void {
    new Gauge({
      name: 'afluente_queue_jobs',
      help: 'Jobs in each stage queue, by state.',
      labelNames: ['queue', 'state'],
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const [queue, counts] of Object.entries(await read())) {
          for (const [state, n] of Object.entries(counts)) this.set({ queue, state }, n);
        }
      },
    });
  }

  runCreated(source: string, trigger: string): void {
    this.runsCreated.inc({ source, trigger });
    this.emf({ source }, 'RunsCreated', 1, 'Count');
  }

  runFinished(source: string, status: Outcome): void {
    this.runsFinished.inc({ source, status });
    const name =
      status === 'completed' ? 'RunsCompleted' : status === 'failed' ? 'RunsFailed' : 'RunsCancelled';
    this.emf({ source }, name, 1, 'Count');
  }

  stageFinished(source: string, stage: Stage, status: Outcome, job: { startedAt?: Date | null }): void {
    if (!job.startedAt) return;
    const seconds = (Date.now() - job.startedAt.getTime()) / 1000;
    this.stageDuration.observe({ source, stage, status }, seconds);
    this.emf({ source, stage }, 'StageDuration', seconds, 'Seconds');
  }

  // EMF is fire-and-forget: a metrics sink must never fail a run.
  private emf(
    dimensions: Record<string, string>,
    name: string,
    value: number,
    unit: 'Count' | 'Seconds',
  ): void {
    this.options.emf?.(dimensions, name, value, unit).catch((error: unknown) => {
      this.logger.warn({ err: error }, 'could not emit EMF metrics');
    });
  }
}
