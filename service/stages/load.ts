import { runDate } from '../../contract/lake-layout.ts';
import { parentTable, parseColumnType, type TableSpec } from '../../contract/source-config.ts';
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
import type { LoadedSource } from '../config/sources.ts';
import type { StageHandler } from '../orchestration/stage-handler.ts';
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
}

// Column types that order the same way in Spark and in both warehouses (text and json do not).
const ORDERED_KINDS: ReadonlySet<string> = new Set([
  'bigint',
  'int',
  'smallint',
  'double',
  'decimal',
  'date',
  'timestamp',
]);

/**
 * The parent column read from exactly the source's cursor field, when its type orders: the load never replaces a
 * warehouse row whose value there is greater than the run's. Null when there is no such column.
 */
export function cursorColumn(tables: Record<string, TableSpec>, cursorField: string | null): string | null {
  if (!cursorField) return null;
  const [, parent] = parentTable({ tables });
  const found = Object.entries(parent.columns).find(
    ([, column]) => column.path === cursorField && ORDERED_KINDS.has(parseColumnType(column.type).kind),
  );
  return found ? found[0] : null;
}

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

    let reused = true;
    let step: StepMetrics | undefined;
    if (!(await deps.lake.exists(resultAt))) {
      reused = false;
      // The tables exactly as the transform split them, even if the sources file changed since.
      const split = await readJson<TransformSpec>(
        deps.lake,
        stepSpecKey(source.name, input.dt, input.run, 'split_tables'),
      );
      const spec: LoadSpec = {
        version: 1,
        job: 'load_warehouse',
        runId: input.run,
        jobId: ctx.job.id,
        source: source.name,
        dt: input.dt,
        lakeRoot: deps.lake.root,
        manifest: manifestAt,
        tables: split.tables,
        cursorColumn: cursorColumn(split.tables, split.cursorField),
        warehouse: deps.warehouse,
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
        { schemaChanges: result.schemaChanges, warehouse: deps.warehouse.schema },
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
        alreadyLoaded: result.alreadyLoaded || (reused && input.run !== ctx.run.id),
        reused,
        ...(input.run === ctx.run.id ? {} : { replayOf: input.run }),
        warehouse: `${deps.warehouse.dialect} ${deps.warehouse.schema}`,
        schemaChanges: result.schemaChanges ?? [],
        keptColumns: result.keptColumns ?? {},
        ...(step ? { step } : {}),
      },
    };
  };
}
