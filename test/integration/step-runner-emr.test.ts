import type { EMRClient } from '@aws-sdk/client-emr';
import {
  AddJobFlowStepsCommand,
  DescribeClusterCommand,
  ListStepsCommand,
  RunJobFlowCommand,
  type AddJobFlowStepsCommandInput,
  type CancelStepsCommandInput,
  type DescribeStepCommandInput,
  type ListStepsCommandInput,
  type RunJobFlowCommandInput,
  type TerminateJobFlowsCommandInput,
} from '@aws-sdk/client-emr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SparkJob } from '../../contract/steps.ts';
import { openLake } from '../../lib/lake/open-lake.ts';
import { loadConfig } from '../../service/config/env.ts';
import { createLogger } from '../../service/observability/logger.ts';
import { EmrStepRunner } from '../../service/steps/emr-runner.ts';
import { openStepRunner } from '../../service/steps/open-runner.ts';
import type { StepHandle, StepRequest } from '../../service/steps/step-runner.ts';
import { motoEmr, type MotoEmr, emrClientFor } from '../support/emr.ts';
import { stepRequest } from '../support/steps.ts';
import { startMoto, type Moto } from '../support/moto.ts';

// The EMR step runner against moto's EMR (server mode): RunJobFlow, AddJobFlowSteps, ListSteps, ListClusters,
// DescribeStep, DescribeCluster and TerminateJobFlows are moto's own. moto has no CancelSteps and its steps never
// leave RUNNING/PENDING: test/support/emr.ts plays EMR there, and only there, on the runner's client.

const LAKE = 's3://lake-bucket/lake';
const SCRIPTS = 's3://code-bucket/spark';
const LOGS = 's3://logs-bucket/emr';
const logger = createLogger('silent');

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

interface Inputs {
  RunJobFlowCommand: RunJobFlowCommandInput;
  AddJobFlowStepsCommand: AddJobFlowStepsCommandInput;
  ListStepsCommand: ListStepsCommandInput;
  DescribeStepCommand: DescribeStepCommandInput;
  CancelStepsCommand: CancelStepsCommandInput;
  TerminateJobFlowsCommand: TerminateJobFlowsCommandInput;
}

interface Harness extends Omit<MotoEmr, 'client'> {
  runner: EmrStepRunner;
  /** The inputs of the runner's calls of one command. */
  called<C extends keyof Inputs>(command: C): Inputs[C][];
}

function harness(env: Record<string, string> = {}): Harness {
  const config = loadConfig(
    {
      AFLUENTE_STEP_RUNNER: 'emr',
      AFLUENTE_LAKE_URI: LAKE,
      AFLUENTE_EMR_SCRIPTS_URI: SCRIPTS,
      AFLUENTE_EMR_SERVICE_ROLE: 'EMR_DefaultRole',
      AFLUENTE_EMR_JOB_FLOW_ROLE: 'EMR_EC2_DefaultRole',
      AFLUENTE_EMR_LOG_URI: `${LOGS}/`,
      AFLUENTE_EMR_SUBNET_ID: 'subnet-0abc1234',
      AFLUENTE_EMR_SECURITY_CONFIGURATION: 'afluente-emr',
      AFLUENTE_EMR_SECURITY_GROUP: 'sg-0abc1234',
      AFLUENTE_EMR_POLL_MS: '100',
      AFLUENTE_AWS_ENDPOINT: moto.endpoint,
      ...env,
    },
    { requireTokens: false },
  );
  const { client, calls, advanced } = motoEmr(moto);
  const runner = openStepRunner(config, openLake(LAKE), logger, { emrClient: client });
  if (!(runner instanceof EmrStepRunner)) throw new Error('expected the emr runner');
  return {
    runner,
    calls,
    advanced,
    called: <C extends keyof Inputs>(command: C) =>
      calls.filter((c) => c.command === command).map((c) => c.input as Inputs[C]),
  };
}

function request(job: SparkJob, runId: number, extra: Partial<StepRequest> = {}): StepRequest {
  return stepRequest(job, runId, runId * 10 + (job === 'split_tables' ? 1 : 2), extra);
}

