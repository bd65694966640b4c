import { FileLake } from './file-lake.ts';
import type { Lake } from './lake.ts';
import { S3Lake, type S3LakeOptions } from './s3-lake.ts';

export { parseS3Uri } from './s3-lake.ts';

export interface OpenLakeOptions {
  /** Used only for `s3://` roots: where and how to reach S3. */
  s3?: Pick<S3LakeOptions, 'endpoint' | 'region' | 'forcePathStyle'>;
}

/** The lake adapter for a root URI: `file://…` for a folder, `s3://bucket/prefix` for S3. */
export function openLake(root: string, options: OpenLakeOptions = {}): Lake {
  if (root.startsWith('file://')) return new FileLake({ root });
  if (root.startsWith('s3://')) return new S3Lake({ root, ...options.s3 });
  throw new Error(`lake URI must start with file:// or s3:// (got "${root}")`);
}
