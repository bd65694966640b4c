import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { median } from '../measure.ts';
import {
  AFLUENTE_TABLES,
  dropQueueKeys,
  dropStateDatabase,
  runAfluente,
  stopService,
  writeSourcesFile,
  type AfluenteMeasure,
} from './afluente.ts';
import { copyBaseline, type CopyMeasure } from './copy.ts';
import { DLT_PYTHON, runDlt, setupDlt, stopDlt, type DltMeasure } from './dlt.ts';
import { expectedRows } from './expected.ts';
import { dropSchemas, serverVersion } from './pg.ts';

// End-to-end benchmark: afluente's wall time from POST /runs to COMPLETED on the demo source, with its stages,
// against dlt doing the same work (bench/e2e/dlt_pipeline.py), and afluente's load rows/s against psql `\copy`
// of the same rows. See bench/README.md for how to read it.

const DEFAULT_RECORDS = 1_000_000;
const PAGE_SIZE = 1000;
/** Each side of a round gives up after this long. */
const TIMEOUT_MS = 90 * 60_000;
const GOALS = { e2eVsDltAtMost: 0.5, loadVsCopyAtLeast: 0.5 };
const DLT_TABLES = ['orders', 'orders__items', 'orders__tags'];

const { values } = parseArgs({
  args: process.argv.slice(3),
  options: {
    records: { type: 'string', default: String(DEFAULT_RECORDS) },
    rounds: { type: 'string', default: '1' },
  },
  strict: true,
});
const records = Number(values.records);
const roundsWanted = Number(values.rounds);
if (
  !Number.isSafeInteger(records) ||
  records < 1 ||
  !Number.isSafeInteger(roundsWanted) ||
  roundsWanted < 1
) {
  console.error('usage: npm run bench -- e2e [--records N (default 1000000)] [--rounds N (default 1)]');
  process.exit(2);
}

const log = (line: string): void => console.log(`  ${line}`);
const secs = (ms: number | null | undefined): string => (ms == null ? '-' : `${(ms / 1000).toFixed(1)} s`);
const n = (x: number | null | undefined): string => (x == null ? '-' : x.toLocaleString('en'));

