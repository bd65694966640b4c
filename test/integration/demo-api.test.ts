import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { createGunzip } from 'node:zlib';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { request } from 'undici';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { orderAt, updatedAtMs, type Order } from '../../demo/source-api/records.ts';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';

// The demo source API is what the ingest tests and benchmarks pull from, so its own promises are tested here
// over real HTTP: the data, every pagination kind, every fault, and its refusals.

const ajv = new Ajv({ allErrors: true });
addFormats.default(ajv);
const validate = ajv.compile(JSON.parse(readFileSync('config/schemas/orders.schema.json', 'utf8')) as object);

const RECORDS = 2_345; // not a multiple of the page size, so the last page is short
const PAGE = 500;
let api: DemoApi;
beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS, pageSize: PAGE });
});
afterAll(async () => api.close());
beforeEach(() => {
  api.setFaults({});
  api.setRecords(RECORDS);
  api.resetStats();
});

const get = (path: string, init?: RequestInit): Promise<Response> => fetch(`${api.url}${path}`, init);

interface Page {
  data: Order[];
  page?: number;
  next_cursor?: string | null;
}

async function getJson(path: string): Promise<{ res: Response; body: Page }> {
  const res = await get(path);
  expect(res.status, path).toBe(200);
  return { res, body: (await res.json()) as Page };
}

const nextLink = (res: Response): string | undefined =>
  /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '')?.[1];

/** Walks one pagination kind to its end the way a client would, and returns every record it got. */
async function walk(kind: 'page' | 'offset' | 'cursor' | 'link', query = ''): Promise<Order[]> {
  const records: Order[] = [];
  const q = query ? `&${query}` : '';
  let cursor: string | null | undefined;
  let link: string | undefined = `${api.url}/link/orders?per_page=${PAGE}${q}`;
  for (let n = 1; n < 100; n++) {
    if (kind === 'page' || kind === 'offset') {
      const path =
        kind === 'page'
          ? `/orders?page=${n}&per_page=${PAGE}${q}`
          : `/offset/orders?offset=${records.length}&limit=${PAGE}${q}`;
      const { body } = await getJson(path);
      if (body.data.length === 0) return records;
      if (kind === 'page') expect(body.page).toBe(n);
      records.push(...body.data);
    } else if (kind === 'cursor') {
      const { body } = await getJson(`/cursor/orders?limit=${PAGE}${q}${cursor ? `&cursor=${cursor}` : ''}`);
      records.push(...body.data);
      cursor = body.next_cursor;
      if (cursor === null) return records;
    } else {
      const res = await fetch(link ?? '');
      expect(res.status).toBe(200);
      records.push(...((await res.json()) as Page).data);
      link = nextLink(res);
      if (link === undefined) return records;
    }
  }
  throw new Error(`${kind} pagination did not end`);
}

const ids = (records: Order[]): number[] => records.map((r) => r.id);
const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('generated records', () => {
  it('are the same for the same (seed, index) and differ between indexes and seeds', () => {
    expect(orderAt(41, 1)).toEqual(orderAt(41, 1));
    expect(orderAt(41, 1)).not.toEqual({ ...orderAt(42, 1), id: 42 });
    const a = orderAt(41, 1);
    const b = orderAt(42, 1);
    expect([a.id, b.id]).toEqual([42, 43]);
    expect({ ...a, id: 0, updated_at: '' }).not.toEqual({ ...b, id: 0, updated_at: '' });
    expect({ ...orderAt(41, 2), id: 0 }).not.toEqual({ ...a, id: 0 });
  });

  it('all validate against orders.schema.json and keep their invariants', () => {
    let previous = '';
    let nonAscii = 0;
    let bigTotals = 0;
    for (let i = 0; i < 20_000; i++) {
      const r = orderAt(i, 1);
      if (!validate(r)) throw new Error(`record ${i}: ${ajv.errorsText(validate.errors)}`);
      expect(r.id).toBe(i + 1);
      expect(r.updated_at >= previous, `updated_at of ${i} goes back`).toBe(true);
      expect(r.created_at <= r.updated_at).toBe(true);
      previous = r.updated_at;
      const cents = r.items.reduce((sum, item) => sum + Math.round(item.unit_price * 100) * item.quantity, 0);
      expect(Math.round(r.total * 100)).toBe(cents);
      expect(r.items.map((item) => item.line)).toEqual(range(1, r.items.length));
      expect(r.tags.length).toBeLessThanOrEqual(3);
      expect(new Set(r.tags).size).toBe(r.tags.length);
      if (/[^ -~]/.test(r.customer.name + r.customer.address.city)) nonAscii++;
      if (r.total > 1_000_000) bigTotals++;
    }
    expect(nonAscii).toBeGreaterThan(1000);
    expect(bigTotals).toBeGreaterThan(10);
    expect(orderAt(0, 1).customer.id).toBeGreaterThan(2 ** 31);
    // Several records share one updated_at, so `updated_since` (>=) has boundaries to get right.
    expect(orderAt(0, 1).updated_at).toBe(orderAt(1, 1).updated_at);
    expect(updatedAtMs(0)).toBe(Date.parse('2026-01-01T00:00:00.000Z'));
  });
});