/** Runs the step; `then` plays EMR once it is submitted (advances or aborts it). */
async function run(
  h: Harness,
  req: StepRequest,
  then: (handle: StepHandle) => void = (handle) => h.advanced.set(handle.stepId, { State: 'COMPLETED' }),
  signal = new AbortController().signal,
): Promise<{ handle: StepHandle; status: Awaited<ReturnType<EmrStepRunner['run']>> }> {
  let handle: StepHandle | undefined;
  const status = await h.runner.run(req, {
    signal,
    onSubmitted: async (submitted) => {
      handle = submitted;
      then(submitted);
    },
  });
  return { handle: handle!, status };
}

async function stepsOn(clusterId: string) {
  const { Steps = [] } = await admin.send(new ListStepsCommand({ ClusterId: clusterId }));
  return Steps;
}

async function sharedCluster(): Promise<string> {
  const { JobFlowId } = await admin.send(
    new RunJobFlowCommand({
      Name: 'shared',
      ReleaseLabel: 'emr-7.5.0',
      Instances: { MasterInstanceType: 'm5.xlarge', InstanceCount: 1, KeepJobFlowAliveWhenNoSteps: true },
      ServiceRole: 'EMR_DefaultRole',
      JobFlowRole: 'EMR_EC2_DefaultRole',
      LogUri: 's3://shared-logs/',
    }),
  );
  return JobFlowId!;
}

