import { beforeAll, describe, expect, it } from 'vitest';
import type { TableSpec } from '../../contract/source-config.ts';
import { loadSources } from '../../service/config/sources.ts';
import {
  describeKeyChange,
  diffSpecs,
  isEmptyDiff,
  sameKey,
  tableKey,
  warehouseColumns,
} from '../../service/schema/diff.ts';
import { keyChanges, type LoadedVersion } from '../../service/schema/key-change.ts';
import { specHash, warehouseSpec, type WarehouseSpec } from '../../service/schema/spec.ts';

// The pure parts of schema versions: the hash, the diff between two specs, and the key comparison the load makes.

let demo: WarehouseSpec;
beforeAll(async () => {
  const source = (await loadSources('config/sources.yaml')).sources.get('demo');
  if (!source) throw new Error('config/sources.yaml has no demo source');
  demo = warehouseSpec(source.tables, source.incremental?.cursorField ?? null);
});

/** The demo spec with one table replaced (or removed, with `undefined`). */
function withTable(spec: WarehouseSpec, name: string, table: TableSpec | undefined): WarehouseSpec {
  const tables = { ...spec.tables };
  if (table) tables[name] = table;
  else delete tables[name];
  return { ...spec, tables };
}

const table = (spec: WarehouseSpec, name: string): TableSpec => {
  const t = spec.tables[name];
  if (!t) throw new Error(`no table ${name}`);
  return t;
};

describe('specHash', () => {
  it('is the same for the same spec however its keys are ordered, and differs for another spec', () => {
    const reordered: WarehouseSpec = {
      cursorColumn: demo.cursorColumn,
      tables: Object.fromEntries(
        Object.entries(demo.tables)
          .reverse()
          .map(([name, t]) => [
            name,
            { ...t, columns: Object.fromEntries(Object.entries(t.columns).reverse()) },
          ]),
      ),
    };
    expect(JSON.stringify(reordered)).not.toBe(JSON.stringify(demo));
    expect(specHash(reordered)).toBe(specHash(demo));
    expect(specHash(demo)).toMatch(/^[0-9a-f]{64}$/);

    const orders = table(demo, 'orders');
    const widened = withTable(demo, 'orders', {
      ...orders,
      columns: { ...orders.columns, total: { path: 'total', type: 'decimal(14,2)' } },
    });
    expect(specHash(widened)).not.toBe(specHash(demo));
    // A key is a list: its order is part of the spec (the diff and the load compare it as a set).
    const swapped = withTable(demo, 'order_items', {
      ...table(demo, 'order_items'),
      key: ['line', 'order_id'],
    });
    expect(specHash(swapped)).not.toBe(specHash(demo));
  });
});

describe('warehouseColumns', () => {
  it('lists a child’s parentKey and index columns, its declared columns, then _extra', () => {
    expect(warehouseColumns(demo, 'order_tags')).toEqual([
      { column: 'order_id', type: 'bigint', path: null },
      { column: 'position', type: 'int', path: null },
      { column: 'value', type: 'string', path: '.' },
      { column: '_extra', type: 'json', path: null },
    ]);
    const ignoring = withTable(demo, 'order_tags', { ...table(demo, 'order_tags'), unknownFields: 'ignore' });
    expect(warehouseColumns(ignoring, 'order_tags').map((c) => c.column)).toEqual([
      'order_id',
      'position',
      'value',
    ]);
  });
});

