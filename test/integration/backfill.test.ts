import type { EntityManager } from '@mikro-orm/mysql';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BASE_TIME, updatedAtMs } from '../../demo/source-api/records.ts';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import type { LoadedSource } from '../../service/config/sources.ts';
import type { StageHandlers } from '../../service/orchestration/stage-handler.ts';
import { Backfill, Run, SourceState } from '../../service/state/entities/index.ts';
import { demoSourcesAt, startTestApp, withMaxActiveRuns, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';
import { waitFor } from '../support/wait.ts';

// POST /sources/:name/backfill on the real ingest and validate (local Lambdas) against the demo API, which
// filters by updated_since/updated_before: each window's run must fetch exactly the records of its window.
// Transform and load are stand-ins that take a moment, so runs overlap and the concurrency limit shows.

const RECORDS = 250; // updated_at runs from the base time to base + 99 s (2.5 records a second)
const MAX_ACTIVE = 2;
const auth = { authorization: `Bearer ${TOKEN}` };
let api: DemoApi;
let t: TestApp;
const slow = async () => {
  await sleep(300);
  return { counts: {} };
};
const handlers: Partial<StageHandlers> = { transform: slow, load: slow };
const base = Date.parse(DEFAULT_BASE_TIME);
const at = (seconds: number) => new Date(base + seconds * 1000).toISOString();

beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS, pageSize: 20 });
  t = await startTestApp({
    sources: await withMaxActiveRuns(MAX_ACTIVE, await demoSourcesAt(`${api.url}/orders`)),
    handlers,
    env: { AFLUENTE_LAKE_URI: `file://${await mkdtemp(join(tmpdir(), 'afluente-backfill-'))}` },
  });
});
afterAll(async () => {
  await t?.close();
  await api?.close();
});

const em = (): EntityManager => t.app.orm.em.fork();
const backfill = (body: object, source = 'demo') =>
  request(t.app.server).post(`/sources/${source}/backfill`).set(auth).send(body);

/** How many records of the demo API fall in [from, to). */
function inWindow(from: string, to: string): number {
  let n = 0;
  for (let i = 0; i < RECORDS; i++) {
    const ms = updatedAtMs(i, base);
    if (ms >= Date.parse(from) && ms < Date.parse(to)) n++;
  }
  return n;
}

