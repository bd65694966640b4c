import fp from 'fastify-plugin';
import type { Lake } from '../../lib/lake/lake.ts';
import { openLake } from '../../lib/lake/open-lake.ts';

declare module 'fastify' {
  interface FastifyInstance {
    lake: Lake;
  }
}

/** Infrastructure tier: the data lake (`file://` locally, `s3://` on AWS or against an S3-compatible server). */
export default fp(
  async (app) => {
    const { uri, s3Endpoint } = app.config.lake;
    const lake = openLake(uri, s3Endpoint ? { s3: { endpoint: s3Endpoint, forcePathStyle: true } } : {});
    app.decorate('lake', lake);
  },
  { name: 'lake', dependencies: ['config'] },
);
