// The orphan sweep against the real MariaDB (the run state, through the app's own services) and EMR on moto's
// server over HTTP, then the local runner with a real spark-submit. It starts from what runs (EMR steps and
// clusters, local pid files) and stops what no active run owns.
//
// moto has no CancelSteps and its steps never change state: test/support/emr.ts (the same stand-in as
// step-runner-emr.test.ts) answers CancelSteps on the sweeping runner's client and reports the cancelled steps'
// states, and nothing else. Clusters are moto's own: TerminateJobFlows, and their state read back with
// DescribeCluster.
import type { EMRClient } from '@aws-sdk/client-emr';
import {
  AddJobFlowStepsCommand,
  DescribeClusterCommand,
  RunJobFlowCommand,
  type CancelStepsCommandInput,
} from '@aws-sdk/client-emr';
import type { EntityManager } from '@mikro-orm/mysql';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { SparkJob } from '../../contract/steps.ts';
import { openLake } from '../../lib/lake/open-lake.ts';
import { loadConfig } from '../../service/config/env.ts';
import { createLogger } from '../../service/observability/logger.ts';
import { OrphanSweep, type OrphanSweepReport } from '../../service/orchestration/orphan-sweep.ts';
import { Job, Run } from '../../service/state/entities/index.ts';
import { EmrStepRunner, lakeTag } from '../../service/steps/emr-runner.ts';
import { openStepRunner } from '../../service/steps/open-runner.ts';
import { groupAlive } from '../../service/steps/process-group.ts';
import { stepName, type StepHandle, type StepRunner } from '../../service/steps/step-runner.ts';
import { startTestApp, withMaxActiveRuns, type TestApp } from '../support/app.ts';
import { transformRunning, type JobOwner } from '../support/jobs.ts';
import { motoEmr, type MotoEmr, emrClientFor } from '../support/emr.ts';
import { startMoto, type Moto } from '../support/moto.ts';
import { stepRequest } from '../support/steps.ts';
import { waitFor } from '../support/wait.ts';

const SCRIPTS = 's3://code-bucket/spark';
const logger = createLogger('silent');

let moto: Moto;
let admin: EMRClient;
/** The run state every test writes: no worker, no scheduler, so the test decides what state each job is in. */
let t: TestApp;

beforeAll(async () => {
  moto = await startMoto();
  admin = emrClientFor(moto);
  t = await startTestApp({ env: { AFLUENTE_ROLES: 'api' }, sources: await withMaxActiveRuns(100) });
});
afterAll(async () => {
  await t?.close();
  admin?.destroy();
  await moto?.stop();
});

const em = (): EntityManager => t.app.orm.em.fork();

type Owner = JobOwner;

/** The job's final failure: the job and its run are FAILED. */
async function failFinally(owner: Owner): Promise<void> {
  await t.app.engine.fail(owner.jobId, { reason: 'test', message: 'failed by the test' }, true);
  expect((await em().findOneOrFail(Run, owner.runId)).status).toBe('FAILED');
}

interface Emr extends Omit<MotoEmr, 'client'> {
  root: string;
  runner: EmrStepRunner;
  /** One sweep by a sweeper on this runner and the app's MySQL. */
  sweep(graceMs?: number): Promise<OrphanSweepReport>;
  /** The step ids of every CancelSteps the runner sent. */
  cancelled(): string[];
}

/** An EMR step runner on its own lake (a deployment of its own), its client playing EMR where moto cannot. */
function emr(env: Record<string, string> = {}): Emr {
  const root = env.AFLUENTE_LAKE_URI ?? `s3://lake-bucket/${randomBytes(4).toString('hex')}`;
  const config = loadConfig(
    {
      AFLUENTE_STEP_RUNNER: 'emr',
      AFLUENTE_LAKE_URI: root,
      AFLUENTE_EMR_SCRIPTS_URI: SCRIPTS,
      AFLUENTE_EMR_SERVICE_ROLE: 'EMR_DefaultRole',
      AFLUENTE_EMR_JOB_FLOW_ROLE: 'EMR_EC2_DefaultRole',
      AFLUENTE_EMR_LOG_URI: 's3://logs-bucket/emr',
      AFLUENTE_EMR_POLL_MS: '100',
      AFLUENTE_AWS_ENDPOINT: moto.endpoint,
      ...env,
    },
    { requireTokens: false },
  );
  const { client, ...fake } = motoEmr(moto);
  const runner = openStepRunner(config, openLake(root), logger, { emrClient: client });
  if (!(runner instanceof EmrStepRunner)) throw new Error('expected the emr runner');
  return {
    ...fake,
    root,
    runner,
    sweep: (graceMs = 0) => sweeper(runner, graceMs).sweep(),
    cancelled: () =>
      fake.calls
        .filter((c) => c.command === 'CancelStepsCommand')
        .flatMap((c) => (c.input as CancelStepsCommandInput).StepIds ?? []),
  };
}

