import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Job, LakeFile, Run } from '../../service/state/entities/index.ts';
import { startTestApp, withMaxActiveRuns, type TestApp } from '../support/app.ts';
import { OTHER_TOKEN, TOKEN } from '../support/env.ts';

// Only the API role: no worker picks the runs up, so their state stays as the API left it. Runs stay open, so
// the demo source's maxActiveRuns is raised for them all to be admitted (test/api/admission.test.ts covers it).
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: { AFLUENTE_ROLES: 'api' }, sources: await withMaxActiveRuns(1000) });
});
afterAll(async () => t.close());

const auth = { authorization: `Bearer ${TOKEN}` };
interface OpenApiOperation {
  security?: unknown[];
  responses: Record<string, unknown>;
}
const api = () => request(t.app.server);
const countRuns = () => t.app.orm.em.fork().count(Run, {});

async function expectNothingWritten<T>(action: () => Promise<T>): Promise<T> {
  const before = await countRuns();
  const result = await action();
  expect(await countRuns()).toBe(before);
  return result;
}

describe('POST /runs', () => {
  it('creates the run, queues its first stage, and answers 202 with the run', async () => {
    const res = await api()
      .post('/runs')
      .set(auth)
      .send({ source: 'demo', params: { from: '2026-01-01', to: '2026-01-02T00:00:00Z' } });
    expect(res.status).toBe(202);
    expect(res.headers.location).toBe(`/runs/${res.body.id}`);
    expect(res.body).toMatchObject({
      source: 'demo',
      trigger: 'manual',
      status: 'PENDING',
      plan: ['ingest', 'validate', 'transform', 'load'],
      params: { window: { from: '2026-01-01T00:00:00.000Z', to: '2026-01-02T00:00:00.000Z' } },
      links: { self: `/runs/${res.body.id}` },
    });
    const queued = await t.app.queues.get('ingest').getJob(`run-${res.body.id}.ingest.1`);
    expect(queued?.data).toMatchObject({ runId: res.body.id, runAttempt: 1 });
  });

  it('returns the same run for a retried request with the same Idempotency-Key', async () => {
    const first = await api()
      .post('/runs')
      .set(auth)
      .set('idempotency-key', 'k-123')
      .send({ source: 'demo' });
    const second = await expectNothingWritten(() =>
      api().post('/runs').set(auth).set('idempotency-key', 'k-123').send({ source: 'demo' }),
    );
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.body.id).toBe(first.body.id);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(await t.app.queues.get('ingest').getJobCountByTypes('waiting')).toBeGreaterThan(0);
  });

  it('creates one run when two requests with one key race', async () => {
    const send = () =>
      api().post('/runs').set(auth).set('idempotency-key', 'race-1').send({ source: 'demo' });
    const [a, b] = await Promise.all([send(), send()]);
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.body.id).toBe(b.body.id);
    expect(await t.app.orm.em.fork().count(Run, { idempotencyKey: 'race-1' })).toBe(1);
  });

  it('refuses an Idempotency-Key reused for a different request, naming the key', async () => {
    await api().post('/runs').set(auth).set('idempotency-key', 'k-reuse').send({ source: 'demo' });
    const res = await expectNothingWritten(() =>
      api()
        .post('/runs')
        .set(auth)
        .set('idempotency-key', 'k-reuse')
        .send({ source: 'demo', params: { cursor: 'x' } }),
    );
    expect(res.status).toBe(422);
    expect(res.body.message).toMatch(
      /^Idempotency-Key "k-reuse" was already used for a different request \(run \d+\)/,
    );
  });

  it.each([
    [{ source: 'nope' }, 400, 'unknown source "nope"'],
    [{}, 400, 'body.source is required'],
    [
      { source: 'demo', params: { from: 'yesterday' } },
      400,
      'body.params.from must be an ISO date (2026-01-31 or 2026-01-31T12:00:00Z)',
    ],
    [{ source: 'demo', params: { from: '2026-02-30' } }, 400, 'body.params.from must be an ISO date'],
    [
      { source: 'demo', params: { from: '2026-02-02', to: '2026-02-01' } },
      400,
      'body.params.from must be before body.params.to',
    ],
    [{ source: 'demo', url: 'http://evil.example' }, 400, 'body.url is not allowed'],
    [{ source: 42 }, 400, 'body.source must be string'],
  ])(
    'rejects %j with %i and a message naming the problem, writing nothing',
    async (body, status, message) => {
      const res = await expectNothingWritten(() => api().post('/runs').set(auth).send(body));
      expect(res.status).toBe(status);
      expect(res.body.message).toContain(message);
      expect(res.body).toMatchObject({ statusCode: status, requestId: expect.any(String) });
    },
  );

  it('rejects malformed JSON with a 400', async () => {
    const res = await expectNothingWritten(() =>
      api().post('/runs').set(auth).set('content-type', 'application/json').send('{"source": '),
    );
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/JSON/);
  });

  it('rejects a body over the size limit with a 413', async () => {
    const res = await expectNothingWritten(() =>
      api()
        .post('/runs')
        .set(auth)
        .send({ source: 'demo', params: { cursor: 'x'.repeat(70_000) } }),
    );
    expect(res.status).toBe(413);
    expect(res.body.message).toBe('request body is larger than 65536 bytes (AFLUENTE_BODY_LIMIT_BYTES)');
  });

  it('rejects a body that is not JSON with a 415 that says what to send', async () => {
    const res = await expectNothingWritten(() =>
      api()
        .post('/runs')
        .set(auth)
        .set('content-type', 'application/x-www-form-urlencoded')
        .send('source=demo'),
    );
    expect(res.status).toBe(415);
    expect(res.body.message).toBe(
      'unsupported content type "application/x-www-form-urlencoded": send a JSON body with Content-Type: application/json',
    );
  });

  it('rejects a bad Idempotency-Key header', async () => {
    const res = await expectNothingWritten(() =>
      api().post('/runs').set(auth).set('idempotency-key', 'x'.repeat(300)).send({ source: 'demo' }),
    );
    expect(res.status).toBe(400);
    expect(res.body.message).toContain('headers.idempotency-key must NOT have more than 255 characters');
  });
});

