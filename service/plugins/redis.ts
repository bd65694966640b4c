import fp from 'fastify-plugin';
import { Redis, type RedisOptions } from 'ioredis';
import { redactUrl, type RedisConfig } from '../config/env.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** For short commands (health, rate limits). It fails fast instead of queueing while Redis is away. */
    redis: Redis;
  }
}

/** Connection options every client of the queue Redis shares: the AUTH password, kept out of the URL. */
export function redisAuth(redis: RedisConfig): RedisOptions {
  return redis.password ? { password: redis.password } : {};
}

/**
 * While Redis is away, try again at least every second (ioredis backs off to 5 s), so the service is whole again
 * within about a second of Redis coming back. BullMQ copies it to the connections it makes from ours.
 */
export const RECONNECT: RedisOptions = { retryStrategy: (attempt: number) => Math.min(attempt * 100, 1000) };

/** Infrastructure tier: the Redis client for commands. The queues hold their own connections. */
export default fp(
  async (app) => {
    const redis = new Redis(app.config.redis.url, {
      ...redisAuth(app.config.redis),
      ...RECONNECT,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      connectTimeout: 2000,
      // Every request's rate-limit check goes through this client: a Redis that takes the connection but does
      // not answer must cost a request at most this, after which the limit fails open.
      commandTimeout: 1000,
      lazyConnect: true,
    });
    let lastError: Error | undefined;
    redis.on('error', (error: Error) => {
      lastError = error;
      app.log.debug({ err: error }, 'redis command client error');
    });
    // ioredis rejects a failed handshake with "Connection is closed."; the reason (NOAUTH, a TLS error) is
    // in the error event, and it is what an operator needs to read.
    await redis.connect().catch((error: Error) => {
      const reason = lastError?.message ?? error.message;
      throw new Error(`could not connect to Redis at ${redactUrl(app.config.redis.url)}: ${reason}`, {
        cause: error,
      });
    });
    app.decorate('redis', redis);
    app.addHook('onClose', async () => {
      await redis.quit().catch(() => redis.disconnect());
    });
  },
  { name: 'redis', dependencies: ['config'] },
);
