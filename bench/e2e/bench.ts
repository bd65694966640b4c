import { execFileSync, spawnSync } from 'node:child_process';
import { cleanupOnce } from '../cleanup.ts';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { AFLUENTE_TABLES, engineSettings, runAfluente } from './afluente.ts';
import { copyBaseline } from './copy.ts';
import { DLT_FORMATS, DLT_PYTHON, runDlt, setupDlt, stopDlt } from './dlt.ts';
import { expectedRows, type Expected } from './expected.ts';
import { dropSchemas, serverVersion } from './pg.ts';
import { ENGINES, print, summarize, type SizeRound } from './report.ts';
import {
  dropQueueKeys,
  dropStateDatabase,
  lockBenchmark,
  stopService,
  unlockBenchmark,
  writeSourcesFile,
} from './service.ts';

// End-to-end benchmark: afluente's wall time from POST /runs to COMPLETED on the demo source, on each engine and
// at each size, with its stages, against dlt doing the same work in its default and its fastest format
// (bench/e2e/dlt_pipeline.py), and afluente's load rows/s against psql `\copy` of the same rows. See
// bench/README.md for how to read it.

const DEFAULT_SIZES = [250, 10_000, 1_000_000];
const PAGE_SIZE = 1000;
/** Each side of a round gives up after this long. */
const TIMEOUT_MS = 90 * 60_000;
const DLT_TABLES = ['orders', 'orders__items', 'orders__tags'];

const { values } = parseArgs({
  args: process.argv.slice(3),
  options: {
    records: { type: 'string', default: DEFAULT_SIZES.join(',') },
    rounds: { type: 'string', default: '1' },
  },
  strict: true,
});
const sizes = values.records.split(',').map(Number);
const roundsWanted = Number(values.rounds);
if (
  !sizes.every((x) => Number.isSafeInteger(x) && x >= 1) ||
  new Set(sizes).size !== sizes.length ||
  !Number.isSafeInteger(roundsWanted) ||
  roundsWanted < 1
) {
  console.error(
    `usage: npm run bench -- e2e [--records N[,N…] (default ${DEFAULT_SIZES.join(',')})] [--rounds N (default 1)]`,
  );
  process.exit(2);
}
const isFullRun = sizes.join(',') === DEFAULT_SIZES.join(',');

const log = (line: string): void => console.log(`  ${line}`);
const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

// Everything the benchmark makes, so that a failure or Ctrl-C takes it all away again.
const made = {
  schemas: new Set<string>(),
  queuePrefixes: new Set<string>(),
  tmp: '',
  api: undefined as DemoApi | undefined,
  /** Whether this benchmark holds the lock: only then is the state database its own to drop. */
  locked: false,
};
let interrupted = false;
const cleanup = cleanupOnce(
  'e2e',
  () => {
    stopDlt();
    return [
      ['stop the service', stopService],
      ['drop the benchmark schemas', () => dropSchemas([...made.schemas])],
      ['drop the queue keys', () => Promise.all([...made.queuePrefixes].map(dropQueueKeys))],
      ['drop the state database', async () => made.locked && dropStateDatabase()],
      ['stop the demo API', async () => made.api?.close()],
      ['remove the temp folder', async () => made.tmp && rm(made.tmp, { recursive: true, force: true })],
      ['release the lock', unlockBenchmark],
    ];
  },
  () => (interrupted = true),
);

let exitCode = 1;
try {
  if (spawnSync('bash', ['scripts/ensure-services.sh'], { stdio: 'inherit' }).status !== 0)
    throw new Error('scripts/ensure-services.sh failed');
  await lockBenchmark();
  made.locked = true;
  // The local step runners run Spark and the embedded engine from the project's .venv; dlt gets a venv of its own.
  execFileSync(process.execPath, ['scripts/bootstrap.mjs', '--python'], { stdio: 'inherit' });
  setupDlt();

  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  made.tmp = await mkdtemp(join(tmpdir(), 'afluente-e2e-'));
  made.api = await startDemoApi({ records: sizes[0], pageSize: PAGE_SIZE });
  const url = `${made.api.url}/orders`;
  const sourcesFile = await writeSourcesFile(made.tmp, url);
  const head = {
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? null,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      python: execFileSync(DLT_PYTHON, ['--version'], { encoding: 'utf8' }).trim(),
      postgres: await serverVersion(),
      /** The afluente measured: the commit, `-dirty` when the work tree had changes. */
      commit: gitDescribe(),
      /** The 1, 5 and 15 minute load averages as the benchmark started: other work on the machine. */
      loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
    },
    pageSize: PAGE_SIZE,
    rounds: roundsWanted,
    settings: engineSettings(),
  };
  const expected = new Map<number, Expected>(sizes.map((records) => [records, expectedRows(records)]));
  console.log(
    `e2e: ${sizes.map((x) => x.toLocaleString('en')).join(', ')} demo records, afluente on ${ENGINES.join(' and ')}, ` +
      `dlt ${DLT_FORMATS.join(' and ')}, ${roundsWanted} round${roundsWanted > 1 ? 's' : ''}, ` +
      `${head.machine.cpus} CPUs, Node ${head.machine.node}`,
  );

  const rounds: SizeRound[] = [];
  for (const records of sizes) {
    made.api.setRecords(records);
    for (let i = 0; i < roundsWanted; i++)
      rounds.push(
        await runRound(records, i + 1, expected.get(records) as Expected, { url, sourcesFile, stamp }),
      );
  }

  const summary = summarize(rounds, expected, head);
  const file = isFullRun ? 'bench/results/e2e.json' : `bench/results/e2e-${sizes.join('-')}.json`;
  await writeFile(file, `${JSON.stringify(summary, null, 2)}\n`);
  print(summary);
  console.log(`\nwritten to ${file}`);
  const failed = rounds.some((r) => ENGINES.some((e) => r.afluente[e]?.status !== 'COMPLETED'));
  exitCode = failed ? 1 : 0;
} catch (error) {
  // After a Ctrl-C, whatever the stopped service answered is no news.
  if (!interrupted) console.error(`e2e failed: ${error instanceof Error ? error.message : String(error)}`);
} finally {
  await cleanup();
}
process.exit(exitCode);

