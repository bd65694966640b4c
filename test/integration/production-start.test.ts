import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { dropTestState, testConfig, TOKEN } from '../support/env.ts';
import { freePort } from '../support/net.ts';
import { waitFor } from '../support/wait.ts';

// There is no Docker engine here, so this follows the image's build path by hand: the files the Dockerfile's
// runtime stage copies, a production-only install, and the image's entry point, against the local services.
// If the runtime needed a devDependency, or a file the Dockerfile forgets to copy, the service would not start.

const run = promisify(execFile);
const config = testConfig();
let dir: string | undefined;
afterAll(async () => {
  await dropTestState(config);
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The sources the runtime stage copies, read from the Dockerfile itself so the two cannot drift apart. */
async function runtimeCopies(): Promise<{ files: string[]; entrypoint: string[] }> {
  const dockerfile = await readFile('Dockerfile', 'utf8');
  const runtime = dockerfile.slice(dockerfile.indexOf('AS runtime'));
  const files = [...runtime.matchAll(/^COPY (?!--from)(?:--chown=\S+ )?(\S+) \S+$/gm)].map(
    (m) => m[1] as string,
  );
  const entry = /^ENTRYPOINT (\[.*\])$/m.exec(runtime)?.[1];
  return { files: ['package-lock.json', ...files], entrypoint: JSON.parse(entry ?? '[]') as string[] };
}

describe('the production start path', () => {
  it('starts from a production-only install and answers /health/ready', { timeout: 240_000 }, async () => {
    const { files, entrypoint } = await runtimeCopies();
    expect(files).toEqual(expect.arrayContaining(['package.json', 'service', 'contract', 'config']));
    expect(entrypoint.slice(0, 1)).toEqual(['node']);

    dir = await mkdtemp(join(tmpdir(), 'afluente-prod-'));
    for (const file of files) await cp(file, join(dir, file), { recursive: true });
    await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: dir, timeout: 200_000 });
    const installed = await run('npm', ['ls', '--omit=dev', '--depth=0', '--json'], { cwd: dir }).catch(
      (e: { stdout: string }) => e,
    );
    const names = Object.keys((JSON.parse(installed.stdout) as { dependencies?: object }).dependencies ?? {});
    expect(names).toContain('fastify');
    for (const devOnly of ['vitest', 'typescript', 'aws-cdk-lib', 'node'])
      expect(names).not.toContain(devOnly);

    const port = await freePort();
    let output = '';
    // process.execPath is Node 24, the image's runtime; the image has no other node.
    const child = spawn(process.execPath, entrypoint.slice(1), {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'production',
        AFLUENTE_PORT: String(port),
        AFLUENTE_MYSQL_URL: config.mysql.url,
        AFLUENTE_QUEUE_PREFIX: config.queue.prefix,
        AFLUENTE_API_TOKENS: TOKEN,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = once(child, 'exit');
    try {
      const ready = await waitFor(
        async () => {
          if (child.exitCode !== null) throw new Error(`the service exited:\n${output}`);
          const res = await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined);
          return res?.status === 200 ? await res.json() : undefined;
        },
        'the production service to be ready',
        60_000,
      );
      expect(ready).toEqual({ status: 'ok', checks: { mysql: { ok: true }, redis: { ok: true } } });
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    expect(child.exitCode).toBe(0);
  });
});
