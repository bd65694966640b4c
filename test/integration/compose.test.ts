import { execFile, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../service/config/env.ts';
import { loadSources } from '../../service/config/sources.ts';
import { freePort } from '../support/net.ts';
import { waitFor } from '../support/wait.ts';

// There is no Docker engine here, so docker-compose.yml is checked three ways: against the Compose
// Specification's JSON Schema (check-jsonschema's vendored copy, offline), for the properties the stack
// promises (parsed), and by running what it can without containers: the service's settings through the
// service's own config loader, the compose sources file through the sources loader, and the demo source's
// exact command line and health check.

const run = promisify(execFile);
const CHECK = '.venv/bin/check-jsonschema';
const ONE_SHOT = new Set(['minio-init', 'demo']);

interface Healthcheck {
  test?: string[] | string;
  disable?: boolean;
}
interface Service {
  image?: string;
  build?: string | { context?: string; target?: string };
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string | number | boolean | null>;
  healthcheck?: Healthcheck;
  depends_on?: Record<string, { condition?: string }> | string[];
  volumes?: (string | { type?: string; source?: string; target?: string })[];
  ports?: string[];
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** `${VAR:-default}` and `${VAR}` as compose reads them with none of the variables set; `$$` is a `$`. */
function interpolate(value: string): string {
  return value.replace(
    /\$\$|\$\{(\w+)(?::?-([^}]*))?\}/g,
    (whole: string, _name?: string, fallback?: string) => (whole === '$$' ? '$' : (fallback ?? '')),
  );
}

function environment(service: Service): Record<string, string> {
  return Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([k, v]) => [k, interpolate(String(v ?? ''))]),
  );
}

const list = (value: string[] | string | undefined): string[] =>
  value === undefined ? [] : Array.isArray(value) ? value : value.split(' ');

/** Whether `unshare -rn` can run a command with no network at all (root or user namespaces). */
const offline = spawnSync('unshare', ['-rn', 'true']).status === 0;

