import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { IngestRequest } from '../../contract/ingest.ts';
import { startDemoApi } from '../../demo/source-api/server.ts';
import { loadConfig } from '../../service/config/env.ts';
import { loadSources } from '../../service/config/sources.ts';
import { handlerNodeFlags } from '../../service/invocation/local-invoker.ts';

// Ingest benchmark: afluente's ingest handler against a plain undici loop over the same demo pages, each in its
// own process, at two sizes to show that memory does not grow with the record count.

const run = promisify(execFile);
const SIZES = [200_000, 1_000_000];
const PAGE_SIZE = 1000;

interface Measure {
  ms: number;
  records: number;
  maxRssKiB: number;
}

async function child(script: string, args: string[], flags: string[] = []): Promise<Measure> {
  const { stdout } = await run(process.execPath, [...flags, script, ...args], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Measure;
}

const demo = (await loadSources('config/sources.yaml')).sources.get('demo');
if (!demo) throw new Error('config/sources.yaml has no demo source');
const { name: _n, schemaPath: _p, schemaDocument: _d, ...config } = demo;
const env = loadConfig(process.env, { requireTokens: false });
const limits = env.ingest;
const flags = handlerNodeFlags(env.lambda.memoryMb);

const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const rate = (m: Measure): number => Math.round(m.records / (m.ms / 1000));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

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
    const runs: { afluente: Measure; baseline: Measure }[] = [];
    // Alternating the order spreads whatever else the machine is doing over both sides.
    for (let i = 0; i < REPEATS; i++) {
      const pair: Partial<{ afluente: Measure; baseline: Measure }> = {};
      for (const side of i % 2 === 0
        ? (['baseline', 'afluente'] as const)
        : (['afluente', 'baseline'] as const)) {
        pair[side] =
          side === 'baseline'
            ? await child('bench/ingest/baseline-worker.ts', [
                url,
                join(dir, 'baseline.json.gz'),
                String(PAGE_SIZE),
              ])
            : // The same V8 flags the local Lambda invoker gives a handler process.
              await child('bench/ingest/afluente-worker.ts', [JSON.stringify(request)], flags);
      }
      const { afluente, baseline } = pair as { afluente: Measure; baseline: Measure };
      if (afluente.records !== records || baseline.records !== records) {
        throw new Error(
          `record counts disagree: source ${records}, afluente ${afluente.records}, baseline ${baseline.records}`,
        );
      }
      runs.push({ afluente, baseline });
    }
    const side = (pick: (r: { afluente: Measure; baseline: Measure }) => Measure) => ({
      recordsPerSecond: median(runs.map((r) => rate(pick(r)))),
      peakRssMiB: Math.max(...runs.map((r) => pick(r).maxRssKiB)) / 1024,
      runsRecordsPerSecond: runs.map((r) => rate(pick(r))),
    });
    const afluente = side((r) => r.afluente);
    const baseline = side((r) => r.baseline);
    results.push({
      records,
      pages: Math.ceil(records / PAGE_SIZE),
      repeats: REPEATS,
      afluente,
      baseline,
      // The median of the per-run ratios: each ratio compares two runs made back to back.
      ratio: median(runs.map((r) => rate(r.afluente) / rate(r.baseline))),
    });
  } finally {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const largest = results.at(-1);
const smallest = results[0];
const report = {
  benchmark: 'ingest',
  node: process.version,
  date: new Date().toISOString(),
  partMaxRecords: limits.partMaxRecords,
  handlerFlags: flags,
  results,
  goals: {
    ratioAtLeast: 0.6,
    ratio: largest?.ratio,
    ratioMet: (largest?.ratio ?? 0) >= 0.6,
    peakRssUnderMiB: 256,
    peakRssMiB: largest?.afluente.peakRssMiB,
    peakRssMet: (largest?.afluente.peakRssMiB ?? Infinity) < 256,
    rssGrowthWith5xRecords:
      largest && smallest ? largest.afluente.peakRssMiB / smallest.afluente.peakRssMiB : undefined,
  },
};
await writeFile('bench/results/ingest.json', `${JSON.stringify(report, null, 2)}\n`);
for (const r of results) {
  console.log(
    `${r.records.toLocaleString('en')} records: afluente ${r.afluente.recordsPerSecond.toLocaleString('en')} rec/s ` +
      `(peak RSS ${r.afluente.peakRssMiB.toFixed(0)} MiB), baseline ${r.baseline.recordsPerSecond.toLocaleString('en')} rec/s ` +
      `(peak RSS ${r.baseline.peakRssMiB.toFixed(0)} MiB), ratio ${r.ratio.toFixed(2)}`,
  );
}
console.log(
  `goals: ratio ≥ 0.6 ${report.goals.ratioMet ? 'met' : 'NOT met'}, peak RSS < 256 MiB ${report.goals.peakRssMet ? 'met' : 'NOT met'}`,
);
console.log('written to bench/results/ingest.json');
