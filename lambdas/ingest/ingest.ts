import { createHash } from 'node:crypto';
import type {
  IngestContinuation,
  IngestManifest,
  IngestRequest,
  IngestResult,
  IngestSegment,
  PageState,
  PartInfo,
} from '../../contract/ingest.ts';
import { manifestKey, runPrefix, segmentKey } from '../../contract/lake-layout.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import { getPath } from '../common/json-path.ts';
import { PartWriter } from '../common/part-writer.ts';
import { resolveAuth } from './auth.ts';
import { laterCursor } from './cursor.ts';
import { HandlerError } from '../common/errors.ts';
import { lambdaLog, type LambdaLog } from '../common/log.ts';
import { HttpClient, type JsonPage } from './http-client.ts';
import { paginator } from './paginator.ts';

export interface IngestDeps {
  lake: Lake;
  env?: NodeJS.ProcessEnv;
  /** Where each page retry is logged. @default a pino log on stdout ({@link lambdaLog}) */
  log?: LambdaLog;
  /** When this invocation started (epoch ms); its time budget counts from here. */
  startedAt?: number;
  now?: () => number;
}

/** How many recent cursors and page hashes travel in a continuation to catch loops across invocations. */
// Kept small: on AWS the continuation travels inside the Lambda destination record, which SQS caps at 256 KiB.
const REMEMBERED_CURSORS = 200;
const REMEMBERED_PAGES = 3;

/**
 * The ingest Lambda's work: pull every page of a source and stream its records into gzipped NDJSON parts under
 * the run's raw prefix, then write the manifest last. Near the invocation's time limit it commits what it has as
 * a segment and returns a continuation; the next invocation goes on from the next page with the next part index.
 * Expected failures come back as a `failed` result; anything else is thrown (a crash).
 */
export async function runIngest(request: IngestRequest, deps: IngestDeps): Promise<IngestResult> {
  // Counted across invocations, and known to a failed one too: retries are what a struggling source shows.
  const counts = { retries: request.continuation?.retries ?? 0 };
  try {
    return await ingest(request, deps, counts);
  } catch (error) {
    if (error instanceof HandlerError)
      return { kind: 'failed', error: error.toFailure(), retries: counts.retries };
    throw error;
  }
}

