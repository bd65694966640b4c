import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AUTH_ERRORS, ErrorRef, IdParams } from '../schemas/common.ts';
import {
  CreateRunBody,
  CreateRunHeaders,
  ListRunsQuery,
  RetryRunBody,
  RunDetailSchema,
  RunPageSchema,
} from '../schemas/runs.ts';
import { RejectsPageSchema, RejectsQuery } from '../schemas/rejects.ts';
import { readRejects } from '../../runs/rejects.ts';
import { jobView, lakeFileView, runDriftView, runView } from '../views.ts';

const CancelBody = Type.Union([
  Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false }),
  Type.Null(),
]);

const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/runs',
    {
      schema: {
        tags: ['runs'],
        summary: 'Trigger a run of a source',
        description:
          'Creates the run, queues its first stage, and answers 202 at once. With an Idempotency-Key header, ' +
          'a retried request returns the same run (with `Idempotent-Replayed: true`). When the source already ' +
          'has `maxActiveRuns` active runs, the run waits behind them (`queuedBehind` names them) or, with ' +
          '`onActiveRun: reject`, the answer is 409 naming them. With `from: {run, stage}` the run is a replay: ' +
          'it starts at that stage on the lake files the earlier run committed, without calling the API. ' +
          "`engine` picks the transform and load's engine over the source's. While Redis is down the answer " +
          'is 503 naming it and no run is created, so a retry (with the same Idempotency-Key) is safe; a run ' +
          'committed just as Redis went is returned, and starts once Redis is back.',
        body: CreateRunBody,
        headers: CreateRunHeaders,
        response: { 202: Type.Ref('Run'), 400: ErrorRef, 409: ErrorRef, 422: ErrorRef, ...AUTH_ERRORS },
      },
    },
    async (request, reply) => {
      const key = request.headers['idempotency-key'];
      const { run, replayed, queuedBehind } = await app.runs.create(request.body, key);
      if (replayed) reply.header('idempotent-replayed', 'true');
      return reply
        .code(202)
        .header('location', `/runs/${run.id}`)
        .send({ ...runView(run), ...(queuedBehind ? { queuedBehind } : {}) });
    },
  );

  app.get(
    '/runs',
    {
      schema: {
        tags: ['runs'],
        summary: 'List runs, newest first',
        description: 'Filters by source and status. Pages by keyset: pass `nextCursor` back as `cursor`.',
        querystring: ListRunsQuery,
        response: { 200: RunPageSchema, 400: ErrorRef, ...AUTH_ERRORS },
      },
    },
    async (request) => {
      const page = await app.runs.list(request.query);
      return { items: page.items.map(runView), nextCursor: page.nextCursor };
    },
  );

  app.get(
    '/runs/:id',
    {
      schema: {
        tags: ['runs'],
        summary: 'A run with its jobs and lake files',
        params: IdParams,
        response: { 200: RunDetailSchema, 400: ErrorRef, 404: ErrorRef, ...AUTH_ERRORS },
      },
    },
    async (request) => {
      const { run, jobs, files } = await app.runs.get(request.params.id);
      const queuedBehind = await app.runs.queuedBehind(run, jobs);
      return {
        ...runView(run),
        ...(queuedBehind ? { queuedBehind } : {}),
        drift: runDriftView(jobs),
        jobs: jobs.map((job) => jobView(job, app.sources.sources.get(run.source)?.deadlineSeconds)),
        files: files.map(lakeFileView),
      };
    },
  );

  app.get(
    '/runs/:id/rejects',
    {
      schema: {
        tags: ['runs'],
        summary: "A run's rejected records, with their source line and every validation error",
        description:
          'Pages through the rejected parts the validate stage committed; pass `nextCursor` back as `cursor`.',
        params: IdParams,
        querystring: RejectsQuery,
        response: { 200: RejectsPageSchema, 400: ErrorRef, 404: ErrorRef, 409: ErrorRef, ...AUTH_ERRORS },
      },
    },
    async (request) => {
      const { run } = await app.runs.get(request.params.id);
      return readRejects(app.lake, run, request.query.limit, request.query.cursor);
    },
  );

  app.post(
    '/runs/:id/cancel',
    {
      schema: {
        tags: ['runs'],
        summary: 'Cancel a run that has not finished',
        description:
          'Queued stages are removed and a running stage is told to stop. A finished run answers 409. A ' +
          'cancel holds while Redis is down: a worker skips a cancelled stage it takes.',
        params: IdParams,
        body: Type.Optional(CancelBody),
        response: { 200: Type.Ref('Run'), 400: ErrorRef, 404: ErrorRef, 409: ErrorRef, ...AUTH_ERRORS },
      },
    },
    async (request) => {
      const run = await app.runs.cancel(request.params.id, request.principal, request.body?.reason);
      return runView(run);
    },
  );

  app.post(
    '/runs/:id/retry',
    {
      schema: {
        tags: ['runs'],
        summary: 'Resume a FAILED run from its failed stage, as a new attempt',
        description:
          'Same run id, `attempt` + 1. The failed stage runs again on the files the earlier stages committed; ' +
          'the jobs of every attempt stay listed under the run. A run that is not FAILED answers 409 with its ' +
          'status, and so does a source with no free slot under its maxActiveRuns. `engine` changes the ' +
          "run's `params.engine` for the retried stage and the ones after it. `acceptKeyChange` lets a load the " +
          'key-change check refused go ahead, once the warehouse tables were rebuilt. While Redis is down the ' +
          'answer is 503 naming it, and the run stays FAILED.',
        params: IdParams,
        body: Type.Optional(RetryRunBody),
        response: { 202: Type.Ref('Run'), 400: ErrorRef, 404: ErrorRef, 409: ErrorRef, ...AUTH_ERRORS },
      },
    },
    async (request, reply) => {
      const run = await app.runs.retry(request.params.id, request.principal, request.body?.engine, {
        acceptKeyChange: request.body?.acceptKeyChange,
      });
      return reply.code(202).header('location', `/runs/${run.id}`).send(runView(run));
    },
  );
};

export default routes;
