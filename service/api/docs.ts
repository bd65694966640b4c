import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

/** OpenAPI generated from the route schemas that also validate requests, served with Swagger UI at /docs. */
export async function registerDocs(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'afluente',
        version: '0.1.0',
        description:
          'Trigger and inspect runs that move JSON from source APIs into the lake and the warehouse.',
      },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearerAuth: [] }],
    },
    // Health routes are public; the document says so.
    transform: ({ schema, url }) => ({
      schema: url.startsWith('/health/') ? { ...schema, security: [] } : schema,
      url,
    }),
  });
  await app.register(swaggerUi, { routePrefix: '/docs', staticCSP: true });
}
