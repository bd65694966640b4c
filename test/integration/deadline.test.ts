// Per-stage deadlines (a source's `deadlineSeconds`), on the real MariaDB, Redis and moto's EMR: the reconciler
// fails a stage still open past its deadline, with its run, removes its queued retry, cancels its Spark step,
// and the worker running it stops without recording anything more.
import type { EMRClient } from '@aws-sdk/client-emr';
import { AddJobFlowStepsCommand, RunJobFlowCommand } from '@aws-sdk/client-emr';
import type { EntityManager } from '@mikro-orm/mysql';
import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Stage } from '../../contract/stages.ts';
import type { JobCatalog } from '../../service/orchestration/catalog.ts';
import {
  StageError,
  type StageHandlers,
  type StopReason,
} from '../../service/orchestration/stage-handler.ts';
import { Job, Run } from '../../service/state/entities/index.ts';
import { startTestApp, withDeadlines, type TestApp } from '../support/app.ts';
import { motoEmr, emrClientFor } from '../support/emr.ts';
import { startMoto, type Moto } from '../support/moto.ts';
import { waitFor } from '../support/wait.ts';
import { FAST_CATALOG } from '../support/catalog.ts';
import { TOKEN } from '../support/env.ts';

// Short backoffs so a retry is not what ends a test; every stage gets a stand-in handler.
const FAST = FAST_CATALOG;

/** Handlers that record which stages ran, and succeed. */
function recording(seen: Stage[]): StageHandlers {
  const ok = (stage: Stage) => async () => {
    seen.push(stage);
    return {};
  };
  return { ingest: ok('ingest'), validate: ok('validate'), transform: ok('transform'), load: ok('load') };
}

/** A stage that runs until it is told to stop (heartbeating all along: the worker does that), and says why. */
function untilStopped(seen: Stage[], stops: StopReason[]) {
  return async ({ stage, signal }: { stage: Stage; signal: AbortSignal }): Promise<never> => {
    seen.push(stage);
    return new Promise((_, reject) =>
      signal.addEventListener(
        'abort',
        () => {
          stops.push(signal.reason as StopReason);
          reject(new Error('stopped'));
        },
        { once: true },
      ),
    );
  };
}

const open: TestApp[] = [];
async function start(options: Parameters<typeof startTestApp>[0]): Promise<TestApp> {
  const t = await startTestApp({ catalog: FAST, ...options });
  open.push(t);
  return t;
}
afterEach(async () => {
  for (const t of open.splice(0).reverse()) await t.close();
});

const em = (t: TestApp): EntityManager => t.app.orm.em.fork();

async function jobsOf(t: TestApp, runId: number): Promise<Job[]> {
  return em(t).find(Job, { run: runId }, { orderBy: { id: 'asc' } });
}

async function jobWhen(t: TestApp, runId: number, what: string, ok: (job: Job) => boolean): Promise<Job> {
  return waitFor(async () => {
    const [job] = await jobsOf(t, runId);
    return job && ok(job) ? job : undefined;
  }, what);
}

async function failedRuns(t: TestApp): Promise<number> {
  const metric = await t.app.metrics.registry.getSingleMetric('afluente_runs_finished_total')?.get();
  return metric?.values.find((v) => v.labels.status === 'failed')?.value ?? 0;
}

const DEADLINE_MESSAGE = (stage: Stage, seconds: number): RegExp =>
  new RegExp(
    `^stage "${stage}" passed its ${seconds} s deadline: it started at (\\S+Z) and had to finish by (\\S+Z)$`,
  );

