import type { Lake } from '../../lib/lake/lake.ts';
import { openLake } from '../../lib/lake/open-lake.ts';

/**
 * Opens the lake a request names. `AFLUENTE_S3_ENDPOINT` points the S3 adapter at an S3-compatible server
 * (MinIO, moto); on AWS it is unset and the SDK uses the region's endpoint.
 */
export function lakeFromEnv(root: string, env: NodeJS.ProcessEnv = process.env): Lake {
  const endpoint = env.AFLUENTE_S3_ENDPOINT;
  return openLake(
    root,
    endpoint ? { s3: { endpoint, forcePathStyle: true, region: env.AWS_REGION ?? 'us-east-1' } } : {},
  );
}
