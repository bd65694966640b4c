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
    const { mysql } = app.config;
    const orm = await openOrm(mysql, app.log);
    if (app.config.migrateOnStart) await migrate(orm, mysql, app.log);
    app.decorate('orm', orm);
    app.addHook('onClose', async () => orm.close());
  },
  { name: 'orm', dependencies: ['config'] },
);