describe('EmrStepRunner on moto', () => {
  it('starts a transient cluster for the run, submits the step with its name and arguments, and waits', async () => {
    const h = harness();
    const req = request('split_tables', 1);
    const { handle, status } = await run(h, req);

    expect(status).toEqual({
      state: 'COMPLETED',
      logs: `${LOGS}/${handle.clusterId}/steps/${handle.stepId}/`,
    });
    expect(handle).toEqual({
      stepId: expect.stringMatching(/^s-/),
      clusterId: expect.stringMatching(/^j-/),
      logs: `${LOGS}/${handle.clusterId}/steps/${handle.stepId}/`,
    });
    const { Cluster } = await admin.send(new DescribeClusterCommand({ ClusterId: handle.clusterId }));
    expect(Cluster).toMatchObject({
      Name: 'afluente run=1',
      ReleaseLabel: 'emr-7.5.0',
      LogUri: LOGS,
      ServiceRole: 'EMR_DefaultRole',
      VisibleToAllUsers: true,
      Ec2InstanceAttributes: { IamInstanceProfile: 'EMR_EC2_DefaultRole', Ec2SubnetId: 'subnet-0abc1234' },
      Applications: [expect.objectContaining({ Name: 'Spark' })],
    });
    expect(Cluster?.Tags).toEqual(
      expect.arrayContaining([
        { Key: 'run', Value: '1' },
        { Key: 'source', Value: 'demo' },
      ]),
    );
    // moto drops what it does not model (AutoTerminationPolicy, KeepJobFlowAliveWhenNoSteps): checked as sent.
    expect(h.called('RunJobFlowCommand')).toEqual([
      expect.objectContaining({
        AutoTerminationPolicy: { IdleTimeout: 3600 },
        SecurityConfiguration: 'afluente-emr',
        Instances: expect.objectContaining({
          KeepJobFlowAliveWhenNoSteps: true,
          AdditionalMasterSecurityGroups: ['sg-0abc1234'],
          AdditionalSlaveSecurityGroups: ['sg-0abc1234'],
          InstanceGroups: [
            { Name: 'primary', InstanceRole: 'MASTER', InstanceType: 'm5.xlarge', InstanceCount: 1 },
            { Name: 'core', InstanceRole: 'CORE', InstanceType: 'm5.xlarge', InstanceCount: 2 },
          ],
        }),
      }),
    ]);

    const steps = await stepsOn(handle.clusterId!);
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({
      Id: handle.stepId,
      Name: 'afluente run=1 job=11 split_tables',
      ActionOnFailure: 'CONTINUE',
      Config: {
        Jar: 'command-runner.jar',
        Args: [
          'spark-submit',
          '--deploy-mode',
          'cluster',
          '--conf',
          'spark.sql.session.timeZone=UTC',
          '--py-files',
          `${SCRIPTS}/afluente_spark.zip`,
          `${SCRIPTS}/split_tables.py`,
          '--spec',
          `${LAKE}/steps/source=demo/dt=2026-01-31/run=1/split_tables.json`,
        ],
      },
    });
    await h.runner.close();
  });

  it('reattaches to a live or completed step with the same name, and submits again after a failed one', async () => {
    const h = harness();
    const req = request('split_tables', 2);
    // A worker shutting down leaves its step running (no CancelSteps) for the worker that takes the job over.
    const shutdown = new AbortController();
    const first = run(h, req, () => shutdown.abort({ kind: 'shutdown' }), shutdown.signal);
    await expect(first).rejects.toEqual({ kind: 'shutdown' });
    expect(h.called('CancelStepsCommand')).toEqual([]);
    const clusterId = h.called('AddJobFlowStepsCommand')[0]!.JobFlowId!;
    const [step] = await stepsOn(clusterId);
    expect(step?.Status?.State).toBe('RUNNING');

    // The next worker: the run recorded the cluster, so it looks there and finds the step by its name.
    const second = await run(h, { ...req, clusterId });
    expect(second.status.state).toBe('COMPLETED');
    expect(second.handle.stepId).toBe(step?.Id);
    // A worker that died before recording the cluster finds the run's cluster by its name, then the step.
    const third = await run(h, req, () => {});
    expect(third.handle).toEqual(second.handle);
    expect(third.status.state).toBe('COMPLETED');
    expect(h.called('RunJobFlowCommand')).toHaveLength(1);
    expect(h.called('AddJobFlowStepsCommand')).toHaveLength(1);
    expect(await stepsOn(second.handle.clusterId!)).toHaveLength(1);

    // A failed step is not the end of the job: a retry submits the step again, on the same cluster.
    h.advanced.set(step!.Id!, { State: 'FAILED' });
    const retry = await run(h, { ...req, clusterId: second.handle.clusterId! });
    expect(retry.handle.clusterId).toBe(second.handle.clusterId);
    expect(retry.handle.stepId).not.toBe(step?.Id);
    expect(retry.status.state).toBe('COMPLETED');
    expect((await stepsOn(second.handle.clusterId!)).map((s) => s.Name)).toEqual([req.name, req.name]);
    await h.runner.close();
  });

  it('runs on AFLUENTE_EMR_CLUSTER_ID without starting a cluster, and finds its step past the first page', async () => {
    const clusterId = await sharedCluster();
    const h = harness({ AFLUENTE_EMR_CLUSTER_ID: clusterId });
    const req = request('load_warehouse', 3);
    const { handle, status } = await run(h, req);
    expect(status.state).toBe('COMPLETED');
    expect(handle).toEqual({
      stepId: expect.stringMatching(/^s-/),
      clusterId,
      // The cluster's own log URI, not the configured one.
      logs: `s3://shared-logs/${clusterId}/steps/${handle.stepId}/`,
    });
    expect(h.called('RunJobFlowCommand')).toEqual([]);
    expect((await stepsOn(clusterId)).map((s) => s.Name)).toEqual(['afluente run=3 job=32 load_warehouse']);

    // 100 newer steps push it to ListSteps' second page; it is still found, and not submitted again.
    const filler = Array.from({ length: 100 }, (_, i) => ({
      Name: `other ${i}`,
      HadoopJarStep: { Jar: 'command-runner.jar', Args: ['true'] },
    }));
    await admin.send(new AddJobFlowStepsCommand({ JobFlowId: clusterId, Steps: filler }));
    const page = await admin.send(new ListStepsCommand({ ClusterId: clusterId }));
    expect(page.Marker).toBeDefined();
    expect(page.Steps?.map((s) => s.Name)).not.toContain(req.name);
    const again = await run(h, req);
    expect(again.handle.stepId).toBe(handle.stepId);
    expect(h.called('AddJobFlowStepsCommand')).toHaveLength(1);
    expect(h.called('ListStepsCommand').map((input) => input.Marker)).toContainEqual(expect.any(String));

    // The shared cluster is never terminated by a run.
    await h.runner.terminateCluster(clusterId);
    expect(h.called('TerminateJobFlowsCommand')).toEqual([]);
    await h.runner.close();
  });

  it('reports EMR’s failure details, or says the step failed without them', async () => {
    const h = harness();
    const details = {
      Reason: 'The given path is invalid.',
      Message: 'split_tables: boom: read 12 records, the manifest says 10',
      LogFile: `${LOGS}/j-X/steps/s-X/stderr.gz`,
    };
    const failed = await run(h, request('split_tables', 4), (handle) =>
      h.advanced.set(handle.stepId, { State: 'FAILED', FailureDetails: details }),
    );
    expect(failed.status).toEqual({
      state: 'FAILED',
      reason: details.Reason,
      message: details.Message,
      logs: details.LogFile,
    });
    const bare = await run(h, request('load_warehouse', 4), (handle) =>
      h.advanced.set(handle.stepId, { State: 'FAILED' }),
    );
    expect(bare.status).toEqual({
      state: 'FAILED',
      reason: 'emr_step_failed',
      message: 'the EMR step failed without details',
      logs: `${LOGS}/${bare.handle.clusterId}/steps/${bare.handle.stepId}/`,
    });
    expect(await h.runner.status(failed.handle)).toEqual(failed.status);
    await h.runner.close();
  });

  it('cancels the step on EMR when its signal aborts, and waits until EMR says CANCELLED', async () => {
    const h = harness();
    const controller = new AbortController();
    let submitted: StepHandle | undefined;
    const running = run(
      h,
      request('split_tables', 5),
      (handle) => {
        submitted = handle;
        setTimeout(() => controller.abort({ kind: 'cancelled' }), 150);
      },
      controller.signal,
    );
    await expect(running).rejects.toEqual({ kind: 'cancelled' });

    expect(h.called('CancelStepsCommand')).toEqual([
      {
        ClusterId: submitted?.clusterId,
        StepIds: [submitted?.stepId],
        StepCancellationOption: 'SEND_INTERRUPT',
      },
    ]);
    // Polled through CANCEL_PENDING until CANCELLED.
    const after = h.calls.slice(h.calls.findIndex((c) => c.command === 'CancelStepsCommand'));
    expect(after.filter((c) => c.command === 'DescribeStepCommand').length).toBeGreaterThan(1);
    expect(await h.runner.status(submitted!)).toMatchObject({
      state: 'CANCELLED',
    });
    await h.runner.close();
  });

  it('cancel() stops a running step, and leaves one that already ended as it was', async () => {
    const h = harness();
    const shutdown = new AbortController();
    let handle: StepHandle | undefined;
    await expect(
      run(
        h,
        request('split_tables', 6),
        (submitted) => {
          handle = submitted;
          shutdown.abort({ kind: 'shutdown' });
        },
        shutdown.signal,
      ),
    ).rejects.toEqual({ kind: 'shutdown' });
    expect(await h.runner.status(handle!)).toMatchObject({ state: 'RUNNING' });
    expect(await h.runner.cancel(handle!)).toEqual({ state: 'CANCELLED', logs: handle?.logs });
    expect(h.called('CancelStepsCommand')).toHaveLength(1);

    const done = await run(h, request('load_warehouse', 6, { clusterId: handle?.clusterId ?? null }));
    expect(await h.runner.cancel(done.handle)).toEqual({ state: 'COMPLETED', logs: done.handle.logs });
    expect(h.called('CancelStepsCommand')).toHaveLength(1);
    await h.runner.close();
  });

  it('terminates a run’s transient cluster, and starts another if a later step finds it ended', async () => {
    const h = harness();
    const transform = await run(h, request('split_tables', 7));
    await h.runner.terminateCluster(transform.handle.clusterId!);
    const { Cluster } = await admin.send(
      new DescribeClusterCommand({ ClusterId: transform.handle.clusterId }),
    );
    expect(Cluster?.Status?.State).toBe('TERMINATED');

    const load = await run(h, request('load_warehouse', 7, { clusterId: transform.handle.clusterId! }));
    expect(load.status.state).toBe('COMPLETED');
    expect(load.handle.clusterId).not.toBe(transform.handle.clusterId);
    expect(h.called('RunJobFlowCommand')).toHaveLength(2);
    // The completed step on the ended cluster is still found: a retry of the transform does not run it again.
    const again = await run(
      h,
      request('split_tables', 7, { clusterId: transform.handle.clusterId! }),
      () => {},
    );
    expect(again.handle).toEqual(transform.handle);
    await h.runner.close();
  });
});
