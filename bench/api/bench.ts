import autocannon from 'autocannon';
import { cleanupOnce } from '../cleanup.ts';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { median } from '../measure.ts';
import {
  dropQueueKeys,
  dropStateDatabase,
  freePort,
  lockBenchmark,
  MYSQL_DATABASE,
  MYSQL_SERVER,
  REDIS_URL,
  startService,
  stopService,
  unlockBenchmark,
} from '../e2e/service.ts';
import { seed, type Seeded } from './seed.ts';

// API benchmark: GET /runs/:id and GET /runs on the service (`node service/main.ts`, the api role) over a seeded
// state, against a bare Fastify route that runs one mysql2 query on the same database (baseline-server.ts), under
// the same load from autocannon. See bench/README.md for how to read it.

/** A few hundred runs of one source, as after a couple of weeks of hourly runs; five rounds of 6 s per target. */
const DEFAULTS = { runs: 300, rounds: 5, durationS: 6, connections: 10 };
const { values } = parseArgs({
  args: process.argv.slice(3),
  options: {
    runs: { type: 'string', default: String(DEFAULTS.runs) },
    rounds: { type: 'string', default: String(DEFAULTS.rounds) },
    duration: { type: 'string', default: String(DEFAULTS.durationS) },
    connections: { type: 'string', default: String(DEFAULTS.connections) },
  },
  strict: true,
});
const settings = {
  runs: Number(values.runs),
  rounds: Number(values.rounds),
  durationS: Number(values.duration),
  connections: Number(values.connections),
  /** Before the rounds, each target gets this long unmeasured, so JIT and pools are warm on every side. */
  warmupS: 3,
};
if (!Object.values(settings).every((x) => Number.isSafeInteger(x) && x >= 1)) {
  console.error(
    `usage: npm run bench -- api [--runs N (${DEFAULTS.runs})] [--rounds N (${DEFAULTS.rounds})] ` +
      `[--duration S (${DEFAULTS.durationS})] [--connections N (${DEFAULTS.connections})]`,
  );
  process.exit(2);
}
/** Only a run with the default settings replaces bench/results/api.json; git ignores the others' files. */
const resultsFile =
  settings.runs === DEFAULTS.runs &&
  settings.rounds === DEFAULTS.rounds &&
  settings.durationS === DEFAULTS.durationS &&
  settings.connections === DEFAULTS.connections
    ? 'bench/results/api.json'
    : `bench/results/api-${settings.runs}runs-${settings.rounds}x${settings.durationS}s-${settings.connections}c.json`;
/** GET /runs/:id and GET /runs must reach this share of the baseline's requests per second. */
const GOAL_RATIO = 0.3;

const TARGETS = ['baseline', 'GET /runs/:id', 'GET /runs'] as const;
type Target = (typeof TARGETS)[number];

/** Where a target is served, by which process, and its requests. */
interface Server {
  base: string;
  pid: number | undefined;
  path: (i: number) => string;
  headers: Record<string, string>;
}

interface Sample {
  requestsPerS: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  /** The server process's CPU time (user + system) per request, in µs: what a request costs it, less swayed
   * than requests/s by whatever else runs on the machine. Null where /proc is missing. */
  cpuUsPerRequest: number | null;
  loadAverage: number;
}

/** A process's user + system CPU time so far, in µs, from /proc/<pid>/stat (Linux); null elsewhere. */
function cpuTimeUs(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the command name (which may hold spaces, hence the last ')'): utime is the 12th, stime the 13th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return (ticks / CLOCK_TICKS) * 1e6;
  } catch {
    return null;
  }
}
/** Linux's USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every mainstream architecture. */
const CLOCK_TICKS = 100;

const made = { tmp: '', queuePrefix: '', locked: false, baseline: undefined as ChildProcess | undefined };
const cleanup = cleanupOnce('api', () => [
  ['stop the baseline server', stopBaseline],
  ['stop the service', stopService],
  ['drop the queue keys', async () => made.queuePrefix && dropQueueKeys(made.queuePrefix)],
  ['drop the state database', async () => made.locked && dropStateDatabase()],
  ['remove the temp folder', async () => made.tmp && rm(made.tmp, { recursive: true, force: true })],
  ['release the lock', unlockBenchmark],
]);

