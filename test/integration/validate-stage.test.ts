import type { EntityManager } from '@mikro-orm/mysql';
import { Redis } from 'ioredis';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { orderAt } from '../../demo/source-api/records.ts';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { openLake } from '../../lib/lake/open-lake.ts';
import { loadSources, type LoadedSources } from '../../service/config/sources.ts';
import { InvocationEvents } from '../../service/invocation/events.ts';
import { LocalLambdaInvoker } from '../../service/invocation/local-invoker.ts';
import { createLogger } from '../../service/observability/logger.ts';
import type { StageHandlers } from '../../service/orchestration/stage-handler.ts';
import { validateStage } from '../../service/stages/validate.ts';
import { Job, LakeFile } from '../../service/state/entities/index.ts';
import { demoSourcesAt, finishedRun, startTestApp, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';
import {
  demoConfig,
  DT,
  ingestAll,
  limits,
  PAGINATIONS,
  readManifest,
  request as ingestRequest,
} from '../support/ingest.ts';

// The validate stage as the service runs it: real ingest, then the validate Lambda on groups of raw parts in
// child processes (the local invoker), results through the Redis event hub, then the quality gate.

const RECORDS = 1_200;
let api: DemoApi;
let sources: LoadedSources;
beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS, pageSize: 300 });
  sources = await demoSourcesAt(`${api.url}/orders`);
});
afterAll(async () => api.close());

