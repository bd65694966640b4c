import type { InferKyselyDB, Kysely } from '@mikro-orm/mysql';
import type { Stage } from '../../contract/stages.ts';
import type { Job, LakeFile, Run } from '../state/entities/index.ts';
import type { Status } from '../state/status.ts';

// The API's reads of runs (GET /runs/:id, GET /runs, a source's last runs) as plain rows through the Kysely
// instance MikroORM builds on its own pool, not as entities: hydrating a run with its jobs and files into the
// identity map cost about 1.6 ms of CPU per GET /runs/:id, ten times the queries themselves (see bench/README.md,
// `api`). Nothing read here is ever written back, so nothing of the unit of work is missed. The tables' and
// columns' names and types come from the entities (InferKyselyDB), so a renamed column fails to compile.

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
  | 'createdAt'
  | 'startedAt'
  | 'finishedAt'
> & { replayOf?: { id: number } | null; backfill?: { id: number } | null };

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
  | 'heartbeatAt'
  | 'params'
  | 'metrics'
  | 'error'
  | 'createdAt'
  | 'startedAt'
  | 'finishedAt'
>;

/** What a lake file's API view shows, with the job that produced it. */
export type LakeFileFields = Pick<LakeFile, 'uri' | 'layer' | 'table' | 'records' | 'bytes' | 'sha256'> & {
  producedBy: { id: number; stage: Stage };
};

export type ReadsDb = Kysely<InferKyselyDB<typeof Run | typeof Job | typeof LakeFile>>;

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

/**
 * A DATETIME as a Date. MikroORM's pool has mysql2 return DATETIMEs as text (`dateStrings`), whatever the
 * inferred type says, and its values are UTC (`forceUtcTimezone` in state/orm.ts), as the entities read them.
 */
function utc(value: Date | string): Date;
function utc(value: Date | string | null): Date | null;
function utc(value: Date | string | null): Date | null {
  if (value === null || value instanceof Date) return value;
  return new Date(`${value.replace(' ', 'T')}Z`);
}

const selectRuns = (db: ReadsDb) => db.selectFrom('runs').select(RUN_COLUMNS);
type RunRow = Awaited<ReturnType<ReturnType<typeof selectRuns>['executeTakeFirstOrThrow']>>;

function toRun({ replayOf, backfill, createdAt, startedAt, finishedAt, ...run }: RunRow): RunFields {
  return {
    ...run,
    replayOf: replayOf === null ? null : { id: replayOf },
    backfill: backfill === null ? null : { id: backfill },
    createdAt: utc(createdAt),
    startedAt: utc(startedAt),
    finishedAt: utc(finishedAt),
  };
}

/** A run with its jobs (every attempt's, oldest first) and its lake files; `run` is undefined if there is none. */
export async function readRunDetail(
  db: ReadsDb,
  id: number,
): Promise<{ run: RunFields | undefined; jobs: JobFields[]; files: LakeFileFields[] }> {
  // Three indexed queries at once (by primary key, jobs_run_id_index, lake_files_run_id_index): for a missing run
  // the other two find nothing, and a run found answers in one round trip's time.
  const [run, jobs, files] = await Promise.all([
    selectRuns(db).where('id', '=', id).executeTakeFirst(),
    db.selectFrom('jobs').select(JOB_COLUMNS).where('run_id', '=', id).orderBy('id').execute(),
    db
      .selectFrom('lake_files as f')
      .innerJoin('jobs as j', 'j.id', 'f.produced_by_id')
      .select([
        'f.uri',
        'f.layer',
        'f.table_name as table',
        'f.records',
        'f.bytes',
        'f.sha256',
        'j.id as jobId',
        'j.stage as jobStage',
      ])
      .where('f.run_id', '=', id)
      .orderBy('f.id')
      .execute(),
  ]);
  return {
    run: run && toRun(run),
    jobs: jobs.map((job) => ({
      ...job,
      heartbeatAt: utc(job.heartbeatAt),
      createdAt: utc(job.createdAt),
      startedAt: utc(job.startedAt),
      finishedAt: utc(job.finishedAt),
    })),
    files: files.map(({ jobId, jobStage, ...file }) => ({
      ...file,
      producedBy: { id: jobId, stage: jobStage },
    })),
  };
}

/** Runs newest first, filtered by source and status, below the id `before` (keyset paging); at most `limit`. */
export async function readRuns(
  db: ReadsDb,
  filter: { source?: string; status?: Status; before?: number; limit: number },
): Promise<RunFields[]> {
  let query = selectRuns(db);
  // The indexes runs_source_status_id_idx, runs_source_id_idx and runs_status_id_idx serve each combination.
  if (filter.source !== undefined) query = query.where('source', '=', filter.source);
  if (filter.status !== undefined) query = query.where('status', '=', filter.status);
  if (filter.before !== undefined) query = query.where('id', '<', filter.before);
  const rows = await query.orderBy('id', 'desc').limit(filter.limit).execute();
  return rows.map(toRun);
}
