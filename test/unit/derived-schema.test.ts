import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import ajvFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TableSpec } from '../../contract/source-config.ts';
import { orderAt } from '../../demo/source-api/records.ts';
import { recordErrors } from '../../lambdas/validate/schema-validator.ts';
import { compileTransform } from '../../lambdas/validate/transforms.ts';
import { loadSources } from '../../service/config/sources.ts';
import { deriveRecordSchema } from '../../service/config/sources/derived-schema.ts';

// The schema a source without a `schema` file is validated with, checked the way the validate Lambda uses it:
// compiled by ajv with formats, its errors read by recordErrors.

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'afluente-derived-'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

function table(spec: Partial<TableSpec> & Pick<TableSpec, 'key' | 'columns'>): TableSpec {
  return { unknownFields: 'keep', ...spec };
}

function validator(tables: Record<string, TableSpec>) {
  const ajv = new Ajv({ allErrors: true, strict: false, logger: false });
  ajvFormats.default(ajv);
  const validate = ajv.compile(deriveRecordSchema({ tables }));
  return (record: unknown) => (validate(record) ? [] : recordErrors(validate.errors));
}

const ORDERS: Record<string, TableSpec> = {
  orders: table({
    key: ['id'],
    columns: {
      id: { path: 'id', type: 'bigint' },
      status: { path: 'status', type: 'string' },
      total: { path: 'total', type: 'decimal(6,2)' },
      qty: { path: 'qty', type: 'smallint' },
      paid: { path: 'paid', type: 'boolean' },
      day: { path: 'day', type: 'date' },
      at: { path: 'at', type: 'timestamp' },
      meta: { path: 'meta', type: 'json' },
      city: { path: 'customer.address.city', type: 'string' },
    },
  }),
  items: table({
    from: 'items',
    parentKey: { order_id: 'id' },
    key: ['order_id', 'line'],
    columns: { line: { path: 'line', type: 'int' }, sku: { path: 'sku', type: 'string' } },
  }),
  tags: table({
    from: 'tags',
    parentKey: { order_id: 'id' },
    index: 'position',
    key: ['order_id', 'position'],
    columns: { value: { path: '.', type: 'string' } },
  }),
};

