import type { EntityManager } from '@mikro-orm/mysql';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { NonRetryableError, type StageHandlers } from '../../service/orchestration/stage-handler.ts';
import { Job, SourceState, type Run } from '../../service/state/entities/index.ts';
import { demoSourcesAt, finishedRun, startTestApp, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';

// POST /runs/:id/retry on the real ingest and validate (local Lambdas) against the demo API, whose request
// count shows whether the source was called again. Transform and load are stand-ins that fail when told to
// (the end-to-end suite runs the real Spark steps).

const RECORDS = 250;
const auth = { authorization: `Bearer ${TOKEN}` };
let api: DemoApi;
let t: TestApp;
const failNext = { transform: false, load: false };
function failing(stage: 'transform' | 'load') {
  return async () => {
    if (failNext[stage]) {
      failNext[stage] = false;
      throw new NonRetryableError(`${stage}_failed`, `the ${stage} fails on purpose`);
    }
    return { counts: {} };
  };
}
const handlers: Partial<StageHandlers> = { transform: failing('transform'), load: failing('load') };

beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS, pageSize: 100 });
  t = await startTestApp({
    sources: await demoSourcesAt(`${api.url}/orders`),
    handlers,
    env: { AFLUENTE_LAKE_URI: `file://${await mkdtemp(join(tmpdir(), 'afluente-retry-'))}` },
  });
});
afterAll(async () => {
  await t?.close();
  await api?.close();
});

const em = (): EntityManager => t.app.orm.em.fork();
const jobs = async (run: number) =>
  (await em().find(Job, { run }, { orderBy: { id: 'asc' } })).map((j) => [j.stage, j.runAttempt, j.status]);

async function failedAt(stage: 'transform' | 'load'): Promise<Run> {
  // The demo source is incremental: start each case from no cursor, so every run pulls the whole source.
  await em().nativeUpdate(SourceState, { source: 'demo' }, { cursor: null });
  failNext[stage] = true;
  const { run } = await t.app.runs.create({ source: 'demo' });
  const failed = await finishedRun(t, run.id, 60_000);
  expect(failed).toMatchObject({ status: 'FAILED', error: { reason: `${stage}_failed`, stage } });
  return failed;
}

describe('POST /runs/:id/retry', () => {
  for (const stage of ['transform', 'load'] as const) {
    it(`resumes a run that failed in ${stage} from that stage, without calling the source again`, async () => {
      const failed = await failedAt(stage);
      const calls = api.stats().requests;

      const res = await request(t.app.server).post(`/runs/${failed.id}/retry`).set(auth);
      expect(res.status).toBe(202);
      expect(res.body).toMatchObject({ id: failed.id, attempt: 2, status: 'PENDING', error: null });
      const done = await finishedRun(t, failed.id, 60_000);
      expect(done.status).toBe('COMPLETED');
      expect(api.stats().requests).toBe(calls);
      // Counts are the run's, once: the retried stage did not add to what the first attempt counted.
      expect({ fetched: done.fetched, valid: done.valid, attempt: done.attempt }).toEqual({
        fetched: RECORDS,
        valid: failed.valid,
        attempt: 2,
      });
      // The attempt history: the first attempt's jobs stay, the second resumes at the failed stage.
      const expected = [
        ['ingest', 1, 'COMPLETED'],
        ['validate', 1, 'COMPLETED'],
        ['transform', 1, stage === 'transform' ? 'FAILED' : 'COMPLETED'],
        ...(stage === 'load' ? [['load', 1, 'FAILED']] : []),
        ...(stage === 'transform' ? [['transform', 2, 'COMPLETED']] : []),
        ['load', 2, 'COMPLETED'],
      ];
      expect(await jobs(failed.id)).toEqual(expected);
      // The new attempt was given exactly the lake files (and params) the failed one had.
      const [first, second] = await em().find(
        Job,
        { run: failed.id, stage },
        { orderBy: { runAttempt: 'asc' }, populate: ['inputs'] },
      );
      const uris = (job?: Job) => job?.inputs.getItems().map((f) => f.uri) ?? [];
      expect(uris(second)).toEqual(uris(first));
      // (The transform's inputs are validate's parts; the stand-in transform commits no files for the load.)
      if (stage === 'transform') expect(uris(first).length).toBeGreaterThan(0);
      expect(second?.params).toEqual(first?.params);
    });
  }

  it('refuses a run that is not FAILED with 409 and its status, and an unknown run with 404', async () => {
    const { run } = await t.app.runs.create({ source: 'demo' });
    const done = await finishedRun(t, run.id, 60_000);
    expect(done.status).toBe('COMPLETED');
    const again = await request(t.app.server).post(`/runs/${run.id}/retry`).set(auth);
    expect(again.status).toBe(409);
    expect(again.body.message).toBe(`run ${run.id} is COMPLETED: only a FAILED run can be retried`);
    expect((await request(t.app.server).post('/runs/999999/retry').set(auth)).status).toBe(404);
  });
});
