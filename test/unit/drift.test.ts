import { describe, expect, it } from 'vitest';
import type { TableSpec } from '../../contract/source-config.ts';
import { DRIFT_MAX_FIELDS, type Drift, type ValidateGroupManifest } from '../../contract/validate.ts';
import { driftLines } from '../../cli/format.ts';
import { DriftCounter } from '../../lambdas/validate/drift.ts';
import { loadSources } from '../../service/config/sources.ts';
import { driftMessage, namedPaths, sumDrift } from '../../service/stages/drift.ts';

const table = (spec: Partial<TableSpec> & Pick<TableSpec, 'key' | 'columns'>): TableSpec => ({
  unknownFields: 'keep',
  ...spec,
});

const TABLES: Record<string, TableSpec> = {
  orders: table({
    key: ['id'],
    columns: {
      id: { path: 'id', type: 'bigint' },
      city: { path: 'customer.address.city', type: 'string' },
      attrs: { path: 'attrs', type: 'json' },
    },
  }),
  items: table({
    from: 'items',
    parentKey: { order_id: 'id' },
    key: ['order_id', 'line'],
    columns: { line: { path: 'line', type: 'int' }, price: { path: 'price.amount', type: 'double' } },
  }),
  tags: table({
    from: 'meta.tags',
    parentKey: { order_id: 'id' },
    key: ['order_id', 'value'],
    columns: { value: { path: '.', type: 'string' } },
  }),
};

function count(records: unknown[], tables = TABLES): Drift {
  const counter = new DriftCounter(namedPaths({ tables }));
  for (const record of records) counter.count(record);
  return counter.result();
}

describe('the paths the columns name', () => {
  it('are the column paths, with [] for a child’s from array', () => {
    expect(namedPaths({ tables: TABLES })).toEqual({
      columns: [
        'id',
        'customer.address.city',
        'attrs',
        'items[].line',
        'items[].price.amount',
        'meta.tags[]',
      ],
      json: ['attrs'],
    });
  });

  it('of the demo source', async () => {
    const demo = (await loadSources('config/sources.yaml')).sources.get('demo');
    expect(namedPaths(demo ?? { tables: {} }).columns).toEqual([
      'id',
      'status',
      'total',
      'currency',
      'created_at',
      'updated_at',
      'customer.id',
      'customer.name',
      'customer.address.city',
      'customer.address.country',
      'items[].line',
      'items[].sku',
      'items[].quantity',
      'items[].unit_price',
      'tags[]',
    ]);
  });
});

describe('the drift counter', () => {
  it('counts nothing in records whose every field is named', () => {
    expect(
      count([
        {
          id: 1,
          customer: { address: { city: 'Porto' } },
          attrs: { anything: { at: ['all'] } },
          items: [{ line: 1, price: { amount: 2 } }, 'not an object', null],
          meta: { tags: ['a', { b: 1 }] },
        },
        'not a record',
        null,
        [1, 2],
      ]),
    ).toEqual({ fields: [], truncated: false });
  });

  it('counts each unnamed field by path and type, in records, with the first value as its sample', () => {
    const drift = count([
      { id: 1, discount: 0.1, customer: { email: 'a@example.com', address: { zip: '4000' } } },
      { id: 2, discount: 0.2, items: [{ line: 1, gift: true }, { line: 2, gift: false }, { line: 3 }] },
      { id: 3, discount: '10%', items: [{ line: 1, price: { amount: 1, currency: 'EUR' } }] },
      { id: 4, discount: null, meta: { source: 'web', tags: [] } },
    ]);
    expect(drift).toEqual({
      truncated: false,
      fields: [
        { path: 'discount', type: 'number', count: 2, sample: '0.1' },
        { path: 'customer.address.zip', type: 'string', count: 1, sample: '"4000"' },
        { path: 'customer.email', type: 'string', count: 1, sample: '"a@example.com"' },
        { path: 'discount', type: 'null', count: 1, sample: 'null' },
        { path: 'discount', type: 'string', count: 1, sample: '"10%"' },
        // Two elements of one record hold it: one record.
        { path: 'items[].gift', type: 'boolean', count: 1, sample: 'true' },
        { path: 'items[].price.currency', type: 'string', count: 1, sample: '"EUR"' },
        { path: 'meta.source', type: 'string', count: 1, sample: '"web"' },
      ],
    });
  });

  it('counts an unnamed object or array once, as a whole, and cuts a long sample', () => {
    const long = 'x'.repeat(10_000);
    const drift = count([{ id: 1, shipping: { carrier: 'ups', legs: [1, 2] }, notes: [long], memo: long }]);
    expect(drift.fields).toEqual([
      { path: 'memo', type: 'string', count: 1, sample: `"${'x'.repeat(78)}…` },
      { path: 'notes', type: 'array', count: 1, sample: `["${'x'.repeat(77)}…` },
      { path: 'shipping', type: 'object', count: 1, sample: '{"carrier":"ups","legs":[1,2]}' },
    ]);
    for (const field of drift.fields.slice(0, 2)) expect(field.sample).toHaveLength(80);
  });

  it(`tracks at most ${DRIFT_MAX_FIELDS} fields, so a map under a named object is cut off and said so`, () => {
    const map = Object.fromEntries(Array.from({ length: 5_000 }, (_, i) => [`id${i}`, i]));
    const drift = count([
      { id: 1, customer: { address: map } },
      { id: 2, customer: { address: map } },
    ]);
    expect(drift.truncated).toBe(true);
    expect(drift.fields).toHaveLength(DRIFT_MAX_FIELDS);
    expect(drift.fields[0]).toEqual({ path: 'customer.address.id0', type: 'number', count: 2, sample: '0' });
    expect(drift.fields.every((f) => f.count === 2)).toBe(true);
  });

  it('does not look inside a scalar column’s value, which validation judges', () => {
    expect(count([{ id: { nested: 1 }, customer: { address: { city: { name: 'Porto' } } } }]).fields).toEqual(
      [],
    );
  });
});

