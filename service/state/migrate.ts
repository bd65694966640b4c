// `npm run migrate`: applies the committed migrations to AFLUENTE_MYSQL_URL, creating the database if missing.
import { loadConfig, redactUrl } from '../config/env.ts';
import { createLogger } from '../observability/logger.ts';
import { migrate, openOrm } from './orm.ts';

const config = loadConfig(process.env, { requireTokens: false });
const logger = createLogger(config.log.level);
const orm = await openOrm(config.mysql, logger);
try {
  const applied = await migrate(orm, config.mysql, logger);
  logger.info(
    { database: redactUrl(config.mysql.url), applied },
    applied.length ? 'migrated' : 'schema is up to date',
  );
} finally {
  await orm.close();
}
