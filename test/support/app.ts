import type { FastifyInstance } from 'fastify';
import { buildApp, type AppOptions } from '../../service/app.ts';
import type { Config } from '../../service/config/env.ts';
import { loadSources } from '../../service/config/sources.ts';
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
  const sources = options.sources ?? (await loadSources(config.sourcesFile));
  const app = await buildApp({
    config,
    sources,
    logger: options.logger ?? createLogger(config.log.level),
    handlers: options.handlers,
    catalog: options.catalog,
    lambdaClient: options.lambdaClient,
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
