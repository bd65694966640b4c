import { spawn, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import {
  chmod,
  chown,
  cp,
  mkdir,
  mkdtemp,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { dropTestState, testConfig, TOKEN } from '../support/env.ts';
import { freePort } from '../support/net.ts';
import { waitFor } from '../support/wait.ts';

// There is no Docker engine here, so this follows the production image's build path by hand: the Dockerfile's
// `runtime` stage and the stages it is built FROM (app, base), the files they copy, what the builder stages
// make (the production-only node_modules of deps, the embedded engine's venv of venv), and the image's entry
// point and Python command, against the local services. If the runtime needed a devDependency, a Python package
// that is not in spark/requirements-embedded.txt, a file the Dockerfile forgets to copy, or write access to its
// own folder (the image's files belong to root and it runs as `node`), this fails.

const run = promisify(execFile);
const config = testConfig();
const roots: string[] = [];
afterAll(async () => {
  await dropTestState(config);
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

/** The image's python3: Debian 12's, like the image's base; another python3 where this machine has none. */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
/** Where the embedded engine's venv is kept between runs, one per requirements file and python. */
const VENV_CACHE = resolve('node_modules/.cache/afluente');
/** The user the image's processes run as here (when this test runs as root): nobody, as `node` is in the image. */
const IMAGE_UID = 65534;

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

interface Copy {
  flags: Record<string, string>;
  sources: string[];
  dest: string;
}

/** A COPY's sources and destination, with its flags (`--from`, `--chown`, …). */
function copyOf(args: string): Copy {
  const words = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(' ');
  const flags: Record<string, string> = {};
  while (words[0]?.startsWith('--')) {
    const [key = '', value = ''] = (words.shift() as string).slice(2).split('=');
    flags[key] = value;
  }
  const dest = words.pop() ?? '';
  return { flags, sources: words, dest };
}

/** [source, absolute destination in the image] for each source of a COPY, from a stage whose WORKDIR is `workdir`. */
function targets(copy: Copy, workdir: string): (readonly [string, string])[] {
  return copy.sources.map((src) => {
    const into = copy.dest.endsWith('/') || copy.sources.length > 1;
    const dest = into ? join(copy.dest, basename(src)) : copy.dest;
    return [src, isAbsolute(dest) ? dest : join(workdir, dest)] as const;
  });
}

const instructionsOf = (stages: Stage[], op: string): string[] =>
  stages.flatMap((s) => s.instructions.filter((i) => i.op === op).map((i) => i.args));

/** The arguments of the last `op` in these stages: the one in force in the image. */
function lastOf(op: string, stages: Stage[]): string | undefined {
  return instructionsOf(stages, op).at(-1);
}

/** A builder stage's product the image copies in (`COPY --from=<builder> <src> <dest>`), and how it is made. */
interface Product {
  builder: string;
  /** Where the image has it. */
  dest: string;
  /** Where the builder made it. */
  src: string;
  /** [context source, absolute destination in the builder] of the builder's COPYs. */
  files: (readonly [string, string])[];
  runs: string[];
}

/** What the production image is made of, read from the Dockerfile itself so the two cannot drift apart. */
async function runtimeImage() {
  const stages = parseDockerfile(await readFile('Dockerfile', 'utf8'));
  const runtime = chain(stages, 'runtime');
  const workdir = lastOf('WORKDIR', runtime.stages) ?? '/';
  const copies = runtime.stages.flatMap((s) => instructionsOf([s], 'COPY').map(copyOf));
  const products: Product[] = copies
    .filter((c) => c.flags.from)
    .map((c) => {
      const builder = chain(stages, c.flags.from as string);
      const builderWorkdir = lastOf('WORKDIR', builder.stages) ?? '/';
      const [[src = '', dest = ''] = []] = targets(c, workdir);
      return {
        builder: c.flags.from as string,
        dest,
        src: isAbsolute(src) ? src : join(builderWorkdir, src),
        files: instructionsOf(builder.stages, 'COPY')
          .map(copyOf)
          .filter((bc) => !bc.flags.from)
          .flatMap((bc) => targets(bc, builderWorkdir)),
        runs: instructionsOf(builder.stages, 'RUN'),
      };
    });
  const env: Record<string, string> = {};
  for (const args of instructionsOf(runtime.stages, 'ENV'))
    for (const [, key = '', value = ''] of args.matchAll(/(\w+)=(\S*)/g)) env[key] = value;
  return {
    stages,
    runtime,
    workdir,
    /** [context source, absolute destination] of the files the image's own stages copy from the build context. */
    files: copies.filter((c) => !c.flags.from).flatMap((c) => targets(c, workdir)),
    products,
    env,
    entrypoint: lastOf('ENTRYPOINT', runtime.stages) ?? '',
    user: lastOf('USER', runtime.stages),
    /** The RUNs of the image's own stages. */
    runs: instructionsOf(runtime.stages, 'RUN'),
  };
}
type Image = Awaited<ReturnType<typeof runtimeImage>>;

function product(image: Image, dest: string): Product {
  const found = image.products.find((p) => p.dest === join(image.workdir, dest));
  if (!found) throw new Error(`the runtime image copies no ${dest} from a builder stage`);
  return found;
}

/** How the venv stage makes the embedded engine's venv: where, and from which requirements file of the context. */
function venvRecipe(venv: Product): { path: string; requirements: string; install: string } {
  const make = venv.runs.find((r) => / -m venv /.test(r)) ?? '';
  const path = /-m venv (\S+)/.exec(make)?.[1] ?? '';
  const installs = venv.runs.flatMap((r) => r.split(' && ')).filter((c) => /\bpip install\b/.test(c));
  expect(installs, 'one pip install makes the venv').toHaveLength(1);
  const install = installs[0] as string;
  const file = /(?:^| )-r (\S+)/.exec(install)?.[1] ?? '';
  const requirements = venv.files.find(([, dest]) => dest === file)?.[0] ?? '';
  return { path, requirements, install };
}

/** `name==version` pins of a requirements file, extras dropped. */
async function pinsOf(file: string): Promise<Record<string, string>> {
  const pins: Record<string, string> = {};
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    const [, name = '', version = ''] = /^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)/.exec(line.trim()) ?? [];
    if (name) pins[name.toLowerCase()] = version;
  }
  return pins;
}

/**
 * A venv holding exactly `requirements`, made by PYTHON, kept under VENV_CACHE by the hash of the file and the
 * python: a fresh install from the package index is paid once per machine, not on every run.
 */
async function embeddedVenv(requirements: string): Promise<string> {
  const { stdout: version } = await run(PYTHON, ['-c', 'import sys; print(sys.executable, sys.version)']);
  const key = createHash('sha256')
    .update(await readFile(requirements))
    .update(version)
    .digest('hex')
    .slice(0, 16);
  const venv = join(VENV_CACHE, `embedded-venv-${key}`);
  const done = join(venv, '.afluente-complete');
  if (existsSync(done)) return venv;
  const building = `${venv}.${process.pid}.tmp`;
  await rm(building, { recursive: true, force: true });
  await mkdir(VENV_CACHE, { recursive: true });
  await run(PYTHON, ['-m', 'venv', building], { timeout: 120_000 });
  await run(
    join(building, 'bin', 'python'),
    ['-m', 'pip', 'install', '--no-cache-dir', '--disable-pip-version-check', '-q', '-r', requirements],
    { timeout: 480_000, maxBuffer: 16 * 1024 * 1024 },
  );
  await writeFile(join(building, '.afluente-complete'), `${requirements}\n`);
  // Another run may have made the same venv meanwhile: either one will do.
  await rename(building, venv).catch(async (error: unknown) => {
    await rm(building, { recursive: true, force: true });
    if (!existsSync(done)) throw error;
  });
  return venv;
}

/** A copy of `from` at `to` made of hard links where the file system allows (a venv is a few hundred MB). */
async function linkTree(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  await run('cp', ['-a', '--link', from, to]).catch(async () => {
    await rm(to, { recursive: true, force: true });
    await cp(from, to, { recursive: true, verbatimSymlinks: true });
  });
}

/** The folders the image's RUNs make for the image's user: `mkdir -p <folder> && chown <user> <folder>`. */
function ownedFolders(image: Image): { folder: string; owner: string }[] {
  return image.runs.flatMap((r) =>
    [...r.matchAll(/mkdir -p (\S+) && chown (\S+) (\S+)/g)]
      .filter(([, made, , owned]) => made === owned)
      .map(([, folder = '', owner = '']) => ({ folder, owner })),
  );
}

const asRoot = process.getuid?.() === 0;

/**
 * The image's file system under a temporary root: the files its stages copy, what its builder stages make (the
 * production node_modules only when asked: npm ci takes a while), and the folders it makes for its user. Files
 * belong to this test's user; when that is root, the image's processes run as IMAGE_UID, which may read them
 * and write only the folders made for it, as in the image.
 */
async function layOut(image: Image, options: { nodeModules: boolean; web?: boolean }) {
  const root = await mkdtemp(join(tmpdir(), 'afluente-image-'));
  roots.push(root);
  const inImage = (path: string): string => join(root, isAbsolute(path) ? path : join(image.workdir, path));
  await mkdir(inImage(image.workdir), { recursive: true });
  for (const [src, dest] of image.files) await cp(src, inImage(dest), { recursive: true });

  if (options.nodeModules) {
    const deps = product(image, 'node_modules');
    expect(deps.runs.join('\n')).toMatch(/npm ci --omit=dev/);
    const work = inImage(dirname(deps.src));
    for (const [src, dest] of deps.files) await cp(src, join(work, dest.slice(dirname(deps.src).length)));
    await run('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: work, timeout: 200_000 });
    if (work !== inImage(dirname(deps.dest))) await linkTree(join(work, 'node_modules'), inImage(deps.dest));
  }
  if (options.web) await buildWeb(image, inImage);
  const venv = product(image, '.venv');
  const recipe = venvRecipe(venv);
  expect(recipe.path).toBe(venv.src);
  await linkTree(await embeddedVenv(recipe.requirements), inImage(venv.dest));

  for (const { folder } of ownedFolders(image)) {
    await mkdir(inImage(folder), { recursive: true });
    if (asRoot) await chown(inImage(folder), IMAGE_UID, IMAGE_UID);
  }
  // In the image node is a root-owned binary anyone may run; the checkout's may sit in a folder the other user
  // cannot enter (a mktemp clone is 0700), so the image's user gets a copy like the image's.
  let node = process.execPath;
  if (asRoot) {
    await chmod(root, 0o755);
    node = inImage('/usr/local/bin/node');
    await mkdir(dirname(node), { recursive: true });
    await cp(process.execPath, node);
    await chmod(node, 0o755);
  }
  /** The image's ENV with its absolute paths under this root. */
  const env = Object.fromEntries(
    Object.entries(image.env).map(([k, v]) => [k, v.startsWith('/') ? inImage(v) : v]),
  );
  return { root, inImage, env, node, user: asRoot ? { uid: IMAGE_UID, gid: IMAGE_UID } : {} };
}

/**
 * The web stage's ui/dist, made as that stage makes it: its files from the context in a folder of their own, its
 * build command run there as written, and the output copied where the image has it. Its `npm ci` is stood in
 * for by the checkout's node_modules, the full install of the same lockfile.
 */
async function buildWeb(image: Image, inImage: (path: string) => string): Promise<void> {
  const web = product(image, 'ui/dist');
  const [install, build, ...more] = web.runs;
  expect(more).toEqual([]);
  expect(install).toMatch(/^npm ci( --[\w-]+)*$/);
  expect(install).not.toMatch(/--omit=dev/);
  expect(build).toMatch(/^node node_modules\/vite\/bin\/vite\.js build ui$/);
  const stage = await mkdtemp(join(tmpdir(), 'afluente-web-stage-'));
  roots.push(stage);
  const inStage = (path: string) => join(stage, path);
  for (const [src, dest] of web.files) await cp(src, inStage(dest), { recursive: true });
  const workdir = inStage(dirname(dirname(web.src)));
  await rm(join(workdir, 'ui', 'dist'), { recursive: true, force: true });
  await symlink(resolve('node_modules'), join(workdir, 'node_modules'));
  const [command = '', ...args] = (build as string).split(' ');
  await run(command === 'node' ? process.execPath : command, args, { cwd: workdir, timeout: 120_000 });
  await cp(inStage(web.src), inImage(web.dest), { recursive: true });
}

describe('the production image (Dockerfile)', () => {
  it('is the last stage, `runtime`, on the official Node 24 slim image, non-root, with a health check', async () => {
    const image = await runtimeImage();
    expect(image.stages.at(-1)?.name).toBe('runtime');
    // Through the base stage; the Debian release may be pinned (node:24-bookworm-slim).
    expect(image.runtime.base).toMatch(/^node:24(-[a-z]+)?-slim$/);
    expect(image.runtime.stages.map((s) => s.name)).toEqual(['base', 'app', 'runtime']);
    expect(image.user).toBeDefined();
    expect(image.user).not.toMatch(/^(root|0)(:|$)/);
    const runtime = image.runtime.stages.at(-1) as Stage;
    const ops = runtime.instructions.map((i) => i.op);
    expect(ops).toEqual(expect.arrayContaining(['USER', 'HEALTHCHECK', 'STOPSIGNAL', 'ENTRYPOINT']));
    expect(runtime.instructions.find((i) => i.op === 'HEALTHCHECK')?.args).toMatch(/^(--\S+ )*CMD \[/);
    expect(runtime.instructions.find((i) => i.op === 'STOPSIGNAL')?.args).toBe('SIGTERM');
    // Exec form: node is PID 1 and gets SIGTERM itself; a shell form would put /bin/sh in between.
    expect(JSON.parse(image.entrypoint)).toEqual(['node', 'service/main.ts']);

    // The local stage (docker compose) is built from the same app stage, before runtime.
    const names = image.stages.map((s) => s.name);
    expect(names.indexOf('local')).toBeGreaterThan(-1);
    expect(names.indexOf('local')).toBeLessThan(names.indexOf('runtime'));
    expect(chain(image.stages, 'local').stages.map((s) => s.name)).toEqual(['base', 'app', 'local']);
  });

  it('holds production dependencies only, and none of the local stage Spark, Java or demo', async () => {
    const image = await runtimeImage();
    expect(image.products.map((p) => [p.builder, p.dest])).toEqual([
      ['deps', '/app/node_modules'],
      ['venv', '/app/.venv'],
      ['web', '/app/ui/dist'],
    ]);
    expect(product(image, 'node_modules').runs.join('\n')).toMatch(/npm ci --omit=dev/);
    // The web stage installs the devDependencies to build the app; only its output comes across.
    expect(product(image, 'ui/dist').src).toBe('/app/ui/dist');
    // The image's own RUNs: Debian's python3 and the CAs the embedded load verifies Redshift with, the link that
    // puts the CLI on PATH, and the one folder its user writes. Nothing else is installed.
    const [python, ...rest] = image.runs;
    const packages = /apt-get install -y --no-install-recommends ([^&]+?) &&/.exec(python ?? '')?.[1];
    expect(packages?.split(' ')).toEqual(['python3', 'ca-certificates']);
    expect(python).toMatch(/rm -rf \/var\/lib\/apt\/lists\/\*$/);
    expect(rest).toEqual([
      'ln -s /app/cli/afluente.mjs /usr/local/bin/afluente',
      'mkdir -p /var/lib/afluente/spark && chown node:node /var/lib/afluente/spark',
    ]);

    // The venv: exactly spark/requirements-embedded.txt, no pip cache, at AFLUENTE_EMBEDDED_VENV.
    const venv = product(image, '.venv');
    const recipe = venvRecipe(venv);
    expect(recipe.requirements).toBe('spark/requirements-embedded.txt');
    expect(recipe.install).toMatch(/ --no-cache-dir /);
    expect(recipe.path).toBe(venv.src);
    expect(image.env.AFLUENTE_EMBEDDED_VENV).toBe(venv.dest);
    // The engine's requirements hold the runtime's packages, not requirements.txt's test tooling or pyspark.
    const pinned = Object.keys(await pinsOf(recipe.requirements));
    expect(pinned).toEqual(expect.arrayContaining(['duckdb', 'psycopg']));
    for (const tooling of ['pyspark', 'moto', 'pytest', 'sqlglot', 'vermin', 'check-jsonschema'])
      expect(pinned).not.toContain(tooling);
    const everything = [...image.runs, ...image.products.flatMap((p) => p.runs)].join('\n');
    expect(everything).not.toMatch(/pyspark|openjdk|jdbc|requirements\.txt/);

    // From the context: the service, and of spark/ only the embedded engine's code and its requirements.
    const sources = [...image.files, ...image.products.flatMap((p) => p.files)].map(([src]) =>
      src.replace(/\/$/, ''),
    );
    for (const localOnly of ['demo', 'scripts', 'requirements.txt', 'test', 'infra', 'bench'])
      expect(sources.filter((s) => s === localOnly || s.startsWith(`${localOnly}/`))).toEqual([]);
    expect(sources.filter((s) => s === 'spark' || s.startsWith('spark/')).sort()).toEqual([
      'spark/afluente_embedded',
      'spark/afluente_spark',
      'spark/requirements-embedded.txt',
    ]);
    // Where the service looks for them (PYTHONPATH=$AFLUENTE_SPARK_SCRIPTS), and the folder it writes.
    const scripts = image.env.AFLUENTE_SPARK_SCRIPTS ?? '';
    expect(image.files.map(([, dest]) => dest)).toEqual(
      expect.arrayContaining([join(scripts, 'afluente_spark'), join(scripts, 'afluente_embedded')]),
    );
    expect(ownedFolders(image)).toEqual([
      { folder: image.env.AFLUENTE_SPARK_TEMP_DIR, owner: `${image.user}:${image.user}` },
    ]);
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
  it('starts from a production-only install and answers /health/ready', { timeout: 300_000 }, async () => {
    const image = await runtimeImage();
    const sources = [...image.files, ...product(image, 'node_modules').files].map(([src]) => src);
    expect(sources).toEqual(
      expect.arrayContaining(['package.json', 'package-lock.json', 'service', 'contract', 'config']),
    );
    const command = JSON.parse(image.entrypoint) as string[];
    expect(command.slice(0, 1)).toEqual(['node']);

    const layout = await layOut(image, { nodeModules: true, web: true });
    const workdir = layout.inImage(image.workdir);
    const installed = await run('npm', ['ls', '--omit=dev', '--depth=0', '--json'], { cwd: workdir }).catch(
      (e: { stdout: string }) => e,
    );
    const names = Object.keys((JSON.parse(installed.stdout) as { dependencies?: object }).dependencies ?? {});
    expect(names).toContain('fastify');
    for (const devOnly of ['vitest', 'typescript', 'aws-cdk-lib', 'node', 'pg'])
      expect(names).not.toContain(devOnly);
    // Like the image: the files belong to root and the service runs as another user, so it may read its
    // folder but not write to it. (Only when this test runs as root; otherwise it runs as the owner.)
    if (asRoot) expect((await stat(join(workdir, 'service', 'main.ts'))).mode & 0o022).toBe(0);

    const port = await freePort();
    let output = '';
    const child = spawn(layout.node, command.slice(1), {
      cwd: workdir,
      env: {
        PATH: process.env.PATH ?? '',
        ...layout.env,
        AFLUENTE_HOST: '127.0.0.1',
        AFLUENTE_PORT: String(port),
        AFLUENTE_MYSQL_URL: config.mysql.url,
        AFLUENTE_QUEUE_PREFIX: config.queue.prefix,
        AFLUENTE_API_TOKENS: TOKEN,
      },
      ...layout.user,
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
        90_000,
      );
      expect(ready).toEqual({ status: 'ok', checks: { mysql: { ok: true }, redis: { ok: true } } });
      expect(image.env.NODE_ENV).toBe('production');
      // The web app the web stage built, served at /ui/ with the assets its page names.
      const page = await fetch(`http://127.0.0.1:${port}/ui/`);
      expect(page.status).toBe(200);
      const html = await page.text();
      const script = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(html)?.[1];
      expect(script, html).toBeDefined();
      const asset = await fetch(`http://127.0.0.1:${port}${script}`);
      expect(asset.status).toBe(200);
      expect(asset.headers.get('cache-control')).toMatch(/immutable/);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    expect(child.exitCode).toBe(0);
  });

  it(
    'runs the embedded engine the way the worker does: its pinned packages, its code, its temp folder',
    { timeout: 600_000 },
    async () => {
      const image = await runtimeImage();
      const layout = await layOut(image, { nodeModules: false });
      const { env } = layout;
      // What the worker runs: PYTHONPATH=$AFLUENTE_SPARK_SCRIPTS $AFLUENTE_EMBEDDED_VENV/bin/python -m …
      const python = join(env.AFLUENTE_EMBEDDED_VENV ?? '', 'bin', 'python');
      const options = {
        cwd: layout.inImage(image.workdir),
        env: { PATH: process.env.PATH ?? '', PYTHONPATH: env.AFLUENTE_SPARK_SCRIPTS ?? '' },
        timeout: 120_000,
        ...layout.user,
      };
      const pins = await pinsOf(venvRecipe(product(image, '.venv')).requirements);

      const probe = await run(
        python,
        [
          '-c',
          [
            'import importlib, importlib.util, json, os, sys, tempfile',
            'pins = json.loads(os.environ["PINS"])',
            'for name in pins: importlib.import_module(name.replace("-", "_"))',
            'import duckdb, psycopg, afluente_embedded',
            'from importlib.metadata import version',
            'from afluente_spark import spec, sql, errors',
            'con = duckdb.connect()',
            "ext = con.sql(\"select extension_name from duckdb_extensions() where loaded and extension_name in ('json', 'parquet')\").fetchall()",
            'fd, path = tempfile.mkstemp(dir=os.environ["TEMP_DIR"]); os.close(fd); os.remove(path)',
            'print(json.dumps({',
            '  "versions": {n: version(n) for n in pins},',
            '  "libpq": psycopg.pq.__impl__,',
            '  "extensions": sorted(e for (e,) in ext),',
            '  "tooling": [n for n in ("pyspark", "moto", "pytest") if importlib.util.find_spec(n)],',
            '  "engine": os.path.dirname(afluente_embedded.__file__),',
            '  "python": os.path.realpath(sys.executable),',
            '}))',
          ].join('\n'),
        ],
        {
          ...options,
          env: { ...options.env, TEMP_DIR: env.AFLUENTE_SPARK_TEMP_DIR ?? '', PINS: JSON.stringify(pins) },
        },
      );
      expect(JSON.parse(probe.stdout)).toEqual({
        // Every package spark/requirements-embedded.txt pins imports, at its pinned version.
        versions: pins,
        // psycopg's bundled libpq: the image has no system libpq.
        libpq: 'binary',
        // Built into the wheel: nothing is downloaded at run time.
        extensions: ['json', 'parquet'],
        // Production dependencies only: no pyspark, no test tooling.
        tooling: [],
        engine: join(env.AFLUENTE_SPARK_SCRIPTS ?? '', 'afluente_embedded'),
        python: await realpathOf(PYTHON),
      });

      const help = await run(python, ['-m', 'afluente_embedded', '--help'], options);
      expect(help.stdout).toMatch(/split_tables/);
      expect(help.stdout).toMatch(/load_warehouse/);
    },
  );
});

async function realpathOf(command: string): Promise<string> {
  const { stdout } = await run(command, ['-c', 'import os, sys; print(os.path.realpath(sys.executable))']);
  return stdout.trim();
}
