import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runIngest } from '../../lambdas/ingest/ingest.ts';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import type { SourceConfig } from '../../contract/source-config.ts';
import {
  captureLog,
  demoConfig,
  ingestAll,
  limits,
  PAGINATIONS,
  readManifest,
  readRecords,
  request,
  tempLake,
} from '../support/ingest.ts';

// The ingest Lambda's function, run directly against the demo source API and a file lake.
const RECORDS = 2_345;
let api: DemoApi;
beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS, pageSize: 500 });
});
afterAll(async () => api.close());

const ids = (records: Record<string, unknown>[]): unknown[] => records.map((r) => r.id);
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

async function ingestKind(kind: keyof typeof PAGINATIONS, size = 500) {
  const { path, pagination } = PAGINATIONS[kind](size);
  const lake = await tempLake();
  const config = await demoConfig(`${api.url}${path}`, pagination, { allowPrivateNetwork: true });
  return { lake, config, ...(await ingestAll(request(config, lake), lake)) };
}

describe('ingest pulls every page into the lake', () => {
  it.each(['page', 'offset', 'cursor', 'link'] as const)(
    '%s pagination: every record exactly once, in order',
    async (kind) => {
      api.setFaults({});
      const { lake, result } = await ingestKind(kind);
      expect(result).toMatchObject({ kind: 'done', records: RECORDS });
      const manifest = await readManifest(lake);
      expect(manifest.records).toBe(RECORDS);
      expect(manifest.files.reduce((n, f) => n + f.records, 0)).toBe(RECORDS);
      expect(manifest.files.map((f) => f.key.split('/').pop())).toEqual([
        'part-00000.ndjson.gz',
        'part-00001.ndjson.gz',
        'part-00002.ndjson.gz',
        'part-00003.ndjson.gz',
        'part-00004.ndjson.gz',
        'part-00005.ndjson.gz',
      ]);
      expect(ids(await readRecords(lake, manifest))).toEqual(range(RECORDS));
      for (const file of manifest.files) {
        const bytes = await lake.getBytes(file.key);
        expect(createHash('sha256').update(bytes).digest('hex')).toBe(file.sha256);
        expect(bytes.length).toBe(file.bytes);
      }
      // The lake holds exactly what the manifest lists: parts plus the manifest, no leftovers.
      const keys: string[] = [];
      for await (const o of lake.list('raw/')) keys.push(o.key);
      expect(keys).toEqual(
        [...manifest.files.map((f) => f.key), 'raw/source=demo/dt=2026-01-31/run=7/_manifest.json'].sort(),
      );
    },
  );

  it('tracks the incremental cursor and sends it as updated_since', async () => {
    api.setFaults({});
    const { lake, config, result } = await ingestKind('page');
    const all = await readRecords(lake, await readManifest(lake));
    const latest = all
      .map((r) => String(r.updated_at))
      .sort()
      .at(-1);
    expect(result).toMatchObject({ kind: 'done', nextCursor: latest });

    const since = String(all[1000]?.updated_at);
    const again = await tempLake();
    const res = await ingestAll(request(config, again, { cursor: since }), again);
    const pulled = await readRecords(again, await readManifest(again));
    expect(res.result).toMatchObject({
      kind: 'done',
      records: all.filter((r) => String(r.updated_at) >= since).length,
    });
    expect(pulled.every((r) => String(r.updated_at) >= since)).toBe(true);
  });

  it('produces identical lake contents when a run is retried', async () => {
    api.setFaults({});
    const { lake, config } = await ingestKind('cursor');
    const first = await readManifest(lake);
    const firstBytes = await lake.getBytes('raw/source=demo/dt=2026-01-31/run=7/_manifest.json');
    await ingestAll(request(config, lake), lake);
    const second = await readManifest(lake);
    expect(second).toEqual(first);
    expect(await lake.getBytes('raw/source=demo/dt=2026-01-31/run=7/_manifest.json')).toEqual(firstBytes);
  });

  it('removes parts a longer earlier attempt left behind', async () => {
    api.setFaults({});
    const { lake, config } = await ingestKind('page');
    api.setRecords(900);
    try {
      await ingestAll(request(config, lake), lake);
    } finally {
      api.setRecords(RECORDS);
    }
    const manifest = await readManifest(lake);
    expect(manifest.records).toBe(900);
    const keys: string[] = [];
    for await (const o of lake.list('raw/')) keys.push(o.key);
    expect(keys.filter((k) => k.includes('part-'))).toEqual(manifest.files.map((f) => f.key));
  });

  it('continues across invocations near the time limit with exactly the records of one uninterrupted run', async () => {
    api.setFaults({});
    const { pagination } = PAGINATIONS.cursor(500);
    const lake = await tempLake();
    const config = await demoConfig(`${api.url}/cursor/orders`, pagination, { allowPrivateNetwork: true });
    // A zero time budget: each invocation fetches one page, commits it, and hands over.
    const { result, invocations } = await ingestAll(
      request(config, lake, { limits: limits({ timeLimitMs: 0 }) }),
      lake,
    );
    expect(result).toMatchObject({ kind: 'done', records: RECORDS });
    expect(invocations).toBeGreaterThan(4);
    const manifest = await readManifest(lake);
    expect(ids(await readRecords(lake, manifest))).toEqual(range(RECORDS));
    const leftovers: string[] = [];
    for await (const o of lake.list('raw/')) if (o.key.includes('_segments')) leftovers.push(o.key);
    expect(leftovers).toEqual([]);
  });
});

