import type { EntityManager } from '@mikro-orm/mysql';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import type { LoadedSources } from '../../service/config/sources.ts';
import { Job, Run } from '../../service/state/entities/index.ts';
import { startTestApp, withMaxActiveRuns, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';
import { waitFor } from '../support/wait.ts';
import { loadSources } from '../../service/config/sources.ts';

// maxActiveRuns per source, on the real MariaDB and Redis. Only the API role runs: no worker picks the runs up,
// so a run stays active until the test ends it.

const auth = { authorization: `Bearer ${TOKEN}` };
let t: TestApp | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

async function start(sources?: LoadedSources): Promise<TestApp> {
  t = await startTestApp({ env: { AFLUENTE_ROLES: 'api' }, ...(sources ? { sources } : {}) });
  return t;
}

async function rejecting(maxActiveRuns: number): Promise<LoadedSources> {
  const shipped = await loadSources('config/sources.yaml');
  const sources = await withMaxActiveRuns(maxActiveRuns, shipped);
  return {
    ...sources,
    sources: new Map(
      [...sources.sources].map(([name, s]) => [name, { ...s, onActiveRun: 'reject' as const }]),
    ),
  };
}

const em = (app: TestApp): EntityManager => app.app.orm.em.fork();
const jobsOf = (app: TestApp, run: number) => em(app).find(Job, { run });
const queued = async (app: TestApp, run: number) =>
  (await app.app.queues.get('ingest').getJob(`run-${run}.ingest.1`)) !== undefined;

describe('maxActiveRuns', () => {
  it('defaults to 1 and queues a second trigger behind the active run, naming it', async () => {
    const app = await start();
    const first = await request(app.app.server).post('/runs').set(auth).send({ source: 'demo' });
    const second = await request(app.app.server).post('/runs').set(auth).send({ source: 'demo' });
    expect(first.status).toBe(202);
    expect(first.body.queuedBehind).toBeUndefined();
    expect(second.status).toBe(202);
    expect(second.body).toMatchObject({ status: 'PENDING', queuedBehind: [first.body.id] });

    expect(await jobsOf(app, second.body.id)).toEqual([]);
    expect(await queued(app, second.body.id)).toBe(false);
    const detail = await request(app.app.server).get(`/runs/${second.body.id}`).set(auth);
    expect(detail.body).toMatchObject({ queuedBehind: [first.body.id], jobs: [] });

    // Cancelling the active run frees the slot: the waiting one gets its first stage, queued.
    await request(app.app.server).post(`/runs/${first.body.id}/cancel`).set(auth).send({});
    expect((await jobsOf(app, second.body.id)).map((j) => [j.stage, j.status])).toEqual([
      ['ingest', 'PENDING'],
    ]);
    expect(await queued(app, second.body.id)).toBe(true);
    const after = await request(app.app.server).get(`/runs/${second.body.id}`).set(auth);
    expect(after.body.queuedBehind).toBeUndefined();
  });

  it('refuses a trigger past the limit with 409 naming the active run, and writes nothing', async () => {
    const app = await start(await rejecting(1));
    const first = await request(app.app.server).post('/runs').set(auth).send({ source: 'demo' });
    expect(first.status).toBe(202);
    const before = await em(app).count(Run, {});
    const refused = await request(app.app.server).post('/runs').set(auth).send({ source: 'demo' });
    expect(refused.status).toBe(409);
    expect(refused.body.message).toBe(
      `source "demo" already has 1 active run(s), its maxActiveRuns: run ${first.body.id} (PENDING); ` +
        'its onActiveRun is "reject", so no run was created',
    );
    expect(await em(app).count(Run, {})).toBe(before);
  });

  it('admits exactly maxActiveRuns of many simultaneous triggers', async () => {
    const app = await start(await withMaxActiveRuns(2));
    const responses = await Promise.all(
      Array.from({ length: 6 }, () =>
        request(app.app.server).post('/runs').set(auth).send({ source: 'demo' }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual([202, 202, 202, 202, 202, 202]);
    const runs = await em(app).find(Run, { source: 'demo' }, { populate: ['jobs'], orderBy: { id: 'asc' } });
    const admitted = runs.filter((r) => r.jobs.length > 0).map((r) => r.id);
    expect(admitted).toHaveLength(2);
    expect(responses.filter((r) => r.body.queuedBehind).map((r) => r.body.queuedBehind.length)).toEqual([
      2, 2, 2, 2,
    ]);
  });

  it('admits the next waiting run, oldest first, when the active one fails', async () => {
    const app = await start();
    const ids: number[] = [];
    for (let i = 0; i < 3; i++)
      ids.push((await request(app.app.server).post('/runs').set(auth).send({ source: 'demo' })).body.id);
    const [job] = await jobsOf(app, ids[0] as number);
    await app.app.engine.start(job?.id as number, 1);
    await app.app.engine.fail(job?.id as number, { reason: 'boom', message: 'failed on purpose' }, true);

    await waitFor(
      async () => ((await jobsOf(app, ids[1] as number)).length > 0 ? true : undefined),
      'admission',
    );
    expect(await queued(app, ids[1] as number)).toBe(true);
    expect(await jobsOf(app, ids[2] as number)).toEqual([]);
  });

  it("the dispatcher's sweep admits a run whose slot freed while nobody admitted it", async () => {
    const app = await start();
    const first = (await request(app.app.server).post('/runs').set(auth).send({ source: 'demo' })).body.id;
    const second = (await request(app.app.server).post('/runs').set(auth).send({ source: 'demo' })).body.id;
    // As if the instance that finished the first run died before admitting the next: the status changes
    // behind the service's back.
    await em(app).nativeUpdate(Run, { id: first }, { status: 'FAILED' });
    expect(await jobsOf(app, second)).toEqual([]);
    await app.app.dispatcher.sweep(60_000);
    expect((await jobsOf(app, second)).map((j) => j.stage)).toEqual(['ingest']);
    expect(await queued(app, second)).toBe(true);
  });
});
