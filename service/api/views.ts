import type { Deadlines } from '../../contract/source-config.ts';
import type { RunDrift } from '../../contract/validate.ts';
import { backfillStatus, type BackfillDetail } from '../runs/backfills.ts';
import type { SchemaOverview } from '../schema/overview.ts';
import type { Instant, JobFields, LakeFileFields, RunFields, SourceDriftRow } from '../runs/run-reads.ts';
import { Status } from '../state/status.ts';

// Entities, and the rows the API reads (runs/run-reads.ts), map to API views here, and only here: the response
// schemas then drop anything not declared.

function iso(d: Instant): string;
function iso(d: Instant | null | undefined): string | null;
function iso(d: Instant | null | undefined): string | null {
  return d === null || d === undefined ? null : typeof d === 'string' ? d : d.toISOString();
}
const time = (d: Instant): number => (typeof d === 'string' ? Date.parse(d) : d.getTime());

export function runView(run: RunFields) {
  return {
    id: run.id,
    source: run.source,
    trigger: run.trigger,
    status: run.status,
    plan: run.plan,
    stage: run.stage ?? null,
    attempt: run.attempt,
    params: run.params ?? null,
    counts: {
      fetched: run.fetched ?? null,
      valid: run.valid ?? null,
      rejected: run.rejected ?? null,
      rows: run.rows ?? null,
    },
    error: run.error ?? null,
    cancelledBy: run.cancelledBy ?? null,
    replayOf: run.replayOf?.id ?? null,
    backfill: run.backfill?.id ?? null,
    schemaVersion: run.schemaVersion?.id ?? null,
    engine: run.engine ?? null,
    engineReason: run.engineReason ?? null,
    createdAt: iso(run.createdAt),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    links: { self: `/runs/${run.id}` },
  };
}

export function jobView(job: JobFields, deadlines?: Deadlines) {
  const open = job.status === Status.Pending || job.status === Status.Running;
  const seconds = deadlines?.[job.stage];
  return {
    id: job.id,
    stage: job.stage,
    runAttempt: job.runAttempt,
    status: job.status,
    attempt: job.attempt,
    maxAttempts: job.maxAttempts,
    externalId: job.externalId ?? null,
    engine: job.engine ?? null,
    engineReason: job.engineReason ?? null,
    heartbeatAt: iso(job.heartbeatAt),
    params: job.params ?? null,
    metrics: job.metrics ?? null,
    error: job.error ?? null,
    createdAt: iso(job.createdAt),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    deadlineAt:
      open && job.startedAt && seconds !== undefined
        ? new Date(time(job.startedAt) + seconds * 1000).toISOString()
        : null,
  };
}

/** A run's drift: what its latest validate job counted (the validate stage's metrics), or null before one did. */
export function runDriftView(jobs: readonly JobFields[]) {
  let latest: RunDrift | undefined;
  for (const job of jobs) if (job.stage === 'validate' && job.metrics?.drift) latest = driftOf(job.metrics);
  return latest ?? null;
}

/** The drift of a source's latest run that validated, with that run's id; null before any did. */
export function sourceDriftView(row: SourceDriftRow | undefined) {
  return row ? { run: row.run, ...driftOf(row.metrics) } : null;
}

function driftOf(metrics: Record<string, unknown>): RunDrift {
  const { records, fields, truncated } = metrics.drift as RunDrift;
  return { records, fields, truncated };
}

export function lakeFileView(file: LakeFileFields) {
  return {
    uri: file.uri,
    layer: file.layer,
    table: file.table ?? null,
    records: file.records ?? null,
    bytes: file.bytes,
    sha256: file.sha256 ?? null,
    producedBy: { jobId: file.producedBy.id, stage: file.producedBy.stage },
  };
}

export function backfillView({ backfill, runs }: BackfillDetail) {
  const count = (status: Status): number => runs.filter((r) => r.status === status).length;
  const sum = (field: 'fetched' | 'valid' | 'rejected'): number =>
    runs.reduce((total, r) => total + (r[field] ?? 0), 0);
  const rows: Record<string, number> = {};
  for (const run of runs)
    for (const [table, n] of Object.entries(run.rows ?? {})) rows[table] = (rows[table] ?? 0) + n;
  const status = backfillStatus(runs);
  const finished = runs.map((r) => r.finishedAt?.getTime() ?? 0);
  return {
    id: backfill.id,
    source: backfill.source,
    from: backfill.windowFrom.toISOString(),
    to: backfill.windowTo.toISOString(),
    step: backfill.step,
    status,
    progress: {
      total: runs.length,
      pending: count(Status.Pending),
      running: count(Status.Running),
      completed: count(Status.Completed),
      failed: count(Status.Failed),
      cancelled: count(Status.Cancelled),
    },
    counts: { fetched: sum('fetched'), valid: sum('valid'), rejected: sum('rejected'), rows },
    runs: runs.map((r) => ({
      id: r.id,
      status: r.status,
      stage: r.stage ?? null,
      window: { from: r.params?.window?.from ?? '', to: r.params?.window?.to ?? '' },
    })),
    createdBy: backfill.createdBy,
    createdAt: backfill.createdAt.toISOString(),
    finishedAt: status === Status.Running ? null : new Date(Math.max(0, ...finished)).toISOString(),
    links: { self: `/backfills/${backfill.id}` },
  };
}

export function sourceSchemaView(overview: SchemaOverview) {
  return {
    source: overview.source,
    current: overview.current,
    latestLoadedId: overview.latestLoadedId,
    versions: overview.versions.map(({ version, runs, latestRunId }) => ({
      id: version.id,
      hash: version.hash,
      current: version.hash === overview.current.hash,
      tables: Object.keys(version.spec.tables),
      createdAt: iso(version.createdAt),
      firstLoadedAt: iso(version.firstLoadedAt),
      lastLoadedAt: iso(version.lastLoadedAt),
      runs,
      latestRunId,
    })),
    diff: overview.diff,
  };
}
