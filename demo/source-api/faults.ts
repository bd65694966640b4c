// Faults the demo source API can inject, so the ingest client's defences are tested against a real socket.
// Every fault is deterministic: it is tied to a page number (or a record index), never to chance.
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

/** How a path pages: `/orders` and `/page/orders` are `page`, the others are named by their first segment. */
export type PaginationKind = 'page' | 'offset' | 'cursor' | 'link';

/** A fault on some pages (1-based page numbers in the request's pagination kind). */
export interface PagesFault {
  pages: number[];
  /**
   * How many requests for each listed page get the fault before the page is served normally.
   * @default 1
   */
  times?: number;
}

export interface RateLimitFault extends PagesFault {
  /** `seconds` sends `Retry-After: 2`; `date` sends an HTTP-date that many seconds ahead. */
  retryAfter: 'seconds' | 'date';
  /** @default 1 */
  seconds?: number;
}

export interface ServerErrorFault extends PagesFault {
  status: 500 | 503;
}

export type BadRecordKind = 'missing_field' | 'wrong_type' | 'null_key';

/** Faults to inject. Each is optional; several can apply to one page (see {@link FaultState.forPage}). */
export interface FaultSpec {
  /** 429 with a Retry-After header. */
  rateLimit?: RateLimitFault;
  /** 500 or 503, `times` in a row for each page. */
  serverErrors?: ServerErrorFault;
  /** Waits `delayMs` before the headers, on every request for the pages. */
  slow?: { pages: number[]; delayMs: number };
  /** Sends the headers and half the body, then nothing more while the socket stays open. */
  stall?: PagesFault;
  /** Announces the full Content-Length, sends half the body, then destroys the socket. */
  truncate?: PagesFault;
  /** 200, `application/json`, and an HTML error page for a body. */
  notJson?: PagesFault;
  /**
   * Breaks the records with ids `every`, `2·every`, … on every request, cycling through `kinds`:
   * `missing_field` drops `status`, `wrong_type` makes `total` a non-numeric string, `null_key` sets `id` to null.
   */
  badRecords?: { every: number; /** @default all three, in that order */ kinds?: BadRecordKind[] };
  /**
   * Adds `discount`, a number no demo column names, to the records with ids `every`, `2·every`, … on every
   * request: an API that grew a field (schema drift).
   */
  newField?: { every: number };
  /** Cursor kind: page `atPage` answers with the previous page's cursor (page 1: its own), a cursor loop. */
  repeatCursor?: { atPage: number };
  /** Page and link kinds: every page from `atPage` on serves page `atPage`, as an API that ignores `page`. */
  repeatPage?: { atPage: number };
  /** Every request gets 401, whatever its credentials. */
  unauthorized?: boolean;
  /**
   * Pads the page's body with an extra `_padding` field to at least `bytes` bytes, on every request.
   * `chunked: true` leaves out Content-Length, so a client can only notice by counting.
   */
  oversized?: { pages: number[]; bytes: number; /** @default false */ chunked?: boolean };
  /** `Content-Encoding: gzip` with a ~100 KiB body that inflates to ~100 MiB of valid JSON, on every request. */
  gzipBomb?: { pages: number[] };
}

/** A response that replaces the page. */
export type Failure =
  | { kind: 'rateLimit'; retryAfter: string }
  | { kind: 'serverError'; status: 500 | 503 }
  | { kind: 'stall' }
  | { kind: 'truncate' }
  | { kind: 'notJson' };

/** What the faults do to one request. */
export interface PageFaults {
  delayMs: number;
  failure?: Failure;
  padTo?: { bytes: number; chunked: boolean };
  gzipBomb: boolean;
}

export interface FaultState {
  readonly spec: FaultSpec;
  /**
   * The faults for one request of `page` in `kind`, consuming one firing of the counted fault it returns.
   * Counted faults are tried in a fixed order (rateLimit, serverErrors, stall, truncate, notJson) and the
   * first one with firings left wins, so with several on one page the client meets them one after another.
   */
  forPage(kind: PaginationKind, page: number, now?: number): PageFaults;
}

