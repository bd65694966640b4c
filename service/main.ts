// Entry point: read config, start the logger, build the app, listen, and close gracefully on SIGTERM/SIGINT.
import closeWithGrace from 'close-with-grace';
import { buildApp } from './app.ts';
import { ConfigError, loadConfig, redactUrl } from './config/env.ts';
import { loadSources, SourcesConfigError } from './config/sources.ts';
import { createLogger } from './observability/logger.ts';

let config;
let sources;
try {
  config = loadConfig();
  sources = await loadSources(config.sourcesFile, config.warehouse.schema);
} catch (error) {
  if (error instanceof ConfigError || error instanceof SourcesConfigError) {
    console.error(`afluente: ${(error as Error).message}`);
    process.exit(78); // EX_CONFIG
  }
  throw error;
}

const logger = createLogger(config.log.level);
const app = await buildApp({ config, logger, sources });

// The HTTP server stops first; then workers drain for AFLUENTE_SHUTDOWN_GRACE_MS; then clients close.
closeWithGrace({ delay: config.shutdownGraceMs + 10_000, logger }, async ({ signal, err }) => {
  if (err) logger.error({ err }, 'closing after an unexpected error');
  else logger.info({ signal }, 'shutting down');
  await app.close();
});

await app.listen({ host: config.http.host, port: config.http.port });
logger.info(
  {
    roles: [...config.roles],
    mysql: redactUrl(config.mysql.url),
    redis: redactUrl(config.redis.url),
    sources: [...sources.sources.keys()],
  },
  `afluente is up; API docs at http://${config.http.host}:${config.http.port}/docs`,
);
