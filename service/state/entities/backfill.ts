import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { Run } from './run.ts';

/**
 * A backfill: one run per window of [windowFrom, windowTo), each `step` long (the last may be shorter). Its
 * status and progress are its runs', read when asked, so there is no second copy of them to drift.
 */
export const Backfill = defineEntity({
  name: 'Backfill',
  tableName: 'backfills',
  properties: {
    id: p.integer().primary().unsigned(),
    source: p.string().length(64).index('backfills_source_idx'),
    windowFrom: p.datetime(3),
    windowTo: p.datetime(3),
    /** The window length, as an ISO-8601 duration (P1D, PT6H). */
    step: p.string().length(32),
    /** How many runs (windows) the backfill created. */
    windows: p.integer().unsigned(),
    createdBy: p.string().length(64),
    idempotencyKey: p.string().length(255).nullable().unique('backfills_idempotency_key_unique'),
    requestHash: p.string().length(64).nullable(),
    createdAt: p.datetime(3).onCreate(() => new Date()),
    runs: () => p.oneToMany(Run).mappedBy('backfill'),
  },
});
export type Backfill = InferEntity<typeof Backfill>;
