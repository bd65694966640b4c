// The reconciler against the real MariaDB and the real local step runner: it polls the Spark step of every
// RUNNING job, records what it saw, and fails the jobs whose worker has gone silent past the deadline.
import type { EntityManager } from '@mikro-orm/mysql';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Job, Run } from '../../service/state/entities/index.ts';
import request from 'supertest';
import { startTestApp, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';
import { waitFor } from '../support/wait.ts';

const open: TestApp[] = [];
afterEach(async () => {
  for (const t of open.splice(0)) await t.close();
});

// No worker role: nothing takes the jobs, so the test decides what state each one is in.
async function start(env: Record<string, string> = {}): Promise<TestApp> {
  const t = await startTestApp({
    env: { AFLUENTE_ROLES: 'api,scheduler', AFLUENTE_HEARTBEAT_DEADLINE_MS: '60000', ...env },
  });
  open.push(t);
  return t;
}

const em = (t: TestApp): EntityManager => t.app.orm.em.fork();

/** A run whose `stage` job is RUNNING, last heard from `silentMs` ago, with `externalId` if given. */
async function runningJob(
  t: TestApp,
  stage: 'ingest' | 'transform',
  silentMs: number,
  externalId?: string,
): Promise<Job> {
  const { run } = await t.app.runs.create({ source: 'demo' });
  const first = await em(t).findOneOrFail(Job, { run: run.id });
  let job = first;
  if (stage === 'transform') {
    // Put the run at its transform stage, as if ingest and validate had committed.
    await em(t).nativeUpdate(Job, { id: first.id }, { status: 'COMPLETED' });
    const fork = em(t);
    const r = await fork.findOneOrFail(Run, run.id);
    job = t.app.engine.createJob(fork, r, 'transform');
    await fork.flush();
  }
  const started = await t.app.engine.start(job.id, 1);
  expect(started.action).toBe('run');
  await em(t).nativeUpdate(
    Job,
    { id: job.id },
    { heartbeatAt: new Date(Date.now() - silentMs), externalId: externalId ?? null },
  );
  return em(t).findOneOrFail(Job, job.id, { populate: ['run'] });
}

describe('the reconciler', () => {
  it('re-attaches to a live job’s step and records what the step is doing, without touching the job', async () => {
    const t = await start();
    const job = await runningJob(t, 'transform', 1000, 'local:999999999');
    const report = await t.app.reconciler?.sweep();
    expect(report).toEqual({ polled: 1, failed: 0, expired: 0 });
    const after = await em(t).findOneOrFail(Job, job.id);
    expect(after.status).toBe('RUNNING');
    expect(after.metrics).toMatchObject({ step: { id: 'local:999999999', state: 'FAILED' } });
  });

  it('fails a job whose heartbeat lapsed past the deadline, and its run, saying why', async () => {
    const t = await start();
    const job = await runningJob(t, 'ingest', 120_000);
    await t.app.reconciler?.sweep();
    const after = await em(t).findOneOrFail(Job, job.id, { populate: ['run'] });
    expect(after.status).toBe('FAILED');
    expect(after.error).toMatchObject({ reason: 'heartbeat_lapsed', stage: 'ingest' });
    expect(after.error?.message).toMatch(
      /^no heartbeat from the worker running stage "ingest" since .*, past the 60 s deadline: the worker is gone$/,
    );
    expect(after.run.status).toBe('FAILED');
    expect(after.run.error).toMatchObject({ reason: 'heartbeat_lapsed' });
  });

  it('cancels the step an orphaned job left running before failing the job', async () => {
    const t = await start();
    const step = await standInStep(t);
    try {
      const job = await runningJob(t, 'transform', 120_000, `local:${step.pid}`);
      await t.app.reconciler?.sweep();
      await step.exited;
      const after = await em(t).findOneOrFail(Job, job.id);
      expect(after.status).toBe('FAILED');
      expect(after.error?.message).toMatch(new RegExp(`its step local:${step.pid} is CANCELLED$`));
    } finally {
      step.kill();
    }
  });

  it('sweeps once at start-up', async () => {
    const first = await start();
    const job = await runningJob(first, 'ingest', 120_000);
    // Another instance with the scheduler role starts on the same state, and its first sweep finds the orphan.
    const second = await startTestApp({ config: first.config });
    await waitFor(async () => {
      const after = await em(second).findOneOrFail(Job, job.id);
      return after.status === 'FAILED' ? after : undefined;
    }, 'the start-up sweep to fail the orphaned job');
    await second.app.close();
  });
});

describe('cancelling a run', () => {
  it('cancels its running Spark step even when no worker is left to do it, and records the outcome', async () => {
    const t = await start();
    const step = await standInStep(t);
    try {
      const job = await runningJob(t, 'transform', 1000, `local:${step.pid}`);
      const res = await request(t.app.server)
        .post(`/runs/${job.run.id}/cancel`)
        .set({ authorization: `Bearer ${TOKEN}` });
      expect(res.status).toBe(200);
      await step.exited;
      expect((await em(t).findOneOrFail(Job, job.id)).status).toBe('CANCELLED');
      // The job records whether its step reached CANCELLED.
      const recorded = await waitFor(
        async () => (await em(t).findOneOrFail(Job, job.id)).metrics?.stepCancel,
        'the step cancel on the job',
      );
      expect(recorded).toEqual({ state: 'CANCELLED', at: expect.any(String) });
    } finally {
      step.kill();
    }
  });
});

/**
 * A stand-in for a spark-submit that a dead worker left behind: the local runner recognises its own steps by their
 * command line (a job script of the scripts folder and --spec), so this one carries that shape.
 */
async function standInStep(t: TestApp): Promise<{ pid: number; exited: Promise<unknown>; kill: () => void }> {
  const child = spawn(
    process.execPath,
    ['-e', 'setInterval(() => {}, 1000)', resolve('spark/split_tables.py'), '--spec', 'file:///x.json'],
    { detached: true, stdio: 'ignore' },
  );
  const exited = once(child, 'exit');
  const pid = child.pid as number;
  // If the runner cannot recognise the stand-in as a step, the tests using it prove nothing: say so loudly.
  const status = await t.app.stepRunner.status({ stepId: `local:${pid}` });
  expect(status.state, 'the stand-in is not recognised as a local step').toBe('RUNNING');
  return {
    pid,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
