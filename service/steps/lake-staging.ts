// Staging a local step through a folder: Spark in local mode reads and writes file:// paths, so a step on an
// s3:// lake gets its inputs copied into a temp folder first and its outputs copied back after.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import pLimit from 'p-limit';
import type { Lake } from '../../lib/lake/lake.ts';
import { assertSafeKey } from '../../lib/lake/support.ts';

const CONCURRENCY = 4;

/** Files Spark's Hadoop writers leave next to the data: checksums and the job's success marker. */
function isSparkSideFile(name: string): boolean {
  return name.endsWith('.crc') || name === '_SUCCESS';
}

function pathOf(dir: string, key: string): string {
  assertSafeKey(key.replace(/\/+$/, ''));
  return join(dir, ...key.split('/').filter(Boolean));
}

/**
 * Copies each key into `<dir>/<key>`. A key that ends with `/` is a prefix: everything under it is copied.
 * Resolves with the number of files copied.
 */
export async function stageIn(lake: Lake, keys: string[], dir: string, signal: AbortSignal): Promise<number> {
  const files: string[] = [];
  for (const key of keys) {
    if (!key.endsWith('/')) files.push(key);
    else for await (const object of lake.list(key)) files.push(object.key);
  }
  const limit = pLimit(CONCURRENCY);
  await Promise.all(
    [...new Set(files)].map((key) =>
      limit(async () => {
        signal.throwIfAborted();
        const path = pathOf(dir, key);
        await mkdir(dirname(path), { recursive: true });
        await pipeline(await lake.get(key), createWriteStream(path), { signal });
      }),
    ),
  );
  return files.length;
}

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && !isSparkSideFile(e.name))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/**
 * Copies what a step wrote under `<dir>/<output>` back to the lake under the same keys, output by output in the
 * order given (so a manifest listed last lands last), skipping Spark's `.crc` and `_SUCCESS` files. An output
 * is a folder (a prefix) or a single key; one the step did not write is skipped. A folder ends up holding
 * exactly what the step wrote there: objects an earlier attempt left under it (another engine names its files
 * its own way) are deleted, as Spark's overwrite of the folder would, so a Redshift COPY of the prefix reads this
 * attempt's files only. Resolves with the keys written.
 */
export async function stageOut(
  lake: Lake,
  outputs: string[],
  dir: string,
  signal: AbortSignal,
): Promise<string[]> {
  const written: string[] = [];
  const limit = pLimit(CONCURRENCY);
  for (const output of outputs) {
    const path = pathOf(dir, output);
    const info = await stat(path).catch(() => undefined);
    if (!info) continue;
    const files = info.isDirectory() ? await filesUnder(path) : [path];
    const keys = await Promise.all(
      files.map((file) =>
        limit(async () => {
          signal.throwIfAborted();
          const key = relative(dir, file).split(sep).join('/');
          await lake.put(key, createReadStream(file));
          return key;
        }),
      ),
    );
    written.push(...keys);
    if (info.isDirectory()) await deleteOthers(lake, `${output.replace(/\/+$/, '')}/`, new Set(keys));
  }
  return written;
}

async function deleteOthers(lake: Lake, prefix: string, keep: ReadonlySet<string>): Promise<void> {
  const stale: string[] = [];
  for await (const object of lake.list(prefix)) if (!keep.has(object.key)) stale.push(object.key);
  if (stale.length > 0) await lake.delete(stale);
}