describe('a run’s drift', () => {
  const manifest = (group: number, read: number, drift?: Drift): ValidateGroupManifest => ({
    version: 1,
    group,
    inputs: [],
    read,
    valid: read,
    rejected: 0,
    validFiles: [],
    rejectedFiles: [],
    errors: [],
    ...(drift ? { drift } : {}),
  });

  it('sums the groups, keeping the first group’s sample, most frequent first', () => {
    const drift = sumDrift([
      manifest(1, 100, {
        truncated: false,
        fields: [
          { path: 'discount', type: 'number', count: 40, sample: '0.5' },
          { path: 'coupon', type: 'string', count: 3, sample: '"B"' },
        ],
      }),
      manifest(0, 150, {
        truncated: false,
        fields: [{ path: 'discount', type: 'number', count: 7, sample: '0.1' }],
      }),
      manifest(2, 10, { truncated: false, fields: [] }),
    ]);
    expect(drift).toEqual({
      records: 260,
      truncated: false,
      fields: [
        { path: 'discount', type: 'number', count: 47, sample: '0.1' },
        { path: 'coupon', type: 'string', count: 3, sample: '"B"' },
      ],
    });
    expect(driftMessage(drift)).toBe(
      'schema drift, and the source has onDrift: fail: new field `discount` (number) in 47 of 260 records; ' +
        'new field `coupon` (string) in 3 of 260 records. Name them in tables (or set onDrift: warn), then retry the run',
    );
  });

  it(`keeps the ${DRIFT_MAX_FIELDS} most frequent and says it was cut`, () => {
    const fields = (from: number) =>
      Array.from({ length: 150 }, (_, i) => ({
        path: `f${from + i}`,
        type: 'number' as const,
        count: from + i,
        sample: '1',
      }));
    const drift = sumDrift([
      manifest(0, 1_000, { truncated: false, fields: fields(0) }),
      manifest(1, 1_000, { truncated: false, fields: fields(150) }),
    ]);
    expect(drift.truncated).toBe(true);
    expect(drift.fields).toHaveLength(DRIFT_MAX_FIELDS);
    expect(drift.fields.at(-1)).toMatchObject({ path: 'f100', count: 100 });
    expect(driftMessage(drift)).toMatch(/in 299 of 2,000 records; .*; and 195\+ more\. Name them/);
  });
});

describe('the CLI’s drift lines', () => {
  it('say each new field with its type, its records out of the run’s and a sample', () => {
    expect(
      driftLines({
        records: 5_000,
        truncated: true,
        fields: [
          { path: 'discount', type: 'number', count: 1_234, sample: '0.1' },
          { path: 'items[].gift', type: 'boolean', count: 12, sample: 'true' },
        ],
      }),
    ).toEqual([
      '  drift    new field `discount` (number) in 1,234 of 5,000 records, e.g. 0.1',
      '           new field `items[].gift` (boolean) in 12 of 5,000 records, e.g. true',
      '           and more, not listed: over 200 kinds of new field were seen',
    ]);
  });
});