describe('POST /sources/:name/backfill', () => {
  it('runs one window per run under maxActiveRuns, fetching each window exactly, and tracks them together', async () => {
    await em().upsert(SourceState, { source: 'demo', cursor: at(10) });
    const res = await backfill({ from: at(0), to: at(100), step: 'PT20S' });
    expect(res.status).toBe(202);
    expect(res.headers.location).toBe(`/backfills/${res.body.id}`);
    expect(res.body).toMatchObject({
      source: 'demo',
      step: 'PT20S',
      status: 'RUNNING',
      createdBy: 'tester',
    });
    expect(res.body.progress.total).toBe(5);
    const windows = (res.body.runs as { window: { from: string; to: string } }[]).map((r) => r.window);
    expect(windows).toEqual([0, 20, 40, 60, 80].map((s) => ({ from: at(s), to: at(s + 20) })));
    // Never more runs active than the source allows, and the limit is used.
    let most = 0;
    const detail = await waitFor(
      async () => {
        const active = await t.app.orm.em
          .fork()
          .count(Run, { source: 'demo', status: { $in: ['PENDING', 'RUNNING'] }, jobs: { $some: {} } });
        most = Math.max(most, active);
        const shown = await request(t.app.server).get(`/backfills/${res.body.id}`).set(auth);
        return shown.body.status === 'RUNNING' ? undefined : shown.body;
      },
      'the backfill to finish',
      90_000,
    );
    expect(most).toBe(MAX_ACTIVE);
    expect(detail).toMatchObject({
      status: 'COMPLETED',
      progress: { total: 5, pending: 0, running: 0, completed: 5, failed: 0, cancelled: 0 },
      counts: { fetched: RECORDS, valid: RECORDS, rejected: 0 },
    });
    expect(detail.finishedAt).not.toBeNull();
    const runs = await em().find(Run, { backfill: res.body.id }, { orderBy: { id: 'asc' } });
    expect(runs.map((r) => [r.trigger, r.params?.window, r.fetched])).toEqual(
      windows.map((w) => ['backfill', w, inWindow(w.from, w.to)]),
    );
    expect(runs.every((r) => r.fetched === 50)).toBe(true);
    // A backfill pulls history: it neither sent nor moved the cursor.
    expect((await em().findOneOrFail(SourceState, 'demo')).cursor).toBe(at(10));
  });

  it('returns the same backfill for a retried request with the same Idempotency-Key', async () => {
    const body = { from: '2020-01-01', to: '2020-01-03', step: 'P1D' };
    const first = await backfill(body).set('idempotency-key', 'bf-1');
    const again = await backfill(body).set('idempotency-key', 'bf-1');
    expect(again.status).toBe(202);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.body.id).toBe(first.body.id);
    expect(await em().count(Run, { backfill: first.body.id })).toBe(2);
    const other = await backfill({ ...body, step: 'PT12H' }).set('idempotency-key', 'bf-1');
    expect(other.status).toBe(422);
    await waitFor(
      async () => {
        const shown = await request(t.app.server).get(`/backfills/${first.body.id}`).set(auth);
        return shown.body.status === 'RUNNING' ? undefined : shown.body;
      },
      'the backfill to finish',
      60_000,
    );
  });

  it('cancels every unfinished run of a backfill, and then answers 409', async () => {
    const res = await backfill({ from: '2021-01-01', to: '2021-01-11', step: 'P1D' });
    expect(res.body.progress.total).toBe(10);
    const cancelled = await request(t.app.server).post(`/backfills/${res.body.id}/cancel`).set(auth);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).not.toBe('RUNNING');
    expect(cancelled.body.progress.cancelled + cancelled.body.progress.completed).toBe(10);
    expect(cancelled.body.progress.cancelled).toBeGreaterThanOrEqual(8);
    const runs = await em().find(Run, { backfill: res.body.id });
    expect(runs.filter((r) => r.status === 'CANCELLED').every((r) => r.cancelledBy === 'tester')).toBe(true);
    const again = await request(t.app.server).post(`/backfills/${res.body.id}/cancel`).set(auth);
    expect(again.status).toBe(409);
    expect(again.body.message).toBe(
      `backfill ${res.body.id} has no unfinished runs: every one of its 10 ended`,
    );
  });

  it('refuses a bad range or step, naming the field, and an unknown source or backfill with 404', async () => {
    const backfills = await em().count(Backfill);
    const cases: [object, number, string][] = [
      [{ from: at(0), to: at(100), step: '1 day' }, 400, 'body.step must be a positive ISO-8601 duration'],
      [{ from: at(0), to: at(100), step: 'PT0S' }, 400, 'body.step must be a positive ISO-8601 duration'],
      [{ from: at(100), to: at(0), step: 'PT1S' }, 400, 'body.from must be before body.to'],
      [{ from: 'yesterday', to: at(0), step: 'PT1S' }, 400, 'body.from must be an ISO date'],
      [{ from: '2020-01-01', to: '2030-01-01', step: 'P1D' }, 400, 'makes more than 1000 windows'],
      [{ from: at(0), to: at(100) }, 400, 'body.step is required'],
    ];
    for (const [body, status, message] of cases) {
      const res = await backfill(body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.message).toContain(message);
    }
    const unknown = await backfill({ from: at(0), to: at(100), step: 'PT20S' }, 'nope');
    expect(unknown.status).toBe(404);
    expect(unknown.body.message).toBe('source "nope" not found');
    expect((await request(t.app.server).get('/backfills/999999').set(auth)).status).toBe(404);
    // Nothing was written for any refused request.
    expect(await em().count(Backfill)).toBe(backfills);
  });

  it('refuses a backfill, or a run with a window, of a source that has no window params', async () => {
    const demo = t.app.sources.sources.get('demo');
    if (!demo) throw new Error('no demo source');
    (t.app.sources.sources as Map<string, LoadedSource>).set('demo', { ...demo, window: undefined });
    try {
      const res = await backfill({ from: at(0), to: at(100), step: 'PT20S' });
      expect(res.status).toBe(400);
      expect(res.body.message).toContain('source "demo" has no `window` in its config');
      const run = await request(t.app.server)
        .post('/runs')
        .set(auth)
        .send({ source: 'demo', params: { from: at(0), to: at(10) } });
      expect(run.status).toBe(400);
      expect(run.body.message).toContain('body.params: source "demo" has no `window` in its config');
    } finally {
      (t.app.sources.sources as Map<string, LoadedSource>).set('demo', demo);
    }
  });
});
