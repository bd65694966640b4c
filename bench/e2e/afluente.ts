import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';
import { parse, stringify } from 'yaml';
import { STAGES, type Stage } from '../../contract/stages.ts';
import { loadConfig } from '../../service/config/env.ts';
import type { Expected } from './expected.ts';
import { count, PG_URL, tableExists } from './pg.ts';

// The measured side: the service as a child process (`node service/main.ts`), one run of the `demo` source from
// POST /runs to a terminal status, read back through GET /runs/:id, and its tables counted in PostgreSQL.

/** The service's state database. Dropped before each run: the demo source's incremental cursor lives there. */
const MYSQL_SERVER = 'mysql://root@127.0.0.1:3306';
const MYSQL_DATABASE = 'afluente_bench';
const REDIS_URL = 'redis://127.0.0.1:6379';
const POLL_MS = 250;
/** The tables config/sources.yaml gives the demo source, and what each should hold. */
export const AFLUENTE_TABLES = ['orders', 'order_items', 'order_tags'] as const;
type AfluenteTable = (typeof AFLUENTE_TABLES)[number];
const EXPECTED_KEY: Record<AfluenteTable, keyof Expected> = {
  orders: 'orders',
  order_items: 'items',
  order_tags: 'tags',
};

interface JobView {
  stage: Stage;
  runAttempt: number;
  status: string;
  attempt: number;
  error: { message: string } | null;
  startedAt: string | null;
  finishedAt: string | null;
}
interface RunView {
  id: number;
  status: string;
  stage: Stage | null;
  attempt: number;
  error: { message: string; stage?: Stage; reason?: string } | null;
  counts: {
    fetched: number | null;
    valid: number | null;
    rejected: number | null;
    rows: Record<string, number> | null;
  };
  createdAt: string;
  finishedAt: string | null;
  jobs: JobView[];
}

export interface AfluenteMeasure {
  runId: number;
  status: string;
  /** POST /runs until a GET /runs/:id shows the run terminal (polled every 250 ms). */
  wallMs: number;
  /** The run's own createdAt → finishedAt. */
  serverMs: number | null;
  /** Each stage's job, startedAt → finishedAt. */
  stages: Partial<Record<Stage, number>>;
  /** Wall time not inside any stage: queueing and hand-over between stages. */
  betweenStagesMs: number;
  counts: { fetched: number | null; valid: number | null; rejected: number | null };
  /** Rows the run says it loaded per table (run.counts.rows). */
  rows: Record<string, number> | null;
  /** Rows counted in PostgreSQL afterwards (only after COMPLETED). */
  verified: Record<string, number> | null;
  /** Rows loaded / load stage time. */
  loadRowsPerS: number | null;
  /** Why the run did not complete. */
  error: { stage: string; message: string } | null;
}

export interface AfluenteOptions {
  /** The demo API's orders URL. */
  url: string;
  /** The warehouse schema the run loads into (dropped by the caller). */
  schema: string;
  /** BullMQ's key prefix in Redis: one per run, since a fresh state database starts the run ids over. */
  queuePrefix: string;
  lakeDir: string;
  /** The sources file {@link writeSourcesFile} wrote. */
  sourcesFile: string;
  /** Where the service's log goes. */
  dir: string;
  expected: Expected;
  timeoutMs: number;
  /** Prints progress lines. */
  log: (line: string) => void;
}

/**
 * Writes config/sources.yaml's `demo` source alone, pointed at `url`, into `dir` with its JSON Schema beside it,
 * and returns the file's path.
 */
export async function writeSourcesFile(dir: string, url: string): Promise<string> {
  const doc = parse(await readFile('config/sources.yaml', 'utf8')) as {
    sources: Record<string, { request: { url: string }; schema: string }>;
  };
  const demo = doc.sources.demo;
  if (!demo) throw new Error('config/sources.yaml has no demo source');
  demo.request.url = url;
  const file = join(dir, 'sources.yaml');
  await writeFile(file, stringify({ sources: { demo } }));
  await mkdir(join(dir, 'schemas'), { recursive: true });
  await copyFile(join('config', demo.schema), join(dir, demo.schema));
  return file;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Drops the service's state database; the service creates and migrates it again at start. */
export async function dropStateDatabase(): Promise<void> {
  const conn = await createConnection(MYSQL_SERVER);
  try {
    await conn.query(`drop database if exists \`${MYSQL_DATABASE}\``);
  } finally {
    await conn.end();
  }
}

/** Deletes the queue's keys in Redis. */
export async function dropQueueKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 1000 }) as AsyncIterable<
      string[]
    >) {
      if (keys.length > 0) await redis.del(...keys);
    }
  } finally {
    redis.disconnect();
  }
}

