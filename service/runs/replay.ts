import type { EntityManager } from '@mikro-orm/mysql';
import { runDate, type Layer } from '../../contract/lake-layout.ts';
import { STAGES, type Stage } from '../../contract/stages.ts';
import { BadRequestError, ConflictError } from '../errors.ts';
import type { RunEngine } from '../orchestration/run-engine.ts';
import { Job, LakeFile, Run } from '../state/entities/index.ts';
import { Status } from '../state/status.ts';

/** Where a replay starts: a stage of an earlier run, whose input that run already committed to the lake. */
export interface ReplayFrom {
  run: number;
  stage: Stage;
}

/** The layer each replayable stage reads, which the replayed run must have committed. */
const READS: Partial<Record<Stage, Layer>> = { validate: 'raw', transform: 'validated', load: 'curated' };

/**
 * Checks a replay request and returns the replay's plan (the stages from `from.stage` on) and the run whose
 * lake files its first stage reads. A run that was itself a replay starting at that stage holds no input of its
 * own for it, so the replay reads what that run read, its origin's files.
 */
export async function planReplay(
  em: EntityManager,
  source: string,
  from: ReplayFrom,
): Promise<{ plan: Stage[]; of: Run }> {
  const layer = READS[from.stage];
  if (!layer)
    throw new BadRequestError(
      `body.from.stage cannot be "${from.stage}": a replay starts from data an earlier run committed to the ` +
        'lake (validate, transform or load); to call the source API again, trigger a new run without `from`',
    );
  let of = await em.findOne(Run, from.run);
  if (!of) throw new BadRequestError(`body.from.run: run ${from.run} does not exist`);
  if (of.source !== source)
    throw new BadRequestError(
      `body.from.run: run ${from.run} is a run of source "${of.source}", not "${source}"`,
    );
  while (of.replayOf && of.plan[0] === from.stage) of = await em.findOneOrFail(Run, of.replayOf.id);
  const before = STAGES[STAGES.indexOf(from.stage) - 1] as Stage;
  const committed = await em.count(Job, { run: of, stage: before, status: Status.Completed });
  if (committed === 0)
    throw new ConflictError(
      `run ${of.id} has no committed ${layer} data to replay "${from.stage}" from: its ${before} stage never ` +
        `completed (the run is ${of.status})`,
    );
  return { plan: STAGES.slice(STAGES.indexOf(from.stage)), of };
}

/**
 * Creates the first job of a run, as PENDING (the caller flushes). On a replay, the job's params name the
 * replayed run (see stageInput) and its inputs are that run's committed files, for lineage; a replayed load also
 * gets the params the replayed run's load job was created with.
 */
export async function createFirstJob(engine: RunEngine, em: EntityManager, run: Run): Promise<Job> {
  const stage = run.plan[0] as Stage;
  const job = engine.createJob(em, run, stage);
  if (!run.replayOf) return job;
  const of = await em.findOneOrFail(Run, run.replayOf.id);
  const layer = READS[stage];
  const files = layer
    ? await em.find(LakeFile, { run: of, layer }, { orderBy: { id: 'asc' }, limit: 100_000 })
    : [];
  const earlier =
    stage === 'load'
      ? await em.findOne(Job, { run: of, stage }, { orderBy: { runAttempt: 'desc' }, fields: ['params'] })
      : null;
  job.params = { ...earlier?.params, input: { run: of.id, dt: runDate(of.createdAt) } };
  job.inputs.set(files);
  return job;
}
