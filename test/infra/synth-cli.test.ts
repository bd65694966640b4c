// `npm run synth` as an operator runs it: the CDK CLI from devDependencies, cdk.json's context, and no network.
// Where the kernel lets an unprivileged user make a network namespace, the synth runs inside one with no
// interfaces at all, so any attempt to reach npm, AWS or a notices feed fails it.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const out = mkdtempSync(join(tmpdir(), 'afluente-synth-cli-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function canIsolateNetwork(): boolean {
  try {
    execFileSync('unshare', ['-rn', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('npm run synth', () => {
  it(
    'writes the template with the CDK CLI, offline and without AWS credentials',
    { timeout: 180_000 },
    async () => {
      const command = ['npm', 'run', 'synth', '--', '--output', out];
      const isolated = canIsolateNetwork();
      const env = { ...process.env };
      for (const key of Object.keys(env))
        if (key.startsWith('AWS_') || key.startsWith('CDK_')) delete env[key];
      const [file, ...args] = isolated ? ['unshare', '-rn', ...command] : command;
      await run(file as string, args, { env, timeout: 170_000 });
      const template = JSON.parse(readFileSync(join(out, 'Afluente.template.json'), 'utf8')) as {
        Resources: Record<string, { Type: string }>;
      };
      const types = new Set(Object.values(template.Resources).map((r) => r.Type));
      for (const type of [
        'AWS::ECS::Service',
        'AWS::Lambda::Function',
        'AWS::RDS::DBInstance',
        'AWS::ElastiCache::ReplicationGroup',
        'AWS::RedshiftServerless::Workgroup',
        'AWS::EMR::SecurityConfiguration',
        'AWS::CloudWatch::Dashboard',
      ])
        expect(types).toContain(type);
      expect(existsSync(join(out, 'manifest.json'))).toBe(true);
      if (!isolated)
        console.warn('unshare -rn is not allowed here: the synth ran with the network available');
    },
  );
});
