import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Lake } from '../../lib/lake/lake.ts';
import { openLake } from '../../lib/lake/open-lake.ts';
import { stageOut } from '../../service/steps/lake-staging.ts';
import { startMoto, type Moto } from '../support/moto.ts';

// Staging a local step's outputs back to an s3:// lake (moto's S3 over HTTP). A retry may run on the other
// engine, which names its Parquet files its own way: the table's folder must end up holding exactly this
// attempt's files, or a Redshift COPY of the prefix would read the earlier attempt's rows too.

let moto: Moto;
let s3: S3Client;
let dir: string;
beforeAll(async () => {
  moto = await startMoto();
  // Dummy credentials for the SDK's default chain; moto accepts any. Never real ones here.
  for (const [name, value] of Object.entries(moto.env)) vi.stubEnv(name, value);
  vi.stubEnv('AWS_SESSION_TOKEN', undefined);
  s3 = new S3Client({ endpoint: moto.endpoint, region: moto.region, forcePathStyle: true });
  dir = await mkdtemp(join(tmpdir(), 'afluente-stage-out-'));
});
afterAll(async () => {
  s3?.destroy();
  await moto?.stop();
  vi.unstubAllEnvs();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function keys(lake: Lake, prefix: string): Promise<string[]> {
  const found: string[] = [];
  for await (const object of lake.list(prefix)) found.push(object.key);
  return found.sort();
}

async function written(key: string, text: string): Promise<void> {
  const path = join(dir, ...key.split('/'));
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, text);
}

describe('stageOut', () => {
  it('leaves a folder output holding exactly what the step wrote, and nothing else is touched', async () => {
    const bucket = `lake-${randomBytes(6).toString('hex')}`;
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    const lake = openLake(`s3://${bucket}/lake`, { s3: { endpoint: moto.endpoint } });
    const folder = 'curated/orders/dt=2026-11-23/run=7/';
    // What an earlier attempt on Spark left: its own file name, and the run's older manifest.
    await lake.put(`${folder}part-00000-1f2e-c000.snappy.parquet`, 'spark attempt');
    await lake.put('curated/orders/dt=2026-11-23/run=8/part-00000.snappy.parquet', 'another run');
    await lake.put('curated/_runs/source=demo/dt=2026-11-23/run=7/_manifest.json', 'old manifest');
    await written(`${folder}part-00000.snappy.parquet`, 'embedded attempt');
    await written(`${folder}part-00001.snappy.parquet`, 'embedded attempt 2');
    await written('curated/_runs/source=demo/dt=2026-11-23/run=7/_manifest.json', 'new manifest');

    const out = await stageOut(
      lake,
      [
        folder,
        'curated/order_items/dt=2026-11-23/run=7/',
        'curated/_runs/source=demo/dt=2026-11-23/run=7/_manifest.json',
      ],
      dir,
      new AbortController().signal,
    );

    expect(out.sort()).toEqual([
      'curated/_runs/source=demo/dt=2026-11-23/run=7/_manifest.json',
      `${folder}part-00000.snappy.parquet`,
      `${folder}part-00001.snappy.parquet`,
    ]);
    expect(await keys(lake, folder)).toEqual([
      `${folder}part-00000.snappy.parquet`,
      `${folder}part-00001.snappy.parquet`,
    ]);
    expect((await lake.getBytes(`${folder}part-00000.snappy.parquet`)).toString()).toBe('embedded attempt');
    expect(await keys(lake, 'curated/orders/dt=2026-11-23/run=8/')).toEqual([
      'curated/orders/dt=2026-11-23/run=8/part-00000.snappy.parquet',
    ]);
    expect(
      (await lake.getBytes('curated/_runs/source=demo/dt=2026-11-23/run=7/_manifest.json')).toString(),
    ).toBe('new manifest');
  }, 60_000);
});