let running: { service: ChildProcess; sparkTempDir: string } | undefined;

/** Signals the service's process group: the service and whatever it started (handler processes, Spark). */
function signalGroup(pgid: number | undefined, signal: NodeJS.Signals): void {
  try {
    if (pgid && Number.isInteger(pgid) && pgid > 1) process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is gone already.
  }
}

/**
 * Stops the service if it is running (SIGTERM, then SIGKILL after 40 s: its shutdown grace is 25 s), then kills
 * what is left of its process group, so that no Spark step it started goes on writing into a lake being removed.
 */
export async function stopService(): Promise<void> {
  if (!running) return;
  const { service, sparkTempDir } = running;
  if (service.exitCode === null && service.signalCode === null) {
    const exited = once(service, 'exit');
    signalGroup(service.pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(service.pid, 'SIGKILL'), 40_000);
    await exited;
    clearTimeout(timer);
  }
  signalGroup(service.pid, 'SIGKILL');
  // The local step runner starts each Spark step as a process group of its own and records it in a pid file;
  // the service kills a step when it shuts down, and this makes sure of it.
  const steps = join(sparkTempDir, 'afluente-steps');
  for (const file of await readdir(steps).catch(() => [])) {
    if (!file.endsWith('.pid')) continue;
    signalGroup(Number(await readFile(join(steps, file), 'utf8').catch(() => '')), 'SIGKILL');
  }
  running = undefined;
}

export async function runAfluente(options: AfluenteOptions): Promise<AfluenteMeasure> {
  const { log } = options;
  const port = await freePort();
  const token = `bench-${randomBytes(16).toString('hex')}`;
  const base = `http://127.0.0.1:${port}`;
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const sparkTempDir = `${options.lakeDir}-spark`;
  await mkdir(sparkTempDir, { recursive: true });
  const env: Record<string, string> = {
    AFLUENTE_PORT: String(port),
    AFLUENTE_API_TOKENS: `bench=${token}`,
    AFLUENTE_LOG_LEVEL: 'warn',
    AFLUENTE_LAKE_URI: `file://${options.lakeDir}`,
    AFLUENTE_SOURCES_FILE: options.sourcesFile,
    AFLUENTE_MYSQL_URL: `${MYSQL_SERVER}/${MYSQL_DATABASE}`,
    AFLUENTE_REDIS_URL: REDIS_URL,
    AFLUENTE_QUEUE_PREFIX: options.queuePrefix,
    AFLUENTE_WAREHOUSE_URL: PG_URL,
    AFLUENTE_WAREHOUSE_SCHEMA: options.schema,
    // The benchmark polls every 250 ms; the default limit (300 a minute) is for clients on a network.
    AFLUENTE_RATE_LIMIT_MAX: '100000',
    // Spark steps' logs and pid files, beside the lake in the benchmark's temp folder.
    AFLUENTE_SPARK_TEMP_DIR: sparkTempDir,
  };
  // Inherited AFLUENTE_* variables would change what is measured; only the benchmark's own apply.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('AFLUENTE_')),
  );
  // The same check the service makes at boot, here so a bad setting reads as one line, not a log.
  loadConfig(env);

  await dropStateDatabase();
  const logFile = join(options.dir, `service-${options.queuePrefix}.log`);
  const fd = openSync(logFile, 'w');
  // A process group of its own: a Ctrl-C reaches the benchmark alone, which stops the service and its children.
  const service = spawn(process.execPath, ['service/main.ts'], {
    env: { ...inherited, ...env },
    stdio: ['ignore', fd, fd],
    detached: true,
  });
  closeSync(fd);
  running = { service, sparkTempDir };
  const logTail = async (): Promise<string> =>
    (await readFile(logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-20).join('\n');

  async function api<T>(path: string, init?: RequestInit): Promise<T> {
    const res = await fetch(`${base}${path}`, { ...init, headers });
    const body = (await res.json()) as T & { message?: string };
    if (!res.ok)
      throw new Error(`${init?.method ?? 'GET'} ${path} answered ${res.status}: ${body.message ?? ''}`);
    return body;
  }

  try {
    for (let i = 0; ; i++) {
      if (service.exitCode !== null)
        throw new Error(`the service exited during start-up (${service.exitCode}):\n${await logTail()}`);
      const ready = await fetch(`${base}/health/ready`).catch(() => undefined);
      if (ready?.status === 200) break;
      if (i > 240) throw new Error(`the service was not ready within 60 s:\n${await logTail()}`);
      await sleep(250);
    }

    const started = performance.now();
    const created = await api<RunView>('/runs', {
      method: 'POST',
      body: JSON.stringify({ source: 'demo' }),
    });
    let run: RunView;
    let seen = '';
    let failures = 0;
    for (;;) {
      try {
        run = await api<RunView>(`/runs/${created.id}`);
        failures = 0;
      } catch (error) {
        // A poll that fails once is not the run failing; five in a row is the service gone.
        if (++failures >= 5 || service.exitCode !== null)
          throw new Error(`${(error as Error).message}\n${await logTail()}`, { cause: error });
        await sleep(POLL_MS);
        continue;
      }
      const terminal = ['COMPLETED', 'FAILED', 'CANCELLED'].includes(run.status);
      const now = performance.now();
      const line = `${run.stage ?? '-'} ${run.status}`;
      if (line !== seen) log(`afluente: run ${run.id} ${line} at ${((now - started) / 1000).toFixed(1)} s`);
      seen = line;
      if (terminal) break;
      if (now - started > options.timeoutMs)
        throw new Error(`the run did not finish within ${Math.round(options.timeoutMs / 60_000)} min`);
      await sleep(POLL_MS);
    }
    const wallMs = Math.round(performance.now() - started);
    return await measure(run, wallMs, options, logTail);
  } finally {
    await stopService();
  }
}

