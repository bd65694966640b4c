import type { EntityManager, MikroORM } from '@mikro-orm/mysql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STAGES } from '../../contract/stages.ts';
import { loadSources } from '../../service/config/sources.ts';
import { specHash, warehouseSpec, type WarehouseSpec } from '../../service/schema/spec.ts';
import { SchemaVersions } from '../../service/schema/versions.ts';
import { Run, SchemaVersion } from '../../service/state/entities/index.ts';
import { migrate, openOrm } from '../../service/state/orm.ts';
import { Status } from '../../service/state/status.ts';
import { dropTestState, testConfig } from '../support/env.ts';

// The schema versions store on the real MariaDB: one row per (source, spec) whatever the concurrency, the run's
// recorded version, and what marking a version loaded does.

const config = testConfig();
let orm: MikroORM;
let versions: SchemaVersions;
let demo: WarehouseSpec;

beforeAll(async () => {
  orm = await openOrm(config.mysql.url);
  await migrate(orm, config.mysql.url);
  versions = new SchemaVersions(orm);
  const source = (await loadSources('config/sources.yaml')).sources.get('demo');
  if (!source) throw new Error('config/sources.yaml has no demo source');
  demo = warehouseSpec(source.tables, source.incremental?.cursorField ?? null);
});
afterAll(async () => {
  await orm?.close();
  await dropTestState(config);
});

const fork = (): EntityManager => orm.em.fork();

async function newRun(source: string, status: Status = Status.Pending): Promise<number> {
  const em = fork();
  const run = em.create(Run, { source, plan: [...STAGES], status });
  await em.flush();
  return run.id;
}

/** The demo spec with one more column on orders: another version. */
function withDiscount(spec: WarehouseSpec): WarehouseSpec {
  const orders = spec.tables.orders;
  if (!orders) throw new Error('no orders table');
  return {
    ...spec,
    tables: {
      ...spec.tables,
      orders: {
        ...orders,
        columns: { ...orders.columns, discount: { path: 'discount', type: 'decimal(12,2)' } },
      },
    },
  };
}

describe('schema versions in MySQL', () => {
  it('keeps one row per source and spec when loads of the source record it at once', async () => {
    const runs = await Promise.all(Array.from({ length: 8 }, () => newRun('concurrent')));
    const recorded = await Promise.all(runs.map((id) => versions.record('concurrent', id, demo)));
    expect(new Set(recorded.map((v) => v.id)).size).toBe(1);
    const rows = await fork().find(SchemaVersion, { source: 'concurrent' });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      hash: specHash(demo),
      spec: demo,
      firstLoadedAt: null,
      lastLoadedAt: null,
    });
    // Each run records it; a redelivered load records it again and adds nothing.
    const [first] = runs as [number];
    await versions.record('concurrent', first, demo);
    expect(await fork().count(SchemaVersion, { source: 'concurrent' })).toBe(1);
    const withVersion = await fork().find(Run, { id: { $in: runs } });
    expect(withVersion.map((r) => r.schemaVersion?.id)).toEqual(runs.map(() => rows[0]?.id));
    // Another source with the same spec has its own version.
    const other = await versions.record('concurrent_other', await newRun('concurrent_other'), demo);
    expect(other.id).not.toBe(rows[0]?.id);
  });

  it('sets firstLoadedAt once and moves lastLoadedAt, except for a replay that loaded nothing', async () => {
    const v1 = await versions.ensure('marks', demo);
    const v2 = await versions.ensure('marks', withDiscount(demo));
    const at = (iso: string): Date => new Date(iso);
    await versions.markLoaded(v1.id, { at: at('2026-01-01T00:00:00Z') });
    await versions.markLoaded(v2.id, { at: at('2026-01-02T00:00:00Z') });
    await versions.markLoaded(v1.id, { at: at('2026-01-03T00:00:00Z'), latest: false });
    const [a, b] = await Promise.all([versions.get(v1.id), versions.get(v2.id)]);
    expect(a).toMatchObject({
      firstLoadedAt: at('2026-01-01T00:00:00Z'),
      lastLoadedAt: at('2026-01-01T00:00:00Z'),
    });
    expect(b).toMatchObject({
      firstLoadedAt: at('2026-01-02T00:00:00Z'),
      lastLoadedAt: at('2026-01-02T00:00:00Z'),
    });
    expect((await versions.loaded('marks')).map((v) => v.id)).toEqual([v2.id, v1.id]);

    // A real load of v1 again makes it the latest loaded; firstLoadedAt stays.
    await versions.markLoaded(v1.id, { at: at('2026-01-04T00:00:00Z') });
    expect(await versions.get(v1.id)).toMatchObject({
      firstLoadedAt: at('2026-01-01T00:00:00Z'),
      lastLoadedAt: at('2026-01-04T00:00:00Z'),
    });
    expect((await versions.loaded('marks')).map((v) => v.id)).toEqual([v1.id, v2.id]);
  });

  it('compares a spec’s keys with the latest loaded version', async () => {
    const loaded = await versions.ensure('keys', demo);
    expect(await versions.keyChanges('keys', demo)).toEqual([]);
    const items = demo.tables.order_items;
    if (!items) throw new Error('no order_items table');
    const bySku = {
      ...demo,
      tables: { ...demo.tables, order_items: { ...items, key: ['order_id', 'sku'] } },
    };
    // Nothing loaded yet: nothing to refuse.
    expect(await versions.keyChanges('keys', bySku)).toEqual([]);
    await versions.markLoaded(loaded.id);
    expect((await versions.keyChanges('keys', bySku)).map((c) => [c.table, c.since.versionId])).toEqual([
      ['order_items', loaded.id],
    ]);
  });

  it('lists a source’s versions with how many completed runs loaded each, and the latest of them', async () => {
    const v1 = await versions.ensure('listed', demo);
    const v2 = await versions.ensure('listed', withDiscount(demo));
    const done = [await newRun('listed', Status.Completed), await newRun('listed', Status.Completed)];
    const failed = await newRun('listed', Status.Failed);
    for (const id of [...done, failed]) await versions.record('listed', id, demo);
    const list = await versions.list('listed');
    expect(list.map((l) => [l.version.id, l.runs, l.latestRunId])).toEqual([
      [v1.id, 2, done[1]],
      [v2.id, 0, null],
    ]);
  });
});
