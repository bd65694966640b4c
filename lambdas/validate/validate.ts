import { createGunzip } from 'node:zlib';
import { groupManifestKey, groupPartKey, runPrefix } from '../../contract/lake-layout.ts';
import type { PartInfo } from '../../contract/ingest.ts';
import type {
  RejectedLine,
  ValidateGroupManifest,
  ValidateRequest,
  ValidateResult,
} from '../../contract/validate.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import { HandlerError } from '../common/errors.ts';
import { lineBatches } from '../common/ndjson-lines.ts';
import { PartWriter } from '../common/part-writer.ts';
import { DriftCounter } from './drift.ts';
import { compileTransform } from './transforms.ts';
import { errorKey, recordErrors, validatorFor } from './schema-validator.ts';

const TOP_ERRORS = 20;

/**
 * The validate Lambda's work for one group of raw parts: stream each part, transform and validate every record on
 * its own, and write the valid ones to validated parts and the others, with where they came from and every error,
 * to rejected parts; then the group's manifest, last. Counts reconcile exactly or the group fails. The manifest also
 * counts the fields no column names (drift.ts), over every record read.
 */
export async function runValidate(request: ValidateRequest, deps: { lake: Lake }): Promise<ValidateResult> {
  try {
    return await validateGroup(request, deps.lake);
  } catch (error) {
    if (error instanceof HandlerError) return { kind: 'failed', error: error.toFailure() };
    throw error;
  }
}

async function validateGroup(request: ValidateRequest, lake: Lake): Promise<ValidateResult> {
  const { source, dt, runId, group, limits } = request;
  const validPrefix = runPrefix('validated', source, dt, runId);
  const rejectedPrefix = runPrefix('rejected', source, dt, runId);
  const manifestKey = groupManifestKey(validPrefix, group);
  // A retried group un-commits itself first, so nobody trusts its old manifest while it rewrites its parts.
  await lake.delete([manifestKey]);

  const validate = validatorFor(request.schema);
  const transform = compileTransform(request.schema, request.transforms);
  const writer = (prefix: string) =>
    new PartWriter(lake, {
      prefix,
      startIndex: 0,
      key: (i) => groupPartKey(prefix, group, i),
      maxRecords: limits.partMaxRecords,
      maxBytes: limits.partMaxBytes,
    });
  const valid = writer(validPrefix);
  const rejected = writer(rejectedPrefix);
  const counts = new Map<string, number>();
  const drift = new DriftCounter(request.named);
  let read = 0;

  try {
    for (const part of request.parts) {
      read += await validatePart(lake, part, { validate, transform, valid, rejected, counts, drift });
    }
    const [validFiles, rejectedFiles] = [await valid.close(), await rejected.close()];
    const validCount = validFiles.reduce((n, f) => n + f.records, 0);
    const rejectedCount = rejectedFiles.reduce((n, f) => n + f.records, 0);
    if (read !== validCount + rejectedCount) {
      throw new Error(
        `validate group ${group} of run ${runId}: read ${read} records but wrote ${validCount} valid and ${rejectedCount} rejected`,
      );
    }
    const manifest: ValidateGroupManifest = {
      version: 1,
      group,
      inputs: request.parts.map((p) => p.key),
      read,
      valid: validCount,
      rejected: rejectedCount,
      validFiles,
      rejectedFiles,
      errors: [...counts.entries()]
        .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
        .slice(0, TOP_ERRORS)
        .map(([message, count]) => ({ message, count })),
      drift: drift.result(),
      basis: request.basis,
    };
    await lake.put(manifestKey, JSON.stringify(manifest, null, 2), { contentType: 'application/json' });
    return { kind: 'done', manifestKey, read, valid: validCount, rejected: rejectedCount };
  } catch (error) {
    const reason = error instanceof Error ? error : new Error(String(error));
    await Promise.all([valid.abort(reason), rejected.abort(reason)]);
    throw error;
  }
}

interface PartContext {
  validate: ReturnType<typeof validatorFor>;
  transform: (record: unknown) => unknown;
  valid: PartWriter;
  rejected: PartWriter;
  counts: Map<string, number>;
  drift: DriftCounter;
}

/** Validates one raw part; returns how many records it read. A corrupt part fails with its key and line. */
async function validatePart(lake: Lake, part: PartInfo, ctx: PartContext): Promise<number> {
  // Large output chunks: a part inflates in a few hundred callbacks instead of one per 16 KiB.
  const gunzip = (await lake.get(part.key)).pipe(createGunzip({ chunkSize: 256 * 1024 }));
  let line = 0;
  try {
    for await (const batch of lineBatches(gunzip)) {
      const ok: string[] = [];
      const bad: string[] = [];
      for (const text of batch) {
        line += 1;
        let record: unknown;
        try {
          record = JSON.parse(text);
        } catch (error) {
          throw corrupt(
            `raw part ${part.key} line ${line} is not a JSON document (${(error as Error).message})`,
            part.key,
          );
        }
        ctx.drift.count(record);
        record = ctx.transform(record);
        if (ctx.validate(record)) {
          ok.push(JSON.stringify(record));
          continue;
        }
        const errors = recordErrors(ctx.validate.errors);
        for (const e of errors) ctx.counts.set(errorKey(e), (ctx.counts.get(errorKey(e)) ?? 0) + 1);
        // The original record, as the source sent it: the transforms ran on a copy parsed for validation.
        const rejectedLine: RejectedLine = {
          record: JSON.parse(text) as unknown,
          source: { file: part.key, line },
          errors,
        };
        bad.push(JSON.stringify(rejectedLine));
      }
      await ctx.valid.write(ok);
      await ctx.rejected.write(bad);
    }
  } catch (error) {
    if (error instanceof HandlerError) throw error;
    const code = (error as { code?: string }).code ?? '';
    if (code.startsWith('Z_')) {
      throw corrupt(
        `raw part ${part.key} is not valid gzip after line ${line} (${(error as Error).message})`,
        part.key,
      );
    }
    throw error;
  }
  if (line !== part.records) {
    throw corrupt(
      `raw part ${part.key} holds ${line} records but the raw manifest lists ${part.records}`,
      part.key,
    );
  }
  return line;
}

function corrupt(message: string, key: string): HandlerError {
  return new HandlerError({ reason: 'corrupt_raw_part', message, retryable: false, url: key });
}
