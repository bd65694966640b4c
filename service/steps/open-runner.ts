import type { EMRClient } from '@aws-sdk/client-emr';
import type { Lake } from '../../lib/lake/lake.ts';
import type { Config } from '../config/env.ts';
import type { Logger } from '../observability/logger.ts';
import { EmbeddedStepRunner } from './embedded-runner.ts';
import { EmrStepRunner } from './emr-runner.ts';
import { LocalStepRunner } from './local-runner.ts';
import { StepRunners } from './step-runners.ts';

export interface OpenStepRunnerOptions {
  /** For the emr runner: the client to send with (tests add middleware to it). @default one from config */
  emrClient?: EMRClient;
}

type RunnerConfig = Pick<Config, 'steps' | 'warehouse' | 'queue'>;

/**
 * The Spark step runner config picks (AFLUENTE_STEP_RUNNER): `local` (spark-submit) or `emr`. Narrow on `kind` for
 * what only one has, such as the emr runner's `terminateCluster`.
 */
export function openStepRunner(
  config: RunnerConfig,
  lake: Lake,
  logger: Logger,
  options: OpenStepRunnerOptions = {},
): LocalStepRunner | EmrStepRunner {
  const { steps, warehouse } = config;
  if (steps.runner === 'local') {
    return new LocalStepRunner({
      lake,
      logger,
      spark: steps.spark,
      namespace: config.queue.prefix,
      ...(warehouse.password ? { warehousePassword: warehouse.password } : {}),
    });
  }
  return new EmrStepRunner({
    lake,
    logger,
    emr: steps.emr,
    ...(options.emrClient ? { client: options.emrClient } : {}),
  });
}

/** The embedded engine's runner: in every deployment, a child process of the worker. */
export function openEmbeddedRunner(config: RunnerConfig, lake: Lake, logger: Logger): EmbeddedStepRunner {
  const { steps, warehouse } = config;
  return new EmbeddedStepRunner({
    lake,
    logger,
    embedded: steps.embedded,
    spark: steps.spark,
    namespace: config.queue.prefix,
    ...(warehouse.password ? { warehousePassword: warehouse.password } : {}),
  });
}

/** Both engines' runners (see StepRunners). */
export function openStepRunners(
  config: RunnerConfig,
  lake: Lake,
  logger: Logger,
  options: OpenStepRunnerOptions = {},
): StepRunners {
  return new StepRunners(
    openStepRunner(config, lake, logger, options),
    openEmbeddedRunner(config, lake, logger),
  );
}
