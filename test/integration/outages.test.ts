// The service while Redis or MySQL is down: private servers that the test stops and starts (never the shared ones),
// under the whole app (api, scheduler and worker roles) with stand-in stage handlers.
import type { EntityManager } from '@mikro-orm/mysql';
import { Writable } from 'node:stream';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Stage } from '../../contract/stages.ts';
import { createLogger } from '../../service/observability/logger.ts';
import type { Dependency } from '../../service/observability/dependencies.ts';
import { NonRetryableError, type StageHandler } from '../../service/orchestration/stage-handler.ts';
import { Backfill, Job, Run } from '../../service/state/entities/index.ts';
import { finishedRun, startTestApp, withMaxActiveRuns, type TestApp } from '../support/app.ts';
import { FAST_CATALOG } from '../support/catalog.ts';
import { TOKEN } from '../support/env.ts';
import { PrivateMariaDb, PrivateRedis } from '../support/private-services.ts';
import { waitFor } from '../support/wait.ts';

/** A request that waited for the outage to end would take as long as the outage; this bounds "at once". */
const PROMPT_MS = 5000;

// Keeps its data across a stop, like a network outage or a restart of a persistent node: a job a worker holds
// through the outage is still there to finish.
let redis: PrivateRedis;
let mariadb: PrivateMariaDb;
let t: TestApp;
/** Every log line of the app, parsed. */
const lines: { level: string; msg: string; dependency?: Dependency }[] = [];
/** The stages each run's handlers ran, in order. */
const ran = new Map<number, Stage[]>();

/**
 * Stand-in stages: each records that it ran and completes. A run with `params.cursor` "fail" fails its ingest for
 * good, and one with "block" holds its ingest until it is stopped.
 */
function stage<S extends Stage>(name: S): StageHandler<S> {
  return async ({ payload, run, signal }) => {
    ran.set(payload.runId, [...(ran.get(payload.runId) ?? []), name]);
    if (name === 'ingest' && run.params?.cursor === 'fail')
      throw new NonRetryableError('bad_config', 'fails');
    if (name === 'ingest' && run.params?.cursor === 'block')
      await new Promise((_, reject) => signal.addEventListener('abort', () => reject(new Error('stopped'))));
    return { counts: {} };
  };
}

beforeAll(async () => {
  [redis, mariadb] = await Promise.all([PrivateRedis.start({ keepData: true }), PrivateMariaDb.start()]);
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  t = await startTestApp({
    env: {
      AFLUENTE_REDIS_URL: redis.url,
      AFLUENTE_MYSQL_URL: mariadb.url('afluente_outages'),
      // Sweeps often, so an outage makes many of them fail: the logs must still say it once.
      AFLUENTE_DISPATCH_INTERVAL_MS: '300',
      AFLUENTE_RECONCILE_INTERVAL_MS: '300',
      AFLUENTE_LOG_LEVEL: 'info',
    },
    logger: createLogger('info', sink),
    sources: await withMaxActiveRuns(10),
    catalog: FAST_CATALOG,
    handlers: {
      ingest: stage('ingest'),
      validate: stage('validate'),
      transform: stage('transform'),
      load: stage('load'),
    },
  });
}, 120_000);

// A test that failed halfway must not leave the next one without its servers.
beforeEach(async () => {
  await Promise.all([redis.start(), mariadb.start()]);
  await waitFor(
    async () => (t.app.dependencies.isDown('redis') || t.app.dependencies.isDown('mysql') ? undefined : true),
    'MySQL and Redis to be seen up',
  );
});

afterAll(async () => {
  await Promise.all([redis?.start(), mariadb?.start()]);
  await t?.close();
  await Promise.all([redis?.dispose(), mariadb?.dispose()]);
});

const auth = { authorization: `Bearer ${TOKEN}` };
const api = () => request(t.app.server);
const em = (): EntityManager => t.app.orm.em.fork();

/** A request's answer and how long it took. */
async function timed(req: request.Test): Promise<{ res: request.Response; ms: number }> {
  const started = Date.now();
  const res = await req;
  return { res, ms: Date.now() - started };
}

