import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { setTimeout as sleep } from 'node:timers/promises';
import { Type } from 'typebox';

const CHECK_TIMEOUT_MS = 2000;

const CheckSchema = Type.Object({ ok: Type.Boolean(), error: Type.Optional(Type.String()) });
const ReadySchema = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  message: Type.Optional(Type.String()),
  checks: Type.Object({ mysql: CheckSchema, redis: CheckSchema }),
});

async function check(probe: () => Promise<unknown>): Promise<{ ok: boolean; error?: string }> {
  try {
    await Promise.race([
      probe(),
      sleep(CHECK_TIMEOUT_MS).then(() =>
        Promise.reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)),
      ),
    ]);
    return { ok: true };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

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
      const [mysql, redis] = await Promise.all([
        check(() => app.orm.em.getConnection().execute('select 1')),
        check(() => app.redis.ping()),
      ]);
      reply.header('cache-control', 'no-store');
      const down = Object.entries({ mysql, redis }).filter(([, c]) => !c.ok);
      if (down.length === 0) return { status: 'ok' as const, checks: { mysql, redis } };
      const message = down.map(([name, c]) => `${name} is unreachable: ${c.error ?? 'no answer'}`).join('; ');
      return reply.code(503).send({ status: 'unavailable' as const, message, checks: { mysql, redis } });
    },
  );
};

export default routes;
