import { METRIC_DIMENSIONS, type MetricName } from '../../contract/metrics.ts';

/**
 * Emits one CloudWatch metric as an EMF document. `dimension` is the value of the metric's drill-down
 * dimension (its source, stage or queue; see METRIC_DIMENSIONS). The aggregate (no dimensions) is emitted too
 * unless `aggregate` is false, for a sampled gauge whose total is emitted on its own.
 */
export type EmfEmitter = (
  name: MetricName,
  value: number,
  unit: 'Count' | 'Seconds',
  dimension?: string,
  aggregate?: boolean,
) => Promise<void>;

/**
 * Loads aws-embedded-metrics only when EMF is turned on. The library starts resolving its environment as soon
 * as it is imported, and without an override that means probing the EC2 metadata endpoint; so the override
 * (stdout, which the ECS awslogs driver and Lambda both ship to CloudWatch Logs, where it becomes metrics) is
 * set before the import. An operator's own AWS_EMF_* variables win.
 */
export async function createEmfEmitter(namespace: string): Promise<EmfEmitter> {
  process.env.AWS_EMF_ENVIRONMENT ??= 'Local';
  process.env.AWS_EMF_NAMESPACE ??= namespace;
  process.env.AWS_EMF_SERVICE_NAME ??= 'afluente';
  const emf = await import('aws-embedded-metrics');
  return async (name, value, unit, dimension, aggregate = true) => {
    const metrics = emf.createMetricsLogger();
    const key = METRIC_DIMENSIONS[name];
    // The empty set is the aggregate over every source, which alarms and the dashboard's totals read.
    const sets: Record<string, string>[] = aggregate ? [{}] : [];
    if (key && dimension !== undefined) sets.push({ [key]: dimension });
    metrics.setDimensions(sets);
    metrics.putMetric(
      name,
      value,
      unit === 'Count' ? emf.Unit.Count : emf.Unit.Seconds,
      emf.StorageResolution.Standard,
    );
    await metrics.flush();
  };
}
