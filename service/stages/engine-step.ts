import type { StageContext } from '../orchestration/stage-handler.ts';
import { StageError } from '../orchestration/stage-handler.ts';
import type { RunEngine } from '../orchestration/run-engine.ts';
import type { Stage } from '../../contract/stages.ts';
import type { StepRequest, StepRunner } from '../steps/step-runner.ts';

export interface SparkStepDeps {
  runner: StepRunner;
  engine: Pick<RunEngine, 'attachExternal' | 'clusterOf'>;
}

/**
 * Runs one Spark step for a stage and returns when it COMPLETED. The step id (and the cluster, on EMR) is
 * recorded on the job the moment it is known, so the reconciler and a restarted worker can find it. A failed
 * step becomes a retryable StageError that carries the step's own message and where its logs are.
 */
export async function runSparkStep<S extends Stage>(
  deps: SparkStepDeps,
  ctx: StageContext<S>,
  request: Omit<StepRequest, 'runId' | 'jobId' | 'clusterId'>,
): Promise<void> {
  const status = await deps.runner.run(
    { ...request, runId: ctx.run.id, jobId: ctx.job.id, clusterId: ctx.run.clusterId ?? null },
    {
      signal: ctx.signal,
      onSubmitted: async (handle) => {
        ctx.logger.info(
          { step: handle.stepId, cluster: handle.clusterId, logs: handle.logs },
          'spark step submitted',
        );
        await deps.engine.attachExternal(ctx.job.id, ctx.run.id, handle.stepId, handle.clusterId);
      },
    },
  );
  switch (status.state) {
    case 'COMPLETED':
      return;
    case 'FAILED':
      throw new StageError(
        status.reason ?? 'step_failed',
        `${request.job}: ${status.message ?? 'the step failed'}`,
        {
          logs: status.logs,
        },
      );
    case 'CANCELLED':
      throw new StageError('step_cancelled', `${request.job}: the step was cancelled outside afluente`, {
        logs: status.logs,
      });
    case 'PENDING':
    case 'RUNNING':
      throw new Error(`step runner returned a step that has not ended (${status.state})`);
  }
}
