import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { validatorFor } from '../../lambdas/validate/schema-validator.ts';
import { loadSources, type LoadedSource } from '../../service/config/sources.ts';
import { ingestAll, readManifest, readRecords, request, tempLake } from '../support/ingest.ts';

// `npx afluente sources init` as a child process against real HTTP servers on loopback: the demo source API
// (page, offset, cursor and Link pagination) and a small node:http server below with the shapes the demo API
// lacks. Each proposal is loaded with the service's own config loader (the boot check), and for the paginated
// ones the ingest then runs with it as printed and pulls every record, each of which passes the JSON Schema
// the service derives from the proposed tables.

const DEMO_RECORDS = 250;
let api: DemoApi;
let shapes: Server;
let base: string;
let dir: string;
let files = 0;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts the CLI the way the bin does (`cli/afluente.mjs`) on this Node 24. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  const child = spawn(process.execPath, ['cli/afluente.mjs', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: Result = { code: null, stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (output.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output.stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { ...output, code };
}

async function init(name: string, url: string, ...more: string[]): Promise<Result> {
  const result = await cli(['sources', 'init', name, '--url', url, '--allow-private-network', ...more]);
  expect(result.code, result.stderr).toBe(0);
  return result;
}

/** The proposal as printed, written to a sources file and loaded by the service's loader: no problem may come. */
async function bootCheck(yaml: string, name: string): Promise<LoadedSource> {
  const file = join(dir, `sources-${++files}.yaml`);
  await writeFile(file, yaml);
  const loaded = (await loadSources(file)).sources.get(name);
  if (!loaded) throw new Error(`${file} has no source ${name}`);
  return loaded;
}

type Source = Record<string, unknown> & {
  pagination: Record<string, unknown>;
  tables: Record<string, { key: string[]; columns: Record<string, unknown> } & Record<string, unknown>>;
};

function proposed(yaml: string, name: string): Source {
  const doc = parse(yaml) as { sources: Record<string, Source> };
  const source = doc.sources[name];
  if (!source) throw new Error(`no source ${name} in:\n${yaml}`);
  return source;
}

/** Runs the ingest with the loaded proposal and checks every record against the schema derived from its tables. */
async function ingestWith(loaded: LoadedSource): Promise<Record<string, unknown>[]> {
  const { name: _n, schemaPath: _p, schemaDocument, ...config } = loaded;
  const lake = await tempLake();
  const { result } = await ingestAll(request(config, lake), lake);
  expect(result.kind, JSON.stringify(result)).toBe('done');
  const records = await readRecords(lake, await readManifest(lake));
  const validate = validatorFor(schemaDocument);
  const rejected = records.filter((r) => !validate(r));
  expect(rejected.length, JSON.stringify(validate.errors)).toBe(0);
  return records;
}

// --- the shapes the demo API does not have -----------------------------------------------------------------

const TOKEN = 's3cr3t-bearer-value';
const KEY = 's3cr3t-key-value';
const item = (i: number): Record<string, unknown> => ({
  id: i + 1,
  name: `item ${i + 1}`,
  price: (i % 7) + 0.25,
});
const slice = (total: number, from: number, size: number): Record<string, unknown>[] =>
  Array.from({ length: Math.max(0, Math.min(total, from + size) - from) }, (_, k) => item(from + k));
const token = (n: number): string => Buffer.from(`at:${n}`).toString('base64url');
const untoken = (t: string | null): number =>
  t ? Number(Buffer.from(t, 'base64url').toString().slice(3)) : 0;

// Records with a bit of everything inference has to decide on.
const RICH = Array.from({ length: 12 }, (_, i) => ({
  uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
  code: i % 3 === 0 ? 'A' : 'B',
  createdAt: `2026-02-${String(i + 1).padStart(2, '0')}T10:00:00Z`,
  birthday: `1990-01-${String(i + 1).padStart(2, '0')}`,
  local_time: `2026-02-01T10:${String(i).padStart(2, '0')}:00`,
  lat: 52.520008 + i / 1000,
  score: i % 2 === 0 ? i : i + 0.5,
  active: i % 2 === 0,
  nothing: null,
  mixed: i % 2 === 0 ? i : `n${i}`,
  'weird.key': 1,
  customer_id: 1000 + i,
  customer: { id: 50 + i, address: { city: 'Lisboa' } },
  prices: { USD: 1.5 + i, EUR: 1.4 + i },
  daily: Object.fromEntries([[`2026-01-${String(i + 1).padStart(2, '0')}`, i]]),
  matrix: [
    [1, 2],
    [3, 4],
  ],
  empty_list: [],
  lines: Array.from({ length: 2 + (i % 2) }, (_, k) => ({ value: k * 10 + i, sku: `S${k}` })),
  notes: Array.from({ length: 1 + (i % 3) }, (_, k) => ({ id: `${i}-${k}`, text: 'note' })),
  updated_at: `2026-03-01T00:00:${String(i).padStart(2, '0')}.000Z`,
}));

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(text);
}

function route(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', base);
  const q = url.searchParams;
  const int = (name: string, fallback: number): number => Number(q.get(name) ?? fallback);
  switch (url.pathname) {
    case '/array': {
      // GitHub's shape: the body is the array, the next page is in a Link header.
      const page = int('page', 1);
      const total = 60;
      const headers: Record<string, string> = {};
      if (page * 25 < total) {
        const next = new URL(url);
        next.searchParams.set('page', String(page + 1));
        headers.link = `<${next.href}>; rel="next", <${base}/array?page=3>; rel="last"`;
      }
      return send(res, 200, slice(total, (page - 1) * 25, 25), headers);
    }
    case '/nested-cursor': {
      // The token sits at meta.next_cursor and goes back as `after`: the CLI's first guesses are ignored.
      const from = untoken(q.get('after'));
      const total = 75;
      return send(res, 200, {
        results: slice(total, from, 30),
        meta: { next_cursor: from + 30 < total ? token(from + 30) : null },
      });
    }
    case '/offset': {
      const offset = int('offset', 0);
      const limit = int('limit', 40);
      return send(res, 200, { items: slice(100, offset, limit), offset, limit, total_count: 100 });
    }
    case '/laravel': {
      const page = int('page', 1);
      const perPage = int('per_page', 15);
      const total = 40;
      const last = Math.ceil(total / perPage);
      return send(res, 200, {
        current_page: page,
        data: slice(total, (page - 1) * perPage, perPage),
        per_page: perPage,
        last_page: last,
        total,
        next_page_url: page < last ? `${base}/laravel?page=${page + 1}` : null,
      });
    }
    case '/graph': {
      // Facebook's shape: a next URL whose cursor is also in the body.
      const from = untoken(q.get('cursor'));
      const next = from + 20 < 50 ? token(from + 20) : null;
      return send(res, 200, {
        data: slice(50, from, 20),
        paging: {
          cursors: { after: next ?? '' },
          ...(next ? { next: `${base}/graph?cursor=${next}` } : {}),
        },
      });
    }
    case '/elsewhere':
      return send(res, 200, { data: slice(10, 0, 5), links: { next: `${base}/other/list?token=abc` } });
    case '/rich':
      return send(res, 200, { data: RICH, generated_at: '2026-03-01T00:00:00Z' });
    case '/secure':
      if (req.headers.authorization !== `Bearer ${TOKEN}`) return send(res, 401, { error: 'unauthorized' });
      return send(res, 200, slice(3, 0, 3));
    case '/secure-query':
      if (q.get('api_key') !== KEY) return send(res, 403, { error: 'forbidden' });
      return send(res, 200, { data: slice(3, 0, 3) });
    case '/html':
      return send(res, 200, '<html><body>Sign in</body></html>', { 'content-type': 'text/html' });
    case '/no-array':
      return send(res, 200, { ok: true, count: 3, data: [1, 2, 3] });
    case '/empty':
      return send(res, 200, { data: [] });
    default:
      return send(res, 404, { error: 'not_found' });
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'afluente-scaffold-'));
  api = await startDemoApi({ records: DEMO_RECORDS, pageSize: 100 });
  shapes = createServer(route);
  await new Promise<void>((resolve) => shapes.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(shapes.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await api?.close();
  shapes?.closeAllConnections();
  await new Promise((resolve) => shapes?.close(resolve));
});

describe('the demo source API', () => {
  it('proposes page pagination, the data records, key id and the child tables, which pass the boot check and ingest every record', async () => {
    const { stdout, stderr } = await init('demo', `${api.url}/orders?per_page=50`);
    const source = proposed(stdout, 'demo');
    expect(source.request).toEqual({ url: `${api.url}/orders` });
    expect(source.allowPrivateNetwork).toBe(true);
    expect(source.records).toBe('data');
    expect(source.pagination).toEqual({
      kind: 'page',
      pageParam: 'page',
      sizeParam: 'per_page',
      size: 50,
      startPage: 1,
    });
    expect(source.schema).toBeUndefined();
    expect(Object.keys(source.tables)).toEqual(['orders', 'orders_items', 'orders_tags']);
    const { orders, orders_items: items, orders_tags: tags } = source.tables;
    expect(orders?.key).toEqual(['id']);
    expect(orders?.columns).toMatchObject({
      id: 'bigint',
      status: 'string',
      total: 'decimal(18,2)',
      created_at: 'timestamp',
      customer_id: { path: 'customer.id', type: 'bigint' },
      customer_address_city: { path: 'customer.address.city', type: 'string' },
    });
    expect(items).toEqual({
      from: 'items',
      parentKey: { order_id: 'id' },
      key: ['order_id', 'line'],
      columns: { line: 'bigint', sku: 'string', quantity: 'bigint', unit_price: 'decimal(18,2)' },
    });
    expect(tags).toEqual({
      from: 'tags',
      parentKey: { order_id: 'id' },
      index: 'position',
      key: ['order_id', 'position'],
      columns: { value: 'string' },
    });
    // Guesses are commented; the incremental field is suggested, commented out, so it needs no param to load.
    expect(stdout).toMatch(/# .*decimal is exact/);
    expect(stdout).toContain('# incremental: { cursorField: updated_at, param: CHANGED_SINCE_PARAM }');
    expect(stderr).toContain('sampled 3 pages, 150 records');
    expect(stderr).toMatch(/pagination: page: .*pages 2-3 followed with the ingest's paginator/);

    const loaded = await bootCheck(stdout, 'demo');
    expect(loaded.schemaPath).toBeUndefined();
    expect(await ingestWith(loaded)).toHaveLength(DEMO_RECORDS);
  });

  it.each([
    ['offset', { kind: 'offset', offsetParam: 'offset', limitParam: 'limit', size: 100 }],
    ['cursor', { kind: 'cursor', cursorPath: 'next_cursor', cursorParam: 'cursor' }],
    ['link', { kind: 'link' }],
  ])('detects %s pagination and the proposal ingests every record', async (kind, pagination) => {
    const { stdout } = await init('demo', `${api.url}/${kind}/orders`);
    const source = proposed(stdout, 'demo');
    expect(source.pagination).toEqual(pagination);
    expect(source.tables.orders?.key).toEqual(['id']);
    expect(await ingestWith(await bootCheck(stdout, 'demo'))).toHaveLength(DEMO_RECORDS);
  });

  it('without a page size in the URL, uses the size page 1 had and says sizeParam is unknown', async () => {
    const { stdout } = await init('demo', `${api.url}/orders`, '--pages', '2');
    expect(proposed(stdout, 'demo').pagination).toEqual({
      kind: 'page',
      pageParam: 'page',
      size: 100,
      startPage: 1,
    });
    expect(stdout).toContain('set sizeParam if the API takes one');
    expect(await ingestWith(await bootCheck(stdout, 'demo'))).toHaveLength(DEMO_RECORDS);
  });
});

describe('other shapes', () => {
  it('a top-level array body with a Link header: no records path, link pagination', async () => {
    const { stdout, stderr } = await init('gh', `${base}/array`);
    const source = proposed(stdout, 'gh');
    expect(source.records).toBeUndefined();
    expect(source.pagination).toEqual({ kind: 'link' });
    expect(source.tables.array?.columns).toEqual({ id: 'bigint', name: 'string', price: 'decimal(18,2)' });
    expect(stderr).toContain('the body is the array of records');
    expect(await ingestWith(await bootCheck(stdout, 'gh'))).toHaveLength(60);
  });

  it('a cursor at meta.next_cursor: tries cursorParam guesses until the pages move, and says it is a guess', async () => {
    const { stdout, stderr } = await init('nested', `${base}/nested-cursor`);
    const source = proposed(stdout, 'nested');
    expect(source.records).toBe('results');
    expect(source.pagination).toEqual({
      kind: 'cursor',
      cursorPath: 'meta.next_cursor',
      cursorParam: 'after',
    });
    expect(stdout).toMatch(/# cursorParam "after" is a guess/);
    expect(stderr).toMatch(/cursor \(body\.meta\.next_cursor → cursor\) did not work: page 2 repeats page 1/);
    expect(await ingestWith(await bootCheck(stdout, 'nested'))).toHaveLength(75);
  });

  it('offset, limit and total_count in the body: offset pagination', async () => {
    const { stdout } = await init('offsets', `${base}/offset`);
    const source = proposed(stdout, 'offsets');
    expect(source.records).toBe('items');
    expect(source.pagination).toEqual({
      kind: 'offset',
      offsetParam: 'offset',
      limitParam: 'limit',
      size: 40,
    });
    expect(await ingestWith(await bootCheck(stdout, 'offsets'))).toHaveLength(100);
  });

  it("a next URL in the body that differs by the page parameter: page pagination, the body's per_page as size", async () => {
    const { stdout } = await init('laravel', `${base}/laravel`);
    expect(proposed(stdout, 'laravel').pagination).toEqual({
      kind: 'page',
      pageParam: 'page',
      sizeParam: 'per_page',
      size: 15,
      startPage: 1,
    });
    expect(stdout).toContain('body.next_page_url holds the next page');
    expect(await ingestWith(await bootCheck(stdout, 'laravel'))).toHaveLength(40);
  });

  it('a next URL whose cursor is also in the body: cursor pagination reading that field', async () => {
    const { stdout } = await init('graph', `${base}/graph`);
    expect(proposed(stdout, 'graph').pagination).toEqual({
      kind: 'cursor',
      cursorPath: 'paging.cursors.after',
      cursorParam: 'cursor',
    });
    expect(await ingestWith(await bootCheck(stdout, 'graph'))).toHaveLength(50);
  });

  it('a next URL on another path: none, with a comment that nextPath comes later', async () => {
    const { stdout } = await init('elsewhere', `${base}/elsewhere`);
    expect(proposed(stdout, 'elsewhere').pagination).toEqual({ kind: 'none' });
    expect(stdout).toMatch(
      /# only page 1 is read: body\.links\.next holds the next page's URL, on another path/,
    );
    expect(stdout).toContain('(nextPath) comes in a later release');
    await bootCheck(stdout, 'elsewhere');
  });

  it('infers types, keys, maps as json, child tables and identifiers from varied records', async () => {
    const { stdout } = await init('rich', `${base}/rich`);
    const source = proposed(stdout, 'rich');
    expect(source.pagination).toEqual({ kind: 'none' });
    const { rich, rich_lines: lines, rich_notes: notes } = source.tables;
    expect(rich?.key).toEqual(['uuid']);
    expect(rich?.columns).toEqual({
      uuid: 'string',
      code: 'string',
      created_at: { path: 'createdAt', type: 'timestamp' },
      birthday: 'date',
      local_time: 'string',
      lat: 'double',
      score: 'decimal(18,1)',
      active: 'boolean',
      nothing: 'string',
      mixed: 'json',
      customer_id: 'bigint',
      customer_id_2: { path: 'customer.id', type: 'bigint' },
      customer_address_city: { path: 'customer.address.city', type: 'string' },
      prices: 'json',
      daily: 'json',
      matrix: 'json',
      empty_list: 'json',
      updated_at: 'timestamp',
    });
    // An element field named `value` needs its path spelled out, or it would read the element itself.
    expect(lines).toEqual({
      from: 'lines',
      parentKey: { rich_uuid: 'uuid' },
      index: 'position',
      key: ['rich_uuid', 'position'],
      columns: { value: { path: 'value', type: 'bigint' }, sku: 'string' },
    });
    expect(notes).toMatchObject({ from: 'notes', key: ['rich_uuid', 'id'] });
    expect(notes?.index).toBeUndefined();
    expect(stdout).toMatch(/# a map, kept as json: its keys look like data \(USD, EUR\)/);
    expect(stdout).toMatch(/# a map, kept as json: its keys vary between records \(12 keys/);
    expect(stdout).toMatch(/matrix: json # an array of arrays/);
    expect(stdout).toMatch(/# only null in the sample/);
    expect(stdout).toMatch(/# mixed types in the sample \(integer, string\)/);
    expect(stdout).toMatch(/# date-times without a time zone/);
    expect(stdout).toMatch(/"weird\.key" has a dot or a space in its name/);
    expect(stdout).toMatch(/also unique there: .*customer_id/);
    expect(stdout).toContain('# incremental: { cursorField: updated_at,');
    await bootCheck(stdout, 'rich');
  });
});

describe('auth and secrets', () => {
  it('reads a bearer token from the variable --auth names and never prints it', async () => {
    const env = { SCAFFOLD_TOKEN: TOKEN };
    const result = await cli(
      [
        'sources',
        'init',
        'secure',
        '--url',
        `${base}/secure`,
        '--allow-private-network',
        '--auth',
        'bearer:SCAFFOLD_TOKEN',
      ],
      env,
    );
    expect(result.code, result.stderr).toBe(0);
    expect(proposed(result.stdout, 'secure').auth).toEqual({ kind: 'bearer', tokenEnv: 'SCAFFOLD_TOKEN' });
    expect(result.stdout + result.stderr).not.toContain(TOKEN);
    await bootCheck(result.stdout, 'secure');

    const refused = await cli([
      'sources',
      'init',
      'secure',
      '--url',
      `${base}/secure`,
      '--allow-private-network',
    ]);
    expect(refused.code).toBe(3);
    expect(refused.stderr).toContain(`page 1: GET ${base}/secure answered 401`);
  });

  it('sends an API key in the query, masks it in messages and keeps it out of the proposal', async () => {
    const env = { SCAFFOLD_KEY: KEY };
    const auth = ['--auth', 'apiKey:query:api_key:SCAFFOLD_KEY'];
    const ok = await cli(
      ['sources', 'init', 'keyed', '--url', `${base}/secure-query`, '--allow-private-network', ...auth],
      env,
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(proposed(ok.stdout, 'keyed').auth).toEqual({
      kind: 'apiKey',
      in: 'query',
      name: 'api_key',
      valueEnv: 'SCAFFOLD_KEY',
    });
    expect(proposed(ok.stdout, 'keyed').request).toEqual({ url: `${base}/secure-query` });
    expect(ok.stdout + ok.stderr).not.toContain(KEY);
    await bootCheck(ok.stdout, 'keyed');

    const wrong = await cli(
      ['sources', 'init', 'keyed', '--url', `${base}/secure-query`, '--allow-private-network', ...auth],
      {
        SCAFFOLD_KEY: 'wrong-key-value',
      },
    );
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toContain(`GET ${base}/secure-query?api_key=*** answered 403`);
    expect(wrong.stderr).not.toContain('wrong-key-value');
  });

  it('refuses a secret in --auth, an unset variable, and a credential in --url, without repeating them', async () => {
    const pasted = await cli([
      'sources',
      'init',
      'x',
      '--url',
      `${base}/secure`,
      '--auth',
      'bearer:sk_live_abc123',
    ]);
    expect(pasted.code).toBe(2);
    expect(pasted.stderr).toContain('must be the NAME of an environment variable');
    expect(pasted.stderr).not.toContain('sk_live_abc123');

    const { SCAFFOLD_UNSET: _unset, ...env } = process.env;
    const unset = await cli(
      [
        'sources',
        'init',
        'x',
        '--url',
        `${base}/secure`,
        '--allow-private-network',
        '--auth',
        'bearer:SCAFFOLD_UNSET',
      ],
      env as Record<string, string>,
    );
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain('environment variable SCAFFOLD_UNSET');

    const inUrl = await cli(['sources', 'init', 'x', '--url', `${base}/secure-query?api_key=${KEY}`]);
    expect(inUrl.code).toBe(2);
    expect(inUrl.stderr).toContain('--auth apiKey:query:api_key:MY_KEY_ENV');
    expect(inUrl.stderr).not.toContain(KEY);

    const userInfo = await cli(['sources', 'init', 'x', '--url', `http://me:${KEY}@127.0.0.1:1/x`]);
    expect(userInfo.code).toBe(2);
    expect(userInfo.stderr).toContain('must not carry credentials');
    expect(userInfo.stderr).not.toContain(KEY);
  });
});

describe('errors and exit codes', () => {
  it('refuses loopback without --allow-private-network, through the ingest network guard', async () => {
    const result = await cli(['sources', 'init', 'x', '--url', `${base}/rich`]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('refusing to connect to 127.0.0.1');
    expect(result.stderr).toContain('pass --allow-private-network');
    expect(result.stdout).toBe('');
  });

  it.each([
    ['/missing', 3, /page 1: GET http:\/\/127\.0\.0\.1:\d+\/missing answered 404/],
    ['/html', 3, /the body is not JSON \(content-type text\/html/],
    [
      '/no-array',
      3,
      /no array of records found in the body \(its fields: ok, count, data\); name the records array with --records/,
    ],
    ['/empty', 3, /has no records \(body\.data is empty\)/],
  ])('%s: exit %i with a clear message', async (path, code, message) => {
    const result = await cli(['sources', 'init', 'x', '--url', `${base}${path}`, '--allow-private-network']);
    expect(result.code).toBe(code);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe('');
  });

  it('usage errors: a bad URL, a bad name, a bad --records, a --records path that is not there', async () => {
    const bad = async (args: string[], message: string): Promise<void> => {
      const result = await cli(['sources', 'init', ...args]);
      expect(result.code, result.stderr).toBe(2);
      expect(result.stderr).toContain(message);
    };
    await bad(['x', '--url', 'not a url'], '--url "not a url" is not an absolute URL');
    await bad(['x', '--url', 'ftp://example.com/x'], '--url must be an http:// or https:// URL, not ftp:');
    await bad(['Bad-Name', '--url', `${base}/rich`], 'source name "Bad-Name" is not valid');
    await bad(
      ['x', '--url', `${base}/rich`, '--records', 'data..x'],
      '--records "data..x" is not a dot path',
    );
    await bad(['x', '--url', `${base}/rich`, '--pages', '0'], 'a number from 1 to 20');
    await bad(
      ['x', '--url', `${base}/rich`, '--allow-private-network', '--records', 'items'],
      '--records items: body.items is missing; arrays of objects in the body: data (12)',
    );
  });

  it('--out writes the proposal and never overwrites a file', async () => {
    const out = join(dir, 'proposal.yaml');
    const first = await cli([
      'sources',
      'init',
      'demo',
      '--url',
      `${api.url}/link/orders`,
      '--allow-private-network',
      '--out',
      out,
    ]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toBe('');
    expect(first.stderr).toContain(`proposal written to ${out}`);
    const written = await readFile(out, 'utf8');
    await bootCheck(written, 'demo');

    const again = await cli([
      'sources',
      'init',
      'demo',
      '--url',
      `${api.url}/orders`,
      '--allow-private-network',
      '--out',
      out,
    ]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already exists: refusing to overwrite it');
    expect(await readFile(out, 'utf8')).toBe(written);
  });

  it('--help lists the flags, the auth forms and the exit codes', async () => {
    const result = await cli(['sources', 'init', '--help']);
    expect(result.code).toBe(0);
    for (const text of [
      '--url <url>',
      '--records <path>',
      '--auth <spec>',
      '--pages <n>',
      '--out <file>',
      '--allow-private-network',
      'bearer:TOKEN_ENV',
      'Exit codes:',
    ])
      expect(result.stdout).toContain(text);
  });

  it("the sources command's --url is the API's, whatever AFLUENTE_URL says", async () => {
    const result = await cli(
      ['sources', 'init', 'demo', '--url', `${api.url}/link/orders`, '--allow-private-network'],
      {
        AFLUENTE_URL: 'http://127.0.0.1:1',
      },
    );
    expect(result.code, result.stderr).toBe(0);
    expect(proposed(result.stdout, 'demo').request).toEqual({ url: `${api.url}/link/orders` });
  });
});