function sweeper(runner: StepRunner, graceMs: number): OrphanSweep {
  return new OrphanSweep({ orm: t.app.orm, logger, metrics: t.app.metrics }, runner, { graceMs });
}

/** Submits the owner's step as its worker does, and leaves it running (the worker shut down). */
async function submit(runner: StepRunner, owner: Owner, job: SparkJob = 'split_tables'): Promise<StepHandle> {
  const shutdown = new AbortController();
  let handle: StepHandle | undefined;
  await expect(
    runner.run(stepRequest(job, owner.runId, owner.jobId), {
      signal: shutdown.signal,
      onSubmitted: async (submitted) => {
        handle = submitted;
        shutdown.abort({ kind: 'shutdown' });
      },
    }),
  ).rejects.toEqual({ kind: 'shutdown' });
  return handle!;
}

/** A cluster started outside the runner, with these tags. */
async function cluster(name: string, tags: Record<string, string> = {}): Promise<string> {
  const { JobFlowId } = await admin.send(
    new RunJobFlowCommand({
      Name: name,
      ReleaseLabel: 'emr-7.5.0',
      Instances: { MasterInstanceType: 'm5.xlarge', InstanceCount: 1, KeepJobFlowAliveWhenNoSteps: true },
      ServiceRole: 'EMR_DefaultRole',
      JobFlowRole: 'EMR_EC2_DefaultRole',
      Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
    }),
  );
  return JobFlowId!;
}

async function clusterState(clusterId: string | undefined): Promise<string | undefined> {
  const { Cluster } = await admin.send(new DescribeClusterCommand({ ClusterId: clusterId }));
  return Cluster?.Status?.State;
}

/** How many steps or clusters the app's metrics say the sweep stopped. */
async function stopped(kind: 'step' | 'cluster'): Promise<number> {
  const metric = await t.app.metrics.registry.getSingleMetric('afluente_orphans_stopped_total')?.get();
  return metric?.values.find((v) => v.labels.kind === kind)?.value ?? 0;
}

const sorted = (ids: (string | undefined)[]): (string | undefined)[] => [...ids].sort();
const LIVE = ['PENDING', 'RUNNING'];