describe('the schema derived from tables', () => {
  it('is the types, nested paths and arrays the tables name, with only the keys required', () => {
    expect(deriveRecordSchema({ tables: ORDERS })).toEqual({
      $schema: 'http://json-schema.org/draft-07/schema#',
      $comment: 'derived from the source tables by afluente',
      type: 'object',
      required: ['id'],
      properties: {
        id: { type: 'integer' },
        status: { type: ['string', 'null'] },
        total: { type: ['number', 'null'], exclusiveMinimum: -10_000, exclusiveMaximum: 10_000 },
        qty: { type: ['integer', 'null'], minimum: -32_768, maximum: 32_767 },
        paid: { type: ['boolean', 'null'] },
        day: { type: ['string', 'null'], format: 'date' },
        at: { type: ['string', 'null'], format: 'date-time' },
        meta: {},
        customer: {
          type: ['object', 'null'],
          properties: {
            address: { type: ['object', 'null'], properties: { city: { type: ['string', 'null'] } } },
          },
        },
        items: {
          type: ['array', 'null'],
          items: {
            type: 'object',
            required: ['line'],
            properties: {
              line: { type: 'integer', minimum: -2_147_483_648, maximum: 2_147_483_647 },
              sku: { type: ['string', 'null'] },
            },
          },
        },
        tags: { type: ['array', 'null'], items: { type: ['string', 'null'] } },
      },
    });
  });

  it('accepts a record with only its key, nulls in every other column, and fields no column names', () => {
    const check = validator(ORDERS);
    expect(check({ id: 1 })).toEqual([]);
    expect(
      check({
        id: 2,
        status: null,
        total: null,
        customer: { address: null, email: 'x@example.com' },
        items: null,
        tags: null,
        extra: { anything: [1, 2] },
      }),
    ).toEqual([]);
    expect(
      check({
        id: 3,
        total: 9999.99,
        day: '2026-01-31',
        at: '2026-01-31T10:00:00+01:00',
        meta: [1, 'x'],
        items: [{ line: 1, sku: 'a', discount: 0.1 }],
        tags: ['a', null],
      }),
    ).toEqual([]);
  });

  it('rejects a wrong type, naming the field', () => {
    const check = validator(ORDERS);
    expect(check({ id: '12' })).toEqual([{ path: '/id', message: 'must be integer' }]);
    expect(check({ id: 1, status: 5 })).toEqual([{ path: '/status', message: 'must be string,null' }]);
    expect(check({ id: 1, customer: { address: { city: 7 } } })).toEqual([
      { path: '/customer/address/city', message: 'must be string,null' },
    ]);
    expect(check({ id: 1, items: [{ line: 1 }, { line: 'two' }] })).toEqual([
      { path: '/items/1/line', message: 'must be integer' },
    ]);
    expect(check({ id: 1, items: { line: 1 } })).toEqual([{ path: '/items', message: 'must be array,null' }]);
    expect(check({ id: 1, tags: [{ tag: 'a' }] })).toEqual([
      { path: '/tags/0', message: 'must be string,null' },
    ]);
  });

  it('rejects a missing or null key, the parent’s and a child’s own', () => {
    const check = validator(ORDERS);
    expect(check({ status: 'new' })).toEqual([{ path: '/id', message: 'is required' }]);
    expect(check({ id: null })).toEqual([{ path: '/id', message: 'must be integer' }]);
    expect(check({ id: 1, items: [{ sku: 'a' }] })).toEqual([
      { path: '/items/0/line', message: 'is required' },
    ]);
    expect(check({ id: 1, items: [null] })).toEqual([{ path: '/items/0', message: 'must be object' }]);
  });

  it('bounds integers to their column type and a decimal’s digits before the point', () => {
    const check = validator(ORDERS);
    expect(check({ id: 1, qty: 32_768 })).toEqual([{ path: '/qty', message: 'must be <= 32767' }]);
    expect(check({ id: 1, qty: 1.5 })).toEqual([{ path: '/qty', message: 'must be integer,null' }]);
    expect(check({ id: 1, total: 10_000 })).toEqual([{ path: '/total', message: 'must be < 10000' }]);
    expect(check({ id: 1, total: -10_000 })).toEqual([{ path: '/total', message: 'must be > -10000' }]);
    expect(check({ id: 1, items: [{ line: 2 ** 31 }] })).toEqual([
      { path: '/items/0/line', message: 'must be <= 2147483647' },
    ]);
  });

  it('checks dates and timestamps by format', () => {
    const check = validator(ORDERS);
    expect(check({ id: 1, day: '31/01/2026' })).toEqual([
      { path: '/day', message: 'must match format "date"' },
    ]);
    expect(check({ id: 1, at: 'yesterday' })).toEqual([
      { path: '/at', message: 'must match format "date-time"' },
    ]);
  });

  it('requires the whole way to a nested key, and lets a key be json', () => {
    const check = validator({
      t: table({
        key: ['tenant', 'ref'],
        columns: {
          tenant: { path: 'owner.tenant.id', type: 'string' },
          ref: { path: 'ref', type: 'json' },
        },
      }),
    });
    expect(check({ owner: { tenant: { id: 'a' } }, ref: [1] })).toEqual([]);
    expect(check({ owner: { tenant: null }, ref: 1 })).toEqual([
      { path: '/owner/tenant', message: 'must be object' },
    ]);
    expect(check({ owner: {}, ref: null })).toEqual([
      { path: '/owner/tenant', message: 'is required' },
      { path: '/ref', message: 'must NOT be valid' },
    ]);
  });

  it('refuses fields no column names in the objects of a table with unknownFields: reject', () => {
    const check = validator({
      orders: { ...ORDERS.orders!, unknownFields: 'reject' },
      items: { ...ORDERS.items!, unknownFields: 'reject' },
      tags: ORDERS.tags!,
    });
    expect(
      check({ id: 1, customer: { address: { city: 'Porto' } }, items: [{ line: 1 }], meta: { x: 1 } }),
    ).toEqual([]);
    expect(check({ id: 1, discount: 0.1 })).toEqual([{ path: '/discount', message: 'is not allowed' }]);
    expect(check({ id: 1, customer: { email: 'x' } })).toEqual([
      { path: '/customer/email', message: 'is not allowed' },
    ]);
    expect(check({ id: 1, items: [{ line: 1, discount: 0.1 }] })).toEqual([
      { path: '/items/0/discount', message: 'is not allowed' },
    ]);
    // The parent's `reject` does not reach into a child's elements, whose fields are the child's to judge.
    const parentOnly = validator({
      orders: { ...ORDERS.orders!, unknownFields: 'reject' },
      items: ORDERS.items!,
    });
    expect(parentOnly({ id: 1, items: [{ line: 1, discount: 0.1 }] })).toEqual([]);
  });

  it('feeds the timestampsToUtc transform, which reads its date-time formats', () => {
    const transform = compileTransform(deriveRecordSchema({ tables: ORDERS }), {
      trimStrings: false,
      timestampsToUtc: true,
      coerceNumbers: true,
    });
    expect(transform({ id: '7', at: '2026-01-31T10:00:00+01:00', status: '12' })).toEqual({
      id: 7,
      at: '2026-01-31T09:00:00.000Z',
      status: '12',
    });
  });
});

describe('a source without a schema file', () => {
  it('loads with the derived schema, and a given file still wins', async () => {
    const shipped = await readFile('config/sources.yaml', 'utf8');
    const without = path.join(dir, 'without.yaml');
    await writeFile(without, shipped.replace(/^ {4}schema: .*\n/m, ''));
    const derived = (await loadSources(without)).sources.get('demo');
    expect(derived?.schemaPath).toBeUndefined();
    expect(derived?.schemaDocument).toEqual(deriveRecordSchema({ tables: derived?.tables ?? {} }));
    const given = (await loadSources('config/sources.yaml')).sources.get('demo');
    expect(given?.schemaPath).toMatch(/config\/schemas\/orders\.schema\.json$/);
    expect(given?.schemaDocument).toHaveProperty('title', 'Order');
  });

  it('validates every demo order', async () => {
    const shipped = (await loadSources('config/sources.yaml')).sources.get('demo');
    const check = validator(shipped?.tables ?? {});
    for (let i = 0; i < 500; i++) expect(check(JSON.parse(JSON.stringify(orderAt(i, 1))))).toEqual([]);
  });
});
