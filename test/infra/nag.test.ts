// cdk-nag's AwsSolutions checks over the app as `npm run synth` builds it (assets bundled, the checks registered),
// and the acknowledgements: each names a real finding and says specifically why.
import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SPARK_FILES } from '../../infra/spark-bundling.ts';
import { cleanUp, synthesize, type Synthesized } from './synth.ts';

interface Acknowledgement {
  path: string;
  id: string;
  reason: string;
}

let s: Synthesized;
beforeAll(() => {
  // The checks run inside the synth, as in `npm run synth`: an unacknowledged error throws here.
  s = synthesize({ bundle: true, context: { 'afluente:nag': true } });
});
afterAll(() => cleanUp(s));

/** Every acknowledgement of a cdk-nag rule in the tree (CDK makes some of its own), with its construct. */
function acknowledgements(): Acknowledgement[] {
  return s.app.node.findAll().flatMap((construct) =>
    construct.node.metadata
      .filter((entry) => entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
      .flatMap((entry) =>
        Object.entries(entry.data as Record<string, string>).map(([id, reason]) => ({
          path: construct.node.path,
          id: id.replace(/^annotation::/i, ''),
          reason,
        })),
      )
      .filter((a) => a.id.startsWith('AwsSolutions-')),
  );
}

function describeViolations(
  violations: { ruleName: string; violatingResources: { constructPath?: string }[] }[],
) {
  return violations.flatMap((v) => v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}`));
}

describe('cdk-nag AwsSolutions', () => {
  it('finds no unacknowledged error and no unacknowledged warning', () => {
    const report = new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(s.app);
    expect(report.violations.filter((v) => v.severity === 'error').flatMap((v) => v.ruleName)).toEqual([]);
    expect(report.violations.filter((v) => v.severity === 'warning').flatMap((v) => v.ruleName)).toEqual([]);
    expect(describeViolations(report.violations)).toEqual([]);
  });

  it('acknowledges only findings that the checks really raise there (no stale acknowledgement)', () => {
    // The same pack with acknowledgements ignored: every raw finding, by rule id and construct path.
    const raw = new AwsSolutionsChecks(undefined, { verbose: true });
    (raw as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
    const findings = raw
      .validateScope(s.app)
      .violations.flatMap((v) =>
        v.violatingResources.map((r) => ({ id: v.ruleName, path: r.constructPath ?? '' })),
      );
    const stale = acknowledgements()
      .filter(
        (a) => !findings.some((f) => f.id === a.id && (f.path === a.path || f.path.startsWith(`${a.path}/`))),
      )
      .map((a) => `${a.id} at ${a.path}`);
    expect(stale).toEqual([]);
  });

  it('gives every acknowledgement a specific reason: long enough, and never shared between rules', () => {
    const all = acknowledgements();
    expect(all.length).toBeGreaterThan(10);
    const short = all.filter((a) => a.reason.trim().length < 40).map((a) => `${a.id}: "${a.reason}"`);
    expect(short).toEqual([]);
    const boilerplate =
      /^(n\/?a|ok|todo|fine|false positive|not (needed|applicable|relevant)|suppressed?)\b/i;
    expect(all.filter((a) => boilerplate.test(a.reason.trim())).map((a) => a.id)).toEqual([]);
    // One reason may cover several findings of one rule (the wildcards of one grant), never two rules.
    const rulesByReason = new Map<string, Set<string>>();
    for (const a of all) {
      const rule = a.id.replace(/\[.*$/, '');
      rulesByReason.set(a.reason, (rulesByReason.get(a.reason) ?? new Set()).add(rule));
    }
    const shared = [...rulesByReason].filter(([, rules]) => rules.size > 1).map(([reason]) => reason);
    expect(shared).toEqual([]);
  });
});

describe('bundled assets', () => {
  const assetDirs = () =>
    readdirSync(s.outdir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && d.name.startsWith('asset.'))
      .map((d) => join(s.outdir, d.name));

  it('bundles both Lambdas with esbuild as ESM with source maps', () => {
    const bundles = assetDirs().filter((dir) => existsSync(join(dir, 'index.mjs')));
    expect(bundles).toHaveLength(2);
    for (const dir of bundles) {
      expect(existsSync(join(dir, 'index.mjs.map'))).toBe(true);
      const code = readFileSync(join(dir, 'index.mjs'), 'utf8');
      expect(code).toContain('createRequire');
      expect(code).toMatch(/export\s*\{[^}]*handler/);
    }
  });

  it('bundles the Spark jobs: the two scripts and afluente_spark.zip side by side', () => {
    const spark = assetDirs().filter((dir) => existsSync(join(dir, 'afluente_spark.zip')));
    expect(spark).toHaveLength(1);
    expect(readdirSync(spark[0] as string).sort()).toEqual([...SPARK_FILES].sort());
    // A zip's first bytes: PK\x03\x04.
    expect(readFileSync(join(spark[0] as string, 'afluente_spark.zip')).subarray(0, 4)).toEqual(
      Buffer.from([0x50, 0x4b, 0x03, 0x04]),
    );
  });

  it('builds the service image from the runtime stage for linux/amd64', () => {
    const manifest = JSON.parse(
      readFileSync(join(s.outdir, `${s.stack.artifactId}.assets.json`), 'utf8'),
    ) as {
      dockerImages: Record<string, { source: Record<string, string> }>;
    };
    const images = Object.values(manifest.dockerImages);
    expect(images).toHaveLength(1);
    expect(images[0]?.source).toMatchObject({ dockerBuildTarget: 'runtime', platform: 'linux/amd64' });
    // The repo's .dockerignore is an allowlist: no node_modules or venv in the context.
    const context = join(s.outdir, images[0]?.source.directory ?? '');
    expect(readdirSync(context)).toEqual(expect.arrayContaining(['Dockerfile', 'service', 'package.json']));
    expect(readdirSync(context)).not.toEqual(expect.arrayContaining(['node_modules']));
    expect(readdirSync(context)).not.toEqual(expect.arrayContaining(['.venv']));
  });
});
