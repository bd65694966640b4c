import { runDate } from '../../contract/lake-layout.ts';
import type { Job, Run } from '../state/entities/index.ts';

/** The run whose committed lake files a stage reads, and that run's partition date. */
export interface StageInput {
  run: number;
  dt: string;
}

/**
 * Where a stage reads its input. A stage reads what the stage before it committed for the same run, except the
 * first stage of a replay: its job is created with `params.input` naming the earlier run it replays, so it reads
 * that run's committed files (a retry of the replay copies the params, and reads them too).
 */
export function stageInput(run: Pick<Run, 'id' | 'createdAt'>, job: Pick<Job, 'params'>): StageInput {
  const input = job.params?.input as Partial<StageInput> | undefined;
  if (input && typeof input.run === 'number' && typeof input.dt === 'string')
    return { run: input.run, dt: input.dt };
  return { run: run.id, dt: runDate(run.createdAt) };
}
