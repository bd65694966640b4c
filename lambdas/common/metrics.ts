import { METRICS_NAMESPACE, type MetricName } from '../../contract/metrics.ts';
import { createEmfEmitter, type EmfEmitter } from '../../lib/metrics/emf.ts';

let emitter: Promise<EmfEmitter> | undefined;

/**
 * Emits a Count metric as EMF when AFLUENTE_METRICS_EMF is true (the CDK app sets it on the functions; Lambda
 * ships stdout to CloudWatch Logs, which turns the document into a metric). A metrics failure is logged and
 * swallowed: it must never fail an invocation whose data is already committed.
 */
export async function countMetric(
  name: MetricName,
  value: number,
  source: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  if (env.AFLUENTE_METRICS_EMF !== 'true') return;
  try {
    emitter ??= createEmfEmitter(env.AFLUENTE_METRICS_NAMESPACE ?? METRICS_NAMESPACE);
    await (
      await emitter
    )(name, value, 'Count', source);
  } catch (error) {
    console.error(`afluente: could not emit the ${name} metric: ${(error as Error).message}`);
  }
}
