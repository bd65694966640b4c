import type { EntityManager } from '@mikro-orm/mysql';
import { STAGES, type Stage } from '../../contract/stages.ts';
import { openOrm } from '../../service/state/orm.ts';
import { Job, LakeFile, Run } from '../../service/state/entities/index.ts';
import { Status, Trigger, type Layer } from '../../service/state/status.ts';

// The state the API benchmark reads: a `demo` source that has run every hour for a while, as the stages record
// it (service/stages/*.ts): per run a job per stage with its metrics, and the lake files each stage committed.

/** What was seeded: the runs' ids, and what GET /runs/:id must show for each. */
export interface Seeded {
  runIds: number[];
  jobsPerRun: Map<number, number>;
  filesPerRun: Map<number, number>;
}

const TABLES = ['orders', 'order_items', 'order_tags'] as const;
const HOUR = 3_600_000;
const sha = (n: number): string => n.toString(16).padStart(64, '0');

/** The fate of the i-th run: most complete, some fail in a stage (a few of those retried), a few are cancelled. */
function fate(i: number): { status: Status; failedAt?: Stage; attempt: number } {
  if (i % 20 === 7) return { status: Status.Failed, failedAt: 'transform', attempt: 1 };
  if (i % 20 === 13) return { status: Status.Completed, attempt: 2 }; // its load failed once, then a retry
  if (i % 25 === 3) return { status: Status.Failed, failedAt: 'ingest', attempt: 1 };
  if (i % 50 === 11) return { status: Status.Cancelled, attempt: 1 };
  return { status: Status.Completed, attempt: 1 };
}

function jobMetrics(stage: Stage, records: number, lake: string): Record<string, unknown> {
  switch (stage) {
    case 'ingest':
      return {
        pages: Math.ceil(records / 1000),
        bytes: records * 310,
        files: 2,
        invocations: 1,
        manifest: `${lake}/raw/_manifest.json`,
        nextCursor: `2026-01-01T00:00:00.000Z#${records}`,
      };
    case 'validate':
      return {
        read: records,
        groups: 1,
        invocations: 1,
        topErrors: [{ path: '/total', message: 'must be number', count: 3 }],
        rejectRatio: 3 / records,
      };
    case 'transform':
      return {
        read: records - 3,
        duplicates: 0,
        childDuplicates: 0,
        tables: { orders: records - 3, order_items: (records - 3) * 3, order_tags: (records - 3) * 2 },
        manifest: `${lake}/curated/_manifest.json`,
        reused: false,
        step: { engine: 'embedded', state: 'COMPLETED', stepId: 'embedded:4242' },
      };
    case 'load':
      return {
        rows: { orders: records - 3, order_items: (records - 3) * 3, order_tags: (records - 3) * 2 },
        stale: 0,
        step: { engine: 'embedded', state: 'COMPLETED', stepId: 'embedded:4243' },
      };
  }
}

/** Seeds `runs` runs of the `demo` source (in one database the service has migrated) and returns what it made. */
export async function seed(mysqlUrl: string, runs: number): Promise<Seeded> {
  const orm = await openOrm(mysqlUrl);
  const seeded: Seeded = { runIds: [], jobsPerRun: new Map(), filesPerRun: new Map() };
  const start = Date.now() - runs * HOUR;
  try {
    for (let from = 0; from < runs; from += 50) {
      const em = orm.em.fork() as EntityManager;
      const made: { run: Run; jobs: Job[]; files: LakeFile[] }[] = [];
      for (let i = from; i < Math.min(runs, from + 50); i++) made.push(seedRun(em, i, start + i * HOUR));
      await em.flush();
      for (const { run, jobs, files } of made) {
        seeded.runIds.push(run.id);
        seeded.jobsPerRun.set(run.id, jobs.length);
        seeded.filesPerRun.set(run.id, files.length);
      }
    }
  } finally {
    await orm.close();
  }
  return seeded;
}

