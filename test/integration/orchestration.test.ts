import type { EntityManager } from '@mikro-orm/mysql';
import { afterEach, describe, expect, it } from 'vitest';
import type { Stage } from '../../contract/stages.ts';
import type { JobCatalog } from '../../service/orchestration/catalog.ts';
import {
  NonRetryableError,
  StageError,
  type StageHandlers,
} from '../../service/orchestration/stage-handler.ts';
import { Job, Run } from '../../service/state/entities/index.ts';
import { openOrm } from '../../service/state/orm.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { testConfig } from '../support/env.ts';
import { waitFor } from '../support/wait.ts';
import { FAST_CATALOG } from '../support/catalog.ts';

// Short backoffs and timeouts so retries and deadlines happen within a test.
const FAST = FAST_CATALOG;

const ok =
  (counts: Record<string, number> = {}) =>
  () =>
    Promise.resolve({ counts });
const allOk: StageHandlers = {
  ingest: ok({ fetched: 10 }),
  validate: ok({ valid: 9, rejected: 1 }),
  transform: ok(),
  load: ok(),
};

function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) =>
    signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }),
  );
}

const open: TestApp[] = [];
async function start(options: Parameters<typeof startTestApp>[0] = {}): Promise<TestApp> {
  const t = await startTestApp({ catalog: FAST, ...options });
  open.push(t);
  return t;
}
afterEach(async () => {
  for (const t of open.splice(0).reverse()) await t.close();
});

const em = (t: TestApp): EntityManager => t.app.orm.em.fork();

async function runUntil(t: TestApp, id: number, statuses: string[]): Promise<Run> {
  return waitFor(
    async () => {
      const run = await em(t).findOneOrFail(Run, id);
      return statuses.includes(run.status) ? run : undefined;
    },
    `run ${id} to reach ${statuses.join('/')}`,
  );
}

async function jobsOf(t: TestApp, id: number): Promise<Job[]> {
  return em(t).find(Job, { run: id }, { orderBy: { id: 'asc' } });
}

