import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';

// Shared by the benchmarks: a measured child process, and medians over alternating runs.

export interface Measure {
  ms: number;
  records: number;
  maxRssKiB: number;
}

const run = promisify(execFile);

/** Runs a worker script in its own Node process and reads the Measure it prints last. */
export async function child(script: string, args: string[], flags: string[] = []): Promise<Measure> {
  const { stdout } = await run(process.execPath, [...flags, script, ...args], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Measure;
}

export const rate = (m: Measure): number => Math.round(m.records / (m.ms / 1000));
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

export interface Comparison {
  afluente: { recordsPerSecond: number; peakRssMiB: number; runsRecordsPerSecond: number[] };
  baseline: { recordsPerSecond: number; peakRssMiB: number; runsRecordsPerSecond: number[] };
  /** The median of per-run ratios; each ratio compares two runs made back to back. */
  ratio: number;
}

/**
 * Runs both sides `repeats` times, alternating which goes first so whatever else the machine is doing falls on
 * both, and checks that each side handled `records`.
 */
export async function compare(
  records: number,
  repeats: number,
  sides: { afluente: () => Promise<Measure>; baseline: () => Promise<Measure> },
): Promise<Comparison> {
  const runs: { afluente: Measure; baseline: Measure }[] = [];
  for (let i = 0; i < repeats; i++) {
    const order = i % 2 === 0 ? (['baseline', 'afluente'] as const) : (['afluente', 'baseline'] as const);
    const pair: Partial<Record<'afluente' | 'baseline', Measure>> = {};
    for (const side of order) pair[side] = await sides[side]();
    const { afluente, baseline } = pair as Record<'afluente' | 'baseline', Measure>;
    if (afluente.records !== records || baseline.records !== records) {
      throw new Error(
        `record counts disagree: expected ${records}, afluente ${afluente.records}, baseline ${baseline.records}`,
      );
    }
    runs.push({ afluente, baseline });
  }
  const side = (pick: (r: { afluente: Measure; baseline: Measure }) => Measure) => ({
    recordsPerSecond: median(runs.map((r) => rate(pick(r)))),
    peakRssMiB: Math.max(...runs.map((r) => pick(r).maxRssKiB)) / 1024,
    runsRecordsPerSecond: runs.map((r) => rate(pick(r))),
  });
  return {
    afluente: side((r) => r.afluente),
    baseline: side((r) => r.baseline),
    ratio: median(runs.map((r) => rate(r.afluente) / rate(r.baseline))),
  };
}

/**
 * Checks the goals on the largest size, writes `bench/results/<name>.json`, and prints one line per size. RSS
 * growth is the largest size's peak over the smallest's: near 1 means memory does not grow with the records.
 */
export async function report(
  name: string,
  results: (Comparison & { records: number })[],
  goals: { ratioAtLeast: number; peakRssUnderMiB: number },
  extra: Record<string, unknown>,
): Promise<void> {
  const largest = results.at(-1);
  const smallest = results[0];
  const summary = {
    benchmark: name,
    node: process.version,
    date: new Date().toISOString(),
    ...extra,
    results,
    goals: {
      ...goals,
      ratio: largest?.ratio,
      ratioMet: (largest?.ratio ?? 0) >= goals.ratioAtLeast,
      peakRssMiB: largest?.afluente.peakRssMiB,
      peakRssMet: (largest?.afluente.peakRssMiB ?? Infinity) < goals.peakRssUnderMiB,
      rssGrowth: largest && smallest ? largest.afluente.peakRssMiB / smallest.afluente.peakRssMiB : undefined,
    },
  };
  await writeFile(`bench/results/${name}.json`, `${JSON.stringify(summary, null, 2)}\n`);
  for (const r of results) {
    console.log(
      `${r.records.toLocaleString('en')} records: afluente ${r.afluente.recordsPerSecond.toLocaleString('en')} rec/s ` +
        `(peak RSS ${r.afluente.peakRssMiB.toFixed(0)} MiB), baseline ${r.baseline.recordsPerSecond.toLocaleString('en')} rec/s ` +
        `(peak RSS ${r.baseline.peakRssMiB.toFixed(0)} MiB), ratio ${r.ratio.toFixed(2)}`,
    );
  }
  const met = (ok: boolean): string => (ok ? 'met' : 'NOT met');
  console.log(
    `goals: ratio ≥ ${goals.ratioAtLeast} ${met(summary.goals.ratioMet)}, peak RSS < ${goals.peakRssUnderMiB} MiB ${met(summary.goals.peakRssMet)}`,
  );
  console.log(`written to bench/results/${name}.json`);
}
