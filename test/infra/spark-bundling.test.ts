// Local bundling of the Spark jobs: the first Python that exists builds them; none at all falls back to Docker.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../infra/paths.ts';
import { SPARK_FILES, SparkLocalBundling } from '../../infra/spark-bundling.ts';

const sparkDir = join(REPO_ROOT, 'spark');
const dirs: string[] = [];
const outputDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'afluente-spark-bundle-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('SparkLocalBundling', () => {
  it('skips a Python that is not there and builds with the next one', () => {
    const out = outputDir();
    const bundled = new SparkLocalBundling(sparkDir, ['/nonexistent/bin/python', 'python3']).tryBundle(out);
    expect(bundled).toBe(true);
    expect(readdirSync(out).sort()).toEqual([...SPARK_FILES].sort());
  });

  it('answers false without any Python, so CDK bundles in Docker instead', () => {
    const out = outputDir();
    expect(new SparkLocalBundling(sparkDir, ['/nonexistent/bin/python']).tryBundle(out)).toBe(false);
    expect(readdirSync(out)).toEqual([]);
  });

  it('fails loudly when a Python runs package.py and it fails', () => {
    const out = outputDir();
    const broken = new SparkLocalBundling(join(REPO_ROOT, 'infra'), ['python3']);
    expect(() => broken.tryBundle(out)).toThrow(/package\.py failed with status/);
  });
});
