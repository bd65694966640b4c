import {
  CreateBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileLake } from '../../lib/lake/file-lake.ts';
import { LakeNotFoundError, type Lake, type LakeObject } from '../../lib/lake/lake.ts';
import { openLake, parseS3Uri } from '../../lib/lake/open-lake.ts';
import { S3Lake } from '../../lib/lake/s3-lake.ts';
import { startMoto, type Moto } from '../support/moto.ts';

// One suite, run against both adapters: the file lake in a temp folder, and the S3 lake on moto, a local
// S3-compatible server. The S3 lake is opened the way the service opens it (openLake with an endpoint).

const MiB = 1024 * 1024;

let moto: Moto;
let admin: S3Client;

beforeAll(async () => {
  moto = await startMoto();
  // For the SDK's default credential chain, which the lakes use; moto takes any. Never real credentials here.
  for (const [name, value] of Object.entries(moto.env)) vi.stubEnv(name, value);
  vi.stubEnv('AWS_SESSION_TOKEN', undefined);
  admin = new S3Client({ endpoint: moto.endpoint, region: moto.region, forcePathStyle: true });
});
afterAll(async () => {
  admin?.destroy();
  await moto?.stop();
  vi.unstubAllEnvs();
});

/** A lake backend for the suite: a fresh, empty lake per test, and what a failed put could leave behind. */
interface Backend {
  name: string;
  fresh(): Promise<{ lake: Lake; expectedRoot: string }>;
  /** Temp files (file) or unfinished multipart uploads (S3) in the current lake. */
  leftovers(): Promise<string[]>;
}

function fileBackend(): Backend {
  let dir = '';
  afterAll(() => rm(dir, { recursive: true, force: true }));
  return {
    name: 'FileLake',
    async fresh() {
      if (dir) await rm(dir, { recursive: true, force: true });
      dir = await mkdtemp(join(tmpdir(), 'afluente-lake-'));
      return { lake: openLake(pathToFileURL(dir).href), expectedRoot: pathToFileURL(dir).href };
    },
    async leftovers() {
      const names = await readdir(dir, { recursive: true });
      return names.filter((name) => name.endsWith('.tmp'));
    },
  };
}

function s3Backend(): Backend {
  let bucket = '';
  return {
    name: 'S3Lake',
    async fresh() {
      bucket = `lake-${randomBytes(6).toString('hex')}`;
      await admin.send(new CreateBucketCommand({ Bucket: bucket }));
      // Opened the way the service opens it: the default credential chain and an endpoint override.
      const lake = openLake(`s3://${bucket}/lake/`, { s3: { endpoint: moto.endpoint } });
      return { lake, expectedRoot: `s3://${bucket}/lake` };
    },
    async leftovers() {
      const { Uploads } = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      return (Uploads ?? []).map((u) => u.Key ?? '?');
    },
  };
}

/** `size` random bytes made on the fly in 1 MiB chunks, hashed as they are made; errors at `failAt` if given. */
function generated(size: number, failAt?: number): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let sent = 0; sent < size;) {
      if (failAt !== undefined && sent >= failAt) throw new Error('the source failed half-way');
      const chunk = randomBytes(Math.min(MiB, size - sent));
      hash.update(chunk);
      sent += chunk.length;
      yield chunk;
    }
  }
  return { stream: Readable.from(chunks()), sha256: () => hash.digest('hex') };
}

const sha256 = (bytes: Buffer | string): string => createHash('sha256').update(bytes).digest('hex');

// Array.fromAsync is not in the es2024 lib the project compiles against.
async function listed(lake: Lake, prefix: string): Promise<LakeObject[]> {
  const objects: LakeObject[] = [];
  for await (const object of lake.list(prefix)) objects.push(object);
  return objects;
}

async function keysOf(lake: Lake, prefix: string): Promise<string[]> {
  return (await listed(lake, prefix)).map((o) => o.key);
}

