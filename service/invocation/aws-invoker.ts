import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import type { FunctionName, Functions } from '../../contract/invocation.ts';
import type { LambdaInvoker } from './invoker.ts';

// Only the recent ones: enough to answer for an invocation being wound down, without growing forever.
const CANCELLED_KEPT = 10_000;

export interface AwsLambdaInvokerOptions {
  /** The deployed function (name or ARN) for each of ours. */
  functions: Record<FunctionName, string>;
  /**
   * The client to send with. The invoker owns it, and destroys it on close.
   * @default a LambdaClient for `region` and `endpoint`
   */
  client?: LambdaClient;
  /** @default the SDK's default chain (AWS_REGION, the profile) */
  region?: string;
  /** For an emulator. @default the AWS endpoint of the region */
  endpoint?: string;
}

/**
 * Invokes the Lambda functions asynchronously (InvocationType Event). Lambda answers 202 once it has queued the
 * event; the result arrives later through the functions' destinations on the events queue, which
 * SqsEventConsumer hands to InvocationEvents.
 */
export class AwsLambdaInvoker implements LambdaInvoker {
  private readonly functions: Record<FunctionName, string>;
  private readonly client: LambdaClient;
  private readonly cancelled = new Set<string>();

  constructor(options: AwsLambdaInvokerOptions) {
    this.functions = options.functions;
    this.client = options.client ?? new LambdaClient({ region: options.region, endpoint: options.endpoint });
  }

  async invoke<F extends FunctionName>(
    fn: F,
    invocationId: string,
    request: Functions[F]['request'],
  ): Promise<void> {
    const functionName = this.functions[fn];
    // The destination record carries the request back, and its invocationId is how the result finds its
    // waiter: it must be the id the caller waits on.
    const payload = JSON.stringify({ ...request, invocationId });
    const response = await this.client.send(
      new InvokeCommand({ FunctionName: functionName, InvocationType: 'Event', Payload: payload }),
    );
    if (response.StatusCode !== 202) {
      const functionError = response.FunctionError ? `, FunctionError ${response.FunctionError}` : '';
      throw new Error(
        `Lambda did not queue ${fn} invocation ${invocationId} (${functionName}): ` +
          `it answered status ${response.StatusCode ?? 'none'}${functionError}, not 202`,
      );
    }
  }

  /**
   * A running Lambda cannot be stopped, so this only records the id: the function runs to its end, and the
   * worker, which has stopped waiting, ignores its late result (an unread event expires from Redis).
   */
  cancel(invocationId: string): void {
    this.cancelled.add(invocationId);
    if (this.cancelled.size > CANCELLED_KEPT) {
      const oldest = this.cancelled.values().next().value;
      if (oldest !== undefined) this.cancelled.delete(oldest);
    }
  }

  /** Whether `cancel` was called for the invocation (among the last 10,000 cancelled). */
  isCancelled(invocationId: string): boolean {
    return this.cancelled.has(invocationId);
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
