import { setTimeout as sleep } from 'node:timers/promises';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { BlockedAddressError, checkUrl, guardedLookup } from '../common/network-guard.ts';
import { HandlerError, safeUrl } from '../common/errors.ts';
import { backoffMs, retryAfterMs } from './retry-after.ts';

export interface HttpClientOptions {
  allowPrivateNetwork: boolean;
  /** Per request, covering connect, headers and the whole body (a stalled body times out too). */
  timeoutMs: number;
  /** A larger body, compressed or not, fails the request. */
  maxResponseBytes: number;
  maxRetries: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** Epoch ms after which no retry is waited for. */
  deadline: number;
  /** Sent with every request (auth, accept). */
  headers: Record<string, string>;
  /** Query parameters that carry secrets, masked in messages. */
  secretParams: readonly string[];
  /** Called once for each retry, before its wait. */
  onRetry?: (retry: PageRetry) => void;
}

/** A request about to be retried: what failed, and how long the client waits before it asks again. */
export interface PageRetry {
  /** The page, as messages name it: `source "demo" page 3`. */
  what: string;
  /** Without credentials. */
  url: string;
  /** The HTTP status that is retried (429, 408, 5xx), or none for a timeout, a broken connection or a bad body. */
  status?: number;
  /** Why, in a few words: `HTTP 503`, `no complete answer within 2000 ms`. */
  error: string;
  waitMs: number;
  /** 1 for the first retry of this request. */
  retry: number;
  maxRetries: number;
}

export interface JsonPage {
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
  /** The URL that answered, after redirects. */
  url: URL;
  bytes: number;
}

const MAX_REDIRECTS = 5;
const TERMINAL_STATUSES = new Set([400, 401, 403, 404, 405, 406, 410, 411, 413, 414, 415, 422, 451]);

class Retryable extends Error {
  readonly retryAfter?: number;
  readonly httpStatus?: number;
  /** The failure's reason once retries run out; by default `http_<status>`, or `network` without a status. */
  readonly reason?: string;
  constructor(message: string, options: { retryAfter?: number; httpStatus?: number; reason?: string } = {}) {
    super(message);
    this.retryAfter = options.retryAfter;
    this.httpStatus = options.httpStatus;
    this.reason = options.reason;
  }
}

function isBlocked(error: unknown): BlockedAddressError | undefined {
  for (let e = error; e instanceof Error; e = e.cause) if (e instanceof BlockedAddressError) return e;
  return undefined;
}

/**
 * GETs JSON pages from a source over a keep-alive pool. Retries 429, 408, 5xx, timeouts, broken connections and
 * bodies that are cut short or not JSON, with backoff that honours Retry-After; fails at once, with the status
 * and the URL, on the 4xx no retry can fix. Every connection goes through the network guard, redirects too.
 */
export class HttpClient {
  private readonly options: HttpClientOptions;
  private readonly agent: Agent;