let exitCode = 1;
try {
  if (spawnSync('bash', ['scripts/ensure-services.sh'], { stdio: 'inherit' }).status !== 0)
    throw new Error('scripts/ensure-services.sh failed');
  // The same lock and state database as the e2e benchmark: two benchmarks at once would measure each other.
  await lockBenchmark();
  made.locked = true;
  made.tmp = await mkdtemp(join(tmpdir(), 'afluente-api-'));
  made.queuePrefix = `bench-api-${Date.now()}`;
  const port = await freePort();
  const token = `bench-${randomBytes(16).toString('hex')}`;
  const mysqlUrl = `${MYSQL_SERVER}/${MYSQL_DATABASE}`;
  // The service as it is deployed for the API (AFLUENTE_ROLES=api), at its default log level: what a request
  // costs there, logging included, is what is measured. Its own process, as the baseline's: on 2 cores, a server
  // sharing the event loop with autocannon would be slowed by the load generator and could not be told apart.
  const service = await startService(
    {
      AFLUENTE_ROLES: 'api',
      AFLUENTE_PORT: String(port),
      AFLUENTE_API_TOKENS: `bench=${token}`,
      AFLUENTE_MYSQL_URL: mysqlUrl,
      AFLUENTE_REDIS_URL: REDIS_URL,
      AFLUENTE_QUEUE_PREFIX: made.queuePrefix,
      AFLUENTE_LAKE_URI: `file://${join(made.tmp, 'lake')}`,
      // The limit still runs (its Redis round trip is part of every request), but must not refuse the load.
      AFLUENTE_RATE_LIMIT_MAX: '1000000000',
    },
    {
      port,
      logFile: join(made.tmp, 'service.log'),
      tempDir: made.tmp,
      queuePrefix: made.queuePrefix,
    },
  );
  const seeded = await seed(mysqlUrl, settings.runs);
  const baseline = await startBaseline(mysqlUrl);
  await check(service.base, baseline, token, seeded);

  const head = {
    benchmark: 'api',
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model ?? null,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
      commit: gitDescribe(),
      loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
    },
    settings: { ...settings, goalRatio: GOAL_RATIO },
    seeded: {
      runs: seeded.runIds.length,
      jobs: sum(seeded.jobsPerRun),
      files: sum(seeded.filesPerRun),
    },
  };
  console.log(
    `api: ${head.seeded.runs} runs seeded (${head.seeded.jobs} jobs, ${head.seeded.files} lake files); ` +
      `${settings.rounds} rounds of ${settings.durationS} s per target, ${settings.connections} connections, ` +
      `${head.machine.cpus} CPUs, Node ${head.machine.node}`,
  );

  const auth = { authorization: `Bearer ${token}` };
  const targets: Record<Target, Server> = {
    baseline: { base: baseline, pid: made.baseline?.pid, path: (i) => runPath(seeded, i), headers: {} },
    'GET /runs/:id': { base: service.base, pid: service.pid, path: (i) => runPath(seeded, i), headers: auth },
    'GET /runs': { base: service.base, pid: service.pid, path: () => '/runs', headers: auth },
  };
  for (const target of TARGETS) await load(target, targets[target], settings.warmupS);

  const rounds: Record<Target, Sample>[] = [];
  for (let r = 0; r < settings.rounds; r++) {
    // As in the other benchmarks: rotate the order, so whatever else the machine does falls on every target.
    const order = TARGETS.map((_, k) => TARGETS[(k + r) % TARGETS.length] as Target);
    const round: Partial<Record<Target, Sample>> = {};
    for (const target of order) round[target] = await load(target, targets[target], settings.durationS);
    rounds.push(round as Record<Target, Sample>);
    console.log(
      `  round ${r + 1}: ` +
        order
          .map(
            (t) =>
              `${t} ${round[t]?.requestsPerS} req/s (p99 ${round[t]?.p99Ms} ms, ${round[t]?.cpuUsPerRequest} µs CPU)`,
          )
          .join(', '),
    );
  }

  const figures = (target: Target) => ({
    requestsPerS: median(rounds.map((r) => r[target].requestsPerS)),
    p50Ms: median(rounds.map((r) => r[target].p50Ms)),
    p99Ms: median(rounds.map((r) => r[target].p99Ms)),
    cpuUsPerRequest: rounds.every((r) => r[target].cpuUsPerRequest !== null)
      ? median(rounds.map((r) => r[target].cpuUsPerRequest ?? 0))
      : null,
    /** Each round's requests per second over the baseline's in the same round. */
    ratio: round2(median(rounds.map((r) => r[target].requestsPerS / r.baseline.requestsPerS))),
  });
  const routes = { 'GET /runs/:id': figures('GET /runs/:id'), 'GET /runs': figures('GET /runs') };
  const summary = {
    ...head,
    baseline: { ...figures('baseline'), ratio: undefined },
    routes,
    goals: Object.fromEntries(
      Object.entries(routes).map(([route, f]) => [route, { ratio: f.ratio, met: f.ratio >= GOAL_RATIO }]),
    ),
    rounds,
  };
  await writeFile(resultsFile, `${JSON.stringify(summary, null, 2)}\n`);
  const b = summary.baseline;
  console.log(`baseline (bare Fastify + one mysql2 query): ${b.requestsPerS} req/s, p99 ${b.p99Ms} ms`);
  for (const [route, f] of Object.entries(routes))
    console.log(
      `${route}: ${f.requestsPerS} req/s, p99 ${f.p99Ms} ms, ratio ${f.ratio} ` +
        `(goal ≥ ${GOAL_RATIO}: ${f.ratio >= GOAL_RATIO ? 'met' : 'NOT met'})`,
    );
  console.log(`written to ${resultsFile}`);
  exitCode = Object.values(summary.goals).every((g) => g.met) ? 0 : 1;
} catch (error) {
  console.error(`api failed: ${error instanceof Error ? error.message : String(error)}`);
} finally {
  await cleanup();
}
process.exit(exitCode);

