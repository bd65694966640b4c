import { Migrator } from '@mikro-orm/migrations';
import { defineConfig, MikroORM, type Options } from '@mikro-orm/mysql';
import type { RowDataPacket } from 'mysql2';
import { createConnection } from 'mysql2/promise';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../observability/logger.ts';
import { ENTITIES } from './entities/index.ts';
import { MIGRATIONS } from './migrations/index.ts';

export const MIGRATIONS_PATH = fileURLToPath(new URL('./migrations', import.meta.url));

/** MikroORM's options for the state database. One function, so the service, the CLI and the tests agree. */
export function ormOptions(url: string, logger?: Logger): Options {
  return defineConfig({
    clientUrl: url,
    entities: ENTITIES,
    extensions: [Migrator],
    forceUtcTimezone: true,
    debug: false,
    logger: logger ? (message) => logger.debug({ orm: true }, message) : undefined,
    pool: { min: 0, max: 10 },
    migrations: {
      // An explicit list instead of a glob, so migrations load the same from source and from a bundle.
      migrationsList: MIGRATIONS,
      path: MIGRATIONS_PATH,
      emit: 'ts',
      snapshot: false,
      silent: true,
      transactional: true,
      allOrNothing: true,
    },
  });
}

/** Connects, creating the database first if it is missing (AFLUENTE_MYSQL_URL names it; the default is "afluente"). */
export async function openOrm(url: string, logger?: Logger): Promise<MikroORM> {
  const orm = await MikroORM.init(ormOptions(url, logger));
  await orm.schema.ensureDatabase();
  return orm;
}

const MIGRATION_LOCK = 'afluente.migrations';

/**
 * Applies pending migrations. Several instances may boot at once (ECS rolls tasks in parallel), so they
 * take a MySQL named lock first; the second one finds nothing pending. The lock lives on its own
 * connection because MikroORM's pool may run the migrations on any connection.
 */
export async function migrate(orm: MikroORM, url: string, logger?: Logger): Promise<string[]> {
  const lock = await createConnection({ uri: url });
  try {
    const [rows] = await lock.query<RowDataPacket[]>('SELECT GET_LOCK(?, 120) AS got', [MIGRATION_LOCK]);
    if (rows[0]?.got !== 1)
      throw new Error(`could not take the migration lock "${MIGRATION_LOCK}" within 120s`);
    const applied = await orm.migrator.up();
    if (applied.length > 0) logger?.info({ migrations: applied.map((m) => m.name) }, 'applied migrations');
    return applied.map((m) => m.name);
  } finally {
    await lock.query('SELECT RELEASE_LOCK(?)', [MIGRATION_LOCK]).catch(() => undefined);
    await lock.end();
  }
}
