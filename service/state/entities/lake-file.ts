import { defineEntity, p, type InferEntity } from '@mikro-orm/core';
import { Layer } from '../status.ts';
import { Job } from './job.ts';
import { Run } from './run.ts';

/** A file in the lake, with the job that produced it and the jobs that read it (file-level lineage). */
export const LakeFile = defineEntity({
  name: 'LakeFile',
  tableName: 'lake_files',
  properties: {
    id: p.integer().primary().unsigned(),
    // Keys are deterministic, so a retry that rewrites a key updates this row instead of adding one.
    uri: p.string().length(768).unique('lake_files_uri_unique'),
    layer: p.enum(Object.values(Layer)),
    table: p.string().length(64).fieldName('table_name').nullable(),
    records: p.bigint('number').nullable(),
    bytes: p.bigint('number'),
    sha256: p.string().length(64).nullable(),
    run: () => p.manyToOne(Run).deleteRule('cascade'),
    producedBy: () => p.manyToOne(Job).deleteRule('cascade'),
    consumedBy: () => p.manyToMany(Job).mappedBy('inputs'),
    createdAt: p.datetime(3).onCreate(() => new Date()),
  },
  indexes: [{ name: 'lake_files_run_layer_idx', properties: ['run', 'layer'] }],
});
export type LakeFile = InferEntity<typeof LakeFile>;
