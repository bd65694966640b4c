// The ingest Lambda's entry point (nodejs24.x). Locally, lambdas/local-runner.ts calls the same function.
import type { IngestRequest, IngestResult } from '../../contract/ingest.ts';
import { METRIC } from '../../contract/metrics.ts';
import { HandlerError } from '../common/errors.ts';
import { lakeFromEnv } from '../common/lake-from-env.ts';
import { countMetric } from '../common/metrics.ts';
import { runIngest } from './ingest.ts';
import { withSecretEnv } from './secret-env.ts';

/** The part of the Lambda context this handler reads. */
export interface LambdaContext {
  getRemainingTimeInMillis(): number;
}

export async function handler(request: IngestRequest, context?: LambdaContext): Promise<IngestResult> {
  const startedAt = Date.now();
  // On Lambda the platform's own limit wins over the configured one.
  const timeLimitMs = context
    ? Math.min(request.limits.timeLimitMs, context.getRemainingTimeInMillis())
    : request.limits.timeLimitMs;
  let env: NodeJS.ProcessEnv;
  try {
    env = await withSecretEnv(process.env);
  } catch (error) {
    if (error instanceof HandlerError) return { kind: 'failed', error: error.toFailure() };
    throw error;
  }
  const result = await runIngest(
    { ...request, limits: { ...request.limits, timeLimitMs } },
    { lake: lakeFromEnv(request.lakeRoot), startedAt, env },
  );
  // A result's `records` and `retries` count the whole stage so far; this invocation's share is what it added.
  if (result.kind !== 'failed') {
    const added = result.records - (request.continuation?.records ?? 0);
    await countMetric(METRIC.recordsIngested, added, request.source);
  }
  const retried = (result.retries ?? 0) - (request.continuation?.retries ?? 0);
  if (retried > 0) await countMetric(METRIC.pageRetries, retried, request.source);
  return result;
}
