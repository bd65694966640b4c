import {
  AddJobFlowStepsCommand,
  CancelStepsCommand,
  DescribeClusterCommand,
  DescribeStepCommand,
  EMRClient,
  paginateListClusters,
  paginateListSteps,
  RunJobFlowCommand,
  TerminateJobFlowsCommand,
  type ClusterState,
  type Step,
  type StepConfig,
  type StepState as EmrStepState,
  type StepSummary,
} from '@aws-sdk/client-emr';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Lake } from '../../lib/lake/lake.ts';
import type { StepsConfig } from '../config/env.ts';
import type { Logger } from '../observability/logger.ts';
import {
  parseStepName,
  type LiveCluster,
  type LiveStep,
  type LiveWork,
  type RunStepOptions,
  type StepHandle,
  type StepRequest,
  type StepRunner,
  type StepState,
  type StepStatus,
} from './step-runner.ts';

export interface EmrStepRunnerOptions {
  lake: Lake;
  logger: Logger;
  emr: StepsConfig['emr'];
  /**
   * The client to send with. The runner owns it, and destroys it on close.
   * @default an EMRClient for `emr.endpoint` (or AWS) and the SDK's default region and credentials
   */
  client?: EMRClient;
  /**
   * How long a cancel waits for the step to reach CANCELLED before it gives up with an error.
   * @default 8 × emr.pollMs, at least 120000
   */
  cancelTimeoutMs?: number;
}

const ACTIVE_CLUSTER: ClusterState[] = ['STARTING', 'BOOTSTRAPPING', 'RUNNING', 'WAITING'];
/** What a step that is still to stop is in; CANCEL_PENDING is already being stopped. */
const LIVE_STEP: EmrStepState[] = ['PENDING', 'RUNNING'];
/** A run's transient cluster's name; the cluster also carries the run in its `run` tag. */
const CLUSTER_NAME = /^afluente run=([1-9]\d*)$/;
/** A step with the same name in one of these is the step: reattach instead of submitting it again. */
const REATTACH = new Set<EmrStepState>(['PENDING', 'RUNNING', 'COMPLETED', 'CANCEL_PENDING']);
const STATES: Record<EmrStepState, StepState> = {
  PENDING: 'PENDING',
  RUNNING: 'RUNNING',
  CANCEL_PENDING: 'RUNNING',
  COMPLETED: 'COMPLETED',
  CANCELLED: 'CANCELLED',
  FAILED: 'FAILED',
  INTERRUPTED: 'FAILED',
};

/**
 * The `lake` tag of the clusters a deployment starts: its lake root, which no other deployment shares. A root
 * EMR would refuse as a tag value is hashed.
 */
export function lakeTag(root: string): string {
  return /^[\p{L}\p{Z}\p{N}_.:/=+@-]{1,256}$/u.test(root)
    ? root
    : `sha256:${createHash('sha256').update(root).digest('hex')}`;
}

function ended(state: StepState): boolean {
  return state === 'COMPLETED' || state === 'FAILED' || state === 'CANCELLED';
}

/** A worker shutting down leaves its step running: the worker that takes the job over reattaches to it. */
function isShutdown(reason: unknown): boolean {
  return (reason as { kind?: unknown } | undefined)?.kind === 'shutdown';
}

/**
 * Runs Spark steps on EMR: on the run's cluster (`request.clusterId`), else on AFLUENTE_EMR_CLUSTER_ID, else on
 * a transient cluster it starts for the run (`afluente run=<runId>`), which the run's later steps reuse and which
 * terminates itself after AFLUENTE_EMR_IDLE_TIMEOUT_S idle (or when the run ends: {@link terminateCluster}).
 *
 * Submission is idempotent by step name: a live or completed step with the request's name is reattached to,
 * never submitted twice. A cancelled, timed-out or orphaned step is cancelled on the cluster (CancelSteps).
 */
export class EmrStepRunner implements StepRunner {
  readonly kind = 'emr';
  readonly #lake: Lake;
  readonly #logger: Logger;
  readonly #emr: StepsConfig['emr'];
  readonly #client: EMRClient;
  readonly #cancelTimeoutMs: number;
  readonly #lakeTag: string;
  /** Each cluster's log URI, looked up once. */
  readonly #logUris = new Map<string, string | undefined>();

