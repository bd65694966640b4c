// The validate Lambda's entry point (nodejs24.x). Locally, lambdas/local-runner.ts calls the same function.
import type { ValidateRequest, ValidateResult } from '../../contract/validate.ts';
import { METRIC } from '../../contract/metrics.ts';
import { lakeFromEnv } from '../common/lake-from-env.ts';
import { countMetric } from '../common/metrics.ts';
import { runValidate } from './validate.ts';

export async function handler(request: ValidateRequest): Promise<ValidateResult> {
  const result = await runValidate(request, { lake: lakeFromEnv(request.lakeRoot) });
  if (result.kind === 'done') {
    await countMetric(METRIC.recordsValid, result.valid, request.source);
    await countMetric(METRIC.recordsRejected, result.rejected, request.source);
  }
  return result;
}
