import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { dropTestState, testConfig, TOKEN } from '../support/env.ts';
import { freePort } from '../support/net.ts';
import { waitFor } from '../support/wait.ts';

// A service process killed outright in the middle of an ingest: its handler process must not live on, and a new
// service process must take the job over and finish it, with every record exactly once.

const RECORDS = 3_000;
const config = testConfig();
let api: DemoApi;
let dir: string;
const children: ChildProcess[] = [];

beforeAll(async () => {
  // Page 2 is slow, so the ingest is surely in flight when the service is killed.
  api = await startDemoApi({ records: RECORDS, faults: { slow: { pages: [2], delayMs: 1500 } } });
  dir = await mkdtemp(join(tmpdir(), 'afluente-kill-'));
  const yaml = (await readFile('config/sources.yaml', 'utf8')).replace(
    'http://127.0.0.1:8787/orders',
    `${api.url}/orders`,
  );
  await copyFile('config/schemas/orders.schema.json', join(dir, 'orders.schema.json'));
  // On Spark: a kill during transform and load must catch a step that runs for a while, which a small run on
  // the embedded engine does not.
  await writeFile(
    join(dir, 'sources.yaml'),
    yaml
      .replace('schemas/orders.schema.json', 'orders.schema.json')
      .replace(/engine: auto\b/, 'engine: spark'),
  );
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  // The run goes on to its Spark steps after the ingest this test is about; a step of a killed service lives on
  // in its own process group (see service/steps/README.md), so the test ends its own.
  await promisify(execFile)('pkill', ['-f', '--', dir]).catch(() => undefined);
  await api.close();
  await dropTestState(config);
});