  constructor(options: EmrStepRunnerOptions) {
    this.#lake = options.lake;
    this.#logger = options.logger;
    this.#emr = options.emr;
    this.#client =
      options.client ?? new EMRClient(options.emr.endpoint ? { endpoint: options.emr.endpoint } : {});
    this.#cancelTimeoutMs = options.cancelTimeoutMs ?? Math.max(120_000, options.emr.pollMs * 8);
    this.#lakeTag = lakeTag(options.lake.root);
  }

  async run(request: StepRequest, { signal, onSubmitted }: RunStepOptions): Promise<StepStatus> {
    signal.throwIfAborted();
    // Not abortable: a submission cut off halfway could leave a step nobody knows the id of.
    const { clusterId, stepId } = await this.#submit(request);
    const handle: StepHandle = { stepId, clusterId };
    const logs = await this.#logsOf(clusterId, stepId);
    if (logs) handle.logs = logs;
    await onSubmitted(handle);
    return this.#wait(handle, signal);
  }

  async status(handle: StepHandle): Promise<StepStatus> {
    const { step, clusterId } = await this.#describe(handle);
    return this.#toStatus(step, clusterId);
  }

  async cancel(handle: StepHandle): Promise<StepStatus> {
    const clusterId = this.#clusterOf(handle);
    const current = await this.#describe(handle);
    if (ended(STATES[current.step.Status?.State ?? 'PENDING']))
      return this.#toStatus(current.step, clusterId);
    const { CancelStepsInfoList: [info] = [] } = await this.#client.send(
      new CancelStepsCommand({
        ClusterId: clusterId,
        StepIds: [handle.stepId],
        StepCancellationOption: 'SEND_INTERRUPT',
      }),
    );
    if (info?.Status === 'FAILED') {
      // Usually the step ended meanwhile; what it ended as is read below.
      this.#logger.warn({ step: handle.stepId, clusterId, why: info.Reason }, 'EMR refused to cancel a step');
    }
    const deadline = Date.now() + this.#cancelTimeoutMs;
    let delay = this.#firstDelay();
    for (;;) {
      const { step } = await this.#describe(handle);
      const state = step.Status?.State;
      // SEND_INTERRUPT may end a running step as INTERRUPTED: that is the cancel taking effect.
      if (state === 'CANCELLED' || state === 'INTERRUPTED') {
        return { state: 'CANCELLED', ...(await this.#logsField(clusterId, handle.stepId, step)) };
      }
      const status = await this.#toStatus(step, clusterId);
      if (ended(status.state)) return status;
      if (Date.now() + delay > deadline) {
        throw new Error(
          `EMR step ${handle.stepId} on ${clusterId} is still ${state ?? 'unknown'} ` +
            `${Math.round(this.#cancelTimeoutMs / 1000)} s after CancelSteps`,
        );
      }
      await sleep(delay);
      delay = this.#nextDelay(delay);
    }
  }

  /**
   * Terminates a transient cluster that a run started, once the run has ended (its idle timeout would, later).
   * The configured AFLUENTE_EMR_CLUSTER_ID is shared by every run and is never terminated.
   */
  async terminateCluster(clusterId: string): Promise<void> {
    if (clusterId === this.#emr.clusterId) return;
    await this.#client.send(new TerminateJobFlowsCommand({ JobFlowIds: [clusterId] }));
    this.#logger.info({ clusterId }, 'terminated a transient EMR cluster');
  }

  /**
   * This deployment's transient clusters that are still up: named `afluente run=<run>` and tagged app=afluente,
   * `run=<run>` and `lake=<this lake>` (a cluster of another deployment in the account has another lake).
   * Then the PENDING and RUNNING steps with afluente names whose spec is in this lake, on those clusters and on
   * AFLUENTE_EMR_CLUSTER_ID (which is never listed as a cluster, whatever its tags).
   */
  async listLive(): Promise<LiveWork> {
    const clusters: LiveCluster[] = [];
    for await (const page of paginateListClusters(
      { client: this.#client },
      { ClusterStates: ACTIVE_CLUSTER },
    )) {
      for (const summary of page.Clusters ?? []) {
        const runId = CLUSTER_NAME.exec(summary.Name ?? '')?.[1];
        if (!summary.Id || !runId || summary.Id === this.#emr.clusterId) continue;
        const { Cluster } = await this.#client.send(new DescribeClusterCommand({ ClusterId: summary.Id }));
        const tags = new Map((Cluster?.Tags ?? []).map((tag) => [tag.Key, tag.Value]));
        if (tags.get('app') !== 'afluente' || tags.get('lake') !== this.#lakeTag || tags.get('run') !== runId)
          continue;
        // No creation time reads as just created: the sweep leaves it for later.
        const createdAt = summary.Status?.Timeline?.CreationDateTime ?? new Date();
        clusters.push({ clusterId: summary.Id, runId: Number(runId), createdAt });
      }
    }
    const steps: LiveStep[] = [];
    const onClusters = [
      ...(this.#emr.clusterId ? [this.#emr.clusterId] : []),
      ...clusters.map((c) => c.clusterId),
    ];
    for (const clusterId of onClusters) steps.push(...(await this.#liveSteps(clusterId)));
    return { steps, clusters };
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }

  async #liveSteps(clusterId: string): Promise<LiveStep[]> {
    const live: LiveStep[] = [];
    const pages = paginateListSteps(
      { client: this.#client },
      { ClusterId: clusterId, StepStates: LIVE_STEP },
    );
    for await (const page of pages) {
      for (const step of page.Steps ?? []) {
        const ref = parseStepName(step.Name ?? '');
        const state = step.Status?.State;
        if (!step.Id || !ref || !state || !LIVE_STEP.includes(state) || !this.#inLake(step)) continue;
        const createdAt = step.Status?.Timeline?.CreationDateTime ?? new Date();
        live.push({ ...ref, handle: { stepId: step.Id, clusterId }, createdAt });
      }
    }
    return live;
  }

  /** Whether the step reads its spec from this deployment's lake (a shared cluster may run another's steps). */
  #inLake(step: StepSummary): boolean {
    const args = step.Config?.Args ?? [];
    const at = args.indexOf('--spec');
    return at >= 0 && (args[at + 1] ?? '').startsWith(`${this.#lake.root}/`);
  }

  async #submit(request: StepRequest): Promise<{ clusterId: string; stepId: string }> {
    let clusterId = request.clusterId ?? this.#emr.clusterId;
    if (clusterId) {
      const step = await this.#findStep(clusterId, request.name);
      if (step?.Id) return this.#reattach(request, clusterId, step.Id);
      const state = await this.#clusterState(clusterId);
      if (!ACTIVE_CLUSTER.includes(state)) {
        if (clusterId === this.#emr.clusterId)
          throw new Error(
            `EMR cluster ${clusterId} (AFLUENTE_EMR_CLUSTER_ID) is ${state}: no step can run on it`,
          );
        // The run's transient cluster went away (its idle timeout, a failure): the run gets another one.
        this.#logger.warn({ clusterId, state, step: request.name }, 'the run’s EMR cluster has ended');
        clusterId = undefined;
      }
    }
    if (!clusterId) {
      const name = `afluente run=${request.runId}`;
      clusterId = await this.#findCluster(name);
      if (clusterId) {
        // A worker that died after starting the cluster, and maybe the step, is being taken over.
        const step = await this.#findStep(clusterId, request.name);
        if (step?.Id) return this.#reattach(request, clusterId, step.Id);
      } else {
        clusterId = await this.#startCluster(name, request);
      }
    }
    const { StepIds: [stepId] = [] } = await this.#client.send(
      new AddJobFlowStepsCommand({ JobFlowId: clusterId, Steps: [this.#stepConfig(request)] }),
    );
    if (!stepId) throw new Error(`EMR returned no step id for "${request.name}" on ${clusterId}`);
    this.#logger.info({ clusterId, stepId, step: request.name }, 'submitted an EMR step');
    return { clusterId, stepId };
  }

  #reattach(request: StepRequest, clusterId: string, stepId: string): { clusterId: string; stepId: string } {
    this.#logger.info({ clusterId, stepId, step: request.name }, 'reattached to an EMR step');
    return { clusterId, stepId };
  }

  #stepConfig(request: StepRequest): StepConfig {
    const scripts = this.#emr.scriptsUri;
    if (!scripts) throw new Error('AFLUENTE_EMR_SCRIPTS_URI must be set to run steps on EMR');
    return {
      Name: request.name,
      ActionOnFailure: 'CONTINUE',
      HadoopJarStep: {
        Jar: 'command-runner.jar',
        Args: [
          ...['spark-submit', '--deploy-mode', 'cluster', '--conf', 'spark.sql.session.timeZone=UTC'],
          ...['--py-files', `${scripts}/afluente_spark.zip`],
          `${scripts}/${request.job}.py`,
          ...['--spec', this.#lake.uri(request.specKey)],
        ],
      },
    };
  }

  /** The newest step named `name` on the cluster, if it is live or completed (one that failed is retried). */
  async #findStep(clusterId: string, name: string): Promise<StepSummary | undefined> {
    // ListSteps answers newest first, so the first page with the name has its newest step.
    for await (const page of paginateListSteps({ client: this.#client }, { ClusterId: clusterId })) {
      const matches = (page.Steps ?? []).filter((s) => s.Name === name);
      if (matches.length === 0) continue;
      const newest = matches.reduce((a, b) =>
        (b.Status?.Timeline?.CreationDateTime?.getTime() ?? 0) >
        (a.Status?.Timeline?.CreationDateTime?.getTime() ?? 0)
          ? b
          : a,
      );
      const state = newest.Status?.State;
      return state && REATTACH.has(state) ? newest : undefined;
    }
    return undefined;
  }

  async #findCluster(name: string): Promise<string | undefined> {
    for await (const page of paginateListClusters(
      { client: this.#client },
      { ClusterStates: ACTIVE_CLUSTER },
    )) {
      const found = page.Clusters?.find((c) => c.Name === name);
      if (found?.Id) return found.Id;
    }
    return undefined;
  }

  async #clusterState(clusterId: string): Promise<ClusterState> {
    const { Cluster } = await this.#client.send(new DescribeClusterCommand({ ClusterId: clusterId }));
    this.#logUris.set(clusterId, Cluster?.LogUri?.replace(/\/+$/, ''));
    return Cluster?.Status?.State ?? 'TERMINATED';
  }

  async #startCluster(name: string, request: StepRequest): Promise<string> {
    const emr = this.#emr;
    const source = /(?:^|\/)source=([^/]+)\//.exec(request.specKey)?.[1];
    const { JobFlowId } = await this.#client.send(
      new RunJobFlowCommand({
        Name: name,
        ReleaseLabel: emr.releaseLabel,
        Applications: [{ Name: 'Spark' }],
        Instances: {
          InstanceGroups: [
            { Name: 'primary', InstanceRole: 'MASTER', InstanceType: emr.instanceType, InstanceCount: 1 },
            ...(emr.instanceCount > 1
              ? [
                  {
                    Name: 'core',
                    InstanceRole: 'CORE' as const,
                    InstanceType: emr.instanceType,
                    InstanceCount: emr.instanceCount - 1,
                  },
                ]
              : []),
          ],
          // The run's next step (load after transform) reuses the cluster; the idle timeout ends it after.
          KeepJobFlowAliveWhenNoSteps: true,
          TerminationProtected: false,
          ...(emr.subnetId ? { Ec2SubnetId: emr.subnetId } : {}),
          // EMR manages the cluster's own groups; this one is what the warehouse's security group admits.
          ...(emr.securityGroup
            ? {
                AdditionalMasterSecurityGroups: [emr.securityGroup],
                AdditionalSlaveSecurityGroups: [emr.securityGroup],
              }
            : {}),
        },
        ...(emr.securityConfiguration ? { SecurityConfiguration: emr.securityConfiguration } : {}),
        ServiceRole: emr.serviceRole,
        JobFlowRole: emr.jobFlowRole,
        LogUri: emr.logUri,
        AutoTerminationPolicy: { IdleTimeout: emr.idleTimeoutS },
        VisibleToAllUsers: true,
        Tags: [
          { Key: 'app', Value: 'afluente' },
          { Key: 'run', Value: String(request.runId) },
          // Which deployment started it: the orphan sweep of another one in the account leaves it alone.
          { Key: 'lake', Value: this.#lakeTag },
          ...(source ? [{ Key: 'source', Value: source }] : []),
        ],
      }),
    );
    if (!JobFlowId) throw new Error(`EMR returned no cluster id for ${name}`);
    this.#logUris.set(JobFlowId, emr.logUri);
    this.#logger.info({ clusterId: JobFlowId, name }, 'started a transient EMR cluster');
    return JobFlowId;
  }

  async #wait(handle: StepHandle, signal: AbortSignal): Promise<StepStatus> {
    let delay = this.#firstDelay();
    try {
      for (;;) {
        signal.throwIfAborted();
        const status = await this.status(handle);
        if (ended(status.state)) return status;
        await sleep(delay, undefined, { signal });
        delay = this.#nextDelay(delay);
      }
    } catch (error) {
      if (!signal.aborted) throw error;
    }
    if (isShutdown(signal.reason)) {
      this.#logger.info(
        { step: handle.stepId },
        'left an EMR step running for the worker that takes its job over',
      );
      throw signal.reason;
    }
    await this.cancel(handle).catch((error: unknown) => {
      this.#logger.error({ err: error, step: handle.stepId }, 'could not cancel an EMR step');
    });
    throw signal.reason;
  }

  #firstDelay(): number {
    return Math.max(50, Math.round(this.#emr.pollMs / 4));
  }

  #nextDelay(delay: number): number {
    return Math.min(this.#emr.pollMs, Math.round(delay * 1.5));
  }

  #clusterOf(handle: StepHandle): string {
    const clusterId = handle.clusterId ?? this.#emr.clusterId;
    if (!clusterId)
      throw new Error(`EMR step ${handle.stepId} has no cluster id: its run does not record one`);
    return clusterId;
  }

  async #describe(handle: StepHandle): Promise<{ step: Step; clusterId: string }> {
    const clusterId = this.#clusterOf(handle);
    const { Step: step } = await this.#client.send(
      new DescribeStepCommand({ ClusterId: clusterId, StepId: handle.stepId }),
    );
    if (!step) throw new Error(`EMR has no step ${handle.stepId} on ${clusterId}`);
    return { step, clusterId };
  }

  async #toStatus(step: Step, clusterId: string): Promise<StepStatus> {
    const emrState = step.Status?.State ?? 'PENDING';
    const state = STATES[emrState];
    const logs = await this.#logsField(clusterId, step.Id ?? '', step);
    if (state !== 'FAILED') return { state, ...logs };
    const failure = step.Status?.FailureDetails;
    const why = step.Status?.StateChangeReason?.Message;
    if (emrState === 'INTERRUPTED') {
      return {
        state,
        reason: 'emr_step_interrupted',
        message: why ?? 'EMR interrupted the step (its cluster may have terminated)',
        ...logs,
      };
    }
    return {
      state,
      reason: failure?.Reason ?? 'emr_step_failed',
      message: failure?.Message ?? why ?? 'the EMR step failed without details',
      ...logs,
    };
  }

  async #logsField(clusterId: string, stepId: string, step: Step): Promise<{ logs?: string }> {
    const logs = step.Status?.FailureDetails?.LogFile ?? (await this.#logsOf(clusterId, stepId));
    return logs ? { logs } : {};
  }

  /** `<logUri>/<cluster>/steps/<step>/`, where EMR puts a step's stdout, stderr and controller logs. */
  async #logsOf(clusterId: string, stepId: string): Promise<string | undefined> {
    if (!this.#logUris.has(clusterId)) {
      await this.#clusterState(clusterId).catch(() => this.#logUris.set(clusterId, undefined));
    }
    const logUri = this.#logUris.get(clusterId) ?? this.#emr.logUri;
    return logUri ? `${logUri}/${clusterId}/steps/${stepId}/` : undefined;
  }
}
