// The demo source API: generated orders behind four pagination styles, with injectable faults. Plain
// node:http because the faults need control of the socket (half bodies, stalls, raw gzip) that a framework hides.
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { isIPv6, type AddressInfo } from 'node:net';
import {
  addNewField,
  badRecordKind,
  breakRecord,
  hasNewField,
  createFaultState,
  gzipBomb,
  NOT_JSON_BODY,
  padJson,
  validateFaultSpec,
  type FaultSpec,
  type FaultState,
  type PaginationKind,
} from './faults.ts';
import { DEFAULT_BASE_TIME, firstIndexSince, wireOrderAt } from './records.ts';

export interface DemoApiOptions {
  /** The address to listen on; `0.0.0.0` serves other hosts too (a container's network). @default '127.0.0.1' */
  host?: string;
  /** Port on `host`; 0 picks a free one. @default 0 */
  port?: number;
  /** How many orders the API holds (ids 1..records). @default 10_000 */
  records?: number;
  /** Page size when the request names none (`per_page` / `limit`). @default 1000 */
  pageSize?: number;
  /** Largest `per_page` / `limit` accepted; above it the request gets 400. @default 5000 */
  maxPageSize?: number;
  /** Seed of the generated records. @default 1 */
  seed?: number;
  /** Faults to inject; see faults.ts. @default {} */
  faults?: FaultSpec;
  /** When set, every request except /health needs `Authorization: Bearer <token>`, else 401. */
  token?: string;
  /** ISO date-time of the first record's `updated_at`. @default '2026-01-01T00:00:00.000Z' */
  baseTime?: string;
}

export interface DemoApiStats {
  /** Requests received, /health excluded. */
  requests: number;
  /** Requests per URL pathname. */
  byPath: Record<string, number>;
  /** Responses per status code, counted when the headers are sent. */
  byStatus: Record<string, number>;
}

export interface DemoApi {
  /** `http://<host>:<port>`, no trailing slash; for a wildcard host (0.0.0.0, ::) its loopback address. */
  url: string;
  port: number;
  /** Stops listening and drops every connection, stalled ones included. */
  close(): Promise<void>;
  stats(): DemoApiStats;
  resetStats(): void;
  /** Replaces the faults and starts their counters over. */
  setFaults(faults: FaultSpec): void;
  /** Changes how many records the API holds, e.g. to make new records "arrive" between two runs. */
  setRecords(records: number): void;
}

const ROUTES: Record<string, PaginationKind | undefined> = {
  '/orders': 'page',
  '/page/orders': 'page',
  '/offset/orders': 'offset',
  '/cursor/orders': 'cursor',
  '/link/orders': 'link',
};
const JSON_TYPE = 'application/json';
const MAX_POSITION = Number.MAX_SAFE_INTEGER;
// RFC 3339 date-time; Date.parse alone would also take "2026" or "Jan 1 2026".
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

class BadRequest extends Error {
  readonly parameter: string;
  constructor(parameter: string, message: string) {
    super(`${parameter} ${message}`);
    this.parameter = parameter;
  }
}

function intParam(q: URLSearchParams, name: string, min: number, max: number, fallback: number): number {
  const raw = q.get(name);
  if (raw === null) return fallback;
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!(n >= min && n <= max)) {
    const range = max === MAX_POSITION ? `≥ ${min}` : `from ${min} to ${max}`;
    throw new BadRequest(name, `must be an integer ${range} (got "${raw}")`);
  }
  return n;
}

/** `updated_since` (inclusive) or `updated_before` (exclusive), in epoch ms. */
function instantParam(q: URLSearchParams, name: 'updated_since' | 'updated_before'): number | undefined {
  const raw = q.get(name);
  if (raw === null) return undefined;
  const ms = DATE_TIME.test(raw) ? Date.parse(raw) : NaN;
  if (Number.isNaN(ms))
    throw new BadRequest(name, `must be an ISO 8601 date-time such as 2026-01-01T00:00:00Z (got "${raw}")`);
  return ms;
}

// Cursors are opaque to clients but only encode a position in the filtered list.
function encodeCursor(position: number): string {
  return Buffer.from(`o:${position}`).toString('base64url');
}

function cursorParam(q: URLSearchParams): number {
  const raw = q.get('cursor');
  if (raw === null) return 0;
  const match = /^o:(\d{1,16})$/.exec(Buffer.from(raw, 'base64url').toString('latin1'));
  const position = match ? Number(match[1]) : NaN;
  if (!(position <= MAX_POSITION) || encodeCursor(position) !== raw)
    throw new BadRequest('cursor', `is not a cursor this API issued (got "${raw}")`);
  return position;
}

function emptyStats(): DemoApiStats {
  return { requests: 0, byPath: {}, byStatus: {} };
}