describe('orchestration: a run moves through its stage plan', () => {
  it('runs every stage in order, adds up the counts, and completes the run', async () => {
    const seen: Stage[] = [];
    const record = (stage: Stage) => async () => {
      seen.push(stage);
      return allOk[stage]({} as never);
    };
    const t = await start({
      handlers: {
        ingest: record('ingest'),
        validate: record('validate'),
        transform: record('transform'),
        load: record('load'),
      },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const done = await runUntil(t, run.id, ['COMPLETED', 'FAILED']);

    expect(done.status).toBe('COMPLETED');
    expect(seen).toEqual(['ingest', 'validate', 'transform', 'load']);
    expect({ fetched: done.fetched, valid: done.valid, rejected: done.rejected }).toEqual({
      fetched: 10,
      valid: 9,
      rejected: 1,
    });
    const jobs = await jobsOf(t, run.id);
    expect(jobs.map((j) => [j.stage, j.status, j.attempt])).toEqual([
      ['ingest', 'COMPLETED', 1],
      ['validate', 'COMPLETED', 1],
      ['transform', 'COMPLETED', 1],
      ['load', 'COMPLETED', 1],
    ]);
    expect(jobs.map((j) => j.queueJobId)).toEqual([
      `run-${run.id}.ingest.1`,
      `run-${run.id}.validate.1`,
      `run-${run.id}.transform.1`,
      `run-${run.id}.load.1`,
    ]);
    expect(done.finishedAt).not.toBeNull();
    const metrics = await t.app.metrics.registry.metrics();
    expect(metrics).toMatch(/^afluente_runs_finished_total\{source="demo",status="completed"\} 1$/m);
    for (const stage of ['ingest', 'validate', 'transform', 'load']) {
      expect(metrics).toMatch(
        new RegExp(
          `^afluente_stage_duration_seconds_count\\{source="demo",stage="${stage}",status="completed"\\} 1$`,
          'm',
        ),
      );
    }
  });

  it('retries a failed attempt and completes when the retry succeeds', async () => {
    let calls = 0;
    const t = await start({
      handlers: {
        ...allOk,
        validate: async () => {
          calls += 1;
          if (calls === 1) throw new Error('source hiccup');
          return {};
        },
      },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });
    expect((await runUntil(t, run.id, ['COMPLETED', 'FAILED'])).status).toBe('COMPLETED');
    const validate = (await jobsOf(t, run.id)).find((j) => j.stage === 'validate');
    expect(validate).toMatchObject({ status: 'COMPLETED', attempt: 2, error: null });
  });

  it('fails the job and the run with the error once the attempts are spent, and starts no later stage', async () => {
    const t = await start({
      handlers: {
        ...allOk,
        transform: () => Promise.reject(new Error('step exploded')),
      },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const failed = await runUntil(t, run.id, ['FAILED', 'COMPLETED']);

    expect(failed.status).toBe('FAILED');
    expect(failed.error).toEqual({
      reason: 'error',
      message: 'step exploded',
      stage: 'transform',
      attempt: 2,
    });
    const jobs = await jobsOf(t, run.id);
    expect(jobs.map((j) => [j.stage, j.status])).toEqual([
      ['ingest', 'COMPLETED'],
      ['validate', 'COMPLETED'],
      ['transform', 'FAILED'],
    ]);
    expect(jobs[2]?.error).toEqual(failed.error);
    expect(await t.app.metrics.registry.metrics()).toMatch(
      /^afluente_runs_finished_total\{source="demo",status="failed"\} 1$/m,
    );
  });

  it('does not retry a non-retryable error', async () => {
    let calls = 0;
    const t = await start({
      handlers: {
        ...allOk,
        ingest: () => {
          calls += 1;
          return Promise.reject(
            new NonRetryableError('http_401', 'GET https://api.example.com/orders answered 401'),
          );
        },
      },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const failed = await runUntil(t, run.id, ['FAILED']);
    expect(calls).toBe(1);
    expect(failed.error).toMatchObject({ reason: 'http_401', attempt: 1 });
  });

  it('aborts a stage that runs past its timeout', async () => {
    const catalog: JobCatalog = { ...FAST, ingest: { ...FAST.ingest, attempts: 1, timeoutMs: 300 } };
    let aborted = false;
    const t = await start({
      catalog,
      handlers: {
        ...allOk,
        ingest: async ({ signal }) => {
          signal.addEventListener('abort', () => (aborted = true));
          return untilAborted(signal);
        },
      },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const failed = await runUntil(t, run.id, ['FAILED']);
    expect(aborted).toBe(true);
    expect(failed.error).toEqual({
      reason: 'timeout',
      message: 'stage "ingest" timed out after 300 ms',
      stage: 'ingest',
      attempt: 1,
    });
  });

  it('stops a running stage within a heartbeat when its run is cancelled', async () => {
    let started = false;
    let stoppedWith: unknown;
    const t = await start({
      handlers: {
        ...allOk,
        ingest: async ({ signal }) => {
          started = true;
          signal.addEventListener('abort', () => (stoppedWith = signal.reason));
          return untilAborted(signal);
        },
      },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });
    await waitFor(async () => (started ? true : undefined), 'the ingest handler to start');
    await t.app.runs.cancel(run.id, 'tester');

    await waitFor(async () => stoppedWith, 'the handler to be told to stop');
    expect(stoppedWith).toEqual({ kind: 'cancelled' });
    const cancelled = await runUntil(t, run.id, ['CANCELLED']);
    expect(cancelled.cancelledBy).toBe('tester');
    expect((await jobsOf(t, run.id)).map((j) => [j.stage, j.status])).toEqual([['ingest', 'CANCELLED']]);
  });
  it('lets go of a stage whose run was cancelled before a heartbeat said so, without a retry', async () => {
    // A cancel stops a Spark step directly; the step's end can reach the handler before the worker's heartbeat
    // (a long one here) has seen the run cancelled. The worker must not take that for a failed attempt.
    const t = await start({
      env: { AFLUENTE_HEARTBEAT_MS: '60000' },
      handlers: {
        ...allOk,
        transform: async ({ run }) => {
          await t.app.runs.cancel(run.id, 'tester');
          throw new StageError('step_cancelled', 'split_tables: the step was cancelled outside afluente');
        },
      },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const queued = await waitFor(async () => {
      const job = await t.app.queues.get('transform').getJob(`run-${run.id}.transform.1`);
      const state = await job?.getState();
      return state === 'completed' || state === 'failed' || state === 'delayed' ? job : undefined;
    }, 'the transform worker to let go of its job');
    // Completed as a stage whose run ended; a failed attempt would be `delayed` for its retry. Read again: a Job
    // fetched while still active holds no return value even when the state read after it says completed.
    const done = await t.app.queues.get('transform').getJob(queued.id!);
    expect([await done?.getState(), done?.returnvalue]).toEqual(['completed', { cancelled: true }]);
    const jobs = await jobsOf(t, run.id);
    expect(jobs.map((j) => [j.stage, j.status, j.error])).toEqual([
      ['ingest', 'COMPLETED', null],
      ['validate', 'COMPLETED', null],
      ['transform', 'CANCELLED', null],
    ]);
  });
});

describe('cancel while a Lambda is running', () => {
  for (const stage of ['ingest', 'validate'] as const) {
    it(`ignores the late result of a ${stage} Lambda that answers after its run was cancelled`, async () => {
      let started = false;
      let answer = (): void => undefined;
      // The stand-in Lambda does not stop when told to: its result arrives after the cancel, as a real
      // Lambda's can (an invocation cannot be recalled).
      const late = async () => {
        started = true;
        await new Promise<void>((resolve) => (answer = resolve));
        return stage === 'ingest' ? { counts: { fetched: 10 } } : { counts: { valid: 9, rejected: 1 } };
      };
      const t = await start({ handlers: { ...allOk, [stage]: late } });
      const { run } = await t.app.runs.create({ source: 'demo' });
      await waitFor(async () => (started ? true : undefined), `the ${stage} handler to start`);
      await t.app.runs.cancel(run.id, 'tester');
      answer();
      const cancelled = await runUntil(t, run.id, ['CANCELLED']);
      // Once the worker is done with the queue job, the late result has been handled: nothing may have moved.
      const queueJob = `run-${run.id}.${stage}.1`;
      await waitFor(async () => {
        const state = await (await t.app.queues.get(stage).getJob(queueJob))?.getState();
        return state === 'completed' || state === 'failed' ? state : undefined;
      }, 'the worker to finish with the late result');
      const after = await em(t).findOneOrFail(Run, run.id);
      expect(after).toMatchObject({ status: 'CANCELLED', cancelledBy: 'tester', valid: cancelled.valid });
      expect(after.fetched).toBe(stage === 'ingest' ? null : 10);
      const jobs = (await jobsOf(t, run.id)).map((j) => [j.stage, j.status]);
      expect(jobs.at(-1)).toEqual([stage, 'CANCELLED']);
      expect(jobs.map(([s]) => s)).not.toContain(stage === 'ingest' ? 'validate' : 'transform');
    });
  }
});

describe('queueing is idempotent and MySQL is the outbox', () => {
  it('creates one queue job however often a stage is enqueued', async () => {
    const t = await start({ env: { AFLUENTE_ROLES: 'api' } });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const [job] = await jobsOf(t, run.id);
    const data = { runId: run.id, jobId: job!.id, runAttempt: 1 };
    await t.app.queues.enqueue('ingest', data);
    await t.app.queues.enqueue('ingest', data);
    expect(await t.app.queues.get('ingest').getJobCountByTypes('waiting', 'active', 'delayed')).toBe(1);
  });

  it('queues again a pending job whose queue entry was lost', async () => {
    const t = await start({ env: { AFLUENTE_ROLES: 'api' } });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const queue = t.app.queues.get('ingest');
    await queue.remove(`run-${run.id}.ingest.1`);
    expect(await queue.getJob(`run-${run.id}.ingest.1`)).toBeUndefined();

    expect(await t.app.dispatcher.sweep(0)).toBe(1);
    expect(await queue.getJob(`run-${run.id}.ingest.1`)).toBeDefined();
    expect(await t.app.dispatcher.sweep(0)).toBe(1);
    expect(await queue.getJobCountByTypes('waiting')).toBe(1);
  });
});

describe('graceful shutdown', () => {
  it('finishes an active stage within the grace period before closing', async () => {
    let started = false;
    const t = await start({
      handlers: {
        ...allOk,
        ingest: async () => {
          started = true;
          await new Promise((r) => setTimeout(r, 500));
          return { counts: { fetched: 3 } };
        },
      },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });
    await waitFor(async () => (started ? true : undefined), 'ingest to start');
    await t.app.close();

    const reader = await start({ config: t.config, env: {}, handlers: allOk });
    const jobs = await jobsOf(reader, run.id);
    expect(jobs[0]).toMatchObject({ stage: 'ingest', status: 'COMPLETED' });
  });

  it('releases a stage still running after the grace period, and another worker completes it', async () => {
    const config = testConfig({ AFLUENTE_SHUTDOWN_GRACE_MS: '300' });
    let started = false;
    const first = await startTestApp({
      config,
      catalog: FAST,
      handlers: {
        ...allOk,
        ingest: async ({ signal }) => {
          started = true;
          return untilAborted(signal);
        },
      },
    });
    const { run } = await first.app.runs.create({ source: 'demo' });
    await waitFor(async () => (started ? true : undefined), 'ingest to start');
    await first.app.close();

    const orm = await openOrm(config.mysql.url);
    const released = await orm.em.fork().findOneOrFail(Job, { run: run.id, stage: 'ingest' });
    await orm.close();
    expect(released).toMatchObject({ status: 'PENDING', attempt: 0 });

    const second = await start({ config, handlers: allOk });
    const queued = await second.app.queues.get('ingest').getJob(`run-${run.id}.ingest.1`);
    expect(queued).toBeDefined();
    const done = await runUntil(second, run.id, ['COMPLETED', 'FAILED']);
    expect(done.status).toBe('COMPLETED');
    const ingest = (await jobsOf(second, run.id))[0];
    expect(ingest).toMatchObject({ stage: 'ingest', status: 'COMPLETED', attempt: 1 });
  });
});