/** The i-th request's run: every seeded run in turn, so no one row stays hot in any cache of afluente's. */
function runPath(seeded: Seeded, i: number): string {
  return `/runs/${seeded.runIds[i % seeded.runIds.length]}`;
}

/**
 * Loads one target for `seconds` with autocannon and returns its figures. Any answer but a 200, an error or a
 * timeout fails the benchmark: a 429 or a 500 is fast, and would count as throughput.
 */
async function load(target: Target, { base, pid, path, headers }: Server, seconds: number): Promise<Sample> {
  const loadAverage = Math.round((loadavg()[0] ?? 0) * 100) / 100;
  const cpuBefore = cpuTimeUs(pid);
  let i = 0;
  const result = await autocannon({
    url: base,
    connections: settings.connections,
    duration: seconds,
    headers,
    requests: [{ method: 'GET', setupRequest: (request) => ({ ...request, path: path(i++) }) }],
  });
  if (result.non2xx > 0 || result.errors > 0 || result.timeouts > 0)
    throw new Error(
      `${target}: ${result.non2xx} answers were not 2xx, ${result.errors} errors, ${result.timeouts} timeouts ` +
        `(status codes ${JSON.stringify(result.statusCodeStats)})`,
    );
  const cpuAfter = cpuTimeUs(pid);
  return {
    requestsPerS: Math.round(result.requests.average),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    requests: result.requests.total,
    cpuUsPerRequest:
      cpuBefore === null || cpuAfter === null || result.requests.total === 0
        ? null
        : Math.round((cpuAfter - cpuBefore) / result.requests.total),
    loadAverage,
  };
}

/** Starts baseline-server.ts in its own process and returns its URL once it listens. */
async function startBaseline(mysqlUrl: string): Promise<string> {
  const child = spawn(process.execPath, ['bench/api/baseline-server.ts', mysqlUrl], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  made.baseline = child;
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    const port = /^listening (\d+)$/.exec(line)?.[1];
    if (port) return `http://127.0.0.1:${port}`;
  }
  throw new Error(`the baseline server exited before it listened (${child.exitCode})`);
}

async function stopBaseline(): Promise<void> {
  const child = made.baseline;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/** Each side answers what it should before it is measured: the seeded runs, whole, from the service. */
async function check(service: string, baseline: string, token: string, seeded: Seeded): Promise<void> {
  const get = async <T>(url: string, headers: Record<string, string> = {}): Promise<T> => {
    const res = await fetch(url, { headers });
    if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as T;
  };
  const auth = { authorization: `Bearer ${token}` };
  for (const id of [seeded.runIds[0], seeded.runIds.at(-1)] as number[]) {
    const run = await get<{ id: number; jobs: unknown[]; files: unknown[] }>(`${service}/runs/${id}`, auth);
    if (
      run.id !== id ||
      run.jobs.length !== seeded.jobsPerRun.get(id) ||
      run.files.length !== seeded.filesPerRun.get(id)
    )
      throw new Error(
        `GET /runs/${id} shows ${run.jobs.length} jobs and ${run.files.length} files; ` +
          `${seeded.jobsPerRun.get(id)} and ${seeded.filesPerRun.get(id)} were seeded`,
      );
    const row = await get<{ id: number }>(`${baseline}/runs/${id}`);
    if (row.id !== id) throw new Error(`the baseline answered run ${row.id} for ${id}`);
  }
  const page = await get<{ items: { id: number }[] }>(`${service}/runs`, auth);
  const newest = [...seeded.runIds].sort((a, b) => b - a).slice(0, 20);
  if (page.items.map((r) => r.id).join() !== newest.join())
    throw new Error(`GET /runs listed ${page.items.map((r) => r.id).join()}, not the 20 newest runs`);
}

function sum(counts: Map<number, number>): number {
  return [...counts.values()].reduce((a, b) => a + b, 0);
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function gitDescribe(): string | null {
  const git = spawnSync('git', ['describe', '--always', '--dirty'], { encoding: 'utf8' });
  return git.status === 0 ? git.stdout.trim() : null;
}
