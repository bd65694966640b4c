import fp from 'fastify-plugin';
import { Redis } from 'ioredis';

declare module 'fastify' {
  interface FastifyInstance {
    /** For short commands (health, rate limits). It fails fast instead of queueing while Redis is away. */
    redis: Redis;
  }
}

/** Infrastructure tier: the Redis client for commands. The queues hold their own connections. */
export default fp(
  async (app) => {
    const redis = new Redis(app.config.redis.url, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      connectTimeout: 2000,
      lazyConnect: true,
    });
    redis.on('error', (error) => app.log.debug({ err: error }, 'redis command client error'));
    await redis.connect();
    app.decorate('redis', redis);
    app.addHook('onClose', async () => {
      await redis.quit().catch(() => redis.disconnect());
    });
  },
  { name: 'redis', dependencies: ['config'] },
);
