// Samples a few pages of an API the way the ingest will read it: the ingest's guarded HTTP client (network
// guard, retries, size cap), its auth from environment variable names, and, once a pagination kind is
// detected, its own paginator for pages 2..n, so what is proposed is what a run will do.
import type { Auth, Pagination } from '../../contract/source-config.ts';
import { HandlerError, safeUrl } from '../../lambdas/common/errors.ts';
import { getPath } from '../../lambdas/common/json-path.ts';
import { resolveAuth, type AuthParts } from '../../lambdas/ingest/auth.ts';
import { HttpClient, type JsonPage } from '../../lambdas/ingest/http-client.ts';
import { paginator } from '../../lambdas/ingest/paginator.ts';
import { withSecretEnv } from '../../lambdas/ingest/secret-env.ts';
import { detectPagination, type Candidate } from './detect-pagination.ts';
import { chooseRecords, isObject } from './records.ts';

export interface SampleOptions {
  /** The source's name, as messages name it. */
  name: string;
  /** `--url`, with the query the user gave. */
  url: URL;
  auth: Auth;
  env: NodeJS.ProcessEnv;
  allowPrivateNetwork: boolean;
  /** `--records`: a dot path, or `.` for the body. */
  records?: string;
  /** Pages to read in all, the first included. */
  pages: number;
  timeoutMs: number;
  /** Progress and retries, for stderr. */
  log: (line: string) => void;
}

export interface Sample {
  recordsPath: string | undefined;
  recordsWhy: string;
  records: Record<string, unknown>[];
  /** Pages whose records are in `records`. */
  pages: number;
  pagination: Pagination;
  /** What in the first page led to the kind, and what following it showed. */
  paginationWhy: string;
  /** Said next to `pagination` in the proposal. */
  paginationNote?: string;
  /** The proposal's request: the URL without a query, and the query minus what pagination and auth set. */
  request: { url: string; query: Record<string, string> };
}

/** A sampling failure: `usage` when the command must change, `api` when the API's answer is the problem. */
export class SampleError extends Error {
  readonly exit: 'usage' | 'api';
  constructor(exit: 'usage' | 'api', message: string) {
    super(message);
    this.exit = exit;
  }
}

const MAX_RESPONSE_BYTES = 33_554_432; // the ingest's default (AFLUENTE_INGEST_MAX_RESPONSE_BYTES)
const DEADLINE_MS = 120_000;
const MAX_TRIES = 8;
// Statuses that say a pagination guess was wrong (a parameter the API refuses), not that the API is down.
const REFUSED = new Set([400, 404, 409, 422]);

type Follow =
  | { ok: true; pages: Record<string, unknown>[][]; ended: boolean; confirmation: string }
  | { ok: false; why: string };

function pageKey(records: unknown[]): string {
  return `${records.length}\n${JSON.stringify(records[0])}\n${JSON.stringify(records.at(-1))}`;
}

function describe(p: Pagination): string {
  switch (p.kind) {
    case 'page':
      return `page (${p.pageParam}${p.sizeParam ? `, ${p.sizeParam}=${p.size}` : ''})`;
    case 'offset':
      return `offset (${p.offsetParam}, ${p.limitParam}=${p.size})`;
    case 'cursor':
      return `cursor (body.${p.cursorPath} → ${p.cursorParam})`;
    case 'link':
    case 'none':
      return p.kind;
  }
}

function translate(error: unknown, allowPrivateNetwork: boolean): never {
  if (!(error instanceof HandlerError)) throw error;
  if (error.reason === 'blocked_address')
    throw new SampleError(
      'usage',
      `${error.message}${allowPrivateNetwork ? '' : '\n  to sample an API on loopback or a private network, pass --allow-private-network (the proposal then says allowPrivateNetwork: true)'}`,
    );
  throw new SampleError('api', error.message);
}

export async function sample(options: SampleOptions): Promise<Sample> {
  let auth: AuthParts;
  try {
    // As the ingest on AWS does: AFLUENTE_SECRET_ENV, when set, maps the variables auth names to secrets.
    auth = resolveAuth(options.name, options.auth, await withSecretEnv(options.env));
  } catch (error) {
    if (error instanceof HandlerError)
      throw new SampleError('usage', `${error.message.replace(/\(auth\./, '(--auth, auth.')}`);
    throw error;
  }
  const http = new HttpClient({
    allowPrivateNetwork: options.allowPrivateNetwork,
    timeoutMs: options.timeoutMs,
    maxResponseBytes: MAX_RESPONSE_BYTES,
    maxRetries: 2,
    retryBaseMs: 500,
    retryMaxMs: 5000,
    deadline: Date.now() + DEADLINE_MS,
    headers: auth.headers,
    secretParams: auth.secretParams,
    onRetry: ({ what, error, waitMs, retry, maxRetries }) =>
      options.log(`${what}: ${error}; retry ${retry} of ${maxRetries} in ${waitMs} ms`),
  });
  try {
    return await sampleWith(http, auth, options);
  } finally {
    await http.close();
  }
}

