import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import ajvFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { childTables, parentTable, SourceConfigSchema } from '../../contract/source-config.ts';
import { loadSources, SourcesConfigError, type LoadedSource } from '../../service/config/sources.ts';

const SHIPPED = fileURLToPath(new URL('../../config/sources.yaml', import.meta.url));

let dir: string;
let written = 0;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'afluente-sources-'));
  await mkdir(path.join(dir, 'schemas'));
  await writeFile(path.join(dir, 'schemas', 'record.schema.json'), '{ "type": "object" }');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeSources(yaml: string): Promise<string> {
  written += 1;
  const file = path.join(dir, `sources-${written}.yaml`);
  await writeFile(file, yaml);
  return file;
}

async function loadOne(yaml: string): Promise<LoadedSource> {
  const { sources } = await loadSources(await writeSources(yaml));
  const [source] = sources.values();
  if (source === undefined) throw new Error('expected one source');
  return source;
}

/** The error's message lines, with the fixture file's path shortened to `F`. */
async function problemLines(yaml: string): Promise<string[]> {
  const file = await writeSources(yaml);
  const error: unknown = await loadSources(file).then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(SourcesConfigError);
  const { message } = error as SourcesConfigError;
  return message.split('\n').map((line) => line.replaceAll(file, 'F').replaceAll(dir, 'D'));
}

// A valid source to break one field at a time; `orders` starts on line 2.
const VALID = `sources:
  orders:
    request: { url: https://api.example.com/v1/orders }
    pagination: { kind: none }
    schema: schemas/record.schema.json
    tables:
      orders: { key: [id], columns: { id: bigint } }
`;

describe('the shipped config/sources.yaml', () => {
  it('loads the demo source with its tables normalized', async () => {
    const { file, sources } = await loadSources(SHIPPED);
    expect(file).toBe(SHIPPED);
    expect([...sources.keys()]).toEqual(['demo']);
    const demo = sources.get('demo');
    if (demo === undefined) throw new Error('demo source missing');

    expect(demo.name).toBe('demo');
    expect(demo.request).toEqual({
      url: 'http://127.0.0.1:8787/orders',
      timeoutMs: 10_000,
      headers: {},
      query: {},
    });
    expect(demo.allowPrivateNetwork).toBe(true);
    expect(demo.auth).toEqual({ kind: 'none' });
    expect(demo.records).toBe('data');
    expect(demo.pagination).toEqual({
      kind: 'page',
      pageParam: 'page',
      sizeParam: 'per_page',
      size: 1000,
      startPage: 1,
      maxPages: 100_000,
    });
    expect(demo.incremental).toEqual({ cursorField: 'updated_at', param: 'updated_since' });
    expect(demo.schedule).toBeUndefined();
    expect(demo.quality).toEqual({ maxRejectRatio: 0.05 });

    const [parentName, parent] = parentTable(demo);
    expect(parentName).toBe('orders');
    expect(parent.key).toEqual(['id']);
    expect(parent.columns.total).toEqual({ path: 'total', type: 'decimal(12,2)' });
    expect(parent.columns.customer_city).toEqual({ path: 'customer.address.city', type: 'string' });
    expect(Object.keys(parent.columns)).toHaveLength(10);

    expect(childTables(demo).map(([name]) => name)).toEqual(['order_items', 'order_tags']);
    expect(demo.tables.order_items).toEqual({
      from: 'items',
      parentKey: { order_id: 'id' },
      key: ['order_id', 'line'],
      columns: {
        line: { path: 'line', type: 'int' },
        sku: { path: 'sku', type: 'string' },
        quantity: { path: 'quantity', type: 'int' },
        unit_price: { path: 'unit_price', type: 'decimal(12,2)' },
      },
      unknownFields: 'keep',
    });
    expect(demo.tables.order_tags).toEqual({
      from: 'tags',
      parentKey: { order_id: 'id' },
      index: 'position',
      key: ['order_id', 'position'],
      columns: { value: { path: '.', type: 'string' } },
      unknownFields: 'keep',
    });
  });

  it('produces a config the contract schema accepts', async () => {
    const demo = (await loadSources(SHIPPED)).sources.get('demo');
    const { name: _name, schemaPath: _path, schemaDocument: _document, ...config } = demo ?? {};
    const validate = new Ajv({ allErrors: true }).compile(SourceConfigSchema);
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
  });

  it('ships an orders schema that accepts a demo order and rejects one without items', async () => {
    const demo = (await loadSources(SHIPPED)).sources.get('demo');
    expect(demo?.schemaPath).toBe(path.join(path.dirname(SHIPPED), 'schemas', 'orders.schema.json'));
    const ajv = new Ajv({ allErrors: true });
    ajvFormats.default(ajv);
    const validate = ajv.compile(demo?.schemaDocument ?? {});
    const order = {
      id: 1,
      status: 'paid',
      total: 59.97,
      currency: 'EUR',
      created_at: '2025-03-01T10:00:00Z',
      updated_at: '2025-03-01T10:05:00Z',
      customer: { id: 7, name: 'Ana', email: 'ana@example.com', address: { city: 'Porto', country: 'PT' } },
      items: [{ line: 1, sku: 'SKU-1', quantity: 3, unit_price: 19.99 }],
      tags: ['gift'],
    };
    expect(validate(order), JSON.stringify(validate.errors)).toBe(true);
    expect(validate({ ...order, items: undefined })).toBe(false);
    expect(validate({ ...order, status: 'lost' })).toBe(false);
    expect(validate({ ...order, updated_at: 'yesterday' })).toBe(false);
  });
});

