import { curatedPrefix, manifestKey, runDate, runPrefix } from '../../contract/lake-layout.ts';
import { parentTable } from '../../contract/source-config.ts';
import {
  curatedManifestKey,
  stepSpecKey,
  type TransformManifest,
  type TransformSpec,
} from '../../contract/steps.ts';
import type { ValidateManifest } from '../../contract/validate.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import { warehouseSchemaOf, type LoadedSource } from '../config/sources.ts';
import type { StageHandler, StageOutcome } from '../orchestration/stage-handler.ts';
import { stepName } from '../steps/step-runner.ts';
import { readCommitted, readJson } from './lake-json.ts';
import { sourceOf } from './source-of.ts';
import { stageInput } from './stage-input.ts';
import { decideEngine, reusedStep, runEngineStep, type EngineStepDeps } from './engine-step.ts';
import { bytesOf } from './validated-bytes.ts';

export interface TransformStageDeps extends EngineStepDeps {
  lake: Lake;
  sources: ReadonlyMap<string, LoadedSource>;
  /** The service's warehouse schema, for sources without their own; recorded in the load job's params. */
  warehouseSchema: string;
}

/**
 * The transform stage: the split_tables step turns the run's validated parts into one Parquet table per entry of
 * the source's `tables`, on the engine {@link decideEngine} picks (Spark, or the embedded DuckDB engine). A
 * transform that committed in an earlier attempt (its manifest covers every validated record) is reused. The
 * outcome carries the load job's params, so the load job is created with its files and params before its step
 * starts.
 */
export function transformStage(deps: TransformStageDeps): StageHandler<'transform'> {
  return async (ctx) => {
    const source = sourceOf(deps.sources, ctx.run);
    const dt = runDate(ctx.run.createdAt);
    // The run's own validated data, or on a replay the validated data of the run it replays.
    const input = stageInput(ctx.run, ctx.job);
    const validatedKey = manifestKey(runPrefix('validated', source.name, input.dt, input.run));
    const validated = await readCommitted<ValidateManifest>(
      deps.lake,
      validatedKey,
      input.run,
      'no_validated_manifest',
      'validated data',
    );
    const manifestAt = curatedManifestKey(source.name, dt, ctx.run.id);

    let manifest = await committedTransform(deps.lake, manifestAt, validated.records);
    const reused = manifest !== undefined;
    let step = reused ? reusedStep(ctx.job) : undefined;
    if (!manifest) {
      const spec: TransformSpec = {
        version: 1,
        job: 'split_tables',
        runId: ctx.run.id,
        jobId: ctx.job.id,
        source: source.name,
        dt,
        lakeRoot: deps.lake.root,
        inputs: validated.files.map((f) => f.key),
        records: validated.records,
        tables: source.tables,
        cursorField: source.incremental?.cursorField ?? null,
      };
      const specKey = stepSpecKey(source.name, dt, ctx.run.id, 'split_tables');
      await deps.lake.put(specKey, JSON.stringify(spec, null, 2), { contentType: 'application/json' });
      const choice = await decideEngine(deps, ctx, source, bytesOf(validated.files));
      step = await runEngineStep(deps, ctx, choice, {
        job: 'split_tables',
        name: stepName(ctx.run.id, ctx.job.id, 'split_tables'),
        specKey,
        inputs: [specKey, ...spec.inputs],
        outputs: [
          ...Object.keys(source.tables).map((table) => curatedPrefix(table, dt, ctx.run.id)),
          manifestAt,
        ],
      });
      manifest = await readJson<TransformManifest>(deps.lake, manifestAt);
    }

    const [parent] = parentTable(source);
    const parentRows = manifest.tables[parent]?.rows ?? 0;
    if (manifest.read !== validated.records || manifest.read !== parentRows + manifest.duplicates) {
      throw new Error(
        `transform of run ${ctx.run.id} does not reconcile: validated ${validated.records} records, the step read ` +
          `${manifest.read}, wrote ${parentRows} ${parent} rows and dropped ${manifest.duplicates} duplicates`,
      );
    }

    const outcome: StageOutcome = {
      counts: { duplicates: manifest.duplicates },
      files: Object.entries(manifest.tables).flatMap(([table, t]) =>
        t.files.map((f) => ({
          uri: deps.lake.uri(f.key),
          layer: 'curated' as const,
          table,
          records: f.rows,
          bytes: f.bytes,
        })),
      ),
      metrics: {
        read: manifest.read,
        duplicates: manifest.duplicates,
        childDuplicates: manifest.childDuplicates,
        tables: Object.fromEntries(Object.entries(manifest.tables).map(([t, v]) => [t, v.rows])),
        manifest: deps.lake.uri(manifestAt),
        reused,
        ...(step ? { step } : {}),
      },
      // The seed's state control: what the load will do, recorded before it starts.
      nextParams: {
        mode: 'delete+insert',
        manifest: deps.lake.uri(manifestAt),
        schema: warehouseSchemaOf(source, deps.warehouseSchema),
        targets: Object.fromEntries(
          Object.entries(source.tables).map(([table, spec]) => [
            table,
            {
              table: `${warehouseSchemaOf(source, deps.warehouseSchema)}.${table}`,
              key: spec.key,
              ...(spec.from
                ? { replace: 'per parent', parentKey: spec.parentKey ?? {} }
                : { replace: 'per key' }),
            },
          ]),
        ),
      },
    };
    return outcome;
  };
}

/** The manifest of a transform that committed in an earlier attempt, if it covers the run's validated records. */
async function committedTransform(
  lake: Lake,
  key: string,
  records: number,
): Promise<TransformManifest | undefined> {
  if (!(await lake.exists(key))) return undefined;
  const manifest = await readJson<TransformManifest>(lake, key);
  return manifest.read === records ? manifest : undefined;
}
