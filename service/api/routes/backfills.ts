import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { CreateBackfillBody } from '../schemas/backfills.ts';
import { AUTH_ERRORS, ErrorRef } from '../schemas/common.ts';
import { CreateRunHeaders } from '../schemas/runs.ts';
import { backfillView } from '../views.ts';

const NameParams = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 64 }) },
  { additionalProperties: false },
);
const BackfillIdParams = Type.Object(
  { id: Type.Integer({ minimum: 1, maximum: 4294967295, description: 'A backfill id.' }) },
  { additionalProperties: false },
);

// The Backfill schema is added at the root with the other shared ones (service/app.ts): a route scope that adds
// schemas of its own gets Fastify's default validator instead of the app's, which knows no iso-date format.
const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.post(
    '/sources/:name/backfill',
    {
      schema: {
        tags: ['backfills'],
        summary: 'Backfill a time range of a source, one run per window',
        description:
          'Splits [from, to) into windows `step` long and creates one run per window (trigger `backfill`), each ' +
          "asking the API for its window through the source's `window` params. The runs wait and start oldest " +
          "first as the source's maxActiveRuns allows. Answers 202 with the backfill; GET /backfills/:id shows " +
          'its progress. An Idempotency-Key makes a retried request return the same backfill. While Redis is ' +
          'down the answer is 503 naming it, and no backfill is created.',
        params: NameParams,
        body: CreateBackfillBody,
        headers: CreateRunHeaders,
        response: { 202: Type.Ref('Backfill'), 400: ErrorRef, 404: ErrorRef, 422: ErrorRef, ...AUTH_ERRORS },
      },
    },
    async (request, reply) => {
      const { detail, replayed } = await app.backfills.create(
        { source: request.params.name, ...request.body },
        request.principal,
        request.headers['idempotency-key'],
      );
      if (replayed) reply.header('idempotent-replayed', 'true');
      return reply
        .code(202)
        .header('location', `/backfills/${detail.backfill.id}`)
        .send(backfillView(detail));
    },
  );

  app.get(
    '/backfills/:id',
    {
      schema: {
        tags: ['backfills'],
        summary: 'A backfill: its status, progress per run status, summed counts, and its runs',
        params: BackfillIdParams,
        response: { 200: Type.Ref('Backfill'), 400: ErrorRef, 404: ErrorRef, ...AUTH_ERRORS },
      },
    },
    async (request) => backfillView(await app.backfills.get(request.params.id)),
  );

  app.post(
    '/backfills/:id/cancel',
    {
      schema: {
        tags: ['backfills'],
        summary: 'Cancel every run of a backfill that has not finished',
        description:
          'Waiting runs are cancelled first, then active ones. A backfill whose runs all ended answers 409.',
        params: BackfillIdParams,
        response: { 200: Type.Ref('Backfill'), 400: ErrorRef, 404: ErrorRef, 409: ErrorRef, ...AUTH_ERRORS },
      },
    },
    async (request) => backfillView(await app.backfills.cancel(request.params.id, request.principal)),
  );
};

export default routes;
