// A source's table spec changes between runs, as a new sources file after a deploy does, and the next load
// brings the warehouse to it: on the real service, the embedded engine and PostgreSQL. A column and a child
// table are added and a type widened, in the load's own transaction; a narrowing fails the run at once, before
// any row changes, naming the column; taking it back and retrying the run loads exact rows.
import type { EntityManager } from '@mikro-orm/mysql';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stageViews } from '../../cli/stages.ts';
import type { RunDetail } from '../../cli/types.ts';
import type { TableSpec } from '../../contract/source-config.ts';
import { orderAt } from '../../demo/source-api/records.ts';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import type { LoadedSource, LoadedSources } from '../../service/config/sources.ts';
import { SourceState } from '../../service/state/entities/index.ts';
import { demoSourcesAt, finishedRun, startTestApp, withEngine, type TestApp } from '../support/app.ts';
import { FAST_CATALOG } from '../support/catalog.ts';
import { demoRows } from '../support/demo-source-file.ts';
import { TOKEN } from '../support/env.ts';
import { tableContents } from '../support/warehouse.ts';

const RECORDS = 120;
const auth = { authorization: `Bearer ${TOKEN}` };

let api: DemoApi;
let lakeDir: string;
let sources: LoadedSources;
let shipped: LoadedSource;
let t: TestApp;
let db: pg.Client;

beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS, pageSize: 50 });
  lakeDir = await mkdtemp(join(tmpdir(), 'afluente-evolution-'));
  sources = await withEngine('embedded', await demoSourcesAt(`${api.url}/orders`));
  shipped = sources.sources.get('demo') as LoadedSource;
  t = await startTestApp({
    env: { AFLUENTE_LAKE_URI: pathToFileURL(lakeDir).href },
    sources,
    catalog: FAST_CATALOG,
  });
  db = new pg.Client({ connectionString: t.config.warehouse.url });
  await db.connect();
});

afterAll(async () => {
  await db?.end();
  await t?.close();
  await api?.close();
  if (lakeDir) await rm(lakeDir, { recursive: true, force: true });
});

/** The source as a new sources file would have it: the shipped tables with `change` applied. */
function configure(change: (tables: Record<string, TableSpec>) => void): void {
  const tables: Record<string, TableSpec> = structuredClone(shipped.tables);
  change(tables);
  (sources.sources as Map<string, LoadedSource>).set('demo', { ...shipped, tables });
}

const evolved = (tables: Record<string, TableSpec>): void => {
  const orders = tables.orders as TableSpec;
  orders.columns.customer_email = { path: 'customer.email', type: 'string' };
  (tables.order_items as TableSpec).columns.quantity = { path: 'quantity', type: 'bigint' };
  // The tags as a new child table (the tables it replaces stays in the warehouse, as it was).
  delete tables.order_tags;
  tables.order_labels = {
    from: 'tags',
    parentKey: { order_id: 'id' },
    index: 'position',
    key: ['order_id', 'position'],
    columns: { label: { path: '.', type: 'string' } },
    unknownFields: 'ignore',
  };
};

/** A run of every record: the source's cursor is cleared first, so the run is not incremental. */
async function run(): Promise<{ id: number; status: string; error?: { message: string } | null }> {
  await (t.app.orm.em.fork() as EntityManager).nativeUpdate(
    SourceState,
    { source: 'demo' },
    { cursor: null },
  );
  const res = await request(t.app.server).post('/runs').set(auth).send({ source: 'demo' });
  expect(res.status).toBe(202);
  return finishedRun(t, res.body.id as number, 240_000);
}

async function view(id: number): Promise<{
  counts: { rows: Record<string, number> };
  error: { message: string } | null;
  jobs: { stage: string; status: string; attempt: number; metrics: Record<string, unknown> }[];
}> {
  return (await request(t.app.server).get(`/runs/${id}`).set(auth).expect(200)).body;
}

const count = async (table: string) => (await tableContents(db, t.config.warehouse.schema, table)).n;

/** Every business row of the tables, hashed. */
async function digest(tables: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const table of tables) out[table] = (await tableContents(db, t.config.warehouse.schema, table)).digest;
  return out;
}

const loadJob = async (id: number) => (await view(id)).jobs.filter((j) => j.stage === 'load').at(-1);

