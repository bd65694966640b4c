import type { EntityManager } from '@mikro-orm/mysql';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadedSource } from '../../service/config/sources.ts';
import { specHash, warehouseSpec, type WarehouseSpec } from '../../service/schema/spec.ts';
import { Job, Run } from '../../service/state/entities/index.ts';
import { Status } from '../../service/state/status.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';

// `npx afluente schema` and `retry --accept-key-change` as a child process against the real service on a port
// (the API role on real MariaDB and Redis). The test records versions through the store the load stage uses, as
// loads would, and decides each run's status.

let t: TestApp;
let url: string;
let current: WarehouseSpec;

beforeAll(async () => {
  t = await startTestApp({ env: { AFLUENTE_ROLES: 'api' } });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  const demo = t.app.sources.sources.get('demo') as LoadedSource;
  current = warehouseSpec(demo.tables, demo.incremental?.cursorField ?? null);
});
afterAll(async () => t?.close());

const em = (): EntityManager => t.app.orm.em.fork();

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI the way the bin starts it (`cli/afluente.mjs`), on this Node 24, against the test service. */
async function cli(args: string[]): Promise<Result> {
  const { AFLUENTE_URL: _u, AFLUENTE_TOKEN: _t, ...inherited } = process.env;
  const child = spawn(process.execPath, ['cli/afluente.mjs', ...args], {
    env: { ...inherited, AFLUENTE_URL: url, AFLUENTE_TOKEN: TOKEN },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out.stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { ...out, code };
}

/** The demo tables as an older config had them: a `note`, no `currency`, a narrower total, items keyed by sku. */
function older(): WarehouseSpec {
  const { orders, order_items: items } = current.tables;
  if (!orders || !items) throw new Error('the demo source changed');
  const { currency: _currency, ...columns } = orders.columns;
  return {
    ...current,
    tables: {
      ...current.tables,
      orders: {
        ...orders,
        columns: {
          ...columns,
          total: { path: 'total', type: 'decimal(10,2)' },
          note: { path: 'note', type: 'string' },
        },
      },
      order_items: { ...items, key: ['order_id', 'sku'] },
    },
  };
}

/** A run of demo in `status` whose load recorded `spec`. */
async function runWith(spec: WarehouseSpec, status: Status): Promise<{ run: number; version: number }> {
  const e = em();
  const run = e.create(Run, { source: 'demo', plan: ['ingest', 'validate', 'transform', 'load'], status });
  await e.flush();
  return { run: run.id, version: (await t.app.schemaVersions.record('demo', run.id, spec)).id };
}

describe('npx afluente schema', () => {
  it('says there is no version yet, and lists every table the first load creates', async () => {
    const res = await cli(['schema', 'demo']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(
      'schema versions of demo\n' +
        '  none yet: the first load of the source records one\n' +
        `the current config (${specHash(current).slice(0, 12)}) has no version yet: its first load records one\n` +
        '\n' +
        'changes from nothing loaded to the current config:\n' +
        '+ table orders (key [id]): id bigint, status string, total decimal(12,2), currency string, ',
    );
    expect(res.stdout).toContain(
      '+ table order_tags (key [order_id, position], parentKey {order_id: id}, from tags): order_id bigint, ' +
        'position int, value string, _extra json\n',
    );
  });

  it('prints the versions and the diff from the latest loaded version to the current config', async () => {
    const { run, version: v1 } = await runWith(older(), Status.Completed);
    await t.app.schemaVersions.markLoaded(v1, { at: new Date('2026-03-01T09:30:00.000Z') });

    const res = await cli(['schema', 'demo']);
    expect(res.code).toBe(0);
    const lines = res.stdout.split('\n');
    expect(lines[1]).toMatch(/^ {2}ID +HASH +CREATED +FIRST LOADED +LAST LOADED +RUNS +LATEST RUN$/);
    expect(lines[2]).toMatch(
      new RegExp(
        `^ {2}${v1} +${specHash(older()).slice(0, 12)} +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.?\\d*Z +` +
          `2026-03-01 09:30:00Z +2026-03-01 09:30:00Z +1 +${run} +latest loaded$`,
      ),
    );
    expect(res.stdout).toContain(
      `changes from version ${v1} to the current config:\n` +
        '+ orders.currency string\n' +
        '~ orders.total decimal(10,2) → decimal(12,2)\n' +
        '- orders.note string (kept in the warehouse)\n' +
        '! order_items key [order_id, sku] → [order_id, line]\n' +
        '\n' +
        'a load refuses a key change: load into a new table name, or drop or rename the warehouse table and ' +
        'retry the refused run with npx afluente retry <id> --accept-key-change\n',
    );

    // Once a load records the current config, it is a version, and --from/--to pick any two.
    const { version: v2 } = await runWith(current, Status.Running);
    const both = await cli(['schema', 'demo', '--from', String(v2), '--to', String(v2)]);
    expect(both.stdout).toContain(`the current config is version ${v2}\n`);
    expect(both.stdout).toMatch(new RegExp(`^ {2}${v2} .* current config$`, 'm'));
    expect(both.stdout).toContain(
      `no changes from the current config (version ${v2}) to the current config (version ${v2})\n`,
    );
    const back = await cli(['schema', 'demo', '--from', String(v2), '--to', String(v1)]);
    expect(back.stdout).toContain('+ orders.note string\n');
    expect(back.stdout).toContain('- orders.currency string (kept in the warehouse)\n');

    const json = await cli(['schema', 'demo', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      source: 'demo',
      current: { versionId: v2 },
      latestLoadedId: v1,
      diff: { from: { versionId: v1 }, to: { versionId: v2 } },
    });
  });

  it('names the problem: a bad id (usage, exit 2), an id the service does not know or a missing source (exit 3)', async () => {
    const usage = await cli(['schema', 'demo', '--from', 'x']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('a schema version id is a positive integer');
    const unknown = await cli(['schema', 'demo', '--to', '999999']);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain(
      `GET ${url}/sources/demo/schema?to=999999 answered 400 Bad Request: querystring.to: schema version ` +
        '999999 does not exist',
    );
    const missing = await cli(['schema', 'nope']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('answered 404 Not Found: source "nope" not found');
  });
});

describe('npx afluente retry --accept-key-change', () => {
  it('hints at it on a run the key check refused, and retries accepting the key change', async () => {
    const created = await t.app.runs.create({ source: 'demo' });
    const id = created.run.id;
    const job = await em().findOneOrFail(Job, { run: id });
    await t.app.engine.start(job.id, 1);
    await t.app.engine.fail(
      job.id,
      { reason: 'key_changed', message: 'the load is refused (by the test)', stage: 'load' },
      true,
    );

    const shown = await cli(['show', String(id), '--wait']);
    expect(shown.code).toBe(1);
    expect(shown.stderr).toContain(
      `  retry it from the failed stage: npx afluente retry ${id}\n` +
        `  once the warehouse table is rebuilt: npx afluente retry ${id} --accept-key-change\n`,
    );

    const res = await cli(['retry', String(id), '--accept-key-change']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(
      `run ${id} retried as attempt 2 from stage ingest, accepting a key change: ${url}/runs/${id}\n`,
    );
    expect((await em().findOneOrFail(Run, id)).params).toEqual({ acceptKeyChange: true });
  });
});
