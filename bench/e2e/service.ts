import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createConnection, type Connection } from 'mysql2/promise';
import { parse, stringify } from 'yaml';

// The service under measure: `node service/main.ts` as a child process with the benchmark's own state database,
// queue prefix, lake and temp folder, started for one run and stopped after it, with everything it left.

export const MYSQL_SERVER = 'mysql://root@127.0.0.1:3306';
/** The service's state database. Dropped before each run: the demo source's incremental cursor lives there. */
export const MYSQL_DATABASE = 'afluente_bench';
export const REDIS_URL = 'redis://127.0.0.1:6379';

/**
 * Writes config/sources.yaml's `demo` source alone, pointed at `url`, into `dir` with its JSON Schema beside it,
 * and returns the file's path.
 */
export async function writeSourcesFile(dir: string, url: string): Promise<string> {
  const doc = parse(await readFile('config/sources.yaml', 'utf8')) as {
    sources: Record<string, { request: { url: string }; schema: string }>;
  };
  const demo = doc.sources.demo;
  if (!demo) throw new Error('config/sources.yaml has no demo source');
  demo.request.url = url;
  await mkdir(dir, { recursive: true });
  const file = join(dir, 'sources.yaml');
  await writeFile(file, stringify({ sources: { demo } }));
  await mkdir(join(dir, 'schemas'), { recursive: true });
  await copyFile(join('config', demo.schema), join(dir, demo.schema));
  return file;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

let lock: Connection | undefined;

/**
 * Takes a MySQL named lock for the whole benchmark, so that a second one started meanwhile stops at once instead
 * of dropping the state database under the first (they share it, and their figures would be each other's load).
 * MySQL releases it when the connection ends, the process's death included.
 */
export async function lockBenchmark(): Promise<void> {
  const conn = await createConnection(MYSQL_SERVER);
  const [rows] = await conn.query(`select get_lock('${MYSQL_DATABASE}', 0) as got`);
  if ((rows as { got: number | null }[])[0]?.got !== 1) {
    await conn.end();
    throw new Error('another benchmark (e2e or api) is running: it holds the MySQL lock afluente_bench');
  }
  lock = conn;
}

export async function unlockBenchmark(): Promise<void> {
  await lock?.end();
  lock = undefined;
}

/** Drops the service's state database; the service creates and migrates it again at start. */
export async function dropStateDatabase(): Promise<void> {
  const conn = await createConnection(MYSQL_SERVER);
  try {
    await conn.query(`drop database if exists \`${MYSQL_DATABASE}\``);
  } finally {
    await conn.end();
  }
}

/** Deletes the queue's keys in Redis. */
export async function dropQueueKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 1000 }) as AsyncIterable<
      string[]
    >) {
      if (keys.length > 0) await redis.del(...keys);
    }
  } finally {
    redis.disconnect();
  }
}

/**
 * Where a local step of each engine keeps its log and pid file (service/steps/: `<AFLUENTE_SPARK_TEMP_DIR>/
 * afluente-steps/<queue prefix>/` for Spark, `…/afluente-embedded/<queue prefix>/` for the embedded engine).
 */
export function stepDirs(tempDir: string, queuePrefix: string): { spark: string; embedded: string } {
  return {
    spark: join(tempDir, 'afluente-steps', queuePrefix),
    embedded: join(tempDir, 'afluente-embedded', queuePrefix),
  };
}

export interface Service {
  base: string;
  /** The service's process id. */
  pid: number | undefined;
  /** The end of the service's log, to show with a failure. */
  logTail(): Promise<string>;
  /** Whether the process has exited. */
  exited(): boolean;
}

let running: { service: ChildProcess; stepDirs: string[] } | undefined;

/** Signals a process group: the service and whatever it started (handler processes, steps). */
function signalGroup(pgid: number | undefined, signal: NodeJS.Signals): void {
  try {
    if (pgid && Number.isInteger(pgid) && pgid > 1) process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group is gone already.
  }
}

/**
 * Starts the service with `env` (and no inherited AFLUENTE_* variable) after dropping its state database, and
 * waits until /health/ready answers 200. Only one runs at a time; {@link stopService} stops it.
 */
export async function startService(
  env: Record<string, string>,
  options: { port: number; logFile: string; tempDir: string; queuePrefix: string },
): Promise<Service> {
  if (running) throw new Error('a service is running already');
  // Inherited AFLUENTE_* variables would change what is measured; only the benchmark's own apply.
  const inherited = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('AFLUENTE_')),
  );
  await dropStateDatabase();
  const fd = openSync(options.logFile, 'w');
  // A process group of its own: a Ctrl-C reaches the benchmark alone, which stops the service and its children.
  const service = spawn(process.execPath, ['service/main.ts'], {
    env: { ...inherited, ...env },
    stdio: ['ignore', fd, fd],
    detached: true,
  });
  closeSync(fd);
  running = { service, stepDirs: Object.values(stepDirs(options.tempDir, options.queuePrefix)) };
  const base = `http://127.0.0.1:${options.port}`;
  const exited = (): boolean => service.exitCode !== null || service.signalCode !== null;
  const logTail = async (): Promise<string> =>
    (await readFile(options.logFile, 'utf8').catch(() => '')).trim().split('\n').slice(-20).join('\n');
  for (let i = 0; ; i++) {
    if (exited())
      throw new Error(`the service exited during start-up (${service.exitCode}):\n${await logTail()}`);
    const ready = await fetch(`${base}/health/ready`).catch(() => undefined);
    if (ready?.status === 200) break;
    if (i > 240) throw new Error(`the service was not ready within 60 s:\n${await logTail()}`);
    await sleep(250);
  }
  return { base, pid: service.pid, logTail, exited };
}

/**
 * Stops the service if it is running (SIGTERM, then SIGKILL after 40 s: its shutdown grace is 25 s), then kills
 * what is left of its process group, so that no step it started goes on writing into a lake being removed.
 */
export async function stopService(): Promise<void> {
  if (!running) return;
  const { service, stepDirs: dirs } = running;
  if (service.exitCode === null && service.signalCode === null) {
    const exited = once(service, 'exit');
    signalGroup(service.pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(service.pid, 'SIGKILL'), 40_000);
    await exited;
    clearTimeout(timer);
  }
  signalGroup(service.pid, 'SIGKILL');
  // Each local step (Spark or embedded) leads a process group of its own and has a pid file; the service kills
  // its steps when it shuts down, and this makes sure of it.
  for (const dir of dirs) {
    for (const file of await readdir(dir).catch(() => [])) {
      if (!file.endsWith('.pid')) continue;
      signalGroup(Number(await readFile(join(dir, file), 'utf8').catch(() => '')), 'SIGKILL');
    }
  }
  running = undefined;
}
