import fp from 'fastify-plugin';
import { createEmfEmitter } from '../../lib/metrics/emf.ts';
import { Metrics } from '../observability/metrics.ts';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics;
  }
}

/** Infrastructure tier: the metrics registry, and HTTP latency by route template. */
export default fp(
  async (app) => {
    const { emf, namespace } = app.config.metrics;
    const metrics = new Metrics({ emf: emf ? await createEmfEmitter(namespace) : undefined }, app.log);
    app.decorate('metrics', metrics);
    app.addHook('onResponse', async (request, reply) => {
      // The route template, not the URL, keeps label cardinality bounded; unmatched URLs share one label.
      const route = request.routeOptions.url ?? 'unmatched';
      metrics.httpDuration.observe(
        { method: request.method, route, status_code: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      );
    });
  },
  { name: 'metrics', dependencies: ['config'] },
);