describe.each([fileBackend(), s3Backend()])('$name', (backend) => {
  let lake: Lake;
  let expectedRoot: string;

  beforeEach(async () => {
    ({ lake, expectedRoot } = await backend.fresh());
  });

  it('normalizes its root and builds URIs under it', () => {
    expect(lake.root).toBe(expectedRoot);
    expect(lake.uri('raw/source=demo/part-00000.ndjson.gz')).toBe(
      `${expectedRoot}/raw/source=demo/part-00000.ndjson.gz`,
    );
  });

  it('round-trips a string and a Buffer, reporting size and sha256', async () => {
    const text = 'héllo, lake\n';
    const stored = await lake.put('raw/a.txt', text, { contentType: 'text/plain' });
    expect(stored).toEqual({
      key: 'raw/a.txt',
      uri: lake.uri('raw/a.txt'),
      bytes: Buffer.byteLength(text),
      sha256: sha256(text),
    });
    expect((await buffer(await lake.get('raw/a.txt'))).toString()).toBe(text);

    const bytes = randomBytes(1000);
    expect(await lake.put('raw/b.bin', bytes)).toMatchObject({ bytes: 1000, sha256: sha256(bytes) });
    expect(await lake.getBytes('raw/b.bin')).toEqual(bytes);

    expect(await lake.put('raw/empty', '')).toMatchObject({ bytes: 0, sha256: sha256('') });
    expect(await lake.getBytes('raw/empty')).toEqual(Buffer.alloc(0));
  });

  it(
    'streams a large object through (multipart on S3) without changing a byte',
    { timeout: 120_000 },
    async () => {
      const size = 20 * MiB + 123;
      const body = generated(size);
      const stored = await lake.put('raw/big.bin', body.stream);
      const expected = body.sha256();
      expect(stored).toMatchObject({ bytes: size, sha256: expected });

      const read = createHash('sha256');
      let readBytes = 0;
      for await (const chunk of await lake.get('raw/big.bin')) {
        read.update(chunk as Buffer);
        readBytes += (chunk as Buffer).length;
      }
      expect({ bytes: readBytes, sha256: read.digest('hex') }).toEqual({ bytes: size, sha256: expected });
      expect(await listed(lake, 'raw/')).toEqual([{ key: 'raw/big.bin', bytes: size }]);
    },
  );

  it('replaces an object on a second put to the same key', async () => {
    await lake.put('raw/k.json', '{"version":1,"padding":"longer than the second"}');
    const second = await lake.put('raw/k.json', '{"version":2}');
    expect(second.sha256).toBe(sha256('{"version":2}'));
    expect((await lake.getBytes('raw/k.json')).toString()).toBe('{"version":2}');
    expect(await listed(lake, '')).toEqual([{ key: 'raw/k.json', bytes: 13 }]);
    expect(await backend.leftovers()).toEqual([]);
  });

  it('tells whether an object exists; a "folder" is not an object', async () => {
    expect(await lake.exists('raw/x/y.txt')).toBe(false);
    await lake.put('raw/x/y.txt', 'y');
    expect(await lake.exists('raw/x/y.txt')).toBe(true);
    expect(await lake.exists('raw/x')).toBe(false);
    expect(await lake.exists('raw/x/y.txt/z')).toBe(false);
  });

  it('lists under a prefix that ends mid-name or at a slash, nested, in S3 key order', async () => {
    const keys = [
      'validated/source=demo/dt=2026-01-31/run=7/part-00000.ndjson.gz',
      'raw/source=demo/dt=2026-02-01/run=8/part-00000.ndjson.gz',
      'raw/source=demo/dt=2026-01-31/run=7/part-00001.ndjson.gz',
      'raw/source=demo/dt=2026-01-31/run=7/part-00000.ndjson.gz',
      'raw/source=demo/dt=2026-01-31/run=7/_manifest.json',
      'raw/source=demo-x/dt=2026-01-31/run=9/part-00000.ndjson.gz',
      'raw/source=demo2/dt=2026-01-31/run=9/part-00000.ndjson.gz',
      'raw/source=other/dt=2026-01-31/run=3/part-00000.ndjson.gz',
    ];
    for (const [i, key] of keys.entries()) await lake.put(key, 'x'.repeat(i + 1));

    // '-' sorts before '/', so demo-x comes before demo/…: S3's byte order, not a folder walk's.
    expect(await keysOf(lake, 'raw/source=demo')).toEqual([
      'raw/source=demo-x/dt=2026-01-31/run=9/part-00000.ndjson.gz',
      'raw/source=demo/dt=2026-01-31/run=7/_manifest.json',
      'raw/source=demo/dt=2026-01-31/run=7/part-00000.ndjson.gz',
      'raw/source=demo/dt=2026-01-31/run=7/part-00001.ndjson.gz',
      'raw/source=demo/dt=2026-02-01/run=8/part-00000.ndjson.gz',
      'raw/source=demo2/dt=2026-01-31/run=9/part-00000.ndjson.gz',
    ]);
    expect(await listed(lake, 'raw/source=demo/dt=2026-01-31/')).toEqual([
      { key: 'raw/source=demo/dt=2026-01-31/run=7/_manifest.json', bytes: 5 },
      { key: 'raw/source=demo/dt=2026-01-31/run=7/part-00000.ndjson.gz', bytes: 4 },
      { key: 'raw/source=demo/dt=2026-01-31/run=7/part-00001.ndjson.gz', bytes: 3 },
    ]);
    expect(await keysOf(lake, '')).toEqual([...keys].sort());
    expect(await keysOf(lake, 'curated/')).toEqual([]);
    expect(await keysOf(lake, 'raw/source=nope/')).toEqual([]);
  });

  it('deletes present and missing keys alike, in batches past 1000', async () => {
    await lake.put('a/1', '1');
    await lake.put('a/2', '2');
    await lake.put('b/3', '3');
    await lake.delete([]);
    // 2500 keys make three DeleteObjects batches on S3; the present ones sit in the first and the last.
    const missing = Array.from({ length: 2497 }, (_, i) => `gone/${i}`);
    await lake.delete(['a/1', ...missing, 'b/3']);
    expect(await keysOf(lake, '')).toEqual(['a/2']);
    await lake.delete(['a/2', 'a/2', 'never/was']);
    expect(await keysOf(lake, '')).toEqual([]);
    expect(await lake.exists('a/2')).toBe(false);
  });

  it('throws LakeNotFoundError naming the URI for a missing key', async () => {
    await lake.put('raw/dir/present', 'p');
    for (const key of ['raw/missing.json', 'raw/dir']) {
      const uri = lake.uri(key);
      await expect(lake.get(key)).rejects.toThrow(LakeNotFoundError);
      await expect(lake.get(key)).rejects.toMatchObject({ key, message: `lake object not found: ${uri}` });
      await expect(lake.getBytes(key)).rejects.toMatchObject({ name: 'LakeNotFoundError', key });
    }
  });

  it('rejects keys that are not relative paths of plain segments', async () => {
    for (const key of [
      '/etc/passwd',
      '../escape',
      'raw/../../escape',
      'raw//x',
      'raw\\x',
      '',
      'raw/',
      './x',
    ]) {
      await expect(lake.put(key, 'no'), key).rejects.toThrow(`unsafe lake key "${key}"`);
      await expect(lake.get(key), key).rejects.toThrow('unsafe lake key');
      await expect(lake.exists(key), key).rejects.toThrow('unsafe lake key');
      await expect(lake.delete(['ok', key]), key).rejects.toThrow('unsafe lake key');
    }
    await expect(listed(lake, '../')).rejects.toThrow('unsafe lake prefix');
    await expect(listed(lake, '/abs')).rejects.toThrow('unsafe lake prefix');
    expect(await keysOf(lake, '')).toEqual([]);
  });

  it('leaves nothing at the key when the body fails half-way, and keeps what was there', async () => {
    const size = 20 * MiB;
    const fresh = generated(size, size / 2);
    await expect(lake.put('raw/fails.bin', fresh.stream)).rejects.toThrow('the source failed half-way');
    expect(await lake.exists('raw/fails.bin')).toBe(false);

    await lake.put('raw/kept.txt', 'the old version');
    const over = generated(3 * MiB, MiB);
    await expect(lake.put('raw/kept.txt', over.stream)).rejects.toThrow('the source failed half-way');
    expect((await lake.getBytes('raw/kept.txt')).toString()).toBe('the old version');

    expect(await keysOf(lake, '')).toEqual(['raw/kept.txt']);
    expect(await backend.leftovers()).toEqual([]);
  });
});

