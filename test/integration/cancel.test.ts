import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { ListStepsCommand, type CancelStepsCommandInput } from '@aws-sdk/client-emr';
import { CreateQueueCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { EntityManager } from '@mikro-orm/mysql';
import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import pg from 'pg';
import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import type { InvocationEvent } from '../../contract/invocation.ts';
import { groupManifestKey, manifestKey, partKey, runDate, runPrefix } from '../../contract/lake-layout.ts';
import type { Stage } from '../../contract/stages.ts';
import { curatedManifestKey, loadResultKey } from '../../contract/steps.ts';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { handler as ingestLambda } from '../../lambdas/ingest/handler.ts';
import { handler as validateLambda } from '../../lambdas/validate/handler.ts';
import { Job, LakeFile, Run, SourceState } from '../../service/state/entities/index.ts';
import { demoSourcesAt, finishedRun, startTestApp, withEngine, type TestApp } from '../support/app.ts';
import { motoEmr, type MotoEmr } from '../support/emr.ts';
import { OTHER_TOKEN, TOKEN } from '../support/env.ts';
import { startMoto, type Moto } from '../support/moto.ts';
import { waitFor } from '../support/wait.ts';
import { successRecord } from '../support/lambda-destination.ts';

// POST /runs/:id/cancel in every stage, with the real stage handlers: the ingest and validate Lambdas (local child
// processes, or the AWS path with results over SQS), the Spark steps with the real spark-submit, the load into the
// real PostgreSQL warehouse, and the EMR step runner against moto's EMR.

const auth = { authorization: `Bearer ${TOKEN}` };
const em = (t: TestApp): EntityManager => t.app.orm.em.fork();

async function runOf(t: TestApp, id: number): Promise<Run> {
  return em(t).findOneOrFail(Run, id);
}

async function jobsOf(t: TestApp, id: number): Promise<Job[]> {
  return em(t).find(Job, { run: id }, { orderBy: { id: 'asc' } });
}

async function stagesOf(t: TestApp, id: number): Promise<[Stage, string][]> {
  return (await jobsOf(t, id)).map((j) => [j.stage, j.status]);
}

async function filesOf(t: TestApp, id: number): Promise<LakeFile[]> {
  return em(t).find(LakeFile, { run: id }, { orderBy: { id: 'asc' } });
}

/** Starts a run through the API; returns its id and partition date. */
async function startRun(t: TestApp): Promise<{ id: number; dt: string }> {
  const res = await request(t.app.server).post('/runs').set(auth).send({ source: 'demo' });
  expect(res.status).toBe(202);
  return { id: res.body.id as number, dt: runDate(new Date(res.body.createdAt as string)) };
}

async function cancel(t: TestApp, id: number, token = TOKEN) {
  return request(t.app.server)
    .post(`/runs/${id}/cancel`)
    .set({ authorization: `Bearer ${token}` })
    .send();
}

/** Waits until the run's job of `stage` is RUNNING and `ready` says so too; returns the job. */
async function runningJob(
  t: TestApp,
  id: number,
  stage: Stage,
  ready: (job: Job) => boolean | Promise<boolean> = () => true,
  timeoutMs = 120_000,
): Promise<Job> {
  return waitFor(
    async () => {
      const job = (await jobsOf(t, id)).find((j) => j.stage === stage);
      if (job && job.status !== 'RUNNING' && job.status !== 'PENDING')
        throw new Error(
          `run ${id}: the ${stage} job is ${job.status} (run: ${JSON.stringify((await runOf(t, id)).error)})`,
        );
      return job?.status === 'RUNNING' && (await ready(job)) ? job : undefined;
    },
    `run ${id}'s ${stage} job to be running`,
    timeoutMs,
  );
}

/**
 * Waits until the stage's worker is done with the run's queue job, so whatever it would do has been done: it let
 * go of the job as a stage whose run ended ({ cancelled: true }), not as a failed attempt to retry.
 */
async function workerDone(t: TestApp, id: number, stage: Stage): Promise<void> {
  const queue = t.app.queues.get(stage);
  const key = `run-${id}.${stage}.1`;
  await waitFor(async () => {
    const state = await (await queue.getJob(key))?.getState();
    return state === 'completed' || state === 'failed' || state === 'delayed' ? true : undefined;
  }, `the ${stage} worker to be done with run ${id}`);
  // Read the job again once it is done: a Job fetched while it was still active holds no return value, even
  // when its state (a separate read) already says completed.
  const job = await queue.getJob(key);
  expect([await job?.getState(), job?.returnvalue]).toEqual(['completed', { cancelled: true }]);
}

/** The invocation's results that arrived in Redis and that no worker has read. */
async function unreadResults(t: TestApp, invocationId: string): Promise<InvocationEvent[]> {
  const key = `${t.config.queue.prefix}:invocation:${invocationId}`;
  return (await t.app.redis.lrange(key, 0, -1)).map((e) => JSON.parse(e) as InvocationEvent);
}

/** The processes (their command names) left in a process group; zombies are not counted. */
async function groupMembers(pgid: number): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const close = stat.lastIndexOf(')');
    if (close < 0) continue;
    // After the command name: state, ppid, pgrp, ...
    const [state, , pgrp] = stat.slice(close + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') names.push(stat.slice(stat.indexOf('(') + 1, close));
  }
  return names;
}

/** The local Lambda invocations (lambdas/local-runner.ts child processes) of this process that are alive. */
async function lambdaProcesses(): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(ppid) !== process.pid || state === 'Z') continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes('local-runner')) pids.push(Number(entry));
  }
  return pids;
}

