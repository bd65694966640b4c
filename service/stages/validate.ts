import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import type { IngestManifest, PartInfo } from '../../contract/ingest.ts';
import { groupManifestKey, manifestKey, runDate, runPrefix } from '../../contract/lake-layout.ts';
import type { ErrorCount, ValidateGroupManifest, ValidateManifest } from '../../contract/validate.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import type { Config } from '../config/env.ts';
import type { LoadedSource } from '../config/sources.ts';
import type { InvocationEvents } from '../invocation/events.ts';
import { invokeAndWait } from '../invocation/invoke-and-wait.ts';
import { driftFieldText, driftMessage, namedPaths, sumDrift } from './drift.ts';
import { readCommitted, readJson } from './lake-json.ts';
import { sourceOf } from './source-of.ts';
import { stageInput } from './stage-input.ts';
import type { LambdaInvoker } from '../invocation/invoker.ts';
import {
  NonRetryableError,
  StageError,
  type StageHandler,
  type StageOutcome,
} from '../orchestration/stage-handler.ts';

export interface ValidateStageDeps {
  lake: Lake;
  invoker: LambdaInvoker;
  events: InvocationEvents;
  sources: ReadonlyMap<string, LoadedSource>;
  /** How many groups are validated at once. */
  concurrency: number;
  /** How many raw parts one invocation validates; with the part size, this keeps an invocation short. */
  partsPerGroup: number;
  parts: Pick<Config['ingest'], 'partMaxRecords' | 'partMaxBytes'>;
  /** How long one group's result may take: the function's time limit plus a margin. */
  resultTimeoutMs: number;
}

const TOP = 3;

/**
 * The validate stage as the worker runs it: the run's raw parts are split into groups, and the validate Lambda
 * runs on the groups in parallel, with bounded concurrency. A group that committed in an earlier attempt is
 * reused (if validated on the same schema, transforms and columns), so a retry re-runs only the groups that
 * failed. When every group has committed, the stage writes the validated and rejected manifests (its commit),
 * checks the quality gate, and sums the groups' drift: shown on the job's metrics, and with `onDrift: fail` a
 * failed run.
 */
