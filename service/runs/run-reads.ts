import type { InferKyselyDB, Kysely } from '@mikro-orm/mysql';
// MikroORM's own Kysely (it pins the version); only its types are imported.
import type { CompiledQuery } from 'kysely';
import type { Stage } from '../../contract/stages.ts';
import type { Job, LakeFile, Run } from '../state/entities/index.ts';
import type { Status } from '../state/status.ts';

// The API's reads of runs (GET /runs/:id, GET /runs, a source's last runs) as plain rows through the Kysely
// instance MikroORM builds on its own pool, not as entities: hydrating a run with its jobs and files into the
// identity map cost about 1.6 ms of CPU per GET /runs/:id, ten times the queries themselves (bench/README.md,
// `api`). Nothing read here is ever written back, so nothing of the unit of work is missed. The tables' and
// columns' names and types come from the entities (InferKyselyDB), so a renamed column fails to compile.

/** An instant: a Date (an entity's), or the ISO 8601 string a row read here holds. */
export type Instant = Date | string;

/** What a run's API view shows: a Run entity has these, and so does a run read here. */
export type RunFields = Pick<
  Run,
  | 'id'
  | 'source'
  | 'trigger'
  | 'status'
  | 'plan'
  | 'stage'
  | 'attempt'
  | 'params'
  | 'fetched'
  | 'valid'
  | 'rejected'
  | 'rows'
  | 'error'
  | 'cancelledBy'
  | 'engine'
  | 'engineReason'
> & {
  replayOf?: { id: number } | null;
  backfill?: { id: number } | null;
  schemaVersion?: { id: number } | null;
  createdAt: Instant;
  startedAt?: Instant | null;
  finishedAt?: Instant | null;
};

/** What a job's API view shows. */
export type JobFields = Pick<
  Job,
  | 'id'
  | 'stage'
  | 'runAttempt'
  | 'status'
  | 'attempt'
  | 'maxAttempts'
  | 'externalId'
  | 'engine'
  | 'engineReason'
  | 'params'
  | 'metrics'
  | 'error'
> & {
  heartbeatAt?: Instant | null;
  createdAt: Instant;
  startedAt?: Instant | null;
  finishedAt?: Instant | null;
};

/** What a lake file's API view shows, with the job that produced it. */
export type LakeFileFields = Pick<LakeFile, 'uri' | 'layer' | 'table' | 'records' | 'bytes' | 'sha256'> & {
  producedBy: { id: number; stage: Stage };
};

/** The tables read here, as Kysely sees them: names and types from the entities. */
export type ReadsSchema = InferKyselyDB<typeof Run | typeof Job | typeof LakeFile>;
export type ReadsDb = Kysely<ReadsSchema>;

// Every table under an alias (runs r, jobs j, lake_files f): GET /runs/:id reads the three in one join, where a
// job's columns are named job… and a file's file…, so that nothing clashes with the run's.
const RUN_COLUMNS = [
  'r.id',
  'r.source',
  'r.trigger',
  'r.status',
  'r.plan',
  'r.stage',
  'r.attempt',
  'r.params',
  'r.fetched',
  'r.valid',
  'r.rejected',
  'r.rows',
  'r.error',
  'r.cancelled_by as cancelledBy',
  'r.replay_of_id as replayOf',
  'r.backfill_id as backfill',
  'r.schema_version_id as schemaVersion',
  'r.engine',
  'r.engine_reason as engineReason',
  'r.created_at as createdAt',
  'r.started_at as startedAt',
  'r.finished_at as finishedAt',
] as const;

const JOB_COLUMNS = [
  'j.id as jobId',
  'j.stage as jobStage',
  'j.run_attempt as jobRunAttempt',
  'j.status as jobStatus',
  'j.attempt as jobAttempt',
  'j.max_attempts as jobMaxAttempts',
  'j.external_id as jobExternalId',
  'j.engine as jobEngine',
  'j.engine_reason as jobEngineReason',
  'j.heartbeat_at as jobHeartbeatAt',
  'j.params as jobParams',
  'j.metrics as jobMetrics',
  'j.error as jobError',
  'j.created_at as jobCreatedAt',
  'j.started_at as jobStartedAt',
  'j.finished_at as jobFinishedAt',
] as const;

const FILE_COLUMNS = [
  'f.id as fileId',
  'f.uri as fileUri',
  'f.layer as fileLayer',
  'f.table_name as fileTable',
  'f.records as fileRecords',
  'f.bytes as fileBytes',
  'f.sha256 as fileSha256',
] as const;

/** What a DATETIME(3) comes as: MikroORM has mysql2 return DATETIMEs as text (`dateStrings`). */
const DATETIME_3 = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}$/;

