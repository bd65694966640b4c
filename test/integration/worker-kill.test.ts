import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { writeDemoSourcesFile } from '../support/demo-source-file.ts';
import { dropTestState, testConfig } from '../support/env.ts';
import { ServiceProcess } from '../support/service-process.ts';
import { waitFor } from '../support/wait.ts';

// A service process killed outright in the middle of an ingest: its handler process must not live on, and a new
// service process must take the job over and finish it, with every record exactly once. (The chaos suite,
// test/chaos/kill.test.ts, kills the service in every stage and follows the run to the warehouse.)

const RECORDS = 3_000;
const config = testConfig();
let api: DemoApi;
let dir: string;
const services: ServiceProcess[] = [];

beforeAll(async () => {
  // Page 2 is slow, so the ingest is surely in flight when the service is killed.
  api = await startDemoApi({ records: RECORDS, faults: { slow: { pages: [2], delayMs: 1500 } } });
  dir = await mkdtemp(join(tmpdir(), 'afluente-kill-'));
  await writeDemoSourcesFile(dir, api.url, 'embedded');
});
afterAll(async () => {
  for (const service of services) await service.kill();
  await promisify(execFile)('pkill', ['-f', '--', dir]).catch(() => undefined);
  await api.close();
  await dropTestState(config);
  await rm(dir, { recursive: true, force: true });
});

async function startService(): Promise<ServiceProcess> {
  const service = await ServiceProcess.start({
    AFLUENTE_MYSQL_URL: config.mysql.url,
    AFLUENTE_QUEUE_PREFIX: config.queue.prefix,
    AFLUENTE_WAREHOUSE_SCHEMA: config.warehouse.schema,
    AFLUENTE_SOURCES_FILE: join(dir, 'sources.yaml'),
    AFLUENTE_LAKE_URI: `file://${join(dir, 'lake')}`,
    // Short, so a killed service's job is taken over quickly; not so short that a busy 2-core machine, where a
    // timer can fire a second late, loses a live worker's lock (the job then "stalls" and the run fails).
    AFLUENTE_LOCK_DURATION_MS: '10000',
    AFLUENTE_LOG_LEVEL: 'warn',
  });
  services.push(service);
  return service;
}

async function orphanedRunners(): Promise<string[]> {
  const { stdout } = await promisify(execFile)('ps', ['-eo', 'ppid=,args=']);
  return stdout.split('\n').filter((l) => l.trim().startsWith('1 ') && l.includes('local-runner.ts'));
}

describe('a worker killed mid-stage', () => {
  it(
    'leaves no handler behind, and another service process finishes the ingest exactly once',
    { timeout: 120_000 },
    async () => {
      const first = await startService();
      const id = await first.createRun({ source: 'demo' });
      await waitFor(
        async () => ((api.stats().byPath['/orders'] ?? 0) >= 2 ? true : undefined),
        'the second page to be requested',
      );
      expect((await first.getRun(id)).jobs[0]).toMatchObject({ stage: 'ingest', status: 'RUNNING' });

      await first.kill();
      await waitFor(
        async () => ((await orphanedRunners()).length === 0 ? true : undefined),
        'the handler process to exit',
        10_000,
      );

      const second = await startService();
      const ingest = await second.waitForRun(
        id,
        (run) => {
          const job = run.jobs.find((j) => j.stage === 'ingest');
          return job?.status === 'COMPLETED' || job?.status === 'FAILED' ? job : undefined;
        },
        'the ingest job to finish in the second service',
        60_000,
      );
      expect(ingest.status).toBe('COMPLETED');
      const run = await second.getRun(id);
      expect(run.counts.fetched).toBe(RECORDS);
      expect(run.files.reduce((n, f) => n + f.records, 0)).toBe(RECORDS);
    },
  );
});
