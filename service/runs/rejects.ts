import { createGunzip } from 'node:zlib';
import { manifestKey, runDate, runPrefix } from '../../contract/lake-layout.ts';
import type { RejectedLine, ValidateManifest } from '../../contract/validate.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import { lineBatches } from '../../lambdas/common/ndjson-lines.ts';
import { BadRequestError, ConflictError } from '../errors.ts';
import type { RunFields } from './run-reads.ts';

export interface RejectsPage {
  items: RejectedLine[];
  nextCursor: string | null;
  total: number;
}

interface Position {
  file: number;
  line: number;
}

/**
 * Pages through a run's rejected records, straight from the rejected parts its validate stage committed. The
 * cursor is a position (part, line), so a page costs reading one part up to that line, never the whole run.
 */
export async function readRejects(
  lake: Lake,
  run: Pick<RunFields, 'id' | 'source' | 'createdAt'>,
  limit: number,
  cursor?: string,
): Promise<RejectsPage> {
  const key = manifestKey(runPrefix('rejected', run.source, runDate(new Date(run.createdAt)), run.id));
  if (!(await lake.exists(key))) {
    throw new ConflictError(`run ${run.id} has no rejects yet: its validate stage has not committed`);
  }
  const manifest = JSON.parse((await lake.getBytes(key)).toString('utf8')) as ValidateManifest;
  const start = cursor === undefined ? { file: 0, line: 0 } : decode(cursor);
  const items: RejectedLine[] = [];
  let file = start.file;
  let skip = start.line;
  while (file < manifest.files.length) {
    const part = manifest.files[file];
    if (!part) break;
    let line = 0;
    const stream = (await lake.get(part.key)).pipe(createGunzip());
    try {
      read: for await (const batch of lineBatches(stream)) {
        for (const text of batch) {
          line += 1;
          if (line <= skip) continue;
          items.push(JSON.parse(text) as RejectedLine);
          if (items.length === limit) break read;
        }
      }
    } finally {
      stream.destroy();
    }
    if (items.length === limit && line < part.records)
      return { items, nextCursor: encode({ file, line }), total: manifest.records };
    file += 1;
    skip = 0;
    if (items.length === limit) break;
  }
  const more = file < manifest.files.length;
  return { items, nextCursor: more ? encode({ file, line: 0 }) : null, total: manifest.records };
}

function encode(position: Position): string {
  return Buffer.from(JSON.stringify([position.file, position.line])).toString('base64url');
}

function decode(cursor: string): Position {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      value.every((n) => Number.isInteger(n) && (n as number) >= 0)
    ) {
      return { file: value[0] as number, line: value[1] as number };
    }
  } catch {
    // fall through
  }
  throw new BadRequestError('querystring.cursor is not a cursor returned by GET /runs/:id/rejects');
}
