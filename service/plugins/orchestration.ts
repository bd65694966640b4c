import type { LambdaClient } from '@aws-sdk/client-lambda';
import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import { redisAuth } from './redis.ts';
import { JOB_CATALOG, type JobCatalog } from '../orchestration/catalog.ts';
import { Dispatcher } from '../orchestration/dispatcher.ts';
import { StageQueues } from '../orchestration/queues.ts';
import { RunEngine, type EngineResources } from '../orchestration/run-engine.ts';
import type { EMRClient } from '@aws-sdk/client-emr';
import { Reconciler } from '../orchestration/reconciler.ts';
import { GaugeSampler } from '../observability/gauge-sampler.ts';
import type { StageHandlers } from '../orchestration/stage-handler.ts';
import { StageWorkers } from '../orchestration/stage-workers.ts';
import { RunService } from '../runs/run-service.ts';
import { InvocationEvents } from '../invocation/events.ts';
import { eventsConsumer, lambdaInvoker } from '../invocation/adapters.ts';
import { ingestStage } from '../stages/ingest.ts';
import { validateStage } from '../stages/validate.ts';
import { transformStage } from '../stages/transform.ts';
import { loadStage } from '../stages/load.ts';
import { openStepRunner } from '../steps/open-runner.ts';
import type { StepRunner } from '../steps/step-runner.ts';

declare module 'fastify' {
  interface FastifyInstance {
    queues: StageQueues;
    engine: RunEngine;
    runs: RunService;
    dispatcher: Dispatcher;
    /** Present when this process plays the worker role. */
    workers?: StageWorkers;
    /** Runs the transform and load Spark steps (local spark-submit or EMR). */
    stepRunner: StepRunner;
    /** Present when this process plays the scheduler role. */
    reconciler?: Reconciler;
    invocationEvents: InvocationEvents;
  }
}

export interface OrchestrationOptions {
  /** Stage handlers that replace the shipped ones (tests stand in for a stage). @default the shipped stages */
  handlers?: Partial<StageHandlers>;
  /** The job catalog (tests shorten timeouts and backoffs). @default JOB_CATALOG */
  catalog?: JobCatalog;
  /** The Lambda client of the aws invoker (a test stands in for the Lambda service). @default from config */
  lambdaClient?: LambdaClient;
  /** The EMR client of the emr step runner (a test adds middleware to it). @default from config */
  emrClient?: EMRClient;
}

/**
 * Services tier: queues, the run engine and the run service; the stage workers when the role includes
 * "worker", and the dispatcher loop when it includes "scheduler".
 */
export default fp<OrchestrationOptions>(
  async (app, opts) => {
    const { config } = app;
    // BullMQ needs a connection that retries forever; it must not share the fail-fast command client.
    const connection = new Redis(config.redis.url, {
      ...redisAuth(config.redis),
      maxRetriesPerRequest: null,
    });
    connection.on('error', (error) => app.log.debug({ err: error }, 'redis queue connection error'));
    const catalog = opts.catalog ?? JOB_CATALOG;
    const res: EngineResources = { orm: app.orm, catalog, metrics: app.metrics, logger: app.log };
    const queues = new StageQueues(connection, config.queue.prefix, catalog);
    const engine = new RunEngine(res);

    const dispatcher = new Dispatcher(res, queues);
    app.decorate('queues', queues);
    app.decorate('engine', engine);
    app.decorate('dispatcher', dispatcher);
    app.metrics.queueDepth(() => queues.depth());

    // Lambda results come back as events; the hub hands each to the worker waiting for it, on any instance.
    const events = new InvocationEvents(connection, config.queue.prefix);
    app.decorate('invocationEvents', events);

    const stepRunner = openStepRunner(config, app.lake, app.log, { emrClient: opts.emrClient });
    app.decorate('stepRunner', stepRunner as StepRunner);
    const runs = new RunService(res, {
      engine,
      queues,
      sourceNames: () => app.sources.sources.keys(),
      steps: stepRunner,
    });
    app.decorate('runs', runs);
    app.addHook('onClose', async () => stepRunner.close());

    if (config.roles.has('worker')) {
      const invoker = lambdaInvoker(config, events, app.log, opts.lambdaClient);
      app.addHook('onClose', async () => invoker.close());
      if (config.lambda.invoker === 'aws') {
        const consumer = eventsConsumer(config, events, app.log);
        consumer.start();
        app.addHook('preClose', async () => consumer.stop());
      }
      // What a Spark step needs to know of the warehouse; the password never goes into a spec.
      const { dialect, jdbcUrl, user, schema, copyRoleArn } = config.warehouse;
      const shipped: StageHandlers = {
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
        transform: transformStage({
          lake: app.lake,
          sources: app.sources.sources,
          runner: stepRunner,
          engine,
          warehouseSchema: schema,
        }),
        load: loadStage({
          lake: app.lake,
          sources: app.sources.sources,
          runner: stepRunner,
          engine,
          warehouse: { dialect, jdbcUrl, user, schema, copyRoleArn },
          ...(stepRunner.kind === 'emr'
            ? { releaseCluster: (id: string) => stepRunner.terminateCluster(id) }
            : {}),
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

      // At start-up and then periodically: re-attach to running Spark steps, fail jobs whose worker is gone.
      const reconciler = new Reconciler(
        res,
        { engine, runner: stepRunner },
        { heartbeatDeadlineMs: config.reconcile.heartbeatDeadlineMs },
      );
      app.decorate('reconciler', reconciler);
      const reconcile = (): void => {
        reconciler.sweep().catch((error: unknown) => app.log.warn({ err: error }, 'reconciler sweep failed'));
      };
      app.addHook('onReady', async () => reconcile());
      const reconcileTimer = setInterval(reconcile, config.reconcile.intervalMs);
      reconcileTimer.unref();
      app.addHook('preClose', async () => clearInterval(reconcileTimer));

      // CloudWatch cannot scrape /metrics: push active runs and queue depth for the alarms and autoscaling.
      if (config.metrics.emf) {
        const sampler = new GaugeSampler({ orm: app.orm, queues, metrics: app.metrics });
        const sample = (): void => {
          sampler.emit().catch((error: unknown) => app.log.warn({ err: error }, 'gauge sample failed'));
        };
        app.addHook('onReady', async () => sample());
        const gaugeTimer = setInterval(sample, config.metrics.intervalMs);
        gaugeTimer.unref();
        app.addHook('preClose', async () => clearInterval(gaugeTimer));
      }
    }

    app.addHook('onClose', async () => {
      await queues.close();
      await connection.quit().catch(() => connection.disconnect());
    });
  },
  { name: 'orchestration', dependencies: ['config', 'orm', 'metrics', 'lake'] },
);