describe('pagination', () => {
  for (const kind of ['page', 'offset', 'cursor', 'link'] as const) {
    it(`${kind}: walking to the end yields every record once, in order, exactly as generated`, async () => {
      const records = await walk(kind);
      expect(ids(records)).toEqual(range(1, RECORDS));
      // The server writes non-ASCII names as raw UTF-8: what arrives must equal the generated record.
      expect(records).toEqual(range(0, RECORDS - 1).map((i) => orderAt(i, 1)));
    });

    it(`${kind}: updated_since keeps records updated at or after it`, async () => {
      // Record 1001 shares its second with record 1000 (2 or 3 records per second): both must come back.
      const since = orderAt(1001, 1).updated_at;
      const first = range(0, RECORDS - 1).find((i) => orderAt(i, 1).updated_at >= since) ?? -1;
      expect(first).toBe(1000);
      const records = await walk(kind, `updated_since=${encodeURIComponent(since)}`);
      expect(ids(records)).toEqual(range(first + 1, RECORDS));
    });
  }

  it('page: body has the page number; past the end is an empty page; /page/orders is an alias', async () => {
    const { body } = await getJson('/orders?page=2&per_page=10');
    expect(body.page).toBe(2);
    expect(ids(body.data)).toEqual(range(11, 20));
    expect((await getJson('/orders?page=999')).body).toEqual({ data: [], page: 999 });
    expect((await getJson('/page/orders?page=2&per_page=10')).body).toEqual(body);
    expect(ids((await getJson('/orders')).body.data)).toEqual(range(1, PAGE)); // default page size
  });

  it('updated_since with an offset applies to the filtered list', async () => {
    const since = '2026-01-01T00:10:00Z'; // 600 s in: record index 1500 is the first at that second
    const { body } = await getJson(`/offset/orders?offset=2&limit=3&updated_since=${since}`);
    expect(ids(body.data)).toEqual([1503, 1504, 1505]);
    const late = await getJson(`/orders?updated_since=2030-01-01T00:00:00%2B02:00`);
    expect(late.body.data).toEqual([]);
  });

  it('link: the next link is absolute, keeps updated_since, and is absent on the last page', async () => {
    const since = '2026-01-01T00:00:01.000Z';
    const res = await get(`/link/orders?per_page=1000&updated_since=${since}`);
    const next = new URL(nextLink(res) ?? '');
    expect(`${next.origin}${next.pathname}`).toBe(`${api.url}/link/orders`);
    expect(Object.fromEntries(next.searchParams)).toEqual({
      page: '2',
      per_page: '1000',
      updated_since: since,
    });
    const last = await get(`/link/orders?per_page=1000&page=3`);
    expect(((await last.json()) as Page).data).toHaveLength(RECORDS - 2000);
    expect(last.headers.get('link')).toBeNull();
  });

  it('cursor: next_cursor is an opaque string, null on the last page', async () => {
    const first = await getJson('/cursor/orders?limit=2000');
    expect(first.body.next_cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    const last = await getJson(`/cursor/orders?limit=2000&cursor=${first.body.next_cursor}`);
    expect(ids(last.body.data)).toEqual(range(2001, RECORDS));
    expect(last.body.next_cursor).toBeNull();
  });

  it('setRecords changes what the API holds', async () => {
    api.setRecords(3);
    expect(ids((await getJson('/orders')).body.data)).toEqual([1, 2, 3]);
  });
});

describe('refusals', () => {
  const cases: [string, string][] = [
    ['/orders?page=0', 'page'],
    ['/orders?page=abc', 'page'],
    ['/orders?per_page=5001', 'per_page'],
    ['/orders?per_page=0', 'per_page'],
    ['/link/orders?per_page=-1', 'per_page'],
    ['/offset/orders?offset=-5', 'offset'],
    ['/offset/orders?limit=99999', 'limit'],
    ['/cursor/orders?cursor=not-a-cursor', 'cursor'],
    [`/cursor/orders?cursor=${Buffer.from('o:12x').toString('base64url')}`, 'cursor'],
    ['/orders?updated_since=yesterday', 'updated_since'],
    ['/orders?updated_since=2026-13-45T99:00:00Z', 'updated_since'],
    ['/orders?updated_since=2026-01-01T00:00:00 02:00', 'updated_since'], // an unencoded "+"
  ];
  for (const [path, parameter] of cases)
    it(`400 naming ${parameter} for ${path}`, async () => {
      const res = await get(path);
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toBe('application/json');
      const body = (await res.json()) as { parameter: string; message: string };
      expect(body.parameter).toBe(parameter);
      expect(body.message).toMatch(new RegExp(`^${parameter} `));
    });

  it('404 JSON for an unknown path, 405 for another method', async () => {
    const res = await get('/customers');
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: 'not_found', message: 'no route for /customers' });
    expect((await get('/orders', { method: 'POST' })).status).toBe(405);
  });

  it('refuses a fault spec with a typo instead of ignoring it', () => {
    expect(() => api.setFaults({ ratelimit: { pages: [1] } } as never)).toThrow(/unknown fault "ratelimit"/);
    expect(() => api.setFaults({ serverErrors: { pages: [0], status: 502 } } as never)).toThrow(
      /serverErrors.pages must be .*serverErrors.status must be 500 or 503/,
    );
  });
});