describe('schema evolution: the warehouse follows the source’s table spec', () => {
  const expected = demoRows(RECORDS);

  it('loads the shipped tables first', async () => {
    const first = await run();
    expect(first.status).toBe('COMPLETED');
    expect((await loadJob(first.id))?.metrics.schemaChanges).toEqual([
      'create table orders',
      'create table order_items',
      'create table order_tags',
    ]);
    for (const [table, n] of Object.entries(expected)) expect(await count(table), table).toBe(n);
  }, 300_000);

  it('adds a column and a child table and widens a type in the next load', async () => {
    configure(evolved);
    // Before the load, the source's schema shows what it will change: from the loaded version to the config.
    const pending = (await request(t.app.server).get('/sources/demo/schema').set(auth).expect(200)).body;
    expect(pending.current.versionId).toBeNull();
    expect(pending.versions).toHaveLength(1);
    expect(pending.diff).toMatchObject({
      from: { versionId: pending.versions[0].id },
      to: { versionId: null },
      unchanged: false,
      tablesAdded: [{ table: 'order_labels' }],
      tablesRemoved: [{ table: 'order_tags' }],
    });
    expect(pending.diff.tablesChanged).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          table: 'orders',
          columnsAdded: [{ column: 'customer_email', type: 'string', path: 'customer.email' }],
        }),
        expect.objectContaining({
          table: 'order_items',
          typesChanged: [{ column: 'quantity', from: 'int', to: 'bigint' }],
        }),
      ]),
    );
    const second = await run();
    expect(second.error?.message ?? second.status).toBe('COMPLETED');
    const load = await loadJob(second.id);
    expect(load?.metrics.schemaChanges).toEqual([
      'add column orders.customer_email',
      'widen column order_items.quantity',
      'create table order_labels',
    ]);
    expect(load?.metrics.keptColumns).toEqual({});
    // The config the run loaded is the source's second schema version, loaded by this run.
    const schema = (await request(t.app.server).get('/sources/demo/schema').set(auth).expect(200)).body;
    expect(schema.versions).toHaveLength(2);
    expect(schema.current).toEqual({ hash: schema.versions[1].hash, versionId: schema.versions[1].id });
    expect(schema.versions[1]).toMatchObject({ current: true, runs: 1, latestRunId: second.id });
    expect(load?.metrics.schemaVersion).toBe(schema.versions[1].id);
    // `afluente show` lists them on the load's line.
    const shown = stageViews((await view(second.id)) as unknown as RunDetail).find((v) => v.stage === 'load');
    expect(shown?.records).toMatch(
      /; schema: add column orders\.customer_email, widen column order_items\.quantity, create table order_labels$/,
    );
    expect((await view(second.id)).counts.rows).toEqual({
      orders: expected.orders,
      order_items: expected.order_items,
      order_labels: expected.order_tags,
    });

    // Every order's email, as the source served it; the widened column holds the same quantities.
    const { rows: emails } = await db.query<{ id: string; customer_email: string }>(
      `SELECT id::text, customer_email FROM "${t.config.warehouse.schema}".orders x ORDER BY x.id`,
    );
    const served = Array.from({ length: RECORDS }, (_, i) => orderAt(i, 1));
    expect(emails).toEqual(
      [...served]
        .sort((a, b) => a.id - b.id)
        .map((o) => ({ id: String(o.id), customer_email: o.customer.email })),
    );
    const { rows: types } = await db.query<{ data_type: string }>(
      `SELECT data_type FROM information_schema.columns
        WHERE table_schema = $1 AND table_name = 'order_items' AND column_name = 'quantity'`,
      [t.config.warehouse.schema],
    );
    expect(types).toEqual([{ data_type: 'bigint' }]);
    expect(await count('order_labels')).toBe(expected.order_tags);
    expect(await count('order_tags')).toBe(expected.order_tags);
    expect(await count('orders')).toBe(RECORDS);
  }, 300_000);

  it('refuses a narrowing before any row changes, and a replay after it is taken back loads exact rows', async () => {
    const tables = ['orders', 'order_items', 'order_tags', 'order_labels'];
    const before = await digest(tables);
    configure((t) => {
      evolved(t);
      (t.order_items as TableSpec).columns.unit_price = { path: 'unit_price', type: 'decimal(12,4)' };
    });
    const third = await run();
    expect(third.status).toBe('FAILED');
    expect(third.error?.message).toMatch(
      /table .*\.order_items, column unit_price: the warehouse has decimal\(12,2\), the source config says decimal\(12,4\), which would change or lose loaded values; keep the type/,
    );
    // No retry can fix it: the load failed on its first attempt.
    const load = await loadJob(third.id);
    expect(load).toMatchObject({ status: 'FAILED', attempt: 1 });
    expect(await digest(tables)).toEqual(before);

    configure(evolved);
    // A retry would load the tables the run already split with the refused type: the run is replayed from its
    // transform, which splits its validated records again with the spec taken back.
    const replay = await request(t.app.server)
      .post('/runs')
      .set(auth)
      .send({ source: 'demo', from: { run: third.id, stage: 'transform' } });
    expect(replay.status).toBe(202);
    const done = await finishedRun(t, replay.body.id as number, 240_000);
    expect(done.error?.message ?? done.status).toBe('COMPLETED');
    expect((await loadJob(done.id))?.metrics.schemaChanges).toEqual([]);
    // The same records again: the same rows, once each.
    expect(await digest(tables)).toEqual(before);
    for (const [table, n] of Object.entries({ ...expected, order_labels: expected.order_tags }))
      expect(await count(table), table).toBe(n);
  }, 300_000);
});
