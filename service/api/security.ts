import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import helmet from 'helmet';
import { Duration } from 'luxon';

/**
 * Security headers and a per-client rate limit, stored in Redis so every instance counts together. The limit
 * runs before auth, so guessing tokens is limited too. If Redis is away the limit fails open: the API stays up
 * and readiness reports the outage.
 */
export async function registerSecurity(app: FastifyInstance): Promise<void> {
  // helmet's headers, the same on every response, from its middleware built once; @fastify/helmet built the
  // middleware again for each request (its CSP directives parsed each time), a few per cent of a GET /runs/:id.
  // Without `upgrade-insecure-requests`: over plain HTTP on any host but localhost (docker compose reached from
  // another machine) Chromium would rewrite the web app's asset URLs to https, which the service does not speak,
  // and /ui/ would never render. Behind the ALB the page is https already, and HSTS keeps it so.
  const securityHeaders = helmet({
    contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
  });
  app.addHook('onRequest', (request, reply, done) => securityHeaders(request.raw, reply.raw, () => done()));
  const { max, windowMs } = app.config.http.rateLimit;
  // The plugin's context gives the time left until the client's window resets, not the window itself.
  const windowText = Duration.fromMillis(windowMs).rescale().toHuman();
  await app.register(rateLimit, {
    // Not global: the plugin's per-route hooks would run after the auth hook of the API scope. One root hook
    // runs first for every request instead.
    global: false,
    redis: app.redis,
    nameSpace: `${app.config.queue.prefix}:ratelimit:`,
    skipOnError: true,
    errorResponseBuilder: (_request, context) =>
      Object.assign(
        new Error(
          `rate limit exceeded: at most ${context.max} requests per ${windowText}; retry in ${context.after}`,
        ),
        {
          statusCode: 429,
        },
      ),
  });
  // Load balancers poll health often and must never be throttled into marking the service down.
  app.addHook(
    'onRequest',
    app.rateLimit({ max, timeWindow: windowMs, allowList: (request) => request.url.startsWith('/health/') }),
  );
}