/** check-jsonschema with the vendored Compose Specification schema, with no network when this machine allows. */
async function checkCompose(file: string): Promise<{ code: number; output: string }> {
  const args = ['--builtin-schema', 'vendor.compose-spec', '-o', 'json', file];
  const [cmd, argv] = offline ? ['unshare', ['-rn', CHECK, ...args]] : [CHECK, args];
  try {
    const { stdout, stderr } = await run(cmd, argv, { timeout: 60_000 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw error;
    return { code: e.code, output: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

let text: string;
let compose: Compose;
let dir: string;
beforeAll(async () => {
  await access(CHECK).catch(() => {
    throw new Error(`${CHECK} is missing: run \`bash scripts/setup-python.sh\` (requirements.txt)`);
  });
  text = await readFile('docker-compose.yml', 'utf8');
  compose = parse(text) as Compose;
  dir = await mkdtemp(join(tmpdir(), 'afluente-compose-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('docker-compose.yml against the Compose Specification', () => {
  it('is valid', async () => {
    const { code, output } = await checkCompose('docker-compose.yml');
    expect(output).toContain('"status": "ok"');
    expect(code).toBe(0);
  });

  it('fails a depends_on condition compose does not know, naming it', async () => {
    const broken = text.replace('condition: service_completed_successfully', 'condition: service_ready');
    expect(broken).not.toBe(text);
    const file = join(dir, 'bad-condition.yml');
    await writeFile(file, broken);
    const { code, output } = await checkCompose(file);
    expect(code).not.toBe(0);
    expect(output).toContain(".depends_on['minio-init'].condition");
    expect(output).toContain("'service_ready' is not one of");
  });

  it('fails an unknown top-level key, naming it', async () => {
    const file = join(dir, 'bad-key.yml');
    await writeFile(file, `${text}\nservice:\n  extra: {}\n`);
    const { code, output } = await checkCompose(file);
    expect(code).not.toBe(0);
    expect(output).toContain("'service' does not match any of the regexes");
  });
});

describe('the compose stack', () => {
  it('has every service, on pinned images', () => {
    const s = compose.services;
    expect(Object.keys(s).sort()).toEqual(
      ['afluente', 'demo', 'demo-source', 'minio', 'minio-init', 'mysql', 'postgres', 'redis'].sort(),
    );
    expect(s.mysql?.image).toBe('mysql:8.4');
    expect(s.postgres?.image).toMatch(/^postgres:\d+$/);
    expect(s.minio?.image).toMatch(/^minio\/minio:RELEASE\.[\dT-]+Z$/);
    expect(s['minio-init']?.image).toMatch(/^minio\/mc:RELEASE\.[\dT-]+Z$/);
    const redis = list(s.redis?.command).join(' ');
    expect(redis).toMatch(/--maxmemory-policy noeviction\b/);
    expect(redis).toMatch(/--appendonly yes\b/);
    for (const [name, service] of Object.entries(s)) {
      if (service.build) continue;
      expect(service.image, name).toMatch(/^[\w./-]+:[\w.-]+$/);
      expect(service.image, name).not.toMatch(/:latest$/);
    }
  });

  it('builds the local target once for afluente, demo-source and demo', () => {
    for (const name of ['afluente', 'demo-source', 'demo']) {
      const service = compose.services[name] as Service;
      expect(service.build, name).toEqual({ context: '.', target: 'local' });
      expect(service.image, name).toBe(compose.services.afluente?.image);
    }
  });

  it('health-checks every long-running service, and orders start-up by conditions', () => {
    const s = compose.services;
    for (const [name, service] of Object.entries(s)) {
      if (ONE_SHOT.has(name)) continue;
      expect(service.healthcheck?.disable, name).not.toBe(true);
      expect(list(service.healthcheck?.test)[0], name).toMatch(/^CMD(-SHELL)?$/);
    }
    const allowed: Record<string, string> = {};
    for (const name of Object.keys(s))
      allowed[name] = ONE_SHOT.has(name) ? 'service_completed_successfully' : 'service_healthy';
    let edges = 0;
    for (const [name, service] of Object.entries(s)) {
      if (service.depends_on === undefined) continue;
      expect(Array.isArray(service.depends_on), `${name}: depends_on needs conditions`).toBe(false);
      for (const [on, spec] of Object.entries(service.depends_on)) {
        expect(Object.keys(s), `${name} depends on ${on}`).toContain(on);
        expect(spec.condition, `${name} depends on ${on}`).toBe(allowed[on]);
        edges++;
      }
    }
    expect(edges).toBeGreaterThanOrEqual(7);
    const on = (name: string): string[] => Object.keys(s[name]?.depends_on ?? {}).sort();
    expect(on('afluente')).toEqual(['minio-init', 'mysql', 'postgres', 'redis']);
    expect(on('demo')).toEqual(['afluente', 'demo-source']);
    expect(on('minio-init')).toEqual(['minio']);
  });

  it('keeps data in named volumes, each declared and used', () => {
    const declared = Object.keys(compose.volumes ?? {});
    const used = new Map<string, string>();
    for (const [name, service] of Object.entries(compose.services))
      for (const volume of service.volumes ?? []) {
        const [source = '', target = ''] =
          typeof volume === 'string' ? volume.split(':') : [volume.source ?? '', volume.target ?? ''];
        expect(source, `${name}: ${source} is a bind mount, not a named volume`).toMatch(/^[a-z][\w-]*$/);
        expect(declared, `${name}: volume ${source}`).toContain(source);
        used.set(`${name}:${target}`, source);
      }
    expect(new Set(used.values())).toEqual(new Set(declared));
    expect([...used.keys()]).toEqual(
      expect.arrayContaining([
        'mysql:/var/lib/mysql',
        'redis:/data',
        'postgres:/var/lib/postgresql/data',
        'minio:/data',
      ]),
    );
  });

  it('configures afluente for the stack, and the service accepts the settings', async () => {
    const afluente = compose.services.afluente as Service;
    const env = environment(afluente);
    expect(env).toMatchObject({
      AFLUENTE_HOST: '0.0.0.0',
      AFLUENTE_S3_ENDPOINT: 'http://minio:9000',
      AFLUENTE_SOURCES_FILE: 'config/compose/sources.yaml',
    });
    expect(env.AFLUENTE_MYSQL_URL).toMatch(/^mysql:\/\/root@mysql:3306\//);
    expect(env.AFLUENTE_REDIS_URL).toBe('redis://redis:6379');
    expect(env.AFLUENTE_WAREHOUSE_URL).toMatch(/^postgres:\/\/postgres@postgres:5432\//);
    expect(env.AWS_REGION).toBeTruthy();
    // The S3 credentials are MinIO's own.
    const minio = environment(compose.services.minio as Service);
    expect(env.AWS_ACCESS_KEY_ID).toBe(minio.MINIO_ROOT_USER);
    expect(env.AWS_SECRET_ACCESS_KEY).toBe(minio.MINIO_ROOT_PASSWORD);
    // The lake is the bucket minio-init creates.
    const bucket = /^s3:\/\/([a-z0-9.-]+)\/?/.exec(env.AFLUENTE_LAKE_URI ?? '')?.[1];
    expect(bucket).toBeTruthy();
    expect(list(compose.services['minio-init']?.command).join(' ')).toContain(
      `mc mb --ignore-existing lake/${bucket}`,
    );
    // The token default comes through `${VAR:-default}`, so a developer can set their own.
    expect(afluente.environment?.AFLUENTE_API_TOKENS).toMatch(/^\$\{AFLUENTE_API_TOKENS:-.+\}$/);

    // What the service would see in the container: the local stage's ENV, then compose's environment.
    const stageEnv: Record<string, string> = {};
    const dockerfile = (await readFile('Dockerfile', 'utf8')).replace(/\\\n/g, ' ');
    const local = dockerfile.slice(dockerfile.indexOf(' AS local'), dockerfile.indexOf(' AS runtime'));
    for (const line of (dockerfile.slice(0, dockerfile.indexOf(' AS local')) + local).split('\n'))
      if (line.startsWith('ENV '))
        for (const [, k = '', v = ''] of line.matchAll(/(\w+)=(\S*)/g)) stageEnv[k] = v;
    expect(stageEnv.AFLUENTE_SPARK_VENV).toBe('/app/.venv');
    const config = loadConfig({ ...stageEnv, ...env });
    expect(config.http.host).toBe('0.0.0.0');
    expect(config.lake).toEqual({ uri: env.AFLUENTE_LAKE_URI, s3Endpoint: 'http://minio:9000' });
    expect(config.steps.runner).toBe('local');
    expect(config.steps.spark.jars).toBe('/usr/share/java/postgresql.jar');
    // The demo's runs take the embedded engine (engine auto, far under the size limit), from the image's venv
    // and code, spilling to the steps volume.
    expect(config.steps.embedded).toMatchObject({ venv: '/app/.venv', maxBytes: 2 * 1024 ** 3 });
    expect(config.steps.spark.scripts).toBe('/app/spark');
    expect(config.steps.spark.tempDir).toBe('/var/lib/afluente/spark');
    expect(afluente.volumes).toContain(`afluente-steps:${config.steps.spark.tempDir}`);
    expect(config.auth.tokens.length).toBeGreaterThan(0);
    // The healthcheck asks the port the service listens on.
    expect(list(afluente.healthcheck?.test).join(' ')).toContain(
      `127.0.0.1:${config.http.port}/health/ready`,
    );
    // The demo trigger talks to it by its service name, with the same tokens.
    const demo = compose.services.demo as Service;
    expect(list(demo.entrypoint)).toEqual(['node', 'scripts/compose-demo.ts']);
    await access('scripts/compose-demo.ts');
    const demoArgs = list(demo.command);
    expect(demoArgs[demoArgs.indexOf('--url') + 1]).toBe(`http://afluente:${config.http.port}`);
    expect(demoArgs[demoArgs.indexOf('--source') + 1]).toBe('demo');
    expect(environment(demo).AFLUENTE_API_TOKENS).toBe(env.AFLUENTE_API_TOKENS);
  });

  it('holds no secret but the clearly local-only defaults', () => {
    for (const [name, service] of Object.entries(compose.services))
      for (const [key, raw] of Object.entries(service.environment ?? {})) {
        const value = String(raw ?? '');
        const where = `${name}.environment.${key}`;
        expect(value, where).not.toMatch(/AKIA[0-9A-Z]{16}|-----BEGIN/);
        // No password in a URL: the warehouse URL even refuses one.
        expect(value, where).not.toMatch(/^\w+:\/\/[^/@\s]*:[^/@\s]+@/);
        // MYSQL_ALLOW_EMPTY_PASSWORD is a switch (no password at all), not a secret.
        if (/PASSWORD|SECRET|TOKEN|ACCESS_KEY/i.test(key) && !/_ALLOW_EMPTY_PASSWORD$/.test(key))
          expect(interpolate(value), `${where} must be a local-only default`).toMatch(/local-only/);
      }
    // Nothing but the API is published to the host, and that on loopback only.
    for (const [name, service] of Object.entries(compose.services))
      for (const port of service.ports ?? []) {
        expect(name).toBe('afluente');
        expect(port).toMatch(/^127\.0\.0\.1:/);
      }
  });
});

describe('config/compose/sources.yaml', () => {
  it('is the demo source of config/sources.yaml, reading the demo-source service', async () => {
    const composed = await loadSources('config/compose/sources.yaml');
    const local = await loadSources('config/sources.yaml');
    const demo = composed.sources.get('demo');
    const original = local.sources.get('demo');
    expect([...composed.sources.keys()]).toEqual(['demo']);
    if (!demo || !original) throw new Error('no demo source');
    const url = new URL(demo.request.url);
    const source = compose.services['demo-source'] as Service;
    const args = list(source.command);
    expect(url.hostname).toBe('demo-source');
    expect(url.port).toBe(args[args.indexOf('--port') + 1]);
    // A compose network is a private range: the network guard lets the ingest through only with this.
    expect(demo.allowPrivateNetwork).toBe(true);
    expect(demo.engine).toBe('auto');
    // The same schema file, named relative to each sources file's folder.
    expect(demo.schemaPath).toBe(original.schemaPath);
    const same = (s: typeof demo): unknown => ({
      ...s,
      request: { ...s.request, url: undefined },
      schema: undefined,
    });
    expect(same(demo)).toEqual(same(original));
  });
});

describe('the demo-source service', () => {
  const interfaceAddress = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

  /** The service's command line, on a free port; without `--host` when asked, to see the default. */
  async function start(withHost: boolean) {
    const source = compose.services['demo-source'] as Service;
    const argv = [...list(source.entrypoint), ...list(source.command)];
    const port = await freePort();
    argv[argv.indexOf('--port') + 1] = String(port);
    if (!withHost) argv.splice(argv.indexOf('--host'), 2);
    expect(argv[0]).toBe('node');
    const child = spawn(process.execPath, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(child, 'exit');
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor(async () => (output.includes('demo source API on') ? true : undefined), 'the demo API');
    return {
      port,
      output: () => output,
      stop: async () => {
        child.kill('SIGTERM');
        await exited;
      },
    };
  }

  it('serves other hosts with the compose command line, and passes its health check', async () => {
    const api = await start(true);
    try {
      expect(api.output()).toContain(`listening on 0.0.0.0`);
      const host = interfaceAddress ?? '127.0.0.1';
      const res = await fetch(`http://${host}:${api.port}/orders?per_page=2`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { data: unknown[] }).data).toHaveLength(2);
      const test = list(compose.services['demo-source']?.healthcheck?.test);
      expect(test.slice(0, 3)).toEqual(['CMD', 'node', '-e']);
      const script = (test[3] ?? '').replace(':8787/', `:${api.port}/`);
      await expect(run(process.execPath, ['-e', script])).resolves.toBeDefined();
    } finally {
      await api.stop();
    }
  });

  it.runIf(interfaceAddress)('listens on loopback only without --host', async () => {
    const api = await start(false);
    try {
      expect((await fetch(`http://127.0.0.1:${api.port}/health`)).status).toBe(200);
      await expect(fetch(`http://${interfaceAddress}:${api.port}/health`)).rejects.toThrow();
    } finally {
      await api.stop();
    }
  });
});
