import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';
import { freePort } from './net.ts';
import { waitFor } from './wait.ts';

/**
 * Private Redis and MariaDB servers that a test owns: it starts them, stops them (the process really exits, so
 * every client sees a real outage: refused connections, reset sockets) and starts them again on the same port
 * and the same data directory. The shared servers on 3306 and 6379 are never touched, so a test may take its
 * dependency down while other files run.
 *
 * ```ts
 * const redis = await PrivateRedis.start();
 * const mariadb = await PrivateMariaDb.start();
 * const env = { AFLUENTE_REDIS_URL: redis.url, AFLUENTE_MYSQL_URL: mariadb.url('afluente') };
 * await redis.stop();   // an outage
 * await redis.start();  // the end of it
 * await Promise.all([redis.dispose(), mariadb.dispose()]);
 * ```
 *
 * Every wait polls the server (a PING, a `SELECT 1`) and never sleeps for a guess. A server that dies while
 * starting fails the start with the tail of its log. A server dies with the test process however that ends
 * (`setpriv --pdeathsig`, util-linux), so a test killed on a timeout leaves none behind; only its directory
 * under the temp dir stays.
 */
export interface PrivateService {
  /** `redis` or `mariadb`: what errors and logs call it. */
  readonly name: string;
  /** Its loopback port; the same for every start. */
  readonly port: number;
  /** Its directory: data, log, pid file and socket. Removed by `dispose()`. */
  readonly dir: string;
  readonly running: boolean;
  /** Starts it (again) on the same port and data, and resolves once it answers. */
  start(): Promise<void>;
  /** Signals it (SIGTERM: a clean shutdown; SIGKILL: a crash) and resolves once the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** `stop()` then `start()`. */
  restart(signal?: NodeJS.Signals): Promise<void>;
  /** Stops it if it runs and removes its directory. */
  dispose(): Promise<void>;
  /** The end of its log, for an assertion message. */
  logTail(lines?: number): Promise<string>;
}

/** How long a start may take on a loaded machine (a MariaDB restart after a SIGKILL runs crash recovery). */
const START_TIMEOUT_MS = 60_000;
/** How long a stop may take before the server is killed and the stop fails. */
const STOP_TIMEOUT_MS = 60_000;

/** A server process on a fixed port and directory that can be started and stopped any number of times. */
abstract class ServerProcess implements PrivateService {
  abstract readonly name: string;
  readonly port: number;
  readonly dir: string;
  private child?: ChildProcess;

  protected constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  protected get logFile(): string {
    return join(this.dir, `${this.name}.log`);
  }

  /** The program and its arguments. */
  protected abstract command(): [string, string[]];

  /** Resolves when the server answers a real request; rejects while it does not. */
  protected abstract ping(): Promise<void>;

  async start(): Promise<void> {
    if (this.child) return;
    const [program, args] = this.command();
    // The log is appended across restarts, so a failure after a restart still shows the earlier runs.
    const log = openSync(this.logFile, 'a');
    // setpriv execs the server in its own process, so the pid (and every signal) is the server's. A process.on
    // ('exit') hook would not do: a worker that vitest kills on a timeout never runs it.
    const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', program, ...args], {
      stdio: ['ignore', log, log],
    });
    closeSync(log);
    this.child = child;
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    try {
      await waitFor(
        async () => {
          if (child.exitCode !== null || child.signalCode !== null)
            throw new Error(`${this.name} exited while starting (${child.exitCode ?? child.signalCode})`);
          return this.ping().then(
            () => true,
            () => undefined,
          );
        },
        `${this.name} to answer on 127.0.0.1:${this.port}`,
        START_TIMEOUT_MS,
      );
    } catch (error) {
      if (this.child === child) await this.stop('SIGKILL');
      throw new Error(`${(error as Error).message}\n${this.logFile}:\n${await this.logTail()}`, {
        cause: error,
      });
    }
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
      if (child.signalCode === 'SIGKILL' && signal !== 'SIGKILL')
        throw new Error(`${this.name} did not exit within ${STOP_TIMEOUT_MS} ms of ${signal}; it was killed`);
    }
    if (this.child === child) this.child = undefined;
  }

  async restart(signal?: NodeJS.Signals): Promise<void> {
    await this.stop(signal);
    await this.start();
  }

  async dispose(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }

  async logTail(lines = 20): Promise<string> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '(no log)');
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }
}