function seedRun(em: EntityManager, i: number, at: number): { run: Run; jobs: Job[]; files: LakeFile[] } {
  const { status, failedAt, attempt } = fate(i);
  const records = 8000 + ((i * 7919) % 4000);
  const day = new Date(at).toISOString().slice(0, 10);
  const lake = `s3://afluente-lake-bench`;
  const error = failedAt
    ? {
        reason: failedAt === 'ingest' ? 'http_error' : 'embedded_failed',
        message:
          failedAt === 'ingest'
            ? 'GET https://api.example.com/orders?page=4 answered 503 three times'
            : 'split_tables: Binder Error: column "total" not found',
        stage: failedAt,
        attempt: 3,
        ...(failedAt === 'ingest' ? { httpStatus: 503, url: 'https://api.example.com/orders?page=4' } : {}),
      }
    : status === Status.Cancelled
      ? { reason: 'cancelled', message: 'cancelled by ops: wrong window' }
      : null;
  const stop = failedAt
    ? STAGES.indexOf(failedAt)
    : status === Status.Cancelled
      ? STAGES.indexOf('validate')
      : STAGES.length - 1;
  const completed = status === Status.Completed;
  const run = em.create(Run, {
    source: 'demo',
    trigger: i % 24 === 0 ? Trigger.Manual : Trigger.Schedule,
    status,
    plan: [...STAGES],
    stage: STAGES[stop],
    attempt,
    params: i % 24 === 0 ? { engine: 'embedded' } : null,
    idempotencyKey: i % 24 === 0 ? null : `schedule:demo:${at}`,
    fetched: stop > 0 || completed ? records : null,
    valid: stop > 1 || completed ? records - 3 : null,
    rejected: stop > 1 || completed ? 3 : null,
    rows: completed
      ? { orders: records - 3, order_items: (records - 3) * 3, order_tags: (records - 3) * 2 }
      : null,
    duplicates: stop > 2 || completed ? 0 : null,
    nextCursor: `2026-01-01T00:00:00.000Z#${records}`,
    engine: stop >= 2 ? 'embedded' : null,
    engineReason: stop >= 2 ? 'auto: validated 1.2 MB ≤ 2 GiB (AFLUENTE_EMBEDDED_MAX_BYTES)' : null,
    error,
    cancelledBy: status === Status.Cancelled ? 'ops' : null,
    createdAt: new Date(at),
    updatedAt: new Date(at + 40_000),
    startedAt: new Date(at + 200),
    finishedAt: new Date(at + 40_000),
  });
  const jobs: Job[] = [];
  const files: LakeFile[] = [];
  const prefix = (layer: Layer) => `${lake}/${layer}/source=demo/dt=${day}/run=${i + 1}`;
  const addFiles = (job: Job, layer: Layer, names: string[], table?: string): LakeFile[] => {
    const made = names.map((name, n) =>
      em.create(LakeFile, {
        uri: `${prefix(layer)}/${table ? `table=${table}/` : ''}${name}`,
        layer,
        table: table ?? null,
        records: Math.round(records / names.length),
        bytes: 150_000 + n * 1000 + i,
        sha256: layer === 'curated' ? null : sha(i * 100 + n + files.length),
        run,
        producedBy: job,
        createdAt: new Date(at + 10_000),
      }),
    );
    files.push(...made);
    return made;
  };
  const stages: { stage: Stage; runAttempt: number; failed: boolean }[] = [];
  for (let s = 0; s <= stop; s++)
    stages.push({ stage: STAGES[s] as Stage, runAttempt: 1, failed: s === stop && !!failedAt });
  // A run retried once: its load failed in attempt 1 and completed in attempt 2.
  if (attempt === 2)
    stages.splice(
      3,
      1,
      { stage: 'load', runAttempt: 1, failed: true },
      { stage: 'load', runAttempt: 2, failed: false },
    );
  let inputs: LakeFile[] = [];
  for (const [n, { stage, runAttempt, failed }] of stages.entries()) {
    const cancelled = status === Status.Cancelled && n === stages.length - 1;
    const jobStatus = failed ? Status.Failed : cancelled ? Status.Cancelled : Status.Completed;
    const job = em.create(Job, {
      run,
      stage,
      runAttempt,
      status: jobStatus,
      attempt: failed ? 3 : 1,
      maxAttempts: 3,
      queueJobId: `run-${i + 1}.${stage}.${runAttempt}`,
      externalId: stage === 'transform' || stage === 'load' ? `embedded:${4000 + n}` : `local:${3000 + n}`,
      engine: stage === 'transform' || stage === 'load' ? 'embedded' : null,
      engineReason: stage === 'transform' || stage === 'load' ? run.engineReason : null,
      heartbeatAt: new Date(at + 5000 * (n + 1)),
      params:
        stage === 'load'
          ? { mode: 'merge', keys: { orders: ['id'] }, tables: [...TABLES], schema: 'public' }
          : null,
      metrics: failed || cancelled ? null : jobMetrics(stage, records, lake),
      error: failed ? error : cancelled ? run.error : null,
      createdAt: new Date(at + 5000 * n),
      updatedAt: new Date(at + 5000 * (n + 1)),
      startedAt: new Date(at + 5000 * n + 100),
      finishedAt: new Date(at + 5000 * (n + 1)),
    });
    if (inputs.length > 0) job.inputs.set(inputs);
    jobs.push(job);
    if (failed || cancelled) continue;
    if (stage === 'ingest') inputs = addFiles(job, 'raw', ['part-00000.ndjson.gz', 'part-00001.ndjson.gz']);
    if (stage === 'validate') {
      inputs = addFiles(job, 'validated', ['part-00000.ndjson.gz', 'part-00001.ndjson.gz']);
      addFiles(job, 'rejected', ['part-00000.ndjson.gz']);
    }
    if (stage === 'transform')
      inputs = TABLES.flatMap((table) => addFiles(job, 'curated', ['part-00000.parquet'], table));
  }
  return { run, jobs, files };
}
