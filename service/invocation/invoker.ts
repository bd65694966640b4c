import type { FunctionName, Functions } from '../../contract/invocation.ts';

/**
 * Starts a Lambda function asynchronously. The result does not come back from `invoke`: it arrives later as an
 * InvocationEvent (on AWS through the async-invoke destinations and SQS), which `InvocationEvents` hands to
 * whichever worker waits for it.
 */
export interface LambdaInvoker {
  invoke<F extends FunctionName>(
    fn: F,
    invocationId: string,
    request: Functions[F]['request'],
  ): Promise<void>;
  /** Stops a running invocation if the platform can (locally it can; a running AWS Lambda cannot be stopped). */
  cancel(invocationId: string): void;
  close(): Promise<void>;
}
