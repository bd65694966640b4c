import type { EntityManager } from '@mikro-orm/mysql';
import { UnrecoverableError } from 'bullmq';
import { CronExpressionParser } from 'cron-parser';
import { Redis } from 'ioredis';
import { createConnection } from 'mysql2/promise';
import { setTimeout as sleep } from 'node:timers/promises';
import request from 'supertest';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Schedule } from '../../contract/source-config.ts';
import { loadSources, type LoadedSource, type LoadedSources } from '../../service/config/sources.ts';
import { BadRequestError, ConflictError } from '../../service/errors.ts';
import { createLogger } from '../../service/observability/logger.ts';
import { SourceScheduler, type TickData } from '../../service/orchestration/source-scheduler.ts';
import { Run } from '../../service/state/entities/index.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { dropTestState, testConfig, TOKEN } from '../support/env.ts';
import { waitFor } from '../support/wait.ts';

const auth = { authorization: `Bearer ${TOKEN}` };
const silent = createLogger('silent');
const LISBON: Schedule = { cron: '0 3 * * *', timezone: 'Europe/Lisbon' };
const EVERY_SECOND: Schedule = { cron: '* * * * * *' };

/** The shipped demo source under several names, each with the given schedule (or none). */
async function sourcesWith(schedules: Record<string, Schedule | undefined>): Promise<LoadedSources> {
  const shipped = await loadSources('config/sources.yaml');
  const demo = shipped.sources.get('demo');
  if (!demo) throw new Error('config/sources.yaml has no demo source');
  const { schedule: _none, ...base } = demo;
  return {
    ...shipped,
    sources: new Map(
      Object.entries(schedules).map(([name, schedule]): [string, LoadedSource] => [
        name,
        schedule ? { ...base, name, schedule } : { ...base, name },
      ]),
    ),
  };
}

// Schedulers made straight on the queue prefix, the way several instances of the service would.
const schedulers: SourceScheduler[] = [];
const connections: Redis[] = [];
function scheduler(
  prefix: string,
  runs: ConstructorParameters<typeof SourceScheduler>[0]['runs'] = {
    create: () => Promise.reject(new Error('no runs here')),
  },
  sources: LoadedSources['sources'] = new Map(),
): SourceScheduler {
  const connection = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
  connections.push(connection);
  const s = new SourceScheduler({ connection, prefix, logger: silent, runs, sources: () => sources });
  schedulers.push(s);
  return s;
}

const apps: TestApp[] = [];
async function start(options: Parameters<typeof startTestApp>[0]): Promise<TestApp> {
  const t = await startTestApp(options);
  apps.push(t);
  return t;
}

const configs: ReturnType<typeof testConfig>[] = [];
function config(): ReturnType<typeof testConfig> {
  const c = testConfig({ AFLUENTE_ROLES: 'api,scheduler' });
  configs.push(c);
  return c;
}

afterEach(async () => {
  for (const s of schedulers.splice(0)) await s.close();
  for (const c of connections.splice(0)) await c.quit();
  for (const t of apps.splice(0).reverse()) await t.close();
});
afterAll(async () => {
  for (const c of configs) await dropTestState(c);
});

const em = (t: TestApp): EntityManager => t.app.orm.em.fork();
const scheduledRuns = (t: TestApp): Promise<Run[]> =>
  em(t).find(Run, { trigger: 'schedule' }, { orderBy: { id: 'asc' } });
/** The fire time a scheduled run was made for, from its idempotency key. */
function tickOf(run: Run): number {
  const match = /^schedule:demo:(\d+)$/.exec(run.idempotencyKey ?? '');
  if (!match) throw new Error(`run ${run.id} has no schedule key: ${run.idempotencyKey}`);
  return Number(match[1]);
}

