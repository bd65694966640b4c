import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedSource } from '../../service/config/sources.ts';
import { specHash, warehouseSpec, type WarehouseSpec } from '../../service/schema/spec.ts';
import { Job, Run } from '../../service/state/entities/index.ts';
import { Status } from '../../service/state/status.ts';
import { startTestApp, withMaxActiveRuns, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';

// GET /sources/:name/schema, and what a retry and a run say of schema versions. Only the API role: the test
// records versions through the store the load stage uses, as a load would, and decides each run's status.
let t: TestApp;
let demo: LoadedSource;
let current: WarehouseSpec;
beforeAll(async () => {
  t = await startTestApp({ env: { AFLUENTE_ROLES: 'api' }, sources: await withMaxActiveRuns(1000) });
  demo = t.app.sources.sources.get('demo') as LoadedSource;
  current = warehouseSpec(demo.tables, demo.incremental?.cursorField ?? null);
});
afterAll(async () => t?.close());

const auth = { authorization: `Bearer ${TOKEN}` };
const api = () => request(t.app.server);
const em = () => t.app.orm.em.fork();
const schemaOf = (query = '') => api().get(`/sources/demo/schema${query}`).set(auth);

/** The demo config as it was before: no `currency` on orders, and a narrower `total`. */
function older(): WarehouseSpec {
  const orders = current.tables.orders;
  if (!orders) throw new Error('the demo source has no orders table');
  const { currency: _currency, ...columns } = orders.columns;
  return {
    ...current,
    tables: {
      ...current.tables,
      orders: { ...orders, columns: { ...columns, total: { path: 'total', type: 'decimal(10,2)' } } },
    },
  };
}

/** A run of demo whose load recorded `spec`, left in `status`. */
async function runWith(spec: WarehouseSpec, status: Status): Promise<{ run: number; version: number }> {
  const e = em();
  const run = e.create(Run, { source: 'demo', plan: ['ingest', 'validate', 'transform', 'load'], status });
  await e.flush();
  const version = await t.app.schemaVersions.record('demo', run.id, spec);
  return { run: run.id, version: version.id };
}

describe('GET /sources/:name/schema', () => {
  let v1: number;
  let loadedBy: number;

  it('before any load: no versions, the current config has no version, and every table is new', async () => {
    const res = await schemaOf();
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      source: 'demo',
      current: { hash: specHash(current), versionId: null },
      latestLoadedId: null,
      versions: [],
      diff: {
        from: { versionId: null, hash: null, label: 'nothing loaded' },
        to: { versionId: null, hash: specHash(current), label: 'the current config' },
        unchanged: false,
        tablesRemoved: [],
        tablesChanged: [],
        cursorColumn: null,
      },
    });
    expect(res.body.diff.tablesAdded.map((table: { table: string }) => table.table)).toEqual([
      'orders',
      'order_items',
      'order_tags',
    ]);
    expect(res.body.diff.tablesAdded[1]).toEqual({
      table: 'order_items',
      key: { key: ['order_id', 'line'], parentKey: { order_id: 'id' }, from: 'items' },
      columns: [
        { column: 'order_id', type: 'bigint', path: null },
        { column: 'line', type: 'int', path: 'line' },
        { column: 'sku', type: 'string', path: 'sku' },
        { column: 'quantity', type: 'int', path: 'quantity' },
        { column: 'unit_price', type: 'decimal(12,2)', path: 'unit_price' },
        { column: '_extra', type: 'json', path: null },
      ],
    });
  });

  it('diffs the latest loaded version with the current config, which has no version until a load starts', async () => {
    ({ run: loadedBy, version: v1 } = await runWith(older(), Status.Completed));
    await runWith(older(), Status.Failed); // a failed run does not count as having loaded it
    await t.app.schemaVersions.markLoaded(v1, { at: new Date('2026-02-01T10:00:00.000Z') });

    const res = await schemaOf();
    expect(res.status).toBe(200);
    expect(res.body.current).toEqual({ hash: specHash(current), versionId: null });
    expect(res.body.latestLoadedId).toBe(v1);
    expect(res.body.versions).toEqual([
      {
        id: v1,
        hash: specHash(older()),
        current: false,
        tables: ['orders', 'order_items', 'order_tags'],
        createdAt: expect.any(String),
        firstLoadedAt: '2026-02-01T10:00:00.000Z',
        lastLoadedAt: '2026-02-01T10:00:00.000Z',
        runs: 1,
        latestRunId: loadedBy,
      },
    ]);
    expect(res.body.diff).toEqual({
      from: { versionId: v1, hash: specHash(older()), label: `version ${v1}` },
      to: { versionId: null, hash: specHash(current), label: 'the current config' },
      unchanged: false,
      tablesAdded: [],
      tablesRemoved: [],
      tablesChanged: [
        {
          table: 'orders',
          columnsAdded: [{ column: 'currency', type: 'string', path: 'currency' }],
          columnsRemoved: [],
          typesChanged: [{ column: 'total', from: 'decimal(10,2)', to: 'decimal(12,2)' }],
          pathsChanged: [],
          keyChanged: null,
        },
      ],
      cursorColumn: null,
    });
  });

  it('shows the current config’s version once a load recorded it, and diffs any two versions', async () => {
    const { run, version: v2 } = await runWith(current, Status.Running);
    const res = await schemaOf();
    expect(res.body.current).toEqual({ hash: specHash(current), versionId: v2 });
    expect(res.body.versions.map((v: { id: number; current: boolean }) => [v.id, v.current])).toEqual([
      [v1, false],
      [v2, true],
    ]);
    expect(res.body.versions[1]).toMatchObject({ firstLoadedAt: null, runs: 0, latestRunId: null });
    expect(res.body.diff.to).toEqual({
      versionId: v2,
      hash: specHash(current),
      label: `the current config (version ${v2})`,
    });

    // Backwards, by ids.
    const back = await schemaOf(`?from=${v2}&to=${v1}`);
    expect(back.status).toBe(200);
    expect(back.body.diff.tablesChanged).toEqual([
      {
        table: 'orders',
        columnsAdded: [],
        columnsRemoved: [{ column: 'currency', type: 'string', path: 'currency' }],
        typesChanged: [{ column: 'total', from: 'decimal(12,2)', to: 'decimal(10,2)' }],
        pathsChanged: [],
        keyChanged: null,
      },
    ]);
    // A version with itself, and `from` alone (to the current config).
    const same = await schemaOf(`?from=${v2}&to=${v2}`);
    expect(same.body.diff).toMatchObject({ unchanged: true, tablesAdded: [], tablesChanged: [] });
    const fromOnly = await schemaOf(`?from=${v1}`);
    expect(fromOnly.body.diff.to.versionId).toBe(v2);
    expect(fromOnly.body.diff.tablesChanged).toHaveLength(1);

    // The run shows the version its load recorded.
    const shown = await api().get(`/runs/${run}`).set(auth);
    expect(shown.body.schemaVersion).toBe(v2);
  });

  it('refuses a bad id, an id of another source and an unknown parameter with a 400, and 404s a missing source', async () => {
    const other = await t.app.schemaVersions.ensure('other_source', current);
    const cases: [string, number, string][] = [
      ['?from=999999', 400, 'querystring.from: schema version 999999 does not exist'],
      [
        `?to=${other.id}`,
        400,
        `querystring.to: schema version ${other.id} is of source "other_source", not "demo"`,
      ],
      ['?from=abc', 400, 'querystring.from must be integer'],
      ['?from=0', 400, 'querystring.from must be >= 1'],
      ['?since=1', 400, 'querystring.since is not allowed'],
    ];
    for (const [query, status, message] of cases) {
      const res = await schemaOf(query);
      expect(res.status, query).toBe(status);
      expect(res.body).toMatchObject({ statusCode: status, message });
    }
    const missing = await api().get('/sources/nope/schema').set(auth);
    expect(missing.status).toBe(404);
    expect(missing.body.message).toBe('source "nope" not found');
    expect((await api().get('/sources/demo/schema')).status).toBe(401);
  });

  it('is in the OpenAPI document', async () => {
    const doc = await api().get('/docs/json');
    const op = doc.body.paths['/sources/{name}/schema'].get;
    expect(Object.keys(op.responses).sort()).toEqual(['200', '400', '401', '404', '429', '503']);
    expect(op.parameters.map((p: { name: string }) => p.name).sort()).toEqual(['from', 'name', 'to']);
  });
});

