import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { openLake } from '../../lib/lake/open-lake.ts';
import { demoConfig, ingestAll, PAGINATIONS, readManifest, readRecords, request } from '../support/ingest.ts';
import { startMoto, type Moto } from '../support/moto.ts';

// The ingest handler writing to an s3:// lake on moto's S3 server, over HTTP, as it does on AWS.
const RECORDS = 1_500;
let moto: Moto;
let api: DemoApi;
beforeAll(async () => {
  [moto, api] = await Promise.all([startMoto(), startDemoApi({ records: RECORDS, pageSize: 500 })]);
  // Dummy credentials for the SDK's default chain; moto accepts any. Never real ones here.
  for (const [name, value] of Object.entries(moto.env)) vi.stubEnv(name, value);
  vi.stubEnv('AWS_SESSION_TOKEN', undefined);
});
afterAll(async () => {
  await api?.close();
  await moto?.stop();
  vi.unstubAllEnvs();
});

describe('ingest into an s3:// lake', () => {
  it('writes the parts and the manifest to the bucket, and a retry rewrites the same keys', async () => {
    const admin = new S3Client({ endpoint: moto.endpoint, region: moto.region, forcePathStyle: true });
    await admin.send(new CreateBucketCommand({ Bucket: 'afluente-lake' }));
    admin.destroy();
    const lake = openLake('s3://afluente-lake/lake/', { s3: { endpoint: moto.endpoint } });
    const { pagination } = PAGINATIONS.offset(500);
    const config = await demoConfig(`${api.url}/offset/orders`, pagination, { allowPrivateNetwork: true });

    const { result } = await ingestAll(request(config, lake), lake);
    expect(result).toMatchObject({ kind: 'done', records: RECORDS });
    const manifest = await readManifest(lake);
    expect(manifest.files.length).toBe(4);
    expect((await readRecords(lake, manifest)).map((r) => r.id)).toEqual(
      Array.from({ length: RECORDS }, (_, i) => i + 1),
    );
    expect(lake.uri(manifest.files[0]?.key ?? '')).toBe(
      's3://afluente-lake/lake/raw/source=demo/dt=2026-01-31/run=7/part-00000.ndjson.gz',
    );

    await ingestAll(request(config, lake), lake);
    expect(await readManifest(lake)).toEqual(manifest);
    const keys: string[] = [];
    for await (const o of lake.list('raw/')) keys.push(o.key);
    expect(keys).toHaveLength(5);
  });
});
