import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StepEngine } from '../../contract/source-config.ts';
import { STAGES, type Stage } from '../../contract/stages.ts';
import { loadConfig } from '../../service/config/env.ts';
import { chooseEngine } from '../../service/stages/engine-choice.ts';
import type { Expected } from './expected.ts';
import { count, PG_URL, tableExists } from './pg.ts';
import {
  freePort,
  MYSQL_DATABASE,
  MYSQL_SERVER,
  REDIS_URL,
  startService,
  stepDirs,
  stopService,
} from './service.ts';

// The measured side: one run of the `demo` source on a freshly started service (service.ts), from POST /runs
// with the engine asked for to a terminal status, read back through GET /runs/:id, its tables counted in
// PostgreSQL, and the peak RSS its embedded steps logged.

/** GET /runs/:id every 100 ms for the first 10 s (a small run's time is within 0.1 s), then every 250 ms. */
const pollMs = (elapsedMs: number): number => (elapsedMs < 10_000 ? 100 : 250);
/** The tables config/sources.yaml gives the demo source, and what each should hold. */
export const AFLUENTE_TABLES = ['orders', 'order_items', 'order_tags'] as const;
type AfluenteTable = (typeof AFLUENTE_TABLES)[number];
const EXPECTED_KEY: Record<AfluenteTable, keyof Expected> = {
  orders: 'orders',
  order_items: 'items',
  order_tags: 'tags',
};
/** The line the step runner writes first into a step's log (service/steps/process-runner.ts). */
const LOG_HEADER = /^==== (\S+) \w+:\d+ afluente run=\d+ job=\d+ (\w+)$/gm;
/** The line an embedded step writes to stderr last but one (spark/afluente_embedded/cli.py). */
const PEAK_RSS = /^afluente_embedded: (\w+) peak RSS (\d+) MiB$/gm;

interface JobView {
  stage: Stage;
  runAttempt: number;
  status: string;
  error: { message: string } | null;
  engine: StepEngine | null;
  engineReason: string | null;
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
  engine: StepEngine | null;
  engineReason: string | null;
  createdAt: string;
  finishedAt: string | null;
  jobs: JobView[];
  files: { layer: string; bytes: number; producedBy: { stage: Stage } }[];
}

export interface AfluenteMeasure {
  runId: number;
  status: string;
  /** The engine asked for on POST /runs. */
  requested: StepEngine;
  /** The engine the run's transform and load ran on, and why (GET /runs/:id). */
  engine: StepEngine | null;
  engineReason: string | null;
  /** What `auto` (the demo source's engine) would have picked for this run: the service's rule on its bytes. */
  auto: { engine: StepEngine; reason: string; validatedBytes: number } | null;
  /** POST /runs until a GET /runs/:id shows the run terminal. */
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
  /**
   * Each step's process (split_tables, load_warehouse), from its log: its spawn (the log's first line) to its
   * last write (the log's mtime). The rest of the stage's time is the service's, around the step.
   */
  stepMs: Record<string, number>;
  /** Embedded runs: each step's peak RSS in MiB, from the `peak RSS` line it wrote to its log. */
  peakRssMiB: Record<string, number> | null;
  /** Why the run did not complete. */
  error: { stage: string; message: string } | null;
}

export interface AfluenteOptions {
  /** The demo API's orders URL. */
  url: string;
  engine: StepEngine;
  /** The warehouse schema the run loads into (dropped by the caller). */
  schema: string;
  /** BullMQ's key prefix in Redis: one per run, since a fresh state database starts the run ids over. */
  queuePrefix: string;
  /** The service's file lake and its temp folder (steps' logs, pid files, spill): `<lakeDir>-steps`. */
  lakeDir: string;
  /** The sources file service.ts's writeSourcesFile wrote. */
  sourcesFile: string;
  /** Where the service's log goes. */
  dir: string;
  expected: Expected;
  timeoutMs: number;
  /** Prints progress lines. */
  log: (line: string) => void;
}

/** The service's settings for one run: its own port, token, lake, queue prefix, schema and temp folder. */
function serviceEnv(options: AfluenteOptions, port: number, token: string, tempDir: string) {
  return {
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
    // The benchmark polls every 100 to 250 ms; the default limit (300 a minute) is for clients on a network.
    AFLUENTE_RATE_LIMIT_MAX: '100000',
    // Both engines' step logs, pid files and spill, beside the lake in the benchmark's temp folder.
    AFLUENTE_SPARK_TEMP_DIR: tempDir,
  };
}

/** The engines' settings, which the benchmark leaves at the service's defaults (a token is all it must have). */
export function engineSettings() {
  const { spark, embedded } = loadConfig({ AFLUENTE_API_TOKENS: `bench=${'0'.repeat(32)}` }).steps;
  return {
    embedded: { memoryLimit: embedded.memoryLimit, threads: embedded.threads, maxBytes: embedded.maxBytes },
    spark: { master: spark.master, driverMemory: spark.driverMemory },
  };
}

/**
 * Starts the service (on a state database dropped first, so the demo source's cursor starts empty), runs the demo
 * source once on `options.engine`, measures it and stops the service again.
 */
