// The validate Lambda's entry point (nodejs24.x). Locally, lambdas/local-runner.ts calls the same function.
import type { ValidateRequest, ValidateResult } from '../../contract/validate.ts';
import { lakeFromEnv } from '../common/lake-from-env.ts';
import { runValidate } from './validate.ts';

export async function handler(request: ValidateRequest): Promise<ValidateResult> {
  return runValidate(request, { lake: lakeFromEnv(request.lakeRoot) });
}