describe('diffSpecs', () => {
  it('finds nothing between a spec and itself', () => {
    const diff = diffSpecs(demo, structuredClone(demo));
    expect(isEmptyDiff(diff)).toBe(true);
  });

  it('names columns added, removed and retyped, paths moved, and a changed key, per table', () => {
    const orders = table(demo, 'orders');
    const { currency: _currency, ...kept } = orders.columns;
    const next = withTable(demo, 'orders', {
      ...orders,
      columns: {
        ...kept,
        total: { path: 'total', type: 'decimal(14,2)' },
        customer_city: { path: 'customer.city', type: 'string' },
        discount: { path: 'discount', type: 'decimal(12,2)' },
      },
    });
    const items = table(demo, 'order_items');
    const changed = withTable(next, 'order_items', { ...items, key: ['order_id', 'sku'] });

    expect(diffSpecs(demo, changed)).toEqual({
      tablesAdded: [],
      tablesRemoved: [],
      tablesChanged: [
        {
          table: 'orders',
          columnsAdded: [{ column: 'discount', type: 'decimal(12,2)', path: 'discount' }],
          columnsRemoved: [{ column: 'currency', type: 'string', path: 'currency' }],
          typesChanged: [{ column: 'total', from: 'decimal(12,2)', to: 'decimal(14,2)' }],
          pathsChanged: [{ column: 'customer_city', from: 'customer.address.city', to: 'customer.city' }],
          keyChanged: null,
        },
        {
          table: 'order_items',
          columnsAdded: [],
          columnsRemoved: [],
          typesChanged: [],
          pathsChanged: [],
          keyChanged: {
            from: { key: ['order_id', 'line'], parentKey: { order_id: 'id' }, from: 'items' },
            to: { key: ['order_id', 'sku'], parentKey: { order_id: 'id' }, from: 'items' },
          },
        },
      ],
      cursorColumn: null,
    });
  });

  it('names tables added and removed with their key and columns, and a changed cursor column', () => {
    const next: WarehouseSpec = {
      cursorColumn: null,
      tables: {
        ...withTable(demo, 'order_tags', undefined).tables,
        order_skus: {
          from: 'items',
          parentKey: { order_id: 'id' },
          key: ['order_id', 'sku'],
          columns: { sku: { path: 'sku', type: 'string' } },
          unknownFields: 'ignore',
        },
      },
    };
    const diff = diffSpecs(demo, next);
    expect(diff.tablesAdded).toEqual([
      {
        table: 'order_skus',
        key: { key: ['order_id', 'sku'], parentKey: { order_id: 'id' }, from: 'items' },
        columns: [
          { column: 'order_id', type: 'bigint', path: null },
          { column: 'sku', type: 'string', path: 'sku' },
        ],
      },
    ]);
    expect(diff.tablesRemoved.map((t) => t.table)).toEqual(['order_tags']);
    expect(diff.tablesChanged).toEqual([]);
    expect(diff.cursorColumn).toEqual({ from: 'updated_at', to: null });
  });

  it('adds every table when nothing was loaded before', () => {
    const diff = diffSpecs(null, demo);
    expect(diff.tablesAdded.map((t) => t.table)).toEqual(['orders', 'order_items', 'order_tags']);
    expect(diff.tablesRemoved).toEqual([]);
    expect(diff.cursorColumn).toBeNull();
  });
});

describe('sameKey', () => {
  it('compares keys and parentKeys as sets, and the from array exactly', () => {
    const items = tableKey(table(demo, 'order_items'));
    expect(sameKey(items, { ...items, key: ['line', 'order_id'] })).toBe(true);
    expect(sameKey(items, { ...items, key: ['order_id'] })).toBe(false);
    expect(sameKey(items, { ...items, parentKey: { order_ref: 'id' } })).toBe(false);
    expect(sameKey(items, { ...items, from: 'lines' })).toBe(false);
  });
});

describe('describeKeyChange', () => {
  it('names only the parts that changed', () => {
    const items = tableKey(table(demo, 'order_items'));
    expect(describeKeyChange(items, { ...items, key: ['order_id', 'sku'] })).toBe(
      'key [order_id, line] → [order_id, sku]',
    );
    expect(describeKeyChange(items, { ...items, parentKey: { order_ref: 'id' }, from: 'lines' })).toBe(
      'parentKey {order_id: id} → {order_ref: id}, from items → lines',
    );
  });
});

describe('keyChanges', () => {
  const loaded = (id: number, spec: WarehouseSpec, at: string): LoadedVersion => ({
    id,
    spec,
    lastLoadedAt: new Date(at),
  });

  it('finds none when nothing was loaded, or the keys are the same', () => {
    expect(keyChanges([], demo)).toEqual([]);
    const retyped = withTable(demo, 'orders', {
      ...table(demo, 'orders'),
      columns: { ...table(demo, 'orders').columns, id: { path: 'id', type: 'int' } },
    });
    expect(keyChanges([loaded(1, demo, '2026-01-01T00:00:00Z')], retyped)).toEqual([]);
  });

  it('compares each table with the latest loaded version that has it, so a table added back is caught', () => {
    const items = table(demo, 'order_items');
    const withoutItems = withTable(demo, 'order_items', undefined);
    const next = withTable(demo, 'order_items', { ...items, key: ['order_id', 'sku'] });
    // Latest first: version 2 dropped order_items; version 1 loaded it keyed by line.
    const history = [
      loaded(2, withoutItems, '2026-02-01T00:00:00Z'),
      loaded(1, demo, '2026-01-01T00:00:00Z'),
    ];
    expect(keyChanges(history, next)).toEqual([
      {
        table: 'order_items',
        since: { versionId: 1, lastLoadedAt: new Date('2026-01-01T00:00:00Z') },
        from: { key: ['order_id', 'line'], parentKey: { order_id: 'id' }, from: 'items' },
        to: { key: ['order_id', 'sku'], parentKey: { order_id: 'id' }, from: 'items' },
      },
    ]);
    // Once the new key is loaded, it is what later loads are compared with.
    expect(keyChanges([loaded(3, next, '2026-03-01T00:00:00Z'), ...history], next)).toEqual([]);
  });

  it('catches a child taken from another array, or joined by another parentKey', () => {
    const items = table(demo, 'order_items');
    const history = [loaded(1, demo, '2026-01-01T00:00:00Z')];
    const moved = keyChanges(history, withTable(demo, 'order_items', { ...items, from: 'lines' }));
    expect(moved.map((c) => [c.table, c.from.from, c.to.from])).toEqual([['order_items', 'items', 'lines']]);
  });
});
