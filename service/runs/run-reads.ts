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

const RUN_COLUMNS = [
  'id',
  'source',
  'trigger',
  'status',
  'plan',
  'stage',
  'attempt',
  'params',
  'fetched',
  'valid',
  'rejected',
  'rows',
  'error',
  'cancelled_by as cancelledBy',
  'replay_of_id as replayOf',
  'backfill_id as backfill',
  'engine',
  'engine_reason as engineReason',
  'created_at as createdAt',
  'started_at as startedAt',
  'finished_at as finishedAt',
] as const;

const JOB_COLUMNS = [
  'id',
  'stage',
  'run_attempt as runAttempt',
  'status',
  'attempt',
  'max_attempts as maxAttempts',
  'external_id as externalId',
  'engine',
  'engine_reason as engineReason',
  'heartbeat_at as heartbeatAt',
  'params',
  'metrics',
  'error',
  'created_at as createdAt',
  'started_at as startedAt',
  'finished_at as finishedAt',
] as const;

const FILE_COLUMNS = [
  'f.uri',
  'f.layer',
  'f.table_name as table',
  'f.records',
  'f.bytes',
  'f.sha256',
  'j.id as jobId',
  'j.stage as jobStage',
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

const selectRuns = (db: ReadsDb) => db.selectFrom('runs').select(RUN_COLUMNS);
const selectJobs = (db: ReadsDb) => db.selectFrom('jobs').select(JOB_COLUMNS);
const selectFiles = (db: ReadsDb) =>
  db.selectFrom('lake_files as f').innerJoin('jobs as j', 'j.id', 'f.produced_by_id').select(FILE_COLUMNS);
type Row<Q extends { executeTakeFirstOrThrow(): Promise<unknown> }> = Awaited<
  ReturnType<Q['executeTakeFirstOrThrow']>
>;
type RunRow = Row<ReturnType<typeof selectRuns>>;
type JobRow = Row<ReturnType<typeof selectJobs>>;
type FileRow = Row<ReturnType<typeof selectFiles>>;

function toRun({ replayOf, backfill, createdAt, startedAt, finishedAt, ...run }: RunRow): RunFields {
  return {
    ...run,
    replayOf: replayOf === null ? null : { id: replayOf },
    backfill: backfill === null ? null : { id: backfill },
    createdAt: instant(createdAt),
    startedAt: instant(startedAt),
    finishedAt: instant(finishedAt),
  };
}

function toJob({ heartbeatAt, createdAt, startedAt, finishedAt, ...job }: JobRow): JobFields {
  return {
    ...job,
    heartbeatAt: instant(heartbeatAt),
    createdAt: instant(createdAt),
    startedAt: instant(startedAt),
    finishedAt: instant(finishedAt),
  };
}

function toFile({ jobId, jobStage, ...file }: FileRow): LakeFileFields {
  return { ...file, producedBy: { id: jobId, stage: jobStage } };
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
 * query cost more CPU than its round trip to MySQL (some 15 µs a query, three per GET /runs/:id). Kysely's
 * `executeQuery` takes a compiled query as it is; each one here checks its values match its placeholders.
 */
export class RunReads {
  private readonly db: ReadsDb;
  private readonly detail: {
    run: CompiledQuery<RunRow>;
    jobs: CompiledQuery<JobRow>;
    files: CompiledQuery<FileRow>;
  };
  /** GET /runs's query for each combination of filters, compiled when first asked for. */
  private readonly pages = new Map<string, CompiledQuery<RunRow>>();

  constructor(db: ReadsDb) {
    this.db = db;
    // Three indexed reads (the primary key, jobs_run_id_index, lake_files_run_id_index); 0 stands for the run id.
    this.detail = {
      run: selectRuns(db).where('id', '=', 0).compile(),
      jobs: selectJobs(db).where('run_id', '=', 0).orderBy('id').compile(),
      files: selectFiles(db).where('f.run_id', '=', 0).orderBy('f.id').compile(),
    };
  }

  /** A run with its jobs (every attempt's, oldest first) and its lake files; `run` is undefined if there is none. */
  async runDetail(
    id: number,
  ): Promise<{ run: RunFields | undefined; jobs: JobFields[]; files: LakeFileFields[] }> {
    // All three at once: for a missing run the other two find nothing, and a run found answers in one round
    // trip's time.
    const [run, jobs, files] = await Promise.all([
      this.run(this.detail.run, [id]),
      this.run(this.detail.jobs, [id]),
      this.run(this.detail.files, [id]),
    ]);
    return { run: run[0] && toRun(run[0]), jobs: jobs.map(toJob), files: files.map(toFile) };
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
      if (filter.source !== undefined) builder = builder.where('source', '=', filter.source);
      if (filter.status !== undefined) builder = builder.where('status', '=', filter.status);
      if (filter.before !== undefined) builder = builder.where('id', '<', filter.before);
      query = builder.orderBy('id', 'desc').limit(filter.limit).compile();
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