describe('GET /runs', () => {
  it('filters by source and status and pages by keyset, newest first', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 5; i++)
      ids.push((await api().post('/runs').set(auth).send({ source: 'demo' })).body.id);
    await api().post(`/runs/${ids[0]}/cancel`).set(auth).send();

    const pending: number[] = [];
    let cursor: string | null = null;
    do {
      const res = await api()
        .get('/runs')
        .set(auth)
        .query({ source: 'demo', status: 'PENDING', limit: 2, ...(cursor ? { cursor } : {}) });
      expect(res.status).toBe(200);
      expect(res.body.items.length).toBeLessThanOrEqual(2);
      pending.push(...res.body.items.map((r: { id: number; status: string }) => r.id));
      expect(res.body.items.every((r: { status: string }) => r.status === 'PENDING')).toBe(true);
      cursor = res.body.nextCursor;
    } while (cursor);

    expect(pending).toEqual([...pending].sort((a, b) => b - a));
    expect(pending).toEqual(expect.arrayContaining(ids.slice(1)));
    expect(pending).not.toContain(ids[0]);
    expect(new Set(pending).size).toBe(pending.length);

    const cancelled = await api().get('/runs').set(auth).query({ status: 'CANCELLED' });
    expect(cancelled.body.items.map((r: { id: number }) => r.id)).toEqual([ids[0]]);
    const other = await api().get('/runs').set(auth).query({ source: 'other' });
    expect(other.body).toEqual({ items: [], nextCursor: null });
  });

  it.each([
    [{ status: 'DONE' }, 'querystring.status must be one of PENDING, RUNNING, COMPLETED, FAILED, CANCELLED'],
    [{ limit: 0 }, 'querystring.limit must be >= 1'],
    [{ limit: 'ten' }, 'querystring.limit must be integer'],
    [{ cursor: 'garbage' }, 'querystring.cursor is not a cursor returned by GET /runs'],
    [{ colour: 'blue' }, 'querystring.colour is not allowed'],
  ])('rejects %j with a 400 naming the parameter', async (query, message) => {
    const res = await api().get('/runs').set(auth).query(query);
    expect(res.status).toBe(400);
    expect(res.body.message).toBe(message);
  });
});

