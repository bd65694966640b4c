import { runDate } from '../../contract/lake-layout.ts';
import {
  curatedManifestKey,
  loadResultKey,
  stepSpecKey,
  type LoadResult,
  type LoadSpec,
  type TransformManifest,
  type TransformSpec,
} from '../../contract/steps.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import { warehouseSchemaOf, type LoadedSource } from '../config/sources.ts';
import { NonRetryableError, type StageHandler } from '../orchestration/stage-handler.ts';
import { keyChangeRefusal } from '../schema/key-change.ts';
import { warehouseSpec } from '../schema/spec.ts';
import type { SchemaVersions } from '../schema/versions.ts';
import { stepName } from '../steps/step-runner.ts';
import { readCommitted, readJson } from './lake-json.ts';
import { sourceOf } from './source-of.ts';
import { stageInput } from './stage-input.ts';
import {
  decideEngine,
  reusedStep,
  runEngineStep,
  type EngineStepDeps,
  type StepMetrics,
} from './engine-step.ts';
import { validatedBytesRead } from './validated-bytes.ts';

export interface LoadStageDeps extends EngineStepDeps {
  lake: Lake;
  sources: ReadonlyMap<string, LoadedSource>;
  warehouse: LoadSpec['warehouse'];
  /**
   * Ends a transient EMR cluster once the run's last step is done (the emr runner never ends a configured one).
   * A run that fails before this leaves the cluster to its idle auto-termination.
   */
  releaseCluster?: (clusterId: string) => Promise<void>;
  /** The source's schema versions: the load records the one it hands the step, and refuses a changed key. */
  versions: Pick<SchemaVersions, 'record' | 'keyChanges' | 'markLoaded'>;
}

export { cursorColumn } from '../schema/spec.ts';

/**
 * The load stage: the load_warehouse step merges the run's curated tables into the warehouse in one transaction,
 * with a row per table in the load ledger, on the engine {@link decideEngine} picks from the validated bytes the
 * curated data came from (so under `auto` it agrees with the transform that split them). The step writes its result only after that commit, so a
 * result already in the lake means the load committed (a redelivery after the commit reuses it); the ledger
 * makes a second run of the step change nothing. A load never replaces a newer version of a record (by the
 * cursor column): the rows it leaves out are its `stale` rows, and the merged plus the stale rows reconcile with
 * the curated ones.
 */
