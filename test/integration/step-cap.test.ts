import type { EntityManager } from '@mikro-orm/mysql';
import { afterAll, describe, expect, it } from 'vitest';
import type { StageHandlers } from '../../service/orchestration/stage-handler.ts';
import { Run } from '../../service/state/entities/index.ts';
import { finishedRun, startTestApp, withMaxActiveRuns, type TestApp } from '../support/app.ts';
import { waitFor } from '../support/wait.ts';

// AFLUENTE_MAX_CONCURRENT_STEPS on the real Redis: BullMQ's global concurrency of the Spark stage queues holds
// transform jobs past the cap, even with a worker that could take more. The transform handler here stands in
// for a Spark step that runs until the test lets it finish.

let t: TestApp | undefined;
afterAll(async () => t?.close());

describe('the cap on concurrent Spark steps', () => {
  it('runs at most AFLUENTE_MAX_CONCURRENT_STEPS transforms at once, and the held ones after', async () => {
    let active = 0;
    let most = 0;
    const releases: (() => void)[] = [];
    const transform: StageHandlers['transform'] = async () => {
      active += 1;
      most = Math.max(most, active);
      await new Promise<void>((resolve) => releases.push(resolve));
      active -= 1;
      return { counts: {} };
    };
    t = await startTestApp({
      env: { AFLUENTE_MAX_CONCURRENT_STEPS: '1', AFLUENTE_WORKER_CONCURRENCY: '4' },
      sources: await withMaxActiveRuns(3),
      handlers: {
        ingest: async () => ({ counts: { fetched: 1 } }),
        validate: async () => ({ counts: { valid: 1, rejected: 0 } }),
        transform,
        load: async () => ({ counts: {} }),
      },
    });
    const app = t;
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await app.app.runs.create({ source: 'demo' })).run.id);

    // All three reach transform; one runs, two wait in the queue although the worker has room for four.
    await waitFor(async () => (releases.length === 1 ? true : undefined), 'the first transform');
    const transforms = app.app.queues.get('transform');
    await waitFor(async () => ((await transforms.count()) === 2 ? true : undefined), 'two held transforms');
    expect(active).toBe(1);
    for (let done = 0; done < 3; done++) {
      await waitFor(async () => (releases.length > done ? true : undefined), `transform ${done + 1}`);
      releases[done]?.();
    }
    for (const id of ids) expect((await finishedRun(app, id)).status).toBe('COMPLETED');
    expect(most).toBe(1);
    expect(await (app.app.orm.em.fork() as EntityManager).count(Run, { status: 'COMPLETED' })).toBe(3);
  });
});