export function validateStage(deps: ValidateStageDeps): StageHandler<'validate'> {
  return async (ctx) => {
    const source = sourceOf(deps.sources, ctx.run);
    const dt = runDate(ctx.run.createdAt);
    // The run's own raw data, or on a replay the raw data of the run it replays.
    const input = stageInput(ctx.run, ctx.job);
    const rawKey = manifestKey(runPrefix('raw', source.name, input.dt, input.run));
    const raw = await readCommitted<IngestManifest>(
      deps.lake,
      rawKey,
      input.run,
      'no_raw_manifest',
      'raw data',
    );
    const validPrefix = runPrefix('validated', source.name, dt, ctx.run.id);
    const rejectedPrefix = runPrefix('rejected', source.name, dt, ctx.run.id);
    const groups = chunk(raw.files, deps.partsPerGroup);
    const named = namedPaths(source);
    const basis = createHash('sha256')
      .update(JSON.stringify([source.schemaDocument, source.transforms, named]))
      .digest('hex');

    const limit = pLimit(deps.concurrency);
    let invocations = 0;
    const settled = await Promise.allSettled(
      groups.map((parts, group) =>
        limit(async (): Promise<ValidateGroupManifest> => {
          ctx.signal.throwIfAborted();
          const committed = await committedGroup(
            deps.lake,
            groupManifestKey(validPrefix, group),
            parts,
            basis,
          );
          if (committed) return committed;
          invocations += 1;
          const result = await invokeAndWait(
            deps,
            ctx.signal,
            'validate',
            {
              invocationId: `job-${ctx.job.id}.${ctx.job.attempt}.g${group}`,
              runId: ctx.run.id,
              jobId: ctx.job.id,
              source: source.name,
              dt,
              lakeRoot: deps.lake.root,
              group,
              parts,
              schema: source.schemaDocument,
              named,
              basis,
              transforms: source.transforms,
              limits: deps.parts,
            },
            deps.resultTimeoutMs,
          );
          if (result.kind === 'failed') {
            const { reason, message, retryable } = result.error;
            const text = `validate group ${group}: ${message}`;
            throw retryable ? new StageError(reason, text) : new NonRetryableError(reason, text);
          }
          return readJson<ValidateGroupManifest>(deps.lake, result.manifestKey);
        }),
      ),
    );
    // Every group has had its chance to commit before a failure is reported, so a retry redoes only the failed ones.
    const failure = settled.find((s) => s.status === 'rejected');
    if (failure) throw failure.reason;
    const manifests = settled.map((s) => (s as PromiseFulfilledResult<ValidateGroupManifest>).value);

    const read = sum(manifests, (m) => m.read);
    const valid = sum(manifests, (m) => m.valid);
    const rejected = sum(manifests, (m) => m.rejected);
    if (read !== raw.records || read !== valid + rejected) {
      throw new Error(
        `validate of run ${ctx.run.id}: raw holds ${raw.records} records, groups read ${read}, valid ${valid} + rejected ${rejected}`,
      );
    }
    const errors = mergeErrors(manifests.map((m) => m.errors));
    const drift = sumDrift(manifests);
    const commit = async (
      layer: 'validated' | 'rejected',
      prefix: string,
      files: PartInfo[],
    ): Promise<void> => {
      const manifest: ValidateManifest = {
        version: 1,
        stage: 'validate',
        layer,
        source: source.name,
        runId: ctx.run.id,
        dt,
        files,
        records: sum(files, (f) => f.records),
        read,
        valid,
        rejected,
        errors,
      };
      await deps.lake.put(manifestKey(prefix), JSON.stringify(manifest, null, 2), {
        contentType: 'application/json',
      });
    };
    const validFiles = manifests.flatMap((m) => m.validFiles);
    const rejectedFiles = manifests.flatMap((m) => m.rejectedFiles);
    // Rejected first: the validated manifest is what the next stage trusts, so it is written last.
    await commit('rejected', rejectedPrefix, rejectedFiles);
    await commit('validated', validPrefix, validFiles);

    const outcome: StageOutcome = {
      counts: { valid, rejected },
      files: [
        ...validFiles.map((f) => ({
          uri: deps.lake.uri(f.key),
          layer: 'validated' as const,
          records: f.records,
          bytes: f.bytes,
          sha256: f.sha256,
        })),
        ...rejectedFiles.map((f) => ({
          uri: deps.lake.uri(f.key),
          layer: 'rejected' as const,
          records: f.records,
          bytes: f.bytes,
          sha256: f.sha256,
        })),
      ],
      metrics: {
        read,
        groups: groups.length,
        invocations,
        topErrors: errors.slice(0, TOP),
        rejectRatio: read === 0 ? 0 : rejected / read,
        drift,
      },
    };
    const ratio = read === 0 ? 0 : rejected / read;
    const max = source.quality.maxRejectRatio;
    if (ratio > max) {
      const top = errors
        .slice(0, TOP)
        .map((e) => `"${e.message}" (${e.count})`)
        .join(', ');
      throw new NonRetryableError(
        'quality_gate',
        `rejected ${rejected} of ${read} records (${percent(ratio)}), above quality.maxRejectRatio ${percent(max)}; top errors: ${top}`,
        {},
        outcome,
      );
    }
    if (drift.fields.length > 0) {
      ctx.logger.warn(
        { runId: ctx.run.id, source: source.name, drift: drift.fields.slice(0, TOP) },
        drift.fields
          .slice(0, TOP)
          .map((f) => driftFieldText(f, drift.records))
          .join('; '),
      );
      // After the stage's commit, as the quality gate: the run stops here, before anything is loaded.
      if (source.onDrift === 'fail')
        throw new NonRetryableError('schema_drift', driftMessage(drift), {}, outcome);
    }
    return outcome;
  };
}

/** A group manifest from an earlier attempt, if it covers exactly these parts on the same basis. */
async function committedGroup(
  lake: Lake,
  key: string,
  parts: PartInfo[],
  basis: string,
): Promise<ValidateGroupManifest | undefined> {
  if (!(await lake.exists(key))) return undefined;
  const manifest = await readJson<ValidateGroupManifest>(lake, key);
  const same =
    manifest.basis === basis &&
    manifest.inputs.length === parts.length &&
    manifest.inputs.every((k, i) => k === parts[i]?.key);
  return same ? manifest : undefined;
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function sum<T>(items: T[], pick: (item: T) => number): number {
  return items.reduce((n, item) => n + pick(item), 0);
}

function mergeErrors(lists: ErrorCount[][]): ErrorCount[] {
  const counts = new Map<string, number>();
  for (const list of lists)
    for (const e of list) counts.set(e.message, (counts.get(e.message) ?? 0) + e.count);
  return [...counts.entries()]
    .map(([message, count]) => ({ message, count }))
    .sort((a, b) => b.count - a.count || (a.message < b.message ? -1 : 1));
}

function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(2).replace(/\.?0+$/, '')}%`;
}