describe('faults from the source', () => {
  async function withFaults(
    faults: Parameters<DemoApi['setFaults']>[0],
    kind: keyof typeof PAGINATIONS = 'page',
    overrides = {},
    extra: Partial<SourceConfig> = {},
    env: Record<string, string> = {},
  ) {
    api.setFaults(faults);
    api.resetStats();
    const { path, pagination } = PAGINATIONS[kind](500);
    const lake = await tempLake();
    const config = await demoConfig(`${api.url}${path}`, pagination, { allowPrivateNetwork: true, ...extra });
    const log = captureLog();
    const { result } = await ingestAll(request(config, lake, { limits: limits(overrides) }), lake, log, env);
    return { result, lake, stats: api.stats(), log };
  }

  it.each(['seconds', 'date'] as const)(
    'waits out a 429 with Retry-After as %s and then gets every record, counting and logging the retry',
    async (retryAfter) => {
      const started = Date.now();
      const { result, stats, lake, log } = await withFaults({
        rateLimit: { pages: [2], retryAfter, seconds: 1 },
      });
      expect(result).toMatchObject({ kind: 'done', records: RECORDS, retries: 1 });
      expect(stats.byStatus['429']).toBe(1);
      // An HTTP-date has one-second resolution, so it may ask for a little less than a full second.
      expect(Date.now() - started).toBeGreaterThanOrEqual(retryAfter === 'seconds' ? 1000 : 1);
      expect((await readManifest(lake)).retries).toBe(1);
      const url = `${api.url}/orders?page=2&per_page=500`;
      expect(log.lines).toEqual([
        {
          level: 'warn',
          fields: expect.objectContaining({
            source: 'demo',
            runId: 7,
            url,
            status: 429,
            retry: 1,
            maxRetries: 4,
          }),
          message: expect.stringMatching(/^source "demo" page 2: HTTP 429; retry 1 of 4 in \d+ ms$/),
        },
      ]);
      const waited = log.lines[0]?.fields.waitMs as number;
      expect(waited).toBeGreaterThan(retryAfter === 'seconds' ? 999 : 0);
      expect(log.lines[0]?.message).toContain(`in ${waited} ms`);
    },
  );

  it.each([500, 503] as const)('retries a burst of %i responses, counting every retry', async (status) => {
    const { result, stats, lake, log } = await withFaults({
      serverErrors: { pages: [1, 3], status, times: 3 },
    });
    expect(result).toMatchObject({ kind: 'done', records: RECORDS, retries: 6 });
    expect(stats.byStatus[String(status)]).toBe(6);
    expect((await readManifest(lake)).retries).toBe(6);
    expect(log.lines.map((l) => l.fields.status)).toEqual(Array(6).fill(status));
  });

  it('counts retries across invocations, logs them without credentials, and counts them on a failure too', async () => {
    const auth = { kind: 'apiKey', in: 'query', name: 'api_key', valueEnv: 'K' } as const;
    const env = { K: 'very-secret-key' };
    // A zero time budget: one page an invocation, so the count travels in the continuations.
    const split = await withFaults(
      { serverErrors: { pages: [1, 3], status: 503, times: 1 } },
      'page',
      { timeLimitMs: 0 },
      { auth },
      env,
    );
    expect(split.result).toMatchObject({ kind: 'done', records: RECORDS, retries: 2 });
    expect(JSON.stringify(split.log.lines)).not.toContain('very-secret-key');
    expect(split.log.lines.map((l) => l.fields.url)).toEqual([
      `${api.url}/orders?api_key=***&page=1&per_page=500`,
      `${api.url}/orders?api_key=***&page=3&per_page=500`,
    ]);

    const failed = await withFaults({ serverErrors: { pages: [2], status: 503, times: 9 } }, 'page', {
      maxRetries: 2,
    });
    expect(failed.result).toMatchObject({ kind: 'failed', retries: 2, error: { reason: 'http_503' } });
    expect(failed.log.lines).toHaveLength(2);
  });

  it('gives up on a burst longer than its retries, with the status and the URL', async () => {
    const { result } = await withFaults({ serverErrors: { pages: [2], status: 503, times: 9 } }, 'page', {
      maxRetries: 2,
    });
    expect(result).toMatchObject({
      kind: 'failed',
      error: { reason: 'http_503', retryable: true, httpStatus: 503 },
    });
    if (result.kind !== 'failed') throw new Error('unreachable');
    expect(result.error.message).toBe(
      `source "demo" page 2: GET ${api.url}/orders?page=2&per_page=500 still failing after 2 retries: HTTP 503`,
    );
  });

  it('times out a stalled body and retries it', async () => {
    const { result, stats } = await withFaults({ stall: { pages: [2], times: 1 } });
    expect(result).toMatchObject({ kind: 'done', records: RECORDS });
    expect(stats.byPath['/orders']).toBe(7);
  });

  it('fails with a clear message when a page never answers in time', async () => {
    const { result } = await withFaults({ slow: { pages: [1], delayMs: 3000 } }, 'page', { maxRetries: 1 });
    expect(result).toMatchObject({ kind: 'failed', error: { reason: 'network', retryable: true } });
    if (result.kind !== 'failed') throw new Error('unreachable');
    expect(result.error.message).toContain('no complete answer within 2000 ms');
  });

  it('retries a truncated body', async () => {
    const { result, stats } = await withFaults({ truncate: { pages: [3], times: 2 } });
    expect(result).toMatchObject({ kind: 'done', records: RECORDS });
    expect(stats.byPath['/orders']).toBe(8);
  });

  it('retries a page that is not JSON, and names the problem when it stays that way', async () => {
    const healed = await withFaults({ notJson: { pages: [2], times: 1 } });
    expect(healed.result).toMatchObject({ kind: 'done', records: RECORDS });
    const broken = await withFaults({ notJson: { pages: [2], times: 10 } }, 'page', { maxRetries: 1 });
    const url = `${api.url}/orders?page=2&per_page=500`;
    expect(broken.result).toMatchObject({
      kind: 'failed',
      error: { reason: 'not_json', retryable: true, url },
    });
    if (broken.result.kind !== 'failed') throw new Error('unreachable');
    expect(broken.result.error.message).toContain(
      `page 2: GET ${url} still failing after 1 retries: the body is not JSON (content-type application/json;`,
    );
  });

  it('stops a cursor loop instead of looping or storing duplicates', async () => {
    const { result, lake } = await withFaults({ repeatCursor: { atPage: 3 } }, 'cursor');
    expect(result).toMatchObject({ kind: 'failed', error: { reason: 'pagination_loop', retryable: false } });
    if (result.kind !== 'failed') throw new Error('unreachable');
    expect(result.error.message).toMatch(
      /^source "demo" page 4: the cursor ".*" was already followed in this run; the API is looping$/,
    );
    expect(await lake.exists('raw/source=demo/dt=2026-01-31/run=7/_manifest.json')).toBe(false);
  });

  it('stops on a repeated page', async () => {
    const { result } = await withFaults({ repeatPage: { atPage: 2 } }, 'page');
    expect(result).toMatchObject({ kind: 'failed', error: { reason: 'repeated_page', retryable: false } });
  });

  it('fails at once on a 401, with the status and the URL', async () => {
    const { result, stats } = await withFaults({ unauthorized: true });
    expect(result).toEqual({
      kind: 'failed',
      error: {
        reason: 'http_401',
        message: `source "demo" page 1: GET ${api.url}/orders?page=1&per_page=500 answered 401`,
        retryable: false,
        httpStatus: 401,
        url: `${api.url}/orders?page=1&per_page=500`,
      },
      retries: 0,
    });
    expect(stats.requests).toBe(1);
  });

  it('stops at maxPages', async () => {
    api.setFaults({});
    const lake = await tempLake();
    const { pagination } = PAGINATIONS.page(500);
    const config = await demoConfig(
      `${api.url}/orders`,
      { ...pagination, maxPages: 2 },
      { allowPrivateNetwork: true },
    );
    const { result } = await ingestAll(request(config, lake), lake);
    expect(result).toMatchObject({ kind: 'failed', error: { reason: 'too_many_pages', retryable: false } });
  });

  it('refuses an oversized page and a gzip bomb', async () => {
    const big = await withFaults({ oversized: { pages: [1], bytes: 300_000 } }, 'page', {
      maxResponseBytes: 200_000,
    });
    expect(big.result).toMatchObject({
      kind: 'failed',
      error: { reason: 'response_too_large', retryable: false },
    });
    const bomb = await withFaults({ gzipBomb: { pages: [1] } }, 'page', { maxResponseBytes: 1_000_000 });
    expect(bomb.result).toMatchObject({
      kind: 'failed',
      error: { reason: 'response_too_large', retryable: false },
    });
  });
});