/**
 * A DATETIME as an ISO 8601 instant, whatever the inferred type says (see DATETIME_3). The values are UTC
 * (`forceUtcTimezone` in state/orm.ts), as the entities read them. A DATETIME(3) becomes the very string
 * Date#toISOString would give, without making a Date: for the 60 instants of a page of runs that was a tenth
 * of GET /runs.
 */
function instant(value: Date | string): string;
function instant(value: Date | string | null): string | null;
function instant(value: Date | string | null): string | null {
  if (value === null) return null;
  if (value instanceof Date) return value.toISOString();
  if (DATETIME_3.test(value)) return `${value.slice(0, 10)}T${value.slice(11)}Z`;
  return new Date(`${value.replace(' ', 'T')}Z`).toISOString();
}

const selectRuns = (db: ReadsDb) => db.selectFrom('runs as r').select(RUN_COLUMNS);
/**
 * A run with its jobs and their files: a row per file, one for a job without files, and one for a run without
 * jobs (its job and file columns null). The files are the run's own (`f.run_id`), with the jobs that made them.
 */
const selectRunDetail = (db: ReadsDb) =>
  db
    .selectFrom('runs as r')
    .leftJoin('jobs as j', 'j.run_id', 'r.id')
    .leftJoin('lake_files as f', (join) =>
      join.onRef('f.produced_by_id', '=', 'j.id').onRef('f.run_id', '=', 'r.id'),
    )
    .select([...RUN_COLUMNS, ...JOB_COLUMNS, ...FILE_COLUMNS]);
type RunRow = Awaited<ReturnType<ReturnType<typeof selectRuns>['executeTakeFirstOrThrow']>>;
type DetailRow = Awaited<ReturnType<ReturnType<typeof selectRunDetail>['executeTakeFirstOrThrow']>>;
/** A left join fills all of a table's columns or none: a row with a job id has the job's other columns too. */
type NonNull<T, K extends keyof T> = T & { [P in K]: NonNullable<T[P]> };
type JobRow = NonNull<
  DetailRow,
  'jobId' | 'jobStage' | 'jobRunAttempt' | 'jobStatus' | 'jobAttempt' | 'jobMaxAttempts' | 'jobCreatedAt'
>;
type FileRow = NonNull<JobRow, 'fileId' | 'fileUri' | 'fileLayer' | 'fileBytes'>;
const hasJob = (row: DetailRow): row is JobRow => row.jobId !== null;
const hasFile = (row: JobRow): row is FileRow => row.fileId !== null;

function toRun(row: RunRow): RunFields {
  return {
    id: row.id,
    source: row.source,
    trigger: row.trigger,
    status: row.status,
    plan: row.plan,
    stage: row.stage,
    attempt: row.attempt,
    params: row.params,
    fetched: row.fetched,
    valid: row.valid,
    rejected: row.rejected,
    rows: row.rows,
    error: row.error,
    cancelledBy: row.cancelledBy,
    replayOf: row.replayOf === null ? null : { id: row.replayOf },
    backfill: row.backfill === null ? null : { id: row.backfill },
    schemaVersion: row.schemaVersion === null ? null : { id: row.schemaVersion },
    engine: row.engine,
    engineReason: row.engineReason,
    createdAt: instant(row.createdAt),
    startedAt: instant(row.startedAt),
    finishedAt: instant(row.finishedAt),
  };
}

function toJob(row: JobRow): JobFields {
  return {
    id: row.jobId,
    stage: row.jobStage,
    runAttempt: row.jobRunAttempt,
    status: row.jobStatus,
    attempt: row.jobAttempt,
    maxAttempts: row.jobMaxAttempts,
    externalId: row.jobExternalId,
    engine: row.jobEngine,
    engineReason: row.jobEngineReason,
    heartbeatAt: instant(row.jobHeartbeatAt),
    params: row.jobParams,
    metrics: row.jobMetrics,
    error: row.jobError,
    createdAt: instant(row.jobCreatedAt),
    startedAt: instant(row.jobStartedAt),
    finishedAt: instant(row.jobFinishedAt),
  };
}

function toFile(row: FileRow): LakeFileFields {
  return {
    uri: row.fileUri,
    layer: row.fileLayer,
    table: row.fileTable,
    records: row.fileRecords,
    bytes: row.fileBytes,
    sha256: row.fileSha256,
    producedBy: { id: row.jobId, stage: row.jobStage },
  };
}

/** The drift a source's latest validated run saw: its validate job's metrics, which hold `drift`. */
export interface SourceDriftRow {
  run: number;
  metrics: Record<string, unknown>;
}

/** What GET /runs filters by; `before` is the keyset cursor (runs with a lower id). */
export interface RunFilter {
  source?: string;
  status?: Status;
  before?: number;
  limit: number;
}

