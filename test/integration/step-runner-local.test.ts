import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SparkJob } from '../../contract/steps.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import { openLake } from '../../lib/lake/open-lake.ts';
import { loadConfig, type Config } from '../../service/config/env.ts';
import { createLogger } from '../../service/observability/logger.ts';
import { LocalStepRunner } from '../../service/steps/local-runner.ts';
import { openStepRunner } from '../../service/steps/open-runner.ts';
import { failureMessage } from '../../service/steps/spark-log.ts';
import type { StepHandle, StepRequest } from '../../service/steps/step-runner.ts';
import { stepRequest } from '../support/steps.ts';
import { alive, groupMembers, sleepingProcess } from '../support/processes.ts';
import { s3Lakes } from '../support/s3-lakes.ts';
import { waitFor } from '../support/wait.ts';

// The local step runner with the real spark-submit from .venv, running the stand-in jobs in
// test/fixtures/spark/ (they read the spec like the real ones, and do what its `fixture` field says). Each
// spark-submit takes 15-20 s on two cores, so the file runs three: a failure on a file lake, a success on an
// s3:// lake (moto) staged through a temp folder, and a cancel.

const SCRIPTS = 'test/fixtures/spark';
const PASSWORD = 'pg-fixture-secret';

let temp: string;
let config: Config;
const logger = createLogger('silent');

beforeAll(async () => {
  temp = await mkdtemp(join(tmpdir(), 'afluente-steps-test-'));
  config = loadConfig(
    {
      AFLUENTE_SPARK_SCRIPTS: SCRIPTS,
      AFLUENTE_SPARK_MASTER: 'local[2]',
      AFLUENTE_SPARK_DRIVER_MEMORY: '1g',
      AFLUENTE_SPARK_TEMP_DIR: join(temp, 'spark'),
      AFLUENTE_WAREHOUSE_PASSWORD: PASSWORD,
    },
    { requireTokens: false },
  );
});
afterAll(async () => {
  if (temp) await rm(temp, { recursive: true, force: true });
});

function request(job: SparkJob, runId: number, extra: Partial<StepRequest> = {}): StepRequest {
  return stepRequest(job, runId, runId * 10 + 1, extra);
}

async function fileLake(name: string): Promise<{ lake: Lake; dir: string }> {
  const dir = join(temp, name);
  await mkdir(dir, { recursive: true });
  return { lake: openLake(pathToFileURL(dir).href), dir };
}

/** A process whose command line looks like a local step's spark-submit (a sleeping Python), in its own group. */
function fakeLeftoverStep(): Promise<number> {
  return sleepingProcess([join(config.steps.spark.scripts, 'split_tables.py'), '--spec', 'file:///nowhere']);
}

describe('which line of stderr explains a failed step', () => {
  const exit = { code: 1, signal: null };
  it('prefers the job’s own last word, then a Python or Java exception line, then the last line', () => {
    const log = [
      '26/01/31 10:00:00 INFO SparkContext: Running Spark version 3.5.9',
      'split_tables: read 12 records, expected 10',
      'Traceback (most recent call last):',
      '  File "split_tables.py", line 9, in <module>',
      'ValueError: bad record',
      '26/01/31 10:00:01 INFO ShutdownHookManager: Shutdown hook called',
    ].join('\n');
    expect(failureMessage(log, 'split_tables', exit)).toBe('split_tables: read 12 records, expected 10');
    expect(failureMessage(log, 'load_warehouse', exit)).toBe('ValueError: bad record');
    const java =
      'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space\n\tat x.y(Z.java:1)\n';
    expect(failureMessage(java, 'split_tables', exit)).toBe(
      'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space',
    );
    expect(failureMessage('\n', 'split_tables', { code: null, signal: 'SIGKILL' })).toBe(
      'spark-submit was killed by SIGKILL and wrote nothing',
    );
    const chatter = '26/01/31 10:00:02 INFO ShutdownHookManager: Shutdown hook called';
    expect(failureMessage(`starting\nno luck today\n${chatter}\n`, 'split_tables', exit)).toBe(
      'spark-submit exited with code 1; its last line: no luck today',
    );
    const logged = `26/01/31 10:00:01 ERROR SparkContext: Error initializing SparkContext.\n${chatter}`;
    expect(failureMessage(logged, 'split_tables', exit)).toBe(
      '26/01/31 10:00:01 ERROR SparkContext: Error initializing SparkContext.',
    );
    expect(failureMessage('x'.repeat(5000), 'split_tables', exit)).toHaveLength(1000);
    // Each stream is cut into lines on its own: a partial line on stdout does not hide the job's line on stderr.
    const streams = ['relayed driver output that stops mid-line', 'split_tables: boom\nTraceback noise\n'];
    expect(failureMessage(streams, 'split_tables', exit)).toBe('split_tables: boom');
    // Nor does one that the job's line runs into on the same stream (spark-submit relays the driver's output).
    expect(
      failureMessage('relayed output that stops mid-linesplit_tables: boom\n', 'split_tables', exit),
    ).toBe('split_tables: boom');
    // A progress bar's redraws are lines too.
    expect(failureMessage('[====>    ] 40%\rsplit_tables: boom\n', 'split_tables', exit)).toBe(
      'split_tables: boom',
    );
  });
});

