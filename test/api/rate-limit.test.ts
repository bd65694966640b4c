import { Redis } from 'ioredis';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({
    env: { AFLUENTE_ROLES: 'api', AFLUENTE_RATE_LIMIT_MAX: '3', AFLUENTE_RATE_LIMIT_WINDOW_MS: '60000' },
  });
});
afterAll(async () => t.close());

describe('rate limit', () => {
  it('answers 429 past the limit, also to requests without a token, but never limits health', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (let i = 0; i < 3; i++) expect((await request(t.app.server).get('/runs').set(auth)).status).toBe(200);
    const limited = await request(t.app.server).get('/runs').set(auth);
    expect(limited.status).toBe(429);
    expect(limited.body.message).toMatch(/^rate limit exceeded: at most 3 requests per 1 minute/);
    expect(limited.headers['retry-after']).toBeDefined();
    expect((await request(t.app.server).get('/runs')).status).toBe(429);
    expect((await request(t.app.server).get('/health/ready')).status).toBe(200);
  });

  it('names the window, not the time left in it, and says when to retry', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (let i = 0; i < 3; i++) await request(t.app.server).get('/runs').set(auth);
    // Shorten what is left of this client's window, as if 40 s of the 60 s had passed.
    const redis = new Redis(t.config.redis.url);
    try {
      const keys = await redis.keys(`${t.config.queue.prefix}:ratelimit:*`);
      expect(keys.length).toBeGreaterThan(0);
      for (const key of keys) await redis.pexpire(key, 20_000);
    } finally {
      await redis.quit();
    }
    const limited = await request(t.app.server).get('/runs').set(auth);
    expect(limited.status).toBe(429);
    const retryIn = Number(limited.headers['retry-after']);
    expect(retryIn).toBeLessThanOrEqual(20);
    expect(limited.body.message).toBe(
      `rate limit exceeded: at most 3 requests per 1 minute; retry in ${retryIn} seconds`,
    );
  });
});
