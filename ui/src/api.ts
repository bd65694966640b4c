import { readToken } from './session.ts';
import type {
  Backfill,
  Engine,
  Page,
  RejectsPage,
  ReplayStage,
  Run,
  RunDetail,
  Source,
  SourceSchema,
  Status,
} from './types.ts';

/** An answer other than 2xx, with the API's own message (`{statusCode, error, message, requestId}`). */
export class ApiError extends Error {
  readonly status: number;
  readonly requestId: string | undefined;
  constructor(status: number, message: string, requestId?: string) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.requestId = requestId;
  }
}

type Listener = (message: string) => void;
let onUnauthorized: Listener = () => {};
let onNotice: Listener = () => {};

/** Who hears a 401 (the app: back to sign-in with the server's message). */
export function setUnauthorizedHandler(listener: Listener): void {
  onUnauthorized = listener;
}

/** Who shows a 429's or a 503's message while a read waits to retry. */
export function setNoticeHandler(listener: Listener): void {
  onNotice = listener;
}

const RETRIES = 3;
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = window.setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      window.clearTimeout(timer);
      reject(signal.reason as Error);
    });
  });

interface RequestOptions {
  method?: 'GET' | 'POST';
  body?: unknown;
  query?: Record<string, string | number | undefined>;
  signal?: AbortSignal;
  /** A token to use instead of the session's: sign-in checks one before keeping it. */
  token?: string;
}

/**
 * One call to the API with the session's bearer token. A read that gets 429 or 503 waits (the server's
 * Retry-After, or 1, 2, 4 s) and tries again a few times, showing the server's message meanwhile; a write is
 * never repeated behind the user's back.
 */
export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const method = options.method ?? 'GET';
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(options.query ?? {}))
    if (value !== undefined && value !== '') query.set(key, String(value));
  const url = query.size > 0 ? `${path}?${query.toString()}` : path;
  const token = options.token ?? readToken() ?? '';
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${token}`,
        accept: 'application/json',
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
      cache: 'no-store',
    });
    if (response.ok) return (await response.json()) as T;
    const error = await errorOf(response);
    if (error.status === 401 && options.token === undefined) onUnauthorized(error.message);
    if ((error.status === 429 || error.status === 503) && method === 'GET' && attempt < RETRIES) {
      const after = Number(response.headers.get('retry-after'));
      const wait = Number.isFinite(after) && after > 0 ? Math.min(after, 30) * 1000 : 1000 * 2 ** attempt;
      onNotice(`${error.message} (trying again in ${Math.round(wait / 1000)} s)`);
      await sleep(wait, options.signal);
      continue;
    }
    throw error;
  }
}

async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { message?: unknown; requestId?: unknown };
    if (typeof body.message === 'string')
      return new ApiError(
        response.status,
        body.message,
        typeof body.requestId === 'string' ? body.requestId : undefined,
      );
  } catch {
    // Not the API's JSON (a proxy's page, say): the status line says what there is to say.
  }
  return new ApiError(response.status, `${response.status} ${response.statusText || 'error'}`.trim());
}

export interface RunFilter {
  source?: string;
  status?: Status;
  cursor?: string;
  limit?: number;
}

export const api = {
  runs: (filter: RunFilter, signal?: AbortSignal) =>
    request<Page<Run>>('/runs', { query: { limit: 20, ...filter }, signal }),
  run: (id: number, signal?: AbortSignal) => request<RunDetail>(`/runs/${id}`, { signal }),
  rejects: (id: number, cursor: string | undefined, signal?: AbortSignal) =>
    request<RejectsPage>(`/runs/${id}/rejects`, { query: { limit: 50, cursor }, signal }),
  createRun: (source: string) => request<Run>('/runs', { method: 'POST', body: { source } }),
  replay: (source: string, run: number, stage: ReplayStage, engine?: Engine) =>
    request<Run>('/runs', {
      method: 'POST',
      body: { source, from: { run, stage }, ...(engine ? { engine } : {}) },
    }),
  cancel: (id: number, reason?: string) =>
    request<Run>(`/runs/${id}/cancel`, { method: 'POST', body: reason ? { reason } : {} }),
  retry: (id: number, options: { engine?: Engine; acceptKeyChange?: boolean }) =>
    request<Run>(`/runs/${id}/retry`, { method: 'POST', body: options }),
  sources: (signal?: AbortSignal, token?: string) =>
    request<{ items: Source[] }>('/sources', { signal, token }),
  source: (name: string, signal?: AbortSignal) =>
    request<Source>(`/sources/${encodeURIComponent(name)}`, { signal }),
  sourceSchema: (name: string, signal?: AbortSignal) =>
    request<SourceSchema>(`/sources/${encodeURIComponent(name)}/schema`, { signal }),
  backfill: (name: string, body: { from: string; to: string; step: string }) =>
    request<Backfill>(`/sources/${encodeURIComponent(name)}/backfill`, { method: 'POST', body }),
  getBackfill: (id: number, signal?: AbortSignal) => request<Backfill>(`/backfills/${id}`, { signal }),
};
