import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { curatedPrefix } from '../../contract/lake-layout.ts';
import { curatedManifestKey, type TransformManifest, type TransformSpec } from '../../contract/steps.ts';
import { orderAt } from '../../demo/source-api/records.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import { openLake } from '../../lib/lake/open-lake.ts';
import { loadConfig, type Config } from '../../service/config/env.ts';
import { loadSources, type LoadedSource } from '../../service/config/sources.ts';
import { createLogger } from '../../service/observability/logger.ts';
import { EmbeddedStepRunner } from '../../service/steps/embedded-runner.ts';
import { openEmbeddedRunner } from '../../service/steps/open-runner.ts';
import type { StepHandle, StepRequest } from '../../service/steps/step-runner.ts';
import { alive, groupMembers, sleepingProcess } from '../support/processes.ts';
import { s3Lakes } from '../support/s3-lakes.ts';
import { stepRequest } from '../support/steps.ts';
import { waitFor } from '../support/wait.ts';

// The embedded step runner: `python -m afluente_embedded` from .venv as a child process group of the service.
// What a step computes is checked on the real engine (spark/afluente_embedded): a split on a file:// lake, the
// same on an s3:// lake (moto) staged through a temp folder, and a failure with the engine's own reason. The
// process lifecycle (the arguments and environment it gets, a cancel, a leftover of an earlier attempt, a step
// another worker left) runs on a stand-in package, test/fixtures/embedded/afluente_embedded, because it needs a
// step that runs until it is stopped; the stand-in never stands in for a result.

const STAND_IN = 'test/fixtures/embedded';
const PASSWORD = 'pg-embedded-secret';
const DT = '2026-01-31';
const ORDERS = 40;

let temp: string;
let demo: LoadedSource;
const logger = createLogger('silent');

beforeAll(async () => {
  temp = await mkdtemp(join(tmpdir(), 'afluente-embedded-test-'));
  const found = (await loadSources('config/sources.yaml')).sources.get('demo');
  if (!found) throw new Error('config/sources.yaml has no demo source');
  demo = found;
});
afterAll(async () => {
  if (temp) await rm(temp, { recursive: true, force: true });
});

function configWith(scripts: string): Config {
  return loadConfig(
    {
      AFLUENTE_SPARK_SCRIPTS: scripts,
      AFLUENTE_SPARK_TEMP_DIR: join(temp, 'steps'),
      AFLUENTE_EMBEDDED_MEMORY_LIMIT: '256MB',
      AFLUENTE_EMBEDDED_THREADS: '1',
      AFLUENTE_WAREHOUSE_PASSWORD: PASSWORD,
    },
    { requireTokens: false },
  );
}

/** The folder of this deployment's embedded pid files and logs. */
const stepsDir = (config: Config): string =>
  join(config.steps.spark.tempDir, 'afluente-embedded', config.queue.prefix);

async function fileLake(name: string): Promise<{ lake: Lake; dir: string }> {
  const dir = join(temp, name);
  await mkdir(dir, { recursive: true });
  return { lake: openLake(pathToFileURL(dir).href), dir };
}

/** A validated part of `ORDERS` demo orders and the spec of its split, as the transform stage writes them. */
async function splitOf(lake: Lake, runId: number, records = ORDERS): Promise<StepRequest> {
  const part = `validated/source=demo/dt=${DT}/run=${runId}/part-00000-00000.ndjson.gz`;
  const lines = Array.from({ length: ORDERS }, (_, i) => JSON.stringify(orderAt(i, 7))).join('\n');
  await lake.put(part, gzipSync(`${lines}\n`));
  const request = stepRequest('split_tables', runId, runId * 10 + 1, {
    inputs: [part],
    outputs: [
      ...Object.keys(demo.tables).map((t) => curatedPrefix(t, DT, runId)),
      curatedManifestKey('demo', DT, runId),
    ],
  });
  const spec: TransformSpec = {
    version: 1,
    job: 'split_tables',
    runId,
    jobId: request.jobId,
    source: 'demo',
    dt: DT,
    lakeRoot: lake.root,
    inputs: [part],
    records,
    tables: demo.tables,
    cursorField: 'updated_at',
  };
  await lake.put(request.specKey, JSON.stringify(spec));
  return request;
}

/** A stand-in step's spec: the stand-in does what `fixture` says. */
async function standInOf(lake: Lake, runId: number, fixture: string, outputs: string[] = []) {
  const request = stepRequest('split_tables', runId, runId * 10 + 1, { outputs });
  await lake.put(request.specKey, JSON.stringify({ runId, lakeRoot: lake.root, fixture, outputs }));
  return request;
}

const idle = () => ({ signal: new AbortController().signal, onSubmitted: async () => {} });

/** A process with an embedded step's command line, as a worker that died would leave it, in its own group. */
function leftoverOf(name: string): Promise<number> {
  return sleepingProcess([
    '-m',
    'afluente_embedded',
    'split_tables',
    '--spec',
    'file:///x',
    '--step-name',
    name,
  ]);
}

