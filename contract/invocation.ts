import type { IngestRequest, IngestResult, StageFailure } from './ingest.ts';
import type { ValidateRequest, ValidateResult } from './validate.ts';

/** The Lambda functions, and what each takes and returns. */
export interface Functions {
  ingest: { request: IngestRequest; result: IngestResult };
  validate: { request: ValidateRequest; result: ValidateResult };
}
export type FunctionName = keyof Functions;

/**
 * A function's outcome as it comes back to the service: on AWS through the async-invoke destinations and SQS,
 * locally straight from the child process. A `failure` is a crash or a timeout; a handled failure is a
 * `success` whose result says `failed`.
 */
export type InvocationEvent<F extends FunctionName = FunctionName> =
  | { invocationId: string; function: F; outcome: 'success'; result: Functions[F]['result'] }
  | { invocationId: string; function: F; outcome: 'failure'; error: StageFailure };
