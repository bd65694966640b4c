// The API's views as the CLI reads them: only the fields it uses. The service's schemas
// (service/api/schemas/) are the source of truth; the CLI is an HTTP client and imports nothing from it.

export type Status = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';

export const TERMINAL: ReadonlySet<string> = new Set(['COMPLETED', 'FAILED', 'CANCELLED']);

export interface ErrorInfo {
  reason: string;
  message: string;
  stage?: string;
  attempt?: number;
  logs?: string;
  httpStatus?: number;
  url?: string;
}

export interface Counts {
  fetched: number | null;
  valid: number | null;
  rejected: number | null;
  rows: Record<string, number> | null;
}

export interface Run {
  id: number;
  source: string;
  trigger: string;
  status: Status;
  plan: string[];
  stage: string | null;
  attempt: number;
  params: Record<string, unknown> | null;
  counts: Counts;
  error: ErrorInfo | null;
  cancelledBy: string | null;
  /** On a replay: the run whose lake files it read. */
  replayOf?: number | null;
  /** The backfill the run is a window of. */
  backfill?: number | null;
  /** The engine of its latest transform or load step, and why (absent from a service older than engines). */
  engine?: string | null;
  engineReason?: string | null;
  queuedBehind?: number[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  links: { self: string };
}

export interface Job {
  id: number;
  stage: string;
  runAttempt: number;
  status: Status;
  attempt: number;
  maxAttempts: number;
  externalId: string | null;
  /** A transform or load: the engine its step runs on, and why. */
  engine?: string | null;
  engineReason?: string | null;
  metrics: Record<string, unknown> | null;
  error: ErrorInfo | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface LakeFile {
  uri: string;
  layer: string;
  table: string | null;
  records: number | null;
  bytes: number;
}

/** Fields of the records that no column names, counted by the validate stage. */
export interface Drift {
  records: number;
  fields: { path: string; type: string; count: number; sample: string }[];
  truncated: boolean;
}

export interface RunDetail extends Run {
  /** Absent from a service older than drift; null before the run validated. */
  drift?: Drift | null;
  jobs: Job[];
  files: LakeFile[];
}

export interface RunPage {
  items: Run[];
  nextCursor: string | null;
}

export type BackfillStatus = 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED';

export interface Backfill {
  /** Opaque to the CLI: passed back in the URL as it came. */
  id: number | string;
  source: string;
  from: string;
  to: string;
  step: string;
  status: BackfillStatus;
  progress: {
    total: number;
    pending: number;
    running: number;
    completed: number;
    failed: number;
    cancelled: number;
  };
  counts: Counts;
  runs: { id: number; status: Status; stage: string | null; window: { from: string; to: string } }[];
  createdBy: string | null;
  createdAt: string;
  finishedAt: string | null;
  links: { self: string };
}

/** What identifies a table's rows: its key; for a child, how it joins its parent and the array it is from. */
export interface TableKey {
  key: string[];
  parentKey: Record<string, string> | null;
  from: string | null;
}

export interface SchemaColumn {
  column: string;
  type: string;
  path: string | null;
}

export interface SchemaTable {
  table: string;
  key: TableKey;
  columns: SchemaColumn[];
}

export interface SchemaDiffEnd {
  versionId: number | null;
  hash: string | null;
  label: string;
}

/** GET /sources/:name/schema. */
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
    from: SchemaDiffEnd;
    to: SchemaDiffEnd;
    unchanged: boolean;
    tablesAdded: SchemaTable[];
    tablesRemoved: SchemaTable[];
    tablesChanged: {
      table: string;
      columnsAdded: SchemaColumn[];
      columnsRemoved: SchemaColumn[];
      typesChanged: { column: string; from: string; to: string }[];
      pathsChanged: { column: string; from: string; to: string }[];
      keyChanged: { from: TableKey; to: TableKey } | null;
    }[];
    cursorColumn: { from: string | null; to: string | null } | null;
  };
}
