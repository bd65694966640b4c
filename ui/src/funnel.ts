import type { Job, RunDetail } from './types.ts';

// The reconciliation of a run's counts (README.md, "How to read a run"): fetched = valid + rejected;
// valid = parent rows + duplicates (the transform's metrics); and per table, curated = loaded + stale (the
// load's metrics). Each step says whether it balances, so a gap shows. Pure.

export interface FunnelTable {
  table: string;
  /** Rows the transform wrote to the curated layer. */
  curated: number | null;
  /** Rows the load committed (the run's counts.rows). */
  loaded: number | null;
  /** Rows the load left out because the warehouse held a newer version. */
  stale: number | null;
  /** Whether curated = loaded + stale; null while a part is unknown. */
  balanced: boolean | null;
  /** The table the records map to one row each (not a child array). */
  parent: boolean;
}

export interface Funnel {
  fetched: number | null;
  valid: number | null;
  rejected: number | null;
  /** fetched = valid + rejected; null while a part is unknown. */
  validBalanced: boolean | null;
  parentRows: number | null;
  duplicates: number | null;
  /** valid = parent rows + duplicates; null while a part is unknown. */
  parentBalanced: boolean | null;
  tables: FunnelTable[];
}

const numberOr = (value: unknown): number | null => (typeof value === 'number' ? value : null);
const record = (value: unknown): Record<string, unknown> =>
  value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};

/** The latest completed job of a stage, from the run's latest attempt that has one. */
export function latestCompleted(jobs: readonly Job[], stage: Job['stage']): Job | undefined {
  return [...jobs]
    .filter((j) => j.stage === stage && j.status === 'COMPLETED')
    .sort((a, b) => b.runAttempt - a.runAttempt || b.id - a.id)[0];
}

export function runFunnel(run: Pick<RunDetail, 'counts' | 'jobs'>): Funnel {
  const { fetched, valid, rejected } = run.counts;
  const transform = latestCompleted(run.jobs, 'transform');
  const load = latestCompleted(run.jobs, 'load') ?? latestLoad(run.jobs);
  const curated = record(transform?.metrics?.tables);
  const loadedRows = run.counts.rows ?? record(load?.metrics?.rows);
  const stale = record(load?.metrics?.stale);
  const targets = record(load?.params?.targets ?? transform?.params?.targets);
  const names = [...new Set([...Object.keys(curated), ...Object.keys(loadedRows)])];
  // The parent is the table loaded per key (a child is replaced per parent); without the load's params, the
  // first table the transform wrote, which the sources file lists first.
  const parentOf = (table: string) => {
    const target = record(targets[table]);
    return target.replace !== undefined ? target.replace === 'per key' : table === names[0];
  };
  const duplicates = numberOr(transform?.metrics?.duplicates);
  const parent = names.find(parentOf);
  const parentRows = parent === undefined ? null : numberOr(curated[parent]);
  const tables = names.map((table) => {
    const c = numberOr(curated[table]);
    const l = numberOr(loadedRows[table]);
    const s = load?.metrics ? (numberOr(stale[table]) ?? 0) : null;
    return {
      table,
      curated: c,
      loaded: l,
      stale: s,
      balanced: c === null || l === null || s === null ? null : c === l + s,
      parent: table === parent,
    };
  });
  return {
    fetched,
    valid,
    rejected,
    validBalanced:
      fetched === null || valid === null || rejected === null ? null : fetched === valid + rejected,
    parentRows,
    duplicates,
    parentBalanced:
      valid === null || parentRows === null || duplicates === null ? null : valid === parentRows + duplicates,
    tables,
  };
}

function latestLoad(jobs: readonly Job[]): Job | undefined {
  return [...jobs].filter((j) => j.stage === 'load').sort((a, b) => b.id - a.id)[0];
}