describe('faults', () => {
  it('rateLimit: 429 with Retry-After in seconds, then the page', async () => {
    api.setFaults({ rateLimit: { pages: [2], retryAfter: 'seconds', seconds: 2 } });
    expect((await get('/orders?page=1')).status).toBe(200);
    const limited = await get('/orders?page=2');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('2');
    expect((await get('/orders?page=2')).status).toBe(200);
  });

  it('rateLimit: 429 with Retry-After as an HTTP-date that many seconds ahead, `times` in a row', async () => {
    api.setFaults({ rateLimit: { pages: [1], retryAfter: 'date', seconds: 3, times: 2 } });
    for (let i = 0; i < 2; i++) {
      const res = await get('/cursor/orders');
      expect(res.status).toBe(429);
      const header = res.headers.get('retry-after') ?? '';
      expect(header).toMatch(/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
      const ahead = Date.parse(header) - Date.now();
      expect(ahead).toBeGreaterThan(2_000);
      expect(ahead).toBeLessThanOrEqual(4_000);
    }
    expect((await get('/cursor/orders')).status).toBe(200);
  });

  for (const status of [500, 503] as const)
    it(`serverErrors: a burst of ${status}s on each listed page, then success`, async () => {
      api.setFaults({ serverErrors: { pages: [1, 3], status, times: 3 } });
      const seen = [];
      for (let i = 0; i < 4; i++) seen.push((await get('/offset/orders?offset=0&limit=100')).status);
      expect(seen).toEqual([status, status, status, 200]);
      expect((await get('/offset/orders?offset=100&limit=100')).status).toBe(200); // page 2
      expect((await get('/offset/orders?offset=250&limit=100')).status).toBe(status); // page 3
      // Counters are per pagination kind: page 1 of /orders has its own burst.
      expect((await get('/orders?page=1')).status).toBe(status);
    });

  it('setFaults starts the counters over', async () => {
    api.setFaults({ serverErrors: { pages: [1], status: 500 } });
    expect((await get('/orders')).status).toBe(500);
    expect((await get('/orders')).status).toBe(200);
    api.setFaults({ serverErrors: { pages: [1], status: 500 } });
    expect((await get('/orders')).status).toBe(500);
  });

  it('slow: waits before the headers, every time, on the listed pages only', async () => {
    api.setFaults({ slow: { pages: [2], delayMs: 300 } });
    for (let i = 0; i < 2; i++) {
      const started = performance.now();
      expect((await get('/orders?page=2')).status).toBe(200);
      expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    }
    const started = performance.now();
    await get('/orders?page=1');
    expect(performance.now() - started).toBeLessThan(250);
  });

  it('stall: headers and part of the body, then silence until the client gives up', async () => {
    api.setFaults({ stall: { pages: [1] } });
    const res = await get('/orders', { signal: AbortSignal.timeout(400) });
    expect(res.status).toBe(200);
    expect(Number(res.headers.get('content-length'))).toBeGreaterThan(1000);
    await expect(res.text()).rejects.toMatchObject({ name: 'TimeoutError' });
    expect((await get('/orders')).status).toBe(200); // times: 1
  });

  it('truncate: full Content-Length announced, half the body, then the socket is destroyed', async () => {
    api.setFaults({ truncate: { pages: [2], times: 2 } });
    for (let i = 0; i < 2; i++) {
      const res = await get('/orders?page=2');
      expect(res.status).toBe(200);
      await expect(res.arrayBuffer()).rejects.toThrow();
    }
    const { body } = await getJson('/orders?page=2');
    expect(body.data).toHaveLength(PAGE);
  });

  it('notJson: 200 and application/json, but an HTML page', async () => {
    api.setFaults({ notJson: { pages: [1] } });
    const res = await get('/orders');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    const text = await res.text();
    expect(text).toMatch(/^<!DOCTYPE html>/);
    expect(() => JSON.parse(text) as unknown).toThrow();
    expect((await getJson('/orders')).body.data).toHaveLength(PAGE);
  });

  it('badRecords: every N-th record broken, cycling through the kinds, on every request', async () => {
    api.setFaults({ badRecords: { every: 7 } });
    for (let attempt = 0; attempt < 2; attempt++) {
      const { body } = await getJson('/orders?per_page=50');
      const invalid = body.data.flatMap((r, i) => (validate(r) ? [] : [i + 1]));
      expect(invalid).toEqual([7, 14, 21, 28, 35, 42, 49]);
      const at = (position: number): Record<string, unknown> =>
        body.data[position - 1] as unknown as Record<string, unknown>;
      expect(at(7)).not.toHaveProperty('status'); // missing_field
      expect(at(14).total).toMatch(/^\d+(\.\d+)? EUR$/); // wrong_type
      expect(at(21).id).toBeNull(); // null_key
      expect(at(28)).not.toHaveProperty('status'); // and round again
      expect(at(8)).toEqual(orderAt(7, 1));
    }
  });

  it('badRecords: applies from the very next page, even one the server read ahead', async () => {
    await getJson('/orders?page=1&per_page=50'); // the server reads page 2 ahead
    api.setFaults({ badRecords: { every: 10, kinds: ['null_key'] } });
    const { body } = await getJson('/orders?page=2&per_page=50');
    expect(body.data.filter((r) => r.id === null)).toHaveLength(5);
  });

  it('badRecords: only the kinds asked for', async () => {
    api.setFaults({ badRecords: { every: 10, kinds: ['null_key'] } });
    const { body } = await getJson('/offset/orders?offset=0&limit=30');
    expect(body.data.map((r) => r.id)).toEqual([
      ...range(1, 9),
      null,
      ...range(11, 19),
      null,
      ...range(21, 29),
      null,
    ]);
  });

  it('repeatCursor: page atPage answers with an earlier cursor, a loop', async () => {
    api.setFaults({ repeatCursor: { atPage: 3 } });
    const p1 = await getJson('/cursor/orders?limit=100');
    const p2 = await getJson(`/cursor/orders?limit=100&cursor=${p1.body.next_cursor}`);
    const p3 = await getJson(`/cursor/orders?limit=100&cursor=${p2.body.next_cursor}`);
    expect(ids(p3.body.data)).toEqual(range(201, 300));
    expect(p3.body.next_cursor).toBe(p1.body.next_cursor); // the cursor of page 2
    const again = await getJson(`/cursor/orders?limit=100&cursor=${p3.body.next_cursor}`);
    expect(again.body).toEqual(p2.body);
  });

  it('repeatPage: every page from atPage on serves page atPage, and never ends', async () => {
    api.setFaults({ repeatPage: { atPage: 2 } });
    const p2 = await getJson('/orders?page=2&per_page=100');
    for (const n of [3, 4, 999])
      expect((await getJson(`/orders?page=${n}&per_page=100`)).body).toEqual(p2.body);
    expect(ids((await getJson('/orders?page=1&per_page=100')).body.data)).toEqual(range(1, 100));
    const link = await get('/link/orders?page=999&per_page=100');
    expect(ids(((await link.json()) as Page).data)).toEqual(range(101, 200));
    expect(nextLink(link)).toContain('page=1000');
  });

  it('unauthorized: 401 for every request, whatever the credentials; /health stays up', async () => {
    api.setFaults({ unauthorized: true });
    for (const path of ['/orders', '/cursor/orders', '/nowhere']) {
      const res = await get(path, { headers: { authorization: 'Bearer anything' } });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    expect((await get('/health')).status).toBe(200);
  });

  it('oversized: the page padded to at least `bytes`, still valid JSON', async () => {
    api.setFaults({ oversized: { pages: [1], bytes: 3_000_000 } });
    const res = await get('/orders');
    expect(Number(res.headers.get('content-length'))).toBeGreaterThanOrEqual(3_000_000);
    const text = await res.text();
    expect(Buffer.byteLength(text)).toBeGreaterThanOrEqual(3_000_000);
    expect((JSON.parse(text) as Page).data).toHaveLength(PAGE);
    expect(Number((await get('/orders?page=2')).headers.get('content-length'))).toBeLessThan(1_000_000);
  });

  it('oversized with chunked: no Content-Length, so only counting shows the size', async () => {
    api.setFaults({ oversized: { pages: [1], bytes: 2_000_000, chunked: true } });
    const res = await request(`${api.url}/orders`);
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect((await res.body.arrayBuffer()).byteLength).toBeGreaterThanOrEqual(2_000_000);
  });

  it('gzipBomb: a small gzip body that inflates to ~100 MiB', async () => {
    api.setFaults({ gzipBomb: { pages: [1] } });
    const res = await request(`${api.url}/orders`); // undici.request does not decompress
    expect(res.headers['content-encoding']).toBe('gzip');
    const gz = Buffer.from(await res.body.arrayBuffer());
    expect(gz.length).toBeLessThan(1 << 20);
    let inflated = 0;
    const gunzip = createGunzip();
    gunzip.on('data', (chunk: Buffer) => (inflated += chunk.length));
    gunzip.end(gz);
    await once(gunzip, 'end');
    expect(inflated).toBeGreaterThanOrEqual(100 * 2 ** 20);
  });
});

describe('the server', () => {
  it('listens on 127.0.0.1 only', async () => {
    expect(api.url).toBe(`http://127.0.0.1:${api.port}`);
    const external = Object.values(networkInterfaces())
      .flat()
      .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    if (external === undefined) return; // no other interface to try on this machine
    const socket = connect(api.port, external);
    const [error] = (await once(socket, 'error').catch((e: unknown) => [e])) as [NodeJS.ErrnoException];
    expect(error.code).toBe('ECONNREFUSED');
  });

  it('counts requests by path and status, but not /health', async () => {
    await get('/health');
    await get('/orders');
    await get('/orders?page=2');
    await get('/cursor/orders?cursor=bad');
    await get('/missing');
    expect(api.stats()).toEqual({
      requests: 4,
      byPath: { '/orders': 2, '/cursor/orders': 1, '/missing': 1 },
      byStatus: { '200': 2, '400': 1, '404': 1 },
    });
    api.resetStats();
    expect(api.stats().requests).toBe(0);
  });

  it('with a token, asks for the bearer token', async () => {
    const secured = await startDemoApi({ records: 10, token: 's3cret' });
    try {
      const status = async (authorization?: string): Promise<number> =>
        (await fetch(`${secured.url}/orders`, { headers: authorization ? { authorization } : {} })).status;
      expect(await status()).toBe(401);
      expect(await status('Bearer wrong')).toBe(401);
      expect(await status('Basic s3cret')).toBe(401);
      expect(await status('Bearer s3cret')).toBe(200);
      expect((await fetch(`${secured.url}/health`)).status).toBe(200);
      expect(secured.stats().byStatus).toEqual({ '200': 1, '401': 3 });
    } finally {
      await secured.close();
    }
  });

  it('closes with a stalled response still open', async () => {
    const other = await startDemoApi({ records: 10, faults: { stall: { pages: [1] } } });
    const res = await fetch(`${other.url}/orders`);
    const reading = res.text();
    await other.close();
    await expect(reading).rejects.toThrow();
  });

  it('runs from the command line and stops on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      [
        'demo/source-api/main.ts',
        '--port',
        '0',
        '--records',
        '5',
        '--faults',
        '{"serverErrors":{"pages":[1],"status":503}}',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    const url = /http:\/\/127\.0\.0\.1:\d+/.exec(line.toString())?.[0];
    expect(url).toBeDefined();
    expect((await fetch(`${url}/orders`)).status).toBe(503);
    expect(((await (await fetch(`${url}/orders`)).json()) as Page).data).toHaveLength(5);
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    expect(await exited).toEqual([0, null]);
  });
});
