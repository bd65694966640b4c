import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  curatedManifestKey,
  loadResultKey,
  stepSpecKey,
  type LoadResult,
  type LoadSpec,
  type TransformManifest,
} from '../../contract/steps.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import { openLake } from '../../lib/lake/open-lake.ts';
import { loadSources, type LoadedSource } from '../../service/config/sources.ts';
import { createLogger } from '../../service/observability/logger.ts';
import type { StageContext } from '../../service/orchestration/stage-handler.ts';
import { keyChanges, type LoadedVersion } from '../../service/schema/key-change.ts';
import { specHash, type WarehouseSpec } from '../../service/schema/spec.ts';
import { cursorColumn, loadStage, type LoadStageDeps } from '../../service/stages/load.ts';
import { NonRetryableError, StageError } from '../../service/orchestration/stage-handler.ts';
import type { RunStepOptions, StepRunner, StepStatus } from '../../service/steps/step-runner.ts';

// The load stage around its Spark step: a stand-in runner reads the LoadSpec the stage wrote and writes the
// LoadResult a step would, so the spec and the reconcile can be checked without Spark.

const DT = '2026-01-31';
const RUN = 7;
const CURATED = { orders: 3, order_items: 5, order_tags: 4 };

let demo: LoadedSource;
beforeAll(async () => {
  const shipped = (await loadSources('config/sources.yaml')).sources.get('demo');
  if (!shipped) throw new Error('config/sources.yaml has no demo source');
  demo = shipped;
});

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

const json = (doc: unknown) => JSON.stringify(doc);

async function curatedRun(): Promise<Lake> {
  const dir = await mkdtemp(join(tmpdir(), 'afluente-load-stage-'));
  dirs.push(dir);
  const lake = openLake(`file://${dir}`);
  const manifest: TransformManifest = {
    version: 1,
    stage: 'transform',
    runId: RUN,
    source: 'demo',
    dt: DT,
    read: CURATED.orders,
    duplicates: 0,
    childDuplicates: {},
    tables: Object.fromEntries(
      Object.entries(CURATED).map(([t, rows]) => [t, { prefix: `curated/${t}/`, rows, files: [] }]),
    ),
  };
  await lake.put(curatedManifestKey('demo', DT, RUN), json(manifest));
  await lake.put(
    stepSpecKey('demo', DT, RUN, 'split_tables'),
    json({ inputs: [], tables: demo.tables, cursorField: demo.incremental?.cursorField ?? null }),
  );
  return lake;
}

/**
 * Runs the stage; the step (`local:4242`) "writes" `result` and ends as `status` says. Returns the stage's
 * outcome (or error) and the spec it sent.
 */
/**
 * The schema versions as the stage sees them, in memory: what it recorded and marked, and the versions loaded
 * before (latest first), against which the real key comparison runs.
 */
class Versions {
  readonly recorded: { source: string; runId: number; spec: WarehouseSpec }[] = [];
  readonly marked: { id: number; latest?: boolean }[] = [];
  loaded: LoadedVersion[] = [];
  async record(source: string, runId: number, spec: WarehouseSpec) {
    this.recorded.push({ source, runId, spec });
    return { id: 3, source, hash: specHash(spec), spec };
  }
  async keyChanges(_source: string, spec: WarehouseSpec) {
    return keyChanges(this.loaded, spec);
  }
  async markLoaded(id: number, options: { latest?: boolean } = {}) {
    this.marked.push({ id, ...options });
  }
}

async function runLoad(
  lake: Lake,
  result: Omit<LoadResult, 'version' | 'stage' | 'runId'>,
  status: StepStatus = { state: 'COMPLETED' },
  options: { versions?: Versions; params?: Record<string, unknown> } = {},
) {
  const versions = options.versions ?? new Versions();
  const specs: LoadSpec[] = [];
  const runner = {
    kind: 'local',
    run: async (request: { specKey: string }, options: RunStepOptions) => {
      await options.onSubmitted({ stepId: 'local:4242' });
      specs.push(JSON.parse((await lake.getBytes(request.specKey)).toString('utf8')) as LoadSpec);
      await lake.put(
        loadResultKey('demo', DT, RUN),
        json({ version: 1, stage: 'load', runId: RUN, ...result }),
      );
      return status;
    },
  } as unknown as StepRunner;
  const stage = loadStage({
    lake,
    runners: { of: () => runner },
    engine: { attachExternal: async () => {}, clusterOf: async () => null, recordEngine: async () => {} },
    maxEmbeddedBytes: 0,
    sources: new Map([['demo', demo]]),
    warehouse: {
      dialect: 'postgres',
      jdbcUrl: 'jdbc:postgresql://x/y',
      user: null,
      schema: 's',
      copyRoleArn: null,
    },
    versions: versions as unknown as LoadStageDeps['versions'],
  });
  const ctx = {
    stage: 'load',
    run: {
      id: RUN,
      source: 'demo',
      createdAt: new Date(`${DT}T10:00:00Z`),
      clusterId: null,
      params: options.params ?? null,
    },
    // What the reconciler recorded while the step ran.
    job: { id: RUN * 10 + 1, params: null, metrics: { step: { id: 'local:4242', state: 'RUNNING' } } },
    signal: new AbortController().signal,
    logger: createLogger('silent'),
  } as unknown as StageContext<'load'>;
  const outcome = await stage(ctx).catch((error: unknown) => error as Error);
  return { outcome, spec: specs[0] };
}

