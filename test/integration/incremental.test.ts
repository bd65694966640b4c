import type { EntityManager } from '@mikro-orm/mysql';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { firstIndexSince } from '../../demo/source-api/records.ts';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { NonRetryableError, type StageHandlers } from '../../service/orchestration/stage-handler.ts';
import type { Run } from '../../service/state/entities/index.ts';
import { SourceState } from '../../service/state/entities/index.ts';
import { demoSourcesAt, finishedRun, startTestApp, type TestApp } from '../support/app.ts';

// Incremental pulls on the real ingest and validate (local Lambdas) against the demo API, which filters by
// `updated_since`: the cursor moves only when a run COMPLETES, so a failed run's window is pulled again.
// Transform and load are stand-ins here (the end-to-end suite runs them for real); the first transform fails.

const RECORDS = 300;
let api: DemoApi;
let t: TestApp;
let transforms = 0;
const handlers: Partial<StageHandlers> = {
  transform: async () => {
    transforms += 1;
    if (transforms === 1)
      throw new NonRetryableError('transform_failed', 'the first transform fails on purpose');
    return { counts: {} };
  },
  load: async () => ({ counts: {} }),
};

beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS, pageSize: 100 });
  t = await startTestApp({
    sources: await demoSourcesAt(`${api.url}/orders`),
    handlers,
    env: { AFLUENTE_LAKE_URI: `file://${await mkdtemp(join(tmpdir(), 'afluente-incremental-'))}` },
  });
});
afterAll(async () => {
  await t?.close();
  await api?.close();
});

const em = (): EntityManager => t.app.orm.em.fork();
const cursor = async () => (await em().findOne(SourceState, 'demo'))?.cursor ?? null;

async function runOnce(): Promise<Run> {
  const { run } = await t.app.runs.create({ source: 'demo' });
  return finishedRun(t, run.id, 60_000);
}

describe('incremental pulls', () => {
  it('keep the cursor after a failed run, pull the same window again, and move it only on completion', async () => {
    const failed = await runOnce();
    expect(failed.status).toBe('FAILED');
    expect(failed.fetched).toBe(RECORDS);
    expect(failed.nextCursor).toMatch(/^20\d\d-/);
    expect(await cursor()).toBeNull();

    // The same window again: every record, because the cursor did not move.
    const completed = await runOnce();
    expect(completed.status).toBe('COMPLETED');
    expect(completed.fetched).toBe(RECORDS);
    expect(await cursor()).toBe(completed.nextCursor);

    // From the stored cursor on: only the records at or after it (the cursor is inclusive, so records sharing
    // its second come again, and the warehouse merge keeps them once), not the whole source.
    const next = await runOnce();
    expect(next.status).toBe('COMPLETED');
    const since = Date.parse(completed.nextCursor as string);
    expect(next.fetched).toBe(RECORDS - firstIndexSince(since, RECORDS));
    expect(next.fetched).toBeLessThan(RECORDS);
    expect(await cursor()).toBe(next.nextCursor ?? completed.nextCursor);
  });
});
