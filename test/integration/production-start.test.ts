import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import { chmod, cp, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { dropTestState, testConfig, TOKEN } from '../support/env.ts';
import { freePort } from '../support/net.ts';
import { waitFor } from '../support/wait.ts';

// There is no Docker engine here, so this follows the production image's build path by hand: the Dockerfile's
// `runtime` stage and the stages it is built FROM (app), the files they copy, the production-only install of
// the deps stage, and the image's entry point, against the local services. If the runtime needed a
// devDependency, a file the Dockerfile forgets to copy, or write access to its own folder (the image's files
// belong to root and it runs as `node`), the service would not start.

const run = promisify(execFile);
const config = testConfig();
let dir: string | undefined;
afterAll(async () => {
  await dropTestState(config);
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

/** The Dockerfile's stages in order, with `\` continuations joined and comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\n(\s*#.*\n)*/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === 'FROM') {
      const [, from = '', name = ''] = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args) ?? [];
      stages.push({ name: name || String(stages.length), from, instructions: [] });
    } else if (op.toUpperCase() !== 'ARG' || stages.length > 0) {
      stages.at(-1)?.instructions.push({ op: op.toUpperCase(), args: args.replace(/\s+/g, ' ') });
    }
  }
  return stages;
}

/** The stage and the stages it is built FROM, base first, and the image at the bottom of the chain. */
function chain(stages: Stage[], name: string): { stages: Stage[]; base: string } {
  const byName = new Map(stages.map((s) => [s.name, s]));
  const path: Stage[] = [];
  let stage = byName.get(name);
  let base = '';
  while (stage) {
    path.unshift(stage);
    base = stage.from;
    stage = byName.get(stage.from);
  }
  return { stages: path, base };
}

/** A COPY's sources and destination, with its flags (`--from`, `--chown`, …). */
function copyOf(args: string): { flags: Record<string, string>; sources: string[]; dest: string } {
  const words = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(' ');
  const flags: Record<string, string> = {};
  while (words[0]?.startsWith('--')) {
    const [key = '', value = ''] = (words.shift() as string).slice(2).split('=');
    flags[key] = value;
  }
  const dest = words.pop() ?? '';
  return { flags, sources: words, dest };
}

/** The arguments of the last `op` in these stages: the one in force in the image. */
function lastOf(op: string, stages: Stage[]): string | undefined {
  return stages.flatMap((s) => s.instructions).findLast((i) => i.op === op)?.args;
}

/** What the production image is made of, read from the Dockerfile itself so the two cannot drift apart. */
async function runtimeImage() {
  const stages = parseDockerfile(await readFile('Dockerfile', 'utf8'));
  const runtime = chain(stages, 'runtime');
  const copies = runtime.stages.flatMap((s) =>
    s.instructions.filter((i) => i.op === 'COPY').map((i) => copyOf(i.args)),
  );
  // node_modules comes from other stages: what they copy in and run is what makes it.
  const builders = [...new Set(copies.map((c) => c.flags.from).filter((f): f is string => !!f))].map((name) =>
    chain(stages, name),
  );
  const builderCopies = builders.flatMap((b) =>
    b.stages.flatMap((s) => s.instructions.filter((i) => i.op === 'COPY').map((i) => copyOf(i.args))),
  );
  const env: Record<string, string> = {};
  for (const i of runtime.stages.flatMap((s) => s.instructions).filter((i) => i.op === 'ENV'))
    for (const [, key = '', value = ''] of i.args.matchAll(/(\w+)=(\S*)/g)) env[key] = value;
  const entrypoint = lastOf('ENTRYPOINT', runtime.stages) ?? '';
  return {
    stages,
    runtime,
    builders,
    /** [source, destination] pairs of the files the image's stages copy from the build context. */
    files: [...builderCopies, ...copies]
      .filter((c) => !c.flags.from)
      .flatMap((c) =>
        c.sources.map((src) => {
          const into = c.dest.endsWith('/') || c.sources.length > 1;
          return [src, into ? join(c.dest, basename(src)) : c.dest] as const;
        }),
      ),
    env,
    entrypoint,
    user: lastOf('USER', runtime.stages),
    run: builders.flatMap((b) => b.stages.flatMap((s) => s.instructions.filter((i) => i.op === 'RUN'))),
  };
}