describe('defaults and shorthands', () => {
  it('fills every optional field with its default', async () => {
    const source = await loadOne(VALID);
    expect(source.request).toEqual({
      url: 'https://api.example.com/v1/orders',
      timeoutMs: 10_000,
      headers: {},
      query: {},
    });
    expect(source.allowPrivateNetwork).toBe(false);
    expect(source.auth).toEqual({ kind: 'none' });
    expect(source.pagination).toEqual({ kind: 'none', maxPages: 100_000 });
    expect(source.maxActiveRuns).toBe(1);
    expect(source.onActiveRun).toBe('queue');
    expect(source.engine).toBe('auto');
    expect(source.quality).toEqual({ maxRejectRatio: 0.05 });
    expect(source.tables.orders).toEqual({
      key: ['id'],
      columns: { id: { path: 'id', type: 'bigint' } },
      unknownFields: 'keep',
    });
    expect(source).not.toHaveProperty('schedule');
    expect(source).not.toHaveProperty('records');
    expect(source.schemaPath).toBe(path.join(dir, 'schemas', 'record.schema.json'));
    expect(source.schemaDocument).toEqual({ type: 'object' });
  });

  it('defaults the parameters of page and offset pagination', async () => {
    const page = await loadOne(VALID.replace('{ kind: none }', '{ kind: page, size: 50 }'));
    expect(page.pagination).toEqual({
      kind: 'page',
      pageParam: 'page',
      size: 50,
      startPage: 1,
      maxPages: 100_000,
    });
    const offset = await loadOne(VALID.replace('{ kind: none }', '{ kind: offset, size: 50, maxPages: 3 }'));
    expect(offset.pagination).toEqual({
      kind: 'offset',
      offsetParam: 'offset',
      limitParam: 'limit',
      size: 50,
      maxPages: 3,
    });
  });

  it('expands a bare cron string and normalizes a spaced decimal type', async () => {
    const source = await loadOne(
      VALID.replace('    schema:', '    schedule: "*/15 * * * *"\n    schema:').replace(
        '{ id: bigint }',
        '{ id: bigint, total: "decimal(12, 2)" }',
      ),
    );
    expect(source.schedule).toEqual({ cron: '*/15 * * * *' });
    expect(source.tables.orders?.columns.total).toEqual({ path: 'total', type: 'decimal(12,2)' });
  });

  it('keeps a schedule time zone and an apiKey auth as written', async () => {
    const source = await loadOne(
      VALID.replace(
        '    schema:',
        `    schedule: { cron: "0 3 * * *", timezone: Europe/Lisbon }
    auth: { kind: apiKey, in: header, name: X-Api-Key, valueEnv: ORDERS_API_KEY }
    schema:`,
      ),
    );
    expect(source.schedule).toEqual({ cron: '0 3 * * *', timezone: 'Europe/Lisbon' });
    expect(source.auth).toEqual({
      kind: 'apiKey',
      in: 'header',
      name: 'X-Api-Key',
      valueEnv: 'ORDERS_API_KEY',
    });
  });

  it('reads the element itself only for a child table column named value without a path', async () => {
    const source = await loadOne(`sources:
  orders:
    request: { url: https://api.example.com/v1/orders }
    pagination: { kind: none }
    schema: schemas/record.schema.json
    tables:
      orders: { key: [id], columns: { id: bigint, value: double } }
      notes: { from: notes, parentKey: { order_id: id }, index: n, key: [order_id, n], columns: { value: string } }
      lines: { from: lines, parentKey: { order_id: id }, key: [order_id], columns: { value: { path: value, type: int } } }
`);
    expect(source.tables.orders?.columns.value).toEqual({ path: 'value', type: 'double' });
    expect(source.tables.notes?.columns.value).toEqual({ path: '.', type: 'string' });
    expect(source.tables.lines?.columns.value).toEqual({ path: 'value', type: 'int' });
  });
});

