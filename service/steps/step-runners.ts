import type { StepEngine } from '../../contract/source-config.ts';
import type { EmbeddedStepRunner } from './embedded-runner.ts';
import type { LiveWork, StepControl, StepHandle, StepRunner, StepStatus } from './step-runner.ts';

/**
 * The two engines' runners side by side: Spark's (local or EMR, as AFLUENTE_STEP_RUNNER says) and the embedded
 * one, which every deployment has. A stage picks one with {@link of}; the reconciler, a cancel and the orphan
 * sweep go through this object, which routes each step to the runner its id belongs to (`embedded:<pid>` to
 * the embedded runner, anything else to Spark's) and lists what both have running.
 */
export class StepRunners implements StepControl {
  readonly spark: StepRunner;
  readonly embedded: EmbeddedStepRunner;

  constructor(spark: StepRunner, embedded: EmbeddedStepRunner) {
    this.spark = spark;
    this.embedded = embedded;
  }

  of(engine: StepEngine): StepRunner {
    return engine === 'embedded' ? this.embedded : this.spark;
  }

  /** The runner that ran the step with this id. */
  forStep(stepId: string): StepRunner {
    return this.embedded.owns(stepId) ? this.embedded : this.spark;
  }

  status(handle: StepHandle): Promise<StepStatus> {
    return this.forStep(handle.stepId).status(handle);
  }

  cancel(handle: StepHandle): Promise<StepStatus> {
    return this.forStep(handle.stepId).cancel(handle);
  }

  async listLive(): Promise<LiveWork> {
    const [spark, embedded] = await Promise.all([this.spark.listLive(), this.embedded.listLive()]);
    return {
      steps: [...spark.steps, ...embedded.steps],
      clusters: [...spark.clusters, ...embedded.clusters],
    };
  }

  /** Only Spark's EMR runner has clusters. */
  terminateCluster(clusterId: string): Promise<void> {
    return this.spark.terminateCluster(clusterId);
  }

  async close(): Promise<void> {
    await Promise.all([this.spark.close(), this.embedded.close()]);
  }
}
