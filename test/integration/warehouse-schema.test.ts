// A source with its own warehouse schema (`warehouse: { schema }`): its run's load creates and fills its tables
// there, and nothing in the service's schema; on the real service, the embedded engine and PostgreSQL.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import type { LoadedSource } from '../../service/config/sources.ts';
import { demoSourcesAt, finishedRun, startTestApp, withEngine, type TestApp } from '../support/app.ts';
import { demoRows } from '../support/demo-source-file.ts';
import { TOKEN } from '../support/env.ts';
import { tableContents } from '../support/warehouse.ts';

const RECORDS = 80;
const auth = { authorization: `Bearer ${TOKEN}` };

let api: DemoApi;
let lakeDir: string;
let t: TestApp;
let db: pg.Client;
let own: string;

beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS, pageSize: 50 });
  lakeDir = await mkdtemp(join(tmpdir(), 'afluente-warehouse-schema-'));
  const sources = await withEngine('embedded', await demoSourcesAt(`${api.url}/orders`));
  own = `own_${process.pid}_${Date.now().toString(36)}`;
  const demo = sources.sources.get('demo') as LoadedSource;
  (sources.sources as Map<string, LoadedSource>).set('demo', { ...demo, warehouse: { schema: own } });
  t = await startTestApp({ env: { AFLUENTE_LAKE_URI: pathToFileURL(lakeDir).href }, sources });
  db = new pg.Client({ connectionString: t.config.warehouse.url });
  await db.connect();
});

afterAll(async () => {
  await db?.query(`DROP SCHEMA IF EXISTS "${own}" CASCADE`);
  await db?.end();
  await t?.close();
  await api?.close();
  if (lakeDir) await rm(lakeDir, { recursive: true, force: true });
});

describe('a source with its own warehouse schema', () => {
  it('loads its tables there, and none into the service’s schema', async () => {
    const res = await request(t.app.server).post('/runs').set(auth).send({ source: 'demo' });
    expect(res.status).toBe(202);
    const run = await finishedRun(t, res.body.id as number, 120_000);
    expect(run.error?.message ?? run.status).toBe('COMPLETED');

    for (const [table, n] of Object.entries(demoRows(RECORDS)))
      expect((await tableContents(db, own, table)).n, table).toBe(n);
    const { rows } = await db.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'orders'`,
      [t.config.warehouse.schema],
    );
    expect(rows).toEqual([]);

    const view = (await request(t.app.server).get(`/runs/${run.id}`).set(auth).expect(200)).body;
    const load = view.jobs.find((j: { stage: string }) => j.stage === 'load');
    expect(load.metrics.warehouse).toBe(`postgres ${own}`);
    const source = (await request(t.app.server).get('/sources/demo').set(auth).expect(200)).body;
    expect(source.warehouseSchema).toBe(own);
  }, 180_000);
});
