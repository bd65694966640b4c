/** Emits one CloudWatch metric as an EMF document. */
export type EmfEmitter = (
  dimensions: Record<string, string>,
  name: string,
  value: number,
  unit: 'Count' | 'Seconds',
) => Promise<void>;

/**
 * Loads aws-embedded-metrics only when EMF is turned on. The library starts resolving its environment as soon
 * as it is imported, and without an override that means probing the EC2 metadata endpoint; so the override
 * (stdout, which the ECS awslogs driver ships and CloudWatch turns into metrics) is set before the import.
 * An operator's own AWS_EMF_* variables win.
 */
export async function createEmfEmitter(namespace: string): Promise<EmfEmitter> {
  process.env.AWS_EMF_ENVIRONMENT ??= 'Local';
  process.env.AWS_EMF_NAMESPACE ??= namespace;
  process.env.AWS_EMF_SERVICE_NAME ??= 'afluente';
  const emf = await import('aws-embedded-metrics');
  return async (dimensions, name, value, unit) => {
    const metrics = emf.createMetricsLogger();
    metrics.setDimensions(dimensions);
    metrics.putMetric(
      name,
      value,
      unit === 'Count' ? emf.Unit.Count : emf.Unit.Seconds,
      emf.StorageResolution.Standard,
    );
    await metrics.flush();
  };
}