describe('schedules: one BullMQ job scheduler per scheduled source', () => {
  it('converges to exactly one scheduler per source when instances sync at once, and again on every restart', async () => {
    const {
      queue: { prefix },
    } = config();
    const sources = await sourcesWith({ demo: LISBON, hourly: { cron: '*/15 * * * *' }, plain: undefined });

    const reports = await Promise.all(
      [scheduler(prefix), scheduler(prefix), scheduler(prefix)].map((s) => s.sync(sources.sources.values())),
    );
    for (const report of reports) expect(report.removed).toEqual([]);

    const reader = scheduler(prefix);
    const inRedis = async () =>
      (await reader.queue.getJobSchedulers())
        .map((s) => ({ key: s.key, pattern: s.pattern, tz: s.tz, next: s.next, data: s.template?.data }))
        .sort((a, b) => a.key.localeCompare(b.key));
    const first = await inRedis();
    expect(first).toEqual([
      {
        key: 'source:demo',
        pattern: '0 3 * * *',
        tz: 'Europe/Lisbon',
        next: expect.any(Number),
        data: { source: 'demo' },
      },
      {
        key: 'source:hourly',
        pattern: '*/15 * * * *',
        tz: 'UTC',
        next: expect.any(Number),
        data: { source: 'hourly' },
      },
    ]);
    // One pending tick per scheduler, not one per instance that synced.
    expect(await reader.queue.getJobCountByTypes('delayed', 'waiting')).toBe(2);

    // A restart loop: each new instance finds its schedulers as configured and leaves them, pending tick and all.
    for (let i = 0; i < 5; i += 1) {
      const restarted = scheduler(prefix);
      expect(await restarted.sync(sources.sources.values())).toEqual({
        upserted: [],
        kept: ['source:demo', 'source:hourly'],
        removed: [],
      });
      await restarted.close();
    }
    expect(await inRedis()).toEqual(first);
    expect(await reader.queue.getJobCountByTypes('delayed', 'waiting')).toBe(2);
    for (const s of first) expect(await reader.queue.getJob(`repeat:${s.key}:${s.next}`)).toBeDefined();
  });

  it('keeps one scheduler when two service instances start at once and one restarts in a loop', async () => {
    const cfg = config();
    const sources = await sourcesWith({ demo: EVERY_SECOND, plain: undefined });
    // MikroORM's create-database-if-missing races itself when two instances boot on an empty server.
    const url = new URL(cfg.mysql.url);
    const database = url.pathname.slice(1);
    url.pathname = '/';
    const conn = await createConnection({ uri: url.toString() });
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${database}\``);
    await conn.end();
    const startedAt = Date.now();
    const [a] = await Promise.all([start({ config: cfg, sources }), start({ config: cfg, sources })]);
    if (!a) throw new Error('no app');
    for (let i = 0; i < 3; i += 1) {
      const restarted = await startTestApp({ config: cfg, sources });
      await restarted.app.close();
    }
    const reader = scheduler(cfg.queue.prefix);
    const inRedis = await reader.queue.getJobSchedulers();
    expect(inRedis.map((s) => [s.key, s.pattern, s.tz])).toEqual([['source:demo', '* * * * * *', 'UTC']]);

    // Both instances take ticks; each tick is one run.
    const runs = await waitFor(
      async () => {
        const found = await scheduledRuns(a);
        return found.length >= 3 ? found : undefined;
      },
      'three scheduled runs',
      10_000,
    );
    const ticks = runs.map(tickOf);
    expect(new Set(ticks).size).toBe(ticks.length);
    expect(runs.length).toBeLessThanOrEqual(Math.floor((Date.now() - startedAt) / 1000) + 1);
    // One pending tick at most (none only in the instant between taking a tick and adding the next).
    expect(await reader.queue.getJobCountByTypes('delayed', 'waiting')).toBeLessThanOrEqual(1);
  });

  it('removes the scheduler of a schedule taken out of the config, and only schedulers it owns', async () => {
    const {
      queue: { prefix },
    } = config();
    const s = scheduler(prefix);
    await s.sync((await sourcesWith({ demo: LISBON, hourly: { cron: '*/15 * * * *' } })).sources.values());
    // Someone else's scheduler in the same queue is not the service's to remove.
    await s.queue.upsertJobScheduler('other:thing', { pattern: '0 0 * * *' });
    const hourly = await s.queue.getJobScheduler('source:hourly');
    expect(hourly?.next).toEqual(expect.any(Number));

    const changed = await sourcesWith({
      demo: { cron: '30 4 * * *', timezone: 'Europe/Lisbon' },
      hourly: undefined,
    });
    expect(await s.sync(changed.sources.values())).toEqual({
      upserted: ['source:demo'],
      kept: [],
      removed: ['source:hourly'],
    });

    const left = (await s.queue.getJobSchedulers()).map((j) => [j.key, j.pattern]).sort();
    expect(left).toEqual([
      ['other:thing', '0 0 * * *'],
      ['source:demo', '30 4 * * *'],
    ]);
    expect(await s.queue.getJobScheduler('source:hourly')).toBeUndefined();
    expect(await s.queue.getJob(`repeat:source:hourly:${hourly?.next}`)).toBeUndefined();
    expect(await s.nextRunAt('hourly')).toBeNull();
    // The changed schedule has exactly one pending tick, at its new time.
    const pending = (await s.queue.getJobs(['delayed', 'waiting'])).map((j) => j.id ?? '');
    const demo = await s.queue.getJobScheduler('source:demo');
    expect(pending.filter((id) => id.startsWith('repeat:source:'))).toEqual([
      `repeat:source:demo:${demo?.next}`,
    ]);
  });

  it('shows the next fire time of each source in GET /sources and GET /sources/:name', async () => {
    const sources = await sourcesWith({ demo: LISBON, plain: undefined });
    const t = await start({ config: config(), sources });
    const before = new Date();

    const res = await request(t.app.server).get('/sources/demo').set(auth);
    expect(res.status).toBe(200);
    const scheduled = await t.app.sourceScheduler?.queue.getJobScheduler('source:demo');
    expect(res.body.nextRunAt).toBe(new Date(scheduled?.next ?? 0).toISOString());
    // Computed on its own: the next 03:00 in Lisbon, whatever the offset that day.
    const expected = CronExpressionParser.parse('0 3 * * *', { tz: 'Europe/Lisbon', currentDate: before })
      .next()
      .toISOString();
    expect(res.body.nextRunAt).toBe(expected);
    const at = new Date(res.body.nextRunAt as string);
    expect(at.getTime()).toBeGreaterThan(before.getTime());
    expect(at.getTime() - before.getTime()).toBeLessThanOrEqual(25 * 3600 * 1000);
    const lisbon = new Intl.DateTimeFormat('en-GB', {
      timeZone: 'Europe/Lisbon',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    expect(lisbon.format(at)).toBe('03:00:00');

    const plain = await request(t.app.server).get('/sources/plain').set(auth);
    expect(plain.status).toBe(200);
    expect(plain.body).toMatchObject({ schedule: null, nextRunAt: null });

    const list = await request(t.app.server).get('/sources').set(auth);
    const byName = Object.fromEntries(
      list.body.items.map((s: { name: string; nextRunAt: string | null }) => [s.name, s.nextRunAt]),
    );
    expect(byName).toEqual({ demo: expected, plain: null });
  });

  it('creates a run with trigger "schedule" on each tick', async () => {
    const t = await start({ config: config(), sources: await sourcesWith({ demo: EVERY_SECOND }) });
    const runs = await waitFor(
      async () => {
        const found = await scheduledRuns(t);
        return found.length >= 2 ? found : undefined;
      },
      'two scheduled runs',
      10_000,
    );
    for (const run of runs) {
      expect(run).toMatchObject({ source: 'demo', trigger: 'schedule' });
      // The key names the tick: a whole second, for a per-second cron.
      expect(tickOf(run) % 1000).toBe(0);
    }
    expect(new Set(runs.map(tickOf)).size).toBe(runs.length);
  });

  it('makes one run of a tick processed twice, and drops a tick of a source without a schedule', async () => {
    const t = await start({
      config: config(),
      sources: await sourcesWith({ demo: LISBON, plain: undefined }),
    });
    const s = t.app.sourceScheduler;
    if (!s) throw new Error('no source scheduler');
    const tick = (source: string, millis: number) => ({
      data: { source } satisfies TickData,
      id: `repeat:source:${source}:${millis}`,
      opts: { prevMillis: millis },
      timestamp: millis - 1000,
    });

    const [a, b] = await Promise.all([
      s.processTick(tick('demo', 1_800_000_000_000)),
      s.processTick(tick('demo', 1_800_000_000_000)),
    ]);
    expect([a.outcome, b.outcome].sort()).toEqual(['created', 'replayed']);
    expect(a).toMatchObject({ key: 'schedule:demo:1800000000000' });
    expect('runId' in a && 'runId' in b && a.runId === b.runId).toBe(true);
    const again = await s.processTick(tick('demo', 1_800_000_000_000));
    expect(again).toMatchObject({ outcome: 'replayed', runId: 'runId' in a ? a.runId : -1 });

    // The next tick is a run of its own.
    const next = await s.processTick(tick('demo', 1_800_000_060_000));
    expect(next.outcome).toBe('created');

    expect(await s.processTick(tick('plain', 1_800_000_000_000))).toEqual({ outcome: 'dropped' });
    expect(await s.processTick(tick('gone', 1_800_000_000_000))).toEqual({ outcome: 'dropped' });
    const runs = await scheduledRuns(t);
    expect(runs.map((r) => r.idempotencyKey)).toEqual([
      'schedule:demo:1800000000000',
      'schedule:demo:1800000060000',
    ]);
  });

  it('reprocessing a real tick job returns the run it made', async () => {
    const t = await start({ config: config(), sources: await sourcesWith({ demo: EVERY_SECOND }) });
    const s = t.app.sourceScheduler;
    if (!s) throw new Error('no source scheduler');
    const [job] = await waitFor(
      async () => {
        const done = await s.queue.getCompleted();
        return done.length > 0 ? done : undefined;
      },
      'a completed tick',
      10_000,
    );
    if (!job) throw new Error('no completed tick');
    const original = (await scheduledRuns(t)).find((r) => tickOf(r) === job.opts.prevMillis);
    expect(original).toBeDefined();
    expect(job.id).toBe(`repeat:source:demo:${job.opts.prevMillis}`);

    const replayed = await s.processTick(job);
    expect(replayed).toEqual({
      outcome: 'replayed',
      runId: original?.id,
      key: `schedule:demo:${job.opts.prevMillis}`,
    });
    const withKey = await em(t).count(Run, { idempotencyKey: `schedule:demo:${job.opts.prevMillis}` });
    expect(withKey).toBe(1);
  });

  it('treats a refused run as done, and a refusal other than a conflict as not worth a retry', async () => {
    const {
      queue: { prefix },
    } = config();
    const sources = (await sourcesWith({ demo: LISBON })).sources;
    const tick = {
      data: { source: 'demo' },
      id: 'repeat:source:demo:1',
      opts: { prevMillis: 1 },
      timestamp: 0,
    };
    const refusing = (error: Error) => scheduler(prefix, { create: () => Promise.reject(error) }, sources);

    expect(
      await refusing(new ConflictError('source "demo" already has 1 active run(s)')).processTick(tick),
    ).toEqual({
      outcome: 'rejected',
      key: 'schedule:demo:1',
    });
    await expect(
      refusing(new BadRequestError('unknown source "demo"')).processTick(tick),
    ).rejects.toBeInstanceOf(UnrecoverableError);
    // A transient error is thrown as is, so BullMQ retries the tick (with the same key).
    const down = new Error('connect ECONNREFUSED');
    await expect(refusing(down).processTick(tick)).rejects.toBe(down);
  });

  it('makes one run for the ticks missed while no scheduler was up, then one per tick', async () => {
    const cfg = config();
    const sources = await sourcesWith({ demo: EVERY_SECOND });
    const first = await startTestApp({ config: cfg, sources });
    try {
      await waitFor(
        async () => ((await scheduledRuns(first)).length > 0 ? true : undefined),
        'a first tick',
        10_000,
      );
    } finally {
      await first.app.close();
    }
    const stoppedAt = Date.now();

    const reader = scheduler(cfg.queue.prefix);
    const pending = (await reader.queue.getJobScheduler('source:demo'))?.next;
    if (pending === undefined) throw new Error('no pending tick after the scheduler stopped');

    // Down for more than four ticks of a per-second cron.
    await sleep(4500);
    const restartAt = Date.now();
    expect(restartAt - Math.max(pending, stoppedAt)).toBeGreaterThanOrEqual(3000);
    const second = await start({ config: cfg, sources });

    // Wait until the schedule is back on its regular ticks, two of them after the restart.
    const after = await waitFor(
      async () => {
        const made = (await scheduledRuns(second)).filter((r) => r.createdAt.getTime() >= restartAt);
        return made.filter((r) => tickOf(r) > restartAt).length >= 2 ? made : undefined;
      },
      'two regular ticks after the restart',
      10_000,
    );
    const observedAt = Date.now();
    const missed = after.filter((r) => tickOf(r) <= restartAt);
    // One run stands for the missed period: the tick that was pending when the scheduler stopped.
    expect(missed.map(tickOf)).toEqual([pending]);
    // After it, no catching up: at most one run per second since the restart.
    const regular = after.filter((r) => tickOf(r) > restartAt);
    expect(regular.length).toBeLessThanOrEqual(Math.floor((observedAt - restartAt) / 1000) + 1);
    for (const run of regular) expect(tickOf(run) % 1000).toBe(0);
  }, 40_000);
});
