import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ENGINES, ON_DRIFT_MODES } from '../../../contract/source-config.ts';
import { warehouseSchemaOf, type LoadedSource } from '../../config/sources.ts';
import { redactUrl } from '../../config/env.ts';
import { NotFoundError } from '../../errors.ts';
import { SourceState } from '../../state/entities/index.ts';
import { AUTH_ERRORS, ErrorRef } from '../schemas/common.ts';
import { SourceDriftSchema } from '../schemas/runs.ts';
import { runView, sourceDriftView } from '../views.ts';

const SourceSchema = Type.Object(
  {
    name: Type.String(),
    url: Type.String(),
    pagination: Type.String(),
    auth: Type.Object(
      { kind: Type.String(), env: Type.Array(Type.String()) },
      { description: 'Env var names only, never values.' },
    ),
    schedule: Type.Union([
      Type.Object({ cron: Type.String(), timezone: Type.Union([Type.String(), Type.Null()]) }),
      Type.Null(),
    ]),
    nextRunAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
      description: 'Next fire time of the schedule; null without one, or when Redis does not answer in time.',
    }),
    incremental: Type.Union([Type.Object({ cursorField: Type.String(), param: Type.String() }), Type.Null()]),
    window: Type.Union(
      [
        Type.Object({ fromParam: Type.String(), toParam: Type.Union([Type.String(), Type.Null()]) }),
        Type.Null(),
      ],
      { description: 'How a run’s window reaches the API; null means windows and backfills are refused.' },
    ),
    maxActiveRuns: Type.Integer(),
    onActiveRun: Type.String(),
    deadlineSeconds: Type.Record(Type.String(), Type.Integer(), {
      description: 'Per stage: seconds from its first start until it must have finished.',
    }),
    engine: Type.Enum([...ENGINES], {
      description:
        'The engine of its transform and load: embedded, spark, or auto (embedded up to ' +
        'AFLUENTE_EMBEDDED_MAX_BYTES of validated data); a run may ask for another.',
    }),
    cursor: Type.Union([Type.String(), Type.Null()]),
    tables: Type.Array(Type.String()),
    warehouseSchema: Type.String({
      description: "The warehouse schema its tables go to: its own `warehouse.schema`, or the service's.",
    }),
    lastRuns: Type.Array(Type.Ref('Run')),
    onDrift: Type.Enum([...ON_DRIFT_MODES], {
      description: 'What a run does on fields no column names: show them (warn), or also fail.',
    }),
    drift: SourceDriftSchema,
  },
  { $id: 'Source' },
);

const NameParams = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);

const LAST_RUNS = 5;

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.addSchema(SourceSchema);

  async function view(source: LoadedSource) {
    const em = app.orm.em.fork();
    const [state, lastRuns, nextRunAt, drift] = await Promise.all([
      em.findOne(SourceState, source.name),
      app.runs.recentForSource(source.name, LAST_RUNS),
      source.schedule && app.sourceScheduler ? app.sourceScheduler.nextRunAt(source.name) : null,
      app.runs.latestDrift(source.name),
    ]);
    return {
      name: source.name,
      url: redactUrl(source.request.url),
      pagination: source.pagination.kind,
      auth: { kind: source.auth.kind, env: authEnvNames(source.auth) },
      schedule: source.schedule
        ? { cron: source.schedule.cron, timezone: source.schedule.timezone ?? null }
        : null,
      nextRunAt: nextRunAt?.toISOString() ?? null,
      incremental: source.incremental
        ? { cursorField: source.incremental.cursorField, param: source.incremental.param }
        : null,
      window: source.window
        ? { fromParam: source.window.fromParam, toParam: source.window.toParam ?? null }
        : null,
      maxActiveRuns: source.maxActiveRuns,
      onActiveRun: source.onActiveRun,
      deadlineSeconds: source.deadlineSeconds,
      engine: source.engine,
      cursor: state?.cursor ?? null,
      tables: Object.keys(source.tables),
      warehouseSchema: warehouseSchemaOf(source, app.config.warehouse.schema),
      lastRuns: lastRuns.map(runView),
      onDrift: source.onDrift,
      drift: sourceDriftView(drift),
    };
  }

  app.get(
    '/sources',
    {
      schema: {
        tags: ['sources'],
        summary: 'Every configured source, with its schedule and next run, cursor and last runs',
        response: { 200: Type.Object({ items: Type.Array(Type.Ref('Source')) }), ...AUTH_ERRORS },
      },
    },
    async () => ({ items: await Promise.all([...app.sources.sources.values()].map(view)) }),
  );

  app.get(
    '/sources/:name',
    {
      schema: {
        tags: ['sources'],
        summary: 'One source',
        params: NameParams,
        response: { 200: Type.Ref('Source'), 404: ErrorRef, ...AUTH_ERRORS },
      },
    },
    async (request) => {
      const source = app.sources.sources.get(request.params.name);
      if (!source) throw new NotFoundError(`source "${request.params.name}" not found`);
      return view(source);
    },
  );
};

function authEnvNames(auth: LoadedSource['auth']): string[] {
  return Object.entries(auth)
    .filter(([key]) => key.endsWith('Env'))
    .map(([, value]) => String(value));
}

export default routes;