export function loadStage(deps: LoadStageDeps): StageHandler<'load'> {
  return async (ctx) => {
    const source = sourceOf(deps.sources, ctx.run);
    // The source's own warehouse schema, or the service's.
    const warehouse = { ...deps.warehouse, schema: warehouseSchemaOf(source, deps.warehouse.schema) };
    const dt = runDate(ctx.run.createdAt);
    // The curated tables of the run, or on a replay those of the run it replays. The load is that data's: the
    // ledger and the result are keyed by the run that produced it, so replaying a load that committed changes
    // nothing in the warehouse.
    const input = stageInput(ctx.run, ctx.job);
    const manifestAt = curatedManifestKey(source.name, input.dt, input.run);
    const manifest = await readCommitted<TransformManifest>(
      deps.lake,
      manifestAt,
      input.run,
      'no_curated_manifest',
      'curated tables',
    );
    const resultAt = loadResultKey(source.name, input.dt, input.run);

    // The tables exactly as the transform split them, even if the sources file changed since: that spec is the
    // schema version the run loads, recorded on it before the step starts (again by a redelivery: idempotent).
    const split = await readJson<TransformSpec>(
      deps.lake,
      stepSpecKey(source.name, input.dt, input.run, 'split_tables'),
    );
    const tableSpec = warehouseSpec(split.tables, split.cursorField);
    const version = await deps.versions.record(source.name, ctx.run.id, tableSpec);
    let keyChangeAccepted: string[] | undefined;

    let reused = true;
    let step: StepMetrics | undefined;
    if (!(await deps.lake.exists(resultAt))) {
      reused = false;
      // Before the step, so no warehouse row changes: the step would merge by the new key into rows merged by
      // the old one. A load that already committed (a result in the lake) is past refusing.
      const changes = await deps.versions.keyChanges(source.name, tableSpec);
      if (changes.length > 0 && ctx.run.params?.acceptKeyChange !== true) {
        throw new NonRetryableError(
          'key_changed',
          keyChangeRefusal(source.name, changes, { schema: warehouse.schema, runId: ctx.run.id }),
        );
      }
      if (changes.length > 0) {
        keyChangeAccepted = changes.map((c) => c.table);
        ctx.logger.warn(
          { tables: keyChangeAccepted, version: version.id },
          'loading with a key change the run accepts',
        );
      }
      const spec: LoadSpec = {
        version: 1,
        job: 'load_warehouse',
        runId: input.run,
        jobId: ctx.job.id,
        source: source.name,
        dt: input.dt,
        lakeRoot: deps.lake.root,
        manifest: manifestAt,
        tables: tableSpec.tables,
        cursorColumn: tableSpec.cursorColumn,
        warehouse,
      };
      const specKey = stepSpecKey(source.name, dt, ctx.run.id, 'load_warehouse');
      await deps.lake.put(specKey, JSON.stringify(spec, null, 2), { contentType: 'application/json' });
      const bytes = await validatedBytesRead(deps.lake, split, manifest);
      const choice = await decideEngine(deps, ctx, source, bytes);
      step = await runEngineStep(deps, ctx, choice, {
        job: 'load_warehouse',
        name: stepName(ctx.run.id, ctx.job.id, 'load_warehouse'),
        specKey,
        inputs: [
          specKey,
          manifestAt,
          ...Object.values(manifest.tables).flatMap((t) => t.files.map((f) => f.key)),
        ],
        outputs: [resultAt],
      });
    } else step = reusedStep(ctx.job);
    const result = await readJson<LoadResult>(deps.lake, resultAt);
    if (result.runId !== input.run) {
      throw new Error(`load result ${deps.lake.uri(resultAt)} is for run ${result.runId}, not ${input.run}`);
    }
    // The result is written after the warehouse commit, so the warehouse now follows this version; but a replay
    // that found the replayed run's load committed loaded nothing now, and must not make an older version the
    // latest loaded one.
    const loadedNothing = input.run !== ctx.run.id && (reused || result.alreadyLoaded);
    await deps.versions.markLoaded(version.id, { latest: !loadedNothing });
    // A result written before `stale` existed left nothing out.
    const stale = Object.fromEntries(Object.keys(manifest.tables).map((t) => [t, result.stale?.[t] ?? 0]));
    const rows = Object.fromEntries(Object.entries(manifest.tables).map(([t, v]) => [t, v.rows]));
    const mismatched = Object.entries(rows).filter(
      ([table, n]) => (result.rows[table] ?? Number.NaN) + (stale[table] ?? 0) !== n,
    );
    if (mismatched.length > 0) {
      throw new Error(
        `load of run ${ctx.run.id} does not reconcile with its curated tables: ` +
          mismatched
            .map(
              ([t, n]) => `${t} curated ${n}, loaded ${String(result.rows[t])} + stale ${String(stale[t])}`,
            )
            .join('; '),
      );
    }
    if (!reused && (result.schemaChanges?.length ?? 0) > 0) {
      ctx.logger.info(
        { schemaChanges: result.schemaChanges, warehouse: warehouse.schema },
        'the load changed the warehouse’s tables to match the source’s table spec',
      );
    }
    const kept = Object.entries(result.keptColumns ?? {});
    if (!reused && kept.length > 0) {
      ctx.logger.warn(
        { keptColumns: result.keptColumns },
        `columns no longer in the source’s table spec are kept in the warehouse, NULL in new rows: ${kept
          .map(([table, columns]) => columns.map((c) => `${table}.${c}`).join(', '))
          .join(', ')}`,
      );
    }
    const clusterId = (await deps.engine.clusterOf(ctx.run.id)) ?? ctx.run.clusterId;
    if (clusterId && deps.releaseCluster) {
      await deps.releaseCluster(clusterId).catch((error: unknown) => {
        ctx.logger.warn({ err: error, clusterId }, 'could not terminate the run’s EMR cluster');
      });
    }
    return {
      rows: result.rows,
      metrics: {
        rows: result.rows,
        stale,
        // A replay that found the replayed run's load committed loaded nothing itself.
        alreadyLoaded: result.alreadyLoaded || loadedNothing,
        reused,
        ...(input.run === ctx.run.id ? {} : { replayOf: input.run }),
        warehouse: `${warehouse.dialect} ${warehouse.schema}`,
        schemaChanges: result.schemaChanges ?? [],
        keptColumns: result.keptColumns ?? {},
        schemaVersion: version.id,
        ...(keyChangeAccepted ? { keyChangeAccepted } : {}),
        ...(step ? { step } : {}),
      },
    };
  };
}
