import type { StepEngine } from '../../contract/source-config.ts';
import { STAGES } from '../../contract/stages.ts';
import { median } from '../measure.ts';
import type { AfluenteMeasure } from './afluente.ts';
import type { CopyMeasure } from './copy.ts';
import type { DltFormat, DltMeasure } from './dlt.ts';
import type { Expected } from './expected.ts';

// What the e2e benchmark reports: per size, each side's median over the rounds, the ratios, and the goals, as
// JSON (bench/results/e2e.json) and on the console. See bench/README.md for how to read it.

export const ENGINES: readonly StepEngine[] = ['embedded', 'spark'];
/** The goals, each at one size; a size list without that size leaves the goal unmeasured (null). */
export const GOALS = {
  /** A small run on the embedded engine completes end to end within this long. */
  small: { records: 250, engine: 'embedded', atMostMs: 5000 },
  /** At this size, afluente on the engine `auto` picks, over the faster of dlt's two formats. */
  e2eVsDlt: { records: 1_000_000, atMost: 0.35 },
  /** At this size, the embedded run's load rows/s over `\copy`'s. */
  loadVsCopy: { records: 1_000_000, engine: 'embedded', atLeast: 0.6 },
  /** At this size, the largest peak RSS of an embedded step. */
  peakRss: { records: 1_000_000, engine: 'embedded', underMiB: 1024 },
} as const;

/** One round at one size: every side that ran. */
export interface SizeRound {
  records: number;
  round: number;
  /** The sides in the order they ran. */
  order: string[];
  /** The 1-minute load average as each side started (the side before it included): other work on the machine. */
  loadAverage: Record<string, number>;
  afluente: Partial<Record<StepEngine, AfluenteMeasure>>;
  dlt: Partial<Record<DltFormat, DltMeasure>>;
  copy: CopyMeasure | null;
}

const med = (xs: (number | null | undefined)[]): number | null => {
  const known = xs.filter((x): x is number => typeof x === 'number');
  return known.length > 0 ? median(known) : null;
};
/** num / den to 4 decimals, or null when either is unknown. */
const ratio = (num: number | null | undefined, den: number | null | undefined): number | null =>
  num != null && den != null && den > 0 ? Math.round((num / den) * 1e4) / 1e4 : null;
const isDone = (m: AfluenteMeasure | undefined): m is AfluenteMeasure => m?.status === 'COMPLETED';

function afluenteSummary(measures: AfluenteMeasure[]) {
  const done = measures.filter(isDone);
  const last = measures.at(-1);
  // Until a run completes, the figures are those of the run that did not: how far it got, and how fast.
  const m = done.length > 0 ? done : last ? [last] : [];
  const peaks = m.map((x) => x.peakRssMiB).filter((p): p is Record<string, number> => p !== null);
  const peakRssMiB = Object.fromEntries(
    [...new Set(peaks.flatMap(Object.keys))].map((job) => [job, Math.max(...peaks.map((p) => p[job] ?? 0))]),
  );
  return {
    status: last?.status ?? 'NOT RUN',
    error: last?.error ?? null,
    engine: last?.engine ?? null,
    engineReason: last?.engineReason ?? null,
    wallMs: med(m.map((x) => x.wallMs)),
    serverMs: med(m.map((x) => x.serverMs)),
    stages: Object.fromEntries(STAGES.map((s) => [s, med(m.map((x) => x.stages[s]))])),
    betweenStagesMs: med(m.map((x) => x.betweenStagesMs)),
    /** The step processes inside the transform and load stages (from their logs). */
    stepMs: Object.fromEntries(
      [...new Set(m.flatMap((x) => Object.keys(x.stepMs)))].map((job) => [
        job,
        med(m.map((x) => x.stepMs[job])),
      ]),
    ),
    rows: done.at(-1)?.verified ?? null,
    loadRowsPerS: med(m.map((x) => x.loadRowsPerS)),
    /** Each step's highest peak RSS over the rounds (embedded only). */
    peakRssMiB: peaks.length > 0 ? peakRssMiB : null,
  };
}

function dltSummary(measures: DltMeasure[]) {
  const last = measures.at(-1);
  if (!last) return null;
  return {
    version: last.dlt,
    settings: last.settings,
    wallMs: med(measures.map((d) => d.wallMs)),
    processMs: med(measures.map((d) => d.processMs)),
    steps: {
      extract: med(measures.map((d) => d.steps.extract)),
      normalize: med(measures.map((d) => d.steps.normalize)),
      load: med(measures.map((d) => d.steps.load)),
    },
    rows: last.rows,
  };
}

/** The faster of dlt's formats in one round, by pipeline.run time. */
function fasterDlt(r: SizeRound): DltMeasure | undefined {
  return Object.values(r.dlt).reduce<DltMeasure | undefined>(
    (best, d) => (!best || d.wallMs < best.wallMs ? d : best),
    undefined,
  );
}

