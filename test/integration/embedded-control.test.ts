// Run control of embedded steps, on the real MariaDB: the orphan sweep, a stage deadline and a cancel reach an
// embedded step through StepRunners, which routes an `embedded:<pid>` step to the embedded runner. The steps run
// on the stand-in engine (test/fixtures/embedded: a step that sleeps until it is stopped, with a child process
// in its group), started by a runner of their own, as another worker of the same machine would start them.
import type { EntityManager } from '@mikro-orm/mysql';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Lake } from '../../lib/lake/lake.ts';
import { openLake } from '../../lib/lake/open-lake.ts';
import { createLogger } from '../../service/observability/logger.ts';
import { OrphanSweep } from '../../service/orchestration/orphan-sweep.ts';
import { Job } from '../../service/state/entities/index.ts';
import type { EmbeddedStepRunner } from '../../service/steps/embedded-runner.ts';
import { openEmbeddedRunner } from '../../service/steps/open-runner.ts';
import { groupAlive } from '../../service/steps/process-group.ts';
import type { StepHandle } from '../../service/steps/step-runner.ts';
import { startTestApp, withDeadlines, withMaxActiveRuns, type TestApp } from '../support/app.ts';
import { transformRunning, type JobOwner } from '../support/jobs.ts';
import { TOKEN } from '../support/env.ts';
import { stepRequest } from '../support/steps.ts';
import { waitFor } from '../support/wait.ts';

const TRANSFORM_DEADLINE_S = 2;
const logger = createLogger('silent');

let temp: string;
let lake: Lake;
let t: TestApp;
/** Another worker's embedded runner on this machine: the app's runners did not start its steps. */
let worker: EmbeddedStepRunner;
const stops: AbortController[] = [];

beforeAll(async () => {
  temp = await mkdtemp(join(tmpdir(), 'afluente-embedded-control-'));
  lake = openLake(pathToFileURL(temp).href);
  t = await startTestApp({
    // No worker: the test decides each job's state. The reconciler sweeps when the test says so.
    env: {
      AFLUENTE_ROLES: 'api,scheduler',
      AFLUENTE_RECONCILE_INTERVAL_MS: '3600000',
      AFLUENTE_LAKE_URI: lake.root,
      AFLUENTE_SPARK_SCRIPTS: 'test/fixtures/embedded',
      AFLUENTE_SPARK_TEMP_DIR: join(temp, 'steps'),
    },
    sources: await withDeadlines({ transform: TRANSFORM_DEADLINE_S }, await withMaxActiveRuns(10)),
  });
  worker = openEmbeddedRunner(t.config, lake, logger);
});
afterAll(async () => {
  for (const stop of stops) stop.abort({ kind: 'cancelled' });
  await worker?.close();
  await t?.close();
  if (temp) await rm(temp, { recursive: true, force: true });
});

const em = (): EntityManager => t.app.orm.em.fork();

type Owner = JobOwner;

/**
 * Starts the owner's step on the stand-in engine (it sleeps until stopped) and records it on the job as the
 * stage does; resolves once its process and its child are up.
 */
async function sleepingStep(
  owner: Owner,
  runner: EmbeddedStepRunner = worker,
): Promise<StepHandle & { pid: number }> {
  const req = stepRequest('split_tables', owner.runId, owner.jobId);
  const root = join(temp, `run-${owner.runId}`);
  await lake.put(
    req.specKey,
    JSON.stringify({ runId: owner.runId, lakeRoot: pathToFileURL(root).href, fixture: 'sleep' }),
  );
  await lake.put(`run-${owner.runId}/.keep`, '');
  const stop = new AbortController();
  stops.push(stop);
  let handle: StepHandle | undefined;
  runner
    .run(req, {
      signal: stop.signal,
      onSubmitted: async (h) => {
        handle = h;
        await t.app.engine.recordEngine(owner.jobId, owner.runId, {
          engine: 'embedded',
          reason: 'requested on the run',
        });
        await t.app.engine.attachExternal(owner.jobId, owner.runId, h.stepId);
      },
    })
    .catch(() => {});
  await waitFor(
    async () => (existsSync(join(root, 'started')) ? true : undefined),
    `the step of run ${owner.runId}`,
  );
  const started = JSON.parse(await readFile(join(root, 'started'), 'utf8')) as { pid: number };
  expect(handle?.stepId).toBe(`embedded:${started.pid}`);
  return { ...handle!, pid: started.pid };
}

describe('embedded steps under run control', () => {
  it('the orphan sweep lists the embedded steps, kills the one whose run ended and leaves the live job’s step', async () => {
    const ended = await transformRunning(t);
    const live = await transformRunning(t);
    const orphan = await sleepingStep(ended);
    const owned = await sleepingStep(live);
    await t.app.engine.fail(ended.jobId, { reason: 'test', message: 'failed by the test' }, true);

    const listed = await t.app.steps.listLive();
    expect(listed.steps.map((s) => [s.runId, s.jobId, s.handle.stepId]).sort()).toEqual(
      [
        [ended.runId, ended.jobId, orphan.stepId],
        [live.runId, live.jobId, owned.stepId],
      ].sort(),
    );

    const sweep = new OrphanSweep({ orm: t.app.orm, logger, metrics: t.app.metrics }, t.app.steps, {
      graceMs: 0,
    });
    expect(await sweep.sweep()).toEqual({
      stepsCancelled: [orphan.stepId],
      clustersTerminated: [],
      deferred: 0,
      failed: 0,
    });
    expect(groupAlive(orphan.pid)).toBe(false);
    expect(groupAlive(owned.pid)).toBe(true);
    // Done with it: its open stage must not be past its deadline in the next test.
    await t.app.runs.cancel(live.runId, 'tester');
    await waitFor(async () => (groupAlive(owned.pid) ? undefined : true), 'the live step to be cancelled');
  });

  it('a transform past its deadline fails its run, and the reconciler kills its embedded step', async () => {
    const owner = await transformRunning(t);
    // The app's own runner started this one, as the app's worker would.
    const step = await sleepingStep(owner, t.app.steps.embedded);
    await em().nativeUpdate(Job, { id: owner.jobId }, { startedAt: new Date(Date.now() - 10_000) });

    expect(await t.app.reconciler!.sweep()).toMatchObject({ expired: 1 });

    const job = await em().findOneOrFail(Job, owner.jobId, { populate: ['run'] });
    expect(job).toMatchObject({
      status: 'FAILED',
      engine: 'embedded',
      error: { reason: 'deadline_exceeded', stage: 'transform' },
      metrics: { stepCancel: { state: 'CANCELLED' } },
    });
    expect(job.run.status).toBe('FAILED');
    expect(groupAlive(step.pid)).toBe(false);
  });

  it('cancelling a run kills its embedded step even with no worker to do it', async () => {
    const owner = await transformRunning(t);
    const step = await sleepingStep(owner);

    const res = await request(t.app.server)
      .post(`/runs/${owner.runId}/cancel`)
      .set({ authorization: `Bearer ${TOKEN}` });
    expect(res.status).toBe(200);

    await waitFor(async () => (groupAlive(step.pid) ? undefined : true), 'the step’s group to be gone');
    const job = await waitFor(async () => {
      const found = await em().findOneOrFail(Job, owner.jobId);
      return found.metrics?.stepCancel ? found : undefined;
    }, 'the job to record its step’s cancel');
    expect(job).toMatchObject({
      status: 'CANCELLED',
      externalId: step.stepId,
      metrics: { stepCancel: { state: 'CANCELLED' } },
    });
  });
});
