import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Job, Run } from '../../service/state/entities/index.ts';
import { startTestApp, withMaxActiveRuns, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';

// The `engine` a caller asks for on POST /runs, a replay and a retry, what GET /runs/:id and GET /sources say of
// engines. Only the API role: no worker picks the runs up, so the test decides each job's state.
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: { AFLUENTE_ROLES: 'api' }, sources: await withMaxActiveRuns(1000) });
});
afterAll(async () => t.close());

const auth = { authorization: `Bearer ${TOKEN}` };
const api = () => request(t.app.server);
const em = () => t.app.orm.em.fork();
const BAD_ENGINE = 'body.engine must be one of auto, embedded, spark';

/** A run whose first stage (ingest) failed for good: what POST /runs/:id/retry takes. */
async function failedRun(): Promise<number> {
  const created = await api().post('/runs').set(auth).send({ source: 'demo' });
  const job = await em().findOneOrFail(Job, { run: created.body.id as number });
  expect((await t.app.engine.start(job.id, 1)).action).toBe('run');
  await t.app.engine.fail(job.id, { reason: 'test', message: 'failed by the test', stage: 'ingest' }, true);
  return created.body.id as number;
}

describe('POST /runs with an engine', () => {
  it('stores the engine the run asks for in its params', async () => {
    const res = await api().post('/runs').set(auth).send({ source: 'demo', engine: 'spark' });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ params: { engine: 'spark' }, engine: null, engineReason: null });
    expect((await em().findOneOrFail(Run, res.body.id as number)).params).toEqual({ engine: 'spark' });

    const windowed = await api()
      .post('/runs')
      .set(auth)
      .send({ source: 'demo', params: { from: '2026-01-01', to: '2026-01-02' }, engine: 'embedded' });
    expect(windowed.body.params).toEqual({
      window: { from: '2026-01-01T00:00:00.000Z', to: '2026-01-02T00:00:00.000Z' },
      engine: 'embedded',
    });
  });

  it('refuses an engine it does not know with a 400 naming the field, and creates nothing', async () => {
    const before = await em().count(Run, {});
    for (const engine of ['duckdb', 'SPARK', '', 3]) {
      const res = await api().post('/runs').set(auth).send({ source: 'demo', engine });
      expect(res.status).toBe(400);
      expect(res.body.message).toBe(BAD_ENGINE);
    }
    expect(await em().count(Run, {})).toBe(before);
  });

  it('counts the engine in the request an Idempotency-Key stands for', async () => {
    const first = await api()
      .post('/runs')
      .set(auth)
      .set('idempotency-key', 'engine-1')
      .send({ source: 'demo' });
    const same = await api()
      .post('/runs')
      .set(auth)
      .set('idempotency-key', 'engine-1')
      .send({ source: 'demo' });
    expect(same.body.id).toBe(first.body.id);
    const other = await api()
      .post('/runs')
      .set(auth)
      .set('idempotency-key', 'engine-1')
      .send({ source: 'demo', engine: 'spark' });
    expect(other.status).toBe(422);
  });
});

describe('a replay with an engine', () => {
  it('stores it on the replay, and refuses a bad one naming the field', async () => {
    const replayed = await api().post('/runs').set(auth).send({ source: 'demo' });
    await em().nativeUpdate(Job, { run: replayed.body.id as number }, { status: 'COMPLETED' });

    const res = await api()
      .post('/runs')
      .set(auth)
      .send({ source: 'demo', from: { run: replayed.body.id, stage: 'validate' }, engine: 'embedded' });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({
      trigger: 'replay',
      replayOf: replayed.body.id,
      params: { engine: 'embedded' },
    });

    const bad = await api()
      .post('/runs')
      .set(auth)
      .send({ source: 'demo', from: { run: replayed.body.id, stage: 'validate' }, engine: 'jvm' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toBe(BAD_ENGINE);
  });
});

describe('POST /runs/:id/retry with an engine', () => {
  it('puts the engine in the run’s params for the retried attempt, keeping the rest of them', async () => {
    const created = await api()
      .post('/runs')
      .set(auth)
      .send({ source: 'demo', params: { cursor: 'c-1' }, engine: 'spark' });
    const job = await em().findOneOrFail(Job, { run: created.body.id as number });
    await t.app.engine.start(job.id, 1);
    await t.app.engine.fail(job.id, { reason: 'test', message: 'failed by the test' }, true);

    const res = await api().post(`/runs/${created.body.id}/retry`).set(auth).send({ engine: 'embedded' });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({
      status: 'PENDING',
      attempt: 2,
      params: { cursor: 'c-1', engine: 'embedded' },
    });
  });

  it('retries without a body, or an empty one, leaving the params as they were', async () => {
    const id = await failedRun();
    const res = await api().post(`/runs/${id}/retry`).set(auth);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ attempt: 2, params: null });
    const other = await failedRun();
    expect((await api().post(`/runs/${other}/retry`).set(auth).send({})).body.params).toBeNull();
  });

  it('refuses a bad engine or an unknown field with a 400 naming it, and leaves the run FAILED', async () => {
    const id = await failedRun();
    const bad = await api().post(`/runs/${id}/retry`).set(auth).send({ engine: 'duckdb' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toBe(BAD_ENGINE);
    const unknown = await api().post(`/runs/${id}/retry`).set(auth).send({ engines: 'spark' });
    expect(unknown.status).toBe(400);
    expect(unknown.body.message).toBe('body.engines is not allowed');
    expect(await em().findOneOrFail(Run, id)).toMatchObject({ status: 'FAILED', attempt: 1, params: null });
  });
});

describe('the engine a run and its jobs ran on', () => {
  it('shows on GET /runs/:id, for the run and each job, with why', async () => {
    const created = await api().post('/runs').set(auth).send({ source: 'demo' });
    const id = created.body.id as number;
    const ingest = await em().findOneOrFail(Job, { run: id });
    await em().nativeUpdate(Job, { id: ingest.id }, { status: 'COMPLETED' });
    const fork = em();
    const transform = t.app.engine.createJob(fork, await fork.findOneOrFail(Run, id), 'transform');
    await fork.flush();
    await t.app.engine.start(transform.id, 1);
    const reason = 'auto: validated 1.2 MiB ≤ AFLUENTE_EMBEDDED_MAX_BYTES (2 GiB)';
    await t.app.engine.recordEngine(transform.id, id, { engine: 'embedded', reason });

    const res = await api().get(`/runs/${id}`).set(auth);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ engine: 'embedded', engineReason: reason });
    expect(res.body.jobs.map((j: { stage: string; engine: string | null }) => [j.stage, j.engine])).toEqual([
      ['ingest', null],
      ['transform', 'embedded'],
    ]);
    expect(res.body.jobs[1].engineReason).toBe(reason);
    const listed = await api().get('/runs?limit=1').set(auth);
    expect(listed.body.items[0]).toMatchObject({ id, engine: 'embedded', engineReason: reason });
  });

  it('GET /sources shows each source’s engine', async () => {
    const res = await api().get('/sources').set(auth);
    expect(res.body.items.find((s: { name: string }) => s.name === 'demo')).toMatchObject({ engine: 'auto' });
    expect((await api().get('/sources/demo').set(auth)).body.engine).toBe('auto');
  });
});