describe('LocalStepRunner', () => {
  it('reports a failed step with the job’s own message and its whole log, after killing a leftover of it', async () => {
    const { lake } = await fileLake('lake-fail');
    const runner = openStepRunner(config, lake, logger);
    const req = request('split_tables', 1);
    await lake.put(req.specKey, JSON.stringify({ runId: 1, lakeRoot: lake.root, fixture: 'fail' }));
    // A previous attempt's spark-submit, left by a worker that died: the new attempt must not run beside it.
    const leftover = await fakeLeftoverStep();
    const logDir = join(config.steps.spark.tempDir, 'afluente-steps', config.queue.prefix);
    await mkdir(logDir, { recursive: true });
    await writeFile(join(logDir, 'afluente_run=1_job=11_split_tables.pid'), String(leftover));

    const submitted: StepHandle[] = [];
    const status = await runner.run(req, {
      signal: new AbortController().signal,
      onSubmitted: async (handle) => void submitted.push(handle),
    });

    expect(alive(leftover)).toBe(false);
    const logs = join(logDir, 'afluente_run=1_job=11_split_tables.log');
    expect(status).toEqual({
      state: 'FAILED',
      reason: 'spark_failed',
      message: 'split_tables: boom (run 1 asked to fail)',
      logs,
      retryable: true,
    });
    expect(submitted).toEqual([{ stepId: expect.stringMatching(/^local:\d+$/), logs }]);
    const log = await readFile(logs, 'utf8');
    expect(log).toContain('some noise before the error');
    expect(log).toContain('relayed driver output that stops mid-line');
    expect(log).toContain('Traceback noise after it');
    expect(log).not.toContain(PASSWORD);
    expect(await runner.status(submitted[0]!)).toEqual(status);
    expect(existsSync(join(logDir, 'afluente_run=1_job=11_split_tables.pid'))).toBe(false);
    await runner.close();
  }, 120_000);

  describe('on an s3:// lake', () => {
    const s3 = s3Lakes();

    it('stages the inputs through a temp folder and copies the outputs back, without Spark’s side files', async () => {
      const lake = await s3.lake();
      const runner = openStepRunner(config, lake, logger);
      const input = 'validated/source=demo/dt=2026-01-31/run=2/part-00000.ndjson';
      const table = 'curated/demo/dt=2026-01-31/run=2/';
      const marker = 'steps/source=demo/dt=2026-01-31/run=2/load_warehouse.result.json';
      const req = request('load_warehouse', 2, { inputs: [input], outputs: [table, marker] });
      await lake.put(input, '{"id":1}\n{"id":2}\n{"id":3}\n');
      await lake.put('validated/source=demo/dt=2026-01-31/run=2/not-an-input.ndjson', '{"id":9}\n');
      await lake.put(
        req.specKey,
        JSON.stringify({
          runId: 2,
          lakeRoot: lake.root,
          fixture: 'ok',
          inputs: [input],
          outputs: [table, marker],
        }),
      );

      const status = await runner.run(req, {
        signal: new AbortController().signal,
        onSubmitted: async () => {},
      });

      expect(status).toMatchObject({ state: 'COMPLETED' });
      const written = [];
      for await (const object of lake.list(table)) written.push(object.key);
      expect(written).toEqual([
        expect.stringMatching(/^curated\/demo\/dt=2026-01-31\/run=2\/part-00000-.*\.parquet$/),
      ]);
      expect((await lake.getBytes(written[0]!)).subarray(0, 4).toString()).toBe('PAR1');
      const result = JSON.parse((await lake.getBytes(marker)).toString());
      const staged = result.argv[1] as string;
      expect(result).toEqual({
        job: 'load_warehouse',
        rows: 3,
        // The password reached the step's environment, and nowhere in its arguments.
        passwordSha256: createHash('sha256').update(PASSWORD).digest('hex'),
        argv: ['--spec', staged, '--lake-root', expect.stringMatching(/^file:\/\//)],
        timeZone: 'UTC',
      });
      expect(staged).toMatch(/^file:\/\/.*\/steps\/source=demo\/dt=2026-01-31\/run=2\/load_warehouse\.json$/);
      // The temp folder is gone: only the step's log is left.
      expect(
        await readdir(join(config.steps.spark.tempDir, 'afluente-steps', config.queue.prefix)),
      ).not.toContainEqual(expect.stringContaining('run=2_job=21_load_warehouse.stage-'));
      await runner.close();
    }, 120_000);
  });

  it('kills the step’s whole process group when its signal aborts, and reports it CANCELLED', async () => {
    const { lake, dir } = await fileLake('lake-cancel');
    const runner = openStepRunner(config, lake, logger);
    const req = request('split_tables', 3);
    await lake.put(req.specKey, JSON.stringify({ runId: 3, lakeRoot: lake.root, fixture: 'sleep' }));
    const controller = new AbortController();
    let handle: StepHandle | undefined;
    const running = runner.run(req, {
      signal: controller.signal,
      onSubmitted: async (h) => void (handle = h),
    });
    running.catch(() => {});

    // Wait until Spark's Python workers sleep in their task: the JVM, the driver and the workers all exist.
    await waitFor(
      async () => (existsSync(join(dir, 'started')) ? true : undefined),
      'the step to start',
      90_000,
    );
    const pid = Number(/^local:(\d+)$/.exec(handle?.stepId ?? '')?.[1]);
    const members = await waitFor(
      async () => {
        const found = await groupMembers(pid);
        return found.filter((m) => m.cmd.includes('python')).length >= 2 ? found : undefined;
      },
      'Spark’s Python workers',
      30_000,
    );
    expect(members.some((m) => m.cmd.includes('java'))).toBe(true);
    expect(await runner.status(handle!)).toEqual({ state: 'RUNNING', logs: handle?.logs });

    controller.abort({ kind: 'cancelled' });
    await expect(running).rejects.toEqual({ kind: 'cancelled' });

    expect(await groupMembers(pid)).toEqual([]);
    expect(members.filter((m) => alive(m.pid))).toEqual([]);
    expect(await runner.status(handle!)).toEqual({ state: 'CANCELLED', logs: handle?.logs });
    await runner.close();
  }, 120_000);

  it('tells a step whose process is gone from one another worker left running, and cancels the latter', async () => {
    const { lake } = await fileLake('lake-lost');
    const runner = new LocalStepRunner({ lake, logger, spark: config.steps.spark, killGraceMs: 1000 });
    const gone = spawn('true');
    await once(gone, 'exit');
    const lost = { stepId: `local:${gone.pid}` };
    const expected = {
      state: 'FAILED',
      reason: 'step_lost',
      message: "the local step's process is gone; it ran in another worker that stopped",
    };
    expect(await runner.status(lost)).toEqual(expected);
    expect(await runner.cancel(lost)).toEqual(expected);

    const leftover = await fakeLeftoverStep();
    const orphan = { stepId: `local:${leftover}` };
    expect(await runner.status(orphan)).toMatchObject({ state: 'RUNNING' });
    expect(await runner.cancel(orphan)).toEqual({ state: 'CANCELLED' });
    expect(alive(leftover)).toBe(false);
    await expect(runner.status({ stepId: 'j-123' })).rejects.toThrow('not a local step id: "j-123"');
  });
});
