// `npm test` and `npm run test:chaos`: runs each part of the test command whatever the parts before it gave, so
// one failing vitest test never hides the Spark suite, then prints one closing line that counts every suite.
// Usage: node scripts/test.ts [--chaos]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

const dir = mkdtempSync(join(tmpdir(), 'afluente-test-'));
const chaos = process.argv.includes('--chaos');

function run(file: string, args: string[], env: Record<string, string> = {}): number {
  const result = spawnSync(file, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  if (result.error) console.error(`could not run ${file}: ${result.error.message}`);
  return result.status ?? 1;
}

/** vitest's counts, as test/support/summary-reporter.ts writes them; a run that wrote none failed to start. */
function vitest(name: string, config?: string): Counts | { error: string } {
  const file = join(dir, `${name}.json`);
  const code = run('vitest', ['run', ...(config ? ['--config', config] : [])], {
    AFLUENTE_TEST_COUNTS: file,
  });
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Counts;
  } catch {
    return { error: `vitest exited ${code} before counting its tests` };
  }
}

/** pytest's counts, read from the attributes of its JUnit report's <testsuite> element. */
function pytest(): Counts | { error: string } {
  const file = join(dir, 'pytest.xml');
  const code = run('.venv/bin/python', [
    '-m',
    'pytest',
    'spark/tests',
    '-q',
    '-p',
    'no:cacheprovider',
    `--junitxml=${file}`,
  ]);
  let xml: string;
  try {
    xml = readFileSync(file, 'utf8');
  } catch {
    return { error: `pytest exited ${code} before reporting its tests` };
  }
  const suite = /<testsuite\b[^>]*>/.exec(xml)?.[0] ?? '';
  const attr = (name: string): number => Number(new RegExp(`\\b${name}="(\\d+)"`).exec(suite)?.[1] ?? 0);
  const failed = attr('failures') + attr('errors');
  const skipped = attr('skipped');
  return { passed: attr('tests') - failed - skipped, failed, skipped };
}

const parts: [string, Counts | { error: string }][] = [];
let checkFailed = false;
if (chaos) {
  parts.push(['chaos', vitest('chaos', 'vitest.chaos.config.ts')]);
} else {
  checkFailed = run('npm', ['run', 'check']) !== 0;
  parts.push(['vitest', vitest('vitest')]);
  parts.push(['pytest', pytest()]);
}
rmSync(dir, { recursive: true, force: true });

const total: Counts = { passed: 0, failed: 0, skipped: 0 };
const described = parts.map(([name, counts]) => {
  if ('error' in counts) {
    total.failed += 1;
    return `${name}: ${counts.error}`;
  }
  total.passed += counts.passed;
  total.failed += counts.failed;
  total.skipped += counts.skipped;
  return `${name} ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`;
});
if (checkFailed) described.unshift('npm run check failed');
console.log(`\n${described.join('; ')}`);
console.log(`${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exit(checkFailed || total.failed > 0 ? 1 : 0);