// Everything the benchmark makes, so that a failure or Ctrl-C takes it all away again.
const made = {
  schemas: new Set<string>(),
  queuePrefixes: new Set<string>(),
  tmp: '',
  api: undefined as DemoApi | undefined,
};
let cleaning: Promise<void> | undefined;
let interrupted = false;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    const steps: [string, () => Promise<unknown>][] = [
      ['stop the service', stopService],
      ['drop the benchmark schemas', () => dropSchemas([...made.schemas])],
      ['drop the queue keys', () => Promise.all([...made.queuePrefixes].map(dropQueueKeys))],
      ['drop the state database', dropStateDatabase],
      ['stop the demo API', async () => made.api?.close()],
      ['remove the temp folder', async () => made.tmp && rm(made.tmp, { recursive: true, force: true })],
    ];
    stopDlt();
    for (const [what, step] of steps) {
      try {
        await step();
      } catch (error) {
        console.error(`e2e: could not ${what}: ${(error as Error).message}`);
      }
    }
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    console.error(`\ne2e: ${signal}, cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

interface Round {
  round: number;
  first: 'afluente' | 'dlt';
  afluente: AfluenteMeasure;
  dlt: DltMeasure;
  copy: CopyMeasure;
}

let exitCode = 1;
try {
  if (spawnSync('bash', ['scripts/ensure-services.sh'], { stdio: 'inherit' }).status !== 0)
    throw new Error('scripts/ensure-services.sh failed');
  // The local step runner runs Spark from the project's .venv; dlt gets a venv of its own.
  execFileSync(process.execPath, ['scripts/bootstrap.mjs', '--python'], { stdio: 'inherit' });
  setupDlt();

  const expected = expectedRows(records);
  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  made.tmp = await mkdtemp(join(tmpdir(), 'afluente-e2e-'));
  made.api = await startDemoApi({ records, pageSize: PAGE_SIZE });
  const url = `${made.api.url}/orders`;
  const sourcesFile = await writeSourcesFile(made.tmp, url);
  const machine = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? null,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    python: execFileSync(DLT_PYTHON, ['--version'], { encoding: 'utf8' }).trim(),
    postgres: await serverVersion(),
    /** The afluente measured: the commit, `-dirty` when the work tree had changes. */
    commit: gitDescribe(),
  };
  console.log(
    `e2e: ${n(records)} demo records (${n(expected.items)} items, ${n(expected.tags)} tags), ` +
      `${roundsWanted} round${roundsWanted > 1 ? 's' : ''}, ${machine.cpus} CPUs, Node ${machine.node}`,
  );

  const rounds: Round[] = [];
  for (let i = 0; i < roundsWanted; i++) {
    const tag = `${stamp}_r${i + 1}`;
    const names = {
      afluente: `bench_afluente_${tag}`,
      dlt: `bench_dlt_${tag}`,
      copy: `bench_copy_${tag}`,
      queuePrefix: `bench-e2e-${tag}`,
    };
    const roundSchemas = [names.afluente, names.dlt, `${names.dlt}_staging`, names.copy];
    for (const s of roundSchemas) made.schemas.add(s);
    made.queuePrefixes.add(names.queuePrefix);
    // As in bench/measure.ts: alternate which side goes first, so whatever else the machine does falls on both.
    const order = i % 2 === 0 ? (['dlt', 'afluente'] as const) : (['afluente', 'dlt'] as const);
    console.log(`round ${i + 1} of ${roundsWanted}: ${order.join(', then ')}`);
    let afluente: AfluenteMeasure | undefined;
    let dlt: DltMeasure | undefined;
    for (const side of order) {
      if (side === 'dlt') {
        log('dlt: running the pipeline');
        dlt = await runDlt(url, names.dlt, PAGE_SIZE, expected, TIMEOUT_MS, made.tmp);
        log(`dlt: pipeline.run ${secs(dlt.wallMs)}, rows verified in ${names.dlt}`);
      } else {
        afluente = await runAfluente({
          url,
          schema: names.afluente,
          queuePrefix: names.queuePrefix,
          lakeDir: join(made.tmp, `lake-r${i + 1}`),
          sourcesFile,
          dir: made.tmp,
          expected,
          timeoutMs: TIMEOUT_MS,
          log,
        });
        if (afluente.status === 'COMPLETED') log(`afluente: rows verified in ${names.afluente}`);
      }
    }
    if (!afluente || !dlt) throw new Error('a side did not run');
    // The same rows afluente loaded; while afluente cannot complete, dlt's rows stand in so \copy is measured.
    const copySource =
      afluente.status === 'COMPLETED'
        ? { schema: names.afluente, tables: [...AFLUENTE_TABLES] }
        : { schema: names.dlt, tables: DLT_TABLES };
    log(`\\copy: ${copySource.tables.join(', ')} from ${copySource.schema}`);
    const copy = await copyBaseline(copySource, names.copy, made.tmp);
    rounds.push({ round: i + 1, first: order[0], afluente, dlt, copy });

    await dropSchemas(roundSchemas);
    for (const s of roundSchemas) made.schemas.delete(s);
    await dropQueueKeys(names.queuePrefix);
    made.queuePrefixes.delete(names.queuePrefix);
    for (const dir of [`lake-r${i + 1}`, `lake-r${i + 1}-spark`])
      await rm(join(made.tmp, dir), { recursive: true, force: true });
    if (afluente.status !== 'COMPLETED') break;
  }

  const summary = summarize(rounds, records, expected, machine);
  const file = records === DEFAULT_RECORDS ? 'bench/results/e2e.json' : `bench/results/e2e-${records}.json`;
  await writeFile(file, `${JSON.stringify(summary, null, 2)}\n`);
  print(summary);
  console.log(`written to ${file}`);
  exitCode = summary.afluente.status === 'COMPLETED' ? 0 : 1;
} catch (error) {
  // After a Ctrl-C, whatever the stopped service answered is no news.
  if (!interrupted) console.error(`e2e failed: ${error instanceof Error ? error.message : String(error)}`);
} finally {
  await cleanup();
}
process.exit(exitCode);

function gitDescribe(): string | null {
  const git = spawnSync('git', ['describe', '--always', '--dirty'], { encoding: 'utf8' });
  return git.status === 0 ? git.stdout.trim() : null;
}

function med(xs: (number | null | undefined)[]): number | null {
  const known = xs.filter((x): x is number => typeof x === 'number');
  return known.length > 0 ? median(known) : null;
}

function summarize(
  rounds: Round[],
  records: number,
  expected: ReturnType<typeof expectedRows>,
  machine: Record<string, unknown>,
) {
  const last = rounds.at(-1);
  if (!last) throw new Error('no round ran');
  const completed = rounds.filter((r) => r.afluente.status === 'COMPLETED');
  // Until a run completes, the figures are those of the run that did not: how far it got, and how fast.
  const a = (completed.length > 0 ? completed : [last]).map((r) => r.afluente);
  const ratio = (num: number | null, den: number | null): number | null =>
    num !== null && den !== null && den > 0 ? num / den : null;
  const e2eVsDlt = med(completed.map((r) => ratio(r.afluente.wallMs, r.dlt.wallMs)));
  const loadVsCopy = med(completed.map((r) => ratio(r.afluente.loadRowsPerS, r.copy.rowsPerS)));
  return {
    benchmark: 'e2e',
    date: new Date().toISOString(),
    machine,
    records,
    pageSize: PAGE_SIZE,
    rounds: rounds.length,
    expectedRows: { orders: expected.orders, items: expected.items, tags: expected.tags },
    afluente: {
      status: last.afluente.status,
      error: last.afluente.error,
      wallMs: med(a.map((m) => m.wallMs)),
      serverMs: med(a.map((m) => m.serverMs)),
      stages: {
        ingest: med(a.map((m) => m.stages.ingest)),
        validate: med(a.map((m) => m.stages.validate)),
        transform: med(a.map((m) => m.stages.transform)),
        load: med(a.map((m) => m.stages.load)),
      },
      betweenStagesMs: med(a.map((m) => m.betweenStagesMs)),
      rows: completed.at(-1)?.afluente.verified ?? null,
      loadRowsPerS: med(a.map((m) => m.loadRowsPerS)),
    },
    dlt: {
      version: last.dlt.dlt,
      settings: last.dlt.settings,
      writeDisposition: 'merge',
      wallMs: med(rounds.map((r) => r.dlt.wallMs)),
      processMs: med(rounds.map((r) => r.dlt.processMs)),
      steps: {
        extract: med(rounds.map((r) => r.dlt.steps.extract)),
        normalize: med(rounds.map((r) => r.dlt.steps.normalize)),
        load: med(rounds.map((r) => r.dlt.steps.load)),
      },
      rows: last.dlt.rows,
    },
    copy: {
      from: completed.length > 0 ? 'afluente' : 'dlt (afluente did not load)',
      tables: last.copy.tables,
      rows: last.copy.rows,
      ms: med(rounds.map((r) => r.copy.ms)),
      rowsPerS: med(rounds.map((r) => r.copy.rowsPerS)),
    },
    ratios: { e2eVsDlt, loadVsCopy },
    goals: {
      ...GOALS,
      // null: not measured (afluente did not complete).
      e2eMet: e2eVsDlt === null ? null : e2eVsDlt <= GOALS.e2eVsDltAtMost,
      loadMet: loadVsCopy === null ? null : loadVsCopy >= GOALS.loadVsCopyAtLeast,
    },
    runs: rounds,
  };
}

function print(s: ReturnType<typeof summarize>): void {
  const rows: [string, string][] = [];
  const a = s.afluente;
  if (a.status === 'COMPLETED') {
    rows.push(['afluente: POST /runs → COMPLETED', secs(a.wallMs)]);
    for (const stage of ['ingest', 'validate', 'transform', 'load'] as const)
      rows.push([`  ${stage}`, secs(a.stages[stage])]);
    rows.push(['  between stages', secs(a.betweenStagesMs)]);
    const loaded = Object.values(a.rows ?? {}).reduce((x, y) => x + y, 0);
    rows.push([
      '  rows loaded',
      `${n(loaded)} (${Object.entries(a.rows ?? {})
        .map(([t, c]) => `${t} ${n(c)}`)
        .join(', ')})`,
    ]);
    rows.push(['  load rows/s', n(a.loadRowsPerS)]);
  } else {
    rows.push([`afluente: POST /runs → ${a.status}`, secs(a.wallMs)]);
    for (const stage of ['ingest', 'validate', 'transform', 'load'] as const)
      if (a.stages[stage] !== null) rows.push([`  ${stage}`, secs(a.stages[stage])]);
    rows.push([`  ${a.status} at ${a.error?.stage ?? '?'}`, a.error?.message ?? '']);
  }
  const d = s.dlt;
  rows.push([`dlt ${d.version}: pipeline.run`, `${secs(d.wallMs)} (process ${secs(d.processMs)})`]);
  for (const step of ['extract', 'normalize', 'load'] as const) rows.push([`  ${step}`, secs(d.steps[step])]);
  rows.push([
    '  rows',
    Object.entries(d.rows)
      .map(([t, c]) => `${t} ${n(c)}`)
      .join(', '),
  ]);
  rows.push([
    `\\copy (rows from ${s.copy.from})`,
    `${n(s.copy.rows)} rows in ${secs(s.copy.ms)}, ${n(s.copy.rowsPerS)} rows/s`,
  ]);
  const met = (ok: boolean | null): string => (ok === null ? 'not measured' : ok ? 'met' : 'NOT met');
  const r = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(2));
  rows.push([
    'afluente time / dlt time',
    `${r(s.ratios.e2eVsDlt)}  (goal ≤ ${s.goals.e2eVsDltAtMost}: ${met(s.goals.e2eMet)})`,
  ]);
  rows.push([
    'afluente load rows/s / \\copy rows/s',
    `${r(s.ratios.loadVsCopy)}  (goal ≥ ${s.goals.loadVsCopyAtLeast}: ${met(s.goals.loadMet)})`,
  ]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  console.log('');
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}${v}`);
}
