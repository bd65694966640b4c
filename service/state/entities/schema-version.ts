import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import type { WarehouseSpec } from '../../schema/spec.ts';

/**
 * One version of a source's effective table spec: what its loads hand the load step (the tables as the config
 * loader normalized them, and the cursor column), keyed by the sha256 of its canonical JSON. A row is added the
 * first time a load starts with that spec, and never changes but for when it was loaded.
 */
export const SchemaVersion = defineEntity({
  name: 'SchemaVersion',
  tableName: 'schema_versions',
  properties: {
    id: p.integer().primary().unsigned(),
    source: p.string().length(64),
    /** sha256 (hex) of the spec's canonical JSON (keys sorted), so one spec is one row however it was written. */
    hash: p.string().length(64),
    spec: p.json<WarehouseSpec>(),
    createdAt: p.datetime(3).onCreate(() => new Date()),
    /** When a load with this spec first committed in the warehouse; null while none has. */
    firstLoadedAt: p.datetime(3).nullable(),
    /** When a load with this spec last committed: the latest loaded version is the one the warehouse follows. */
    lastLoadedAt: p.datetime(3).nullable(),
  },
  uniques: [{ name: 'schema_versions_source_hash_unique', properties: ['source', 'hash'] }],
});
export type SchemaVersion = InferEntity<typeof SchemaVersion>;
