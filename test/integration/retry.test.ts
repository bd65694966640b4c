import type { EntityManager } from '@mikro-orm/mysql';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestManifest } from '../../contract/ingest.ts';
import {
  groupManifestKey,
  groupPartKey,
  manifestKey,
  runDate,
  runPrefix,
} from '../../contract/lake-layout.ts';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { JOB_CATALOG, type JobCatalog } from '../../service/orchestration/catalog.ts';
import { NonRetryableError, type StageHandlers } from '../../service/orchestration/stage-handler.ts';
import { Job, LakeFile, SourceState, type Run } from '../../service/state/entities/index.ts';
import { demoSourcesAt, finishedRun, startTestApp, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';
import { readRecords } from '../support/ingest.ts';

// POST /runs/:id/retry on the real ingest and validate (local Lambdas) against the demo API, whose request
// count shows whether the source was called again. Transform and load are stand-ins that fail when told to
// (the end-to-end suite runs the real Spark steps); ingest and validate fail for real (a source that keeps
// answering 500, a lake folder the validate Lambda cannot write).

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

describe('POST /runs/:id/retry after the ingest or the validate Lambda failed', () => {
  const PAGE = 100;
  // Every 50th record is broken (the schema rejects it): 5 of 250.
  const BAD = { badRecords: { every: 50 } } as const;
  // Two attempts a few ms apart, so a stage fails for good within the test.
  const FAST: JobCatalog = {
    ...JOB_CATALOG,
    ingest: { ...JOB_CATALOG.ingest, attempts: 2, backoff: { type: 'fixed', delay: 50 } },
    validate: { ...JOB_CATALOG.validate, attempts: 2, backoff: { type: 'fixed', delay: 50 } },
  };
  let source: DemoApi;
  let app: TestApp;
  let lakeDir: string;

  beforeAll(async () => {
    source = await startDemoApi({ records: RECORDS });
    const sources = await demoSourcesAt(`${source.url}/orders`, 10_000);
    const demo = sources.sources.get('demo')!;
    lakeDir = await mkdtemp(join(tmpdir(), 'afluente-retry-lambdas-'));
    app = await startTestApp({
      sources: {
        ...sources,
        // Pages of 100: 250 records are pages 1-3, and the empty page 4 ends the source.
        sources: new Map([['demo', { ...demo, pagination: { ...demo.pagination, size: PAGE } }]]),
      },
      handlers: { transform: async () => ({}), load: async () => ({}) },
      catalog: FAST,
      env: {
        AFLUENTE_LAKE_URI: `file://${lakeDir}`,
        // No time left after a page: every ingest invocation takes exactly one page (and never reads ahead), then
        // commits it as a segment and hands over; the job keeps the continuation in its params.
        AFLUENTE_INGEST_TIME_LIMIT_MS: '1000',
        AFLUENTE_INGEST_SAFETY_MARGIN_MS: '1000',
        AFLUENTE_INGEST_MAX_RETRIES: '1',
        AFLUENTE_INGEST_RETRY_BASE_MS: '1',
        AFLUENTE_INGEST_RETRY_MAX_MS: '5',
        // One raw part (one page) per validate group: 3 groups.
        AFLUENTE_VALIDATE_PARTS_PER_GROUP: '1',
      },
    });
  });
  afterAll(async () => {
    await app?.close();
    await source?.close();
    if (lakeDir) await rm(lakeDir, { recursive: true, force: true });
  });

  const db = (): EntityManager => app.app.orm.em.fork();
  const history = async (run: number) =>
    (await db().find(Job, { run }, { orderBy: { id: 'asc' } })).map((j) => [j.stage, j.runAttempt, j.status]);

  async function start(): Promise<{ id: number; dt: string }> {
    await db().nativeUpdate(SourceState, { source: 'demo' }, { cursor: null });
    source.resetStats();
    const { run } = await app.app.runs.create({ source: 'demo' });
    return { id: run.id, dt: runDate(run.createdAt) };
  }

  async function retry(id: number): Promise<Run> {
    const res = await request(app.app.server).post(`/runs/${id}/retry`).set(auth);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ id, attempt: 2, status: 'PENDING', error: null });
    return finishedRun(app, id, 60_000);
  }

  it('resumes ingest at the page after the last committed segment: pages already fetched are not asked again', async () => {
    // Page 3 answers 500 however often it is asked, until the faults are cleared.
    source.setFaults({ serverErrors: { pages: [3], status: 500, times: 1000 } });
    const { id, dt } = await start();
    const failed = await finishedRun(app, id, 60_000);
    expect(failed).toMatchObject({
      status: 'FAILED',
      fetched: null,
      error: { reason: 'http_500', stage: 'ingest', attempt: 2 },
    });
    // Pages 1 and 2 once each (each committed by its invocation), then page 3 twice per job attempt (the request
    // and its one retry) in each of the 2 attempts: the second attempt resumed from the saved continuation too.
    expect(source.stats()).toMatchObject({ requests: 6, byStatus: { '200': 2, '500': 4 } });
    const [job] = await db().find(Job, { run: id, stage: 'ingest' });
    expect(job?.params).toMatchObject({ ingest: { continuation: { next: { page: 3 }, records: 2 * PAGE } } });

    source.setFaults({});
    const done = await retry(id);
    expect(done.status).toBe('COMPLETED');
    // The retry asked for page 3 and the empty page 4 only: 2 requests, where starting over would take 4.
    expect(source.stats()).toMatchObject({ requests: 8, byStatus: { '200': 4, '500': 4 } });
    expect({ fetched: done.fetched, valid: done.valid, rejected: done.rejected }).toEqual({
      fetched: RECORDS,
      valid: RECORDS,
      rejected: 0,
    });
    // Every record exactly once: the first attempt's segments and the retry's part make one manifest.
    const manifest = JSON.parse(
      (await app.app.lake.getBytes(manifestKey(runPrefix('raw', 'demo', dt, id)))).toString('utf8'),
    ) as IngestManifest;
    expect({ records: manifest.records, pages: manifest.pages, files: manifest.files.length }).toEqual({
      records: RECORDS,
      pages: 4,
      files: 3,
    });
    const ids = (await readRecords(app.app.lake, manifest)).map((r) => r.id);
    expect(ids).toEqual(Array.from({ length: RECORDS }, (_, i) => i + 1));
    expect(await history(id)).toEqual([
      ['ingest', 1, 'FAILED'],
      ['ingest', 2, 'COMPLETED'],
      ['validate', 2, 'COMPLETED'],
      ['transform', 2, 'COMPLETED'],
      ['load', 2, 'COMPLETED'],
    ]);
    // The raw files are recorded once, by the retry's ingest.
    const raw = await db().find(LakeFile, { run: id, layer: 'raw' }, { populate: ['producedBy'] });
    expect(raw.map((f) => [f.records, f.producedBy.runAttempt])).toEqual([
      [PAGE, 2],
      [PAGE, 2],
      [RECORDS - 2 * PAGE, 2],
    ]);
  });

  it('resumes validate: only the group that failed runs again, and the source is not called', async () => {
    source.setFaults(BAD);
    const { id, dt } = await start();
    // A folder where group 1 writes its validated part: the validate Lambda of that group fails to commit, in
    // every attempt, while groups 0 and 2 commit. Ingest needs a few invocations first, so this is in place in time.
    const validPrefix = runPrefix('validated', 'demo', dt, id);
    const blocker = fileURLToPath(app.app.lake.uri(groupPartKey(validPrefix, 1, 0)));
    await mkdir(blocker, { recursive: true });

    const failed = await finishedRun(app, id, 60_000);
    expect(failed).toMatchObject({
      status: 'FAILED',
      fetched: RECORDS,
      valid: null,
      rejected: null,
      error: { reason: 'handler_error', stage: 'validate', attempt: 2 },
    });
    const calls = source.stats().requests;
    expect(calls).toBe(4);
    const committed = async () =>
      Promise.all([0, 1, 2].map((g) => app.app.lake.exists(groupManifestKey(validPrefix, g))));
    expect(await committed()).toEqual([true, false, true]);

    await rm(blocker, { recursive: true });
    const done = await retry(id);
    expect(done.status).toBe('COMPLETED');
    expect(source.stats().requests).toBe(calls);
    // Counted once, over every group: 250 fetched, 245 valid, the 5 broken records rejected.
    expect({ fetched: done.fetched, valid: done.valid, rejected: done.rejected }).toEqual({
      fetched: RECORDS,
      valid: RECORDS - 5,
      rejected: 5,
    });
    expect(await committed()).toEqual([true, true, true]);
    const [, second] = await db().find(
      Job,
      { run: id, stage: 'validate' },
      { orderBy: { runAttempt: 'asc' } },
    );
    expect(second?.metrics).toMatchObject({ read: RECORDS, groups: 3, invocations: 1 });
    expect(await history(id)).toEqual([
      ['ingest', 1, 'COMPLETED'],
      ['validate', 1, 'FAILED'],
      ['validate', 2, 'COMPLETED'],
      ['transform', 2, 'COMPLETED'],
      ['load', 2, 'COMPLETED'],
    ]);
    // The validated and rejected files are recorded once each, and add up to the counts.
    const files = await db().find(LakeFile, { run: id, layer: { $in: ['validated', 'rejected'] } });
    const sum = (layer: string) =>
      files.filter((f) => f.layer === layer).reduce((n, f) => n + (f.records ?? 0), 0);
    expect(new Set(files.map((f) => f.uri)).size).toBe(files.length);
    expect({ validated: sum('validated'), rejected: sum('rejected') }).toEqual({
      validated: RECORDS - 5,
      rejected: 5,
    });
  });
});
