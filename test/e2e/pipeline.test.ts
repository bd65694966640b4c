// The whole pipeline on a small source, as `npm run demo` runs it: HTTP API → ingest → validate → Spark
// split_tables → Spark load_warehouse → PostgreSQL, with the state in MariaDB. Every record the source served
// is checked against the warehouse, row by row.
import type { EntityManager } from '@mikro-orm/mysql';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { orderAt, type Order } from '../../demo/source-api/records.ts';
import { loadResultKey } from '../../contract/steps.ts';
import { Job, Run, SourceState } from '../../service/state/entities/index.ts';
import { demoSourcesAt, finishedRun, startTestApp, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';

const auth = { authorization: `Bearer ${TOKEN}` };
const ORDERS = 60;

/** What the source serves: 60 orders, 4 later repeats of some of them, and one record the schema rejects. */
function feed(): Record<string, unknown>[] {
  const orders: Order[] = Array.from({ length: ORDERS }, (_, i) => orderAt(i, 7));
  const later = (o: Order, ms: number): string => new Date(Date.parse(o.updated_at) + ms).toISOString();
  const repeat = (o: Order, patch: Partial<Order>): Order => ({ ...structuredClone(o), ...patch });
  const byId = (id: number): Order => orders.find((o) => o.id === id) as Order;
  return [
    ...orders.slice(0, 30),
    // Updated upstream while the run was paging: a newer copy with fewer items, served later in the run.
    repeat(byId(5), {
      status: 'shipped',
      updated_at: later(byId(5), 86_400_000),
      items: byId(5).items.slice(0, 1),
    }),
    ...orders.slice(30),
    repeat(byId(17), { updated_at: later(byId(17), 1000), tags: ['unicode ✓ 日本 🚀'] }),
    repeat(byId(33), { updated_at: later(byId(33), 5000), total: 12_345_678.9 }),
    // An older copy served last: the newest one must still win.
    repeat(byId(40), { status: 'cancelled', updated_at: later(byId(40), -60_000) }),
    { ...structuredClone(byId(2)), id: 9001, status: 'not-a-status' },
  ];
}

/** The record of each id that the warehouse must hold: the greatest `updated_at`, and later wins a tie. */
function winners(records: Record<string, unknown>[]): Map<number, Order> {
  const out = new Map<number, Order>();
  for (const r of records as unknown as Order[]) {
    if (r.id === 9001) continue;
    const seen = out.get(r.id);
    if (!seen || Date.parse(r.updated_at) >= Date.parse(seen.updated_at)) out.set(r.id, r);
  }
  return out;
}

/** A page-numbered API over a fixed list; it ignores `updated_since`, so a second run fetches the same data. */
function serve(records: Record<string, unknown>[]): Promise<Server> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const page = Number(url.searchParams.get('page') ?? 1);
    const size = Number(url.searchParams.get('per_page') ?? 25);
    const data = records.slice((page - 1) * size, page * size);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ data, page }));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('the pipeline, end to end, into PostgreSQL', () => {
  const records = feed();
  const expected = winners(records);
  let schema: string;
  let server: Server;
  let lakeDir: string;
  let t: TestApp;
  let db: pg.Client;

  beforeAll(async () => {
    server = await serve(records);
    const { port } = server.address() as { port: number };
    lakeDir = await mkdtemp(join(tmpdir(), 'afluente-e2e-'));
    t = await startTestApp({
      env: {
        AFLUENTE_LAKE_URI: pathToFileURL(lakeDir).href,
        AFLUENTE_SPARK_DRIVER_MEMORY: '1g',
      },
      sources: await demoSourcesAt(`http://127.0.0.1:${port}/orders`),
    });
    schema = t.config.warehouse.schema;
    db = new pg.Client({ connectionString: t.config.warehouse.url });
    await db.connect();
  });

  afterAll(async () => {
    await db?.end();
    // Drops the test's MySQL database and its warehouse schema too.
    await t?.close();
    server?.close();
    if (lakeDir) await rm(lakeDir, { recursive: true, force: true });
  });

  async function runOnce(body: object = { source: 'demo' }): Promise<number> {
    const res = await request(t.app.server).post('/runs').set(auth).send(body);
    expect(res.status).toBe(202);
    const run = await finishedRun(t, res.body.id as number, 240_000);
    if (run.status !== 'COMPLETED') throw new Error(`run ${run.id} ${run.status}: ${run.error?.message}`);
    completed.push(run.id);
    return run.id;
  }
  const completed: number[] = [];

  async function rows<T>(sql: string): Promise<T[]> {
    return (await db.query(sql)).rows as T[];
  }

  it('loads every valid record once, with its items and tags, and reconciles the counts', async () => {
    const runId = await runOnce();
    const view = await request(t.app.server).get(`/runs/${runId}`).set(auth);
    const items = [...expected.values()].reduce((n, o) => n + o.items.length, 0);
    const tags = [...expected.values()].reduce((n, o) => n + o.tags.length, 0);
    expect(view.body.counts).toMatchObject({
      fetched: records.length,
      valid: records.length - 1,
      rejected: 1,
      rows: { orders: expected.size, order_items: items, order_tags: tags },
    });
    // valid records = parent rows + duplicates dropped
    const transform = view.body.jobs.find((j: { stage: string }) => j.stage === 'transform');
    expect(transform.metrics.duplicates).toBe(4);
    expect(records.length - 1 - 4).toBe(expected.size);

    const orders = await rows<{
      id: string;
      status: string;
      total: string;
      updated_at: string;
      customer_city: string;
      customer_name: string;
    }>(
      `SELECT id::text, status, total::text, to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS updated_at,
              customer_city, customer_name FROM ${schema}.orders ORDER BY id`,
    );
    expect(orders).toHaveLength(expected.size);
    for (const row of orders) {
      const want = expected.get(Number(row.id));
      expect(want, `order ${row.id} is not in the source`).toBeDefined();
      expect(row).toEqual({
        id: String(want?.id),
        status: want?.status,
        total: want?.total.toFixed(2),
        updated_at: want?.updated_at,
        customer_city: want?.customer.address.city,
        customer_name: want?.customer.name,
      });
    }
    const itemRows = await rows<{ order_id: string; line: number; sku: string; quantity: number }>(
      `SELECT order_id::text, line, sku, quantity FROM ${schema}.order_items ORDER BY order_id::bigint, line`,
    );
    const wantItems = [...expected.values()]
      .sort((a, b) => a.id - b.id)
      .flatMap((o) =>
        [...o.items]
          .sort((a, b) => a.line - b.line)
          .map((i) => ({ order_id: String(o.id), line: i.line, sku: i.sku, quantity: i.quantity })),
      );
    expect(itemRows).toEqual(wantItems);
    const tagRows = await rows<{ order_id: string; position: number; value: string }>(
      `SELECT order_id::text, position, value FROM ${schema}.order_tags ORDER BY order_id::bigint, position`,
    );
    expect(tagRows).toEqual(
      [...expected.values()]
        .sort((a, b) => a.id - b.id)
        .flatMap((o) => o.tags.map((value, position) => ({ order_id: String(o.id), position, value }))),
    );

    // The load job was created with its files and params before its step ran (the seed's state control).
    const em = t.app.orm.em.fork() as EntityManager;
    const load = await em.findOneOrFail(Job, { run: runId, stage: 'load' }, { populate: ['inputs'] });
    expect(load.params).toMatchObject({
      mode: 'delete+insert',
      targets: { orders: { table: `${schema}.orders`, key: ['id'] } },
    });
    expect(load.inputs.getItems().map((f) => f.layer)).toEqual(expect.arrayContaining(['curated']));
    expect(load.inputs.getItems().every((f) => f.layer === 'curated')).toBe(true);
    // The source's cursor moved to the newest updated_at fetched, with the run's completion.
    const state = await em.findOneOrFail(SourceState, 'demo');
    const newest = (records as unknown as Order[])
      .map((o) => o.updated_at)
      .sort()
      .at(-1);
    expect(state).toMatchObject({ cursor: newest, lastRunId: runId });
  }, 300_000);

  it('leaves exactly the same rows after a second run of the same data', async () => {
    const before = await rows<{ n: string }>(
      `SELECT (SELECT count(*) FROM ${schema}.orders) || '/' || (SELECT count(*) FROM ${schema}.order_items) AS n`,
    );
    const runId = await runOnce();
    const after = await rows<{ n: string }>(
      `SELECT (SELECT count(*) FROM ${schema}.orders) || '/' || (SELECT count(*) FROM ${schema}.order_items) AS n`,
    );
    expect(after).toEqual(before);
    const dupes = await rows<{ n: string }>(
      `SELECT count(*)::text AS n FROM (SELECT order_id, line FROM ${schema}.order_items
         GROUP BY order_id, line HAVING count(*) > 1) d`,
    );
    expect(dupes).toEqual([{ n: '0' }]);
    const ledger = await rows<{ run_id: string; table_name: string }>(
      `SELECT run_id::text, table_name FROM ${schema}._afluente_load_ledger WHERE run_id = ${runId} ORDER BY table_name`,
    );
    expect(ledger.map((r) => r.table_name)).toEqual(['order_items', 'order_tags', 'orders']);
  }, 300_000);

  it('replays a committed load without changing a row, and replays the transform into the same rows', async () => {
    // Every column of every row, the run id and load time columns too: a replayed load that changed nothing
    // leaves this exactly as it was.
    const snapshot = () =>
      rows<{ t: string; n: string; h: string }>(
        `SELECT 'orders' AS t, count(*)::text AS n, md5(string_agg(o::text, '|' ORDER BY id)) AS h
           FROM ${schema}.orders o
         UNION ALL SELECT 'order_items', count(*)::text, md5(string_agg(i::text, '|' ORDER BY order_id, line))
           FROM ${schema}.order_items i
         UNION ALL SELECT 'order_tags', count(*)::text, md5(string_agg(g::text, '|' ORDER BY order_id, position))
           FROM ${schema}.order_tags g`,
      );
    const loaded = completed.at(-1) as number;
    const before = await snapshot();
    const loadJob = async (runId: number) =>
      (await (t.app.orm.em.fork() as EntityManager).findOneOrFail(Job, { run: runId, stage: 'load' }))
        .metrics;

    // The load's result is in the lake: the replay reuses it and starts no Spark step.
    const reused = await runOnce({ source: 'demo', from: { run: loaded, stage: 'load' } });
    expect(await loadJob(reused)).toMatchObject({ reused: true, alreadyLoaded: true, replayOf: loaded });
    expect(await snapshot()).toEqual(before);

    // Without the result, the Spark load runs again, finds the run in the load ledger, and writes nothing.
    const run = await (t.app.orm.em.fork() as EntityManager).findOneOrFail(Run, loaded);
    await rm(join(lakeDir, loadResultKey('demo', run.createdAt.toISOString().slice(0, 10), loaded)));
    const ledgered = await runOnce({ source: 'demo', from: { run: loaded, stage: 'load' } });
    expect(await loadJob(ledgered)).toMatchObject({ reused: false, alreadyLoaded: true, replayOf: loaded });
    expect(await snapshot()).toEqual(before);

    // A replay from transform splits the same validated data again: the same rows, now from the new run.
    const resplit = await runOnce({ source: 'demo', from: { run: loaded, stage: 'transform' } });
    const after = await snapshot();
    expect(after.map((r) => [r.t, r.n])).toEqual(before.map((r) => [r.t, r.n]));
    const owners = await rows<{ run: string }>(
      `SELECT DISTINCT _afluente_run_id::text AS run FROM ${schema}.orders`,
    );
    expect(owners).toEqual([{ run: String(resplit) }]);
    const view = await request(t.app.server).get(`/runs/${resplit}`).set(auth);
    expect(view.body).toMatchObject({ trigger: 'replay', plan: ['transform', 'load'], replayOf: loaded });
    expect(view.body.counts.rows).toEqual(
      (await request(t.app.server).get(`/runs/${loaded}`).set(auth)).body.counts.rows,
    );
  }, 600_000);
});