const ok = () => Promise.resolve({});
const later: Partial<StageHandlers> = { transform: ok, load: ok };
const open: TestApp[] = [];
async function start(with_ = sources): Promise<TestApp> {
  const lake = await mkdtemp(join(tmpdir(), 'afluente-validate-'));
  const t = await startTestApp({
    sources: with_,
    handlers: later,
    // 4 raw parts of 300 records, validated 2 parts per invocation: 2 groups.
    env: {
      AFLUENTE_LAKE_URI: `file://${lake}`,
      AFLUENTE_INGEST_PART_MAX_RECORDS: '300',
      AFLUENTE_VALIDATE_PARTS_PER_GROUP: '2',
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

describe('the validate stage', () => {
  it('validates every group, commits the stage, and counts reconcile with what was fetched', async () => {
    api.setFaults({ badRecords: { every: 50 } });
    const t = await start();
    const { run } = await t.app.runs.create({ source: 'demo' });
    const done = await finishedRun(t, run.id);
    expect(done.status).toBe('COMPLETED');
    expect({ fetched: done.fetched, valid: done.valid, rejected: done.rejected }).toEqual({
      fetched: RECORDS,
      valid: RECORDS - 24,
      rejected: 24,
    });
    const job = await em(t).findOneOrFail(Job, { run: run.id, stage: 'validate' });
    expect(job.metrics).toMatchObject({
      read: RECORDS,
      valid: RECORDS - 24,
      rejected: 24,
      groups: 2,
      invocations: 2,
    });
    const files = await em(t).find(LakeFile, { run: run.id, producedBy: job });
    expect(files.filter((f) => f.layer === 'validated').reduce((n, f) => n + (f.records ?? 0), 0)).toBe(
      RECORDS - 24,
    );
    expect(files.filter((f) => f.layer === 'rejected').reduce((n, f) => n + (f.records ?? 0), 0)).toBe(24);
    const detail = await request(t.app.server)
      .get(`/runs/${run.id}`)
      .set({ authorization: `Bearer ${TOKEN}` });
    expect(detail.body.counts).toMatchObject({ fetched: RECORDS, valid: RECORDS - 24, rejected: 24 });

    // GET /runs/:id/rejects pages through them with their reasons.
    const auth = { authorization: `Bearer ${TOKEN}` };
    const seen: {
      record: { id: number | null };
      source: { file: string; line: number };
      errors: unknown[];
    }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await request(t.app.server)
        .get(`/runs/${run.id}/rejects`)
        .set(auth)
        .query({ limit: 10, ...(cursor ? { cursor } : {}) });
      expect(res.status).toBe(200);
      expect(res.body.total).toBe(24);
      seen.push(...res.body.items);
      cursor = res.body.nextCursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toHaveLength(24);
    expect(new Set(seen.map((r) => `${r.source.file}:${r.source.line}`)).size).toBe(24);
    expect(seen.every((r) => r.source.file.startsWith('raw/source=demo/') && r.errors.length > 0)).toBe(true);
    expect(seen[0]).toMatchObject({
      record: { id: 50 },
      source: { line: 50 },
      errors: [{ path: '/status', message: 'is required' }],
    });

    const bad = await request(t.app.server)
      .get(`/runs/${run.id}/rejects`)
      .set(auth)
      .query({ cursor: 'nope' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toBe('querystring.cursor is not a cursor returned by GET /runs/:id/rejects');
    const tooMany = await request(t.app.server)
      .get(`/runs/${run.id}/rejects`)
      .set(auth)
      .query({ limit: 501 });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.message).toBe('querystring.limit must be <= 500');
    const missing = await request(t.app.server).get('/runs/999999/rejects').set(auth);
    expect(missing.status).toBe(404);
    const { run: fresh } = await t.app.runs.create({ source: 'demo' });
    await t.app.runs.cancel(fresh.id, 'tester');
    const notYet = await request(t.app.server).get(`/runs/${fresh.id}/rejects`).set(auth);
    expect(notYet.status).toBe(409);
    expect(notYet.body.message).toBe(
      `run ${fresh.id} has no rejects yet: its validate stage has not committed`,
    );
  });

  it('fails the run at the quality gate with the ratio and the top errors, keeping what it wrote', async () => {
    api.setFaults({ badRecords: { every: 10 } });
    const t = await start();
    const { run } = await t.app.runs.create({ source: 'demo' });
    const failed = await finishedRun(t, run.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toMatchObject({
      reason: 'quality_gate',
      stage: 'validate',
      message:
        'rejected 120 of 1200 records (10%), above quality.maxRejectRatio 5%; top errors: ' +
        '"/id must be integer" (40), "/status is required" (40), "/total must be number" (40)',
    });
    expect(failed.rejected).toBe(120);
    expect(await em(t).count(LakeFile, { run: run.id, layer: 'rejected' })).toBeGreaterThan(0);
  });
});

describe('drift', () => {
  /**
   * The shipped demo source from a sources file without `schema` (so its schema is derived from tables), with
   * the one field of the demo records its tables leave out (customer.email) named, and `onDrift` set.
   */
  async function driftSources(onDrift: 'warn' | 'fail'): Promise<LoadedSources> {
    const shipped = await readFile('config/sources.yaml', 'utf8');
    const email = '          customer_email: { path: customer.email, type: string }\n';
    const edited = shipped
      .replace('http://127.0.0.1:8787/orders', `${api.url}/orders`)
      .replace(/^ {4}schema: .*\n/m, `    onDrift: ${onDrift}\n`)
      .replace(/^( {10}customer_country: .*\n)/m, `$1${email}`);
    if (!edited.includes(email) || !edited.includes('onDrift'))
      throw new Error('config/sources.yaml changed');
    const file = join(await mkdtemp(join(tmpdir(), 'afluente-drift-')), 'sources.yaml');
    await writeFile(file, edited);
    const loaded = await loadSources(file);
    expect(loaded.sources.get('demo')?.onDrift).toBe(onDrift);
    expect(loaded.sources.get('demo')?.schemaPath).toBeUndefined();
    return loaded;
  }
  const discount = (count: number) => ({ path: 'discount', type: 'number', count, sample: '0.05' });

  it('counts a new field exactly and shows it on the run and the source, with onDrift: warn', async () => {
    // Records 4, 8, … get `discount`; the first is record 4, whose discount is 0.05.
    api.setFaults({ newField: { every: 4 } });
    const t = await start(await driftSources('warn'));
    const { run } = await t.app.runs.create({ source: 'demo' });
    const done = await finishedRun(t, run.id);
    expect(done.status).toBe('COMPLETED');
    const drift = { records: RECORDS, truncated: false, fields: [discount(RECORDS / 4)] };
    const job = await em(t).findOneOrFail(Job, { run: run.id, stage: 'validate' });
    expect(job.metrics?.drift).toEqual(drift);
    const auth = { authorization: `Bearer ${TOKEN}` };
    const detail = await request(t.app.server).get(`/runs/${run.id}`).set(auth);
    expect(detail.body.drift).toEqual(drift);
    const source = await request(t.app.server).get('/sources/demo').set(auth);
    expect(source.body).toMatchObject({ onDrift: 'warn', drift: { run: run.id, ...drift } });
  });

  it('fails the run with onDrift: fail, naming the new field, before anything is loaded', async () => {
    const t = await start(await driftSources('fail'));
    api.setFaults({ newField: { every: 3 } });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const failed = await finishedRun(t, run.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toMatchObject({
      reason: 'schema_drift',
      stage: 'validate',
      message:
        'schema drift, and the source has onDrift: fail: new field `discount` (number) in 400 of 1,200 records. ' +
        'Name them in tables (or set onDrift: warn), then retry the run',
    });
    const jobs = await em(t).find(Job, { run: run.id }, { orderBy: { id: 'asc' } });
    expect(jobs.map((j) => [j.stage, j.status])).toEqual([
      ['ingest', 'COMPLETED'],
      ['validate', 'FAILED'],
    ]);
    expect(jobs[1]?.metrics?.drift).toMatchObject({
      records: RECORDS,
      fields: [{ path: 'discount', count: 400 }],
    });
    // Without drift the run goes through (a failed run moves no cursor, so this one reads every record too).
    api.setFaults({});
    const { run: clean } = await t.app.runs.create({ source: 'demo' });
    const cleanDone = await finishedRun(t, clean.id);
    expect(cleanDone.status).toBe('COMPLETED');
    const cleanJob = await em(t).findOneOrFail(Job, { run: clean.id, stage: 'validate' });
    expect(cleanJob.metrics?.drift).toEqual({ records: RECORDS, truncated: false, fields: [] });
  });
});

describe('a failed validate group', () => {
  it('is retried alone: groups that committed are reused, and the drift still sums exactly', async () => {
    api.setFaults({ newField: { every: 5 } });
    const lake = openLake(`file://${await mkdtemp(join(tmpdir(), 'afluente-groups-'))}`);
    const config = await demoConfig(`${api.url}/orders`, PAGINATIONS.page(300).pagination, {
      allowPrivateNetwork: true,
    });
    await ingestAll(ingestRequest(config, lake, { limits: limits({ partMaxRecords: 300 }) }), lake);
    const raw = await readManifest(lake);
    const victim = raw.files[3]!.key;
    const original = await lake.getBytes(victim);
    await lake.put(victim, 'not gzip at all');

    const redis = new Redis();
    const events = new InvocationEvents(redis, `test-groups-${process.pid}`);
    const logger = createLogger('silent');
    const invoker = new LocalLambdaInvoker(events, logger, { memoryMb: 512 });
    const stage = validateStage({
      lake,
      invoker,
      events,
      sources: sources.sources,
      concurrency: 2,
      partsPerGroup: 2,
      parts: { partMaxRecords: 1000, partMaxBytes: 1 << 26 },
      resultTimeoutMs: 60_000,
    });
    const ctx = (attempt: number) =>
      ({
        stage: 'validate',
        payload: { runId: 7, jobId: 2, runAttempt: 1 },
        run: { id: 7, source: 'demo', createdAt: new Date(`${DT}T10:00:00Z`) },
        job: { id: 2, attempt },
        signal: new AbortController().signal,
        logger,
      }) as never;
    try {
      await expect(stage(ctx(1))).rejects.toThrow(
        /^validate group 1: raw part .*part-00003\.ndjson\.gz is not valid gzip/,
      );
      await lake.put(victim, original);
      const outcome = await stage(ctx(2));
      expect(outcome.metrics).toMatchObject({ groups: 2, invocations: 1, read: RECORDS });
      expect(outcome.counts).toEqual({ valid: RECORDS, rejected: 0 });
      // Group 0 (records 1-600) committed in the first attempt and group 1 in the second: each counted once.
      // The shipped demo tables leave the records' customer.email out, so it is drift too.
      expect(outcome.metrics?.drift).toEqual({
        records: RECORDS,
        truncated: false,
        fields: [
          {
            path: 'customer.email',
            type: 'string',
            count: RECORDS,
            sample: JSON.stringify(orderAt(0, 1).customer.email),
          },
          { path: 'discount', type: 'number', count: RECORDS / 5, sample: '0.06' },
        ],
      });

      // Once the tables name `discount`, a retry validates every group again instead of reusing ones counted
      // against the old tables.
      const demo = sources.sources.get('demo')!;
      const orders = demo.tables.orders!;
      const named = {
        ...demo,
        tables: {
          ...demo.tables,
          orders: {
            ...orders,
            columns: { ...orders.columns, discount: { path: 'discount', type: 'double' } },
          },
        },
      } satisfies typeof demo;
      const again = await validateStage({
        lake,
        invoker,
        events,
        sources: new Map([['demo', named]]),
        concurrency: 2,
        partsPerGroup: 2,
        parts: { partMaxRecords: 1000, partMaxBytes: 1 << 26 },
        resultTimeoutMs: 60_000,
      })(ctx(3));
      expect(again.metrics).toMatchObject({ groups: 2, invocations: 2, read: RECORDS });
      expect((again.metrics?.drift as { fields: { path: string }[] }).fields.map((f) => f.path)).toEqual([
        'customer.email',
      ]);
    } finally {
      await invoker.close();
      redis.disconnect();
    }
  });
});
