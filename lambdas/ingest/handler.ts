// The ingest Lambda's entry point (nodejs24.x). Locally, lambdas/local-runner.ts calls the same function.
import type { IngestRequest, IngestResult } from '../../contract/ingest.ts';
import { lakeFromEnv } from '../common/lake-from-env.ts';
import { runIngest } from './ingest.ts';

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
  return runIngest(
    { ...request, limits: { ...request.limits, timeLimitMs } },
    { lake: lakeFromEnv(request.lakeRoot), startedAt },
  );
}
