import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';

const CheckSchema = Type.Object({ ok: Type.Boolean(), error: Type.Optional(Type.String()) });
const ReadySchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  message: Type.Optional(Type.String()),
  checks: Type.Object({ mysql: CheckSchema, redis: CheckSchema }),
});

/** Liveness and readiness. No auth: load balancers and orchestrators call them. */
const routes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/health/live',
    {
      schema: {
        tags: ['health'],
        summary: 'The process is up',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/health/ready',
    {
      schema: {
        tags: ['health'],
        summary: 'MySQL and Redis answer',
        description: 'Answers 503 naming each dependency that does not answer.',
        response: { 200: ReadySchema, 503: ReadySchema },
      },
    },
    async (_request, reply) => {
      // The same probes that decide when an outage is logged, so readiness and the logs agree.
      const { mysql, redis } = await app.dependencies.check();
      reply.header('cache-control', 'no-store');
      const down = Object.entries({ mysql, redis }).filter(([, c]) => !c.ok);
      if (down.length === 0) return { status: 'ok' as const, checks: { mysql, redis } };
      const message = down.map(([name, c]) => `${name} is unreachable: ${c.error ?? 'no answer'}`).join('; ');
      return reply.code(503).send({ status: 'unavailable' as const, message, checks: { mysql, redis } });
    },
  );
};

export default routes;