  constructor(options: HttpClientOptions) {
    this.options = options;
    this.agent = new Agent({
      keepAliveTimeout: 10_000,
      connections: 4,
      connect: { lookup: guardedLookup(options.allowPrivateNetwork) },
    });
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  async getJson(url: URL, what: string): Promise<JsonPage> {
    const { maxRetries, retryBaseMs, retryMaxMs, deadline } = this.options;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.fetchOnce(url, what);
      } catch (error) {
        if (!(error instanceof Retryable)) throw error;
        const safe = safeUrl(url, this.options.secretParams);
        if (attempt >= maxRetries) {
          throw new HandlerError({
            reason: error.reason ?? (error.httpStatus ? `http_${error.httpStatus}` : 'network'),
            message: `${what}: GET ${safe} still failing after ${maxRetries} retries: ${error.message}`,
            retryable: true,
            httpStatus: error.httpStatus,
            url: safe,
          });
        }
        const wait = Math.max(error.retryAfter ?? 0, backoffMs(attempt, retryBaseMs, retryMaxMs));
        if (Date.now() + wait > deadline) {
          throw new HandlerError({
            reason: 'deadline',
            message: `${what}: GET ${safe} failed (${error.message}) and the stage deadline leaves no time to retry`,
            retryable: true,
            httpStatus: error.httpStatus,
            url: safe,
          });
        }
        this.options.onRetry?.({
          what,
          url: safe,
          ...(error.httpStatus === undefined ? {} : { status: error.httpStatus }),
          error: error.message,
          waitMs: wait,
          retry: attempt + 1,
          maxRetries,
        });
        await sleep(wait);
      }
    }
  }

  private async fetchOnce(start: URL, what: string): Promise<JsonPage> {
    const { allowPrivateNetwork, timeoutMs, maxResponseBytes, headers, secretParams } = this.options;
    let url = start;
    for (let hop = 0; ; hop++) {
      const safe = safeUrl(url, secretParams);
      try {
        checkUrl(url, allowPrivateNetwork);
      } catch (error) {
        throw new HandlerError({
          reason: 'blocked_address',
          message: `${what}: ${(error as Error).message}`,
          retryable: false,
          url: safe,
        });
      }
      let response;
      try {
        response = await request(url, {
          method: 'GET',
          headers: {
            accept: 'application/json',
            'accept-encoding': 'gzip, deflate, br',
            'user-agent': 'afluente',
            ...headers,
          },
          dispatcher: this.agent,
          signal: AbortSignal.timeout(timeoutMs),
          headersTimeout: timeoutMs,
          bodyTimeout: timeoutMs,
        });
      } catch (error) {
        throw this.transportError(error, what, safe);
      }
      const { statusCode } = response;
      if (statusCode >= 300 && statusCode < 400 && response.headers.location) {
        await response.body.dump();
        if (hop >= MAX_REDIRECTS) {
          throw new HandlerError({
            reason: 'redirects',
            message: `${what}: GET ${safe} redirected more than ${MAX_REDIRECTS} times`,
            retryable: false,
            url: safe,
          });
        }
        url = new URL(String(response.headers.location), url);
        continue;
      }
      if (statusCode === 429 || statusCode === 408 || statusCode >= 500) {
        await response.body.dump();
        throw new Retryable(`HTTP ${statusCode}`, {
          httpStatus: statusCode,
          retryAfter: retryAfterMs(header(response.headers['retry-after'])),
        });
      }
      if (statusCode < 200 || statusCode >= 300) {
        await response.body.dump();
        throw new HandlerError({
          reason: `http_${statusCode}`,
          message: `${what}: GET ${safe} answered ${statusCode}${TERMINAL_STATUSES.has(statusCode) ? '' : ' (not retried)'}`,
          retryable: false,
          httpStatus: statusCode,
          url: safe,
        });
      }
      let raw: Buffer;
      try {
        raw = await readCapped(response.body, maxResponseBytes, header(response.headers['content-length']));
      } catch (error) {
        if (error instanceof HandlerError) throw error;
        if (error instanceof TooLarge) throw tooLarge(what, safe, maxResponseBytes);
        throw this.transportError(error, what, safe);
      }
      let text: string;
      try {
        text = decode(raw, header(response.headers['content-encoding']), maxResponseBytes).toString('utf8');
      } catch (error) {
        if (error instanceof RangeError) throw tooLarge(what, safe, maxResponseBytes);
        throw new Retryable(`the body could not be decompressed: ${(error as Error).message}`, {
          reason: 'bad_response',
        });
      }
      try {
        return { body: JSON.parse(text) as unknown, headers: response.headers, url, bytes: text.length };
      } catch (error) {
        // A proxy's or gateway's error page comes with a 200 too: retried, but never called a network error.
        const contentType = header(response.headers['content-type']) ?? 'none';
        throw new Retryable(
          `the body is not JSON (content-type ${contentType}; ${(error as Error).message}): ` +
            JSON.stringify(text.slice(0, 80)),
          { reason: 'not_json' },
        );
      }
    }
  }

  private transportError(error: unknown, what: string, safe: string): Error {
    const blocked = isBlocked(error);
    if (blocked)
      return new HandlerError({
        reason: 'blocked_address',
        message: `${what}: ${blocked.message}`,
        retryable: false,
        url: safe,
      });
    const e = error as Error & { code?: string };
    const detail =
      e.name === 'TimeoutError'
        ? `no complete answer within ${this.options.timeoutMs} ms`
        : `${e.code ?? e.name}: ${e.message}`;
    return new Retryable(detail);
  }
}

class TooLarge extends Error {}

function tooLarge(what: string, safe: string, limit: number): HandlerError {
  return new HandlerError({
    reason: 'response_too_large',
    message: `${what}: GET ${safe} returned more than ${limit} bytes (limits.maxResponseBytes); use a smaller page size`,
    retryable: false,
    url: safe,
  });
}

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

async function readCapped(
  body: AsyncIterable<Buffer>,
  limit: number,
  contentLength: string | undefined,
): Promise<Buffer> {
  if (contentLength !== undefined && Number(contentLength) > limit) throw new TooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > limit) throw new TooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

// maxOutputLength turns a decompression bomb into a RangeError instead of an out-of-memory crash.
function decode(raw: Buffer, encoding: string | undefined, limit: number): Buffer {
  switch (encoding?.trim().toLowerCase()) {
    case undefined:
    case '':
    case 'identity':
      return raw;
    case 'gzip':
    case 'x-gzip':
      return gunzipSync(raw, { maxOutputLength: limit });
    case 'deflate':
      return inflateSync(raw, { maxOutputLength: limit });
    case 'br':
      return brotliDecompressSync(raw, { maxOutputLength: limit });
    default:
      throw new Error(`unsupported content-encoding "${encoding}"`);
  }
}
