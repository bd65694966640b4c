// The shapes the public HTTP API answers with (service/api/schemas/*.ts, the OpenAPI at /docs/json), as far as
// the web app reads them. Written out rather than imported: the app is a client of the HTTP API only.

export const STATUSES = ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'] as const;
export type Status = (typeof STATUSES)[number];
export const STAGES = ['ingest', 'validate', 'transform', 'load'] as const;
export type Stage = (typeof STAGES)[number];
/** The stages a replay may start at. */
export const REPLAY_STAGES = ['validate', 'transform', 'load'] as const;
export type ReplayStage = (typeof REPLAY_STAGES)[number];
export const ENGINES = ['auto', 'embedded', 'spark'] as const;
export type Engine = (typeof ENGINES)[number];

export function isActive(status: Status): boolean {
  return status === 'PENDING' || status === 'RUNNING';
}

export interface ErrorInfo {
  reason: string;
  message: string;
  stage?: Stage;
  attempt?: number;
  logs?: string;
  httpStatus?: number;
  url?: string;
}

export interface Run {
  id: number;
  source: string;
  trigger: 'manual' | 'schedule' | 'retry' | 'replay' | 'backfill';
  status: Status;
  plan: Stage[];
  stage: Stage | null;
  attempt: number;
  params: Record<string, unknown> | null;
  counts: {
    fetched: number | null;
    valid: number | null;
    rejected: number | null;
    rows: Record<string, number> | null;
  };
  error: ErrorInfo | null;
  cancelledBy: string | null;
  replayOf: number | null;
  backfill: number | null;
  schemaVersion: number | null;
  engine: 'embedded' | 'spark' | null;
  engineReason: string | null;
  queuedBehind?: number[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface Job {
  id: number;
  stage: Stage;
  runAttempt: number;
  status: Status;
  attempt: number;
  maxAttempts: number;
  externalId: string | null;
  engine: 'embedded' | 'spark' | null;
  engineReason: string | null;
  heartbeatAt: string | null;
  params: Record<string, unknown> | null;
  metrics: Record<string, unknown> | null;
  error: ErrorInfo | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  deadlineAt: string | null;
}

export interface LakeFile {
  uri: string;
  layer: string;
  table: string | null;
  records: number | null;
  bytes: number;
  sha256: string | null;
  producedBy: { jobId: number; stage: Stage };
}

export interface Drift {
  records: number;
  fields: { path: string; type: string; count: number; sample: string }[];
  truncated: boolean;
}

export interface RunDetail extends Run {
  drift: Drift | null;
  jobs: Job[];
  files: LakeFile[];
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface Source {
  name: string;
  url: string;
  pagination: string;
  auth: { kind: string; env: string[] };
  schedule: { cron: string; timezone: string | null } | null;
  nextRunAt: string | null;
  incremental: { cursorField: string; param: string } | null;
  window: { fromParam: string; toParam: string | null } | null;
  maxActiveRuns: number;
  onActiveRun: string;
  engine: Engine;
  cursor: string | null;
  tables: string[];
  lastRuns: Run[];
  onDrift: 'warn' | 'fail';
  drift: (Drift & { run: number }) | null;
}

interface Column {
  column: string;
  type: string;
  path: string | null;
}
interface TableKey {
  key: string[];
  parentKey: Record<string, string> | null;
  from: string | null;
}

export interface SourceSchema {
  source: string;
  current: { hash: string; versionId: number | null };
  latestLoadedId: number | null;
  versions: {
    id: number;
    hash: string;
    current: boolean;
    tables: string[];
    createdAt: string;
    firstLoadedAt: string | null;
    lastLoadedAt: string | null;
    runs: number;
    latestRunId: number | null;
  }[];
  diff: {
    from: { versionId: number | null; label: string };
    to: { versionId: number | null; label: string };
    unchanged: boolean;
    tablesAdded: { table: string; key: TableKey; columns: Column[] }[];
    tablesRemoved: { table: string; key: TableKey; columns: Column[] }[];
    tablesChanged: {
      table: string;
      columnsAdded: Column[];
      columnsRemoved: Column[];
      typesChanged: { column: string; from: string; to: string }[];
      pathsChanged: { column: string; from: string; to: string }[];
      keyChanged: { from: TableKey; to: TableKey } | null;
    }[];
    cursorColumn: { from: string | null; to: string | null } | null;
  };
}

export interface RejectsPage {
  items: {
    record: unknown;
    source: { file: string; line: number };
    errors: { path: string; message: string }[];
  }[];
  nextCursor: string | null;
  total: number;
}

export interface Backfill {
  id: number;
  source: string;
  from: string;
  to: string;
  step: string;
  status: Status;
  progress: Record<'total' | 'pending' | 'running' | 'completed' | 'failed' | 'cancelled', number>;
  runs: { id: number; status: Status; stage: Stage | null; window: { from: string; to: string } }[];
}