async function ingest(
  request: IngestRequest,
  deps: IngestDeps,
  counts: { retries: number },
): Promise<IngestResult> {
  const { config, limits, source } = request;
  const { lake } = deps;
  const now = deps.now ?? Date.now;
  const endsAt = (deps.startedAt ?? now()) + limits.timeLimitMs - limits.safetyMarginMs;
  const prefix = runPrefix('raw', source, request.dt, request.runId);
  const auth = resolveAuth(source, config.auth, deps.env);
  const log = deps.log ?? lambdaLog('ingest', deps.env);
  const cursorField = config.incremental?.cursorField ?? null;
  const base = (): URL => {
    const url = new URL(config.request.url);
    for (const [k, v] of Object.entries(config.request.query ?? {})) url.searchParams.set(k, String(v));
    if (request.window) {
      // A window is a fixed slice of history: its bounds replace the cursor.
      if (!config.window) throw new Error(`source "${source}" has no window params to send a window with`);
      const { from, to } = request.window;
      if (from !== undefined) url.searchParams.set(config.window.fromParam, from);
      if (to !== undefined && config.window.toParam) url.searchParams.set(config.window.toParam, to);
    } else if (config.incremental && request.cursor !== null)
      url.searchParams.set(config.incremental.param, request.cursor);
    for (const [k, v] of Object.entries(auth.query)) url.searchParams.set(k, v);
    return url;
  };
  const pager = paginator(config.pagination, base);
  const http = new HttpClient({
    allowPrivateNetwork: config.allowPrivateNetwork,
    timeoutMs: config.request.timeoutMs,
    maxResponseBytes: limits.maxResponseBytes,
    maxRetries: limits.maxRetries,
    retryBaseMs: limits.retryBaseMs,
    retryMaxMs: limits.retryMaxMs,
    deadline: limits.deadline,
    headers: { ...config.request.headers, ...auth.headers },
    secretParams: auth.secretParams,
    onRetry: ({ what, url, status, error, waitMs, retry, maxRetries }) => {
      counts.retries += 1;
      log.warn(
        { source, runId: request.runId, url, status, waitMs, retry, maxRetries },
        `${what}: ${error}; retry ${retry} of ${maxRetries} in ${waitMs} ms`,
      );
    },
  });

  const resumed: IngestContinuation | null = request.continuation;
  // A fresh attempt un-commits the stage first, so no reader trusts an old manifest while parts are rewritten.
  if (!resumed) await lake.delete([manifestKey(prefix)]);
  let state: PageState | null = resumed?.next ?? pager.first();
  let pages = resumed?.pages ?? 0;
  let records = resumed?.records ?? 0;
  let maxCursor = resumed?.maxCursor ?? null;
  const recentPages = [...(resumed?.recentPages ?? [])];
  const seen = new Set(resumed?.seen ?? []);
  const segment = resumed?.segment ?? 0;
  const writer = new PartWriter(lake, {
    prefix,
    startIndex: resumed?.partIndex ?? 0,
    maxRecords: limits.partMaxRecords,
    maxBytes: limits.partMaxBytes,
  });

  try {
    let pagesThisInvocation = 0;
    // The next page is fetched while this one is serialized and compressed; at most one request is ahead.
    let ahead: Promise<JsonPage> | undefined;
    const loopError = (state: PageState): HandlerError | undefined => {
      const key = pager.loopKey(state);
      if (key === undefined || !seen.has(key)) return undefined;
      const kind = key.slice(0, key.indexOf(':'));
      return new HandlerError({
        reason: 'pagination_loop',
        message: `source "${source}" page ${pages + 1}: the ${kind} ${JSON.stringify(key.slice(kind.length + 1))} was already followed in this run; the API is looping`,
        retryable: false,
      });
    };
    while (state) {
      if (now() > limits.deadline) {
        throw new HandlerError({
          reason: 'deadline',
          message: `source "${source}": the stage deadline passed after ${pages} pages`,
          retryable: false,
        });
      }
      if (pagesThisInvocation > 0 && now() >= endsAt) {
        const files = await writer.close();
        const done: IngestSegment = { segment, files };
        await lake.put(segmentKey(prefix, segment), JSON.stringify(done));
        const continuation: IngestContinuation = {
          next: state,
          pages,
          records,
          partIndex: writer.nextIndex,
          segment: segment + 1,
          maxCursor,
          recentPages,
          seen: [...seen].slice(-REMEMBERED_CURSORS),
          retries: counts.retries,
        };
        return { kind: 'continue', continuation, records, pages, retries: counts.retries };
      }
      if (pages >= config.pagination.maxPages) {
        throw new HandlerError({
          reason: 'too_many_pages',
          message: `source "${source}": more than ${config.pagination.maxPages} pages (pagination.maxPages); is the API paging forever?`,
          retryable: false,
        });
      }
      const loop = loopError(state);
      if (loop) throw loop;
      const key = pager.loopKey(state);
      if (key !== undefined) seen.add(key);

      const what = `source "${source}" page ${pages + 1}`;
      const page = await (ahead ?? http.getJson(pager.url(state), what));
      ahead = undefined;
      const found = getPath(page.body, config.records);
      if (!Array.isArray(found)) {
        throw new HandlerError({
          reason: 'records_not_array',
          message: `${what}: ${config.records ? `body.${config.records}` : 'the body'} is not an array (check "records" in the source config)`,
          retryable: false,
        });
      }
      const next = pager.next(state, {
        records: found,
        body: page.body,
        headers: page.headers,
        url: page.url,
      });
      // Only a page this invocation will surely take: not past the time budget, the page limit, or a loop.
      if (next && now() < endsAt && pages + 1 < config.pagination.maxPages && !loopError(next)) {
        ahead = http.getJson(pager.url(next), `source "${source}" page ${pages + 2}`);
        ahead.catch(() => undefined); // awaited on the next turn, which rethrows
      }

      const lines = found.map((record) => JSON.stringify(record));
      const joined = lines.join('\n');
      if (lines.length > 0) {
        // A page that repeats an earlier one has the same first and last records and the same size.
        const hash = createHash('sha1')
          .update(`${lines.length}\n${lines[0]}\n${lines.at(-1)}`)
          .digest('hex');
        if (recentPages.includes(hash)) {
          throw new HandlerError({
            reason: 'repeated_page',
            message: `${what} repeats an earlier page record for record; the API seems to ignore the pagination parameters`,
            retryable: false,
          });
        }
        recentPages.push(hash);
        if (recentPages.length > REMEMBERED_PAGES) recentPages.shift();
      }
      await writer.write(lines, joined);
      if (cursorField)
        for (const record of found) maxCursor = laterCursor(maxCursor, getPath(record, cursorField));
      records += found.length;
      pages += 1;
      pagesThisInvocation += 1;
      state = next;
    }

    const files = [...(await readSegments(lake, prefix, segment)), ...(await writer.close())];
    const written = files.reduce((n, f) => n + f.records, 0);
    if (written !== records) {
      throw new Error(
        `ingest of run ${request.runId}: parts hold ${written} records but ${records} were fetched`,
      );
    }
    await removeStale(lake, prefix, files);
    const manifest: IngestManifest = {
      version: 1,
      stage: 'ingest',
      source,
      runId: request.runId,
      dt: request.dt,
      files,
      records,
      bytes: files.reduce((n, f) => n + f.bytes, 0),
      pages,
      retries: counts.retries,
      cursorField,
      startCursor: request.cursor,
      nextCursor: maxCursor ?? request.cursor,
    };
    const key = manifestKey(prefix);
    await lake.put(key, JSON.stringify(manifest, null, 2), { contentType: 'application/json' });
    await lake.delete(Array.from({ length: segment }, (_, i) => segmentKey(prefix, i)));
    return {
      kind: 'done',
      manifestKey: key,
      files: files.length,
      records,
      bytes: manifest.bytes,
      pages,
      retries: counts.retries,
      nextCursor: manifest.nextCursor,
    };
  } catch (error) {
    await writer.abort(error instanceof Error ? error : new Error(String(error)));
    throw error;
  } finally {
    await http.close();
  }
}

async function readSegments(lake: Lake, prefix: string, count: number): Promise<PartInfo[]> {
  const files: PartInfo[] = [];
  for (let i = 0; i < count; i++) {
    const segment = JSON.parse(
      (await lake.getBytes(segmentKey(prefix, i))).toString('utf8'),
    ) as IngestSegment;
    files.push(...segment.files);
  }
  return files;
}

/** Deletes parts an earlier, longer attempt left under the prefix, so the prefix holds exactly the manifest's files. */
async function removeStale(lake: Lake, prefix: string, files: PartInfo[]): Promise<void> {
  const keep = new Set(files.map((f) => f.key));
  const stale: string[] = [];
  for await (const object of lake.list(prefix)) {
    if (/\/part-\d+\.ndjson\.gz$/.test(object.key) && !keep.has(object.key)) stale.push(object.key);
  }
  if (stale.length > 0) await lake.delete(stale);
}
