import type { Redis } from 'ioredis';
import type { InvocationEvent } from '../../contract/invocation.ts';

const TTL_SECONDS = 24 * 3600;

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

  /** Waits for the invocation's event; rejects with the signal's reason if the signal aborts first. */
  async wait(invocationId: string, signal: AbortSignal): Promise<InvocationEvent> {
    // BLPOP holds its connection, so each waiter gets its own for the time it waits.
    const connection = this.redis.duplicate();
    try {
      for (;;) {
        signal.throwIfAborted();
        const popped = await connection.blpop(this.key(invocationId), 1);
        if (popped) return JSON.parse(popped[1]) as InvocationEvent;
      }
    } finally {
      connection.disconnect();
    }
  }
}
