import type { LambdaClient } from '@aws-sdk/client-lambda';
import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import { RECONNECT, redisAuth } from './redis.ts';
import { JOB_CATALOG, type JobCatalog } from '../orchestration/catalog.ts';
import { Dispatcher, QUEUE_WAIT_MS } from '../orchestration/dispatcher.ts';
import { OrphanSweep } from '../orchestration/orphan-sweep.ts';
import { StageQueues } from '../orchestration/queues.ts';
import { SourceScheduler } from '../orchestration/source-scheduler.ts';
import { RunEngine, type EngineResources } from '../orchestration/run-engine.ts';
import type { EMRClient } from '@aws-sdk/client-emr';
import { Reconciler, STEP_STAGES } from '../orchestration/reconciler.ts';
import { GaugeSampler } from '../observability/gauge-sampler.ts';
import type { StageHandlers } from '../orchestration/stage-handler.ts';
import { StageWorkers } from '../orchestration/stage-workers.ts';
import { Admission } from '../runs/admission.ts';
import { BackfillService } from '../runs/backfills.ts';
import { RunService } from '../runs/run-service.ts';
import { InvocationEvents } from '../invocation/events.ts';
import { eventsConsumer, lambdaInvoker } from '../invocation/adapters.ts';
import { ingestStage } from '../stages/ingest.ts';
import { validateStage } from '../stages/validate.ts';
import { transformStage } from '../stages/transform.ts';
import { loadStage } from '../stages/load.ts';
import { SchemaVersions } from '../schema/versions.ts';
import { openStepRunners } from '../steps/open-runner.ts';
import type { StepRunner } from '../steps/step-runner.ts';
import type { StepRunners } from '../steps/step-runners.ts';