describe('auth and the network guard', () => {
  let echo: Server;
  let echoUrl = '';
  const seen: { headers: IncomingHttpHeaders; url: string }[] = [];
  beforeAll(async () => {
    echo = createServer((req, res) => {
      seen.push({ headers: req.headers, url: req.url ?? '' });
      if (req.url?.startsWith('/bad-gzip')) {
        res
          .writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' })
          .end('{"not": "gzip"}');
        return;
      }
      if (req.url?.startsWith('/html')) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<html>Sign in</html>');
        return;
      }
      if (req.url?.startsWith('/redirect')) {
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: [{ id: 1 }] }));
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoUrl = `http://127.0.0.1:${(echo.address() as { port: number }).port}`;
  });
  afterAll(async () => new Promise<void>((resolve) => echo.close(() => resolve())));

  async function once(
    auth: object,
    env: Record<string, string>,
    url = `${echoUrl}/items`,
    allowPrivateNetwork = true,
  ) {
    seen.length = 0;
    const lake = await tempLake();
    const config = await demoConfig(
      url,
      { kind: 'none', maxPages: 10 },
      { allowPrivateNetwork, auth: auth as never },
    );
    return runIngest(request(config, lake), { lake, env });
  }

  it('sends a bearer token, an API key in a header or the query, and basic auth, read from the environment', async () => {
    await once({ kind: 'bearer', tokenEnv: 'T' }, { T: 'tok-1' });
    expect(seen[0]?.headers.authorization).toBe('Bearer tok-1');
    await once({ kind: 'apiKey', in: 'header', name: 'X-Api-Key', valueEnv: 'K' }, { K: 'key-1' });
    expect(seen[0]?.headers['x-api-key']).toBe('key-1');
    await once({ kind: 'apiKey', in: 'query', name: 'api_key', valueEnv: 'K' }, { K: 'key-2' });
    expect(new URL(seen[0]?.url ?? '', echoUrl).searchParams.get('api_key')).toBe('key-2');
    await once({ kind: 'basic', usernameEnv: 'U', passwordEnv: 'P' }, { U: 'ann', P: 'pw' });
    expect(seen[0]?.headers.authorization).toBe(`Basic ${Buffer.from('ann:pw').toString('base64')}`);
  });

  it('names a missing secret variable without a request', async () => {
    const result = await once({ kind: 'bearer', tokenEnv: 'ORDERS_TOKEN' }, {});
    expect(result).toMatchObject({
      kind: 'failed',
      error: {
        reason: 'missing_secret',
        message: 'source "demo": environment variable ORDERS_TOKEN (auth.tokenEnv) is not set',
      },
    });
    expect(seen).toHaveLength(0);
  });

  it('masks an API key in the query of an error URL', async () => {
    api.setFaults({ unauthorized: true });
    const lake = await tempLake();
    const config = await demoConfig(
      `${api.url}/orders`,
      { kind: 'none', maxPages: 1 },
      {
        allowPrivateNetwork: true,
        auth: { kind: 'apiKey', in: 'query', name: 'api_key', valueEnv: 'K' },
      },
    );
    const result = await runIngest(request(config, lake), { lake, env: { K: 'very-secret-key' } });
    expect(JSON.stringify(result)).not.toContain('very-secret-key');
    expect(result).toMatchObject({ kind: 'failed', error: { url: `${api.url}/orders?api_key=***` } });
    api.setFaults({});
  });

  it('names an HTML page as not JSON, with its content type and the URL without its API key', async () => {
    const result = await once(
      { kind: 'apiKey', in: 'query', name: 'api_key', valueEnv: 'K' },
      { K: 'very-secret-key' },
      `${echoUrl}/html`,
    );
    expect(JSON.stringify(result)).not.toContain('very-secret-key');
    const url = `${echoUrl}/html?api_key=***`;
    expect(result).toMatchObject({ kind: 'failed', error: { reason: 'not_json', url } });
    if (result.kind !== 'failed') throw new Error('unreachable');
    expect(result.error.message).toMatch(
      /^source "demo" page 1: GET \S+ still failing after 4 retries: the body is not JSON \(content-type text\/html; charset=utf-8; .*\): "<html>Sign in<\/html>"$/,
    );
    expect(result.error.message).toContain(`GET ${url} `);
  });

  it('names a body that does not decompress a bad response, not a network error', async () => {
    const result = await once({ kind: 'none' }, {}, `${echoUrl}/bad-gzip`);
    expect(result).toMatchObject({ kind: 'failed', error: { reason: 'bad_response', retryable: true } });
    if (result.kind !== 'failed') throw new Error('unreachable');
    expect(result.error.message).toContain('the body could not be decompressed');
  });

  it('refuses loopback unless the source allows private networks', async () => {
    const result = await once({ kind: 'none' }, {}, `${echoUrl}/items`, false);
    expect(result).toMatchObject({ kind: 'failed', error: { reason: 'blocked_address', retryable: false } });
    if (result.kind !== 'failed') throw new Error('unreachable');
    expect(result.error.message).toContain('loopback and private addresses need "allowPrivateNetwork: true"');
    expect(seen).toHaveLength(0);
  });

  it('never connects to a cloud metadata address, not even through a redirect', async () => {
    const direct = await once({ kind: 'none' }, {}, 'http://169.254.169.254/latest/meta-data/');
    expect(direct).toMatchObject({ kind: 'failed', error: { reason: 'blocked_address' } });
    const redirected = await once({ kind: 'none' }, {}, `${echoUrl}/redirect`);
    expect(redirected).toMatchObject({
      kind: 'failed',
      error: { reason: 'blocked_address', retryable: false },
    });
    if (redirected.kind !== 'failed') throw new Error('unreachable');
    expect(redirected.error.message).toContain('169.254.169.254');
  });

  it('refuses a name that resolves to a private address when private networks are not allowed', async () => {
    const result = await once({ kind: 'none' }, {}, `http://localhost:${new URL(echoUrl).port}/items`, false);
    expect(result).toMatchObject({ kind: 'failed', error: { reason: 'blocked_address' } });
    expect(seen).toHaveLength(0);
  });
});