function localPid(job: Job): number {
  const match = /^local:(\d+)$/.exec(job.externalId ?? '');
  if (!match) throw new Error(`job ${job.id} has no local step id (${job.externalId})`);
  return Number(match[1]);
}

/** Asserts the run was cancelled by `by` through the response and in MySQL, and returns the stored run. */
async function expectCancelled(t: TestApp, res: request.Response, id: number, by = 'tester'): Promise<Run> {
  expect(res.status).toBe(200);
  expect(res.body).toMatchObject({
    id,
    status: 'CANCELLED',
    cancelledBy: by,
    error: { reason: 'cancelled', message: `cancelled by ${by}` },
  });
  expect(Date.parse(res.body.finishedAt as string)).toBeGreaterThan(Date.now() - 60_000);
  const run = await runOf(t, id);
  expect(run).toMatchObject({ status: 'CANCELLED', cancelledBy: by });
  expect(run.finishedAt?.toISOString()).toBe(res.body.finishedAt);
  return run;
}

describe('cancel on the local runtime: Lambdas in child processes, Spark steps with spark-submit', () => {
  const RECORDS = 40;
  let api: DemoApi;
  let lakeDir: string;
  let t: TestApp;
  let db: pg.Client;
  let cancelledRun = 0;
  let completedRun = 0;

  beforeAll(async () => {
    api = await startDemoApi({ records: RECORDS });
    lakeDir = await mkdtemp(join(tmpdir(), 'afluente-cancel-'));
    t = await startTestApp({
      // On Spark: these cancels are of spark-submit's process group (embedded-control.test.ts cancels embedded steps).
      sources: await withEngine('spark', await demoSourcesAt(`${api.url}/orders`, 10_000)),
      env: {
        AFLUENTE_LAKE_URI: pathToFileURL(lakeDir).href,
        AFLUENTE_SPARK_DRIVER_MEMORY: '1g',
        // 5 raw parts of 8 records, validated one part at a time, one Lambda after the other.
        AFLUENTE_INGEST_PART_MAX_RECORDS: '8',
        AFLUENTE_VALIDATE_PARTS_PER_GROUP: '1',
        AFLUENTE_VALIDATE_CONCURRENCY: '1',
      },
    });
    db = new pg.Client({ connectionString: t.config.warehouse.url });
    await db.connect();
  });
  afterAll(async () => {
    await db?.end();
    await t?.close();
    await api?.close();
    if (lakeDir) await rm(lakeDir, { recursive: true, force: true });
  });
  beforeEach(() => api.setFaults({}));

  async function warehouseRows(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const table of ['orders', 'order_items', 'order_tags']) {
      const { rows } = await db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${t.config.warehouse.schema}"."${table}"`,
      );
      out[table] = rows[0]?.n ?? -1;
    }
    return out;
  }

  it('in ingest: the Lambda is stopped mid-request, and nothing of it is recorded', async () => {
    // The first page answers after 5 s: the ingest Lambda is waiting on it when the cancel comes.
    api.setFaults({ slow: { pages: [1], delayMs: 5000 } });
    api.resetStats();
    const { id, dt } = await startRun(t);
    await waitFor(
      async () => (api.stats().requests === 1 ? true : undefined),
      'the Lambda to ask for page 1',
    );
    await runningJob(t, id, 'ingest', (j) => j.externalId !== null);
    expect(await lambdaProcesses()).toHaveLength(1);

    const res = await cancel(t, id);
    await expectCancelled(t, res, id);
    cancelledRun = id;
    await workerDone(t, id, 'ingest');
    // Locally an invocation can be stopped: the Lambda's process is killed (well before page 1 would answer), so
    // no result can come from it later. A Lambda on AWS cannot be stopped: its late result is ignored (see the AWS
    // path below).
    await waitFor(
      async () => ((await lambdaProcesses()).length === 0 ? true : undefined),
      'the Lambda to be killed',
      3000,
    );
    // It never asked for another page, nor committed anything.
    expect(api.stats().requests).toBe(1);
    expect(await t.app.lake.exists(manifestKey(runPrefix('raw', 'demo', dt, id)))).toBe(false);
    const run = await runOf(t, id);
    expect({ status: run.status, fetched: run.fetched, nextCursor: run.nextCursor }).toEqual({
      status: 'CANCELLED',
      fetched: null,
      nextCursor: null,
    });
    expect(await stagesOf(t, id)).toEqual([['ingest', 'CANCELLED']]);
    expect(await filesOf(t, id)).toEqual([]);
  });

  it('in validate: the Lambda in flight is stopped, no later group starts, and nothing is committed', async () => {
    const { id, dt } = await startRun(t);
    const rawPrefix = runPrefix('raw', 'demo', dt, id);
    const validPrefix = runPrefix('validated', 'demo', dt, id);
    const groups = async (): Promise<number> => {
      let n = 0;
      for await (const _ of t.app.lake.list(`${validPrefix}_groups/`)) n += 1;
      return n;
    };
    // A lake read that never answers: once ingest has committed, raw part 3 becomes a FIFO nobody writes to, so the
    // Lambda of validate group 3 waits on it for good. Groups 0-2 validate first, one at a time, which leaves
    // ample time to swap the part before group 3 opens it.
    await waitFor(
      async () => ((await t.app.lake.exists(manifestKey(rawPrefix))) ? true : undefined),
      'ingest to commit',
      60_000,
    );
    const part3 = fileURLToPath(t.app.lake.uri(partKey(rawPrefix, 3)));
    execFileSync('mkfifo', [`${part3}.fifo`]);
    await rename(`${part3}.fifo`, part3);
    // Groups 0-2 committed and one Lambda stays up: group 3's, stuck (an exiting one would be gone by then).
    const stuck = await waitFor(async () => {
      const pids = await lambdaProcesses();
      if ((await groups()) !== 3 || pids.length !== 1) return undefined;
      await sleep(500);
      return (await lambdaProcesses()).join() === pids.join() ? pids : undefined;
    }, "group 3's Lambda to be stuck on its input");
    expect(stuck).toHaveLength(1);
    await runningJob(t, id, 'validate');

    const res = await cancel(t, id);
    await expectCancelled(t, res, id);
    await workerDone(t, id, 'validate');
    // The stuck Lambda could only end by being killed, within a heartbeat or so of the cancel.
    await waitFor(
      async () => ((await lambdaProcesses()).length === 0 ? true : undefined),
      'the stuck Lambda to be killed',
      5000,
    );
    // Group 4 never starts, and the stage never commits (its manifest is written last).
    await sleep(1000);
    expect(await lambdaProcesses()).toEqual([]);
    expect(await groups()).toBe(3);
    expect(await t.app.lake.exists(groupManifestKey(validPrefix, 4))).toBe(false);
    expect(await t.app.lake.exists(manifestKey(validPrefix))).toBe(false);

    const run = await runOf(t, id);
    expect({ fetched: run.fetched, valid: run.valid, rejected: run.rejected }).toEqual({
      fetched: RECORDS,
      valid: null,
      rejected: null,
    });
    expect(await stagesOf(t, id)).toEqual([
      ['ingest', 'COMPLETED'],
      ['validate', 'CANCELLED'],
    ]);
    // Only ingest's raw parts are recorded.
    expect(new Set((await filesOf(t, id)).map((f) => f.layer))).toEqual(new Set(['raw']));
  });

  it('in transform: the spark-submit process group is killed and nothing is curated', async () => {
    const { id, dt } = await startRun(t);
    // The step is really running: the Python driver has started under spark-submit's JVM.
    const transform = await runningJob(
      t,
      id,
      'transform',
      async (j) =>
        j.externalId !== null && (await groupMembers(localPid(j))).some((p) => p.startsWith('python')),
    );
    const pid = localPid(transform);

    const res = await cancel(t, id);
    await expectCancelled(t, res, id);

    // The job says what became of its step: cancelled, and its whole process group is gone.
    const stepCancel = await waitFor(async () => {
      const job = await em(t).findOneOrFail(Job, transform.id);
      return (job.metrics?.stepCancel as { state: string; at: string } | undefined) ?? undefined;
    }, 'the job to record its step cancel');
    expect(stepCancel).toEqual({ state: 'CANCELLED', at: expect.any(String) });
    expect(await groupMembers(pid)).toEqual([]);
    await workerDone(t, id, 'transform');

    expect(await stagesOf(t, id)).toEqual([
      ['ingest', 'COMPLETED'],
      ['validate', 'COMPLETED'],
      ['transform', 'CANCELLED'],
    ]);
    expect((await filesOf(t, id)).filter((f) => f.layer === 'curated')).toEqual([]);
    expect(await t.app.lake.exists(curatedManifestKey('demo', dt, id))).toBe(false);
    expect((await runOf(t, id)).duplicates).toBeNull();
  }, 120_000);

  it('in load: the load step is killed and the warehouse rows are unchanged', async () => {
    // A first run loads the warehouse, so there are rows the cancelled load could have changed.
    await em(t).nativeUpdate(SourceState, { source: 'demo' }, { cursor: null });
    const first = await startRun(t);
    const done = await finishedRun(t, first.id, 240_000);
    expect(done.status).toBe('COMPLETED');
    completedRun = first.id;
    const before = await warehouseRows();
    expect(before.orders).toBe(RECORDS);

    // Ten new orders: a load that went through would add them.
    api.setRecords(RECORDS + 10);
    const { id, dt } = await startRun(t);
    const load = await runningJob(
      t,
      id,
      'load',
      async (j) =>
        j.externalId !== null && (await groupMembers(localPid(j))).some((p) => p.startsWith('python')),
      240_000,
    );
    const pid = localPid(load);
    const res = await cancel(t, id);
    await expectCancelled(t, res, id);

    const stepCancel = await waitFor(async () => {
      const job = await em(t).findOneOrFail(Job, load.id);
      return (job.metrics?.stepCancel as { state: string } | undefined) ?? undefined;
    }, 'the job to record its step cancel');
    expect(stepCancel).toMatchObject({ state: 'CANCELLED' });
    expect(await groupMembers(pid)).toEqual([]);
    await workerDone(t, id, 'load');

    expect(await warehouseRows()).toEqual(before);
    const ledger = await db.query(
      `SELECT 1 FROM "${t.config.warehouse.schema}"._afluente_load_ledger WHERE run_id = $1`,
      [id],
    );
    expect(ledger.rowCount).toBe(0);
    expect(await t.app.lake.exists(loadResultKey('demo', dt, id))).toBe(false);
    expect(await stagesOf(t, id)).toEqual([
      ['ingest', 'COMPLETED'],
      ['validate', 'COMPLETED'],
      ['transform', 'COMPLETED'],
      ['load', 'CANCELLED'],
    ]);
    expect((await runOf(t, id)).rows).toBeNull();
  }, 360_000);

  it('refuses a COMPLETED, FAILED or CANCELLED run with 409 naming its status, and changes nothing', async () => {
    api.setFaults({ unauthorized: true });
    const { id: failedRun } = await startRun(t);
    expect((await finishedRun(t, failedRun)).status).toBe('FAILED');

    for (const [id, status] of [
      [completedRun, 'COMPLETED'],
      [failedRun, 'FAILED'],
      [cancelledRun, 'CANCELLED'],
    ] as const) {
      expect(id).toBeGreaterThan(0);
      const before = await runOf(t, id);
      const res = await cancel(t, id, OTHER_TOKEN);
      expect(res.status).toBe(409);
      expect(res.body.message).toBe(`run ${id} is already ${status} and cannot be cancelled`);
      const after = await runOf(t, id);
      expect(after).toMatchObject({
        status,
        cancelledBy: before.cancelledBy ?? null,
        finishedAt: before.finishedAt,
      });
    }
  });
});