describe('POST /runs/:id/retry with acceptKeyChange', () => {
  async function failedRun(): Promise<number> {
    const created = await api()
      .post('/runs')
      .set(auth)
      .send({ source: 'demo', params: { cursor: 'c-1' } });
    const job = await em().findOneOrFail(Job, { run: created.body.id as number });
    await t.app.engine.start(job.id, 1);
    await t.app.engine.fail(job.id, { reason: 'key_changed', message: 'refused by the test' }, true);
    return created.body.id as number;
  }

  it('stores it in the run’s params for the retried attempt, and a later retry can take it back', async () => {
    const id = await failedRun();
    const res = await api().post(`/runs/${id}/retry`).set(auth).send({ acceptKeyChange: true });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ attempt: 2, params: { cursor: 'c-1', acceptKeyChange: true } });

    const job = await em().findOneOrFail(Job, { run: id, runAttempt: 2 });
    await t.app.engine.start(job.id, 1);
    await t.app.engine.fail(job.id, { reason: 'test', message: 'failed again' }, true);
    const again = await api().post(`/runs/${id}/retry`).set(auth).send({ acceptKeyChange: false });
    expect(again.body).toMatchObject({ attempt: 3, params: { cursor: 'c-1' } });
    expect(again.body.params.acceptKeyChange).toBeUndefined();
  });

  it('refuses a value that is not a boolean, and leaves the run FAILED', async () => {
    const id = await failedRun();
    const bad = await api().post(`/runs/${id}/retry`).set(auth).send({ acceptKeyChange: 'yes' });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toBe('body.acceptKeyChange must be boolean');
    expect(await em().findOneOrFail(Run, id)).toMatchObject({ status: 'FAILED', attempt: 1 });
  });
});
