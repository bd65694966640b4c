import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { IngestManifest, PartInfo } from '../../contract/ingest.ts';
import type { RejectedLine, ValidateGroupManifest, ValidateRequest } from '../../contract/validate.ts';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import { runValidate } from '../../lambdas/validate/validate.ts';
import { loadSources } from '../../service/config/sources.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import {
  demoConfig,
  DT,
  ingestAll,
  limits,
  PAGINATIONS,
  readManifest,
  request,
  tempLake,
} from '../support/ingest.ts';

// The validate Lambda's function, run directly on raw parts that the real ingest wrote from the demo API, with
// the demo API's bad-record faults providing the bad data.
const RECORDS = 1_000;
const EVERY = 7;
let api: DemoApi;
let lake: Lake;
let raw: IngestManifest;
let schema: Record<string, unknown>;

beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS, pageSize: 250, faults: { badRecords: { every: EVERY } } });
  lake = await tempLake();
  const config = await demoConfig(`${api.url}/orders`, PAGINATIONS.page(250).pagination, {
    allowPrivateNetwork: true,
  });
  await ingestAll(request(config, lake, { limits: limits({ partMaxRecords: 300 }) }), lake);
  raw = await readManifest(lake);
  schema = JSON.parse(
    (await import('node:fs')).readFileSync('config/schemas/orders.schema.json', 'utf8'),
  ) as Record<string, unknown>;
});
afterAll(async () => api.close());

function validateRequest(parts: PartInfo[], overrides: Partial<ValidateRequest> = {}): ValidateRequest {
  return {
    invocationId: 'test',
    runId: 7,
    jobId: 2,
    source: 'demo',
    dt: DT,
    lakeRoot: lake.root,
    group: 0,
    parts,
    schema,
    transforms: { trimStrings: false, timestampsToUtc: true, coerceNumbers: false },
    limits: { partMaxRecords: 400, partMaxBytes: 64 * 1024 * 1024 },
    ...overrides,
  };
}

async function lines<T>(keys: string[]): Promise<T[]> {
  const out: T[] = [];
  for (const key of keys) {
    for (const line of gunzipSync(await lake.getBytes(key))
      .toString('utf8')
      .split('\n'))
      if (line) out.push(JSON.parse(line) as T);
  }
  return out;
}

describe('validate', () => {
  it('splits records into valid and rejected parts that reconcile exactly, each reject with its source line and every error', async () => {
    const result = await runValidate(validateRequest(raw.files), { lake });
    const bad = Math.floor(RECORDS / EVERY);
    expect(result).toMatchObject({ kind: 'done', read: RECORDS, valid: RECORDS - bad, rejected: bad });
    if (result.kind !== 'done') throw new Error('unreachable');
    const group = JSON.parse(
      (await lake.getBytes(result.manifestKey)).toString('utf8'),
    ) as ValidateGroupManifest;
    expect(group.read).toBe(group.valid + group.rejected);
    expect(group.validFiles.map((f) => f.key)).toEqual([
      'validated/source=demo/dt=2026-01-31/run=7/part-00000-00000.ndjson.gz',
      'validated/source=demo/dt=2026-01-31/run=7/part-00000-00001.ndjson.gz',
      'validated/source=demo/dt=2026-01-31/run=7/part-00000-00002.ndjson.gz',
    ]);

    const rejected = await lines<RejectedLine>(group.rejectedFiles.map((f) => f.key));
    expect(rejected).toHaveLength(bad);
    expect(rejected.map((r) => (r.record as { id: unknown }).id ?? null).slice(0, 3)).toEqual([7, 14, null]);
    expect(rejected[0]).toEqual({
      record: expect.not.objectContaining({ status: expect.anything() }),
      source: { file: 'raw/source=demo/dt=2026-01-31/run=7/part-00000.ndjson.gz', line: 7 },
      errors: [{ path: '/status', message: 'is required' }],
    });
    expect(rejected[1]?.errors).toEqual([{ path: '/total', message: 'must be number' }]);
    expect(rejected[2]?.errors).toEqual([{ path: '/id', message: 'must be integer' }]);
    // The line numbers point into the raw part the record came from.
    const third = rejected[2]!;
    const rawLine = gunzipSync(await lake.getBytes(third.source.file))
      .toString('utf8')
      .split('\n')[third.source.line - 1];
    expect(JSON.parse(rawLine ?? '')).toEqual(third.record);
    // Most frequent first: the three kinds take turns, so the first kind occurs once more than the others.
    expect(group.errors).toEqual([
      { message: '/status is required', count: 48 },
      { message: '/id must be integer', count: 47 },
      { message: '/total must be number', count: 47 },
    ]);

    const valid = await lines<{ id: number }>(group.validFiles.map((f) => f.key));
    expect(valid).toHaveLength(RECORDS - bad);
    expect(valid.every((r) => r.id % EVERY !== 0)).toBe(true);
  });

  it('rewrites the same keys when a group is retried', async () => {
    const first = await runValidate(validateRequest(raw.files), { lake });
    const second = await runValidate(validateRequest(raw.files), { lake });
    expect(second).toEqual(first);
  });

  it('fails on a raw part that is not gzip, naming the key, and leaves the raw part in place', async () => {
    const key = 'raw/source=demo/dt=2026-01-31/run=8/part-00000.ndjson.gz';
    await lake.put(key, 'this is not gzip');
    const result = await runValidate(
      validateRequest([{ key, records: 1, bytes: 16, sha256: '' }], { runId: 8 }),
      { lake },
    );
    expect(result).toMatchObject({ kind: 'failed', error: { reason: 'corrupt_raw_part', retryable: false } });
    if (result.kind !== 'failed') throw new Error('unreachable');
    expect(result.error.message).toMatch(
      new RegExp(`^raw part ${key.replaceAll('.', '\\.')} is not valid gzip after line 0`),
    );
    expect(await lake.exists(key)).toBe(true);
  });

  it('fails on a line that is not JSON, naming the key and the line', async () => {
    const key = 'raw/source=demo/dt=2026-01-31/run=9/part-00000.ndjson.gz';
    await lake.put(key, gzipSync('{"id":1}\n{"id":2}\n{"id": 3,\n'));
    const result = await runValidate(
      validateRequest([{ key, records: 3, bytes: 1, sha256: '' }], { runId: 9 }),
      { lake },
    );
    expect(result).toMatchObject({ kind: 'failed', error: { reason: 'corrupt_raw_part' } });
    if (result.kind !== 'failed') throw new Error('unreachable');
    expect(result.error.message).toMatch(
      new RegExp(`^raw part ${key.replaceAll('.', '\\.')} line 3 is not a JSON document`),
    );
  });
});

