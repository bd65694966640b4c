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
});