describe('GET /runs/:id', () => {
  it('returns the run with its jobs and files', async () => {
    const created = await api().post('/runs').set(auth).send({ source: 'demo' });
    const id = created.body.id as number;
    const empty = await api().get(`/runs/${id}`).set(auth);
    expect(empty.status).toBe(200);
    expect(empty.body).toMatchObject({ id, status: 'PENDING', files: [] });
    expect(empty.body.jobs).toEqual([
      expect.objectContaining({
        stage: 'ingest',
        status: 'PENDING',
        attempt: 0,
        maxAttempts: 3,
        runAttempt: 1,
      }),
    ]);

    // A stage records its lake files like this; the API shows each with the job that produced it.
    const em = t.app.orm.em.fork();
    const job = await em.findOneOrFail(Job, { run: id, stage: 'ingest' });
    const uri = `file://.data/lake/raw/source=demo/dt=2026-01-01/run=${id}/part-00000.ndjson.gz`;
    const sha256 = 'ab'.repeat(32);
    em.create(LakeFile, { uri, layer: 'raw', records: 10, bytes: 321, sha256, run: id, producedBy: job });
    await em.flush();
    const res = await api().get(`/runs/${id}`).set(auth);
    expect(res.body.files).toEqual([
      {
        uri,
        layer: 'raw',
        table: null,
        records: 10,
        bytes: 321,
        sha256,
        producedBy: { jobId: job.id, stage: 'ingest' },
      },
    ]);
  });

  it('answers 404 for a run that does not exist and 400 for an id that is not one', async () => {
    const missing = await api().get('/runs/999999').set(auth);
    expect(missing.status).toBe(404);
    expect(missing.body.message).toBe('run 999999 not found');
    const bad = await api().get('/runs/abc').set(auth);
    expect(bad.status).toBe(400);
    expect(bad.body.message).toBe('params.id must be integer');
  });
});

describe('POST /runs/:id/cancel', () => {
  it('cancels an open run, records who, removes its queued job, and refuses a second cancel with 409', async () => {
    const created = await api().post('/runs').set(auth).send({ source: 'demo' });
    const id = created.body.id as number;
    const res = await api()
      .post(`/runs/${id}/cancel`)
      .set({ authorization: `Bearer ${OTHER_TOKEN}` })
      .send({ reason: 'wrong window' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id,
      status: 'CANCELLED',
      cancelledBy: 'ops',
      error: { reason: 'cancelled', message: 'cancelled by ops: wrong window' },
    });
    expect(await t.app.queues.get('ingest').getJob(`run-${id}.ingest.1`)).toBeUndefined();
    const detail = await api().get(`/runs/${id}`).set(auth);
    expect(detail.body.jobs[0].status).toBe('CANCELLED');

    const again = await api().post(`/runs/${id}/cancel`).set(auth).send();
    expect(again.status).toBe(409);
    expect(again.body.message).toBe(`run ${id} is already CANCELLED and cannot be cancelled`);
  });

  it('answers 404 for an unknown run', async () => {
    const res = await api().post('/runs/424242/cancel').set(auth).send();
    expect(res.status).toBe(404);
    expect(res.body.message).toBe('run 424242 not found');
  });
});

describe('auth', () => {
  it.each([
    ['GET', '/runs'],
    ['POST', '/runs'],
    ['GET', '/runs/1'],
    ['POST', '/runs/1/cancel'],
    ['GET', '/sources'],
    ['GET', '/sources/demo'],
    ['GET', '/metrics'],
  ])('%s %s needs a bearer token', async (method, path) => {
    const res = await expectNothingWritten(() =>
      method === 'GET' ? api().get(path) : api().post(path).send({ source: 'demo' }),
    );
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="afluente"');
    expect(res.body.message).toBe('missing bearer token: send the header "Authorization: Bearer <token>"');
  });

  it('refuses a wrong token', async () => {
    const res = await api().get('/runs').set({ authorization: 'Bearer not-the-token-at-all' });
    expect(res.status).toBe(401);
    expect(res.body.message).toBe('invalid bearer token');
  });

  it('leaves health public', async () => {
    expect((await api().get('/health/live')).status).toBe(200);
    expect((await api().get('/health/ready')).status).toBe(200);
  });
});