declare module 'fastify' {
  interface FastifyInstance {
    queues: StageQueues;
    engine: RunEngine;
    runs: RunService;
    backfills: BackfillService;
    dispatcher: Dispatcher;
    /** Present when this process plays the worker role. */
    workers?: StageWorkers;
    /** Runs the transform and load steps on Spark (local spark-submit or EMR): `steps.spark`. */
    stepRunner: StepRunner;
    /** Both engines' step runners, Spark's and the embedded one; routes a step to its runner by its id. */
    steps: StepRunners;
    /** Present when this process plays the scheduler role. */
    reconciler?: Reconciler;
    /** The sources' schedules (one BullMQ job scheduler each). Present in the api and scheduler roles. */
    sourceScheduler?: SourceScheduler;
    invocationEvents: InvocationEvents;
    /** Each source's schema versions (the table specs its loads handed the load step). */
    schemaVersions: SchemaVersions;
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
 * "worker", and the dispatcher loop, the reconciler and the schedule ticks when it includes "scheduler".
 */
export default fp<OrchestrationOptions>(
  async (app, opts) => {
    const { config } = app;
    // BullMQ needs a connection that retries forever; it must not share the fail-fast command client.
    const connection = new Redis(config.redis.url, {
      ...redisAuth(config.redis),
      ...RECONNECT,
      maxRetriesPerRequest: null,
    });
    const { dependencies } = app;
    connection.on('error', (error) => dependencies.failed(error, 'redis queue connection error'));
    const catalog = opts.catalog ?? JOB_CATALOG;
    const res: EngineResources = {
      orm: app.orm,
      catalog,
      metrics: app.metrics,
      logger: app.log,
      dependencies,
    };
    const queues = new StageQueues(connection, config.queue.prefix, catalog);
    // A queue whose connection fails emits 'error'; without a listener BullMQ prints each one to stderr.
    for (const [stage, queue] of queues.all())
      queue.on('error', (error) =>
        dependencies.failed(error, 'stage queue error', { level: 'error', bindings: { stage } }),
      );
    const engine = new RunEngine(res);
    const schemaVersions = new SchemaVersions(app.orm);
    app.decorate('schemaVersions', schemaVersions);

    // Each source's maxActiveRuns: a run past it waits for a slot, which a finishing run frees.
    const admission = new Admission(res, {
      engine,
      queues,
      limitOf: (source) => app.sources.sources.get(source),
    });
    engine.onSlotFreed = (source) => admission.admit(source);
    const dispatcher = new Dispatcher(res, queues, admission);
    app.decorate('queues', queues);
    app.decorate('engine', engine);
    app.decorate('dispatcher', dispatcher);
    // A scrape while Redis is down reports no queue depth rather than wait for Redis.
    app.metrics.queueDepth(async () => (dependencies.isDown('redis') ? {} : queues.depth(QUEUE_WAIT_MS)));

    // Lambda results come back as events; the hub hands each to the worker waiting for it, on any instance.
    const events = new InvocationEvents(connection, config.queue.prefix);
    app.decorate('invocationEvents', events);

    const steps = openStepRunners(config, app.lake, app.log, { emrClient: opts.emrClient });
    const stepRunner = steps.spark;
    app.decorate('stepRunner', stepRunner);
    app.decorate('steps', steps);
    const runs = new RunService(res, {
      engine,
      queues,
      sources: () => app.sources.sources,
      steps,
      admission,
    });
    app.decorate('runs', runs);
    app.decorate(
      'backfills',
      new BackfillService({
        orm: app.orm,
        logger: app.log,
        sources: () => app.sources.sources,
        admission,
        runs,
        dependencies,
      }),
    );
    app.addHook('onClose', async () => steps.close());

    // The api role reads the next fire times; the scheduler role syncs the schedules and processes the ticks.
    let sourceScheduler: SourceScheduler | undefined;
    if (config.roles.has('api') || config.roles.has('scheduler')) {
      sourceScheduler = new SourceScheduler({
        connection,
        prefix: config.queue.prefix,
        logger: app.log,
        runs,
        sources: () => app.sources.sources,
        dependencies,
      });
      app.decorate('sourceScheduler', sourceScheduler);
    }

    if (config.roles.has('worker')) {
      // A cluster (or this machine) runs only so many Spark steps at once: BullMQ's global concurrency holds
      // the jobs of the transform and load stages past the cap in their queue, however many workers are up. The
      // engine is picked inside the job, so embedded steps count against the cap too (service/steps/README.md).
      const capSteps = (): Promise<unknown> =>
        Promise.all(
          [...STEP_STAGES].map((stage) =>
            queues.get(stage).setGlobalConcurrency(config.queue.maxConcurrentSteps),
          ),
        );
      await capSteps();
      // The cap lives in Redis: a Redis that comes back empty (a failover to a fresh node) has lost it. Setting it
      // again on every reconnect is idempotent.
      connection.on('ready', () => {
        capSteps().catch((error: unknown) =>
          app.log.warn({ err: error }, 'could not set the steps cap again after a Redis reconnect'),
        );
      });
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
          runners: steps,
          engine,
          maxEmbeddedBytes: config.steps.embedded.maxBytes,
          warehouseSchema: schema,
        }),
        load: loadStage({
          lake: app.lake,
          sources: app.sources.sources,
          runners: steps,
          engine,
          maxEmbeddedBytes: config.steps.embedded.maxBytes,
          warehouse: { dialect, jdbcUrl, user, schema, copyRoleArn },
          versions: schemaVersions,
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

    if (sourceScheduler && config.roles.has('scheduler')) {
      const scheduler = sourceScheduler;
      // Every instance syncs at start-up, then takes ticks. A scheduler already as configured is left alone, so
      // the tick that was pending while the service was down still fires, once.
      app.addHook('onReady', async () => {
        await scheduler.sync(app.sources.sources.values()).catch((error: unknown) => {
          app.log.error({ err: error }, 'could not sync the source schedules');
        });
        await scheduler.startWorker();
      });
      app.addHook('preClose', async () => scheduler.stopWorker());
    }

    if (config.roles.has('scheduler')) {
      /**
       * Runs `task` every `ms` (and at start-up if asked) until the app closes; a failure is logged, not thrown,
       * and once per outage when MySQL or Redis is down. A run still waiting on a dependency is not stacked on.
       */
      const every = (ms: number, what: string, task: () => Promise<unknown>, atReady = false): void => {
        let running = false;
        const run = (): void => {
          if (running) return;
          running = true;
          task()
            .catch((error: unknown) => dependencies.failed(error, `${what} failed`))
            .finally(() => {
              running = false;
            });
        };
        if (atReady) app.addHook('onReady', async () => run());
        const timer = setInterval(run, ms);
        timer.unref();
        app.addHook('preClose', async () => clearInterval(timer));
      };

      every(config.queue.dispatchIntervalMs, 'dispatcher sweep', () =>
        dispatcher.sweep(config.queue.dispatchIntervalMs),
      );

      // At start-up and then periodically: re-attach to running Spark steps, fail jobs whose worker is gone,
      // and fail the stages past their source's deadlines.
      const reconciler = new Reconciler(
        res,
        { engine, runner: steps, queues },
        {
          heartbeatDeadlineMs: config.reconcile.heartbeatDeadlineMs,
          deadlinesOf: (source) => app.sources.sources.get(source)?.deadlineSeconds,
        },
      );
      app.decorate('reconciler', reconciler);
      every(config.reconcile.intervalMs, 'reconciler sweep', () => reconciler.sweep(), true);

      // Periodically: cancel steps (either engine's) and terminate transient EMR clusters no active run owns.
      const orphans = new OrphanSweep(res, steps, { graceMs: config.orphanSweep.graceMs });
      every(config.orphanSweep.intervalMs, 'orphan sweep', () => orphans.sweep());

      // CloudWatch cannot scrape /metrics: push active runs and queue depth for the alarms and autoscaling.
      if (config.metrics.emf) {
        const sampler = new GaugeSampler({ orm: app.orm, queues, metrics: app.metrics });
        every(config.metrics.intervalMs, 'gauge sample', () => sampler.emit(), true);
      }
    }

    app.addHook('onClose', async () => {
      await sourceScheduler?.close();
      await queues.close();
      await connection.quit().catch(() => connection.disconnect());
    });
  },
  { name: 'orchestration', dependencies: ['config', 'orm', 'metrics', 'lake', 'dependencies'] },
);