describe('EmbeddedStepRunner on the real engine', () => {
  it('splits the validated records into the curated tables and their manifest', async () => {
    const { lake } = await fileLake('lake-real');
    const runner = openEmbeddedRunner(configWith('spark'), lake, logger);
    const req = await splitOf(lake, 1);
    const submitted: StepHandle[] = [];

    const status = await runner.run(req, {
      signal: new AbortController().signal,
      onSubmitted: async (handle) => void submitted.push(handle),
    });

    const logs = join(stepsDir(configWith('spark')), 'afluente_run=1_job=11_split_tables.log');
    expect(status).toEqual({ state: 'COMPLETED', logs });
    expect(submitted).toEqual([{ stepId: expect.stringMatching(/^embedded:\d+$/), logs }]);
    const manifest = JSON.parse(
      (await lake.getBytes(curatedManifestKey('demo', DT, 1))).toString(),
    ) as TransformManifest;
    expect(manifest).toMatchObject({
      runId: 1,
      read: ORDERS,
      duplicates: 0,
      tables: { orders: { rows: ORDERS } },
    });
    // The engine's last stdout line is its manifest: the whole output is in the step's log.
    expect(await readFile(logs, 'utf8')).toContain(`"read":${ORDERS}`);
    expect(existsSync(join(stepsDir(configWith('spark')), 'afluente_run=1_job=11_split_tables.pid'))).toBe(
      false,
    );
    await runner.close();
  }, 60_000);

  it('fails with the engine’s own reason, and keeps the password out of its log', async () => {
    const { lake } = await fileLake('lake-real-fail');
    const runner = openEmbeddedRunner(configWith('spark'), lake, logger);
    // The spec says one record more than the part holds: the engine refuses to split.
    const req = await splitOf(lake, 2, ORDERS + 1);
    let handle: StepHandle | undefined;

    const status = await runner.run(req, {
      signal: new AbortController().signal,
      onSubmitted: async (h) => void (handle = h),
    });

    expect(status).toEqual({
      state: 'FAILED',
      reason: 'embedded_failed',
      message: `split_tables: read ${ORDERS} records from 1 part, but the spec says ${ORDERS + 1}`,
      logs: handle?.logs,
      retryable: true,
    });
    expect(await readFile(handle!.logs!, 'utf8')).not.toContain(PASSWORD);
    expect(await runner.status(handle!)).toEqual(status);
    expect(await lake.exists(curatedManifestKey('demo', DT, 2))).toBe(false);
    await runner.close();
  }, 60_000);

  it('says when a retry would fail the same way: a bad spec', async () => {
    const { lake } = await fileLake('lake-real-permanent');
    const runner = openEmbeddedRunner(configWith('spark'), lake, logger);
    const req = await splitOf(lake, 4);
    await lake.put(req.specKey, JSON.stringify({ version: 1, job: 'split_tables' }));

    expect(await runner.run(req, idle())).toMatchObject({
      state: 'FAILED',
      reason: 'embedded_failed',
      message: "split_tables: the transform spec has no 'runId'",
      retryable: false,
    });
    await runner.close();
  }, 60_000);

  describe('on an s3:// lake', () => {
    const s3 = s3Lakes();

    it('stages the inputs through a temp folder and copies the curated tables back', async () => {
      const lake = await s3.lake();
      const config = configWith('spark');
      const runner = openEmbeddedRunner(config, lake, logger);
      const req = await splitOf(lake, 3);

      expect(await runner.run(req, idle())).toMatchObject({ state: 'COMPLETED' });

      const manifest = JSON.parse(
        (await lake.getBytes(curatedManifestKey('demo', DT, 3))).toString(),
      ) as TransformManifest;
      expect(manifest.tables.orders?.rows).toBe(ORDERS);
      for (const table of Object.values(manifest.tables))
        for (const file of table.files)
          expect((await lake.getBytes(file.key)).subarray(0, 4).toString()).toBe('PAR1');
      // Only the log is left: the staging folder and DuckDB's spill folder are gone.
      expect(await readdir(stepsDir(config))).not.toContainEqual(
        expect.stringMatching(/run=3_job=31_.*\.(stage-|spill)/),
      );
      await runner.close();
    }, 90_000);
  });
});