/** One size over its rounds: medians of each side, and medians of the per-round ratios. */
function sizeSummary(rounds: SizeRound[], expected: Expected) {
  const records = rounds[0]?.records ?? 0;
  const afluente = Object.fromEntries(
    ENGINES.map((e) => [e, afluenteSummary(rounds.flatMap((r) => r.afluente[e] ?? []))]),
  ) as Record<StepEngine, ReturnType<typeof afluenteSummary>>;
  const dlt = {
    insert_values: dltSummary(rounds.flatMap((r) => r.dlt.insert_values ?? [])),
    csv: dltSummary(rounds.flatMap((r) => r.dlt.csv ?? [])),
  };
  const fasterFormat =
    (dlt.csv?.wallMs ?? Infinity) < (dlt.insert_values?.wallMs ?? Infinity) ? 'csv' : 'insert_values';
  // What `auto` picks at this size: the service's rule on the run's validated bytes (the same on both engines).
  const auto =
    rounds.flatMap((r) => ENGINES.map((e) => r.afluente[e]?.auto ?? null)).find((a) => a !== null) ?? null;
  const perRound = (f: (r: SizeRound) => number | null) => med(rounds.map(f));
  const wall = (r: SizeRound, e: StepEngine | undefined) => {
    const m = e ? r.afluente[e] : undefined;
    return isDone(m) ? m.wallMs : null;
  };
  const copies = rounds.map((r) => r.copy).filter((c): c is CopyMeasure => c !== null);
  return {
    records,
    expectedRows: expected,
    afluente,
    auto,
    dlt: { ...dlt, faster: fasterFormat },
    copy: copies.length
      ? {
          from: copies.at(-1)?.from ?? null,
          tables: copies.at(-1)?.tables ?? null,
          rows: copies.at(-1)?.rows ?? null,
          ms: med(copies.map((c) => c.ms)),
          rowsPerS: med(copies.map((c) => c.rowsPerS)),
        }
      : null,
    ratios: {
      /** Embedded wall time over Spark's. */
      embeddedVsSpark: perRound((r) => ratio(wall(r, 'embedded'), wall(r, 'spark'))),
      /** Each engine's wall time over the faster dlt format's (per round). */
      embeddedVsDlt: perRound((r) => ratio(wall(r, 'embedded'), fasterDlt(r)?.wallMs)),
      sparkVsDlt: perRound((r) => ratio(wall(r, 'spark'), fasterDlt(r)?.wallMs)),
      /** The engine `auto` picks, over the faster dlt. */
      autoVsDlt: perRound((r) => ratio(wall(r, auto?.engine), fasterDlt(r)?.wallMs)),
      /** Each engine's load rows/s over `\copy`'s rows/s. */
      loadVsCopy: Object.fromEntries(
        ENGINES.map((e) => [
          e,
          perRound((r) => {
            const m = r.afluente[e];
            return isDone(m) ? ratio(m.loadRowsPerS, r.copy?.rowsPerS) : null;
          }),
        ]),
      ) as Record<StepEngine, number | null>,
    },
  };
}
type SizeSummary = ReturnType<typeof sizeSummary>;

function goals(sizes: SizeSummary[]) {
  const at = (records: number) => sizes.find((s) => s.records === records);
  const check = (value: number | null | undefined, ok: (v: number) => boolean) => ({
    value: value ?? null,
    // null: not measured (the size was not in the list, or its run did not complete).
    met: value == null ? null : ok(value),
  });
  const small = at(GOALS.small.records)?.afluente[GOALS.small.engine];
  const large = at(GOALS.e2eVsDlt.records);
  const peaks = at(GOALS.peakRss.records)?.afluente[GOALS.peakRss.engine].peakRssMiB;
  return {
    small: {
      ...GOALS.small,
      ...check(small?.status === 'COMPLETED' ? small.wallMs : null, (v) => v <= GOALS.small.atMostMs),
    },
    e2eVsDlt: {
      ...GOALS.e2eVsDlt,
      engine: large?.auto?.engine ?? null,
      dlt: large?.dlt.faster ?? null,
      ...check(large?.ratios.autoVsDlt, (v) => v <= GOALS.e2eVsDlt.atMost),
    },
    loadVsCopy: {
      ...GOALS.loadVsCopy,
      ...check(
        at(GOALS.loadVsCopy.records)?.ratios.loadVsCopy[GOALS.loadVsCopy.engine],
        (v) => v >= GOALS.loadVsCopy.atLeast,
      ),
    },
    peakRss: {
      ...GOALS.peakRss,
      from: 'the steps’ logs (`afluente_embedded: <job> peak RSS <n> MiB`, getrusage ru_maxrss)',
      ...check(peaks ? Math.max(...Object.values(peaks)) : null, (v) => v < GOALS.peakRss.underMiB),
    },
  };
}

export function summarize(
  rounds: SizeRound[],
  expected: Map<number, Expected>,
  head: Record<string, unknown>,
) {
  const sizes = [...expected].map(([records, e]) =>
    sizeSummary(
      rounds.filter((r) => r.records === records),
      e,
    ),
  );
  return { benchmark: 'e2e', ...head, sizes, goals: goals(sizes), runs: rounds };
}
export type Summary = ReturnType<typeof summarize>;

