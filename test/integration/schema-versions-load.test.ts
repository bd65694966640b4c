import type { EntityManager } from '@mikro-orm/mysql';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TableSpec } from '../../contract/source-config.ts';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import type { LoadedSource } from '../../service/config/sources.ts';
import { Run, SchemaVersion } from '../../service/state/entities/index.ts';
import { demoSourcesAt, finishedRun, startTestApp, type TestApp } from '../support/app.ts';
import { demoRows } from '../support/demo-source-file.ts';
import { TOKEN } from '../support/env.ts';
import { tableContents } from '../support/warehouse.ts';

// Schema versions through real runs: the demo API, the local Lambdas, the embedded engine (DuckDB) and PostgreSQL.
// The source's tables change between runs the way an operator edits the sources file (the loaded config is
// replaced in place): a new child table (the load creates it), then a changed key, which the load refuses before
// any warehouse row changes, and which a retry that accepts it loads once the operator dropped the table.

const ORDERS = 40;
const auth = { authorization: `Bearer ${TOKEN}` };
/** Every run fetches every order: the cursor of a run is before the demo API's first record. */
const ALL = { source: 'demo', params: { cursor: '2000-01-01T00:00:00Z' } };

let api: DemoApi;
let t: TestApp;
let db: pg.Client;
let lakeDir: string;
let shipped: LoadedSource;

beforeAll(async () => {
  api = await startDemoApi({ records: ORDERS, pageSize: 100 });
  lakeDir = await mkdtemp(join(tmpdir(), 'afluente-schema-versions-'));
  const sources = await demoSourcesAt(`${api.url}/orders`);
  shipped = sources.sources.get('demo') as LoadedSource;
  t = await startTestApp({ sources, env: { AFLUENTE_LAKE_URI: pathToFileURL(lakeDir).href } });
  db = new pg.Client({ connectionString: t.config.warehouse.url });
  await db.connect();
});
afterAll(async () => {
  await db?.end();
  await t?.close();
  await api?.close();
  if (lakeDir) await rm(lakeDir, { recursive: true, force: true });
});

const em = (): EntityManager => t.app.orm.em.fork();
const schemaOf = (query = '') => request(t.app.server).get(`/sources/demo/schema${query}`).set(auth);

/** What an operator's edit of the sources file does: the demo source with these tables from the next run on. */
function setTables(tables: Record<string, TableSpec>): void {
  (t.app.sources.sources as Map<string, LoadedSource>).set('demo', { ...shipped, tables });
}

async function runToEnd(body: object = ALL): Promise<Run> {
  const res = await request(t.app.server).post('/runs').set(auth).send(body);
  expect(res.status).toBe(202);
  return finishedRun(t, res.body.id as number, 120_000);
}

const contents = (table: string) => tableContents(db, t.config.warehouse.schema, table);

