import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { STAGES } from '../../../contract/stages.ts';
import { STEP_ENGINES } from '../../../contract/source-config.ts';
import { Status, STATUSES } from '../status.ts';
import { LakeFile } from './lake-file.ts';
import { Run } from './run.ts';
import { lifecycleProperties } from './lifecycle.ts';
import type { ErrorInfo } from './types.ts';

/** One stage of one attempt of a run. */
export const Job = defineEntity({
  name: 'Job',
  tableName: 'jobs',
  properties: {
    id: p.integer().primary().unsigned(),
    run: () => p.manyToOne(Run).deleteRule('cascade'),
    stage: p.enum([...STAGES]),
    runAttempt: p.integer().unsigned().default(1),
    status: p.enum(STATUSES).default(Status.Pending),
    /** How many times a worker has started this job. */
    attempt: p.integer().unsigned().default(0),
    maxAttempts: p.integer().unsigned(),
    /** The deterministic BullMQ job id. */
    queueJobId: p.string().length(128),
    /** The Lambda request id or the EMR step id. */
    externalId: p.string().length(255).nullable(),
    /** A transform or load: the engine its step runs on (every attempt of the job keeps it), and why. */
    engine: p.enum([...STEP_ENGINES]).nullable(),
    engineReason: p.string().length(255).nullable(),
    heartbeatAt: p.datetime(3).nullable(),
    params: p.json<Record<string, unknown>>().nullable(),
    metrics: p.json<Record<string, unknown>>().nullable(),
    error: p.json<ErrorInfo>().nullable(),
    ...lifecycleProperties,
    outputs: () => p.oneToMany(LakeFile).mappedBy('producedBy'),
    inputs: () => p.manyToMany(LakeFile).pivotTable('job_inputs').owner(),
  },
  uniques: [{ name: 'jobs_run_stage_attempt_unique', properties: ['run', 'stage', 'runAttempt'] }],
  // Backs the reconciler and the dispatcher, which scan jobs by status.
  indexes: [{ name: 'jobs_status_heartbeat_idx', properties: ['status', 'heartbeatAt'] }],
});
export type Job = InferEntity<typeof Job>;