export function createFaultState(spec: FaultSpec): FaultState {
  // Fired counts per (fault, kind, page); a fresh state (setFaults) starts them over.
  const fired = new Map<string, number>();
  const fire = (name: string, fault: PagesFault | undefined, kind: PaginationKind, page: number): boolean => {
    if (!fault?.pages.includes(page)) return false;
    const key = `${name}:${kind}:${page}`;
    const n = fired.get(key) ?? 0;
    if (n >= (fault.times ?? 1)) return false;
    fired.set(key, n + 1);
    return true;
  };

  return {
    spec,
    forPage(kind, page, now = Date.now()) {
      const result: PageFaults = {
        delayMs: spec.slow?.pages.includes(page) ? spec.slow.delayMs : 0,
        gzipBomb: spec.gzipBomb?.pages.includes(page) ?? false,
      };
      if (spec.oversized?.pages.includes(page))
        result.padTo = { bytes: spec.oversized.bytes, chunked: spec.oversized.chunked ?? false };

      if (spec.rateLimit && fire('rateLimit', spec.rateLimit, kind, page)) {
        const seconds = spec.rateLimit.seconds ?? 1;
        // An HTTP-date has whole seconds: round up so the client never waits less than `seconds`.
        const retryAfter =
          spec.rateLimit.retryAfter === 'seconds'
            ? String(seconds)
            : new Date(Math.ceil((now + seconds * 1000) / 1000) * 1000).toUTCString();
        result.failure = { kind: 'rateLimit', retryAfter };
      } else if (spec.serverErrors && fire('serverErrors', spec.serverErrors, kind, page)) {
        result.failure = { kind: 'serverError', status: spec.serverErrors.status };
      } else if (fire('stall', spec.stall, kind, page)) result.failure = { kind: 'stall' };
      else if (fire('truncate', spec.truncate, kind, page)) result.failure = { kind: 'truncate' };
      else if (fire('notJson', spec.notJson, kind, page)) result.failure = { kind: 'notJson' };
      return result;
    },
  };
}

const BAD_KINDS: readonly BadRecordKind[] = ['missing_field', 'wrong_type', 'null_key'];

/** The bad-record kind for the record at `index`, if the spec breaks it. */
export function badRecordKind(spec: FaultSpec, index: number): BadRecordKind | undefined {
  const bad = spec.badRecords;
  if (!bad || (index + 1) % bad.every !== 0) return undefined;
  const kinds = bad.kinds && bad.kinds.length > 0 ? bad.kinds : BAD_KINDS;
  return kinds[((index + 1) / bad.every - 1) % kinds.length];
}

/** Breaks a freshly generated record in place (it is not shared) and returns it. */
export function breakRecord(record: Record<string, unknown>, kind: BadRecordKind): Record<string, unknown> {
  switch (kind) {
    case 'missing_field':
      delete record.status;
      break;
    case 'wrong_type':
      record.total = `${String(record.total)} EUR`;
      break;
    case 'null_key':
      record.id = null;
      break;
  }
  return record;
}

/** The `newField` fault: whether the record at `index` gets the new field. */
export function hasNewField(spec: FaultSpec, index: number): boolean {
  return spec.newField !== undefined && (index + 1) % spec.newField.every === 0;
}

/** Adds the `newField` fault's field to a freshly generated record: `discount` 0.01 to 0.99, from its id. */
export function addNewField(record: Record<string, unknown>, index: number): Record<string, unknown> {
  record.discount = (((index + 1) % 99) + 1) / 100;
  return record;
}

/** What a misconfigured proxy in front of the API would send with a 200. */
export const NOT_JSON_BODY =
  '<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n' +
  '<body><h1>Bad Gateway</h1><p>The upstream server sent an invalid response.</p></body></html>\n';

/** Pads a serialized JSON object with a `_padding` field until it is at least `bytes` bytes long. */
export function padJson(json: Buffer, bytes: number): Buffer {
  const head = json.subarray(0, json.length - 1); // drop the closing brace
  const open = Buffer.from(',"_padding":"');
  const close = Buffer.from('"}');
  const fill = Math.max(0, bytes - head.length - open.length - close.length);
  return Buffer.concat([head, open, Buffer.alloc(fill, 0x78), close]);
}

const BOMB_MIB = 100;
let bomb: Promise<Buffer> | undefined;