async function sampleWith(http: HttpClient, auth: AuthParts, options: SampleOptions): Promise<Sample> {
  const withAuth = (url: URL): URL => {
    for (const [k, v] of Object.entries(auth.query)) url.searchParams.set(k, v);
    return url;
  };
  const get = async (url: URL, what: string): Promise<JsonPage> => {
    try {
      return await http.getJson(url, what);
    } catch (error) {
      translate(error, options.allowPrivateNetwork);
    }
  };
  const first = await get(withAuth(new URL(options.url)), 'page 1');
  const shown = safeUrl(first.url, auth.secretParams);
  const choice = chooseRecords(first.body, options.records);
  if (!choice.ok)
    throw new SampleError(
      options.records === undefined ? 'api' : 'usage',
      `page 1 (${shown}): ${choice.message}`,
    );
  const where = choice.path ? `body.${choice.path}` : 'the body';
  if (choice.records.length === 0)
    throw new SampleError(
      'api',
      `page 1 (${shown}) has no records (${where} is empty): nothing to infer tables from; point --url at a query that returns some`,
    );
  options.log(`page 1: ${choice.records.length} records at ${where} (${choice.why})`);

  // The request as the ingest will send it: no auth in it, and the parameters pagination sets left out.
  const asked = new URL(options.url);
  for (const name of auth.secretParams) asked.searchParams.delete(name);
  const detection = detectPagination(first, asked, choice.path, choice.records.length, auth.secretParams);
  const requestOf = (candidate: Candidate | undefined): Sample['request'] => {
    const consumed = new Set(candidate?.consumed ?? []);
    const query: Record<string, string> = {};
    for (const [k, v] of asked.searchParams) if (!consumed.has(k)) query[k] = v;
    return { url: `${asked.origin}${asked.pathname}`, query };
  };

  const follow = async (candidate: Candidate): Promise<Follow> => {
    const request = requestOf(candidate);
    const base = (): URL => {
      const url = new URL(request.url);
      for (const [k, v] of Object.entries(request.query)) url.searchParams.set(k, v);
      return withAuth(url);
    };
    const pager = paginator(candidate.pagination, base);
    const pages = [choice.records];
    const keys = [pageKey(choice.records)];
    const seen = new Set<string>();
    let state = pager.next(pager.first(), {
      records: choice.records,
      body: first.body,
      headers: first.headers,
      url: first.url,
    });
    while (state && pages.length < options.pages) {
      const n = pages.length + 1;
      const loop = pager.loopKey(state);
      if (loop !== undefined && seen.has(loop))
        return { ok: false, why: `page ${n} would follow ${loop} again: a loop` };
      if (loop !== undefined) seen.add(loop);
      let page: JsonPage;
      try {
        page = await http.getJson(pager.url(state), `page ${n}`);
      } catch (error) {
        if (error instanceof HandlerError && error.httpStatus !== undefined && REFUSED.has(error.httpStatus))
          return { ok: false, why: `page ${n} answered ${error.httpStatus}` };
        translate(error, options.allowPrivateNetwork);
      }
      const records = getPath(page.body, choice.path);
      if (!Array.isArray(records) || !records.every(isObject))
        return { ok: false, why: `page ${n} has no array of objects at ${where}` };
      if (records.length > 0) {
        const key = pageKey(records);
        const again = keys.indexOf(key);
        if (again >= 0)
          return { ok: false, why: `page ${n} repeats page ${again + 1}: the API ignored the parameter` };
        keys.push(key);
      }
      pages.push(records);
      state = pager.next(state, { records, body: page.body, headers: page.headers, url: page.url });
      options.log(`page ${n}: ${records.length} records (${describe(candidate.pagination)})`);
    }
    const ended = state === null;
    const followed = pages.length > 1 ? `pages 2-${pages.length} followed with the ingest's paginator` : '';
    const confirmation =
      pages.length === 1
        ? ended
          ? 'page 1 is the only page, so the kind could not be tried'
          : 'not tried (--pages 1)'
        : ended
          ? `${followed} to the end (${pages.at(-1)?.length === 0 ? `page ${pages.length} was empty` : 'no next page'})`
          : `${followed}, each with new records`;
    return { ok: true, pages, ended, confirmation };
  };

  const failures: string[] = [];
  // Every kind's first guess before another cursorParam for a cursor: the guesses cost requests.
  const tries: Candidate[] = [...detection.candidates];
  for (const candidate of detection.candidates)
    for (const param of candidate.otherCursorParams ?? [])
      if (candidate.pagination.kind === 'cursor')
        tries.push({
          ...candidate,
          pagination: { ...candidate.pagination, cursorParam: param },
          consumed: [param],
          otherCursorParams: [],
        });
  // Each wrong guess costs a request per page tried, so a body with many token-like fields stops somewhere.
  for (const candidate of tries.slice(0, MAX_TRIES)) {
    const result = await follow(candidate);
    if (!result.ok) {
      failures.push(`${describe(candidate.pagination)}: ${result.why}`);
      options.log(`pagination ${describe(candidate.pagination)} did not work: ${result.why}`);
      continue;
    }
    let note = candidate.note;
    if (candidate.pagination.kind === 'cursor' && result.pages.length > 1)
      note = `cursorParam "${candidate.pagination.cursorParam}" is a guess from the field's name that moved pages 2-${result.pages.length}: check it in the API docs`;
    return {
      recordsPath: choice.path,
      recordsWhy: choice.why,
      records: result.pages.flat(),
      pages: result.pages.length,
      pagination: candidate.pagination,
      paginationWhy: `${candidate.why}; ${result.confirmation}`,
      ...(note ? { paginationNote: note } : {}),
      request: requestOf(candidate),
    };
  }
  const reasons = [...failures.map((f) => `tried ${f}`), ...detection.hints];
  return {
    recordsPath: choice.path,
    recordsWhy: choice.why,
    records: choice.records,
    pages: 1,
    pagination: { kind: 'none', maxPages: 100_000 },
    paginationWhy:
      reasons.length > 0
        ? `only page 1 is read: ${reasons.join('; ')}`
        : 'page 1 shows no next page (no Link header, no next cursor or URL, no offset or page fields)',
    request: requestOf(undefined),
  };
}
