// Bundles the Spark jobs for EMR: afluente_spark.zip (built by spark/package.py) next to the two job scripts,
// which is the layout AFLUENTE_EMR_SCRIPTS_URI points at. Local Python first; Docker only without one.
import { BundlingOutput, DockerImage, type BundlingOptions, type ILocalBundling } from 'aws-cdk-lib';
import { spawnSync } from 'node:child_process';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';

/** The files the EMR steps expect under the scripts prefix. */
export const SPARK_FILES = ['split_tables.py', 'load_warehouse.py', 'afluente_spark.zip'] as const;
const JOBS = ['split_tables.py', 'load_warehouse.py'];

/** Runs spark/package.py with the first Python that exists: the repo's venv, then the machine's python3. */
export class SparkLocalBundling implements ILocalBundling {
  private readonly sparkDir: string;
  private readonly pythons: string[];

  constructor(sparkDir: string, pythons: string[]) {
    this.sparkDir = sparkDir;
    this.pythons = pythons;
  }

  tryBundle(outputDir: string): boolean {
    for (const python of this.pythons) {
      const run = spawnSync(
        python,
        [join(this.sparkDir, 'package.py'), '--out', join(outputDir, 'afluente_spark.zip')],
        { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
      );
      // Not there (or not runnable): try the next one. There, but failing: a real error, not a reason for Docker.
      if (run.error) continue;
      if (run.status !== 0) {
        throw new Error(
          `${python} spark/package.py failed with status ${run.status}: ${run.stderr.trim() || run.stdout.trim()}`,
        );
      }
      for (const job of JOBS) copyFileSync(join(this.sparkDir, job), join(outputDir, job));
      return true;
    }
    return false;
  }
}

/** Asset bundling options for the spark/ folder. */
export function sparkBundling(sparkDir: string, repoRoot: string): BundlingOptions {
  return {
    local: new SparkLocalBundling(sparkDir, [join(repoRoot, '.venv', 'bin', 'python'), 'python3']),
    // For a machine without Python: the same script in a stock Python image (the folder is /asset-input).
    image: DockerImage.fromRegistry('public.ecr.aws/docker/library/python:3.12-slim'),
    command: [
      'bash',
      '-c',
      `python package.py --out /asset-output/afluente_spark.zip && cp ${JOBS.join(' ')} /asset-output/`,
    ],
    // Three files, never one archive: BucketDeployment must extract them as they are.
    outputType: BundlingOutput.NOT_ARCHIVED,
  };
}