/**
 * The reads, each built and compiled by Kysely once and then only given its values: building and compiling a
 * query cost more CPU than running it (some 15 µs, on the 2-core machine bench/README.md describes). Kysely's
 * `executeQuery` takes a compiled query as it is; each one here checks its values match its placeholders.
 */
export class RunReads {
  private readonly db: ReadsDb;
  private readonly detail: CompiledQuery<DetailRow>;
  private readonly drift: CompiledQuery<{
    run: number;
    job: number;
    metrics: Record<string, unknown> | null;
  }>;
  /** GET /runs's query for each combination of filters, compiled when first asked for. */
  private readonly pages = new Map<string, CompiledQuery<RunRow>>();

  constructor(db: ReadsDb) {
    this.db = db;
    // One statement on the primary key, jobs_run_id_index and lake_files_produced_by_id_index (0 stands for the
    // run id). It was three, one per table: each statement costs a round trip, which on the benchmark's machine
    // cost the service and MariaDB more CPU than the rows the join repeats (bench/README.md, `api`).
    this.detail = selectRunDetail(db).where('r.id', '=', 0).compile();
    // The source's runs newest first on runs_source_id_idx, each joined to its jobs by run;
    // MariaDB stops at the first runs that have drift in their metrics (EXPLAIN: ref on runs_source_id_idx, no
    // filesort, then jobs_run_id_index).
    this.drift = db
      .selectFrom('runs as r')
      .innerJoin('jobs as j', 'j.run_id', 'r.id')
      .select(['r.id as run', 'j.id as job', 'j.metrics'])
      .where('r.source', '=', '')
      .where('j.stage', '=', 'validate')
      .where((eb) => eb(eb.fn('json_contains_path', ['j.metrics', eb.val('one'), eb.val('$.drift')]), '=', 1))
      .orderBy('r.id', 'desc')
      .limit(4)
      .compile();
  }

  /** The validate metrics of the source's latest run whose validate stage counted drift (its latest attempt's). */
  async latestDrift(source: string): Promise<SourceDriftRow | undefined> {
    const rows = await this.run(this.drift, [source, 'validate', 'one', '$.drift', 1, 4]);
    const run = rows[0]?.run;
    const latest = rows.filter((r) => r.run === run).sort((a, b) => b.job - a.job)[0];
    return latest?.metrics ? { run: latest.run, metrics: latest.metrics } : undefined;
  }

  /** A run with its jobs (every attempt's, oldest first) and its lake files; `run` is undefined if there is none. */
  async runDetail(
    id: number,
  ): Promise<{ run: RunFields | undefined; jobs: JobFields[]; files: LakeFileFields[] }> {
    const rows = await this.run(this.detail, [id]);
    const first = rows[0];
    if (!first) return { run: undefined, jobs: [], files: [] };
    // No ORDER BY: sorting rows with JSON columns takes MariaDB an on-disk temporary table; the ids sort here.
    const jobs = new Map<number, JobFields>();
    const files: { id: number; file: LakeFileFields }[] = [];
    for (const row of rows) {
      if (!hasJob(row)) continue;
      if (!jobs.has(row.jobId)) jobs.set(row.jobId, toJob(row));
      if (hasFile(row)) files.push({ id: row.fileId, file: toFile(row) });
    }
    return {
      run: toRun(first),
      jobs: [...jobs.values()].sort((a, b) => a.id - b.id),
      files: files.sort((a, b) => a.id - b.id).map((f) => f.file),
    };
  }

  /** Runs newest first, filtered by source and status, below the id `before`; at most `limit`. */
  async runs(filter: RunFilter): Promise<RunFields[]> {
    // The values in the order the query's placeholders take them: its filters, then the limit.
    const values = [filter.source, filter.status, filter.before].filter((v) => v !== undefined);
    const key = [filter.source, filter.status, filter.before]
      .map((v) => (v === undefined ? '-' : '+'))
      .join('');
    let query = this.pages.get(key);
    if (!query) {
      let builder = selectRuns(this.db);
      // runs_source_status_id_idx, runs_source_id_idx and runs_status_id_idx serve each combination.
      if (filter.source !== undefined) builder = builder.where('r.source', '=', filter.source);
      if (filter.status !== undefined) builder = builder.where('r.status', '=', filter.status);
      if (filter.before !== undefined) builder = builder.where('r.id', '<', filter.before);
      query = builder.orderBy('r.id', 'desc').limit(filter.limit).compile();
      this.pages.set(key, query);
    }
    return (await this.run(query, [...values, filter.limit])).map(toRun);
  }

  private async run<R>(query: CompiledQuery<R>, values: unknown[]): Promise<R[]> {
    if (values.length !== query.parameters.length)
      throw new Error(
        `${values.length} values for a query with ${query.parameters.length} placeholders: ${query.sql}`,
      );
    const result = await this.db.executeQuery<R>({ ...query, parameters: values });
    return result.rows;
  }
}
