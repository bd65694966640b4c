import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { requireBearerAuth } from './api/auth.ts';
import { registerDocs } from './api/docs.ts';
import { formatSchemaErrors, frameworkErrors, registerErrorHandling } from './api/errors.ts';
import backfillRoutes from './api/routes/backfills.ts';
import { BackfillSchema } from './api/schemas/backfills.ts';
import healthRoutes from './api/routes/health.ts';
import metricsRoutes from './api/routes/metrics.ts';
import runRoutes from './api/routes/runs.ts';
import sourceRoutes from './api/routes/sources.ts';
import sourceSchemaRoutes from './api/routes/source-schema.ts';
import { ErrorSchema } from './api/schemas/common.ts';
import { JobSchema, LakeFileSchema, RunSchema } from './api/schemas/runs.ts';
import { registerSecurity } from './api/security.ts';
import { validatorCompiler } from './api/validation.ts';
import type { Config } from './config/env.ts';
import type { LoadedSources } from './config/sources.ts';
import type { Logger } from './observability/logger.ts';
import { RequestLogController } from './observability/request-log.ts';
import configPlugin from './plugins/config.ts';
import dependenciesPlugin from './plugins/dependencies.ts';
import lakePlugin from './plugins/lake.ts';
import metricsPlugin from './plugins/metrics.ts';
import orchestrationPlugin, { type OrchestrationOptions } from './plugins/orchestration.ts';
import ormPlugin from './plugins/orm.ts';
import redisPlugin from './plugins/redis.ts';
import { registerUi, type UiOptions } from './plugins/ui.ts';

export interface AppOptions extends OrchestrationOptions {
  config: Config;
  logger: Logger;
  sources: LoadedSources;
  /** The web app served at /ui/ by the api role. */
  ui?: UiOptions;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;
/** Fastify's default; set here so the 414 can name it. Source names and ids are far shorter. */
const MAX_PARAM_LENGTH = 100;

/**
 * Builds the whole service as one Fastify instance: infrastructure clients first, then the services, then the
 * routes. `close()` drains the workers and closes every client, so the entry file and the tests share one
 * lifecycle.
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config } = options;
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    logController: new RequestLogController(),
    bodyLimit: config.http.bodyLimit,
    trustProxy: config.http.trustProxy,
    // Keep a caller's request id when it is sane, so logs join up across services; otherwise make one.
    genReqId: (req) => {
      const header = req.headers['x-request-id'];
      return typeof header === 'string' && REQUEST_ID.test(header) ? header : randomUUID();
    },
    // Bounds slow clients (slowloris); the API answers in milliseconds.
    requestTimeout: 30_000,
    return503OnClosing: true,
    // Fastify bounds each onClose hook by pluginTimeout (10 s by default), and the workers' drain is one: it must
    // get the whole AFLUENTE_SHUTDOWN_GRACE_MS and the hand-back after it, or a deploy cuts stages off mid-way.
    pluginTimeout: Math.max(10_000, config.shutdownGraceMs + 10_000),
    schemaErrorFormatter: formatSchemaErrors,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: frameworkErrors(MAX_PARAM_LENGTH),
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(validatorCompiler());
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  registerErrorHandling(app, { bodyLimit: config.http.bodyLimit });

  // Infrastructure.
  await app.register(configPlugin, { config, sources: options.sources });
  await app.register(metricsPlugin);
  await app.register(ormPlugin);
  await app.register(redisPlugin);
  await app.register(dependenciesPlugin);
  await app.register(lakePlugin);
  // Services.
  await app.register(orchestrationPlugin, {
    handlers: options.handlers,
    catalog: options.catalog,
    lambdaClient: options.lambdaClient,
    emrClient: options.emrClient,
  });
  // Routes.
  for (const schema of [ErrorSchema, RunSchema, JobSchema, LakeFileSchema, BackfillSchema])
    app.addSchema(schema);
  await registerSecurity(app);
  await registerDocs(app);
  await app.register(healthRoutes);
  if (config.roles.has('api')) {
    await app.register(async (scope) => {
      scope.decorateRequest('principal', '');
      await requireBearerAuth(scope, config.auth.tokens);
      await scope.register(runRoutes);
      await scope.register(sourceRoutes);
      await scope.register(sourceSchemaRoutes);
      await scope.register(backfillRoutes);
      await scope.register(metricsRoutes);
    });
    // Outside the bearer auth: the app's shell is public, and its API calls carry the token.
    await registerUi(app, options.ui);
  } else {
    // Worker- or scheduler-only processes still answer health and metrics for their orchestrator.
    await app.register(async (scope) => {
      scope.decorateRequest('principal', '');
      await requireBearerAuth(scope, config.auth.tokens);
      await scope.register(metricsRoutes);
    });
  }
  return app;
}
