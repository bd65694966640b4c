import type { LambdaClient } from '@aws-sdk/client-lambda';
import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import { JOB_CATALOG, type JobCatalog } from '../orchestration/catalog.ts';
import { Dispatcher } from '../orchestration/dispatcher.ts';
import { StageQueues } from '../orchestration/queues.ts';
import { RunEngine, type EngineResources } from '../orchestration/run-engine.ts';
import { DEFAULT_STAGE_HANDLERS, type StageHandlers } from '../orchestration/stage-handler.ts';
import { StageWorkers } from '../orchestration/stage-workers.ts';
import { RunService } from '../runs/run-service.ts';
import { InvocationEvents } from '../invocation/events.ts';
import { eventsConsumer, lambdaInvoker } from '../invocation/adapters.ts';
import { ingestStage } from '../stages/ingest.ts';
import { validateStage } from '../stages/validate.ts';

declare module 'fastify' {
  interface FastifyInstance {
    queues: StageQueues;
    engine: RunEngine;
    runs: RunService;
    dispatcher: Dispatcher;
    /** Present when this process plays the worker role. */
    workers?: StageWorkers;
    invocationEvents: InvocationEvents;
  }
}

export interface OrchestrationOptions {
  /** Stage handlers; any left out fail with "not implemented". @default DEFAULT_STAGE_HANDLERS */
  handlers?: Partial<StageHandlers>;
  /** The job catalog (tests shorten timeouts and backoffs). @default JOB_CATALOG */
  catalog?: JobCatalog;
  /** The Lambda client of the aws invoker (a test stands in for the Lambda service). @default from config */
  lambdaClient?: LambdaClient;
}

/**
 * Services tier: queues, the run engine and the run service; the stage workers when the role includes
 * "worker", and the dispatcher loop when it includes "scheduler".
 */
export default fp<OrchestrationOptions>(
  async (app, opts) => {
    const { config } = app;
    // BullMQ needs a connection that retries forever; it must not share the fail-fast command client.
    const connection = new Redis(config.redis.url, { maxRetriesPerRequest: null });
    connection.on('error', (error) => app.log.debug({ err: error }, 'redis queue connection error'));
    const catalog = opts.catalog ?? JOB_CATALOG;
    const res: EngineResources = { orm: app.orm, catalog, metrics: app.metrics, logger: app.log };
    const queues = new StageQueues(connection, config.queue.prefix, catalog);
    const engine = new RunEngine(res);
    const runs = new RunService(res, { engine, queues, sourceNames: () => app.sources.sources.keys() });
    const dispatcher = new Dispatcher(res, queues);
    app.decorate('queues', queues);
    app.decorate('engine', engine);
    app.decorate('runs', runs);
    app.decorate('dispatcher', dispatcher);
    app.metrics.queueDepth(() => queues.depth());

    // Lambda results come back as events; the hub hands each to the worker waiting for it, on any instance.
    const events = new InvocationEvents(connection, config.queue.prefix);
    app.decorate('invocationEvents', events);

    if (config.roles.has('worker')) {
      const invoker = lambdaInvoker(config, events, app.log, opts.lambdaClient);
      app.addHook('onClose', async () => invoker.close());
      if (config.lambda.invoker === 'aws') {
        const consumer = eventsConsumer(config, events, app.log);
        consumer.start();
        app.addHook('preClose', async () => consumer.stop());
      }
      const shipped: StageHandlers = {
        ...DEFAULT_STAGE_HANDLERS,
        ingest: ingestStage({
          orm: app.orm,
          lake: app.lake,
          invoker,
          events,
          sources: app.sources.sources,
          limits: config.ingest,
          timeoutMs: catalog.ingest.timeoutMs,
        }),
        validate: validateStage({
          lake: app.lake,
          invoker,
          events,
          sources: app.sources.sources,
          concurrency: config.validate.concurrency,
          partsPerGroup: config.validate.partsPerGroup,
          parts: config.ingest,
          // A validate invocation is sized to be short; the Lambda's own limit is the ingest one.
          resultTimeoutMs: config.ingest.timeLimitMs + 120_000,
        }),
      };
      const handlers: StageHandlers = { ...shipped, ...opts.handlers };
      const workers = new StageWorkers(
        res,
        { engine, queues, handlers },
        {
          connection,
          prefix: config.queue.prefix,
          concurrency: config.queue.concurrency,
          heartbeatMs: config.queue.heartbeatMs,
          lockDurationMs: config.queue.lockDurationMs,
        },
      );
      await workers.waitUntilReady();
      app.decorate('workers', workers);
      // preClose runs before the other plugins' onClose, so jobs drain while MySQL and Redis are still open.
      app.addHook('preClose', async () => workers.close(config.shutdownGraceMs));
    }

    if (config.roles.has('scheduler')) {
      const sweep = (): void => {
        dispatcher.sweep(config.queue.dispatchIntervalMs).catch((error: unknown) => {
          app.log.warn({ err: error }, 'dispatcher sweep failed');
        });
      };
      const timer = setInterval(sweep, config.queue.dispatchIntervalMs);
      timer.unref();
      app.addHook('preClose', async () => clearInterval(timer));
    }

    app.addHook('onClose', async () => {
      await queues.close();
      await connection.quit().catch(() => connection.disconnect());
    });
  },
  { name: 'orchestration', dependencies: ['config', 'orm', 'metrics', 'lake'] },
);