describe('contract helpers', () => {
  it('finds the parent and children, and refuses a table set without exactly one parent', () => {
    const table = {
      key: ['id'],
      columns: { id: { path: 'id', type: 'bigint' as const } },
      unknownFields: 'keep' as const,
    };
    const child = { ...table, from: 'items', parentKey: { order_id: 'id' } };
    expect(parentTable({ tables: { a: child, b: table } })).toEqual(['b', table]);
    expect(childTables({ tables: { a: child, b: table } })).toEqual([['a', child]]);
    expect(() => parentTable({ tables: { a: table, b: table } })).toThrow('found 2');
    expect(() => parentTable({ tables: { a: child } })).toThrow('found 0');
  });
});

describe('problems, each with its file, line, source and field', () => {
  it('names a misspelt field and the line it is on', async () => {
    const lines = await problemLines(
      VALID.replace('    pagination:', '    paginaton: { kind: none }\n    pagination:'),
    );
    expect(lines).toEqual(['F:4:5: source "orders": unknown field "paginaton"']);
  });

  it('names a misspelt nested field by its full path', async () => {
    const lines = await problemLines(VALID.replace('/orders }', '/orders, timeout: 500 }'));
    expect(lines).toEqual(['F:3:56: source "orders": unknown field "request.timeout"']);
  });

  it('lists the pagination kinds once, without one message per union branch', async () => {
    const lines = await problemLines(VALID.replace('{ kind: none }', '{ kind: pages, size: 10 }'));
    expect(lines).toEqual([
      'F:4:19: source "orders": pagination.kind must be one of page, offset, cursor, link, none',
    ]);
  });

  it('takes an engine, and names the file, line and field of one it does not know', async () => {
    const spark = await loadOne(VALID.replace('    schema:', '    engine: spark\n    schema:'));
    expect(spark.engine).toBe('spark');
    const lines = await problemLines(VALID.replace('    schema:', '    engine: duckdb\n    schema:'));
    expect(lines).toEqual(['F:5:5: source "orders": engine must be one of auto, embedded, spark']);
  });

  it('puts a source in its own warehouse schema, and refuses two sources writing one table into one schema', async () => {
    // A second source with a table of the same name: in the service's schema both would write orders.
    const two = `${VALID}  shop:
    request: { url: https://shop.example.com/orders }
    pagination: { kind: none }
    tables:
      orders: { key: [id], columns: { id: bigint } }
`;
    expect(await problemLines(two)).toEqual([
      'F:12:7: source "shop": tables.orders is also a table of source "orders" in warehouse schema "public": give one of them its own `warehouse: { schema }`, or another table name',
    ]);
    // Its own schema separates them, and it is the one the load writes.
    const apart = two.replace('  shop:\n', '  shop:\n    warehouse: { schema: shop }\n');
    const { sources } = await loadSources(await writeSources(apart));
    expect(sources.get('shop')?.warehouse).toEqual({ schema: 'shop' });
    expect(sources.get('orders')?.warehouse).toBeUndefined();
    // A schema named like the service's is the same schema.
    const file = await writeSources(apart);
    await expect(loadSources(file, 'shop')).rejects.toThrow(
      'source "shop": tables.orders is also a table of source "orders" in warehouse schema "shop"',
    );
    expect(
      await problemLines(VALID.replace('    schema:', '    warehouse: { schema: Sales }\n    schema:')),
    ).toEqual([
      'F:5:18: source "orders": warehouse.schema must be a warehouse schema name (a-z, 0-9, _; not starting with a digit; at most 63 characters)',
    ]);
  });

  it('takes onDrift, warn by default, and names one it does not know', async () => {
    expect((await loadOne(VALID)).onDrift).toBe('warn');
    const fail = await loadOne(VALID.replace('    schema:', '    onDrift: fail\n    schema:'));
    expect(fail.onDrift).toBe('fail');
    const lines = await problemLines(VALID.replace('    schema:', '    onDrift: stop\n    schema:'));
    expect(lines).toEqual(['F:5:5: source "orders": onDrift must be one of warn, fail']);
  });

  it('says which field the chosen pagination kind does not take', async () => {
    const lines = await problemLines(
      VALID.replace(
        '{ kind: none }',
        '{ kind: cursor, cursorPath: meta.next, cursorParam: after, pageParam: page }',
      ),
    );
    expect(lines).toEqual(['F:4:76: source "orders": pagination.pageParam is not allowed for kind "cursor"']);
  });

  it('reports a missing pagination field at the pagination key', async () => {
    const lines = await problemLines(
      VALID.replace('    pagination: { kind: none }', '    pagination:\n      kind: page'),
    );
    expect(lines).toEqual(['F:4:5: source "orders": pagination.size is required']);
  });

  it('refuses a literal secret in auth without echoing it', async () => {
    const lines = await problemLines(
      VALID.replace('    schema:', '    auth: { kind: bearer, token: s3cr3t-value }\n    schema:'),
    );
    expect(lines).toEqual([
      'F:5:5: source "orders": auth.tokenEnv is required',
      'F:5:27: source "orders": auth.token is not allowed: secrets are referenced by environment variable name (use tokenEnv)',
    ]);
    expect(lines.join('\n')).not.toContain('s3cr3t');
  });

  it('refuses a literal basic-auth password and names the field to use', async () => {
    const lines = await problemLines(
      VALID.replace(
        '    schema:',
        '    auth: { kind: basic, usernameEnv: API_USER, passwordEnv: API_PASSWORD, password: hunter2 }\n    schema:',
      ),
    );
    expect(lines).toEqual([
      'F:5:76: source "orders": auth.password is not allowed: secrets are referenced by environment variable name (use passwordEnv)',
    ]);
  });

  it('refuses credentials in the URL and in an Authorization header', async () => {
    const lines = await problemLines(
      VALID.replace(
        '{ url: https://api.example.com/v1/orders }',
        '{ url: "https://me:pw@api.example.com/", headers: { Authorization: Bearer abc } }',
      ),
    );
    expect(lines).toEqual([
      'F:3:16: source "orders": request.url must not carry credentials: secrets are referenced by environment variable name (use auth)',
      'F:3:66: source "orders": request.headers.Authorization is not allowed: secrets are referenced by environment variable name (use auth)',
    ]);
  });

  it('refuses an env name that is not one', async () => {
    const lines = await problemLines(
      VALID.replace('    schema:', '    auth: { kind: bearer, tokenEnv: orders-token }\n    schema:'),
    );
    expect(lines).toEqual([
      'F:5:27: source "orders": auth.tokenEnv must be an environment variable name (A-Z, 0-9 and _; not starting with a digit)',
    ]);
  });

  it('refuses an auth kind it does not know', async () => {
    const lines = await problemLines(VALID.replace('    schema:', '    auth: { kind: oauth }\n    schema:'));
    expect(lines).toEqual(['F:5:13: source "orders": auth.kind must be one of none, bearer, apiKey, basic']);
  });

  it('accepts only http and https URLs', async () => {
    const ftp = await problemLines(
      VALID.replace('https://api.example.com/v1/orders', 'ftp://files.example.com/orders'),
    );
    expect(ftp).toEqual(['F:3:16: source "orders": request.url must use http or https, not ftp']);
    const relative = await problemLines(VALID.replace('https://api.example.com/v1/orders', '/v1/orders'));
    expect(relative).toEqual([
      'F:3:16: source "orders": request.url must be an absolute http or https URL, not "/v1/orders"',
    ]);
  });

  it('checks ranges with both bounds named', async () => {
    const lines = await problemLines(VALID.replace('/orders }', '/orders, timeoutMs: 50 }'));
    expect(lines).toEqual(['F:3:56: source "orders": request.timeoutMs must be from 100 to 300000']);
  });

  it('refuses a cron expression cron-parser rejects, and one with missing fields', async () => {
    const bad = await problemLines(VALID.replace('    schema:', '    schedule: "61 * * * *"\n    schema:'));
    expect(bad).toEqual([
      'F:5:5: source "orders": schedule is not a valid cron expression: "61 * * * *": Constraint error, got value 61 expected range 0-59',
    ]);
    const short = await problemLines(VALID.replace('    schema:', '    schedule: "* * *"\n    schema:'));
    expect(short).toEqual([
      'F:5:5: source "orders": schedule must have 5 fields (or 6 with seconds), not 3: "* * *"',
    ]);
  });

  it('refuses a time zone that is not an IANA zone', async () => {
    const lines = await problemLines(
      VALID.replace(
        '    schema:',
        '    schedule: { cron: "0 3 * * *", timezone: Mars/Olympus }\n    schema:',
      ),
    );
    expect(lines).toEqual([
      'F:5:36: source "orders": schedule.timezone must be an IANA time zone such as Europe/Lisbon, not "Mars/Olympus"',
    ]);
    const offset = await problemLines(
      VALID.replace('    schema:', '    schedule: { cron: "0 3 * * *", timezone: "+01:00" }\n    schema:'),
    );
    expect(offset[0]).toContain('schedule.timezone must be an IANA time zone');
  });

  it('names the schema file it cannot find', async () => {
    const lines = await problemLines(VALID.replace('record.schema.json', 'missing.schema.json'));
    expect(lines).toEqual(['F:5:5: source "orders": schema file not found: D/schemas/missing.schema.json']);
  });

  it('refuses a schema file that is not JSON or not a JSON Schema', async () => {
    await writeFile(path.join(dir, 'schemas', 'broken.json'), '{ "type": ');
    await writeFile(path.join(dir, 'schemas', 'wrong.json'), '{ "type": "objekt" }');
    const broken = await problemLines(VALID.replace('record.schema.json', 'broken.json'));
    expect(broken).toHaveLength(1);
    expect(broken[0]).toMatch(
      /^F:5:5: source "orders": schema file D\/schemas\/broken\.json is not valid JSON: /,
    );
    const wrong = await problemLines(VALID.replace('record.schema.json', 'wrong.json'));
    expect(wrong).toHaveLength(1);
    expect(wrong[0]).toMatch(
      /^F:5:5: source "orders": schema file D\/schemas\/wrong\.json is not a valid JSON Schema: .*data\/type/,
    );
  });

  it('needs exactly one parent table', async () => {
    const two = await problemLines(
      VALID.replace(
        '      orders: { key: [id], columns: { id: bigint } }',
        '      orders: { key: [id], columns: { id: bigint } }\n      customers: { key: [id], columns: { id: bigint } }',
      ),
    );
    expect(two).toEqual([
      'F:8:7: source "orders": tables.customers has no "from", but "orders" is already the parent table: every other table needs "from" and "parentKey"',
    ]);
    const none = await problemLines(
      VALID.replace('orders: { key: [id],', 'orders: { from: orders, parentKey: { x: id }, key: [id],'),
    );
    expect(none).toEqual([
      'F:6:5: source "orders": tables must have one parent table (a table without "from"), and every table here has "from"',
    ]);
  });

  it('needs parentKey on a child table', async () => {
    const lines = await problemLines(
      `${VALID}      items: { from: items, key: [line], columns: { line: int } }
`,
    );
    expect(lines).toEqual([
      'F:8:7: source "orders": tables.items.parentKey is required for a child table (one with "from")',
    ]);
  });

  it('refuses a parentKey that points at a column outside the parent key', async () => {
    const lines = await problemLines(
      `${VALID.replace('{ id: bigint }', '{ id: bigint, status: string }')}      items:
        from: items
        parentKey: { order_id: status }
        key: [order_id, line]
        columns: { line: int }
`,
    );
    expect(lines).toEqual([
      'F:10:22: source "orders": tables.items.parentKey.order_id refers to "status", which is not in the key of parent table "orders" (id)',
    ]);
  });

  it('needs a child to carry the whole parent key, and parentKey and index only on children', async () => {
    const lines = await problemLines(
      `${VALID.replace('key: [id]', 'key: [region, id], parentKey: { x: id }').replace('{ id: bigint }', '{ id: bigint, region: string }')}      items: { from: items, parentKey: { order_id: id }, key: [order_id, line], columns: { line: int } }
`,
    );
    expect(lines).toEqual([
      'F:7:36: source "orders": tables.orders.parentKey is only allowed on a child table (one with "from")',
      'F:8:29: source "orders": tables.items.parentKey must map every key column of parent table "orders"; missing region',
    ]);
  });

  it('refuses a key column that no column, parentKey or index declares', async () => {
    const lines = await problemLines(VALID.replace('key: [id]', 'key: [id, region]'));
    expect(lines).toEqual([
      'F:7:27: source "orders": tables.orders.key[1] names "region", which is not a column of table "orders" (declared: id)',
    ]);
  });

  it('refuses a column declared twice across columns, parentKey and index', async () => {
    const lines = await problemLines(
      `${VALID}      items: { from: items, parentKey: { order_id: id }, index: line, key: [order_id, line], columns: { line: int, order_id: bigint } }
`,
    );
    expect(lines).toEqual([
      'F:8:42: source "orders": tables.items.parentKey.order_id declares column "order_id" again: it is already in columns',
      'F:8:58: source "orders": tables.items.index declares column "line" again: it is already in columns or parentKey',
    ]);
  });

  it('refuses an unknown column type and a decimal out of range', async () => {
    const lines = await problemLines(
      VALID.replace(
        '{ id: bigint }',
        '{ id: bigint, a: numeric, b: "decimal(40,2)", c: { path: x.c, type: "decimal(5,6)" } }',
      ),
    );
    expect(lines).toEqual([
      'F:7:51: source "orders": tables.orders.columns.a must be one of bigint, int, smallint, string, boolean, double, date, timestamp, json or decimal(p,s), not "numeric"',
      'F:7:63: source "orders": tables.orders.columns.b must have a decimal precision from 1 to 38, not 40 in "decimal(40,2)"',
      'F:7:99: source "orders": tables.orders.columns.c.type must have a decimal scale from 0 to its precision 5, not 6 in "decimal(5,6)"',
    ]);
  });

  it('refuses source and table names that cannot be lake keys or warehouse identifiers', async () => {
    const lines = await problemLines(
      VALID.replace('  orders:', '  Orders-API:').replace('      orders:', '      2orders:'),
    );
    expect(lines).toEqual([
      'F:2:3: sources.Orders-API is not a valid source name: it appears in lake keys, so use a-z, 0-9 and _, start with a letter and keep it to 48 characters',
      'F:7:7: source "Orders-API": tables.2orders is not a valid table name: use a-z, 0-9 and _, do not start with a digit, and keep it to 63 characters',
    ]);
  });

  it('reports every problem in the file together, in line order', async () => {
    const yaml = `sources:
  orders:
    request: { url: ftp://api.example.com/orders }
    pagination: { kind: page }
    schema: schemas/missing.json
    tables:
      orders: { key: [id], columns: { id: bigint, total: "decimal(99,2)" } }
  customers:
    request: { url: https://api.example.com/customers }
    pagination: { kind: none }
    schedule: "every day"
    schema: schemas/record.schema.json
    tabels: {}
`;
    const file = await writeSources(yaml);
    const error: unknown = await loadSources(file).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SourcesConfigError);
    const { problems } = error as SourcesConfigError;
    expect(problems.map((problem) => [problem.line, problem.source, problem.field])).toEqual([
      [3, 'orders', 'request.url'],
      [4, 'orders', 'pagination.size'],
      [5, 'orders', 'schema'],
      [7, 'orders', 'tables.orders.columns.total'],
      [8, 'customers', 'tables'],
      [11, 'customers', 'schedule'],
      [13, 'customers', 'tabels'],
    ]);
    expect((error as SourcesConfigError).message.split('\n')).toHaveLength(7);
  });
});

describe('the file itself', () => {
  it('says when the file does not exist', async () => {
    const missing = path.join(dir, 'nowhere.yaml');
    const error: unknown = await loadSources(missing).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(SourcesConfigError);
    expect(error).toMatchObject({
      message: `sources file not found: ${missing}`,
      problems: [{ field: '', message: `sources file not found: ${missing}` }],
    });
  });

  it('gives the line and column of a YAML syntax error', async () => {
    const lines = await problemLines(`sources:
  orders:
    request: { url: https://api.example.com }
    pagination: [ none
    schema: x.json
`);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^F:5:5: Flow sequence in block collection must be sufficiently indented/);
  });

  it('needs a non-empty sources map and nothing else at the top', async () => {
    expect(await problemLines('source: {}\n')).toEqual([
      'F:1:1: unknown field "source"',
      'F:1:1: sources is required',
    ]);
    expect(await problemLines('sources: {}\n')).toEqual(['F:1:1: sources must declare at least one source']);
    expect(await problemLines('sources: [orders]\n')).toEqual([
      'F:1:1: sources must be a map of source name to source',
    ]);
    expect(await problemLines('')).toEqual([
      'F:1:1: sources is required: the file must be a map with a "sources" key',
    ]);
  });
});
