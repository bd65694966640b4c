import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, vi } from 'vitest';
import type { Lake } from '../../lib/lake/lake.ts';
import { openLake } from '../../lib/lake/open-lake.ts';
import { startMoto, type Moto } from './moto.ts';

/**
 * `s3://` lakes on a moto server, for the describe block that calls this: the server starts before the block's
 * tests, with dummy credentials for the SDK's default chain (moto accepts any; never real ones here), and stops
 * after them. Each `lake()` is a bucket of its own.
 */
export function s3Lakes(): { lake: () => Promise<Lake> } {
  let moto: Moto | undefined;
  let s3: S3Client | undefined;
  beforeAll(async () => {
    moto = await startMoto();
    for (const [name, value] of Object.entries(moto.env)) vi.stubEnv(name, value);
    vi.stubEnv('AWS_SESSION_TOKEN', undefined);
    s3 = new S3Client({ endpoint: moto.endpoint, region: moto.region, forcePathStyle: true });
  });
  afterAll(async () => {
    s3?.destroy();
    await moto?.stop();
    vi.unstubAllEnvs();
  });
  return {
    async lake() {
      if (!moto || !s3) throw new Error('s3Lakes(): moto has not started (call lake() inside a test)');
      const bucket = `lake-${randomBytes(6).toString('hex')}`;
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      return openLake(`s3://${bucket}/lake`, { s3: { endpoint: moto.endpoint } });
    },
  };
}
