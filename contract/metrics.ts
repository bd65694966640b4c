/**
 * The CloudWatch metrics afluente emits as EMF (embedded metric format), and the dimensions each one carries.
 * The service and the Lambdas emit them; the CDK app's dashboard and alarms read them. One home, so a rename
 * cannot leave a dashboard widget or an alarm pointing at a metric nobody emits.
 *
 * Every metric is emitted under two dimension sets: `[]` (the aggregate over all sources, which alarms and the
 * dashboard's totals use) and the set named in {@link METRIC_DIMENSIONS} (for drilling down).
 */
export const METRICS_NAMESPACE = 'Afluente';

export const METRIC = {
  /** Service: a run was created (HTTP or schedule). Count. */
  runsCreated: 'RunsCreated',
  /** Service: a run reached COMPLETED. Count. */
  runsCompleted: 'RunsCompleted',
  /** Service: a run reached FAILED. Count. */
  runsFailed: 'RunsFailed',
  /** Service: a run reached CANCELLED. Count. */
  runsCancelled: 'RunsCancelled',
  /** Service: a stage job's wall time, from start to its final status. Seconds. */
  stageDuration: 'StageDuration',
  /** Service: a Spark step (transform or load) that ended FAILED on EMR or locally. Count. */
  stepsFailed: 'StepsFailed',
  /** Service: rows a load committed to the warehouse, per run. Count. */
  rowsLoaded: 'RowsLoaded',
  /** Service (scheduler role, periodic): runs not yet in a final status. Count. */
  runsActive: 'RunsActive',
  /** Service (scheduler role, periodic): age of the oldest run not yet in a final status. Seconds. */
  oldestActiveRunAge: 'OldestActiveRunAge',
  /** Service (scheduler role, periodic): stage jobs waiting in the BullMQ queues (waiting + delayed + prioritized). Count. */
  queueWaiting: 'QueueWaiting',
  /** Ingest Lambda: records it wrote to raw parts in one invocation. Count. */
  recordsIngested: 'RecordsIngested',
  /** Ingest Lambda: page requests it retried in one invocation (a 429, a 5xx, a timeout). Count. */
  pageRetries: 'PageRetries',
  /** Validate Lambda: records that passed the schema in one invocation. Count. */
  recordsValid: 'RecordsValid',
  /** Validate Lambda: records rejected (written with their reasons) in one invocation. Count. */
  recordsRejected: 'RecordsRejected',
} as const;
export type MetricName = (typeof METRIC)[keyof typeof METRIC];

/** The drill-down dimension of each metric (besides the aggregate `[]`); `null` when it has none. */
export const METRIC_DIMENSIONS: Record<MetricName, 'Source' | 'Stage' | 'Queue' | null> = {
  RunsCreated: 'Source',
  RunsCompleted: 'Source',
  RunsFailed: 'Source',
  RunsCancelled: 'Source',
  StageDuration: 'Stage',
  StepsFailed: 'Stage',
  RowsLoaded: 'Source',
  RunsActive: null,
  OldestActiveRunAge: null,
  QueueWaiting: 'Queue',
  RecordsIngested: 'Source',
  PageRetries: 'Source',
  RecordsValid: 'Source',
  RecordsRejected: 'Source',
};
