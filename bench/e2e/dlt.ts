import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Expected } from './expected.ts';
import { count, PG_URL } from './pg.ts';

// The baseline pipeline: dlt's rest_api source on the same demo API, into PostgreSQL (bench/e2e/dlt_pipeline.py),
// run in its own venv as a child process.

export const DLT_PYTHON = 'bench/.venv-dlt/bin/python';

/** Creates bench/.venv-dlt with dlt in it, unless it already holds bench/e2e/requirements.txt. */
export function setupDlt(): void {
  const setup = spawnSync('bash', ['bench/e2e/setup-dlt.sh'], { stdio: 'inherit' });
  if (setup.status !== 0) throw new Error('bench/e2e/setup-dlt.sh failed (see above)');
}

/**
 * dlt's loader file format for PostgreSQL: `insert_values` (its default: INSERT … VALUES statements) or `csv`
 * (written by normalize, loaded with COPY: its fastest format for PostgreSQL on Python objects).
 */
export const DLT_FORMATS = ['insert_values', 'csv'] as const;
export type DltFormat = (typeof DLT_FORMATS)[number];

export interface DltMeasure {
  format: DltFormat;
  /** `pipeline.run` from a fresh pipeline: extract + normalize + load, as the script times it. */
  wallMs: number;
  /** The child process, Python's start and dlt's imports included. */
  processMs: number;
  /** dlt's own step times. */
  steps: { extract?: number; normalize?: number; load?: number };
  /** Rows counted in PostgreSQL afterwards. */
  rows: { orders: number; orders__items: number; orders__tags: number };
  /** Rows dlt says it normalized. */
  reported: Record<string, number>;
  dlt: string;
  settings: Record<string, string>;
}

interface ScriptOutput {
  ms: number;
  steps: DltMeasure['steps'];
  rows: Record<string, number>;
  dlt: string;
  settings: Record<string, string>;
}

export interface DltOptions {
  /** The demo API's orders URL. */
  url: string;
  format: DltFormat;
  /** A fresh schema to load into (the caller drops it and `<dataset>_staging`). */
  dataset: string;
  pageSize: number;
  expected: Expected;
  timeoutMs: number;
  /** Where the pipeline's working folder goes (removed afterwards). */
  tmp: string;
}

/** Runs the pipeline once, from a fresh working folder, and counts what it loaded. */
export async function runDlt(options: DltOptions): Promise<DltMeasure> {
  const { dataset, expected } = options;
  const pipelinesDir = await mkdtemp(join(options.tmp, 'dlt-'));
  try {
    const args = [
      'bench/e2e/dlt_pipeline.py',
      ['--url', options.url],
      ['--dsn', PG_URL],
      ['--dataset', dataset],
      ['--pipelines-dir', pipelinesDir],
      ['--page-size', String(options.pageSize)],
      ['--loader-file-format', options.format],
    ].flat();
    const started = performance.now();
    const { code, stdout, stderr } = await runChild(DLT_PYTHON, args, options.timeoutMs);
    const processMs = Math.round(performance.now() - started);
    if (code !== 0) {
      const tail = stderr.trim().split('\n').slice(-15).join('\n');
      throw new Error(`the dlt pipeline (${options.format}) exited with ${code}:\n${tail}`);
    }
    const out = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as ScriptOutput;
    const rows = {
      orders: await count(dataset, 'orders'),
      orders__items: await count(dataset, 'orders__items'),
      orders__tags: await count(dataset, 'orders__tags'),
    };
    const want = { orders: expected.orders, orders__items: expected.items, orders__tags: expected.tags };
    for (const [table, n] of Object.entries(rows)) {
      const w = want[table as keyof typeof want];
      if (n !== w) throw new Error(`dlt loaded ${n} rows into ${dataset}.${table}, expected ${w}`);
    }
    return {
      format: options.format,
      wallMs: out.ms,
      processMs,
      steps: out.steps,
      rows,
      reported: out.rows,
      dlt: out.dlt,
      settings: out.settings,
    };
  } finally {
    await rm(pipelinesDir, { recursive: true, force: true });
  }
}

const active = new Set<ChildProcess>();

/** Kills a pipeline still running (on Ctrl-C or a failure elsewhere). */
export function stopDlt(): void {
  for (const child of active) child.kill('SIGKILL');
}

/** A child process whose output is collected; killed (and the promise rejected) after `timeoutMs`. */
function runChild(
  command: string,
  args: string[],
  timeoutMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    active.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    // Only the end of stderr is ever shown.
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr = (stderr + s).slice(-20_000)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the dlt pipeline did not finish within ${Math.round(timeoutMs / 60_000)} min`));
    }, timeoutMs);
    child.once('error', (error) => {
      active.delete(child);
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code) => {
      active.delete(child);
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
