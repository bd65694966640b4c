import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IngestRequest } from '../../contract/ingest.ts';
import { startDemoApi } from '../../demo/source-api/server.ts';
import { loadConfig } from '../../service/config/env.ts';
import { loadSources } from '../../service/config/sources.ts';
import { handlerNodeFlags } from '../../service/invocation/local-invoker.ts';
import { child, compare, report } from '../measure.ts';

// Ingest benchmark: afluente's ingest handler against a plain undici loop over the same demo pages, each in its
// own process, at two sizes to show that memory does not grow with the record count.

const SIZES = [200_000, 1_000_000];
const PAGE_SIZE = 1000;

const demo = (await loadSources('config/sources.yaml')).sources.get('demo');
if (!demo) throw new Error('config/sources.yaml has no demo source');
const { name: _n, schemaPath: _p, schemaDocument: _d, ...config } = demo;
const env = loadConfig(process.env, { requireTokens: false });
const limits = env.ingest;
const flags = handlerNodeFlags(env.lambda.memoryMb);

const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);

const results = [];
for (const records of SIZES) {
  const api = await startDemoApi({ records, pageSize: PAGE_SIZE });
  const dir = await mkdtemp(join(tmpdir(), 'afluente-bench-'));
  try {
    const url = `${api.url}/orders`;
    const request: IngestRequest = {
      invocationId: 'bench',
      runId: 1,
      jobId: 1,
      source: 'demo',
      config: { ...config, request: { ...config.request, url } },
      dt: '2026-01-01',
      lakeRoot: `file://${join(dir, 'lake')}`,
      cursor: null,
      continuation: null,
      limits: { ...limits, deadline: Date.now() + 3_600_000 },
    };
    const comparison = await compare(records, REPEATS, {
      baseline: () =>
        child('bench/ingest/baseline-worker.ts', [url, join(dir, 'baseline.json.gz'), String(PAGE_SIZE)]),
      // The same V8 flags the local Lambda invoker gives a handler process.
      afluente: () => child('bench/handler-worker.ts', ['ingest', JSON.stringify(request)], flags),
    });
    results.push({ records, pages: Math.ceil(records / PAGE_SIZE), repeats: REPEATS, ...comparison });
  } finally {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await report(
  'ingest',
  results,
  { ratioAtLeast: 0.6, peakRssUnderMiB: 256 },
  { partMaxRecords: limits.partMaxRecords, handlerFlags: flags },
);
