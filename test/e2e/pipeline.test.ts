// The whole pipeline on a small source, as `npm run demo` runs it: HTTP API → ingest → validate → split_tables →
// load_warehouse → PostgreSQL, with the state in MariaDB. The demo source's `engine: auto` runs this small run's
// steps on the embedded engine (DuckDB); a run asking for `spark` runs them with spark-submit, and both leave the
// same rows. Every record the source served is checked against the warehouse, row by row.
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
import { FAST_CATALOG } from '../support/catalog.ts';
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
      // Two attempts a stage, so a load that fails on purpose fails its run within the test.
      catalog: FAST_CATALOG,
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

  /**
   * Every row of every table with every column the data defines, leaving out afluente's own (the run id and the
   * load time): what two engines loading the same data must agree on.
   */
  async function business(): Promise<{ t: string; n: string; h: string; columns: string }[]> {
    const table = (name: string) =>
      `SELECT '${name}' AS t, count(*)::text AS n, md5(string_agg(r::text, '|' ORDER BY r::text)) AS h,
              (SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(min(r::text)::jsonb) k) AS columns
         FROM (SELECT (SELECT jsonb_object_agg(key, value) FROM jsonb_each(to_jsonb(x))
                        WHERE key NOT LIKE '\\_afluente\\_%') AS r
                 FROM ${schema}.${name} x) rows`;
    const found = await rows<{ t: string; n: string; h: string; columns: string }>(
      ['orders', 'order_items', 'order_tags'].map(table).join(' UNION ALL '),
    );
    // Rows with their data columns in them, and none of afluente's: a comparison of nothing proves nothing.
    for (const r of found) {
      expect(Number(r.n), r.t).toBeGreaterThan(0);
      expect(r.columns, r.t).toMatch(/^[a-z_]+(,[a-z_]+)+$/);
      expect(r.columns, r.t).not.toContain('_afluente');
    }
    expect(found.find((r) => r.t === 'orders')?.columns).toContain('customer_city');
    return found;
  }

  type JobView = {
    stage: string;
    runAttempt: number;
    engine: string;
    engineReason: string;
    externalId: string;
  };
  async function stepJobs(runId: number, runAttempt = 1): Promise<JobView[]> {
    const view = await request(t.app.server).get(`/runs/${runId}`).set(auth);
    return (view.body.jobs as JobView[]).filter(
      (j) => j.runAttempt === runAttempt && ['transform', 'load'].includes(j.stage),
    );
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
    // Engine auto: the run's validated bytes are far below AFLUENTE_EMBEDDED_MAX_BYTES, so both steps ran embedded.
    const auto = /^auto: validated \d+(\.\d+)? KiB ≤ AFLUENTE_EMBEDDED_MAX_BYTES \(2 GiB\)$/;
    expect(view.body).toMatchObject({ engine: 'embedded', engineReason: expect.stringMatching(auto) });
    for (const job of view.body.jobs.filter((j: { stage: string }) =>
      ['transform', 'load'].includes(j.stage),
    ))
      expect(job).toMatchObject({
        engine: 'embedded',
        engineReason: view.body.engineReason,
        externalId: expect.stringMatching(/^embedded:\d+$/),
        // The step's final state, never the RUNNING the reconciler may have seen while it ran.
        metrics: { step: { id: job.externalId, state: 'COMPLETED' } },
      });
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

  it('runs the same data on Spark into the same rows, and a replay of that on the embedded engine too', async () => {
    const before = await business();
    const embedded = completed[0] as number;
    const embeddedRows = (await request(t.app.server).get(`/runs/${embedded}`).set(auth)).body.counts.rows;

    const spark = await runOnce({ source: 'demo', engine: 'spark' });
    const view = await request(t.app.server).get(`/runs/${spark}`).set(auth);
    expect(view.body).toMatchObject({
      params: { engine: 'spark' },
      engine: 'spark',
      engineReason: 'requested on the run',
      counts: { rows: embeddedRows },
    });
    expect(await stepJobs(spark)).toEqual([
      expect.objectContaining({
        stage: 'transform',
        engine: 'spark',
        externalId: expect.stringMatching(/^local:\d+$/),
      }),
      expect.objectContaining({
        stage: 'load',
        engine: 'spark',
        externalId: expect.stringMatching(/^local:\d+$/),
      }),
    ]);
    expect(await business()).toEqual(before);
    const owners = await rows<{ run: string }>(
      `SELECT DISTINCT _afluente_run_id::text AS run FROM ${schema}.orders`,
    );
    expect(owners).toEqual([{ run: String(spark) }]);

    // Spark's validated data split again on the embedded engine: the transforms agree, and so do the rows.
    const back = await runOnce({
      source: 'demo',
      from: { run: spark, stage: 'transform' },
      engine: 'embedded',
    });
    const jobs = await stepJobs(back);
    expect(jobs.map((j) => [j.stage, j.engine, j.engineReason])).toEqual([
      ['transform', 'embedded', 'requested on the run'],
      ['load', 'embedded', 'requested on the run'],
    ]);
    const metrics = async (runId: number) =>
      (await (t.app.orm.em.fork() as EntityManager).findOneOrFail(Job, { run: runId, stage: 'transform' }))
        .metrics;
    const { read, duplicates, childDuplicates, tables } = (await metrics(spark)) ?? {};
    expect(await metrics(back)).toMatchObject({ read, duplicates, childDuplicates, tables });
    expect(await business()).toEqual(before);
  }, 600_000);

  it('retries a load that failed on the embedded engine on Spark, and the run reconciles', async () => {
    const before = await business();
    // A column the load does not know, that takes no NULL: any insert into the table fails, on either engine.
    await db.query(`ALTER TABLE ${schema}.order_tags ADD COLUMN blocker int NOT NULL DEFAULT 0`);
    await db.query(`ALTER TABLE ${schema}.order_tags ALTER COLUMN blocker DROP DEFAULT`);
    const res = await request(t.app.server).post('/runs').set(auth).send({ source: 'demo' });
    const failed = await finishedRun(t, res.body.id as number, 240_000);
    // No retry can fill a column the load does not know: the first attempt is the last, though two were allowed.
    expect(failed).toMatchObject({
      status: 'FAILED',
      engine: 'embedded',
      error: { stage: 'load', reason: 'embedded_failed', attempt: 1 },
    });
    expect(failed.error?.message).toMatch(
      /^load_warehouse: insert into order_tags failed: null value in column "blocker" .*\(not retried: .*\)$/,
    );

    await db.query(`ALTER TABLE ${schema}.order_tags DROP COLUMN blocker`);
    const retried = await request(t.app.server)
      .post(`/runs/${failed.id}/retry`)
      .set(auth)
      .send({ engine: 'spark' });
    expect(retried.status).toBe(202);
    const run = await finishedRun(t, failed.id, 240_000);
    expect(run).toMatchObject({
      status: 'COMPLETED',
      attempt: 2,
      engine: 'spark',
      engineReason: 'requested on the run',
    });
    expect(await stepJobs(failed.id, 2)).toEqual([
      expect.objectContaining({
        stage: 'load',
        engine: 'spark',
        externalId: expect.stringMatching(/^local:\d+$/),
      }),
    ]);
    // The load's own check held (merged + stale = curated), and the warehouse is as both engines left it.
    const load = await (t.app.orm.em.fork() as EntityManager).findOneOrFail(Job, {
      run: failed.id,
      stage: 'load',
      runAttempt: 2,
    });
    const curated = (
      await (t.app.orm.em.fork() as EntityManager).findOneOrFail(Job, { run: failed.id, stage: 'transform' })
    ).metrics?.tables as Record<string, number>;
    const { rows: merged, stale } = load.metrics as {
      rows: Record<string, number>;
      stale: Record<string, number>;
    };
    for (const [table, n] of Object.entries(curated))
      expect((merged[table] ?? 0) + (stale[table] ?? 0)).toBe(n);
    expect(run.rows).toEqual(merged);
    expect(await business()).toEqual(before);
  }, 600_000);
});