export async function startDemoApi(options: DemoApiOptions = {}): Promise<DemoApi> {
  const host = options.host ?? '127.0.0.1';
  const seed = options.seed ?? 1;
  const pageSize = options.pageSize ?? 1000;
  const maxPageSize = options.maxPageSize ?? 5000;
  const baseMs = Date.parse(options.baseTime ?? DEFAULT_BASE_TIME);
  const token = options.token;
  let records = options.records ?? 10_000;
  if (!Number.isSafeInteger(records) || records < 0) throw new Error('records must be an integer ≥ 0');
  if (!(Number.isSafeInteger(maxPageSize) && maxPageSize >= 1)) throw new Error('maxPageSize must be ≥ 1');
  if (!(Number.isSafeInteger(pageSize) && pageSize >= 1 && pageSize <= maxPageSize))
    throw new Error(`pageSize must be an integer from 1 to maxPageSize (${maxPageSize})`);
  if (Number.isNaN(baseMs)) throw new Error(`baseTime is not an ISO date-time: ${options.baseTime}`);
  let faults: FaultState = createFaultState(validateFaultSpec(options.faults ?? {}));
  let stats = emptyStats();
  let closed = false;
  // Wake-ups of `slow` delays, so close() need not wait for them.
  const sleepers = new Set<() => void>();
  // Keyed by the fault state too: badRecords changes the records, and setFaults makes a new state.
  let ahead: { from: number; to: number; faults: FaultState; json: string } | undefined;
  let aheadTimer: NodeJS.Immediate | undefined;

  function writeHead(res: ServerResponse, status: number, headers: OutgoingHttpHeaders): void {
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    res.writeHead(status, headers);
  }

  function sendJson(
    res: ServerResponse,
    status: number,
    body: unknown,
    headers: OutgoingHttpHeaders = {},
  ): void {
    const bytes = Buffer.from(JSON.stringify(body));
    writeHead(res, status, { 'content-type': JSON_TYPE, 'content-length': bytes.length, ...headers });
    res.end(bytes);
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      sleepers.add(wake);
    });
  }

  /** The JSON array of records [from, to), in wire form (see toWire in records.ts). */
  function recordsJson(from: number, to: number): string {
    if (ahead?.from === from && ahead.to === to && ahead.faults === faults) return ahead.json;
    const spec = faults.spec;
    const data: unknown[] = [];
    for (let i = from; i < to; i++) {
      const order = wireOrderAt(i, seed, baseMs);
      const bad = badRecordKind(spec, i);
      const record = bad ? breakRecord(order as unknown as Record<string, unknown>, bad) : order;
      data.push(hasNewField(spec, i) ? addNewField(record as Record<string, unknown>, i) : record);
    }
    return JSON.stringify(data);
  }

  // One page of read-ahead. Clients walk pages in order, so the next page is serialized while the client is
  // busy with this one, and a benchmark's client in another process measures itself rather than this server.
  function readAhead(from: number, to: number): void {
    const next = { from: to, to: Math.min(records, to + (to - from)) };
    if (closed || next.to <= next.from) return;
    if (aheadTimer) clearImmediate(aheadTimer);
    aheadTimer = setImmediate(() => {
      aheadTimer = undefined;
      ahead = { ...next, faults, json: recordsJson(next.from, next.to) };
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse, port: number): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname;
    if (path === '/health') {
      const bytes = Buffer.from('{"ok":true}');
      res.writeHead(200, { 'content-type': JSON_TYPE, 'content-length': bytes.length }).end(bytes);
      return;
    }
    stats.requests++;
    stats.byPath[path] = (stats.byPath[path] ?? 0) + 1;

    const unauthorized =
      faults.spec.unauthorized === true || (token !== undefined && !bearerMatches(req, token));
    if (unauthorized)
      return sendJson(
        res,
        401,
        { error: 'unauthorized', message: 'missing or invalid bearer token' },
        { 'www-authenticate': 'Bearer realm="demo"' },
      );
    const kind = ROUTES[path];
    if (!kind) return sendJson(res, 404, { error: 'not_found', message: `no route for ${path}` });
    if (req.method !== 'GET')
      return sendJson(
        res,
        405,
        { error: 'method_not_allowed', message: `${path} only answers GET` },
        { allow: 'GET' },
      );

    const q = url.searchParams;
    const spec = faults.spec;
    let page: number; // the page number faults are keyed by: what the client asked for
    let offset: number; // position of the first record served, within the window-filtered list
    let size: number;
    let start: number; // the window [start, end) of record indexes that updated_since/updated_before leave
    let end: number;
    try {
      const since = instantParam(q, 'updated_since');
      const before = instantParam(q, 'updated_before');
      start = since === undefined ? 0 : firstIndexSince(since, records, baseMs);
      // The records before `updated_before` are a prefix in index order, as those since `updated_since` are a suffix.
      end = before === undefined ? records : Math.max(start, firstIndexSince(before, records, baseMs));
      if (kind === 'page' || kind === 'link') {
        page = intParam(q, 'page', 1, MAX_POSITION, 1);
        size = intParam(q, 'per_page', 1, maxPageSize, pageSize);
        const served = spec.repeatPage && page >= spec.repeatPage.atPage ? spec.repeatPage.atPage : page;
        offset = (served - 1) * size;
      } else {
        offset = kind === 'cursor' ? cursorParam(q) : intParam(q, 'offset', 0, MAX_POSITION, 0);
        size = intParam(q, 'limit', 1, maxPageSize, pageSize);
        page = Math.floor(offset / size) + 1;
      }
    } catch (error) {
      if (!(error instanceof BadRequest)) throw error;
      return sendJson(res, 400, { error: 'bad_request', parameter: error.parameter, message: error.message });
    }

    const pageFaults = faults.forPage(kind, page);
    if (pageFaults.delayMs > 0) {
      await sleep(pageFaults.delayMs);
      if (closed || req.socket.destroyed) return;
    }
    const failure = pageFaults.failure;
    if (failure?.kind === 'rateLimit')
      return sendJson(
        res,
        429,
        { error: 'rate_limited', message: 'too many requests' },
        { 'retry-after': failure.retryAfter },
      );
    if (failure?.kind === 'serverError')
      return sendJson(res, failure.status, { error: 'server_error', message: `injected ${failure.status}` });
    if (failure?.kind === 'notJson') {
      writeHead(res, 200, { 'content-type': JSON_TYPE, 'content-length': Buffer.byteLength(NOT_JSON_BODY) });
      res.end(NOT_JSON_BODY);
      return;
    }
    if (pageFaults.gzipBomb) {
      const gz = await gzipBomb();
      writeHead(res, 200, {
        'content-type': JSON_TYPE,
        'content-encoding': 'gzip',
        'content-length': gz.length,
      });
      res.end(gz);
      return;
    }

    const from = Math.min(end, start + offset);
    const to = Math.min(end, from + size);
    const headers: OutgoingHttpHeaders = { 'content-type': JSON_TYPE };
    let rest: Record<string, unknown> = {};
    if (kind === 'page') rest = { page: offset / size + 1 };
    else if (kind === 'offset') rest = { offset, limit: size };
    else if (kind === 'cursor') {
      let next: string | null = to < end ? encodeCursor(offset + size) : null;
      if (spec.repeatCursor?.atPage === page) next = encodeCursor(Math.max(0, offset - size));
      rest = { next_cursor: next };
    } else if (to < end || (spec.repeatPage && page >= spec.repeatPage.atPage)) {
      // An API that ignores `page` keeps offering a next page; otherwise the last page has no next link.
      headers.link = `<${nextLink(req, url, port, page + 1, size)}>; rel="next"`;
    }
    const restJson = JSON.stringify(rest);
    const json = `{"data":${recordsJson(from, to)}${restJson === '{}' ? '}' : `,${restJson.slice(1)}`}`;
    // After the body is handed to the OS: reading ahead sooner would hold back the rest of this response.
    res.once('finish', () => readAhead(from, to));

    // Wire records: latin1 bytes of this JSON are its UTF-8 encoding (see toWire in records.ts).
    let bytes: Buffer = Buffer.from(json, 'latin1');
    if (pageFaults.padTo) bytes = padJson(bytes, pageFaults.padTo.bytes);
    if (pageFaults.padTo?.chunked) {
      // write() before end() with no Content-Length makes node send the body chunked.
      writeHead(res, 200, headers);
      res.write(bytes);
      res.end();
      return;
    }
    headers['content-length'] = bytes.length;
    writeHead(res, 200, headers);
    const half = bytes.subarray(0, Math.floor(bytes.length / 2));
    if (failure?.kind === 'stall')
      res.write(half); // and never more: close() drops the socket
    else if (failure?.kind === 'truncate') res.write(half, () => res.destroy());
    else res.end(bytes);
  }

  const server = createServer((req, res) => {
    handle(req, res, port).catch((error: unknown) => {
      if (res.headersSent) return void res.destroy();
      sendJson(res, 500, {
        error: 'internal',
        message: error instanceof Error ? error.message : String(error),
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://${urlHost(host)}:${port}`,
    port,
    async close() {
      if (closed) return;
      closed = true;
      if (aheadTimer) clearImmediate(aheadTimer);
      ahead = undefined;
      const done = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const wake of [...sleepers]) wake();
      await done;
    },
    stats: () => structuredClone(stats),
    resetStats() {
      stats = emptyStats();
    },
    setFaults(spec) {
      faults = createFaultState(validateFaultSpec(spec));
    },
    setRecords(n) {
      if (!Number.isSafeInteger(n) || n < 0) throw new Error('records must be an integer ≥ 0');
      records = n;
    },
  };
}

/** How a client on this machine reaches `host`: a wildcard address through loopback, IPv6 in brackets. */
function urlHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return isIPv6(host) ? `[${host}]` : host;
}

function bearerMatches(req: IncomingMessage, token: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  return match?.[1] === token;
}

/** The absolute URL of the next page; other query parameters (updated_since) carry over. */
function nextLink(req: IncomingMessage, url: URL, port: number, page: number, size: number): string {
  // Behind a loopback proxy the client reached us through its Host, so the link keeps that host.
  const host = /^[\w.-]+(:\d+)?$|^\[[\da-f:.]+\](:\d+)?$/i.test(req.headers.host ?? '')
    ? req.headers.host
    : `127.0.0.1:${port}`;
  const next = new URL(`http://${host}${url.pathname}${url.search}`);
  next.searchParams.set('page', String(page));
  next.searchParams.set('per_page', String(size));
  return next.href;
}