/** A gzip body that inflates to ~100 MiB of valid JSON; built once, on first use, in bounded memory. */
export function gzipBomb(): Promise<Buffer> {
  bomb ??= (async () => {
    const chunks: Buffer[] = [];
    const mib = Buffer.alloc(1 << 20, 0x78);
    async function* plain(): AsyncGenerator<Buffer> {
      yield Buffer.from('{"data":[],"_padding":"');
      for (let i = 0; i < BOMB_MIB; i++) yield mib;
      yield Buffer.from('"}');
    }
    await pipeline(
      Readable.from(plain()),
      createGzip({ level: 9 }),
      async (source: AsyncIterable<Buffer>) => {
        for await (const chunk of source) chunks.push(chunk);
      },
    );
    return Buffer.concat(chunks);
  })();
  return bomb;
}

// ---- validation: the CLI takes a spec as JSON and setFaults may be handed a typo, so check the shape.

type Check = (v: unknown) => boolean;
const posInt: Check = (v) => Number.isSafeInteger(v) && (v as number) >= 1;
const nonNegInt: Check = (v) => Number.isSafeInteger(v) && (v as number) >= 0;
const pageList: Check = (v) => Array.isArray(v) && v.every(posInt);
const oneOf =
  (...values: unknown[]): Check =>
  (v) =>
    values.includes(v);
const kindList: Check = (v) => Array.isArray(v) && v.every(oneOf(...BAD_KINDS));
const bool: Check = (v) => typeof v === 'boolean';

// field → [check, required, what it must be]
type Shape = Record<string, [Check, boolean, string]>;
const PAGES: [Check, boolean, string] = [pageList, true, 'an array of page numbers (integers ≥ 1)'];
const TIMES: [Check, boolean, string] = [posInt, false, 'an integer ≥ 1'];
const SHAPES: Record<Exclude<keyof FaultSpec, 'unauthorized'>, Shape> = {
  rateLimit: {
    pages: PAGES,
    times: TIMES,
    retryAfter: [oneOf('seconds', 'date'), true, '"seconds" or "date"'],
    seconds: [nonNegInt, false, 'an integer ≥ 0'],
  },
  serverErrors: { pages: PAGES, times: TIMES, status: [oneOf(500, 503), true, '500 or 503'] },
  slow: { pages: PAGES, delayMs: [nonNegInt, true, 'an integer ≥ 0'] },
  stall: { pages: PAGES, times: TIMES },
  truncate: { pages: PAGES, times: TIMES },
  notJson: { pages: PAGES, times: TIMES },
  badRecords: {
    every: [posInt, true, 'an integer ≥ 1'],
    kinds: [kindList, false, `an array of ${BAD_KINDS.join(', ')}`],
  },
  newField: { every: [posInt, true, 'an integer ≥ 1'] },
  repeatCursor: { atPage: [posInt, true, 'an integer ≥ 1'] },
  repeatPage: { atPage: [posInt, true, 'an integer ≥ 1'] },
  oversized: { pages: PAGES, bytes: [posInt, true, 'an integer ≥ 1'], chunked: [bool, false, 'a boolean'] },
  gzipBomb: { pages: PAGES },
};

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks a fault spec's shape; throws one error listing every problem. */
export function validateFaultSpec(value: unknown): FaultSpec {
  if (!isObject(value)) throw new Error('a fault spec must be a JSON object');
  const problems: string[] = [];
  for (const [name, fault] of Object.entries(value)) {
    if (name === 'unauthorized') {
      if (!bool(fault)) problems.push('unauthorized must be a boolean');
      continue;
    }
    const shape = (SHAPES as Record<string, Shape | undefined>)[name];
    if (!shape) {
      problems.push(`unknown fault "${name}" (known: unauthorized, ${Object.keys(SHAPES).join(', ')})`);
      continue;
    }
    if (!isObject(fault)) {
      problems.push(`${name} must be an object`);
      continue;
    }
    for (const field of Object.keys(fault))
      if (!(field in shape)) problems.push(`${name}.${field} is not a field of ${name}`);
    for (const [field, [check, required, what]] of Object.entries(shape)) {
      const v = fault[field];
      if (v === undefined ? required : !check(v)) problems.push(`${name}.${field} must be ${what}`);
    }
  }
  if (problems.length > 0) throw new Error(`invalid fault spec: ${problems.join('; ')}`);
  return value;
}
