import type { EntityManager } from '@mikro-orm/mysql';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import type { LoadedSource } from '../../service/config/sources.ts';
import type { StageHandlers } from '../../service/orchestration/stage-handler.ts';
import { Job, LakeFile, SourceState } from '../../service/state/entities/index.ts';
import { demoSourcesAt, finishedRun, startTestApp, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';

// POST /runs {source, from: {run, stage}} on the real ingest and validate (local Lambdas) against the demo API,
// whose request count shows the replay never calls it. Transform and load are stand-ins here; the end-to-end
// suite replays the real Spark transform and load against PostgreSQL.

const RECORDS = 250;
const auth = { authorization: `Bearer ${TOKEN}` };
let api: DemoApi;
let t: TestApp;
let fixed: LoadedSource;
const handlers: Partial<StageHandlers> = {
  transform: async () => ({ counts: {} }),
  load: async () => ({ counts: {} }),
};

/** The shipped demo source with a schema bug: `cancelled` is missing from the status enum. */
function withSchemaBug(source: LoadedSource): LoadedSource {
  const document = structuredClone(source.schemaDocument) as {
    properties: { status: { enum: string[] } };
  };
  document.properties.status.enum = document.properties.status.enum.filter((s) => s !== 'cancelled');
  return { ...source, schemaDocument: document, quality: { maxRejectRatio: 1 } };
}

beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS, pageSize: 100 });
  const sources = await demoSourcesAt(`${api.url}/orders`);
  fixed = sources.sources.get('demo') as LoadedSource;
  (sources.sources as Map<string, LoadedSource>).set('demo', withSchemaBug(fixed));
  t = await startTestApp({
    sources,
    handlers,
    env: { AFLUENTE_LAKE_URI: `file://${await mkdtemp(join(tmpdir(), 'afluente-replay-'))}` },
  });
});
afterAll(async () => {
  await t?.close();
  await api?.close();
});

const em = (): EntityManager => t.app.orm.em.fork();
const post = (body: object) => request(t.app.server).post('/runs').set(auth).send(body);

