import type { Stage } from '../../contract/stages.ts';
import type { LoadedSource } from '../config/sources.ts';
import type { RunEngine } from '../orchestration/run-engine.ts';
import type { StageContext } from '../orchestration/stage-handler.ts';
import { NonRetryableError, StageError } from '../orchestration/stage-handler.ts';
import { namedOnce, type StepRequest, type StepState } from '../steps/step-runner.ts';
import type { StepRunners } from '../steps/step-runners.ts';
import { chooseEngine, type EngineChoice } from './engine-choice.ts';

export interface EngineStepDeps {
  runners: Pick<StepRunners, 'of'>;
  engine: Pick<RunEngine, 'attachExternal' | 'clusterOf' | 'recordEngine'>;
  /** AFLUENTE_EMBEDDED_MAX_BYTES: engine `auto` runs embedded up to this many validated bytes. */
  maxEmbeddedBytes: number;
}

/**
 * Decides the engine of a transform or load job and records it, with why, on the job and the run before its
 * step starts. Every attempt of a job keeps the engine its first attempt picked, so a redelivered job never
 * starts a second engine beside a step the first one may have left running; a retry of the run (a new job)
 * decides again, which is where a new `engine` on the retry takes effect.
 */
export async function decideEngine<S extends Stage>(
  deps: EngineStepDeps,
  ctx: StageContext<S>,
  source: Pick<LoadedSource, 'engine'>,
  validatedBytes: number,
): Promise<EngineChoice> {
  const choice: EngineChoice = ctx.job.engine
    ? { engine: ctx.job.engine, reason: ctx.job.engineReason ?? 'picked by an earlier attempt of the job' }
    : chooseEngine({
        requested: ctx.run.params?.engine ?? null,
        configured: source.engine,
        validatedBytes,
        maxEmbeddedBytes: deps.maxEmbeddedBytes,
      });
  await deps.engine.recordEngine(ctx.job.id, ctx.run.id, choice);
  ctx.logger.info({ engine: choice.engine, why: choice.reason }, 'engine chosen');
  return choice;
}

/**
 * What a job's `metrics.step` holds: the reconciler writes it while the step runs (`RUNNING`), and the stage
 * writes the step's final state over it when the step ends, so a finished job never shows a running step.
 */
export interface StepMetrics {
  id: string | null;
  state: StepState;
  checkedAt: string;
  message?: string;
}

function stepMetrics(id: string | null, state: StepState, message?: string): StepMetrics {
  return { id, state, checkedAt: new Date().toISOString(), ...(message === undefined ? {} : { message }) };
}

/**
 * The step of an earlier attempt whose committed output this attempt reuses (the step writes its manifest or
 * result last, so it did its work), or undefined when the job never recorded one.
 */
export function reusedStep(job: StageContext<Stage>['job']): StepMetrics | undefined {
  const earlier = job.metrics?.step as Partial<StepMetrics> | undefined;
  const id = earlier?.id ?? job.externalId ?? null;
  if (!earlier && !id) return undefined;
  return stepMetrics(id, 'COMPLETED', 'an earlier attempt’s step committed its output; reused');
}

/**
 * Runs one step of a stage on the chosen engine and returns, when it COMPLETED, the step's metrics for the job.
 * The step id (and the cluster, on EMR) is recorded on the job the moment it is known, so the reconciler and a
 * restarted worker can find it. A failed step becomes a StageError that carries the step's own message, where its
 * logs are, and the step's final state for the job's metrics; a NonRetryableError when the step said a retry
 * would fail the same way.
 */
export async function runEngineStep<S extends Stage>(
  deps: EngineStepDeps,
  ctx: StageContext<S>,
  choice: EngineChoice,
  request: Omit<StepRequest, 'runId' | 'jobId' | 'clusterId'>,
): Promise<StepMetrics> {
  let stepId: string | null = ctx.job.externalId ?? null;
  const status = await deps.runners.of(choice.engine).run(
    { ...request, runId: ctx.run.id, jobId: ctx.job.id, clusterId: ctx.run.clusterId ?? null },
    {
      signal: ctx.signal,
      onSubmitted: async (handle) => {
        stepId = handle.stepId;
        ctx.logger.info(
          { step: handle.stepId, engine: choice.engine, cluster: handle.clusterId, logs: handle.logs },
          'step submitted',
        );
        await deps.engine.attachExternal(ctx.job.id, ctx.run.id, handle.stepId, handle.clusterId);
      },
    },
  );
  switch (status.state) {
    case 'COMPLETED':
      return stepMetrics(stepId, 'COMPLETED');
    case 'FAILED': {
      const reason = status.reason ?? 'step_failed';
      const message = namedOnce(request.job, status.message ?? 'the step failed');
      const partial = { metrics: { step: stepMetrics(stepId, 'FAILED', status.message) } };
      // The step knows a retry would fail the same way (a missing column, a bad spec): the job fails at once.
      if (status.retryable === false) {
        const said = `${message} (not retried: it fails the same way until this is fixed)`;
        throw new NonRetryableError(reason, said, { logs: status.logs }, partial);
      }
      throw new StageError(reason, message, { logs: status.logs }, partial);
    }
    case 'CANCELLED':
      throw new StageError(
        'step_cancelled',
        `${request.job}: the step was cancelled outside afluente`,
        { logs: status.logs },
        { metrics: { step: stepMetrics(stepId, 'CANCELLED', status.message) } },
      );
    case 'PENDING':
    case 'RUNNING':
      throw new Error(`step runner returned a step that has not ended (${status.state})`);
  }
}
