import type { EntityManager } from '@mikro-orm/mysql';
import { expect } from 'vitest';
import { Job, Run } from '../../service/state/entities/index.ts';
import type { TestApp } from './app.ts';

export interface JobOwner {
  runId: number;
  jobId: number;
}

/**
 * A new run of `demo` at its transform stage, its transform job RUNNING: what a worker records before it submits
 * the step. For an app with no worker role, so the job stays as the test leaves it.
 */
export async function transformRunning(t: TestApp): Promise<JobOwner> {
  const em = (): EntityManager => t.app.orm.em.fork();
  const { run } = await t.app.runs.create({ source: 'demo' });
  const ingest = await em().findOneOrFail(Job, { run: run.id });
  await em().nativeUpdate(Job, { id: ingest.id }, { status: 'COMPLETED' });
  const fork = em();
  const job = t.app.engine.createJob(fork, await fork.findOneOrFail(Run, run.id), 'transform');
  await fork.flush();
  expect((await t.app.engine.start(job.id, 1)).action).toBe('run');
  return { runId: run.id, jobId: job.id };
}
