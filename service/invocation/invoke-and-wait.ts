import type { FunctionName, Functions } from '../../contract/invocation.ts';
import { StageError } from '../orchestration/stage-handler.ts';
import { InvocationTimeoutError, type InvocationEvents } from './events.ts';
import type { LambdaInvoker } from './invoker.ts';

/**
 * Invokes a function asynchronously and waits for its result event. If the stage is told to stop (cancel,
 * timeout, shutdown) the invocation is cancelled where the platform can, and the wait ends with the signal.
 * A crash, a platform failure, or no result within `timeoutMs` becomes a retryable StageError; a handled failure
 * comes back as a result.
 */
export async function invokeAndWait<F extends FunctionName>(
  deps: { invoker: LambdaInvoker; events: InvocationEvents },
  signal: AbortSignal,
  fn: F,
  request: Functions[F]['request'],
  /** How long a result may take: the function's own time limit plus a margin. */
  timeoutMs: number,
): Promise<Functions[F]['result']> {
  const { invocationId } = request;
  await deps.invoker.invoke(fn, invocationId, request);
  const onAbort = (): void => deps.invoker.cancel(invocationId);
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    let event;
    try {
      event = await deps.events.wait(invocationId, signal, timeoutMs);
    } catch (error) {
      if (error instanceof InvocationTimeoutError) throw new StageError('no_result', error.message);
      throw error;
    }
    if (event.outcome === 'failure') throw new StageError(event.error.reason, event.error.message);
    return event.result;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