export interface PrivateRedisOptions {
  /**
   * Keep the data across a stop (an append-only file, fsync on every write), as a network outage or a restart
   * of a persistent node would. Without it the server runs as `--save "" --appendonly no` and every start is
   * empty, as a failover to a fresh node is.
   * @default false
   */
  keepData?: boolean;
}

/** A redis-server of the test's own, on a free loopback port. */
export class PrivateRedis extends ServerProcess {
  readonly name = 'redis';
  private readonly keepData: boolean;

  private constructor(port: number, dir: string, options: PrivateRedisOptions) {
    super(port, dir);
    this.keepData = options.keepData ?? false;
  }

  /** Makes a directory, picks a port and starts the server. */
  static async start(options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
    const dir = await mkdtemp(join(tmpdir(), 'afluente-redis-'));
    const redis = new PrivateRedis(await freePort(), dir, options);
    await redis.start();
    return redis;
  }

  /** `redis://127.0.0.1:<port>`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  protected command(): [string, string[]] {
    const persistence = this.keepData
      ? ['--save', '', '--appendonly', 'yes', '--appendfsync', 'always']
      : ['--save', '', '--appendonly', 'no'];
    return [
      'redis-server',
      [
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--daemonize',
        'no',
        // BullMQ refuses to run on an eviction policy that may drop its keys.
        '--maxmemory-policy',
        'noeviction',
        ...persistence,
      ],
    ];
  }

  protected async ping(): Promise<void> {
    const client = new Redis(this.port, '127.0.0.1', {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectTimeout: 1000,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
    } finally {
      client.disconnect();
    }
  }
}

/**
 * A MariaDB server of the test's own: `mariadb-install-db` makes its data directory once, then `mariadbd` serves
 * it on a free loopback port and a socket in its directory. `root` logs in over TCP with no password, as on the
 * shared server, so `url(database)` works wherever AFLUENTE_MYSQL_URL does.
 */
export class PrivateMariaDb extends ServerProcess {
  readonly name = 'mariadb';

  /** Makes a directory and a data directory, picks a port and starts the server. */
  static async start(): Promise<PrivateMariaDb> {
    const dir = await mkdtemp(join(tmpdir(), 'afluente-mariadb-'));
    const mariadb = new PrivateMariaDb(await freePort(), dir);
    await mariadb.install();
    await mariadb.start();
    return mariadb;
  }

  /** `mysql://root@127.0.0.1:<port>/<database>`; the service creates the database at start-up. */
  url(database: string): string {
    return `mysql://root@127.0.0.1:${this.port}/${database}`;
  }

  private get dataDir(): string {
    return join(this.dir, 'data');
  }

  private async install(): Promise<void> {
    const log = openSync(this.logFile, 'a');
    // `--no-defaults` first: nothing from /etc/mysql may reach a private server.
    const child = spawn(
      'mariadb-install-db',
      [
        '--no-defaults',
        `--datadir=${this.dataDir}`,
        '--user=root',
        '--auth-root-authentication-method=normal',
        '--skip-test-db',
      ],
      { stdio: ['ignore', log, log] },
    );
    closeSync(log);
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0)
      throw new Error(`mariadb-install-db exited with ${code}\n${this.logFile}:\n${await this.logTail()}`);
  }

  protected command(): [string, string[]] {
    return [
      '/usr/sbin/mariadbd',
      [
        '--no-defaults',
        `--datadir=${this.dataDir}`,
        `--port=${this.port}`,
        '--bind-address=127.0.0.1',
        `--socket=${join(this.dir, 'mariadbd.sock')}`,
        `--pid-file=${join(this.dir, 'mariadbd.pid')}`,
        `--log-error=${this.logFile}`,
        '--user=root',
        '--skip-log-bin',
        // Small: a test's data fits, and the machine is shared.
        '--innodb-buffer-pool-size=32M',
        '--performance-schema=OFF',
      ],
    ];
  }

  protected async ping(): Promise<void> {
    const conn = await createConnection({
      host: '127.0.0.1',
      port: this.port,
      user: 'root',
      connectTimeout: 1000,
    });
    try {
      await conn.query('SELECT 1');
    } finally {
      await conn.end().catch(() => conn.destroy());
    }
  }
}