/**
 * One round at one size: every side (dlt in each format, afluente on each engine) in turn, alternating which
 * goes first from round to round, then `\copy` of the rows afluente loaded. Drops the round's schemas after.
 */
async function runRound(
  records: number,
  round: number,
  expected: Expected,
  ctx: { url: string; sourcesFile: string; stamp: string },
): Promise<SizeRound> {
  const tag = `${ctx.stamp}_${records}_r${round}`;
  // As in bench/measure.ts: alternate which side goes first, so whatever else the machine does falls on all.
  const sides = [...DLT_FORMATS.map((f) => `dlt ${f}`), ...ENGINES];
  const order = round % 2 === 1 ? sides : sides.reverse();
  console.log(
    `${records.toLocaleString('en')} records, round ${round} of ${roundsWanted}: ${order.join(', ')}`,
  );
  const result: SizeRound = { records, round, order, loadAverage: {}, afluente: {}, dlt: {}, copy: null };
  const schemas: string[] = [];
  const schema = (name: string): string => {
    schemas.push(name);
    made.schemas.add(name);
    return name;
  };
  const common = { url: ctx.url, expected, timeoutMs: TIMEOUT_MS };
  for (const side of order) {
    result.loadAverage[side] = Math.round((loadavg()[0] ?? 0) * 100) / 100;
    const format = DLT_FORMATS.find((f) => side === `dlt ${f}`);
    if (format) {
      const dataset = schema(`bench_dlt_${tag}_${format}`);
      schema(`${dataset}_staging`);
      log(`dlt ${format}: running the pipeline`);
      const d = await runDlt({ ...common, format, dataset, pageSize: PAGE_SIZE, tmp: made.tmp });
      result.dlt[format] = d;
      log(`dlt ${format}: pipeline.run ${secs(d.wallMs)}, rows verified in ${dataset}`);
      continue;
    }
    const engine = ENGINES.find((e) => e === side);
    if (!engine) throw new Error(`no such side: ${side}`);
    const queuePrefix = `bench-e2e-${tag}-${engine}`;
    made.queuePrefixes.add(queuePrefix);
    const lakeDir = join(made.tmp, `lake-${tag}-${engine}`);
    const a = await runAfluente({
      ...common,
      engine,
      schema: schema(`bench_afluente_${tag}_${engine}`),
      queuePrefix,
      lakeDir,
      sourcesFile: ctx.sourcesFile,
      dir: made.tmp,
      log,
    });
    result.afluente[engine] = a;
    if (a.status === 'COMPLETED') log(`afluente ${engine}: ${secs(a.wallMs)}, rows verified`);
    await dropQueueKeys(queuePrefix);
    made.queuePrefixes.delete(queuePrefix);
    for (const dir of [lakeDir, `${lakeDir}-steps`]) await rm(dir, { recursive: true, force: true });
  }
  // The rows afluente loaded (embedded's, else Spark's); while neither completes, dlt's stand in.
  const loaded = ENGINES.find((e) => result.afluente[e]?.status === 'COMPLETED');
  const copySource = loaded
    ? { schema: `bench_afluente_${tag}_${loaded}`, tables: [...AFLUENTE_TABLES] }
    : { schema: `bench_dlt_${tag}_csv`, tables: DLT_TABLES };
  log(`\\copy: ${copySource.tables.join(', ')} from ${copySource.schema}`);
  result.copy = await copyBaseline(copySource, schema(`bench_copy_${tag}`), made.tmp);
  await dropSchemas(schemas);
  for (const s of schemas) made.schemas.delete(s);
  return result;
}

function gitDescribe(): string | null {
  const git = spawnSync('git', ['describe', '--always', '--dirty'], { encoding: 'utf8' });
  return git.status === 0 ? git.stdout.trim() : null;
}
