import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, chown, cp, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';

// `docker exec <container> afluente runs`, without a Docker engine: the production image's files as the
// Dockerfile's deps, app and runtime stages copy them, a production-only install, the image's only Node (24), the
// Dockerfile's `ln -s … /usr/local/bin/afluente`, and the CLI run through that link as another user than the
// files' owner, as the image's `node` user is. If the CLI needed a devDependency or a file the image lacks, or
// wrote to its own files, this would fail.

const run = promisify(execFile);
const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
let t: TestApp;
let url: string;
let dir: string;

interface Copy {
  chown?: string;
  sources: string[];
  dest: string;
}

/** The COPY instructions (from the build context) of the runtime image's stages and the deps stage it installs from. */
async function imageCopies(): Promise<Copy[]> {
  const text = (await readFile('Dockerfile', 'utf8')).replace(/\\\n/g, ' ');
  const copies: Copy[] = [];
  let stage = '';
  for (const line of text.split('\n').map((l) => l.trim())) {
    const from = /^FROM\s+\S+\s+AS\s+(\S+)/i.exec(line);
    if (from) stage = from[1] ?? '';
    if (!['deps', 'app', 'runtime'].includes(stage) || !/^COPY\s/i.test(line)) continue;
    const words = line.split(/\s+/).slice(1);
    const flags = Object.fromEntries(
      words.filter((w) => w.startsWith('--')).map((w) => w.slice(2).split('=') as [string, string]),
    );
    if (flags.from) continue;
    const paths = words.filter((w) => !w.startsWith('--'));
    copies.push({ chown: flags.chown, sources: paths.slice(0, -1), dest: paths.at(-1) ?? '' });
  }
  return copies;
}

beforeAll(async () => {
  // The API alone: the run the test creates stays PENDING, no worker touches it.
  t = await startTestApp({ env: { AFLUENTE_ROLES: 'api' } });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;

  dir = await mkdtemp(join(tmpdir(), 'afluente-cli-image-'));
  const copies = await imageCopies();
  expect(copies.flatMap((c) => c.sources)).toEqual(expect.arrayContaining(['cli']));
  for (const copy of copies)
    for (const src of copy.sources) {
      const into = copy.dest.endsWith('/') || copy.sources.length > 1;
      const dest = join(dir, into ? join(copy.dest, basename(src)) : copy.dest);
      await cp(src, dest, { recursive: true });
      if (asRoot && copy.chown) await chown(dest, NOBODY, NOBODY);
    }
  await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: dir, timeout: 200_000 });
  // The image's link onto PATH, pointing into this copy instead of /app.
  const link = /^RUN ln -s \/app\/(\S+) \/usr\/local\/bin\/afluente$/m.exec(
    await readFile('Dockerfile', 'utf8'),
  );
  expect(link?.[1]).toBe('cli/afluente.mjs');
  await mkdir(join(dir, '.bin'));
  await symlink(join(dir, link?.[1] ?? ''), join(dir, '.bin', 'afluente'));
  // The image's one Node, where the other user can run it (the checkout may sit in a folder it cannot enter).
  await mkdir(join(dir, '.node'));
  await cp(process.execPath, join(dir, '.node', 'node'));
  await mkdir(join(dir, '.home'));
  if (asRoot) {
    await chmod(dir, 0o755);
    await chmod(join(dir, '.node'), 0o755);
    await chown(join(dir, '.home'), NOBODY, NOBODY);
  }
}, 240_000);
afterAll(async () => {
  await t?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function afluente(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // No node_modules/.bin of the checkout (its Node 24 comes from a devDependency the image does not have).
  const path = (process.env.PATH ?? '').split(delimiter).filter((p) => !p.includes('node_modules'));
  const child = spawn('afluente', args, {
    cwd: dir,
    env: {
      PATH: [join(dir, '.bin'), join(dir, '.node'), ...path].join(delimiter),
      HOME: join(dir, '.home'),
      NPM_CONFIG_UPDATE_NOTIFIER: 'false',
      AFLUENTE_URL: url,
      AFLUENTE_TOKEN: TOKEN,
    },
    ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

describe('afluente in the production image', () => {
  it('runs from a production-only install, as the user the image runs as', { timeout: 60_000 }, async () => {
    const created = await afluente(['run', 'demo', '--json']);
    expect(created.stderr).not.toMatch(/npm error/);
    expect(created.code).toBe(0);
    const { id } = JSON.parse(created.stdout) as { id: number };

    const listed = await afluente(['runs']);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`^ *${id} +demo +PENDING +manual `, 'm'));
  });
});
