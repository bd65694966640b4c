import { OptimisticLockError, ReferenceKind, type EntityManager, type MikroORM } from '@mikro-orm/mysql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { STAGES } from '../../contract/stages.ts';
import { Job, Run } from '../../service/state/entities/index.ts';
import { migrate, openOrm } from '../../service/state/orm.ts';
import { Status } from '../../service/state/status.ts';
import { IllegalTransitionError, transitionRun } from '../../service/state/transitions.ts';
import { dropTestState, testConfig } from '../support/env.ts';

const config = testConfig();
let orm: MikroORM;

beforeAll(async () => {
  orm = await openOrm(config.mysql.url);
  await migrate(orm, config.mysql.url);
});
afterAll(async () => {
  await orm.close();
  await dropTestState(config);
});

const fork = (): EntityManager => orm.em.fork();

async function newRun(): Promise<number> {
  const em = fork();
  const run = em.create(Run, { source: 'demo', plan: [...STAGES] });
  await em.flush();
  return run.id;
}

describe('state in MySQL', () => {
  it('creates the database when it is missing and applies the committed migrations', async () => {
    const [row] = await orm.em
      .getConnection()
      .execute<{ n: number }[]>(
        'select count(*) as n from information_schema.tables where table_schema = database() and table_name in (?, ?, ?, ?)',
        ['runs', 'jobs', 'lake_files', 'source_states'],
      );
    expect(Number(row?.n)).toBe(4);
    expect(await orm.migrator.getPending()).toEqual([]);
  });

  // MikroORM's full schema diff is not usable here: its MySQL driver misreads MariaDB's JSON check constraints
  // and NULL defaults and reports them as changes. Tables and columns are what a missing migration would lose.
  it('has committed migrations that create every table and column the entities declare', async () => {
    const rows = await orm.em
      .getConnection()
      .execute<{ t: string; c: string }[]>(
        'select table_name as t, column_name as c from information_schema.columns where table_schema = database()',
      );
    const actual = new Set(rows.map((r) => `${r.t}.${r.c}`));
    const expected: string[] = [];
    for (const meta of orm.getMetadata()) {
      for (const prop of meta.props) {
        if (
          prop.persist === false ||
          prop.kind === ReferenceKind.ONE_TO_MANY ||
          prop.kind === ReferenceKind.MANY_TO_MANY
        )
          continue;
        for (const field of prop.fieldNames) expected.push(`${meta.tableName}.${field}`);
      }
    }
    expect(expected.length).toBeGreaterThan(40);
    expect(expected.filter((column) => !actual.has(column))).toEqual([]);
    expect(actual).toContain('job_inputs.lake_file_id');
  });

  it('is idempotent: migrating again applies nothing', async () => {
    expect(await migrate(orm, config.mysql.url)).toEqual([]);
  });

  it('backs the list queries with indexes', async () => {
    const rows = await orm.em.getConnection().execute<{ Key_name: string }[]>('show index from runs');
    const names = new Set(rows.map((r) => r.Key_name));
    for (const index of [
      'runs_source_status_id_idx',
      'runs_source_id_idx',
      'runs_status_id_idx',
      'runs_idempotency_key_unique',
    ]) {
      expect(names).toContain(index);
    }
  });

  it('lets one of two racing writers win and the other fail cleanly with an optimistic-lock error', async () => {
    const id = await newRun();
    const a = fork();
    const b = fork();
    const runA = await a.findOneOrFail(Run, id);
    const runB = await b.findOneOrFail(Run, id);

    transitionRun(runA, Status.Running);
    await a.flush();
    transitionRun(runB, Status.Cancelled);
    await expect(b.flush()).rejects.toBeInstanceOf(OptimisticLockError);

    const stored = await fork().findOneOrFail(Run, id);
    expect(stored.status).toBe('RUNNING');
    expect(stored.version).toBe(2);
  });

  it('never lets a finished run be moved back to RUNNING', async () => {
    const id = await newRun();
    const em = fork();
    const run = await em.findOneOrFail(Run, id);
    transitionRun(run, Status.Running);
    transitionRun(run, Status.Completed);
    await em.flush();

    const again = await fork().findOneOrFail(Run, id);
    expect(() => transitionRun(again, Status.Running)).toThrow(IllegalTransitionError);
    expect((await fork().findOneOrFail(Run, id)).status).toBe('COMPLETED');
  });

  it('keeps one job per run, stage and attempt', async () => {
    const id = await newRun();
    const em = fork();
    const run = await em.findOneOrFail(Run, id);
    em.create(Job, { run, stage: 'ingest', maxAttempts: 3, queueJobId: `run-${id}.ingest.1` });
    await em.flush();
    const other = fork();
    other.create(Job, { run: id, stage: 'ingest', maxAttempts: 3, queueJobId: `run-${id}.ingest.1` });
    await expect(other.flush()).rejects.toThrow(/Duplicate entry/);
  });

  it('round-trips JSON columns on MariaDB', async () => {
    const em = fork();
    const run = em.create(Run, {
      source: 'demo',
      plan: ['ingest', 'load'],
      params: { window: { from: '2026-01-01T00:00:00.000Z' } },
    });
    await em.flush();
    const loaded = await fork().findOneOrFail(Run, run.id);
    expect(loaded.plan).toEqual(['ingest', 'load']);
    expect(loaded.params).toEqual({ window: { from: '2026-01-01T00:00:00.000Z' } });
  });
});

describe('opening the state database', () => {
  it('lets several instances create a missing database at once', async () => {
    const racing = testConfig();
    try {
      const orms = await Promise.all(Array.from({ length: 4 }, () => openOrm(racing.mysql.url)));
      expect(orms).toHaveLength(4);
      await Promise.all(orms.map((o) => o.close()));
    } finally {
      await dropTestState(racing);
    }
  });
});
