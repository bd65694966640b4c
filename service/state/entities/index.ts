export { Run } from './run.ts';
export { Backfill } from './backfill.ts';
export { Job } from './job.ts';
export { LakeFile } from './lake-file.ts';
export { SourceState } from './source-state.ts';
export { SchemaVersion } from './schema-version.ts';
export type { ErrorInfo, RunParams } from './types.ts';

import { Backfill } from './backfill.ts';
import { Job } from './job.ts';
import { LakeFile } from './lake-file.ts';
import { Run } from './run.ts';
import { SchemaVersion } from './schema-version.ts';
import { SourceState } from './source-state.ts';

export const ENTITIES = [Run, Job, LakeFile, SourceState, Backfill, SchemaVersion];