describe('EmbeddedStepRunner’s process lifecycle (on the stand-in)', () => {
  it('starts the engine with the contract’s arguments, only the warehouse password of AFLUENTE_*, and a spill folder', async () => {
    const { lake, dir } = await fileLake('lake-args');
    const config = configWith(STAND_IN);
    const runner = openEmbeddedRunner(config, lake, logger);
    const marker = 'steps/source=demo/dt=2026-01-31/run=4/marker.json';
    const req = await standInOf(lake, 4, 'ok', [marker]);
    vi.stubEnv('AFLUENTE_SOMETHING_SECRET', 'not for the step');
    try {
      expect(await runner.run(req, idle())).toMatchObject({ state: 'COMPLETED' });
    } finally {
      vi.unstubAllEnvs();
    }
    const given = JSON.parse(await readFile(join(dir, ...marker.split('/')), 'utf8'));
    const base = join(stepsDir(config), 'afluente_run=4_job=41_split_tables');
    expect(given).toEqual({
      job: 'split_tables',
      argv: [
        'split_tables',
        ...['--spec', lake.uri(req.specKey)],
        ...['--step-name', req.name],
        ...['--memory-limit', '256MB', '--threads', '1'],
        ...['--temp-dir', `${base}.spill`],
      ],
      tempDirExists: true,
      afluenteEnv: ['AFLUENTE_WAREHOUSE_PASSWORD'],
      passwordSha256: createHash('sha256').update(PASSWORD).digest('hex'),
    });
    expect(existsSync(`${base}.spill`)).toBe(false);
    await runner.close();
  });

  it('kills a leftover of the same step first, then reports the step’s own failure', async () => {
    const { lake } = await fileLake('lake-leftover');
    const config = configWith(STAND_IN);
    const runner = openEmbeddedRunner(config, lake, logger);
    const req = await standInOf(lake, 5, 'fail');
    // A previous attempt's process, left by a worker that died: the new attempt must not run beside it.
    const leftover = await leftoverOf(req.name);
    await mkdir(stepsDir(config), { recursive: true });
    await writeFile(join(stepsDir(config), 'afluente_run=5_job=51_split_tables.pid'), String(leftover));

    const status = await runner.run(req, idle());

    expect(alive(leftover)).toBe(false);
    expect(status).toMatchObject({
      state: 'FAILED',
      reason: 'embedded_failed',
      message: 'split_tables: boom (run 5 asked to fail)',
    });
    await runner.close();
  });

  it('kills the step’s whole process group when its signal aborts, and reports it CANCELLED', async () => {
    const { lake, dir } = await fileLake('lake-cancel');
    const runner = openEmbeddedRunner(configWith(STAND_IN), lake, logger);
    const req = await standInOf(lake, 6, 'sleep');
    const controller = new AbortController();
    let handle: StepHandle | undefined;
    const running = runner.run(req, {
      signal: controller.signal,
      onSubmitted: async (h) => void (handle = h),
    });
    running.catch(() => {});

    const started = await waitFor(
      async () =>
        existsSync(join(dir, 'started'))
          ? JSON.parse(await readFile(join(dir, 'started'), 'utf8'))
          : undefined,
      'the step to start its child',
    );
    const pid = Number(/^embedded:(\d+)$/.exec(handle?.stepId ?? '')?.[1]);
    expect(started.pid).toBe(pid);
    expect((await groupMembers(pid)).map((m) => m.pid).sort()).toEqual([pid, started.child].sort());
    expect(await runner.status(handle!)).toEqual({ state: 'RUNNING', logs: handle?.logs });
    expect((await runner.listLive()).steps).toEqual([
      expect.objectContaining({
        runId: 6,
        jobId: 61,
        job: 'split_tables',
        handle: { stepId: handle?.stepId, logs: handle?.logs },
      }),
    ]);

    controller.abort({ kind: 'cancelled' });
    await expect(running).rejects.toEqual({ kind: 'cancelled' });

    expect(await groupMembers(pid)).toEqual([]);
    expect(alive(started.child)).toBe(false);
    expect(await runner.status(handle!)).toEqual({ state: 'CANCELLED', logs: handle?.logs });
    expect((await runner.listLive()).steps).toEqual([]);
    await runner.close();
  });

  it('tells a step whose process is gone from one another worker left, and cancels the latter', async () => {
    const { lake } = await fileLake('lake-lost');
    const config = configWith(STAND_IN);
    const runner = new EmbeddedStepRunner({
      lake,
      logger,
      embedded: config.steps.embedded,
      spark: config.steps.spark,
      killGraceMs: 1000,
    });
    const gone = spawn('true');
    await once(gone, 'exit');
    const expected = {
      state: 'FAILED',
      reason: 'step_lost',
      message: "the embedded step's process is gone; it ran in another worker that stopped",
    };
    expect(await runner.status({ stepId: `embedded:${gone.pid}` })).toEqual(expected);
    expect(await runner.cancel({ stepId: `embedded:${gone.pid}` })).toEqual(expected);

    const leftover = await leftoverOf('afluente run=8 job=81 split_tables');
    expect(await runner.status({ stepId: `embedded:${leftover}` })).toMatchObject({ state: 'RUNNING' });
    expect(await runner.cancel({ stepId: `embedded:${leftover}` })).toEqual({ state: 'CANCELLED' });
    expect(alive(leftover)).toBe(false);
    // A Spark step's id is not the embedded runner's.
    await expect(runner.status({ stepId: 'local:123' })).rejects.toThrow(
      'not an embedded step id: "local:123"',
    );
  });
});
