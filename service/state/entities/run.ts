import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { STAGES, type Stage } from '../../../contract/stages.ts';
import { STEP_ENGINES } from '../../../contract/source-config.ts';
import { Status, STATUSES, Trigger } from '../status.ts';
import { Backfill } from './backfill.ts';
import { Job } from './job.ts';
import { lifecycleProperties } from './lifecycle.ts';
import { SchemaVersion } from './schema-version.ts';
import type { ErrorInfo, RunParams } from './types.ts';

export const Run = defineEntity({
  name: 'Run',
  tableName: 'runs',
  properties: {
    id: p.integer().primary().unsigned(),
    source: p.string().length(64),
    trigger: p.enum(Object.values(Trigger)).default(Trigger.Manual),
    status: p.enum(STATUSES).default(Status.Pending),
    /** The stages this run executes, in order. */
    plan: p.json<Stage[]>(),
    /** The stage the run is in now (the last one started). */
    stage: p.enum([...STAGES]).nullable(),
    /** Bumped when an operator retries a failed run; jobs of each attempt are kept. */
    attempt: p.integer().unsigned().default(1),
    params: p.json<RunParams>().nullable(),
    idempotencyKey: p.string().length(255).nullable().unique('runs_idempotency_key_unique'),
    requestHash: p.string().length(64).nullable(),
    error: p.json<ErrorInfo>().nullable(),
    fetched: p.bigint('number').nullable(),
    valid: p.bigint('number').nullable(),
    rejected: p.bigint('number').nullable(),
    /** Rows merged into each warehouse table by the run's committed load. */
    rows: p.json<Record<string, number>>().nullable(),
    /** Records the transform dropped because a later record of the run had the same key. */
    duplicates: p.bigint('number').nullable(),
    /** The incremental cursor the run's ingest reached; it becomes the source's cursor when the run COMPLETES. */
    nextCursor: p.string().length(1024).nullable(),
    /** The EMR cluster the run's steps run on (a transient one is started for the run when none is configured). */
    clusterId: p.string().length(64).nullable(),
    /** The engine of the run's latest transform or load step, and why it was picked (as on that job). */
    engine: p.enum([...STEP_ENGINES]).nullable(),
    engineReason: p.string().length(255).nullable(),
    cancelledBy: p.string().length(64).nullable(),
    /** A replay: the earlier run whose committed lake files the first stage of this run's plan reads. */
    replayOf: () => p.manyToOne(Run).nullable().deleteRule('set null'),
    /** The backfill that created this run, one of its windows. */
    backfill: () => p.manyToOne(Backfill).nullable().deleteRule('set null'),
    /** The schema version (the source's table spec) its load stage handed the load step; set when the load starts. */
    schemaVersion: () => p.manyToOne(SchemaVersion).nullable().deleteRule('set null'),
    ...lifecycleProperties,
    jobs: () => p.oneToMany(Job).mappedBy('run'),
  },
  // Backs GET /runs: keyset pages on id, filtered by source and/or status.
  indexes: [
    { name: 'runs_source_status_id_idx', properties: ['source', 'status', 'id'] },
    { name: 'runs_source_id_idx', properties: ['source', 'id'] },
    { name: 'runs_status_id_idx', properties: ['status', 'id'] },
  ],
});
export type Run = InferEntity<typeof Run>;
