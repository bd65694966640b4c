import type { EntityManager } from '@mikro-orm/mysql';
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import type { LoadedSources } from '../../service/config/sources.ts';
import { JOB_CATALOG, type JobCatalog } from '../../service/orchestration/catalog.ts';
import type { StageHandlers } from '../../service/orchestration/stage-handler.ts';
import { Job, LakeFile, Run, SourceState } from '../../service/state/entities/index.ts';
import { demoSourcesAt, finishedRun, startTestApp, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';
import { waitFor } from '../support/wait.ts';

// The ingest stage as the service runs it: a worker invokes the real ingest handler in a child process (the
// local Lambda invoker), waits for its result event, and records the raw files.

const RECORDS = 1_200;
let api: DemoApi;
let sources: LoadedSources;
beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS, pageSize: 500 });
  sources = await demoSourcesAt(`${api.url}/orders`);
});
afterAll(async () => api.close());

const ok = () => Promise.resolve({});
// A test can hold the load stage open to look at the state before the run completes.
let loadGate: Promise<void> | undefined;
let loadStarted: (() => void) | undefined;
const later: Partial<StageHandlers> = {
  validate: ok,
  transform: ok,
  load: async () => {
    loadStarted?.();
    await loadGate;
    return {};
  },
};
const FAST: JobCatalog = {
  ...JOB_CATALOG,
  ingest: { ...JOB_CATALOG.ingest, backoff: { type: 'fixed', delay: 50 } },
};

const open: TestApp[] = [];
async function start(env: Record<string, string> = {}, catalog = FAST): Promise<TestApp> {
  const lake = await mkdtemp(join(tmpdir(), 'afluente-stage-'));
  const t = await startTestApp({
    sources,
    catalog,
    handlers: later,
    env: {
      AFLUENTE_LAKE_URI: `file://${lake}`,
      AFLUENTE_INGEST_RETRY_BASE_MS: '10',
      AFLUENTE_INGEST_RETRY_MAX_MS: '50',
      ...env,
    },
  });
  open.push(t);
  return t;
}
afterEach(async () => {
  api.setFaults({});
  for (const t of open.splice(0)) await t.close();
});

const em = (t: TestApp) => t.app.orm.em.fork() as EntityManager;