describe('the orphan sweep on EMR', () => {
  it('cancels the steps no active job owns on the configured cluster, and leaves every other step alone', async () => {
    const configured = await cluster('shared');
    const h = emr({ AFLUENTE_EMR_CLUSTER_ID: configured });
    const [cancelled, failed, completed, running, released] = [
      await transformRunning(t),
      await transformRunning(t),
      await transformRunning(t),
      await transformRunning(t),
      await transformRunning(t),
    ];
    const steps = {
      cancelled: await submit(h.runner, cancelled),
      failed: await submit(h.runner, failed),
      completed: await submit(h.runner, completed),
      running: await submit(h.runner, running),
      released: await submit(h.runner, released),
      // A worker submitted it and died before recording it, then the job's row was lost.
      unknown: await submit(h.runner, { runId: 999_999, jobId: 999_991 }),
    };
    await t.app.runs.cancel(cancelled.runId, 'tester');
    await failFinally(failed);
    await t.app.engine.complete(completed.jobId, {});
    // A worker shutting down hands its job back (PENDING) and leaves the step for the next attempt.
    await t.app.engine.release(released.jobId);
    // Not afluente's: a step with another name (reading this lake), and an afluente name reading another lake.
    const spec = (lake: string) => ['spark-submit', 'job.py', '--spec', `${lake}/steps/x.json`];
    await admin.send(
      new AddJobFlowStepsCommand({
        JobFlowId: configured,
        Steps: [
          { Name: 'nightly compaction', HadoopJarStep: { Jar: 'command-runner.jar', Args: spec(h.root) } },
          {
            Name: stepName(999_998, 999_981, 'split_tables'),
            HadoopJarStep: { Jar: 'command-runner.jar', Args: spec('s3://another-deployment') },
          },
        ],
      }),
    );
    const before = await stopped('step');

    const report = await h.sweep();
    const orphans = [steps.cancelled, steps.failed, steps.completed, steps.unknown].map((s) => s.stepId);
    expect({ ...report, stepsCancelled: sorted(report.stepsCancelled) }).toEqual({
      stepsCancelled: sorted(orphans),
      clustersTerminated: [],
      deferred: 0,
      failed: 0,
    });
    expect(sorted(h.cancelled())).toEqual(sorted(orphans));
    for (const id of orphans)
      expect((await h.runner.status({ stepId: id, clusterId: configured })).state).toBe('CANCELLED');
    for (const step of [steps.running, steps.released])
      expect(LIVE).toContain((await h.runner.status(step)).state);
    expect(await stopped('step')).toBe(before + orphans.length);
    // The configured cluster stays up, and a second sweep finds nothing more to do.
    expect(LIVE.concat('WAITING')).toContain(await clusterState(configured));
    expect(await h.sweep()).toEqual({ stepsCancelled: [], clustersTerminated: [], deferred: 0, failed: 0 });
    expect(h.cancelled()).toHaveLength(orphans.length);
    await h.runner.close();
  });

  it('never terminates the configured cluster, even tagged and named like a finished run’s cluster', async () => {
    const owner = await transformRunning(t);
    const root = `s3://lake-bucket/${randomBytes(4).toString('hex')}`;
    const configured = await cluster(`afluente run=${owner.runId}`, {
      app: 'afluente',
      run: String(owner.runId),
      lake: lakeTag(root),
    });
    const h = emr({ AFLUENTE_EMR_CLUSTER_ID: configured, AFLUENTE_LAKE_URI: root });
    const step = await submit(h.runner, owner);
    await failFinally(owner);

    const report = await h.sweep();
    expect(report).toEqual({ stepsCancelled: [step.stepId], clustersTerminated: [], deferred: 0, failed: 0 });
    expect(h.calls.map((c) => c.command)).not.toContain('TerminateJobFlowsCommand');
    expect(await clusterState(configured)).not.toMatch(/^TERMINAT/);
    await h.runner.close();
  });

  it('terminates the transient cluster of an ended or unknown run, and leaves active, untagged and foreign clusters alone', async () => {
    const h = emr();
    const ended = await transformRunning(t);
    const active = await transformRunning(t);
    const endedStep = await submit(h.runner, ended);
    const activeStep = await submit(h.runner, active);
    // Started for a run MySQL does not have (its row lost, or another database).
    const unknownStep = await submit(h.runner, { runId: 888_888, jobId: 888_881 });
    await failFinally(ended);
    // Named like the ended run's cluster, but not tagged by afluente; and tagged for another deployment's lake.
    const untagged = await cluster(`afluente run=${ended.runId}`);
    const foreign = await cluster(`afluente run=${ended.runId}`, {
      app: 'afluente',
      run: String(ended.runId),
      lake: 's3://another-deployment',
    });
    const before = await stopped('cluster');

    const report = await h.sweep();
    expect({ ...report, clustersTerminated: sorted(report.clustersTerminated) }).toEqual({
      stepsCancelled: [],
      clustersTerminated: sorted([endedStep.clusterId, unknownStep.clusterId]),
      deferred: 0,
      failed: 0,
    });
    expect(await clusterState(endedStep.clusterId)).toBe('TERMINATED');
    expect(await clusterState(unknownStep.clusterId)).toBe('TERMINATED');
    for (const id of [activeStep.clusterId, untagged, foreign])
      expect(LIVE.concat('WAITING')).toContain(await clusterState(id));
    // The terminated clusters' steps ended with them; the active run's step is its RUNNING job's.
    expect(h.cancelled()).toEqual([]);
    expect(LIVE).toContain((await h.runner.status(activeStep)).state);
    expect(await stopped('cluster')).toBe(before + 2);
    await h.runner.close();
  });

  it('leaves orphans younger than the grace period, and steps whose job ended within it', async () => {
    const h = emr();
    const young = await transformRunning(t);
    const youngStep = await submit(h.runner, young);
    await t.app.runs.cancel(young.runId, 'tester');
    // Both the cluster and its step are orphans, but were just started.
    expect(await h.sweep(60_000)).toEqual({
      stepsCancelled: [],
      clustersTerminated: [],
      deferred: 2,
      failed: 0,
    });
    expect(await clusterState(youngStep.clusterId)).not.toMatch(/^TERMINAT/);
    expect(await h.sweep(0)).toMatchObject({ clustersTerminated: [youngStep.clusterId], deferred: 0 });

    // Steps older than the grace period whose run has just failed, or whose job has just completed: their
    // worker may still be stopping them.
    const configured = await cluster('shared');
    const shared = emr({ AFLUENTE_EMR_CLUSTER_ID: configured });
    const [failed, completed] = [await transformRunning(t), await transformRunning(t)];
    const steps = [await submit(shared.runner, failed), await submit(shared.runner, completed)];
    await new Promise((done) => setTimeout(done, 1500));
    await failFinally(failed);
    await t.app.engine.complete(completed.jobId, {});
    expect(await shared.sweep(1000)).toEqual({
      stepsCancelled: [],
      clustersTerminated: [],
      deferred: 2,
      failed: 0,
    });
    expect(shared.cancelled()).toEqual([]);
    await new Promise((done) => setTimeout(done, 1100));
    const later = await shared.sweep(1000);
    expect(sorted(later.stepsCancelled)).toEqual(sorted(steps.map((s) => s.stepId)));
    expect(later.deferred).toBe(0);
    await h.runner.close();
    await shared.runner.close();
  });
});

