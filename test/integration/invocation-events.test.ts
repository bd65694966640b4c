import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { InvocationEvents, InvocationTimeoutError } from '../../service/invocation/events.ts';
import { invokeAndWait } from '../../service/invocation/invoke-and-wait.ts';
import type { LambdaInvoker } from '../../service/invocation/invoker.ts';
import { StageError } from '../../service/orchestration/stage-handler.ts';

// The event hub on the real Redis: a result waits for its waiter, and a result that never comes (a destination
// record AWS dropped) ends the wait at its deadline instead of holding the stage until its own timeout.
const redis = new Redis();
const prefix = `test-events-${randomBytes(4).toString('hex')}`;
const events = new InvocationEvents(redis, prefix);
afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

const never: LambdaInvoker = {
  invoke: () => Promise.resolve(),
  cancel: () => undefined,
  close: () => Promise.resolve(),
};

describe('invocation events', () => {
  it('keeps a result that arrives before anyone waits', async () => {
    await events.deliver({
      invocationId: 'early',
      function: 'ingest',
      outcome: 'failure',
      error: { reason: 'x', message: 'm', retryable: true },
    });
    const event = await events.wait('early', new AbortController().signal, 5000);
    expect(event).toMatchObject({ invocationId: 'early', outcome: 'failure' });
  });

  it('gives up at the deadline when no result comes', async () => {
    const started = Date.now();
    await expect(events.wait('lost', new AbortController().signal, 1500)).rejects.toBeInstanceOf(
      InvocationTimeoutError,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
  });

  it('turns a lost result into a retryable stage error', async () => {
    const request = { invocationId: 'lost-2' } as never;
    const error: unknown = await invokeAndWait(
      { invoker: never, events },
      new AbortController().signal,
      'ingest',
      request,
      1000,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StageError);
    expect(error).toMatchObject({
      reason: 'no_result',
      message: 'no result for invocation lost-2 within 1 s; it is retried as a new attempt',
    });
  });
});
