import type { EntityManager } from '@mikro-orm/mysql';
import type { FastifyInstance } from 'fastify';
import type { Deadlines, Engine } from '../../contract/source-config.ts';
import { buildApp, type AppOptions } from '../../service/app.ts';
import type { Config } from '../../service/config/env.ts';
import { loadSources, type LoadedSources } from '../../service/config/sources.ts';
import { Run } from '../../service/state/entities/index.ts';
import { isTerminal } from '../../service/state/status.ts';
import { waitFor } from './wait.ts';
import { createLogger } from '../../service/observability/logger.ts';
import { dropTestState, testConfig } from './env.ts';

export interface TestApp {
  app: FastifyInstance;
  config: Config;
  /** Closes the app and drops the test file's database and Redis keys. */
  close(): Promise<void>;
}

/** Builds the real app (the one `npm start` runs) against the real MariaDB and Redis, isolated per call. */
export async function startTestApp(
  options: { env?: Record<string, string>; config?: Config } & Partial<Omit<AppOptions, 'config'>> = {},
): Promise<TestApp> {
  const config = options.config ?? testConfig(options.env);
  const sources = options.sources ?? (await loadSources(config.sourcesFile, config.warehouse.schema));
  const app = await buildApp({
    config,
    sources,
    logger: options.logger ?? createLogger(config.log.level),
    handlers: options.handlers,
    catalog: options.catalog,
    lambdaClient: options.lambdaClient,
    emrClient: options.emrClient,
    ui: options.ui,
  });
  await app.ready();
  let closed = false;
  return {
    app,
    config,
    async close() {
      if (!closed) await app.close();
      closed = true;
      await dropTestState(config);
    },
  };
}

/** Waits until a run reaches a final status, and returns it. */
export async function finishedRun(t: TestApp, id: number, timeoutMs = 30_000): Promise<Run> {
  return waitFor(
    async () => {
      const run = await (t.app.orm.em.fork() as EntityManager).findOneOrFail(Run, id);
      return isTerminal(run.status) ? run : undefined;
    },
    `run ${id} to finish`,
    timeoutMs,
  );
}

/** The shipped sources, with the demo source pointed at a test server's URL (and a shorter request timeout). */
export async function demoSourcesAt(url: string, timeoutMs = 2000): Promise<LoadedSources> {
  const shipped = await loadSources('config/sources.yaml');
  const demo = shipped.sources.get('demo');
  if (!demo) throw new Error('config/sources.yaml has no demo source');
  return {
    ...shipped,
    sources: new Map([['demo', { ...demo, request: { ...demo.request, url, timeoutMs } }]]),
  };
}

/**
 * Sources with another `maxActiveRuns` (default: the shipped ones), for tests that keep several runs of one
 * source open at once without a worker to finish them.
 */
export async function withMaxActiveRuns(maxActiveRuns: number, base?: LoadedSources): Promise<LoadedSources> {
  const sources = base ?? (await loadSources('config/sources.yaml'));
  return {
    ...sources,
    sources: new Map([...sources.sources].map(([name, s]) => [name, { ...s, maxActiveRuns }])),
  };
}

/** Sources on another engine (the shipped `demo` is `auto`, which runs a test's small data embedded). */
export async function withEngine(engine: Engine, base?: LoadedSources): Promise<LoadedSources> {
  const sources = base ?? (await loadSources('config/sources.yaml'));
  return {
    ...sources,
    sources: new Map([...sources.sources].map(([name, s]) => [name, { ...s, engine }])),
  };
}

/** Sources with some stage deadlines changed (seconds from the stage's first start; default: the shipped ones). */
export async function withDeadlines(
  deadlines: Partial<Deadlines>,
  base?: LoadedSources,
): Promise<LoadedSources> {
  const sources = base ?? (await loadSources('config/sources.yaml'));
  return {
    ...sources,
    sources: new Map(
      [...sources.sources].map(([name, s]) => [
        name,
        { ...s, deadlineSeconds: { ...s.deadlineSeconds, ...deadlines } },
      ]),
    ),
  };
}