describe('the orphan sweep in the app', () => {
  it('runs every AFLUENTE_ORPHAN_SWEEP_INTERVAL_MS in the scheduler role', async () => {
    for (const [name, value] of Object.entries(moto.env)) vi.stubEnv(name, value);
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
    const root = `s3://lake-bucket/${randomBytes(4).toString('hex')}`;
    const app = await startTestApp({
      env: {
        AFLUENTE_ROLES: 'api,scheduler',
        AFLUENTE_STEP_RUNNER: 'emr',
        AFLUENTE_LAKE_URI: root,
        AFLUENTE_S3_ENDPOINT: moto.endpoint,
        AFLUENTE_AWS_ENDPOINT: moto.endpoint,
        AFLUENTE_EMR_SCRIPTS_URI: SCRIPTS,
        AFLUENTE_EMR_SERVICE_ROLE: 'EMR_DefaultRole',
        AFLUENTE_EMR_JOB_FLOW_ROLE: 'EMR_EC2_DefaultRole',
        AFLUENTE_EMR_LOG_URI: 's3://logs-bucket/emr',
        AFLUENTE_ORPHAN_SWEEP_INTERVAL_MS: '200',
        AFLUENTE_ORPHAN_GRACE_MS: '0',
      },
      sources: await withMaxActiveRuns(100),
    });
    try {
      const fork = (): EntityManager => app.app.orm.em.fork();
      /** A run whose first job a worker has started, with the transient cluster the app's runner starts for it. */
      const withCluster = async (): Promise<Owner & { clusterId: string }> => {
        const { run } = await app.app.runs.create({ source: 'demo' });
        const job = await fork().findOneOrFail(Job, { run: run.id });
        await app.app.engine.start(job.id, 1);
        const owner = { runId: run.id, jobId: job.id };
        const { clusterId } = await submit(app.app.stepRunner, owner);
        return { ...owner, clusterId: clusterId! };
      };
      const active = await withCluster();
      // Two runs ending one after the other: each cluster goes in a later sweep than the one before.
      for (let round = 0; round < 2; round++) {
        const ended = await withCluster();
        await app.app.engine.fail(ended.jobId, { reason: 'test', message: 'failed by the test' }, true);
        await waitFor(
          async () => ((await clusterState(ended.clusterId)) === 'TERMINATED' ? true : undefined),
          `the sweep to terminate the cluster of run ${ended.runId}`,
        );
      }
      expect(LIVE.concat('WAITING')).toContain(await clusterState(active.clusterId));
    } finally {
      await app.close();
      vi.unstubAllEnvs();
    }
  });
});