async function measure(
  run: RunView,
  wallMs: number,
  options: AfluenteOptions,
  logTail: () => Promise<string>,
): Promise<AfluenteMeasure> {
  const ms = (a: string | null, b: string | null): number | null =>
    a && b ? Date.parse(b) - Date.parse(a) : null;
  const jobs = run.jobs.filter((j) => j.runAttempt === run.attempt);
  const stages: Partial<Record<Stage, number>> = {};
  for (const stage of STAGES) {
    const job = jobs.find((j) => j.stage === stage);
    const took = job ? ms(job.startedAt, job.finishedAt) : null;
    if (took !== null) stages[stage] = took;
  }
  const inStages = Object.values(stages).reduce((a, b) => a + b, 0);
  const serverMs = ms(run.createdAt, run.finishedAt);
  const rows = run.counts.rows;
  const result: AfluenteMeasure = {
    runId: run.id,
    status: run.status,
    wallMs,
    serverMs,
    stages,
    betweenStagesMs: (serverMs ?? wallMs) - inStages,
    counts: { fetched: run.counts.fetched, valid: run.counts.valid, rejected: run.counts.rejected },
    rows,
    verified: null,
    loadRowsPerS: null,
    error: null,
  };
  if (run.status !== 'COMPLETED') {
    const failed = jobs.find((j) => j.status === 'FAILED');
    result.error = {
      stage: run.error?.stage ?? failed?.stage ?? run.stage ?? '?',
      message: run.error?.message ?? failed?.error?.message ?? `the run ended ${run.status}`,
    };
    const tail = await logTail();
    if (tail) options.log(`afluente: the service's last log lines:\n${tail}`);
    return result;
  }

  // A benchmark that does not check its output measures nothing: count what the run loaded.
  const verified: Record<string, number> = {};
  for (const table of AFLUENTE_TABLES) {
    if (!(await tableExists(options.schema, table)))
      throw new Error(`the run COMPLETED but ${options.schema}.${table} does not exist`);
    verified[table] = await count(options.schema, table);
    const want = options.expected[EXPECTED_KEY[table]];
    if (verified[table] !== want)
      throw new Error(
        `afluente loaded ${verified[table]} rows into ${options.schema}.${table}, expected ${want}`,
      );
    if (rows?.[table] !== undefined && rows[table] !== want)
      throw new Error(`run.counts.rows.${table} is ${rows[table]}, expected ${want}`);
  }
  result.verified = verified;
  const loaded = Object.values(rows ?? verified).reduce((a, b) => a + b, 0);
  if (stages.load) result.loadRowsPerS = Math.round(loaded / (stages.load / 1000));
  return result;
}