describe('a stage past its deadline', () => {
  it('fails the run, stops the worker running it, and starts no later stage', async () => {
    const seen: Stage[] = [];
    const stops: StopReason[] = [];
    const t = await start({
      sources: await withDeadlines({ ingest: 1 }),
      handlers: { ...recording(seen), ingest: untilStopped(seen, stops) },
      env: { AFLUENTE_RECONCILE_INTERVAL_MS: '200' },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });

    const job = await jobWhen(t, run.id, 'the ingest job to fail', (j) => j.status === 'FAILED');
    expect(job.error).toEqual({
      reason: 'deadline_exceeded',
      message: expect.stringMatching(DEADLINE_MESSAGE('ingest', 1)),
      stage: 'ingest',
      attempt: 1,
    });
    const [, startedAt, dueAt] = DEADLINE_MESSAGE('ingest', 1).exec(job.error?.message ?? '') ?? [];
    expect(startedAt).toBe(job.startedAt?.toISOString());
    expect(Date.parse(dueAt ?? '')).toBe((job.startedAt?.getTime() ?? 0) + 1000);
    // It was the deadline, not a silent worker: the job heartbeated until it was failed, and failed after it.
    expect(job.heartbeatAt!.getTime()).toBeGreaterThan(job.startedAt!.getTime());
    expect(job.finishedAt!.getTime()).toBeGreaterThanOrEqual(job.startedAt!.getTime() + 1000);
    const failed = await em(t).findOneOrFail(Run, run.id);
    expect(failed.status).toBe('FAILED');
    expect(failed.error).toEqual(job.error);

    // The worker learns of it at its next heartbeat: the handler's signal aborts (an EMR step would be cancelled).
    await waitFor(async () => (stops.length > 0 ? true : undefined), 'the handler to be stopped');
    expect(stops).toEqual([{ kind: 'cancelled' }]);
    // ...and it ends the queue job without recording anything: no retry, no second failure.
    const queued = await t.app.queues.get('ingest').getJob(job.queueJobId);
    await waitFor(
      async () => ((await queued?.getState()) === 'completed' ? true : undefined),
      'the worker to let go of the job',
    );
    expect((await t.app.queues.get('ingest').getJob(job.queueJobId))?.returnvalue).toEqual({
      cancelled: true,
    });
    const after = await jobsOf(t, run.id);
    expect(after.map((j) => [j.stage, j.status, j.version])).toEqual([['ingest', 'FAILED', job.version]]);
    expect(after[0]?.error).toEqual(job.error);
    expect(seen).toEqual(['ingest']);
    expect(await failedRuns(t)).toBe(1);

    // A later sweep finds nothing left to do.
    expect(await t.app.reconciler?.sweep()).toEqual({ polled: 0, failed: 0, expired: 0 });
    const final = await em(t).findOneOrFail(Run, run.id);
    expect([final.status, final.version]).toEqual(['FAILED', failed.version]);
    expect(await failedRuns(t)).toBe(1);
  });

  it('fails a stage waiting between two attempts, and removes its queued retry', async () => {
    let calls = 0;
    // A long backoff: the retry waits, delayed in its queue, well past the deadline.
    const catalog: JobCatalog = {
      ...FAST,
      ingest: { ...FAST.ingest, attempts: 3, backoff: { type: 'fixed', delay: 600_000 } },
    };
    const t = await start({
      catalog,
      sources: await withDeadlines({ ingest: 1 }),
      handlers: {
        ...recording([]),
        ingest: () => {
          calls += 1;
          return Promise.reject(new StageError('source_error', 'the source answered 503'));
        },
      },
      // The test sweeps by hand.
      env: { AFLUENTE_RECONCILE_INTERVAL_MS: '3600000' },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const waiting = await jobWhen(
      t,
      run.id,
      'the ingest job to wait for its retry',
      (j) => j.status === 'PENDING' && j.attempt === 1,
    );
    expect(waiting.startedAt).not.toBeNull();
    expect(waiting.error).toMatchObject({ reason: 'source_error' });
    const queue = t.app.queues.get('ingest');
    // MySQL records the failed attempt before the worker hands the job back to BullMQ, which then delays it.
    await waitFor(
      async () =>
        (await (await queue.getJob(waiting.queueJobId))?.getState()) === 'delayed' ? true : undefined,
      'the retry to be delayed in its queue',
    );

    const report = await waitFor(async () => {
      const r = await t.app.reconciler?.sweep();
      return r && r.expired > 0 ? r : undefined;
    }, 'a sweep to find the job past its deadline');
    expect(report).toEqual({ polled: 0, failed: 0, expired: 1 });

    const job = await em(t).findOneOrFail(Job, waiting.id, { populate: ['run'] });
    expect(job.status).toBe('FAILED');
    expect(job.error).toEqual({
      reason: 'deadline_exceeded',
      message: expect.stringMatching(DEADLINE_MESSAGE('ingest', 1)),
      stage: 'ingest',
      attempt: 1,
    });
    expect(job.run.status).toBe('FAILED');
    expect(job.run.error).toEqual(job.error);
    expect(await queue.getJob(waiting.queueJobId)).toBeUndefined();
    expect(calls).toBe(1);
    expect(await failedRuns(t)).toBe(1);
  });

  it('leaves a stage alone within its deadline, and counts from the stage’s first start', async () => {
    const seen: Stage[] = [];
    const stops: StopReason[] = [];
    const t = await start({
      sources: await withDeadlines({ ingest: 3600 }),
      handlers: { ...recording(seen), ingest: untilStopped(seen, stops) },
      env: { AFLUENTE_RECONCILE_INTERVAL_MS: '3600000' },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const running = await jobWhen(t, run.id, 'the ingest job to run', (j) => j.status === 'RUNNING');

    // Started 3590 s ago: 10 s left.
    const startedAt = new Date(Date.now() - 3_590_000);
    await em(t).nativeUpdate(Job, { id: running.id }, { startedAt });
    expect(await t.app.reconciler?.sweep()).toEqual({ polled: 0, failed: 0, expired: 0 });
    // GET /runs/:id says when the open stage must have finished.
    const shown = await request(t.app.server)
      .get(`/runs/${run.id}`)
      .set({ authorization: `Bearer ${TOKEN}` });
    expect(shown.body.jobs[0].deadlineAt).toBe(new Date(startedAt.getTime() + 3_600_000).toISOString());
    const [within] = await jobsOf(t, run.id);
    expect([within?.status, within?.error, stops]).toEqual(['RUNNING', null, []]);
    expect((await em(t).findOneOrFail(Run, run.id)).status).toBe('RUNNING');

    // Started 3610 s ago: 10 s past.
    await em(t).nativeUpdate(Job, { id: running.id }, { startedAt: new Date(Date.now() - 3_610_000) });
    expect(await t.app.reconciler?.sweep()).toEqual({ polled: 0, failed: 0, expired: 1 });
    const [past] = await jobsOf(t, run.id);
    expect(past?.error?.message).toMatch(DEADLINE_MESSAGE('ingest', 3600));
    await waitFor(async () => (stops.length > 0 ? true : undefined), 'the handler to be stopped');
  });

  it('does not count the time a stage waited to be started', async () => {
    // No worker: the job stays PENDING, never started, however old it is.
    const t = await start({
      sources: await withDeadlines({ ingest: 1 }),
      env: { AFLUENTE_ROLES: 'api,scheduler', AFLUENTE_RECONCILE_INTERVAL_MS: '3600000' },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });
    const [job] = await jobsOf(t, run.id);
    const old = new Date(Date.now() - 3_600_000);
    await em(t).nativeUpdate(Job, { id: job!.id }, { createdAt: old, updatedAt: old });
    expect(await t.app.reconciler?.sweep()).toEqual({ polled: 0, failed: 0, expired: 0 });
    const [after] = await jobsOf(t, run.id);
    expect([after?.status, after?.startedAt, after?.error]).toEqual(['PENDING', null, null]);
  });
});

describe('a Spark stage past its deadline on EMR', () => {
  // moto's EMR in server mode. moto has no CancelSteps: the client's middleware (test/support/emr.ts) stands in
  // for it there, answering SUBMITTED and moving the step to CANCEL_PENDING, then CANCELLED, as EMR does.
  let moto: Moto;
  let admin: EMRClient;
  beforeAll(async () => {
    moto = await startMoto();
    admin = emrClientFor(moto);
  });
  afterAll(async () => {
    admin?.destroy();
    await moto?.stop();
  });

  it('cancels the step the stage started and records that it reached CANCELLED', async () => {
    const { JobFlowId: clusterId } = await admin.send(
      new RunJobFlowCommand({
        Name: 'shared',
        ReleaseLabel: 'emr-7.5.0',
        Instances: { MasterInstanceType: 'm5.xlarge', InstanceCount: 1, KeepJobFlowAliveWhenNoSteps: true },
        ServiceRole: 'EMR_DefaultRole',
        JobFlowRole: 'EMR_EC2_DefaultRole',
      }),
    );
    const added = await admin.send(
      new AddJobFlowStepsCommand({
        JobFlowId: clusterId,
        Steps: [{ Name: 'split_tables', HadoopJarStep: { Jar: 'command-runner.jar', Args: ['true'] } }],
      }),
    );
    const stepId = added.StepIds?.[0];
    const emr = motoEmr(moto);
    // No worker: the test plays the one running the transform stage; the scheduler role's reconciler sweeps.
    const t = await start({
      sources: await withDeadlines({ transform: 1 }),
      emrClient: emr.client,
      env: {
        AFLUENTE_ROLES: 'api,scheduler',
        AFLUENTE_RECONCILE_INTERVAL_MS: '200',
        AFLUENTE_STEP_RUNNER: 'emr',
        AFLUENTE_LAKE_URI: 's3://lake-bucket/lake',
        AFLUENTE_EMR_SCRIPTS_URI: 's3://code-bucket/spark',
        AFLUENTE_EMR_CLUSTER_ID: clusterId!,
        AFLUENTE_EMR_POLL_MS: '100',
        AFLUENTE_AWS_ENDPOINT: moto.endpoint,
      },
    });
    const { run } = await t.app.runs.create({ source: 'demo' });
    // The run at its transform stage, as if ingest and validate had committed, with its step submitted.
    const [ingest] = await jobsOf(t, run.id);
    await em(t).nativeUpdate(Job, { id: ingest!.id }, { status: 'COMPLETED' });
    const fork = em(t);
    const transform = t.app.engine.createJob(fork, await fork.findOneOrFail(Run, run.id), 'transform');
    await fork.flush();
    expect((await t.app.engine.start(transform.id, 1)).action).toBe('run');
    await t.app.engine.attachExternal(transform.id, run.id, stepId!, clusterId);

    const failed = await waitFor(async () => {
      const job = await em(t).findOneOrFail(Job, transform.id);
      return job.status === 'FAILED' && job.metrics?.stepCancel ? job : undefined;
    }, 'the transform job to fail and its step to be cancelled');
    expect(failed.error).toEqual({
      reason: 'deadline_exceeded',
      message: expect.stringMatching(DEADLINE_MESSAGE('transform', 1)),
      stage: 'transform',
      attempt: 1,
    });
    expect(failed.metrics?.stepCancel).toEqual({ state: 'CANCELLED', at: expect.any(String) });
    expect(emr.calls.filter((c) => c.command === 'CancelStepsCommand').map((c) => c.input)).toEqual([
      { ClusterId: clusterId, StepIds: [stepId], StepCancellationOption: 'SEND_INTERRUPT' },
    ]);
    expect((await em(t).findOneOrFail(Run, run.id)).status).toBe('FAILED');
  });
});