describe('the load stage', () => {
  it('sends the cursor column and reconciles merged plus stale rows with the curated rows', async () => {
    const rows = { orders: 2, order_items: 2, order_tags: 2 };
    const stale = { orders: 1, order_items: 3, order_tags: 2 };
    const { outcome, spec } = await runLoad(await curatedRun(), { rows, stale, alreadyLoaded: false });

    expect(spec?.cursorColumn).toBe('updated_at');
    expect(outcome).toMatchObject({ rows, metrics: { rows, stale, alreadyLoaded: false, reused: false } });
  });

  it('records the step’s final state in the job’s metrics, over the RUNNING the reconciler saw', async () => {
    const lake = await curatedRun();
    const { outcome } = await runLoad(lake, { rows: CURATED, alreadyLoaded: false });
    expect(outcome).toMatchObject({
      metrics: { step: { id: 'local:4242', state: 'COMPLETED', checkedAt: expect.any(String) } },
    });

    // A redelivered job that finds its result committed reuses it: the earlier step did its work.
    const again = await runLoad(lake, { rows: CURATED, alreadyLoaded: false });
    expect(again.spec).toBeUndefined();
    expect(again.outcome).toMatchObject({
      metrics: { reused: true, step: { id: 'local:4242', state: 'COMPLETED' } },
    });

    await lake.delete([loadResultKey('demo', DT, RUN)]);
    const failed = await runLoad(
      lake,
      { rows: CURATED, alreadyLoaded: false },
      { state: 'FAILED', reason: 'spark_failed', message: 'load_warehouse: relation "x" does not exist' },
    );
    expect(failed.outcome).toBeInstanceOf(StageError);
    expect((failed.outcome as StageError).partial).toMatchObject({
      metrics: {
        step: { id: 'local:4242', state: 'FAILED', message: 'load_warehouse: relation "x" does not exist' },
      },
    });
  });

  it('names the step once in a failed step’s error, whatever the runner passed on', async () => {
    for (const message of [
      'load_warehouse: relation "x" does not exist',
      'load_warehouse: load_warehouse: relation "x" does not exist',
      '  relation "x" does not exist\n',
    ]) {
      const { outcome } = await runLoad(
        await curatedRun(),
        { rows: CURATED, alreadyLoaded: false },
        { state: 'FAILED', reason: 'emr_step_failed', message },
      );
      expect(outcome).toBeInstanceOf(StageError);
      expect((outcome as StageError).message, message).toBe('load_warehouse: relation "x" does not exist');
    }
  });

  it('fails the job at once when the step says a retry would fail the same way, and retries it otherwise', async () => {
    const lake = await curatedRun();
    const why = 'load_warehouse: insert into order_tags failed: null value in column "blocker"';
    const permanent = await runLoad(
      lake,
      { rows: CURATED, alreadyLoaded: false },
      { state: 'FAILED', reason: 'embedded_failed', message: why, retryable: false },
    );
    expect(permanent.outcome).toBeInstanceOf(NonRetryableError);
    expect((permanent.outcome as NonRetryableError).message).toBe(
      `${why} (not retried: it fails the same way until this is fixed)`,
    );

    await lake.delete([loadResultKey('demo', DT, RUN)]);
    const transient = await runLoad(
      lake,
      { rows: CURATED, alreadyLoaded: false },
      {
        state: 'FAILED',
        reason: 'embedded_failed',
        message: 'load_warehouse: connection refused',
        retryable: true,
      },
    );
    expect(transient.outcome).toBeInstanceOf(StageError);
    expect(transient.outcome).not.toBeInstanceOf(NonRetryableError);
    expect((transient.outcome as StageError).message).toBe('load_warehouse: connection refused');
  });

  it('fails, naming the merged and the stale rows, when they do not add up to the curated rows', async () => {
    const { outcome } = await runLoad(await curatedRun(), {
      rows: { orders: 2, order_items: 2, order_tags: 4 },
      stale: { orders: 0, order_items: 3 },
      alreadyLoaded: false,
    });

    expect(outcome).toBeInstanceOf(Error);
    expect((outcome as Error).message).toBe(
      `load of run ${RUN} does not reconcile with its curated tables: orders curated 3, loaded 2 + stale 0`,
    );
  });

  it('reads a result without stale rows (an older step) as none stale', async () => {
    const lake = await curatedRun();
    const { outcome } = await runLoad(lake, { rows: CURATED, alreadyLoaded: false });
    expect(outcome).toMatchObject({
      rows: CURATED,
      metrics: { stale: { orders: 0, order_items: 0, order_tags: 0 } },
    });

    await lake.delete([loadResultKey('demo', DT, RUN)]);
    const short = await runLoad(lake, { rows: { ...CURATED, order_items: 4 }, alreadyLoaded: false });
    expect((short.outcome as Error).message).toMatch(/order_items curated 5, loaded 4 \+ stale 0$/);
  });
});

