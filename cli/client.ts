import type { Backfill, Run, RunDetail, RunPage, SourceSchema } from './types.ts';

/** Where the CLI finds the service when neither `--url` nor `AFLUENTE_URL` says otherwise. */
export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** The service answered, with an error status. `message` is the server's own (`{ message }` of its JSON body). */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly method: string;
  readonly url: string;
  readonly status: number;
  readonly statusText: string;
  constructor(method: string, url: string, status: number, statusText: string, message: string) {
    super(message);
    this.method = method;
    this.url = url;
    this.status = status;
    this.statusText = statusText;
  }
}

/** The service could not be reached at all (refused, DNS, timeout, TLS). */
export class ConnectionError extends Error {
  override name = 'ConnectionError';
  readonly url: string;
  constructor(url: string, message: string) {
    super(message);
    this.url = url;
  }
}

export interface ClientOptions {
  /** The service's base URL, such as `http://127.0.0.1:8080` or `https://afluente.internal/api`. */
  baseUrl: string;
  /** The bearer token; without one, requests go out without `Authorization` and the service answers 401. */
  token?: string;
  /**
   * How long one request may take.
   * @default 30000
   */
  timeoutMs?: number;
}

export interface CreateRunParams {
  from?: string;
  to?: string;
  cursor?: string;
}

/** The service's HTTP API over the global fetch, one method per endpoint the CLI uses. */
export class ApiClient {
  readonly baseUrl: string;
  readonly hasToken: boolean;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;

  constructor(options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.#token = options.token;
    this.hasToken = !!options.token;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  /** The absolute URL of an API path (a run's `links.self`, a `location` header). */
  url(path: string): string {
    return `${this.baseUrl}${path.startsWith('/') ? '' : '/'}${path}`;
  }

  createRun(
    source: string,
    params: CreateRunParams,
    options: { idempotencyKey?: string; engine?: string } = {},
  ): Promise<Run> {
    const hasParams = Object.keys(params).length > 0;
    return this.#send<Run>('POST', '/runs', {
      body: {
        source,
        ...(hasParams ? { params } : {}),
        ...(options.engine ? { engine: options.engine } : {}),
      },
      headers: options.idempotencyKey ? { 'idempotency-key': options.idempotencyKey } : {},
    });
  }

  listRuns(query: { source?: string; status?: string; limit?: number; cursor?: string }): Promise<RunPage> {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query))
      if (value !== undefined && value !== '') search.set(key, String(value));
    const qs = search.toString();
    return this.#send<RunPage>('GET', `/runs${qs ? `?${qs}` : ''}`);
  }

  /** `signal` ends a request early (Ctrl-C while waiting). */
  getRun(id: number, signal?: AbortSignal): Promise<RunDetail> {
    return this.#send<RunDetail>('GET', `/runs/${id}`, { signal });
  }

  cancelRun(id: number, reason?: string): Promise<Run> {
    return this.#send<Run>('POST', `/runs/${id}/cancel`, reason === undefined ? {} : { body: { reason } });
  }

  retryRun(id: number, engine?: string, options: { acceptKeyChange?: boolean } = {}): Promise<Run> {
    const body = {
      ...(engine === undefined ? {} : { engine }),
      ...(options.acceptKeyChange ? { acceptKeyChange: true } : {}),
    };
    return this.#send<Run>('POST', `/runs/${id}/retry`, Object.keys(body).length === 0 ? {} : { body });
  }

  /** A source's schema versions and the diff between two (by default the latest loaded → the current config). */
  getSourceSchema(source: string, query: { from?: number; to?: number } = {}): Promise<SourceSchema> {
    const search = new URLSearchParams();
    if (query.from !== undefined) search.set('from', String(query.from));
    if (query.to !== undefined) search.set('to', String(query.to));
    const qs = search.toString();
    return this.#send<SourceSchema>(
      'GET',
      `/sources/${encodeURIComponent(source)}/schema${qs ? `?${qs}` : ''}`,
    );
  }

  createBackfill(source: string, window: { from: string; to: string; step: string }): Promise<Backfill> {
    return this.#send<Backfill>('POST', `/sources/${encodeURIComponent(source)}/backfill`, { body: window });
  }

  getBackfill(id: string, signal?: AbortSignal): Promise<Backfill> {
    return this.#send<Backfill>('GET', `/backfills/${encodeURIComponent(id)}`, { signal });
  }

  cancelBackfill(id: string): Promise<Backfill> {
    return this.#send<Backfill>('POST', `/backfills/${encodeURIComponent(id)}/cancel`);
  }

  async #send<T>(
    method: string,
    path: string,
    options: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal } = {},
  ): Promise<T> {
    const url = this.url(path);
    const headers: Record<string, string> = { accept: 'application/json', ...options.headers };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    // No body, no Content-Type: the service refuses an empty JSON body.
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: options.signal
          ? AbortSignal.any([options.signal, AbortSignal.timeout(this.#timeoutMs)])
          : AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw new ConnectionError(url, describeFetchFailure(error, this.#timeoutMs));
    }
    const text = await res.text().catch(() => '');
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!res.ok) {
      const message =
        typeof (body as { message?: unknown } | undefined)?.message === 'string'
          ? (body as { message: string }).message
          : text.trim().slice(0, 200) || '(no message)';
      throw new ApiError(method, url, res.status, res.statusText, message);
    }
    if (body === undefined)
      throw new ApiError(method, url, res.status, res.statusText, 'the answer was not JSON');
    return body as T;
  }
}

/** undici's `fetch failed` hides the reason in `cause`: name it (ECONNREFUSED, ENOTFOUND, a timeout). */
function describeFetchFailure(error: unknown, timeoutMs: number): string {
  if (error instanceof DOMException && error.name === 'TimeoutError')
    return `no answer within ${timeoutMs} ms`;
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (cause && typeof cause.message === 'string') return cause.message;
  if (cause && typeof cause.code === 'string') return cause.code;
  return error instanceof Error ? error.message : String(error);
}