describe('cancel of a queued job', () => {
  let t: TestApp;
  beforeAll(async () => {
    // No worker role: the run's first job waits in its queue.
    t = await startTestApp({ env: { AFLUENTE_ROLES: 'api' } });
  });
  afterAll(async () => {
    await t?.close();
  });

  it('removes the waiting BullMQ job and cancels the job and the run', async () => {
    const { id } = await startRun(t);
    const [job] = await jobsOf(t, id);
    const queue = t.app.queues.get('ingest');
    expect(job?.queueJobId).toBe(`run-${id}.ingest.1`);
    expect(await (await queue.getJob(job!.queueJobId))?.getState()).toBe('waiting');

    const res = await cancel(t, id, OTHER_TOKEN);
    await expectCancelled(t, res, id, 'ops');
    expect(await queue.getJob(job!.queueJobId)).toBeUndefined();
    expect(await queue.getJobCounts('waiting', 'active', 'delayed')).toEqual({
      waiting: 0,
      active: 0,
      delayed: 0,
    });
    expect(await stagesOf(t, id)).toEqual([['ingest', 'CANCELLED']]);
  });
});

describe('cancel on the AWS path: results over SQS (moto), Spark steps on EMR (moto)', () => {
  const RECORDS = 40;
  const BUCKET = 'afluente-cancel-lake';
  let moto: Moto;
  let api: DemoApi;
  let sqs: SQSClient;
  let queueUrl = '';
  let emr: MotoEmr;
  let t: TestApp;
  /** Each Lambda invocation's end: its destination record has been sent. */
  const invocations = new Map<string, Promise<unknown>>();

  const HANDLERS: Record<string, (request: never) => Promise<unknown>> = {
    'afluente-ingest': ingestLambda,
    'afluente-validate': validateLambda,
  };

  /**
   * Stands in for the Lambda service, client-side, as aws-path.test.ts does (no emulator here runs a function
   * without Docker): it accepts the async invoke, runs the real handler in-process to its end (an invocation
   * cannot be recalled), and sends the destination record AWS would send to the events queue on moto.
   */
  function fakeLambda(): LambdaClient {
    return {
      send: async (command: { input: { FunctionName: string; Payload: Uint8Array } }) => {
        const { FunctionName, Payload } = command.input;
        const payload = JSON.parse(Buffer.from(Payload).toString('utf8')) as { invocationId: string };
        const done = (async () => {
          await sleep(0);
          const result = await HANDLERS[FunctionName]!(payload as never);
          const record = successRecord(FunctionName, payload, result);
          await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: record }));
        })();
        invocations.set(payload.invocationId, done);
        return { StatusCode: 202 };
      },
      destroy: () => undefined,
    } as unknown as LambdaClient;
  }

  beforeAll(async () => {
    [moto, api] = await Promise.all([startMoto(), startDemoApi({ records: RECORDS })]);
    // The in-process Lambda handlers reach the lake (on moto) through the environment, as on AWS.
    for (const [name, value] of Object.entries(moto.env)) vi.stubEnv(name, value);
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
    vi.stubEnv('AFLUENTE_S3_ENDPOINT', moto.endpoint);
    const s3 = new S3Client({ endpoint: moto.endpoint, region: moto.region, forcePathStyle: true });
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    s3.destroy();
    sqs = new SQSClient({ endpoint: moto.endpoint, region: moto.region });
    queueUrl =
      (await sqs.send(new CreateQueueCommand({ QueueName: `afluente-events-${randomUUID().slice(0, 8)}` })))
        .QueueUrl ?? '';
    emr = motoEmr(moto);
    t = await startTestApp({
      // On Spark, which this deployment runs on EMR: the transform's step is an EMR step to cancel.
      sources: await withEngine('spark', await demoSourcesAt(`${api.url}/orders`, 10_000)),
      lambdaClient: fakeLambda(),
      emrClient: emr.client,
      env: {
        AFLUENTE_LAKE_URI: `s3://${BUCKET}/lake`,
        AFLUENTE_S3_ENDPOINT: moto.endpoint,
        AFLUENTE_LAMBDA_INVOKER: 'aws',
        AFLUENTE_LAMBDA_FUNCTIONS: 'ingest=afluente-ingest,validate=afluente-validate',
        AFLUENTE_EVENTS_QUEUE_URL: queueUrl,
        AFLUENTE_AWS_ENDPOINT: moto.endpoint,
        AFLUENTE_STEP_RUNNER: 'emr',
        AFLUENTE_EMR_SCRIPTS_URI: 's3://code-bucket/spark',
        AFLUENTE_EMR_SERVICE_ROLE: 'EMR_DefaultRole',
        AFLUENTE_EMR_JOB_FLOW_ROLE: 'EMR_EC2_DefaultRole',
        AFLUENTE_EMR_LOG_URI: 's3://logs-bucket/emr/',
        AFLUENTE_EMR_POLL_MS: '100',
      },
    });
  });
  afterAll(async () => {
    await t?.close();
    await Promise.allSettled(invocations.values());
    sqs?.destroy();
    await api?.close();
    await moto?.stop();
    vi.unstubAllEnvs();
  });
  beforeEach(() => api.setFaults({}));

  it('in ingest: the Lambda runs to its end, and its late result is delivered but ignored', async () => {
    // Page 1 answers 3 s late, well after the cancel and after the stopped worker's last wait for a result.
    api.setFaults({ slow: { pages: [1], delayMs: 3000 } });
    const { id, dt } = await startRun(t);
    const ingest = await runningJob(t, id, 'ingest', (j) => j.externalId !== null);
    await waitFor(async () => (api.stats().requests > 0 ? true : undefined), 'the Lambda to ask for page 1');

    const res = await cancel(t, id);
    await expectCancelled(t, res, id);
    await workerDone(t, id, 'ingest');

    // The Lambda finished after the cancel: it committed its raw files and its result reached Redis over SQS.
    await invocations.get(ingest.externalId ?? '');
    expect(await t.app.lake.exists(manifestKey(runPrefix('raw', 'demo', dt, id)))).toBe(true);
    const late = await waitFor(async () => {
      const results = await unreadResults(t, ingest.externalId ?? '');
      return results.length > 0 ? results : undefined;
    }, 'the late result to be delivered');
    expect(late).toEqual([
      expect.objectContaining({
        outcome: 'success',
        result: expect.objectContaining({ kind: 'done', records: RECORDS }),
      }),
    ]);
    // ...and changed nothing: no counts, no files recorded, no next stage.
    const run = await runOf(t, id);
    expect({ status: run.status, fetched: run.fetched, nextCursor: run.nextCursor }).toEqual({
      status: 'CANCELLED',
      fetched: null,
      nextCursor: null,
    });
    expect(await stagesOf(t, id)).toEqual([['ingest', 'CANCELLED']]);
    expect(await filesOf(t, id)).toEqual([]);
  });

  it('in transform on EMR: the step is cancelled with CancelSteps and the job records it reached CANCELLED', async () => {
    await em(t).nativeUpdate(SourceState, { source: 'demo' }, { cursor: null });
    const { id } = await startRun(t);
    const transform = await runningJob(t, id, 'transform', (j) => j.externalId !== null, 60_000);
    const stepId = transform.externalId ?? '';
    const { clusterId } = await runOf(t, id);
    // The step is on moto's cluster, under its name, running.
    const { Steps = [] } = await emr.client.send(new ListStepsCommand({ ClusterId: clusterId ?? '' }));
    expect(Steps.map((s) => [s.Id, s.Name, s.Status?.State])).toEqual([
      [stepId, `afluente run=${id} job=${transform.id} split_tables`, 'RUNNING'],
    ]);
    expect(emr.calls.filter((c) => c.command === 'CancelStepsCommand')).toEqual([]);

    const res = await cancel(t, id);
    await expectCancelled(t, res, id);
    const stepCancel = await waitFor(async () => {
      const job = await em(t).findOneOrFail(Job, transform.id);
      return (job.metrics?.stepCancel as { state: string } | undefined) ?? undefined;
    }, 'the job to record its step cancel');
    expect(stepCancel).toMatchObject({ state: 'CANCELLED' });
    const cancels = emr.calls
      .filter((c) => c.command === 'CancelStepsCommand')
      .map((c) => c.input as CancelStepsCommandInput);
    expect(cancels.length).toBeGreaterThan(0);
    for (const input of cancels)
      expect(input).toEqual({
        ClusterId: clusterId,
        StepIds: [stepId],
        StepCancellationOption: 'SEND_INTERRUPT',
      });
    await workerDone(t, id, 'transform');

    expect(await stagesOf(t, id)).toEqual([
      ['ingest', 'COMPLETED'],
      ['validate', 'COMPLETED'],
      ['transform', 'CANCELLED'],
    ]);
    expect((await filesOf(t, id)).filter((f) => f.layer === 'curated')).toEqual([]);
  }, 90_000);
});
