import bearerAuth from '@fastify/bearer-auth';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { createHash } from 'node:crypto';
import type { ApiToken } from '../config/env.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The label of the token that authenticated the request, recorded in audit fields such as `cancelledBy`. */
    principal: string;
  }
}

const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

const MESSAGES: Record<string, string> = {
  FST_BEARER_AUTH_MISSING_AUTHORIZATION_HEADER:
    'missing bearer token: send the header "Authorization: Bearer <token>"',
  FST_BEARER_AUTH_INVALID_AUTHORIZATION_HEADER: 'invalid bearer token',
};

/**
 * Bearer-token auth for every route registered in `scope`. @fastify/bearer-auth compares tokens in constant
 * time; this only gives its errors our shape and records which token was used.
 */
export async function requireBearerAuth(scope: FastifyInstance, tokens: ApiToken[]): Promise<void> {
  const labels = new Map(tokens.map((t) => [sha256(t.token), t.label]));
  await scope.register(bearerAuth, {
    keys: tokens.map((t) => t.token),
    addHook: false,
    verifyErrorLogLevel: 'info',
  });
  const verify = scope.verifyBearerAuth;
  if (!verify) throw new Error('@fastify/bearer-auth did not expose verifyBearerAuth');
  scope.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    verify(request, reply, (error) => {
      if (error) {
        reply.header('www-authenticate', 'Bearer realm="afluente"');
        const code = (error as { code?: string }).code ?? '';
        const message = MESSAGES[code];
        done(message ? Object.assign(new Error(message), { statusCode: 401 }) : error);
        return;
      }
      const token = request.headers.authorization?.slice('Bearer '.length).trim() ?? '';
      request.principal = labels.get(sha256(token)) ?? 'unknown';
      done();
    });
  });
}
