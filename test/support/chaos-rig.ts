import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { expect } from 'vitest';
import type { FaultSpec } from '../../demo/source-api/faults.ts';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import type { Config } from '../../service/config/env.ts';
import { demoRows, writeDemoSourcesFile } from './demo-source-file.ts';
import { testConfig } from './env.ts';
import { PrivateMariaDb, PrivateRedis } from './private-services.ts';
import { ServiceProcess, type RunView } from './service-process.ts';
import { waitFor } from './wait.ts';
import { warehouseState } from './warehouse.ts';

export interface ChaosRigOptions {
  /** Orders the demo API holds. */
  records: number;
  engine: 'embedded' | 'spark';
  faults?: FaultSpec;
  /**
   * Whether the private Redis keeps its data across a stop, as a node that restarts or a network outage does;
   * false makes every start an empty Redis, as a failover to a fresh node is. @default true
   */
  redisKeepsData?: boolean;
}

/**
 * What a chaos test breaks: the real service process (`service/main.ts`) on its own Redis and MariaDB (private
 * servers the test stops and starts), the demo source API, a lake in a temp folder, and a warehouse schema of
 * its own on the shared PostgreSQL. Spark and the embedded engine are the real ones.
 */
export class ChaosRig {
  readonly redis: PrivateRedis;
  readonly mariadb: PrivateMariaDb;
  readonly api: DemoApi;
  readonly config: Config;
  readonly records: number;
  private readonly dir: string;
  private readonly services: ServiceProcess[] = [];

  private constructor(
    redis: PrivateRedis,
    mariadb: PrivateMariaDb,
    api: DemoApi,
    dir: string,
    records: number,
  ) {
    this.redis = redis;
    this.mariadb = mariadb;
    this.api = api;
    this.dir = dir;
    this.records = records;
    this.config = testConfig({
      AFLUENTE_MYSQL_URL: mariadb.url('afluente'),
      AFLUENTE_REDIS_URL: redis.url,
    });
  }

  static async open(options: ChaosRigOptions): Promise<ChaosRig> {
    const [redis, mariadb, api, dir] = await Promise.all([
      PrivateRedis.start({ keepData: options.redisKeepsData ?? true }),
      PrivateMariaDb.start(),
      startDemoApi({ records: options.records, faults: options.faults ?? {} }),
      mkdtemp(join(tmpdir(), 'afluente-chaos-')),
    ]);
    await writeDemoSourcesFile(dir, api.url, options.engine);
    return new ChaosRig(redis, mariadb, api, dir, options.records);
  }

  /** Starts a service process on the rig; `env` adds to or overrides the rig's settings. */
  async start(env: Record<string, string> = {}): Promise<ServiceProcess> {
    const service = await ServiceProcess.start({
      AFLUENTE_MYSQL_URL: this.config.mysql.url,
      AFLUENTE_REDIS_URL: this.config.redis.url,
      AFLUENTE_QUEUE_PREFIX: this.config.queue.prefix,
      AFLUENTE_WAREHOUSE_SCHEMA: this.config.warehouse.schema,
      AFLUENTE_SOURCES_FILE: join(this.dir, 'sources.yaml'),
      AFLUENTE_LAKE_URI: `file://${join(this.dir, 'lake')}`,
      AFLUENTE_LOG_LEVEL: 'info',
      // A killed service's job is taken over after this long; long enough that a busy machine keeps live locks.
      AFLUENTE_LOCK_DURATION_MS: '10000',
      AFLUENTE_SHUTDOWN_GRACE_MS: '2000',
      ...env,
    });
    this.services.push(service);
    return service;
  }

  /** Polls the run through `service` until the job of `stage` is RUNNING (and, with `step`, has its step id). */
  async stageRunning(
    service: ServiceProcess,
    id: number,
    stage: string,
    options: { step?: boolean; timeoutMs?: number } = {},
  ): Promise<RunView['jobs'][number]> {
    return waitFor(
      async () => {
        const run = await service.getRun(id);
        if (['COMPLETED', 'FAILED', 'CANCELLED'].includes(run.status))
          throw new Error(
            `run ${id} ended ${run.status} before its ${stage} stage ran: ${JSON.stringify(run)}`,
          );
        const job = run.jobs.find((j) => j.stage === stage && j.status === 'RUNNING');
        return job && (!options.step || job.externalId) ? job : undefined;
      },
      `the ${stage} stage of run ${id} to be running${options.step ? ' its step' : ''}`,
      options.timeoutMs ?? 180_000,
    );
  }

  /** The run ended COMPLETED and the warehouse holds every record exactly once, with one ledger row per table. */
  async expectExactLoad(run: RunView): Promise<void> {
    expect(run.status, JSON.stringify(run.error)).toBe('COMPLETED');
    expect(run.counts.fetched).toBe(this.records);
    expect(run.counts.valid).toBe(this.records);
    const want = demoRows(this.records);
    expect(run.counts.rows).toEqual(want);
    const state = await warehouseState(this.config, Object.keys(want), run.id);
    expect(state.rows).toEqual(want);
    expect(state.ledger).toEqual(Object.fromEntries(Object.keys(want).map((t) => [t, 1])));
  }

  async close(): Promise<void> {
    for (const service of this.services) await service.kill();
    // Steps of a killed service live on in their own process groups; the lake path names this rig's.
    await promisify(execFile)('pkill', ['-KILL', '-f', '--', this.dir]).catch(() => undefined);
    await this.api.close();
    await Promise.all([this.redis.dispose(), this.mariadb.dispose()]);
    const warehouse = new pg.Client({ connectionString: this.config.warehouse.url });
    await warehouse.connect();
    await warehouse.query(`DROP SCHEMA IF EXISTS "${this.config.warehouse.schema}" CASCADE`);
    await warehouse.end();
    await rm(this.dir, { recursive: true, force: true });
  }
}
