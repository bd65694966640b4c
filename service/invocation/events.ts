import type { Redis } from 'ioredis';
import type { InvocationEvent } from '../../contract/invocation.ts';

const TTL_SECONDS = 24 * 3600;

// The marker and the push in one step: a consumer that dies between them can neither lose the event (marker
// set, nothing pushed) nor push it twice (pushed, marker missing).
const DELIVER_ONCE = `
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[1])
  return 1
end
return 0
`;

/**
 * Hands invocation results to the worker waiting for them. Each result is pushed to a Redis list keyed by its
 * invocation id, so it reaches a waiter on any service instance, and one that arrives before anyone waits (or
 * while the waiting worker restarts) is kept until it is read or expires.
 */
export class InvocationEvents {
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.redis = redis;
    this.prefix = prefix;
  }

  private key(invocationId: string): string {
    return `${this.prefix}:invocation:${invocationId}`;
  }

  async deliver(event: InvocationEvent): Promise<void> {
    const key = this.key(event.invocationId);
    await this.redis.multi().rpush(key, JSON.stringify(event)).expire(key, TTL_SECONDS).exec();
  }

  /**
   * Delivers the event unless an event with this id was delivered in the last 24 hours, for a source that may
   * hand over the same result more than once (SQS redelivers, Lambda may invoke twice). Returns whether it did.
   */
  async deliverOnce(eventId: string, event: InvocationEvent): Promise<boolean> {
    const marker = `${this.prefix}:event:${eventId}`;
    const pushed = await this.redis.eval(
      DELIVER_ONCE,
      2,
      marker,
      this.key(event.invocationId),
      TTL_SECONDS,
      JSON.stringify(event),
    );
    return pushed === 1;
  }

  /** Waits for the invocation's event; rejects with the signal's reason if the signal aborts first. */
  async wait(invocationId: string, signal: AbortSignal, timeoutMs = Infinity): Promise<InvocationEvent> {
    const deadline = Date.now() + timeoutMs;
    // BLPOP holds its connection, so each waiter gets its own for the time it waits.
    const connection = this.redis.duplicate();
    try {
      for (;;) {
        signal.throwIfAborted();
        if (Date.now() >= deadline) throw new InvocationTimeoutError(invocationId, timeoutMs);
        const popped = await connection.blpop(this.key(invocationId), 1);
        if (popped) return JSON.parse(popped[1]) as InvocationEvent;
      }
    } finally {
      connection.disconnect();
    }
  }
}

/** No result came back in time: on AWS a destination record can be lost (one over SQS's size limit is dropped). */
export class InvocationTimeoutError extends Error {
  override name = 'InvocationTimeoutError';
  constructor(invocationId: string, timeoutMs: number) {
    super(
      `no result for invocation ${invocationId} within ${Math.round(timeoutMs / 1000)} s; it is retried as a new attempt`,
    );
  }
}
