import type { MikroORM } from '@mikro-orm/mysql';
import fp from 'fastify-plugin';
import { migrate, openOrm } from '../state/orm.ts';

declare module 'fastify' {
  interface FastifyInstance {
    orm: MikroORM;
  }
}

/** Infrastructure tier: the MikroORM instance for the state database, migrated on start unless turned off. */
export default fp(
  async (app) => {
    const { url } = app.config.mysql;
    const orm = await openOrm(url, app.log);
    if (app.config.migrateOnStart) await migrate(orm, url, app.log);
    app.decorate('orm', orm);
    app.addHook('onClose', async () => orm.close());
  },
  { name: 'orm', dependencies: ['config'] },
);