describe('the orphan sweep on the local runner', () => {
  const PYTHON = '.venv/bin/python';
  let temp: string;
  beforeAll(async () => {
    temp = await mkdtemp(join(tmpdir(), 'afluente-orphans-'));
  });
  afterAll(async () => {
    if (temp) await rm(temp, { recursive: true, force: true });
  });

  it('kills the spark-submit a dead worker left for an ended job, removes its pid file, and leaves live jobs’ steps alone', async () => {
    const env = {
      AFLUENTE_SPARK_SCRIPTS: 'test/fixtures/spark',
      AFLUENTE_SPARK_MASTER: 'local[1]',
      AFLUENTE_SPARK_DRIVER_MEMORY: '1g',
      AFLUENTE_SPARK_TEMP_DIR: join(temp, 'spark'),
      AFLUENTE_QUEUE_PREFIX: t.config.queue.prefix,
    };
    const lakeDir = join(temp, 'lake');
    await mkdir(lakeDir, { recursive: true });
    const lake = openLake(pathToFileURL(lakeDir).href);
    const steps = join(temp, 'spark', 'afluente-steps', t.config.queue.prefix);
    const pidFile = (name: string): string => join(steps, `${name.replaceAll(' ', '_')}.pid`);

    // A worker process starts the step, then dies (SIGKILL): its spark-submit lives on in its own process group.
    const orphan = await transformRunning(t);
    const request = stepRequest('split_tables', orphan.runId, orphan.jobId);
    await lake.put(
      request.specKey,
      JSON.stringify({ runId: orphan.runId, lakeRoot: lake.root, fixture: 'sleep' }),
    );
    const worker = spawn(
      process.execPath,
      ['test/support/step-worker.ts', lake.root, JSON.stringify(request)],
      {
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const [line] = (await once(worker.stdout, 'data')) as [Buffer];
    const pid = Number((JSON.parse(line.toString()) as StepHandle).stepId.replace('local:', ''));
    const killStep = (): void => {
      if (groupAlive(pid)) process.kill(-pid, 'SIGKILL');
    };
    try {
      // Spark is up: the pid is the JVM's now, its arguments rebuilt by spark-submit's launcher.
      await waitFor(
        async () => (existsSync(join(lakeDir, 'started')) ? true : undefined),
        'the step’s Spark to start',
        90_000,
      );
      worker.kill('SIGKILL');
      await once(worker, 'exit');

      // A step of a RUNNING job: a stand-in with a step's command line, and its pid file.
      const live = await transformRunning(t);
      const liveName = stepName(live.runId, live.jobId, 'split_tables');
      const script = resolve('test/fixtures/spark/split_tables.py');
      const standIn = spawn(
        PYTHON,
        ['-c', 'import time; time.sleep(120)', '--name', liveName, script, '--spec', 'file:///x'],
        { detached: true, stdio: 'ignore' },
      );
      await once(standIn, 'spawn');
      await writeFile(pidFile(liveName), String(standIn.pid));
      // A stale pid file whose pid another step's spark-submit has now (pids are reused): not that step.
      const reusedName = stepName(666_666, 666_661, 'split_tables');
      await writeFile(pidFile(reusedName), String(standIn.pid));
      // The pid file of a step whose process is gone.
      const gone = spawn('true');
      await once(gone, 'exit');
      const goneName = stepName(777_777, 777_771, 'load_warehouse');
      await writeFile(pidFile(goneName), String(gone.pid));

      const scheduler = openStepRunner(loadConfig(env, { requireTokens: false }), lake, logger);
      try {
        await t.app.runs.cancel(orphan.runId, 'tester');
        expect(groupAlive(pid), 'the dead worker’s step is still running').toBe(true);
        expect(existsSync(pidFile(request.name))).toBe(true);
        const report = await sweeper(scheduler, 0).sweep();
        expect(report).toEqual({
          stepsCancelled: [`local:${pid}`],
          clustersTerminated: [],
          deferred: 0,
          failed: 0,
        });
        expect(groupAlive(pid)).toBe(false);
        expect(existsSync(pidFile(request.name))).toBe(false);
        expect(existsSync(pidFile(goneName))).toBe(false);
        expect(groupAlive(standIn.pid!)).toBe(true);
        expect(await readFile(pidFile(liveName), 'utf8')).toBe(String(standIn.pid));
        expect(existsSync(pidFile(reusedName))).toBe(true);
      } finally {
        standIn.kill('SIGKILL');
        await scheduler.close();
      }
    } finally {
      worker.kill('SIGKILL');
      killStep();
    }
  }, 120_000);
});
