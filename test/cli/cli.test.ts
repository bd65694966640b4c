import type { EntityManager } from '@mikro-orm/mysql';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_BASE_TIME } from '../../demo/source-api/records.ts';
import { startDemoApi, type DemoApi } from '../../demo/source-api/server.ts';
import {
  NonRetryableError,
  type StageContext,
  type StageHandlers,
} from '../../service/orchestration/stage-handler.ts';
import { Run, SourceState } from '../../service/state/entities/index.ts';
import { demoSourcesAt, finishedRun, startTestApp, withMaxActiveRuns, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';
import { freePort } from '../support/net.ts';
import { waitFor } from '../support/wait.ts';
import { chooseEngine } from '../../service/stages/engine-choice.ts';

// `npx afluente` as a child process against the real service on a port (real MariaDB and Redis), with the real
// ingest and validate (local Lambdas) against the demo source API. Transform and load are stand-ins: they report
// what the Spark steps would, and fail or hold when a case tells them to. The demo source gets
// maxActiveRuns 1, so a held run makes the next one wait behind it.

const RECORDS = 250;
let api: DemoApi;
let t: TestApp;
let url: string;

const control = { failTransform: false, holdLoad: false };
const untilAborted = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) =>
    signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }),
  );
const handlers: Partial<StageHandlers> = {
  transform: async ({ run, job }: StageContext<'transform'>) => {
    // What the real stage records before its step, for a run that asks for an engine (`--engine`).
    if (run.params?.engine) {
      const choice = chooseEngine({
        requested: run.params.engine,
        configured: 'auto',
        validatedBytes: 0,
        maxEmbeddedBytes: 0,
      });
      await t.app.engine.recordEngine(job.id, run.id, choice);
    }
    if (control.failTransform) {
      control.failTransform = false;
      throw new NonRetryableError('transform_failed', 'the transform fails on purpose');
    }
    const valid = run.valid ?? 0;
    return {
      counts: { duplicates: 0 },
      metrics: { read: valid, duplicates: 0, tables: { orders: valid, order_items: 2 * valid } },
    };
  },
  load: async ({ run, signal }: StageContext<'load'>) => {
    if (control.holdLoad) await untilAborted(signal);
    const rows = { orders: run.valid ?? 0, order_items: 2 * (run.valid ?? 0) };
    return { rows, metrics: { rows } };
  },
};

beforeAll(async () => {
  api = await startDemoApi({ records: RECORDS, pageSize: 100 });
  t = await startTestApp({
    sources: await withMaxActiveRuns(1, await demoSourcesAt(`${api.url}/orders`)),
    handlers,
    env: { AFLUENTE_LAKE_URI: `file://${await mkdtemp(join(tmpdir(), 'afluente-cli-'))}` },
  });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await t?.close();
  await api?.close();
});

