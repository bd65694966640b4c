import { constants } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { SparkJob } from '../../contract/steps.ts';
import type { StepsConfig } from '../config/env.ts';
import { ProcessStepRunner, type ProcessStepRunnerOptions, type StepProgram } from './process-runner.ts';

export interface LocalStepRunnerOptions extends Omit<ProcessStepRunnerOptions, 'dir'> {
  spark: StepsConfig['spark'];
  /**
   * Keeps this deployment's pid files and logs apart from another's in the same temp folder (the queue prefix).
   * @default '' (directly under `<tempDir>/afluente-steps/`)
   */
  namespace?: string;
}

interface SparkTools {
  sparkSubmit: string;
  sparkHome: string;
  python: string;
}

/**
 * Runs Spark steps with spark-submit from the project's venv, Spark in local mode, as process groups of this
 * service (see {@link ProcessStepRunner}): ids `local:<pid>`, logs and pid files in
 * `<tempDir>/afluente-steps/<namespace>/`. A cancel stops spark-submit's JVM, the Python driver and its workers.
 */
export class LocalStepRunner extends ProcessStepRunner {
  constructor(options: LocalStepRunnerOptions) {
    // Per deployment (its queue prefix): two services sharing a temp folder must not take each other's run ids'
    // pid files for leftovers of their own.
    const dir = join(options.spark.tempDir, 'afluente-steps', options.namespace ?? '');
    super({ ...options, dir }, sparkProgram(options.spark));
  }
}

/** spark-submit of `<scripts>/<job>.py`, recognised in `/proc` by its script and its `--name <step name>`. */
function sparkProgram(spark: StepsConfig['spark']): StepProgram {
  const script = (job: SparkJob): string => join(spark.scripts, `${job}.py`);
  const scripts = (['split_tables', 'load_warehouse'] as const).map(script);
  let tools: Promise<SparkTools> | undefined;
  const lookUp = (): Promise<SparkTools> =>
    // A failed lookup is not kept: the venv may be set up while the service runs.
    (tools ??= findSparkTools(spark.venv).catch((error: unknown) => {
      tools = undefined;
      throw error;
    }));
  return {
    kind: 'local',
    tool: 'spark-submit',
    failedReason: 'spark_failed',
    async prepare(job) {
      await lookUp();
      await access(script(job)).catch(() => {
        throw new Error(`the Spark job ${script(job)} is missing (AFLUENTE_SPARK_SCRIPTS=${spark.scripts})`);
      });
    },
    async command(request, lake) {
      const found = await lookUp();
      return {
        file: found.sparkSubmit,
        args: [
          ...['--master', spark.master, '--driver-memory', spark.driverMemory],
          // The step's name in its command line: the orphan sweep tells its process from a reused pid by it.
          ...['--name', request.name],
          ...(spark.jars ? ['--jars', spark.jars] : []),
          ...['--conf', 'spark.sql.session.timeZone=UTC', '--conf', 'spark.ui.enabled=false'],
          script(request.job),
          ...['--spec', lake.spec],
          ...(lake.lakeRoot ? ['--lake-root', lake.lakeRoot] : []),
        ],
        env: {
          SPARK_HOME: found.sparkHome,
          PYSPARK_PYTHON: found.python,
          PYTHONPATH: spark.scripts,
          // The scripts folder is code, not a cache: no __pycache__ in the repo (or a read-only image).
          PYTHONDONTWRITEBYTECODE: '1',
        },
      };
    },
    // Before or after it execs its JVM: spark-submit's launcher rebuilds the JVM's arguments, but keeps the
    // script, `--spec` and `--name <name>` as they were.
    isStepProcess: (args) => args.includes('--spec') && args.some((arg) => scripts.includes(arg)),
    isStep: (args, name) => args.some((arg, i) => arg === '--name' && args[i + 1] === name),
  };
}

/** spark-submit, pyspark's SPARK_HOME and the Python of a venv set up by scripts/setup-python.sh. */
async function findSparkTools(venv: string): Promise<SparkTools> {
  const sparkSubmit = join(venv, 'bin', 'spark-submit');
  const python = join(venv, 'bin', 'python');
  const fix = `run \`bash scripts/setup-python.sh\`, or point AFLUENTE_SPARK_VENV at a venv with pyspark (now ${venv})`;
  await access(sparkSubmit, constants.X_OK).catch(() => {
    throw new Error(`${sparkSubmit} is missing: ${fix}`);
  });
  const pythons = (await readdir(join(venv, 'lib')).catch(() => [] as string[]))
    .filter((name) => /^python3\.\d+$/.test(name))
    .sort((a, b) => Number(b.split('.')[1]) - Number(a.split('.')[1]));
  for (const name of pythons) {
    const sparkHome = join(venv, 'lib', name, 'site-packages', 'pyspark');
    const found = await access(join(sparkHome, 'bin', 'spark-class')).then(
      () => true,
      () => false,
    );
    if (found) return { sparkSubmit, sparkHome, python };
  }
  throw new Error(`pyspark is not installed in ${venv}/lib/python3.*/site-packages: ${fix}`);
}
