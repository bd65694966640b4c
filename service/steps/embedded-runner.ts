import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { StepsConfig } from '../config/env.ts';
import { ProcessStepRunner, type ProcessStepRunnerOptions, type StepProgram } from './process-runner.ts';

/** The Python package of the embedded engine, in AFLUENTE_SPARK_SCRIPTS next to afluente_spark. */
export const EMBEDDED_MODULE = 'afluente_embedded';

export interface EmbeddedStepRunnerOptions extends Omit<ProcessStepRunnerOptions, 'dir'> {
  embedded: StepsConfig['embedded'];
  /** AFLUENTE_SPARK_SCRIPTS (the code) and AFLUENTE_SPARK_TEMP_DIR (logs, pid files, staging and spill). */
  spark: Pick<StepsConfig['spark'], 'scripts' | 'tempDir'>;
  /**
   * Keeps this deployment's pid files and logs apart from another's in the same temp folder (the queue prefix).
   * @default '' (directly under `<tempDir>/afluente-embedded/`)
   */
  namespace?: string;
}

/**
 * Runs the transform and load on the embedded engine (DuckDB, no JVM) as a child process of the worker:
 *
 *     PYTHONPATH=<scripts> <venv>/bin/python -m afluente_embedded <job> --spec <uri> [--lake-root <uri>]
 *         --step-name <name> --memory-limit <limit> --threads <n> --temp-dir <spill folder>
 *
 * The same spec documents and lake keys as the Spark jobs, and the same lifecycle as a local Spark step (see
 * {@link ProcessStepRunner}): ids `embedded:<pid>`, logs and pid files in `<tempDir>/afluente-embedded/<namespace>/`,
 * an `s3://` lake staged through a temp folder. It runs in every deployment, EMR's included: the step runs in
 * the worker's own task.
 */
export class EmbeddedStepRunner extends ProcessStepRunner {
  constructor(options: EmbeddedStepRunnerOptions) {
    const dir = join(options.spark.tempDir, 'afluente-embedded', options.namespace ?? '');
    super({ ...options, dir }, embeddedProgram(options.embedded, options.spark.scripts));
  }
}

function embeddedProgram(embedded: StepsConfig['embedded'], scripts: string): StepProgram {
  const python = join(embedded.venv, 'bin', 'python');
  return {
    kind: 'embedded',
    tool: EMBEDDED_MODULE,
    failedReason: 'embedded_failed',
    async prepare() {
      await access(python, constants.X_OK).catch(() => {
        throw new Error(
          `${python} is missing: run \`bash scripts/setup-python.sh\`, or point AFLUENTE_EMBEDDED_VENV at a venv ` +
            `with duckdb (now ${embedded.venv})`,
        );
      });
      const module = join(scripts, EMBEDDED_MODULE, '__main__.py');
      await access(module).catch(() => {
        throw new Error(`the embedded engine ${module} is missing (AFLUENTE_SPARK_SCRIPTS=${scripts})`);
      });
    },
    async command(request, lake, base) {
      const scratch = `${base}.spill`;
      return {
        file: python,
        args: [
          ...['-m', EMBEDDED_MODULE, request.job],
          ...['--spec', lake.spec],
          ...(lake.lakeRoot ? ['--lake-root', lake.lakeRoot] : []),
          // The step's name in its command line: the orphan sweep tells its process from a reused pid by it.
          ...['--step-name', request.name],
          ...['--memory-limit', embedded.memoryLimit, '--threads', String(embedded.threads)],
          ...['--temp-dir', scratch],
        ],
        env: { PYTHONPATH: scripts, PYTHONDONTWRITEBYTECODE: '1' },
        scratch,
      };
    },
    isStepProcess: (args) =>
      args.some((arg, i) => arg === EMBEDDED_MODULE && args[i - 1] === '-m') && args.includes('--spec'),
    isStep: (args, name) => args.some((arg, i) => arg === '--step-name' && args[i + 1] === name),
  };
}