describe('replay: POST /runs {source, from: {run, stage}}', () => {
  it('re-validates an earlier run’s raw data after a schema fix, without calling the API again', async () => {
    const first = await finishedRun(t, (await post({ source: 'demo' })).body.id as number, 60_000);
    expect(first.status).toBe('COMPLETED');
    // The schema bug rejected every cancelled order.
    expect(first.rejected).toBeGreaterThan(0);
    expect((first.valid ?? 0) + (first.rejected ?? 0)).toBe(RECORDS);
    const cursor = (await em().findOne(SourceState, 'demo'))?.cursor;
    const calls = api.stats().requests;

    (t.app.sources.sources as Map<string, LoadedSource>).set('demo', fixed); // the schema fix
    const res = await post({ source: 'demo', from: { run: first.id, stage: 'validate' } });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({
      trigger: 'replay',
      plan: ['validate', 'transform', 'load'],
      replayOf: first.id,
      params: null,
    });
    const replay = await finishedRun(t, res.body.id as number, 60_000);
    expect(replay.status).toBe('COMPLETED');
    expect(api.stats().requests).toBe(calls);
    expect({ fetched: replay.fetched, valid: replay.valid, rejected: replay.rejected }).toEqual({
      fetched: null,
      valid: RECORDS,
      rejected: 0,
    });
    // It read the first run's raw files (its validate job's inputs say so) and wrote validated files of its own.
    const [validate] = await em().find(
      Job,
      { run: replay.id },
      { populate: ['inputs'], orderBy: { id: 'asc' } },
    );
    const raw = await em().find(LakeFile, { run: first.id, layer: 'raw' }, { orderBy: { id: 'asc' } });
    expect(raw.length).toBeGreaterThan(0);
    expect(validate?.inputs.getItems().map((f) => f.uri)).toEqual(raw.map((f) => f.uri));
    const validated = await em().find(LakeFile, { run: replay.id, layer: 'validated' });
    expect(validated.length).toBeGreaterThan(0);
    for (const file of validated) expect(file.uri).toContain(`/run=${replay.id}/`);
    // A replay runs no ingest, so the source's cursor stays where the first run left it.
    expect((await em().findOne(SourceState, 'demo'))?.cursor).toBe(cursor);
    // GET shows where it came from.
    const shown = await request(t.app.server).get(`/runs/${replay.id}`).set(auth);
    expect(shown.body).toMatchObject({ replayOf: first.id, trigger: 'replay' });
  });

  it('starts later stages too, and a replay of a replay reads the origin’s files', async () => {
    const origin = await finishedRun(t, (await post({ source: 'demo' })).body.id as number, 60_000);
    const calls = api.stats().requests;
    const fromTransform = await post({ source: 'demo', from: { run: origin.id, stage: 'transform' } });
    expect(fromTransform.body).toMatchObject({ plan: ['transform', 'load'], replayOf: origin.id });
    const r1 = await finishedRun(t, fromTransform.body.id as number, 60_000);
    expect(r1.status).toBe('COMPLETED');
    // r1 has no validated data of its own: replaying it from transform again reads the origin's.
    const again = await post({ source: 'demo', from: { run: r1.id, stage: 'transform' } });
    expect(again.status).toBe(202);
    expect(again.body.replayOf).toBe(origin.id);
    const [job] = await em().find(Job, { run: again.body.id as number }, { populate: ['inputs'] });
    expect(job?.params).toMatchObject({ input: { run: origin.id } });
    expect(job?.inputs.getItems().every((f) => f.uri.includes(`/run=${origin.id}/`))).toBe(true);
    expect(job?.inputs.length).toBeGreaterThan(0);
    expect((await finishedRun(t, again.body.id as number, 60_000)).status).toBe('COMPLETED');
    expect(api.stats().requests).toBe(calls);
  });

  it('gives a replayed load the params the earlier load job was created with', async () => {
    const origin = await finishedRun(t, (await post({ source: 'demo' })).body.id as number, 60_000);
    await em().nativeUpdate(
      Job,
      { run: origin.id, stage: 'load' },
      { params: { mode: 'delete+insert', schema: 'kept' } },
    );
    const res = await post({ source: 'demo', from: { run: origin.id, stage: 'load' } });
    expect(res.body.plan).toEqual(['load']);
    const [job] = await em().find(Job, { run: res.body.id as number });
    expect(job?.params).toMatchObject({ mode: 'delete+insert', schema: 'kept', input: { run: origin.id } });
    expect((await finishedRun(t, res.body.id as number, 60_000)).status).toBe('COMPLETED');
  });

  it('refuses what cannot be replayed, naming why', async () => {
    const done = await finishedRun(t, (await post({ source: 'demo' })).body.id as number, 60_000);
    const cases: [object, number, string][] = [
      [
        { source: 'demo', from: { run: done.id, stage: 'ingest' } },
        400,
        'body.from.stage must be one of validate, transform, load',
      ],
      [
        { source: 'demo', from: { run: 999_999, stage: 'validate' } },
        400,
        'body.from.run: run 999999 does not exist',
      ],
      [
        { source: 'demo', from: { run: done.id, stage: 'load' }, params: { cursor: 'x' } },
        400,
        'body.params cannot be given with body.from',
      ],
    ];
    for (const [body, status, message] of cases) {
      const res = await post(body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.body.message).toContain(message);
    }

    // A run whose ingest failed (the API answers 401, which no retry fixes) committed no raw data.
    api.setFaults({ unauthorized: true });
    const broken = await post({ source: 'demo' });
    const failed = await finishedRun(t, broken.body.id as number, 60_000);
    api.setFaults({});
    expect(failed.status).toBe('FAILED');
    const res = await post({ source: 'demo', from: { run: failed.id, stage: 'validate' } });
    expect(res.status).toBe(409);
    expect(res.body.message).toBe(
      `run ${failed.id} has no committed raw data to replay "validate" from: its ingest stage never completed ` +
        '(the run is FAILED)',
    );
  });
});
