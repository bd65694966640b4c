import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IngestManifest, IngestRequest } from '../../contract/ingest.ts';
import { manifestKey, runPrefix } from '../../contract/lake-layout.ts';
import type { ValidateRequest } from '../../contract/validate.ts';
import { startDemoApi } from '../../demo/source-api/server.ts';
import { runIngest } from '../../lambdas/ingest/ingest.ts';
import { FileLake } from '../../lib/lake/file-lake.ts';
import { loadConfig } from '../../service/config/env.ts';
import { loadSources } from '../../service/config/sources.ts';
import { namedPaths } from '../../service/stages/drift.ts';
import { handlerNodeFlags } from '../../service/invocation/local-invoker.ts';
import { child, compare, report } from '../measure.ts';

// Validate benchmark: the validate handler on the raw parts of N demo records, against a baseline that only
// gunzips, parses, re-serializes and gzips the same parts, each in its own process, at two sizes.

const SIZES = [200_000, 1_000_000];
const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const env = loadConfig(process.env, { requireTokens: false });
const flags = handlerNodeFlags(env.lambda.memoryMb);
const demo = (await loadSources('config/sources.yaml')).sources.get('demo');
if (!demo) throw new Error('config/sources.yaml has no demo source');
const { name: _n, schemaPath: _p, schemaDocument, transforms, ...config } = demo;

const results = [];
for (const records of SIZES) {
  const dir = await mkdtemp(join(tmpdir(), 'afluente-bench-validate-'));
  try {
    // The raw parts come from the real ingest of the demo source, as in a run.
    const lake = new FileLake({ root: `file://${join(dir, 'lake')}` });
    const api = await startDemoApi({ records, pageSize: 1000 });
    const ingest: IngestRequest = {
      invocationId: 'bench',
      runId: 1,
      jobId: 1,
      source: 'demo',
      config: {
        ...config,
        schema: demo.schema,
        transforms,
        request: { ...config.request, url: `${api.url}/orders` },
      },
      dt: '2026-01-01',
      lakeRoot: lake.root,
      cursor: null,
      continuation: null,
      limits: { ...env.ingest, deadline: Date.now() + 3_600_000 },
    };
    const ingested = await runIngest(ingest, { lake });
    await api.close();
    if (ingested.kind !== 'done') throw new Error(`ingest failed: ${JSON.stringify(ingested)}`);
    const raw = JSON.parse(
      await readFile(join(dir, 'lake', manifestKey(runPrefix('raw', 'demo', '2026-01-01', 1))), 'utf8'),
    ) as IngestManifest;

    const request: ValidateRequest = {
      invocationId: 'bench',
      runId: 1,
      jobId: 2,
      source: 'demo',
      dt: '2026-01-01',
      lakeRoot: lake.root,
      group: 0,
      parts: raw.files,
      schema: schemaDocument,
      named: namedPaths(demo),
      basis: 'bench',
      transforms,
      limits: { partMaxRecords: env.ingest.partMaxRecords, partMaxBytes: env.ingest.partMaxBytes },
    };
    const comparison = await compare(records, REPEATS, {
      // The same V8 flags the local Lambda invoker gives a handler process.
      afluente: () => child('bench/handler-worker.ts', ['validate', JSON.stringify(request)], flags),
      baseline: () =>
        child('bench/validate/baseline-worker.ts', [
          join(dir, 'baseline.ndjson.gz'),
          ...raw.files.map((f) => join(dir, 'lake', f.key)),
        ]),
    });
    results.push({ records, parts: raw.files.length, repeats: REPEATS, ...comparison });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await report(
  'validate',
  results,
  { ratioAtLeast: 0.75, peakRssUnderMiB: 256 },
  { handlerFlags: flags, transforms },
);