describe('the production image (Dockerfile)', () => {
  it('is the last stage, `runtime`, on the official Node 24 slim image, non-root, with a health check', async () => {
    const image = await runtimeImage();
    expect(image.stages.at(-1)?.name).toBe('runtime');
    // Directly or through the app stage; the Debian release may be pinned (node:24-bookworm-slim).
    expect(image.runtime.base).toMatch(/^node:24(-[a-z]+)?-slim$/);
    expect(image.runtime.stages.map((s) => s.name)).toEqual(['app', 'runtime']);
    expect(image.user).toBeDefined();
    expect(image.user).not.toMatch(/^(root|0)(:|$)/);
    const runtime = image.runtime.stages.at(-1) as Stage;
    const ops = runtime.instructions.map((i) => i.op);
    expect(ops).toEqual(expect.arrayContaining(['USER', 'HEALTHCHECK', 'STOPSIGNAL', 'ENTRYPOINT']));
    expect(runtime.instructions.find((i) => i.op === 'HEALTHCHECK')?.args).toMatch(/^(--\S+ )*CMD \[/);
    expect(runtime.instructions.find((i) => i.op === 'STOPSIGNAL')?.args).toBe('SIGTERM');
    // Exec form: node is PID 1 and gets SIGTERM itself; a shell form would put /bin/sh in between.
    expect(JSON.parse(image.entrypoint)).toEqual(['node', 'service/main.ts']);

    // Production dependencies only, and none of the local stage's Spark, Python, Java or demo.
    expect(image.run.map((r) => r.args).join('\n')).toMatch(/npm ci --omit=dev/);
    const chainRuns = image.runtime.stages.flatMap((s) => s.instructions.filter((i) => i.op === 'RUN'));
    // The one RUN puts the CLI on PATH: a link, nothing installed.
    expect(chainRuns.map((r) => r.args)).toEqual(['ln -s /app/cli/afluente.mjs /usr/local/bin/afluente']);
    const sources = image.files.map(([src]) => src.replace(/\/$/, ''));
    for (const localOnly of ['spark', 'demo', 'scripts', 'requirements.txt', 'test', 'infra'])
      expect(sources.filter((s) => s === localOnly || s.startsWith(`${localOnly}/`))).toEqual([]);

    // The local stage (docker compose) is built from the same app stage, before runtime.
    const names = image.stages.map((s) => s.name);
    expect(names.indexOf('local')).toBeGreaterThan(-1);
    expect(names.indexOf('local')).toBeLessThan(names.indexOf('runtime'));
    expect(chain(image.stages, 'local').stages.map((s) => s.name)).toEqual(['app', 'local']);
  });

  it('has a .dockerignore allowlist that keeps node_modules and the venvs out of the context', async () => {
    const patterns = (await readFile('.dockerignore', 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(patterns[0]).toBe('*');
    const allowed = patterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1).replace(/\/$/, ''));
    for (const kept of ['node_modules', '.venv', '.data', 'test', 'cdk.out', '.env'])
      expect(allowed.filter((a) => a === kept || a.startsWith(`${kept}/`))).toEqual([]);
    // Everything any stage copies from the context is let in.
    const stages = parseDockerfile(await readFile('Dockerfile', 'utf8'));
    const copied = stages.flatMap((s) =>
      s.instructions
        .filter((i) => i.op === 'COPY')
        .map((i) => copyOf(i.args))
        .filter((c) => !c.flags.from)
        .flatMap((c) => c.sources),
    );
    for (const src of copied)
      expect(
        allowed.some((a) => src === a || src.startsWith(`${a}/`)),
        `${src} is not in .dockerignore's allowlist`,
      ).toBe(true);
  });
});

describe('the production start path', () => {
  it('starts from a production-only install and answers /health/ready', { timeout: 240_000 }, async () => {
    const { files, entrypoint, env } = await runtimeImage();
    const sources = files.map(([src]) => src);
    expect(sources).toEqual(
      expect.arrayContaining(['package.json', 'package-lock.json', 'service', 'contract', 'config']),
    );
    const command = JSON.parse(entrypoint) as string[];
    expect(command.slice(0, 1)).toEqual(['node']);

    dir = await mkdtemp(join(tmpdir(), 'afluente-prod-'));
    for (const [src, dest] of files) await cp(src, join(dir, dest), { recursive: true });
    await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: dir, timeout: 200_000 });
    const installed = await run('npm', ['ls', '--omit=dev', '--depth=0', '--json'], { cwd: dir }).catch(
      (e: { stdout: string }) => e,
    );
    const names = Object.keys((JSON.parse(installed.stdout) as { dependencies?: object }).dependencies ?? {});
    expect(names).toContain('fastify');
    for (const devOnly of ['vitest', 'typescript', 'aws-cdk-lib', 'node', 'pg'])
      expect(names).not.toContain(devOnly);

    // Like the image: the files belong to root and the service runs as another user, so it may read its
    // folder but not write to it. (Only when this test runs as root; otherwise it runs as the owner.)
    const asRoot = process.getuid?.() === 0;
    // process.execPath is Node 24, the image's runtime; the image has no other node.
    let node = process.execPath;
    if (asRoot) {
      await chmod(dir, 0o755);
      expect((await stat(join(dir, 'service', 'main.ts'))).mode & 0o022).toBe(0);
      // The checkout's node_modules may sit in a folder the other user cannot enter (a mktemp clone is 0700);
      // in the image node is a root-owned binary anyone may run, so it gets one like that here.
      node = join(dir, '.node', 'node');
      await cp(process.execPath, node);
      await chmod(join(dir, '.node'), 0o755);
      await chmod(node, 0o755);
    }

    const port = await freePort();
    let output = '';
    const child = spawn(node, command.slice(1), {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? '',
        ...env,
        AFLUENTE_HOST: '127.0.0.1',
        AFLUENTE_PORT: String(port),
        AFLUENTE_MYSQL_URL: config.mysql.url,
        AFLUENTE_QUEUE_PREFIX: config.queue.prefix,
        AFLUENTE_API_TOKENS: TOKEN,
      },
      ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
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
      expect(env.NODE_ENV).toBe('production');
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    expect(child.exitCode).toBe(0);
  });
});
