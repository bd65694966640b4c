import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';
import pg from 'pg';
import { loadConfig, type Config } from '../../service/config/env.ts';

export const TOKEN = 'test-token-0123456789abcdef';
export const OTHER_TOKEN = 'other-token-0123456789abcdef';

/** A config for one test file: its own MySQL database, Redis key prefix and warehouse schema. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  const id = randomBytes(4).toString('hex');
  return loadConfig({
    AFLUENTE_MYSQL_URL: `mysql://root@127.0.0.1:3306/afluente_test_${id}`,
    AFLUENTE_QUEUE_PREFIX: `test-${id}`,
    AFLUENTE_WAREHOUSE_SCHEMA: `test_${id}`,
    AFLUENTE_API_TOKENS: `tester=${TOKEN},ops=${OTHER_TOKEN}`,
    AFLUENTE_LOG_LEVEL: 'silent',
    AFLUENTE_HEARTBEAT_MS: '200',
    AFLUENTE_SHUTDOWN_GRACE_MS: '2000',
    AFLUENTE_SOURCES_FILE: 'config/sources.yaml',
    ...overrides,
  });
}

/** Drops what a test file made: its database, every Redis key under its prefix, and its warehouse schema. */
export async function dropTestState(config: Config): Promise<void> {
  const url = new URL(config.mysql.url);
  const database = url.pathname.slice(1);
  url.pathname = '/';
  const conn = await createConnection({ uri: url.toString() });
  await conn.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await conn.end();
  const redis = new Redis(config.redis.url);
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${config.queue.prefix}*`, 'COUNT', 1000);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  await redis.quit();
  const warehouse = new pg.Client({ connectionString: config.warehouse.url });
  await warehouse.connect();
  await warehouse.query(`DROP SCHEMA IF EXISTS "${config.warehouse.schema}" CASCADE`);
  await warehouse.end();
}
