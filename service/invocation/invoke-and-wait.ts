import type { FunctionName, Functions } from '../../contract/invocation.ts';
import { StageError } from '../orchestration/stage-handler.ts';
import type { InvocationEvents } from './events.ts';
import type { LambdaInvoker } from './invoker.ts';

/**
 * Invokes a function asynchronously and waits for its result event. If the stage is told to stop (cancel,
 * timeout, shutdown) the invocation is cancelled where the platform can, and the wait ends with the signal.
 * A crash or a platform failure becomes a retryable StageError; a handled failure comes back as a result.
 */
export async function invokeAndWait<F extends FunctionName>(
  deps: { invoker: LambdaInvoker; events: InvocationEvents },
  signal: AbortSignal,
  fn: F,
  request: Functions[F]['request'],
): Promise<Functions[F]['result']> {
  const { invocationId } = request;
  await deps.invoker.invoke(fn, invocationId, request);
  const onAbort = (): void => deps.invoker.cancel(invocationId);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const event = await deps.events.wait(invocationId, signal);
    if (event.outcome === 'failure') throw new StageError(event.error.reason, event.error.message);
    return event.result;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
