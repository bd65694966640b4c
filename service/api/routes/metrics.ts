import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { AUTH_ERRORS } from '../schemas/common.ts';

/** Prometheus exposition of the app's registry. Behind auth like the rest of the API. */
const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/metrics',
    {
      schema: {
        tags: ['observability'],
        summary: 'Prometheus metrics',
        produces: ['text/plain'],
        response: {
          200: {
            description: 'The Prometheus text exposition format.',
            content: { 'text/plain': { schema: Type.String() } },
          },
          ...AUTH_ERRORS,
        },
      },
    },
    async (_request, reply) => {
      const text = await app.metrics.registry.metrics();
      return reply.type(app.metrics.registry.contentType).send(text);
    },
  );
};

export default routes;