async function createRun(body: object, key?: string): Promise<number> {
  const res = await api()
    .post('/runs')
    .set({ ...auth, ...(key ? { 'idempotency-key': key } : {}) })
    .send(body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.id as number;
}

async function statusOf(id: number): Promise<string> {
  return (await em().findOneOrFail(Run, id)).status;
}

/** The warn and error lines logged since `from`, and the lines that say an outage began or ended. */
function logsSince(from: number) {
  const since = lines.slice(from);
  return {
    loud: since.filter((l) => l.level === 'warn' || l.level === 'error').map((l) => l.msg),
    ended: since.filter((l) => /is reachable again/.test(l.msg)).map((l) => l.dependency),
  };
}

describe('a Redis outage', () => {
  it('refuses new work with a 503 naming Redis at once, keeps serving reads and cancels, and logs the outage once', async () => {
    const failed = await createRun({ source: 'demo', params: { cursor: 'fail' } });
    expect((await finishedRun(t, failed)).status).toBe('FAILED');
    const blocked = await createRun({ source: 'demo', params: { cursor: 'block' } });
    await waitFor(async () => (ran.get(blocked)?.length ? true : undefined), 'the blocked run to start');
    const runsBefore = await em().count(Run);
    const from = lines.length;
    const stderr = vi.spyOn(console, 'error');

    // Redis goes between the MySQL commit of a run and the queueing of its first stage.
    const enqueue = t.app.queues.enqueue.bind(t.app.queues);
    const racing = vi.spyOn(t.app.queues, 'enqueue').mockImplementationOnce(async (...args) => {
      await redis.stop();
      return enqueue(...args);
    });
    const raced = await timed(
      api().post('/runs').set(auth).set('idempotency-key', 'raced').send({ source: 'demo' }),
    );
    racing.mockRestore();
    expect(raced.res.status, JSON.stringify(raced.res.body)).toBe(202);
    expect(raced.ms).toBeLessThan(PROMPT_MS);
    const racedId = raced.res.body.id as number;
    expect(await statusOf(racedId)).toBe('PENDING');

    await waitFor(
      async () => (t.app.dependencies.isDown('redis') ? true : undefined),
      'Redis to be seen down',
    );
    const refused = await timed(api().post('/runs').set(auth).send({ source: 'demo' }));
    expect(refused.res.status).toBe(503);
    expect(refused.res.body.message).toMatch(/^Redis is unreachable; no run was created; retry the request/);
    expect(refused.ms).toBeLessThan(PROMPT_MS);
    // The same Idempotency-Key returns the run it made, with or without Redis.
    const again = await api()
      .post('/runs')
      .set(auth)
      .set('idempotency-key', 'raced')
      .send({ source: 'demo' });
    expect([again.status, again.body.id, again.headers['idempotent-replayed']]).toEqual([
      202,
      racedId,
      'true',
    ]);

    const retry = await timed(api().post(`/runs/${failed}/retry`).set(auth));
    expect(retry.res.status).toBe(503);
    expect(retry.res.body.message).toMatch(/^Redis is unreachable; run \d+ was not retried/);
    expect(retry.ms).toBeLessThan(PROMPT_MS);
    expect((await em().findOneOrFail(Run, failed)).attempt).toBe(1);

    const backfill = await timed(
      api()
        .post('/sources/demo/backfill')
        .set(auth)
        .send({ from: '2026-01-01', to: '2026-01-03', step: 'P1D' }),
    );
    expect(backfill.res.status).toBe(503);
    expect(backfill.res.body.message).toMatch(/^Redis is unreachable; no backfill was created/);
    expect(backfill.ms).toBeLessThan(PROMPT_MS);
    expect(await em().count(Run)).toBe(runsBefore + 1);
    expect(await em().count(Backfill)).toBe(0);

    // A cancel is MySQL's business: it holds without Redis (a worker skips a cancelled job it takes).
    const cancel = await timed(api().post(`/runs/${blocked}/cancel`).set(auth));
    expect([cancel.res.status, cancel.res.body.status]).toEqual([200, 'CANCELLED']);
    expect(cancel.ms).toBeLessThan(PROMPT_MS);
    // Reads need only MySQL, and the rate limit, which counts in Redis, lets them through.
    const list = await timed(api().get('/runs').set(auth));
    expect(list.res.status).toBe(200);
    expect(list.ms).toBeLessThan(PROMPT_MS);
    const metrics = await timed(api().get('/metrics').set(auth));
    expect(metrics.res.status).toBe(200);
    expect(metrics.ms).toBeLessThan(PROMPT_MS);
    const ready = await api().get('/health/ready');
    expect([ready.status, ready.body.message]).toEqual([
      503,
      expect.stringMatching(/^redis is unreachable: /),
    ]);

    // Workers, queues and clients fail over and over while Redis is away; none of it is logged on its own.
    await waitFor(
      async () => (t.app.dependencies.state('redis').failures >= 10 ? true : undefined),
      'the outage to cause failures',
    );
    expect(redis.running).toBe(false);
    await redis.start();
    await waitFor(
      async () => (t.app.dependencies.isDown('redis') ? undefined : true),
      'Redis to be seen back',
    );

    // The raced run starts once Redis is back, and runs each stage once.
    expect((await finishedRun(t, racedId)).status).toBe('COMPLETED');
    expect(ran.get(racedId)).toEqual(['ingest', 'validate', 'transform', 'load']);
    const jobs = await em().find(Job, { run: racedId }, { orderBy: { id: 'asc' } });
    expect(jobs.map((j) => [j.stage, j.status])).toEqual(
      ['ingest', 'validate', 'transform', 'load'].map((s) => [s, 'COMPLETED']),
    );
    // New work is taken again, and runs.
    const after = await createRun({ source: 'demo' });
    expect((await finishedRun(t, after)).status).toBe('COMPLETED');
    expect(await statusOf(blocked)).toBe('CANCELLED');

    const { loud, ended } = logsSince(from);
    expect(loud).toEqual([expect.stringMatching(/^Redis is unreachable: /)]);
    expect(ended).toEqual(['redis']);
    expect(stderr).not.toHaveBeenCalled();
    stderr.mockRestore();
  });
});

describe('a MySQL outage', () => {
  it('answers 503 naming MySQL on every route that needs it, recovers, and logs the outage once', async () => {
    const id = await createRun({ source: 'demo' });
    expect((await finishedRun(t, id)).status).toBe('COMPLETED');
    const from = lines.length;

    await mariadb.stop();
    const requests = {
      'GET /runs': () => api().get('/runs'),
      [`GET /runs/${id}`]: () => api().get(`/runs/${id}`),
      'GET /sources': () => api().get('/sources'),
      'POST /runs': () => api().post('/runs').send({ source: 'demo' }),
    };
    for (const [name, send] of Object.entries(requests)) {
      const { res, ms } = await timed(send().set(auth));
      expect([name, res.status, res.body.message]).toEqual([name, 503, 'MySQL is unreachable; retry later']);
      expect(ms).toBeLessThan(PROMPT_MS);
    }
    const ready = await api().get('/health/ready');
    expect([ready.status, ready.body.message]).toEqual([
      503,
      expect.stringMatching(/^mysql is unreachable: /),
    ]);

    // The sweeps fail every 300 ms while MySQL is away; none of it is logged on its own.
    await waitFor(
      async () => (t.app.dependencies.state('mysql').failures >= 5 ? true : undefined),
      'the outage to cause failures',
    );
    await mariadb.start();
    await waitFor(
      async () => ((await api().get('/runs').set(auth)).status === 200 ? true : undefined),
      'reads to recover',
    );
    expect((await api().get(`/runs/${id}`).set(auth)).body.status).toBe('COMPLETED');
    await waitFor(
      async () => (t.app.dependencies.isDown('mysql') ? undefined : true),
      'MySQL to be seen back',
    );
    expect((await finishedRun(t, await createRun({ source: 'demo' }))).status).toBe('COMPLETED');

    const { loud, ended } = logsSince(from);
    expect(loud).toEqual([expect.stringMatching(/^MySQL is unreachable: /)]);
    expect(ended).toEqual(['mysql']);
  });
});

describe('the API document', () => {
  it('gives the 503 of an outage on the routes that need MySQL or Redis', async () => {
    const { paths } = (await api().get('/docs/json')).body;
    for (const [path, method] of [
      ['/runs', 'post'],
      ['/runs', 'get'],
      ['/runs/{id}', 'get'],
      ['/runs/{id}/retry', 'post'],
      ['/sources/{name}/backfill', 'post'],
    ] as const)
      expect([path, method, Object.keys(paths[path][method].responses)]).toEqual([
        path,
        method,
        expect.arrayContaining(['503']),
      ]);
  });
});