describe('validate with the schema derived from tables (a sources file without `schema`)', () => {
  async function derivedSchema(): Promise<Record<string, unknown>> {
    const shipped = await readFile('config/sources.yaml', 'utf8');
    const file = join(tmpdir(), `afluente-derived-${process.pid}.yaml`);
    await writeFile(file, shipped.replace(/^ {4}schema: .*\n/m, ''));
    const demo = (await loadSources(file)).sources.get('demo');
    if (demo?.schemaPath !== undefined) throw new Error('the demo source still names a schema file');
    return demo?.schemaDocument ?? {};
  }

  async function counts(files: PartInfo[], records: Record<string, unknown>, runId: number) {
    const r = await runValidate(validateRequest(files, { schema: records, runId }), { lake });
    return r.kind === 'done' ? { valid: r.valid, rejected: r.rejected } : r;
  }

  it('rejects what the file rejects for a wrong type or a null key, and lets a missing non-key field through', async () => {
    const derived = await derivedSchema();
    const result = await runValidate(validateRequest(raw.files, { schema: derived, runId: 11 }), { lake });
    // The faults take turns: missing_field (status dropped), wrong_type (total "… EUR"), null_key (id null).
    // The tables cannot say that status is required (only key columns are), so those 48 records pass; the
    // handwritten file rejects them too.
    expect(result).toMatchObject({ kind: 'done', read: RECORDS, valid: RECORDS - 94, rejected: 94 });
    if (result.kind !== 'done') throw new Error('unreachable');
    const group = JSON.parse(
      (await lake.getBytes(result.manifestKey)).toString('utf8'),
    ) as ValidateGroupManifest;
    expect(group.errors).toEqual([
      { message: '/id must be integer', count: 47 },
      { message: '/total must be number,null', count: 47 },
    ]);
    expect(await counts(raw.files, schema, 12)).toEqual({ valid: RECORDS - 142, rejected: 142 });
  });

  it('gives the same counts as the schema file when the faults are ones the tables can say', async () => {
    api.setFaults({ badRecords: { every: EVERY, kinds: ['wrong_type', 'null_key'] } });
    try {
      const config = await demoConfig(`${api.url}/orders`, PAGINATIONS.page(250).pagination, {
        allowPrivateNetwork: true,
      });
      await ingestAll(request(config, lake, { runId: 13, limits: limits({ partMaxRecords: 300 }) }), lake);
      const files = (await readManifest(lake, 13)).files;
      const bad = Math.floor(RECORDS / EVERY);
      const derived = await derivedSchema();
      expect(await counts(files, schema, 14)).toEqual({ valid: RECORDS - bad, rejected: bad });
      expect(await counts(files, derived, 15)).toEqual({ valid: RECORDS - bad, rejected: bad });
    } finally {
      api.setFaults({ badRecords: { every: EVERY } });
    }
  });
});