export async function runAfluente(options: AfluenteOptions): Promise<AfluenteMeasure> {
  const { log } = options;
  const port = await freePort();
  const token = `bench-${randomBytes(16).toString('hex')}`;
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const tempDir = `${options.lakeDir}-steps`;
  await mkdir(tempDir, { recursive: true });
  const env = serviceEnv(options, port, token, tempDir);
  // The same check the service makes at boot, here so a bad setting reads as one line, not a log.
  const config = loadConfig(env);
  const logFile = join(options.dir, `service-${options.queuePrefix}.log`);
  try {
    const service = await startService(env, { port, logFile, tempDir, queuePrefix: options.queuePrefix });
    async function api<T>(path: string, init?: RequestInit): Promise<T> {
      const res = await fetch(`${service.base}${path}`, { ...init, headers });
      const body = (await res.json()) as T & { message?: string };
      if (!res.ok)
        throw new Error(`${init?.method ?? 'GET'} ${path} answered ${res.status}: ${body.message ?? ''}`);
      return body;
    }

    const started = performance.now();
    const created = await api<RunView>('/runs', {
      method: 'POST',
      body: JSON.stringify({ source: 'demo', engine: options.engine }),
    });
    let run: RunView;
    let seen = '';
    let failures = 0;
    for (;;) {
      const elapsed = performance.now() - started;
      try {
        run = await api<RunView>(`/runs/${created.id}`);
        failures = 0;
      } catch (error) {
        // A poll that fails once is not the run failing; five in a row is the service gone.
        if (++failures >= 5 || service.exited())
          throw new Error(`${(error as Error).message}\n${await service.logTail()}`, { cause: error });
        await sleep(pollMs(elapsed));
        continue;
      }
      const terminal = ['COMPLETED', 'FAILED', 'CANCELLED'].includes(run.status);
      const now = performance.now();
      const line = `${run.stage ?? '-'} ${run.status}`;
      if (line !== seen)
        log(`afluente ${options.engine}: run ${run.id} ${line} at ${((now - started) / 1000).toFixed(1)} s`);
      seen = line;
      if (terminal) break;
      if (now - started > options.timeoutMs)
        throw new Error(`the run did not finish within ${Math.round(options.timeoutMs / 60_000)} min`);
      await sleep(pollMs(elapsed));
    }
    const wallMs = Math.round(performance.now() - started);
    const result = measure(run, wallMs, options, config.steps.embedded.maxBytes);
    Object.assign(result, await readStepLogs(Object.values(stepDirs(tempDir, options.queuePrefix))));
    if (result.status !== 'COMPLETED') {
      const tail = await service.logTail();
      if (tail) log(`afluente: the service's last log lines:\n${tail}`);
      return result;
    }
    if (options.engine === 'embedded' && !result.peakRssMiB)
      throw new Error('the embedded run COMPLETED but its step logs have no peak RSS line');
    if (run.engine !== options.engine)
      throw new Error(`asked for engine ${options.engine}, the run says it ran on ${run.engine ?? 'none'}`);
    await verify(result, options);
    return result;
  } finally {
    await stopService();
  }
}

function measure(run: RunView, wallMs: number, options: AfluenteOptions, maxEmbeddedBytes: number) {
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
  // The bytes `auto` weighs: the validated parts the validate stage wrote (the transform reads them all).
  const validated = run.files.filter((f) => f.layer === 'validated' && f.producedBy.stage === 'validate');
  const validatedBytes = validated.reduce((n, f) => n + f.bytes, 0);
  const auto =
    validated.length > 0
      ? {
          ...chooseEngine({ requested: null, configured: 'auto', validatedBytes, maxEmbeddedBytes }),
          validatedBytes,
        }
      : null;
  const failed = jobs.find((j) => j.status === 'FAILED');
  const result: AfluenteMeasure = {
    runId: run.id,
    status: run.status,
    requested: options.engine,
    engine: run.engine,
    engineReason: run.engineReason,
    auto,
    wallMs,
    serverMs,
    stages,
    betweenStagesMs: (serverMs ?? wallMs) - inStages,
    counts: { fetched: run.counts.fetched, valid: run.counts.valid, rejected: run.counts.rejected },
    rows: run.counts.rows,
    verified: null,
    loadRowsPerS: null,
    stepMs: {},
    peakRssMiB: null,
    error:
      run.status === 'COMPLETED'
        ? null
        : {
            stage: run.error?.stage ?? failed?.stage ?? run.stage ?? '?',
            message: run.error?.message ?? failed?.error?.message ?? `the run ended ${run.status}`,
          },
  };
  return result;
}

/**
 * Each step's process time and, for embedded steps, peak RSS (MiB), from the logs in `dirs`. A step that ran more
 * than once (a retry) counts its last process time and its largest peak.
 */
async function readStepLogs(dirs: string[]): Promise<Pick<AfluenteMeasure, 'stepMs' | 'peakRssMiB'>> {
  const stepMs: Record<string, number> = {};
  const peaks: Record<string, number> = {};
  for (const dir of dirs) {
    for (const file of await readdir(dir).catch(() => [] as string[])) {
      if (!file.endsWith('.log')) continue;
      const path = join(dir, file);
      const [text, info] = await Promise.all([readFile(path, 'utf8'), stat(path)]);
      const [, started, job] = [...text.matchAll(LOG_HEADER)].at(-1) ?? [];
      if (started && job) stepMs[job] = info.mtimeMs - Date.parse(started);
      for (const [, step, mib] of text.matchAll(PEAK_RSS))
        if (step && mib) peaks[step] = Math.max(peaks[step] ?? 0, Number(mib));
    }
  }
  for (const job of Object.keys(stepMs)) stepMs[job] = Math.round(stepMs[job] ?? 0);
  return { stepMs, peakRssMiB: Object.keys(peaks).length > 0 ? peaks : null };
}

/** A benchmark that does not check its output measures nothing: counts what the run loaded. */
async function verify(result: AfluenteMeasure, options: AfluenteOptions): Promise<void> {
  const verified: Record<string, number> = {};
  const { rows } = result;
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
  if (result.stages.load) result.loadRowsPerS = Math.round(loaded / (result.stages.load / 1000));
}
