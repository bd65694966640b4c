import { Queue } from 'bullmq';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { demoRows, writeDemoSourcesFile } from '../support/demo-source-file.ts';
import { dropTestState, testConfig } from '../support/env.ts';
import { ServiceProcess } from '../support/service-process.ts';
import { warehouseState } from '../support/warehouse.ts';

// SIGTERM in the middle of a stage, as every deploy sends it: the real service process, signalled through its
// process group (as a terminal or a container runtime does), must drain its stages within
// AFLUENTE_SHUTDOWN_GRACE_MS or hand them back to the queue at once, and never let the signal reach the Lambda
// child doing the work.

const RECORDS = 3_000; // three pages of 1,000
// Each test has its own state (MySQL database, queue prefix, warehouse schema): the demo source is incremental,
// so a second run in the same state would fetch only what is new.
let config = testConfig();
const configs = [config];
let api: DemoApi;
let dir: string;
const services: ServiceProcess[] = [];

beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS });
  dir = await mkdtemp(join(tmpdir(), 'afluente-drain-'));
  await writeDemoSourcesFile(dir, api.url, 'embedded');
});
afterEach(async () => {
  for (const service of services.splice(0)) await service.kill();
  config = testConfig();
  configs.push(config);
});
afterAll(async () => {
  await promisify(execFile)('pkill', ['-f', '--', dir]).catch(() => undefined);
  await api.close();
  for (const c of configs) await dropTestState(c);
  await rm(dir, { recursive: true, force: true });
});

function env(overrides: Record<string, string>): Record<string, string> {
  return {
    AFLUENTE_MYSQL_URL: config.mysql.url,
    AFLUENTE_QUEUE_PREFIX: config.queue.prefix,
    AFLUENTE_WAREHOUSE_SCHEMA: config.warehouse.schema,
    AFLUENTE_SOURCES_FILE: join(dir, 'sources.yaml'),
    AFLUENTE_LAKE_URI: `file://${join(dir, `lake-${config.queue.prefix}`)}`,
    AFLUENTE_LOG_LEVEL: 'info',
    ...overrides,
  };
}

async function start(overrides: Record<string, string>): Promise<ServiceProcess> {
  const service = await ServiceProcess.start(env(overrides));
  services.push(service);
  return service;
}

/** Starts a run and returns once its ingest is in flight: page 2 has been asked for and is being held. */
async function runWithIngestInFlight(service: ServiceProcess): Promise<number> {
  api.resetStats();
  const id = await service.createRun({ source: 'demo' });
  await service.waitForRun(
    id,
    () => ((api.stats().byPath['/orders'] ?? 0) >= 2 ? true : undefined),
    'the second page to be requested',
    60_000,
  );
  return id;
}

async function expectExactWarehouse(id: number): Promise<void> {
  const want = demoRows(RECORDS);
  const state = await warehouseState(config, Object.keys(want), id);
  expect(state.rows).toEqual(want);
  expect(state.ledger).toEqual(Object.fromEntries(Object.keys(want).map((t) => [t, 1])));
}

describe('SIGTERM mid-stage', () => {
  it(
    'drains: the in-flight ingest finishes in the same process within the grace, and the process exits 0',
    { timeout: 240_000 },
    async () => {
      // Pages 2 and 3 take 6 s each, so the drain outlasts Fastify's 10 s plugin timeout, which used to cut it off.
      api.setFaults({ slow: { pages: [2, 3], delayMs: 6_000 } });
      const first = await start({ AFLUENTE_SHUTDOWN_GRACE_MS: '60000' });
      const id = await runWithIngestInFlight(first);

      first.signalGroup('SIGTERM');
      const [code] = await first.exited;
      expect(code, first.output()).toBe(0);
      expect(first.output()).not.toContain('AVV_ERR');
      const logs = first.logs();
      expect(logs.find((l) => l.msg === 'shutting down')).toMatchObject({ signal: 'SIGTERM' });
      // The ingest ended in this process, on its first attempt: the Lambda child did not get the signal.
      expect(
        logs.some((l) => l.msg === 'stage completed' && l.stage === 'ingest' && l.attempt === 1),
        first.output(),
      ).toBe(true);

      api.setFaults({});
      const second = await start({ AFLUENTE_SHUTDOWN_GRACE_MS: '2000' });
      const run = await second.waitForEnd(id, 120_000);
      expect(run.status).toBe('COMPLETED');
      expect(run.jobs.find((j) => j.stage === 'ingest')).toMatchObject({ status: 'COMPLETED', attempt: 1 });
      expect(run.counts.fetched).toBe(RECORDS);
      await expectExactWarehouse(id);
    },
  );

  it(
    'hands a stage still running at the end of the grace back to its queue at once, with no lock to wait out',
    { timeout: 240_000 },
    async () => {
      // A 10-minute lock: had the job not been handed back, the next process could not take it within this test.
      const slow = { slow: { pages: [2, 3], delayMs: 6_000 } };
      api.setFaults(slow);
      const first = await start({ AFLUENTE_SHUTDOWN_GRACE_MS: '500', AFLUENTE_LOCK_DURATION_MS: '600000' });
      const id = await runWithIngestInFlight(first);
      const before = await first.getRun(id);

      first.signalGroup('SIGTERM');
      const [code] = await first.exited;
      expect(code, first.output()).toBe(0);
      expect(
        first.logs().some((l) => l.msg === 'released the job to its queue on shutdown'),
        first.output(),
      ).toBe(true);

      // The job waits in its queue, unlocked, for any worker.
      const queue = new Queue('ingest', {
        connection: { url: config.redis.url },
        prefix: config.queue.prefix,
      });
      try {
        expect(await queue.getJobCounts('active', 'wait')).toEqual({ active: 0, wait: 1 });
      } finally {
        await queue.close();
      }

      api.setFaults({});
      const second = await start({ AFLUENTE_SHUTDOWN_GRACE_MS: '2000', AFLUENTE_LOCK_DURATION_MS: '600000' });
      const run = await second.waitForEnd(id, 120_000);
      expect(run.status).toBe('COMPLETED');
      // A handed-back job keeps its attempt: the shutdown was not the stage's failure.
      const ingest = run.jobs.find((j) => j.stage === 'ingest');
      expect(ingest).toMatchObject({ status: 'COMPLETED', attempt: before.jobs[0]?.attempt });
      expect(run.counts.fetched).toBe(RECORDS);
      expect(run.files.filter((f) => f.records > 0).length).toBeGreaterThan(0);
      await expectExactWarehouse(id);
    },
  );
});
