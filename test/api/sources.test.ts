import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SourceState } from '../../service/state/entities/index.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: { AFLUENTE_ROLES: 'api' } });
});
afterAll(async () => t.close());

const auth = { authorization: `Bearer ${TOKEN}` };

describe('GET /sources', () => {
  it('lists each source with its config, cursor and last runs, and no secret values', async () => {
    const em = t.app.orm.em.fork();
    em.create(SourceState, { source: 'demo', cursor: '2026-01-01T00:00:00Z' });
    await em.flush();
    const created = await request(t.app.server).post('/runs').set(auth).send({ source: 'demo' });

    const res = await request(t.app.server).get('/sources').set(auth);
    expect(res.status).toBe(200);
    const demo = res.body.items.find((s: { name: string }) => s.name === 'demo');
    expect(demo).toMatchObject({
      name: 'demo',
      url: 'http://127.0.0.1:8787/orders',
      pagination: 'page',
      cursor: '2026-01-01T00:00:00Z',
      schedule: null,
      nextRunAt: null,
      incremental: { cursorField: 'updated_at', param: 'updated_since' },
      window: { fromParam: 'updated_since', toParam: 'updated_before' },
      maxActiveRuns: 1,
      onActiveRun: 'queue',
      deadlineSeconds: { ingest: 7200, validate: 7200, transform: 21600, load: 21600 },
      tables: ['orders', 'order_items', 'order_tags'],
    });
    expect(demo.lastRuns[0]).toMatchObject({ id: created.body.id, status: 'PENDING' });
  });

  it('shows one source, and 404 names a missing one', async () => {
    const one = await request(t.app.server).get('/sources/demo').set(auth);
    expect(one.status).toBe(200);
    expect(one.body.name).toBe('demo');
    const missing = await request(t.app.server).get('/sources/nope').set(auth);
    expect(missing.status).toBe(404);
    expect(missing.body.message).toBe('source "nope" not found');
  });
});