describe('the HTTP surface', () => {
  it('sets security headers and echoes the request id', async () => {
    const res = await api().get('/health/live').set('x-request-id', 'abc-123');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['strict-transport-security']).toBeDefined();
    expect(res.headers['x-request-id']).toBe('abc-123');
  });

  it('answers an unknown route with a JSON 404', async () => {
    const res = await api().get('/nope').set(auth);
    expect(res.status).toBe(404);
    expect(res.body.message).toBe('route GET /nope not found');
  });

  it('answers a path parameter over the router limit with a 414 in the API error shape', async () => {
    const res = await api()
      .get(`/sources/${'s'.repeat(101)}`)
      .set(auth)
      .set('x-request-id', 'long-1');
    expect(res.status).toBe(414);
    expect(res.headers['x-request-id']).toBe('long-1');
    expect(res.body).toEqual({
      statusCode: 414,
      error: 'URI Too Long',
      message: 'a path parameter is longer than 100 characters, the most the API accepts',
      requestId: 'long-1',
    });
  });

  it('answers a path that does not decode with a 400 in the API error shape', async () => {
    const res = await api().get('/sources/%E0%A4%A').set(auth);
    expect(res.status).toBe(400);
    expect(res.body).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      message: 'the URL path /sources/%E0%A4%A is not valid percent-encoding',
      requestId: res.headers['x-request-id'],
    });
  });

  it('serves an OpenAPI document generated from the route schemas, and Swagger UI at /docs', async () => {
    const doc = await api().get('/docs/json');
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe('3.1.0');
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining([
        '/runs',
        '/runs/{id}',
        '/runs/{id}/cancel',
        '/sources',
        '/sources/{name}',
        '/health/ready',
        '/metrics',
      ]),
    );
    expect(doc.body.paths['/runs'].post.requestBody.content['application/json'].schema.required).toEqual([
      'source',
    ]);
    expect(doc.body.components.securitySchemes.bearerAuth).toEqual({ type: 'http', scheme: 'bearer' });
    expect(doc.body.paths['/health/live'].get.security).toEqual([]);
    // Every route behind the token documents its 401, and the rate limit's 429 (health is neither).
    const authed = Object.entries(doc.body.paths as Record<string, Record<string, OpenApiOperation>>)
      .flatMap(([path, operations]) =>
        Object.entries(operations).map(([method, op]) => ({ path, method, op })),
      )
      .filter(({ op }) => op.security === undefined || op.security.length > 0);
    expect(authed.map(({ path }) => path)).toContain('/metrics');
    for (const { path, method, op } of authed)
      expect(Object.keys(op.responses), `${method.toUpperCase()} ${path}`).toEqual(
        expect.arrayContaining(['401', '429']),
      );
    expect(doc.body.paths['/metrics'].get.responses['200'].content).toHaveProperty('text/plain');
    const ui = await api().get('/docs/').redirects(1);
    expect(ui.status).toBe(200);
    expect(ui.text).toContain('swagger');
  });

  it('exposes Prometheus metrics: runs created, stage durations, queue depth, HTTP latency', async () => {
    await api().post('/runs').set(auth).send({ source: 'demo' });
    const res = await api().get('/metrics').set(auth);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.text).toMatch(/^afluente_runs_created_total\{source="demo",trigger="manual"\} [1-9]\d*$/m);
    expect(res.text).toMatch(/^afluente_queue_jobs\{queue="ingest",state="waiting"\} [1-9]\d*$/m);
    expect(res.text).toContain('# TYPE afluente_stage_duration_seconds histogram');
    expect(res.text).toMatch(
      /^afluente_http_request_duration_seconds_count\{method="POST",route="\/runs",status_code="202"\} [1-9]\d*$/m,
    );
  });
});