const secs = (ms: number | null | undefined): string => (ms == null ? '-' : `${(ms / 1000).toFixed(1)} s`);
const n = (x: number | null | undefined): string => (x == null ? '-' : x.toLocaleString('en'));
const r2 = (x: number | null | undefined): string => (x == null ? 'n/a' : x.toFixed(2));
const met = (ok: boolean | null): string => (ok === null ? 'not measured' : ok ? 'met' : 'NOT met');

/** Prints rows of cells as columns, the first left-aligned, the others right-aligned. */
function table(rows: string[][]): void {
  const widths = rows.reduce<number[]>((w, row) => row.map((c, i) => Math.max(w[i] ?? 0, c.length)), []);
  for (const row of rows)
    console.log(
      row.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  '),
    );
}

/** The afluente side of one size: a column per engine. */
function printAfluente(a: SizeSummary['afluente']): void {
  const each = (f: (x: (typeof a)[StepEngine]) => string) => ENGINES.map((engine) => f(a[engine]));
  const rows: string[][] = [['afluente', ...ENGINES]];
  rows.push(['  POST /runs → end', ...each((x) => `${x.status} ${secs(x.wallMs)}`)]);
  for (const stage of STAGES) {
    rows.push([`    ${stage}`, ...each((x) => secs(x.stages[stage]))]);
    const job = stage === 'transform' ? 'split_tables' : stage === 'load' ? 'load_warehouse' : null;
    if (job) rows.push([`      ${job} process`, ...each((x) => secs(x.stepMs[job]))]);
  }
  rows.push(['    between stages', ...each((x) => secs(x.betweenStagesMs))]);
  rows.push(['  load rows/s', ...each((x) => n(x.loadRowsPerS))]);
  for (const job of ['split_tables', 'load_warehouse'])
    rows.push([
      `  ${job} peak RSS`,
      ...each((x) => (x.peakRssMiB?.[job] ? `${x.peakRssMiB[job]} MiB` : '-')),
    ]);
  table(rows);
}

export function print(s: Summary): void {
  for (const size of s.sizes) {
    const { afluente: a, dlt, ratios: q } = size;
    const e = size.expectedRows;
    console.log(`\n${n(size.records)} records (${n(e.items)} items, ${n(e.tags)} tags)`);
    printAfluente(a);
    const rows: string[][] = [];
    for (const format of ['insert_values', 'csv'] as const) {
      const d = dlt[format];
      if (d)
        rows.push([
          `dlt ${d.version} ${format}`,
          secs(d.wallMs),
          `extract ${secs(d.steps.extract)}, normalize ${secs(d.steps.normalize)}, load ${secs(d.steps.load)}`,
        ]);
    }
    if (size.copy)
      rows.push([
        '\\copy',
        `${n(size.copy.rowsPerS)} rows/s`,
        `${n(size.copy.rows)} rows in ${secs(size.copy.ms)}`,
      ]);
    table(rows);
    console.log(
      `ratios: embedded/spark ${r2(q.embeddedVsSpark)}; over dlt ${dlt.faster} (the faster): embedded ` +
        `${r2(q.embeddedVsDlt)}, spark ${r2(q.sparkVsDlt)}; load/\\copy: embedded ${r2(q.loadVsCopy.embedded)}, ` +
        `spark ${r2(q.loadVsCopy.spark)}`,
    );
    if (size.auto) console.log(`auto picks ${size.auto.engine}: ${size.auto.reason}`);
    for (const engine of ENGINES) {
      const { status, error } = a[engine];
      if (error) console.log(`${engine}: ${status} at ${error.stage}: ${error.message}`);
    }
  }
  const g = s.goals;
  console.log('\ngoals');
  table([
    [
      `  ${n(g.small.records)} records on embedded ≤ ${secs(g.small.atMostMs)}`,
      secs(g.small.value),
      met(g.small.met),
    ],
    [
      `  ${n(g.e2eVsDlt.records)}: afluente (${g.e2eVsDlt.engine ?? 'auto'}) / dlt (${g.e2eVsDlt.dlt ?? 'faster'}) ≤ ${g.e2eVsDlt.atMost}`,
      r2(g.e2eVsDlt.value),
      met(g.e2eVsDlt.met),
    ],
    [
      `  ${n(g.loadVsCopy.records)}: load rows/s (embedded) / \\copy ≥ ${g.loadVsCopy.atLeast}`,
      r2(g.loadVsCopy.value),
      met(g.loadVsCopy.met),
    ],
    [
      `  ${n(g.peakRss.records)}: embedded steps' peak RSS < ${g.peakRss.underMiB} MiB`,
      g.peakRss.value === null ? '-' : `${g.peakRss.value} MiB`,
      met(g.peakRss.met),
    ],
  ]);
}