describe('FileLake specifics', () => {
  let dir: string;
  beforeEach(async () => (dir = await mkdtemp(join(tmpdir(), 'afluente-lake-'))));
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('resolves file://./relative roots against the working directory', () => {
    expect(new FileLake({ root: 'file://./.data/lake' }).root).toBe(
      pathToFileURL(resolve('.data/lake')).href,
    );
    expect(new FileLake({ root: `${pathToFileURL(dir).href}/` }).root).toBe(pathToFileURL(dir).href);
  });

  it('writes nothing outside its root for an unsafe key', async () => {
    const lake = new FileLake({ root: pathToFileURL(join(dir, 'lake')).href });
    await expect(lake.put('../outside.txt', 'no')).rejects.toThrow('unsafe lake key');
    await expect(stat(join(dir, 'outside.txt'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('does not list its own temp files', async () => {
    const lake = new FileLake({ root: pathToFileURL(dir).href });
    await lake.put('raw/a', 'a');
    await writeFile(join(dir, 'raw', '.b.0123abcd.tmp'), 'half-written');
    expect(await keysOf(lake, '')).toEqual(['raw/a']);
  });
});

describe('S3Lake specifics', () => {
  const bucket = `lake-${randomBytes(6).toString('hex')}`;
  beforeAll(() => admin.send(new CreateBucketCommand({ Bucket: bucket })));

  it('keeps to its prefix: keys outside it are neither listed nor visible', async () => {
    const lake = new S3Lake({ root: `s3://${bucket}/lake`, client: admin });
    for (const key of ['lake2/x', 'outside/x', 'lake']) {
      await admin.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: 'other' }));
    }
    await lake.put('x', 'mine', { contentType: 'application/json' });
    expect(await listed(lake, '')).toEqual([{ key: 'x', bytes: 4 }]);
    expect(await lake.exists('lake2/x')).toBe(false);
    const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: 'lake/x' }));
    expect(head.ContentType).toBe('application/json');
  });

  it('uploads a large body in 8 MiB parts', { timeout: 60_000 }, async () => {
    const lake = new S3Lake({ root: `s3://${bucket}/parts`, client: admin });
    const body = generated(20 * MiB);
    await lake.put('big.bin', body.stream);
    const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: 'parts/big.bin' }));
    // A multipart object's ETag ends in -<number of parts>: 8 + 8 + 4 MiB.
    expect(head.ETag).toMatch(/-3"$/);
    expect(head.ContentLength).toBe(20 * MiB);
  });

  it('fails, rather than hangs, when S3 refuses a streamed put; a missing bucket is not a missing key', async () => {
    const lake = new S3Lake({ root: 's3://no-such-bucket/lake', client: admin });
    const body = generated(20 * MiB);
    await expect(lake.put('big.bin', body.stream)).rejects.toMatchObject({ name: 'NoSuchBucket' });
    expect(body.stream.destroyed).toBe(true);
    await expect(lake.get('x')).rejects.toMatchObject({ name: 'NoSuchBucket' });
  });

  it('lists past one page of ListObjectsV2', { timeout: 60_000 }, async () => {
    const lake = new S3Lake({ root: `s3://${bucket}/paged/`, client: admin });
    const keys = Array.from({ length: 1005 }, (_, i) => `k/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < keys.length; i += 100) {
      const batch = keys.slice(i, i + 100);
      await Promise.all(
        batch.map((key) =>
          admin.send(new PutObjectCommand({ Bucket: bucket, Key: `paged/${key}`, Body: key })),
        ),
      );
    }
    expect(await keysOf(lake, 'k/')).toEqual(keys);
  });
});

describe('openLake and parseS3Uri', () => {
  it('chooses the adapter by scheme', () => {
    expect(openLake('file://./.data/lake')).toBeInstanceOf(FileLake);
    expect(openLake('s3://bucket/prefix', { s3: { region: 'us-east-1' } })).toBeInstanceOf(S3Lake);
    expect(() => openLake('gs://bucket/x')).toThrow(
      'lake URI must start with file:// or s3:// (got "gs://bucket/x")',
    );
    expect(() => openLake('/abs/path')).toThrow('lake URI must start with file:// or s3://');
  });

  it('splits s3:// URIs into a bucket and a prefix that is empty or ends with a slash', () => {
    expect(parseS3Uri('s3://bucket')).toEqual({ bucket: 'bucket', prefix: '' });
    expect(parseS3Uri('s3://bucket/')).toEqual({ bucket: 'bucket', prefix: '' });
    expect(parseS3Uri('s3://bucket/a/b')).toEqual({ bucket: 'bucket', prefix: 'a/b/' });
    expect(parseS3Uri('s3://bucket/a/b/')).toEqual({ bucket: 'bucket', prefix: 'a/b/' });
    expect(() => parseS3Uri('s3:///a')).toThrow('s3://bucket/prefix');
    expect(() => parseS3Uri('s3://bucket/a/../b')).toThrow('unsafe');
    expect(new S3Lake({ root: 's3://bucket/a/b/', region: 'us-east-1' }).root).toBe('s3://bucket/a/b');
  });
});
