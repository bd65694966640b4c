import { defineEntity, p, type InferEntity } from '@mikro-orm/core';

/** A source's incremental cursor. It moves only in the transaction that marks a run COMPLETED. */
export const SourceState = defineEntity({
  name: 'SourceState',
  tableName: 'source_states',
  properties: {
    source: p.string().length(64).primary(),
    cursor: p.string().length(1024).nullable(),
    /** The run whose completion set the cursor. */
    lastRunId: p.integer().unsigned().nullable(),
    updatedAt: p
      .datetime(3)
      .onCreate(() => new Date())
      .onUpdate(() => new Date()),
    version: p.integer().unsigned().version(),
  },
});
export type SourceState = InferEntity<typeof SourceState>;