describe('the ingest stage', () => {
  it('pulls the source into raw files, records them on the job and the run, and moves the cursor only when the run completes', async () => {
    const t = await start({ AFLUENTE_INGEST_PART_MAX_RECORDS: '500' });
    let release = (): void => undefined;
    loadGate = new Promise((resolve) => (release = resolve));
    const inLoad = new Promise<void>((resolve) => (loadStarted = resolve));
    const { run } = await t.app.runs.create({ source: 'demo' });
    await inLoad;
    // Ingest has committed its cursor on the run, but the source's cursor waits for the run's completion.
    // (Admission made the source's row when the run was created; its cursor is still unset.)
    expect((await em(t).findOneOrFail(SourceState, 'demo')).cursor).toBeNull();
    expect((await em(t).findOneOrFail(Run, run.id)).nextCursor).toMatch(/^20\d\d-/);
    release();
    loadGate = undefined;
    loadStarted = undefined;
    const done = await finishedRun(t, run.id);
    expect(done.status).toBe('COMPLETED');
    expect(done.fetched).toBe(RECORDS);

    const ingest = await em(t).findOneOrFail(Job, { run: run.id, stage: 'ingest' });
    // The demo source pages by 1000: 1000, 200, then the empty page that ends it.
    expect(ingest.metrics).toMatchObject({ fetched: RECORDS, pages: 3, files: 3, invocations: 1 });
    expect(ingest.externalId).toBe(`job-${ingest.id}.1.0`);
    const files = await em(t).find(LakeFile, { run: run.id }, { orderBy: { uri: 'asc' } });
    expect(files).toHaveLength(3);
    expect(
      files.every((f) => f.layer === 'raw' && f.producedBy.id === ingest.id && f.sha256?.length === 64),
    ).toBe(true);
    expect(files.reduce((n, f) => n + (f.records ?? 0), 0)).toBe(RECORDS);
    expect(files[0]?.uri).toMatch(
      new RegExp(
        `^file:///.*/raw/source=demo/dt=\\d{4}-\\d{2}-\\d{2}/run=${run.id}/part-00000\\.ndjson\\.gz$`,
      ),
    );
    // The cursor moved in the transaction that completed the run, to the newest record ingest saw.
    expect(await em(t).findOneOrFail(SourceState, 'demo')).toMatchObject({
      cursor: ingest.metrics?.nextCursor,
      lastRunId: run.id,
    });

    const detail = await request(t.app.server)
      .get(`/runs/${run.id}`)
      .set({ authorization: `Bearer ${TOKEN}` });
    expect(detail.body.files).toHaveLength(3);
    expect(detail.body.counts.fetched).toBe(RECORDS);
  });

  it('invokes the handler again with each continuation until the source is exhausted', async () => {
    const t = await start({ AFLUENTE_INGEST_TIME_LIMIT_MS: '1', AFLUENTE_INGEST_SAFETY_MARGIN_MS: '0' });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const done = await finishedRun(t, run.id);
    expect(done.status).toBe('COMPLETED');
    expect(done.fetched).toBe(RECORDS);
    const ingest = await em(t).findOneOrFail(Job, { run: run.id, stage: 'ingest' });
    expect(ingest.metrics).toMatchObject({ invocations: 3, pages: 3, retries: 0 });
  });

  it('counts the page requests it retried on the job, across invocations', async () => {
    api.setFaults({ serverErrors: { pages: [1, 2], status: 503, times: 1 } });
    const t = await start({ AFLUENTE_INGEST_TIME_LIMIT_MS: '1', AFLUENTE_INGEST_SAFETY_MARGIN_MS: '0' });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const done = await finishedRun(t, run.id);
    expect(done).toMatchObject({ status: 'COMPLETED', fetched: RECORDS });
    const ingest = await em(t).findOneOrFail(Job, { run: run.id, stage: 'ingest' });
    expect(ingest.metrics).toMatchObject({ invocations: 3, pages: 3, retries: 2 });
  });

  it('fails the run on a 401 with the status, the URL and the attempt', async () => {
    api.setFaults({ unauthorized: true });
    const t = await start();
    const { run } = await t.app.runs.create({ source: 'demo' });
    const failed = await finishedRun(t, run.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toEqual({
      reason: 'http_401',
      message: `source "demo" page 1: GET ${api.url}/orders?page=1&per_page=1000 answered 401`,
      stage: 'ingest',
      attempt: 1,
      httpStatus: 401,
      url: `${api.url}/orders?page=1&per_page=1000`,
    });
    const ingest = await em(t).findOneOrFail(Job, { run: run.id, stage: 'ingest' });
    expect(ingest.error).toEqual(failed.error);
  });

  it('fails the job cleanly when the handler crashes, and the service carries on', async () => {
    api.setFaults({ slow: { pages: [1], delayMs: 60_000 } });
    const catalog: JobCatalog = { ...FAST, ingest: { ...FAST.ingest, attempts: 1 } };
    const t = await start({}, catalog);
    const { run } = await t.app.runs.create({ source: 'demo' });
    await waitFor(
      async () => ((await em(t).findOneOrFail(Run, run.id)).status === 'RUNNING' ? true : undefined),
      'ingest to start',
    );
    // Kill the child process that runs the handler, as an out-of-memory kill would.
    const pid = await waitFor(async () => {
      const { stdout } = await promisify(execFile)('pgrep', [
        '-f',
        '-P',
        String(process.pid),
        'local-runner.ts',
      ]).catch(() => ({ stdout: '' }));
      return stdout.trim().split('\n')[0] || undefined;
    }, 'the handler process');
    process.kill(Number(pid), 'SIGKILL');

    const failed = await finishedRun(t, run.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toMatchObject({
      reason: 'crash',
      message: 'ingest handler crashed (signal SIGKILL)',
      stage: 'ingest',
    });
    api.setFaults({});
    expect((await request(t.app.server).get('/health/ready')).status).toBe(200);
    const { run: next } = await t.app.runs.create({ source: 'demo' });
    expect((await finishedRun(t, next.id)).status).toBe('COMPLETED');
  });
});
