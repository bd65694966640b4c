import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { METRIC, type MetricName } from '../../contract/metrics.ts';
import type { Stage } from '../../contract/stages.ts';
import type { EmfEmitter } from '../../lib/metrics/emf.ts';
import type { Logger } from './logger.ts';

export interface MetricsOptions {
  /** Also emit the run and stage metrics as CloudWatch EMF (see {@link createEmfEmitter}). @default undefined */
  emf?: EmfEmitter;
  /** Collect Node's process metrics (event loop, heap) too. @default true */
  processMetrics?: boolean;
}

type Outcome = 'completed' | 'failed' | 'cancelled';

const FINISHED: Record<Outcome, MetricName> = {
  completed: METRIC.runsCompleted,
  failed: METRIC.runsFailed,
  cancelled: METRIC.runsCancelled,
};
/** The stages that run as Spark steps (EMR on AWS): their failed attempts are step failures. */
const STEP_STAGES: ReadonlySet<Stage> = new Set(['transform', 'load']);

/** What the scheduler samples periodically for CloudWatch (Prometheus computes the same on scrape). */
export interface Gauges {
  runsActive: number;
  /** Seconds; 0 when no run is active. */
  oldestActiveRunAge: number;
  /** Waiting jobs per stage queue. */
  queueWaiting: Record<string, number>;
}

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
  private readonly orphansStopped: Counter<'kind'>;
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
    this.orphansStopped = new Counter({
      name: 'afluente_orphans_stopped_total',
      help: 'Spark steps cancelled and EMR clusters terminated by the orphan sweep: no active run owned them.',
      labelNames: ['kind'],
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
    this.emf(METRIC.runsCreated, 1, 'Count', source);
  }

  /** A run reached a final status; a completed one reports the rows its load committed. */
  runFinished(source: string, status: Outcome, rowsLoaded?: number): void {
    this.runsFinished.inc({ source, status });
    this.emf(FINISHED[status], 1, 'Count', source);
    if (rowsLoaded !== undefined) this.emf(METRIC.rowsLoaded, rowsLoaded, 'Count', source);
  }

  stageFinished(source: string, stage: Stage, status: Outcome, job: { startedAt?: Date | null }): void {
    if (!job.startedAt) return;
    const seconds = (Date.now() - job.startedAt.getTime()) / 1000;
    this.stageDuration.observe({ source, stage, status }, seconds);
    this.emf(METRIC.stageDuration, seconds, 'Seconds', stage);
  }

  /** An attempt of a stage failed, final or not; for a Spark stage that is a failed step. */
  attemptFailed(stage: Stage): void {
    if (STEP_STAGES.has(stage)) this.emf(METRIC.stepsFailed, 1, 'Count', stage);
  }

  /** The orphan sweep cancelled a step or terminated a cluster (Prometheus only). */
  orphanStopped(kind: 'step' | 'cluster'): void {
    this.orphansStopped.inc({ kind });
  }

  /** CloudWatch has no scrape, so the scheduler pushes these samples as EMF. */
  gauges(sample: Gauges): void {
    this.emf(METRIC.runsActive, sample.runsActive, 'Count');
    this.emf(METRIC.oldestActiveRunAge, sample.oldestActiveRunAge, 'Seconds');
    // The total (what the worker service scales on) is one sample; each queue is its own drill-down.
    const queues = Object.entries(sample.queueWaiting);
    this.emf(METRIC.queueWaiting, sum(queues.map(([, n]) => n)), 'Count');
    for (const [queue, n] of queues) this.emf(METRIC.queueWaiting, n, 'Count', queue, false);
  }

  // EMF is fire-and-forget: a metrics sink must never fail a run.
  private emf(
    name: MetricName,
    value: number,
    unit: 'Count' | 'Seconds',
    dimension?: string,
    aggregate = true,
  ): void {
    this.options.emf?.(name, value, unit, dimension, aggregate).catch((error: unknown) => {
      this.logger.warn({ err: error }, 'could not emit EMF metrics');
    });
  }
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