describe('cursorColumn', () => {
  it('is the parent column read from exactly the cursor field, when its type orders', () => {
    expect(cursorColumn(demo.tables, 'updated_at')).toBe('updated_at');
    expect(cursorColumn(demo.tables, null)).toBeNull();
    // Not a parent column's path (a child's, or none at all).
    expect(cursorColumn(demo.tables, 'line')).toBeNull();
    expect(cursorColumn(demo.tables, 'customer')).toBeNull();
    // Text orders differently in Spark and the warehouse: no guard rather than a wrong one.
    expect(cursorColumn(demo.tables, 'status')).toBeNull();
    expect(cursorColumn(demo.tables, 'customer.id')).toBe('customer_id');
  });
});

describe('the load stage’s schema version', () => {
  const demoSpec = (): WarehouseSpec => ({ tables: demo.tables, cursorColumn: 'updated_at' });
  /** What an earlier load committed: the demo tables with order_items keyed by sku instead of line. */
  const bySku = (): LoadedVersion => {
    const items = demo.tables.order_items;
    if (!items) throw new Error('the demo source has no order_items');
    return {
      id: 2,
      lastLoadedAt: new Date('2026-01-30T12:00:00.000Z'),
      spec: {
        ...demoSpec(),
        tables: { ...demo.tables, order_items: { ...items, key: ['order_id', 'sku'] } },
      },
    };
  };

  it('records the spec it hands the step as the run’s version, and marks it loaded once the load committed', async () => {
    const versions = new Versions();
    const { outcome, spec } = await runLoad(
      await curatedRun(),
      { rows: CURATED, alreadyLoaded: false },
      undefined,
      { versions },
    );
    expect(versions.recorded).toEqual([{ source: 'demo', runId: RUN, spec: demoSpec() }]);
    expect({ tables: spec?.tables, cursorColumn: spec?.cursorColumn }).toEqual(demoSpec());
    expect(versions.marked).toEqual([{ id: 3, latest: true }]);
    expect(outcome).toMatchObject({ metrics: { schemaVersion: 3 } });
  });

  it('refuses a changed key before the step starts, naming the source, the table, both keys and what to do', async () => {
    const versions = new Versions();
    versions.loaded = [bySku()];
    const { outcome, spec } = await runLoad(
      await curatedRun(),
      { rows: CURATED, alreadyLoaded: false },
      undefined,
      { versions },
    );
    expect(spec).toBeUndefined(); // the step never started
    expect(outcome).toBeInstanceOf(NonRetryableError);
    expect((outcome as NonRetryableError).reason).toBe('key_changed');
    expect((outcome as NonRetryableError).message).toBe(
      'source "demo": load refused before any warehouse row changed: table "order_items" key [order_id, sku] → ' +
        '[order_id, line] since schema version 2 (last loaded 2026-01-30T12:00:00.000Z). Loads merge rows by ' +
        'key, so loading by the new key into rows merged by the old one would leave duplicates. To go on, either ' +
        'load into a new table (rename "order_items" in the source\'s tables and start a run; the old table ' +
        'stays), or rebuild: drop or rename s.order_items in the warehouse, then retry this run accepting the key ' +
        'change (POST /runs/7/retry {"acceptKeyChange": true}, or npx afluente retry 7 --accept-key-change); the ' +
        'table is created anew with only what that load and later ones bring.',
    );
    // The run still records what it tried to load; nothing is marked loaded.
    expect(versions.recorded).toHaveLength(1);
    expect(versions.marked).toEqual([]);
  });

  it('loads with a key change the run accepts, and says so in the job’s metrics', async () => {
    const versions = new Versions();
    versions.loaded = [bySku()];
    const { outcome, spec } = await runLoad(
      await curatedRun(),
      { rows: CURATED, alreadyLoaded: false },
      undefined,
      { versions, params: { acceptKeyChange: true } },
    );
    expect(spec).toBeDefined();
    expect(outcome).toMatchObject({ metrics: { schemaVersion: 3, keyChangeAccepted: ['order_items'] } });
    expect(versions.marked).toEqual([{ id: 3, latest: true }]);
  });

  it('does not refuse a load that already committed: a redelivery reuses its result and marks it loaded', async () => {
    const lake = await curatedRun();
    await runLoad(lake, { rows: CURATED, alreadyLoaded: false });
    const versions = new Versions();
    versions.loaded = [bySku()];
    const again = await runLoad(lake, { rows: CURATED, alreadyLoaded: false }, undefined, { versions });
    expect(again.outcome).toMatchObject({ metrics: { reused: true, schemaVersion: 3 } });
    expect(versions.marked).toEqual([{ id: 3, latest: true }]);
  });
});
