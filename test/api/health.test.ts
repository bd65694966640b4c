import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { TcpProxy } from '../support/tcp-proxy.ts';
import { waitFor } from '../support/wait.ts';

const mysql = new TcpProxy({ host: '127.0.0.1', port: 3306 });
const redis = new TcpProxy({ host: '127.0.0.1', port: 6379 });
let t: TestApp;

beforeAll(async () => {
  const [mysqlPort, redisPort] = [await mysql.start(), await redis.start()];
  t = await startTestApp({
    env: {
      AFLUENTE_MYSQL_URL: `mysql://root@127.0.0.1:${mysqlPort}/afluente_test_health_${process.pid}`,
      AFLUENTE_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      AFLUENTE_ROLES: 'api',
    },
  });
});
afterAll(async () => {
  await mysql.start().catch(() => undefined);
  await redis.start().catch(() => undefined);
  await t.close();
  await mysql.stop();
  await redis.stop();
});

const ready = () => request(t.app.server).get('/health/ready');

describe('health', () => {
  it('is live and ready when MySQL and Redis answer', async () => {
    expect((await request(t.app.server).get('/health/live')).body).toEqual({ status: 'ok' });
    const res = await ready();
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok', checks: { mysql: { ok: true }, redis: { ok: true } } });
    expect(res.headers['cache-control']).toBe('no-store');
  });

  it('answers 503 naming MySQL while it is down, and recovers when it is back', async () => {
    await mysql.stop();
    const down = await ready();
    expect(down.status).toBe(503);
    expect(down.body.status).toBe('unavailable');
    expect(down.body.message).toMatch(/^mysql is unreachable: /);
    expect(down.body.checks).toMatchObject({ mysql: { ok: false }, redis: { ok: true } });
    expect((await request(t.app.server).get('/health/live')).status).toBe(200);

    await mysql.start();
    await waitFor(async () => ((await ready()).status === 200 ? true : undefined), 'readiness to recover');
  });

  it('answers 503 naming Redis while it is down, and recovers when it is back', async () => {
    await redis.stop();
    const down = await ready();
    expect(down.status).toBe(503);
    expect(down.body.message).toMatch(/^redis is unreachable: /);
    expect(down.body.checks).toMatchObject({ mysql: { ok: true }, redis: { ok: false } });

    await redis.start();
    await waitFor(async () => ((await ready()).status === 200 ? true : undefined), 'readiness to recover');
  });
});
