import fp from 'fastify-plugin';
import { redactUrl } from '../config/env.ts';
import { Dependencies } from '../observability/dependencies.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Whether MySQL and Redis are up; logs each outage once, when it starts and when it ends. */
    dependencies: Dependencies;
  }
}

/** Infrastructure tier, after the ORM and the Redis command client: the probes of both. */
export default fp(
  async (app) => {
    let connectionError: Error | undefined;
    const closed = new Error(`the connection to Redis at ${redactUrl(app.config.redis.url)} closed`);
    const dependencies = new Dependencies({
      logger: app.log,
      probes: {
        mysql: () => app.orm.em.getConnection().execute('select 1'),
        // While the client is disconnected a PING fails with "Stream isn't writeable…"; the reason an operator
        // needs (ECONNREFUSED, NOAUTH) is in the client's last error event, if one came yet.
        redis: () =>
          app.redis.ping().catch((error: unknown) => {
            throw connectionError ?? (app.redis.status === 'ready' ? error : closed);
          }),
      },
    });
    // The command client sees Redis go and come back first: it holds a connection open at all times.
    app.redis.on('error', (error: Error) => {
      connectionError = error;
    });
    app.redis.on('close', () => void dependencies.check());
    app.redis.on('ready', () => {
      connectionError = undefined;
      void dependencies.check();
    });
    app.decorate('dependencies', dependencies);
    // Before the clients close, so closing them is not taken for an outage.
    app.addHook('preClose', async () => dependencies.close());
  },
  { name: 'dependencies', dependencies: ['orm', 'redis'] },
);