async function startService(port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['service/main.ts'], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      AFLUENTE_PORT: String(port),
      AFLUENTE_MYSQL_URL: config.mysql.url,
      AFLUENTE_QUEUE_PREFIX: config.queue.prefix,
      AFLUENTE_WAREHOUSE_SCHEMA: config.warehouse.schema,
      AFLUENTE_API_TOKENS: TOKEN,
      AFLUENTE_SOURCES_FILE: join(dir, 'sources.yaml'),
      AFLUENTE_LAKE_URI: `file://${join(dir, 'lake')}`,
      // Short, so a killed service's job is taken over quickly; not so short that a busy 2-core machine, where a
      // timer can fire a second late, loses a live worker's lock (the job then "stalls" and the run fails).
      AFLUENTE_LOCK_DURATION_MS: '10000',
      // The test polls its runs every 50 ms.
      AFLUENTE_RATE_LIMIT_MAX: '100000',
      AFLUENTE_LOG_LEVEL: 'warn',
    },
    stdio: 'ignore',
  });
  children.push(child);
  await waitFor(
    async () => {
      const res = await fetch(`http://127.0.0.1:${port}/health/ready`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    'the service to be ready',
    30_000,
  );
  return child;
}

interface RunView {
  id: number;
  status: string;
  counts: { fetched: number | null };
  jobs: {
    stage: string;
    status: string;
    attempt: number;
    externalId: string | null;
    metrics: Record<string, unknown> | null;
  }[];
  files: { records: number }[];
}
async function getRun(port: number, id: number): Promise<RunView> {
  const res = await fetch(`http://127.0.0.1:${port}/runs/${id}`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  if (!res.ok) throw new Error(`GET /runs/${id} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as RunView;
}

async function orphanedRunners(): Promise<string[]> {
  const { stdout } = await promisify(execFile)('ps', ['-eo', 'ppid=,args=']);
  return stdout.split('\n').filter((l) => l.trim().startsWith('1 ') && l.includes('local-runner.ts'));
}

describe('a worker killed mid-stage', () => {
  it(
    'leaves no handler behind, and another service process finishes the ingest exactly once',
    { timeout: 90_000 },
    async () => {
      const first = await freePort();
      const a = await startService(first);
      const created = await fetch(`http://127.0.0.1:${first}/runs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ source: 'demo' }),
      });
      const { id } = (await created.json()) as { id: number };
      await waitFor(
        async () => ((api.stats().byPath['/orders'] ?? 0) >= 2 ? true : undefined),
        'the second page to be requested',
      );
      expect((await getRun(first, id)).jobs[0]).toMatchObject({ stage: 'ingest', status: 'RUNNING' });

      const exited = once(a, 'exit');
      a.kill('SIGKILL');
      await exited;
      await waitFor(
        async () => ((await orphanedRunners()).length === 0 ? true : undefined),
        'the handler process to exit',
        10_000,
      );

      const second = await freePort();
      await startService(second);
      const ingest = await waitFor(
        async () => {
          const job = (await getRun(second, id)).jobs.find((j) => j.stage === 'ingest');
          return job?.status === 'COMPLETED' || job?.status === 'FAILED' ? job : undefined;
        },
        'the ingest job to finish in the second service',
        60_000,
      );
      expect(ingest.status).toBe('COMPLETED');
      const run = await getRun(second, id);
      expect(run.counts.fetched).toBe(RECORDS);
      expect(run.files.reduce((n, f) => n + f.records, 0)).toBe(RECORDS);
    },
  );

  it(
    'resumes a run whose service was killed during transform, and again during load, loading every row once',
    { timeout: 300_000 },
    async () => {
      // The previous test's service would take this run's jobs too: only this test's services may run.
      for (const child of children.splice(0)) child.kill('SIGKILL');
      let port = await freePort();
      let service = await startService(port);
      const created = await fetch(`http://127.0.0.1:${port}/runs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ source: 'demo' }),
      });
      const { id } = (await created.json()) as { id: number };

      const killedSteps = new Map<string, string>();
      for (const stage of ['transform', 'load']) {
        // Killed once its Spark step is running (the step id is on the job).
        const step = await waitFor(
          async () => {
            const view = await getRun(port, id);
            // A run that ended will never start the step: say why now instead of timing out.
            if (['FAILED', 'CANCELLED', 'COMPLETED'].includes(view.status))
              throw new Error(
                `run ${id} ended ${view.status} before its ${stage} step started: ${JSON.stringify(view)}`,
              );
            const job = view.jobs.find((j) => j.stage === stage);
            return job?.status === 'RUNNING' && job.externalId ? job.externalId : undefined;
          },
          `the ${stage} step to start`,
          120_000,
        );
        killedSteps.set(stage, step);
        const exited = once(service, 'exit');
        service.kill('SIGKILL');
        await exited;
        port = await freePort();
        service = await startService(port);
      }

      const run = await waitFor(
        async () => {
          const view = await getRun(port, id);
          return ['COMPLETED', 'FAILED'].includes(view.status) ? view : undefined;
        },
        'the run to finish in the third service',
        200_000,
      );
      expect(run.status).toBe('COMPLETED');
      // Each stage was finished by a step the next service started, not by the one that was running at the kill.
      for (const [stage, killed] of killedSteps) {
        const job = run.jobs.find((j) => j.stage === stage);
        expect(job?.status).toBe('COMPLETED');
        expect(job?.externalId).toMatch(/^local:\d+$/);
        expect(job?.externalId).not.toBe(killed);
      }
      const db = new pg.Client({ connectionString: config.warehouse.url });
      await db.connect();
      try {
        const { rows } = await db.query<{ orders: string; ledger: string }>(
          `SELECT (SELECT count(*) FROM "${config.warehouse.schema}".orders)::text AS orders,
                  (SELECT count(*) FROM "${config.warehouse.schema}"._afluente_load_ledger WHERE run_id = $1)::text AS ledger`,
          [id],
        );
        expect(rows).toEqual([{ orders: String(RECORDS), ledger: '3' }]);
      } finally {
        await db.end();
      }
    },
  );
});