async function ledgerRows(runId: number): Promise<number> {
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM "${t.config.warehouse.schema}"._afluente_load_ledger WHERE run_id = $1`,
    [runId],
  );
  return Number(rows[0]?.n);
}

const versionOf = async (runId: number): Promise<number | undefined> =>
  (await em().findOneOrFail(Run, runId)).schemaVersion?.id;

describe('schema versions through real loads', () => {
  const expected = demoRows(ORDERS);
  let items: TableSpec;
  let first: Run;
  let second: Run;
  let refused: Run;
  let v1: number;
  let v2: number;

  it('records the version a run loads, and marks it loaded when the load commits', async () => {
    items = shipped.tables.order_items as TableSpec;
    first = await runToEnd();
    expect(first.status).toBe('COMPLETED');
    expect(first.rows).toEqual(expected);
    v1 = (await versionOf(first.id)) as number;
    expect(v1).toBeGreaterThan(0);

    const res = await schemaOf();
    expect(res.body).toMatchObject({
      current: { versionId: v1 },
      latestLoadedId: v1,
      versions: [
        { id: v1, current: true, runs: 1, latestRunId: first.id, firstLoadedAt: expect.any(String) },
      ],
      diff: { from: { versionId: v1 }, to: { versionId: v1 }, unchanged: true },
    });
    // The version is the spec the load step was handed.
    const version = await em().findOneOrFail(SchemaVersion, v1);
    expect(version.spec).toEqual({ tables: shipped.tables, cursorColumn: 'updated_at' });
  });

  it('shows a new child table in the diff before the next load, then loads it as a new version', async () => {
    setTables({
      ...shipped.tables,
      // A second table from the tags (an array of strings; DuckDB reads an array one way for all its tables).
      tag_list: {
        from: 'tags',
        parentKey: { order_id: 'id' },
        index: 'position',
        key: ['order_id', 'position'],
        columns: { value: { path: '.', type: 'string' } },
        unknownFields: 'ignore',
      },
    });
    const before = await schemaOf();
    expect(before.body.current.versionId).toBeNull();
    expect(before.body.diff).toMatchObject({
      from: { versionId: v1 },
      to: { versionId: null, label: 'the current config' },
      tablesAdded: [
        {
          table: 'tag_list',
          columns: [
            { column: 'order_id', type: 'bigint' },
            { column: 'position', type: 'int' },
            { column: 'value', type: 'string' },
          ],
        },
      ],
      tablesRemoved: [],
      tablesChanged: [],
    });

    second = await runToEnd();
    expect(second.status).toBe('COMPLETED');
    expect(second.rows).toEqual({ ...expected, tag_list: expected.order_tags });
    v2 = (await versionOf(second.id)) as number;
    expect(v2).not.toBe(v1);
    expect(await contents('tag_list')).toMatchObject({ n: expected.order_tags });

    const after = await schemaOf();
    expect(after.body).toMatchObject({ current: { versionId: v2 }, latestLoadedId: v2 });
    expect(after.body.versions).toMatchObject([
      { id: v1, current: false, runs: 1, latestRunId: first.id },
      { id: v2, current: true, runs: 1, latestRunId: second.id, firstLoadedAt: expect.any(String) },
    ]);
    // The diff between the two, by ids.
    const between = await schemaOf(`?from=${v1}&to=${v2}`);
    expect(between.body.diff.tablesAdded.map((x: { table: string }) => x.table)).toEqual(['tag_list']);
  });

  it('refuses a changed key before any warehouse row changes, naming the table, both keys and what to do', async () => {
    const tables = (await em().findOneOrFail(SchemaVersion, v2)).spec.tables;
    setTables({ ...tables, order_items: { ...items, key: ['order_id', 'sku', 'line'] } });
    const pending = await schemaOf();
    expect(pending.body.diff.tablesChanged).toEqual([
      expect.objectContaining({
        table: 'order_items',
        keyChanged: {
          from: { key: ['order_id', 'line'], parentKey: { order_id: 'id' }, from: 'items' },
          to: { key: ['order_id', 'sku', 'line'], parentKey: { order_id: 'id' }, from: 'items' },
        },
      }),
    ]);
    const warehouse = {
      orders: await contents('orders'),
      order_items: await contents('order_items'),
      tag_list: await contents('tag_list'),
    };

    refused = await runToEnd();
    expect(refused.status).toBe('FAILED');
    expect(refused.error).toMatchObject({ reason: 'key_changed', stage: 'load' });
    const message = refused.error?.message ?? '';
    expect(message).toContain(
      'source "demo": load refused before any warehouse row changed: table "order_items" key [order_id, line] → ' +
        `[order_id, sku, line] since schema version ${v2} (last loaded `,
    );
    expect(message).toContain(`drop or rename ${t.config.warehouse.schema}.order_items in the warehouse`);
    expect(message).toContain(`POST /runs/${refused.id}/retry {"acceptKeyChange": true}`);
    // Not retried (one attempt), and nothing reached the warehouse.
    const view = await request(t.app.server).get(`/runs/${refused.id}`).set(auth);
    const load = view.body.jobs.find((j: { stage: string }) => j.stage === 'load');
    expect(load).toMatchObject({ status: 'FAILED', attempt: 1, externalId: null });
    expect(await ledgerRows(refused.id)).toBe(0);
    expect({
      orders: await contents('orders'),
      order_items: await contents('order_items'),
      tag_list: await contents('tag_list'),
    }).toEqual(warehouse);

    // The refused run recorded the version it would have loaded; nothing marked it loaded.
    const v3 = await versionOf(refused.id);
    const versions = await schemaOf();
    expect(versions.body).toMatchObject({ current: { versionId: v3 }, latestLoadedId: v2 });
    expect(versions.body.versions[2]).toMatchObject({ id: v3, firstLoadedAt: null, runs: 0 });
  });

  it('loads the new key when a retry accepts it after the operator dropped the table', async () => {
    await db.query(`DROP TABLE "${t.config.warehouse.schema}".order_items`);
    const res = await request(t.app.server)
      .post(`/runs/${refused.id}/retry`)
      .set(auth)
      .send({ acceptKeyChange: true });
    expect(res.status).toBe(202);
    const done = await finishedRun(t, refused.id, 120_000);
    expect(done.status).toBe('COMPLETED');
    expect(await contents('order_items')).toMatchObject({ n: expected.order_items });
    const view = await request(t.app.server).get(`/runs/${refused.id}`).set(auth);
    const load = view.body.jobs.find(
      (j: { stage: string; runAttempt: number }) => j.stage === 'load' && j.runAttempt === 2,
    );
    expect(load.metrics).toMatchObject({ keyChangeAccepted: ['order_items'] });

    // The new key is now what loads are compared with: the next run loads without accepting anything.
    const v3 = (await versionOf(refused.id)) as number;
    const next = await runToEnd();
    expect(next.status).toBe('COMPLETED');
    expect(await versionOf(next.id)).toBe(v3);
    const versions = await schemaOf();
    expect(versions.body).toMatchObject({ latestLoadedId: v3, current: { versionId: v3 } });
    expect(versions.body.versions[2]).toMatchObject({ id: v3, runs: 2, latestRunId: next.id });
  });

  it('keeps the latest loaded version when a replay finds an older load committed', async () => {
    const before = await em().findOneOrFail(SchemaVersion, v1);
    const res = await request(t.app.server)
      .post('/runs')
      .set(auth)
      .send({ source: 'demo', from: { run: first.id, stage: 'load' } });
    expect(res.status).toBe(202);
    const replay = await finishedRun(t, res.body.id as number, 120_000);
    expect(replay.status).toBe('COMPLETED');
    // It loaded the first run's data, of version 1, which changed nothing: version 3 is still the latest loaded.
    expect(await versionOf(replay.id)).toBe(v1);
    const after = await em().findOneOrFail(SchemaVersion, v1);
    expect(after.lastLoadedAt).toEqual(before.lastLoadedAt);
    const versions = await schemaOf();
    expect(versions.body.latestLoadedId).toBe(await versionOf(refused.id));
  });
});
