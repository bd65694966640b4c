import { TERMINAL, type ErrorInfo, type Job, type RunDetail } from './types.ts';

/**
 * Where one stage of a run is, as the CLI shows it. `retrying`: an attempt failed and the job waits for its next
 * one (backoff); `skipped`: the run ended before the stage ran.
 */
export type StageState = 'waiting' | 'running' | 'retrying' | 'done' | 'failed' | 'cancelled' | 'skipped';

export interface StageView {
  stage: string;
  state: StageState;
  /** What the stage counted, once it has (`250 fetched`, `248 valid, 2 rejected`, …); empty before. */
  records: string;
  /** Epoch ms, from the stage's job; null until it starts. */
  startedAt: number | null;
  finishedAt: number | null;
  /** The job's BullMQ attempt (retries within one run attempt), and its limit. */
  attempt: number;
  maxAttempts: number;
  /** The run attempt the shown job belongs to (a retried run reuses earlier attempts' finished stages). */
  runAttempt: number | null;
  /** A transform or load: the engine its step runs on (`embedded`, `spark`), once picked. */
  engine: string | null;
  error: ErrorInfo | null;
}

const count = (n: number): string => n.toLocaleString('en-US');
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
const time = (iso: string | null): number | null => (iso ? Date.parse(iso) : null);

/** `orders 250, order_items 612` from `{ orders: 250, order_items: 612 }`. */
export function tableCounts(tables: Record<string, number>): string {
  return Object.entries(tables)
    .map(([table, n]) => `${table} ${count(n)}`)
    .join(', ');
}

function asTables(value: unknown): Record<string, number> | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const entries = Object.entries(value).filter((e): e is [string, number] => typeof e[1] === 'number');
  return entries.length > 0 ? Object.fromEntries(entries) : undefined;
}

/** The latest job of each stage: the highest run attempt, then the newest. */
function latestJobs(jobs: Job[]): Map<string, Job> {
  const latest = new Map<string, Job>();
  for (const job of jobs) {
    const seen = latest.get(job.stage);
    if (!seen || job.runAttempt > seen.runAttempt || (job.runAttempt === seen.runAttempt && job.id > seen.id))
      latest.set(job.stage, job);
  }
  return latest;
}

/**
 * What a stage counted. A job's metrics hold its own counts (the service merges a stage's counts into them),
 * so they are read first; the run's counts stand in for a stage that reported none of its own.
 */
function records(stage: string, job: Job | undefined, run: RunDetail): string {
  const m = job?.metrics ?? {};
  const finished = job?.status === 'COMPLETED' || job?.status === 'FAILED';
  switch (stage) {
    case 'ingest': {
      const fetched = num(m.fetched) ?? (finished ? run.counts.fetched : null);
      return fetched == null ? '' : `${count(fetched)} fetched`;
    }
    case 'validate': {
      const valid = num(m.valid) ?? (finished ? run.counts.valid : null);
      const rejected = num(m.rejected) ?? (finished ? run.counts.rejected : null);
      if (valid == null && rejected == null) return '';
      return `${count(valid ?? 0)} valid, ${count(rejected ?? 0)} rejected`;
    }
    case 'transform': {
      const read = num(m.read);
      const tables = asTables(m.tables);
      const duplicates = num(m.duplicates);
      const out = [
        tables ? tableCounts(tables) : '',
        duplicates ? `${count(duplicates)} duplicates dropped` : '',
      ]
        .filter(Boolean)
        .join(', ');
      if (read === undefined) return out;
      return out ? `read ${count(read)} → ${out}` : `read ${count(read)}`;
    }
    case 'load': {
      const rows = asTables(m.rows) ?? (finished ? (run.counts.rows ?? undefined) : undefined);
      // What the load changed in the warehouse's tables to match the source's table spec (schema evolution).
      const changes = Array.isArray(m.schemaChanges) ? m.schemaChanges.map(String) : [];
      return [rows ? `rows ${tableCounts(rows)}` : '', changes.length ? `schema: ${changes.join(', ')}` : '']
        .filter(Boolean)
        .join('; ');
    }
    default:
      return '';
  }
}

function stateOf(job: Job | undefined, run: RunDetail): StageState {
  const finished = TERMINAL.has(run.status);
  if (!job) return !finished ? 'waiting' : run.status === 'CANCELLED' ? 'cancelled' : 'skipped';
  // A failed job of an earlier attempt, with the retried attempt not yet at this stage.
  if (job.status === 'FAILED' && job.runAttempt < run.attempt && !finished) return 'waiting';
  switch (job.status) {
    case 'PENDING':
      if (finished) return run.status === 'CANCELLED' ? 'cancelled' : 'skipped';
      return job.error ? 'retrying' : 'waiting';
    case 'RUNNING':
      return finished ? (run.status === 'CANCELLED' ? 'cancelled' : 'failed') : 'running';
    case 'COMPLETED':
      return 'done';
    case 'FAILED':
      return 'failed';
    case 'CANCELLED':
      return 'cancelled';
  }
}

/** One view per stage of the run's plan, in plan order. */
export function stageViews(run: RunDetail): StageView[] {
  const latest = latestJobs(run.jobs);
  return run.plan.map((stage) => {
    const job = latest.get(stage);
    return {
      stage,
      state: stateOf(job, run),
      records: records(stage, job, run),
      startedAt: time(job?.startedAt ?? null),
      finishedAt: time(job?.finishedAt ?? null),
      attempt: job?.attempt ?? 0,
      maxAttempts: job?.maxAttempts ?? 0,
      runAttempt: job?.runAttempt ?? null,
      engine: job?.engine ?? null,
      error: job?.error ?? null,
    };
  });
}
