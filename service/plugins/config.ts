import fp from 'fastify-plugin';
import type { Config } from '../config/env.ts';
import type { LoadedSources } from '../config/sources.ts';

declare module 'fastify' {
  interface FastifyInstance {
    config: Config;
    sources: LoadedSources;
  }
}

/** The validated config and sources, as decorators every other plugin can read. */
export default fp<{ config: Config; sources: LoadedSources }>(
  async (app, opts) => {
    app.decorate('config', opts.config);
    app.decorate('sources', opts.sources);
  },
  { name: 'config' },
);
