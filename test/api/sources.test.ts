import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunDrift } from '../../contract/validate.ts';
import { Job, SourceState } from '../../service/state/entities/index.ts';
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

describe('drift on GET /runs/:id and GET /sources/:name', () => {
  const drift = (count: number): RunDrift => ({
    records: 5_000,
    truncated: false,
    fields: [
      { path: 'discount', type: 'number', count, sample: '0.1' },
      { path: 'items[].gift', type: 'boolean', count: 3, sample: 'true' },
    ],
  });

  async function runWithValidate(
    jobs: { runAttempt: number; status: 'COMPLETED' | 'FAILED'; drift?: RunDrift }[],
  ): Promise<number> {
    const created = await request(t.app.server).post('/runs').set(auth).send({ source: 'demo' });
    const id = created.body.id as number;
    const em = t.app.orm.em.fork();
    for (const job of jobs) {
      em.create(Job, {
        run: id,
        stage: 'validate',
        runAttempt: job.runAttempt,
        status: job.status,
        maxAttempts: 3,
        queueJobId: `test-${id}-${job.runAttempt}`,
        metrics: { read: 5_000, ...(job.drift ? { drift: job.drift } : {}) },
      });
    }
    await em.flush();
    return id;
  }

  it('shows the run’s drift, the latest validate attempt’s, and the source’s latest run that counted one', async () => {
    const sourceDrift = async () =>
      (await request(t.app.server).get('/sources/demo').set(auth)).body as {
        drift: unknown;
        onDrift: unknown;
      };
    expect(await sourceDrift()).toMatchObject({ drift: null, onDrift: 'warn' });

    const first = await runWithValidate([{ runAttempt: 1, status: 'COMPLETED', drift: drift(1_234) }]);
    const retried = await runWithValidate([
      { runAttempt: 1, status: 'FAILED', drift: drift(7) },
      { runAttempt: 2, status: 'COMPLETED', drift: drift(40) },
    ]);
    // A later run whose validate job counted nothing (a group that crashed) does not hide the one before.
    const crashed = await runWithValidate([{ runAttempt: 1, status: 'FAILED' }]);

    const detail = await request(t.app.server).get(`/runs/${first}`).set(auth);
    expect(detail.status).toBe(200);
    expect(detail.body.drift).toEqual(drift(1_234));
    expect((await request(t.app.server).get(`/runs/${retried}`).set(auth)).body.drift).toEqual(drift(40));
    expect((await request(t.app.server).get(`/runs/${crashed}`).set(auth)).body.drift).toBeNull();

    expect((await sourceDrift()).drift).toEqual({ run: retried, ...drift(40) });
    const list = await request(t.app.server).get('/sources').set(auth);
    expect(list.body.items.find((s: { name: string }) => s.name === 'demo').drift).toEqual({
      run: retried,
      ...drift(40),
    });
  });
});
