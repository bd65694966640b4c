import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { IngestLimits, IngestManifest, IngestRequest, IngestResult } from '../../contract/ingest.ts';
import { manifestKey, runPrefix } from '../../contract/lake-layout.ts';
import type { Pagination, SourceConfig } from '../../contract/source-config.ts';
import type { LambdaLog } from '../../lambdas/common/log.ts';
import { runIngest } from '../../lambdas/ingest/ingest.ts';
import { loadSources } from '../../service/config/sources.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import { FileLake } from '../../lib/lake/file-lake.ts';

export const DT = '2026-01-31';

/** The shipped demo source's config, pointed at a test server and a pagination kind. */
export async function demoConfig(
  url: string,
  pagination?: Pagination,
  extra: Partial<SourceConfig> = {},
): Promise<SourceConfig> {
  const loaded = (await loadSources('config/sources.yaml')).sources.get('demo');
  if (!loaded) throw new Error('config/sources.yaml has no demo source');
  const { name: _n, schemaPath: _p, schemaDocument: _d, ...config } = loaded;
  return {
    ...config,
    request: { ...config.request, url, timeoutMs: 2000 },
    ...(pagination ? { pagination } : {}),
    ...extra,
  };
}

export const PAGINATIONS: Record<
  'page' | 'offset' | 'cursor' | 'link',
  (size: number) => { path: string; pagination: Pagination }
> = {
  page: (size) => ({
    path: '/orders',
    pagination: {
      kind: 'page',
      pageParam: 'page',
      sizeParam: 'per_page',
      size,
      startPage: 1,
      maxPages: 100_000,
    },
  }),
  offset: (size) => ({
    path: '/offset/orders',
    pagination: { kind: 'offset', offsetParam: 'offset', limitParam: 'limit', size, maxPages: 100_000 },
  }),
  cursor: () => ({
    path: '/cursor/orders',
    pagination: { kind: 'cursor', cursorPath: 'next_cursor', cursorParam: 'cursor', maxPages: 100_000 },
  }),
  link: () => ({ path: '/link/orders', pagination: { kind: 'link', maxPages: 100_000 } }),
};

export function limits(overrides: Partial<IngestLimits> = {}): IngestLimits {
  return {
    timeLimitMs: 600_000,
    safetyMarginMs: 0,
    deadline: Date.now() + 600_000,
    maxResponseBytes: 16 * 1024 * 1024,
    partMaxRecords: 400,
    partMaxBytes: 64 * 1024 * 1024,
    maxRetries: 4,
    retryBaseMs: 10,
    retryMaxMs: 100,
    ...overrides,
  };
}

export async function tempLake(): Promise<FileLake> {
  return new FileLake({ root: `file://${await mkdtemp(join(tmpdir(), 'afluente-lake-'))}` });
}

export function request(
  config: SourceConfig,
  lake: Lake,
  overrides: Partial<IngestRequest> = {},
): IngestRequest {
  return {
    invocationId: 'test',
    runId: 7,
    jobId: 1,
    source: 'demo',
    config,
    dt: DT,
    lakeRoot: lake.root,
    cursor: null,
    continuation: null,
    limits: limits(),
    ...overrides,
  };
}

/** What the ingest logged, line by line; nothing reaches the test's output. */
export interface CapturedLog extends LambdaLog {
  lines: { level: 'info' | 'warn'; fields: Record<string, unknown>; message: string }[];
}

export function captureLog(): CapturedLog {
  const lines: CapturedLog['lines'] = [];
  return {
    lines,
    info: (fields, message) => void lines.push({ level: 'info', fields, message }),
    warn: (fields, message) => void lines.push({ level: 'warn', fields, message }),
  };
}

/** Invokes ingest the way the worker does: again with each continuation until it is done or failed. */
export async function ingestAll(
  req: IngestRequest,
  lake: Lake,
  log: LambdaLog = captureLog(),
  env: NodeJS.ProcessEnv = {},
): Promise<{ result: IngestResult; invocations: number }> {
  let current = req;
  for (let invocations = 1; ; invocations++) {
    const result = await runIngest(current, { lake, env, log });
    if (result.kind !== 'continue') return { result, invocations };
    current = { ...current, continuation: result.continuation };
  }
}

export async function readManifest(lake: Lake, runId = 7): Promise<IngestManifest> {
  const key = manifestKey(runPrefix('raw', 'demo', DT, runId));
  return JSON.parse((await lake.getBytes(key)).toString('utf8')) as IngestManifest;
}

/** Every record the manifest's parts hold, in part order. */
export async function readRecords(lake: Lake, manifest: IngestManifest): Promise<Record<string, unknown>[]> {
  const records: Record<string, unknown>[] = [];
  for (const file of manifest.files) {
    const text = gunzipSync(await lake.getBytes(file.key)).toString('utf8');
    for (const line of text.split('\n')) if (line) records.push(JSON.parse(line) as Record<string, unknown>);
  }
  return records;
}