const em = (): EntityManager => t.app.orm.em.fork();
/** The demo source is incremental: start a case from no cursor, so its run pulls the whole source. */
const resetCursor = () => em().nativeUpdate(SourceState, { source: 'demo' }, { cursor: null });
const runInDb = (id: number) => em().findOneOrFail(Run, id);

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts the CLI the way the bin does (`cli/afluente.mjs`) on this Node 24, talking to the test service. */
function start(
  args: string[],
  env: Record<string, string | undefined> = {},
): ChildProcess & { output: Result } {
  const { AFLUENTE_URL: _u, AFLUENTE_TOKEN: _t, ...inherited } = process.env;
  const child = spawn(process.execPath, ['cli/afluente.mjs', ...args], {
    env: { ...inherited, AFLUENTE_URL: url, AFLUENTE_TOKEN: TOKEN, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: Result = { code: null, stdout: '', stderr: '' };
  child.stdout.on('data', (d: Buffer) => (output.stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output.stderr += d.toString()));
  return Object.assign(child, { output });
}

async function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Result> {
  const child = start(args, env);
  const [code] = (await once(child, 'exit')) as [number | null];
  return { ...child.output, code };
}

/** The last line printed for a stage (the plain output prints a stage again each time it changes). */
function stageLine(stdout: string, stage: string): string {
  const lines = stdout.split('\n').filter((l) => new RegExp(`^  ${stage} +\\[`).test(l));
  expect(lines.length, `no line for stage ${stage} in:\n${stdout}`).toBeGreaterThan(0);
  return lines.at(-1) as string;
}

const runIdIn = (stdout: string): number => {
  const id = /^run (\d+) of demo created: /m.exec(stdout)?.[1];
  expect(id, stdout).toBeDefined();
  return Number(id);
};

describe('npx afluente against a running service', () => {
  let failedId: number;

  it('run --wait follows a run stage by stage with records and elapsed time, and exits 0 when it completes', async () => {
    await resetCursor();
    const res = await cli(['run', 'demo', '--wait', '--interval', '0.2']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const id = runIdIn(res.stdout);
    expect(res.stdout).toContain(`run ${id} of demo created: ${url}/runs/${id}\n`);

    const run = await runInDb(id);
    expect(run.status).toBe('COMPLETED');
    expect(run.fetched).toBe(RECORDS);
    const valid = run.valid ?? -1;
    const n = (x: number) => x.toLocaleString('en-US');
    // Every stage's last line: a full bar, done, its elapsed time, and what it counted.
    const elapsed = '\\d+(\\.\\d)?s';
    expect(stageLine(res.stdout, 'ingest')).toMatch(new RegExp(`\\[█{20}\\] done +${elapsed}  250 fetched$`));
    expect(stageLine(res.stdout, 'validate')).toMatch(
      new RegExp(`\\[█{20}\\] done +${elapsed}  ${n(valid)} valid, ${n(run.rejected ?? -1)} rejected$`),
    );
    expect(stageLine(res.stdout, 'transform')).toMatch(
      new RegExp(
        `\\[█{20}\\] done +${elapsed}  read ${n(valid)} → orders ${n(valid)}, order_items ${n(2 * valid)}$`,
      ),
    );
    expect(stageLine(res.stdout, 'load')).toMatch(
      new RegExp(`\\[█{20}\\] done +${elapsed}  rows orders ${n(valid)}, order_items ${n(2 * valid)}$`),
    );
    // Before a stage ran it was shown waiting, with an empty bar.
    expect(res.stdout).toMatch(/^ {2}load +\[░{20}\] waiting$/m);
    expect(res.stdout).toMatch(
      new RegExp(
        `^run ${id} COMPLETED in ${elapsed}: 250 fetched, ${n(valid)} valid, ${n(run.rejected ?? -1)} rejected; ` +
          `rows orders ${n(valid)}, order_items ${n(2 * valid)}$`,
        'm',
      ),
    );
  });

  it('run --wait exits 1 on a failed run and says which stage failed and why', async () => {
    await resetCursor();
    control.failTransform = true;
    const res = await cli(['run', 'demo', '--wait', '--interval', '0.2']);
    expect(res.code).toBe(1);
    failedId = runIdIn(res.stdout);
    expect((await runInDb(failedId)).status).toBe('FAILED');
    expect(res.stderr).toContain(
      `run ${failedId} FAILED: transform_failed at stage transform (attempt 1): the transform fails on purpose\n`,
    );
    expect(res.stderr).toContain(`retry it from the failed stage: npx afluente retry ${failedId}`);
    expect(stageLine(res.stdout, 'ingest')).toMatch(/done .* 250 fetched$/);
    expect(stageLine(res.stdout, 'transform')).toMatch(/\[░{20}\] failed +\d+(\.\d)?s {2}transform_failed$/);
    expect(stageLine(res.stdout, 'load')).toMatch(/\[░{20}\] not run$/);
  });

  it('runs lists runs as a table, filters by status, and prints JSON with --json', async () => {
    const table = await cli(['runs']);
    expect(table.code).toBe(0);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    expect(header).toMatch(
      /^ID +SOURCE +STATUS +STAGE +TRIGGER +ATTEMPT +FETCHED +VALID +REJECTED +ROWS +CREATED +TOOK$/,
    );
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatch(new RegExp(`^ *${failedId} +demo +FAILED +transform +manual +1 +250 `));
    expect(rows[1]).toMatch(/ demo +COMPLETED +load +manual +1 +250 /);

    const failed = await cli(['runs', '--status', 'failed', '--json']);
    expect(failed.code).toBe(0);
    const page = JSON.parse(failed.stdout);
    expect(page.items.map((r: { id: number }) => r.id)).toEqual([failedId]);
    expect(page.nextCursor).toBeNull();

    const paged = await cli(['runs', '--limit', '1']);
    expect(paged.stdout).toMatch(/^more: npx afluente runs --cursor \S+$/m);
  });

  it('retry --wait resumes the failed run from its failed stage and exits 0 when it completes', async () => {
    const res = await cli(['retry', String(failedId), '--engine', 'spark', '--wait', '--interval', '0.2']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(
      `run ${failedId} retried as attempt 2 from stage transform on engine spark: ${url}/runs/${failedId}\n`,
    );
    expect(res.stdout).toMatch(new RegExp(`^run ${failedId} COMPLETED in `, 'm'));
    expect(stageLine(res.stdout, 'transform')).toMatch(/done .* on spark · read \d+ → orders/);
    expect(await runInDb(failedId)).toMatchObject({
      status: 'COMPLETED',
      attempt: 2,
      params: { engine: 'spark' },
      engine: 'spark',
    });

    // A second retry of a run that is no longer FAILED: the service's 409, and exit code 3.
    const again = await cli(['retry', String(failedId)]);
    expect(again.code).toBe(3);
    expect(again.stderr).toContain(
      `answered 409 Conflict: run ${failedId} is COMPLETED: only a FAILED run can be retried`,
    );
  });

  it('show prints the run, its stages and its attempt history; --json prints the API view', async () => {
    const res = await cli(['show', String(failedId)]);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`run ${failedId} (demo, manual, attempt 2): COMPLETED\n`);
    expect(res.stdout).toMatch(
      /^ {2}counts {3}250 fetched, \d+ valid, \d+ rejected; rows orders \d+, order_items \d+$/m,
    );
    expect(stageLine(res.stdout, 'transform')).toMatch(/\[█{20}\] done/);
    // The attempt history: transform failed in attempt 1 and ran again in attempt 2.
    expect(res.stdout).toMatch(
      /^ +\d+ +transform +1 +FAILED +1\/\d+ +\S+ +transform_failed: the transform fails on purpose$/m,
    );
    expect(res.stdout).toMatch(/^ +\d+ +transform +2 +COMPLETED +spark /m);
    expect(res.stdout).toMatch(/^ {2}engine {3}spark \(requested on the run\)$/m);
    expect(res.stdout).toMatch(/^files {4}raw \d+ \(250 records\), validated /m);

    const json = await cli(['show', String(failedId), '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: failedId, status: 'COMPLETED', attempt: 2 });
    // --wait with --json: no bars, the finished run's JSON, and the exit code of its status.
    const waited = await cli(['show', String(failedId), '--wait', '--json']);
    expect(waited.code).toBe(0);
    expect(JSON.parse(waited.stdout)).toMatchObject({ id: failedId, status: 'COMPLETED' });
  });

  it('cancel cancels a run waiting behind another; Ctrl-C while waiting leaves the run going', async () => {
    await resetCursor();
    control.holdLoad = true;
    const first = await cli(['run', 'demo']);
    expect(first.code).toBe(0);
    const held = runIdIn(first.stdout);
    expect(first.stdout).toContain(`follow it: npx afluente show ${held} --wait\n`);
    await waitFor(
      async () => ((await runInDb(held)).stage === 'load' ? true : undefined),
      'the load to start',
    );

    // maxActiveRuns 1: the next run waits, and says behind which.
    const second = await cli(['run', 'demo']);
    const waiting = runIdIn(second.stdout);
    expect(second.stdout).toContain(`run ${waiting} is queued behind run ${held} `);
    const cancelled = await cli(['cancel', String(waiting), '--reason', 'not needed']);
    expect(cancelled.stderr).toBe('');
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toContain(`run ${waiting} CANCELLED by tester`);
    expect(await runInDb(waiting)).toMatchObject({ status: 'CANCELLED', cancelledBy: 'tester' });
    const twice = await cli(['cancel', String(waiting)]);
    expect(twice.code).toBe(3);
    expect(twice.stderr).toContain(`answered 409 Conflict: run ${waiting} is already CANCELLED`);

    // Following the held run, then Ctrl-C: the CLI stops waiting and the run goes on.
    const follow = start(['show', String(held), '--wait', '--interval', '0.2']);
    await waitFor(
      async () => (/^ {2}load +\[.*\] running/m.test(follow.output.stdout) ? true : undefined),
      'the CLI to show the load running',
    );
    follow.kill('SIGINT');
    const [code] = (await once(follow, 'exit')) as [number | null];
    expect(code).toBe(130);
    expect(follow.output.stderr).toContain(`stopped waiting: run ${held} goes on in the service\n`);
    expect(follow.output.stderr).toContain(`cancel it: npx afluente cancel ${held}\n`);
    expect((await runInDb(held)).status).toBe('RUNNING');

    const stop = await cli(['cancel', String(held)]);
    expect(stop.code).toBe(0);
    control.holdLoad = false;
    expect((await finishedRun(t, held)).status).toBe('CANCELLED');
  });

  it('names the HTTP status and the server message: an unknown run (404), no token or a wrong one (401)', async () => {
    const missing = await cli(['show', '999999']);
    expect(missing.code).toBe(3);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toContain(
      `afluente: GET ${url}/runs/999999 answered 404 Not Found: run 999999 not found\n`,
    );

    const anonymous = await cli(['runs'], { AFLUENTE_TOKEN: undefined });
    expect(anonymous.code).toBe(3);
    expect(anonymous.stderr).toContain('answered 401 Unauthorized: missing bearer token');
    expect(anonymous.stderr).toContain('AFLUENTE_TOKEN is not set');

    const wrong = await cli(['runs'], { AFLUENTE_TOKEN: 'not-the-token-0123456789' });
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toContain('answered 401 Unauthorized: invalid bearer token');
    expect(wrong.stderr).toContain('the service refused the token in AFLUENTE_TOKEN');
    expect(wrong.stderr + wrong.stdout).not.toContain('not-the-token');
  });

  it('exits 3 naming the URL when the service cannot be reached, and 2 on a usage error', async () => {
    const port = await freePort();
    const down = await cli(['runs', '--url', `http://127.0.0.1:${port}`]);
    expect(down.code).toBe(3);
    expect(down.stderr).toContain(`afluente: could not reach http://127.0.0.1:${port}/runs?limit=20: `);

    const noSource = await cli(['run']);
    expect(noSource.code).toBe(2);
    expect(noSource.stderr).toContain("error: missing required argument 'source'");
    const badEngine = await cli(['run', 'demo', '--engine', 'duckdb']);
    expect(badEngine.code).toBe(2);
    expect(badEngine.stderr).toContain(
      "option '--engine <engine>' argument 'duckdb' is invalid. Allowed choices are auto, embedded, spark.",
    );
    const badStatus = await cli(['runs', '--status', 'DONE']);
    expect(badStatus.code).toBe(2);
    expect(badStatus.stderr).toContain('one of PENDING, RUNNING, COMPLETED, FAILED, CANCELLED');
    const badUrl = await cli(['runs'], { AFLUENTE_URL: 'not a url' });
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toContain('AFLUENTE_URL) "not a url" is not a URL');
  });

  it('draws cli-progress bars on a terminal', async () => {
    // `script` gives the CLI a pseudo-terminal, as an interactive shell would.
    await resetCursor();
    const command = `${process.execPath} cli/afluente.mjs run demo --wait --interval 0.2`;
    const child = spawn('script', ['-qefc', command, '/dev/null'], {
      env: { ...process.env, AFLUENTE_URL: url, AFLUENTE_TOKEN: TOKEN, COLUMNS: '120', LINES: '40' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let raw = '';
    child.stdout.on('data', (d: Buffer) => (raw += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code, raw).toBe(0);
    // cli-progress hides the cursor while it draws and shows it again when it stops.
    expect(raw).toContain('\x1B[?25l');
    expect(raw).toContain('\x1B[?25h');
    // eslint-disable-next-line no-control-regex
    const text = raw.replace(/\x1B\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '\n');
    for (const stage of ['ingest', 'validate', 'transform', 'load'])
      expect(text).toMatch(new RegExp(`^ {2}${stage} +\\[█{20}\\] done +\\d+(\\.\\d)?s`, 'm'));
    expect(text).toMatch(/^run \d+ COMPLETED in /m);
  });

  it('works as `npx afluente` from the project root', async () => {
    const child = spawn('npx', ['--no-install', 'afluente', 'runs', '--limit', '1', '--json'], {
      env: { ...process.env, AFLUENTE_URL: url, AFLUENTE_TOKEN: TOKEN },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(JSON.parse(stdout).items).toHaveLength(1);
  });
});

describe('npx afluente backfill', () => {
  // The demo records' updated_at run from the base time to base + 99 s: 100 s in 50 s steps is two windows.
  const base = Date.parse(DEFAULT_BASE_TIME);
  const at = (seconds: number) => new Date(base + seconds * 1000).toISOString();
  const window = ['--from', at(0), '--to', at(100), '--step', 'PT50S'];
  const backfillIdIn = (stdout: string): string => {
    const id = /^backfill (\d+) of demo: /m.exec(stdout)?.[1];
    expect(id, stdout).toBeDefined();
    return id as string;
  };
  const backfillInApi = async (id: string) =>
    (await t.app.inject({ url: `/backfills/${id}`, headers: { authorization: `Bearer ${TOKEN}` } })).json();
  let failedBackfill: string;

  it('backfill --wait shows the windows finished out of all and exits 0 when every window completed', async () => {
    const res = await cli(['backfill', 'demo', ...window, '--wait', '--interval', '0.2']);
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const id = backfillIdIn(res.stdout);
    expect(res.stdout).toContain(
      `backfill ${id} of demo: ${at(0)} → ${at(100)} by PT50S (2 windows): RUNNING\n`,
    );
    expect(res.stdout).toContain(`  ${url}/backfills/${id}\n`);
    // The bar's last line: full, both windows, everything fetched.
    const bars = res.stdout.split('\n').filter((l) => l.startsWith('  windows ['));
    expect(bars.at(-1)).toMatch(/^ {2}windows \[█{20}\] 2\/2 windows finished · 250 fetched · \d+(\.\d)?s$/);
    expect(bars.length).toBeGreaterThan(1);
    expect(res.stdout).toMatch(
      new RegExp(
        `^backfill ${id} COMPLETED: 2 of 2 windows completed; 250 fetched, \\d+ valid, \\d+ rejected; rows orders \\d+, order_items \\d+$`,
        'm',
      ),
    );
    expect(await backfillInApi(id)).toMatchObject({
      status: 'COMPLETED',
      progress: { total: 2, completed: 2 },
    });
  });

  it('backfill --wait exits 1 when a window failed, naming it and its run', async () => {
    control.failTransform = true;
    const res = await cli(['backfill', 'demo', ...window, '--wait', '--interval', '0.2']);
    expect(res.code).toBe(1);
    failedBackfill = backfillIdIn(res.stdout);
    const detail = await backfillInApi(failedBackfill);
    expect(detail).toMatchObject({ status: 'FAILED', progress: { total: 2, completed: 1, failed: 1 } });
    const failed = detail.runs.find((r: { status: string }) => r.status === 'FAILED');
    expect(res.stderr).toContain(`backfill ${failedBackfill} FAILED: 1 of 2 windows completed; `);
    expect(res.stderr).toContain(
      `  window ${failed.window.from} → ${failed.window.to}: run ${failed.id} FAILED\n`,
    );
    expect(res.stderr).toContain(`retry a window with: npx afluente retry ${failed.id}`);
  });

  it('backfill-status prints the windows and their runs, or the API JSON', async () => {
    const res = await cli(['backfill-status', failedBackfill]);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^ {2}2\/2 windows finished · 1 failed · 250 fetched · /m);
    const windows = res.stdout.split('\n').filter((l) => /^ {2}\d{4}-\d\d-\d\dT/.test(l));
    expect(windows).toHaveLength(2);
    expect(windows.filter((l) => / FAILED +transform$/.test(l))).toHaveLength(1);
    expect(windows.filter((l) => / COMPLETED +load$/.test(l))).toHaveLength(1);

    const json = await cli(['backfill-status', failedBackfill, '--json']);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ id: Number(failedBackfill), status: 'FAILED' });
    const waited = await cli(['backfill-status', failedBackfill, '--wait', '--json']);
    expect(waited.code).toBe(1);
    expect(JSON.parse(waited.stdout)).toMatchObject({ id: Number(failedBackfill), status: 'FAILED' });
    const missing = await cli(['backfill-status', '999999']);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('answered 404 Not Found: backfill 999999 not found');
  });

  it('backfill-cancel cancels the windows not yet finished; following it then exits 1', async () => {
    control.holdLoad = true;
    const started = await cli(['backfill', 'demo', ...window]);
    expect(started.code).toBe(0);
    const id = backfillIdIn(started.stdout);
    expect(started.stdout).toContain(`follow it: npx afluente backfill-status ${id} --wait\n`);
    await waitFor(
      async () =>
        (await backfillInApi(id)).runs.some((r: { stage: string }) => r.stage === 'load') ? true : undefined,
      'the first window to reach its load',
    );
    const cancelled = await cli(['backfill-cancel', id]);
    expect(cancelled.stderr).toBe('');
    expect(cancelled.code).toBe(0);
    expect(cancelled.stdout).toMatch(
      new RegExp(`^backfill ${id} of demo: .* \\(2 windows\\): (RUNNING|CANCELLED)$`, 'm'),
    );
    const followed = await cli(['backfill-status', id, '--wait', '--interval', '0.2']);
    control.holdLoad = false;
    expect(followed.code).toBe(1);
    expect(followed.stderr).toContain(`backfill ${id} CANCELLED: 0 of 2 windows completed`);
    expect(await backfillInApi(id)).toMatchObject({ status: 'CANCELLED', progress: { cancelled: 2 } });

    const usage = await cli(['backfill', 'demo', '--from', at(0), '--to', at(100)]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain("error: required option '--step <duration>' not specified");
  });
});
