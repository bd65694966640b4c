import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../service/config/env.ts';
import { createLogger } from '../../service/observability/logger.ts';
import { openOrm } from '../../service/state/orm.ts';
import { buildApp } from '../../service/app.ts';
import { loadSources } from '../../service/config/sources.ts';
import { startTestApp } from '../support/app.ts';
import { dropTestState, testConfig } from '../support/env.ts';
import { freePort } from '../support/net.ts';
import { waitFor } from '../support/wait.ts';

// On AWS the state database and Redis need passwords, which arrive as ECS secrets in AFLUENTE_MYSQL_PASSWORD
// and AFLUENTE_REDIS_PASSWORD, never inside a URL. Here a MariaDB user with a password and a second
// redis-server with `requirepass` stand in for RDS and ElastiCache AUTH.

const id = randomBytes(4).toString('hex');
const user = `afl_${id}`;
const database = `afluente_test_${id}`;
const mysqlPassword = `pw-${randomBytes(12).toString('hex')}`;
const redisPassword = `auth-${randomBytes(12).toString('hex')}`;
let redisPort: number;
let redis: ChildProcess;

async function asRoot(sql: string): Promise<void> {
  const conn = await createConnection({ uri: 'mysql://root@127.0.0.1:3306/' });
  await conn.query(sql);
  await conn.end();
}

function config(env: Record<string, string> = {}): Config {
  return testConfig({
    AFLUENTE_MYSQL_URL: `mysql://${user}@127.0.0.1:3306/${database}`,
    AFLUENTE_MYSQL_PASSWORD: mysqlPassword,
    AFLUENTE_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    AFLUENTE_REDIS_PASSWORD: redisPassword,
    AFLUENTE_ROLES: 'api',
    ...env,
  });
}

/** Drops what an app made, as root (the test user's Redis is killed in afterAll, so its keys need no drop). */
async function cleanup(cfg: Config): Promise<void> {
  await dropTestState({
    ...cfg,
    mysql: { url: `mysql://root@127.0.0.1:3306/${database}`, tls: 'off' },
    redis: { url: 'redis://127.0.0.1:6379' },
  });
}

beforeAll(async () => {
  for (const host of ['127.0.0.1', 'localhost', '%']) {
    await asRoot(`CREATE USER IF NOT EXISTS '${user}'@'${host}' IDENTIFIED BY '${mysqlPassword}'`);
    await asRoot(`GRANT ALL ON \`${database}\`.* TO '${user}'@'${host}'`);
  }
  redisPort = await freePort();
  redis = spawn(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--requirepass', redisPassword, '--save', ''],
    { stdio: 'ignore' },
  );
  await waitFor(async () => {
    const probe = new Redis(redisPort, '127.0.0.1', {
      password: redisPassword,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    probe.on('error', () => undefined);
    const pong = await probe.ping().catch(() => undefined);
    probe.disconnect();
    return pong;
  }, 'the password-protected redis-server');
});

afterAll(async () => {
  redis.kill();
  for (const host of ['127.0.0.1', 'localhost', '%']) await asRoot(`DROP USER IF EXISTS '${user}'@'${host}'`);
  await asRoot(`DROP DATABASE IF EXISTS \`${database}\``);
});

describe('passwords from their own variables', () => {
  it('connects to MySQL and Redis with them, and never logs them', async () => {
    const logs: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logs.push(chunk.toString());
        done();
      },
    });
    const cfg = config({ AFLUENTE_LOG_LEVEL: 'debug' });
    const app = await buildApp({
      config: cfg,
      sources: await loadSources(cfg.sourcesFile),
      logger: createLogger('debug', sink),
    });
    const t = { app };
    await app.ready();
    try {
      const res = await request(t.app.server).get('/health/ready');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ status: 'ok', checks: { mysql: { ok: true }, redis: { ok: true } } });
      t.app.log.info({ config: cfg }, 'the whole config, as a careless log line would print it');
    } finally {
      await t.app.close();
      await cleanup(cfg);
    }
    const text = logs.join('');
    expect(text).toContain('the whole config');
    expect(text).not.toContain(mysqlPassword);
    expect(text).not.toContain(redisPassword);
  });

  it('is refused by MySQL without the password, naming the user', async () => {
    const { password: _omit, ...mysql } = config().mysql;
    await expect(openOrm(mysql)).rejects.toThrow(new RegExp(`Access denied for user '${user}'`));
  });

  it('is refused by Redis without the AUTH password', async () => {
    const cfg = config();
    const { password: _omit, ...redisConfig } = cfg.redis;
    await expect(startTestApp({ config: { ...cfg, redis: redisConfig } })).rejects.toThrow(
      new RegExp(`could not connect to Redis at redis://127.0.0.1:${redisPort}: NOAUTH`),
    );
    await cleanup(cfg);
  });

  it('asks for TLS verified against the RDS authorities when AFLUENTE_MYSQL_TLS=rds', async () => {
    // The local MariaDB is not RDS: either it has no TLS at all or its certificate is not signed by an RDS
    // authority. Both refusals prove the connection insisted on verified TLS instead of falling back.
    const { mysql } = config({ AFLUENTE_MYSQL_TLS: 'rds' });
    expect(mysql.tls).toBe('rds');
    await expect(openOrm(mysql)).rejects.toThrow(/ssl|secure|certificate|tls/i);
  });
});
