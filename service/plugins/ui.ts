import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { existsSync } from 'node:fs';
import { join, sep } from 'node:path';

/** Where `npm run build` writes the web app (ui/vite.config.ts). */
export const UI_DIST = join(import.meta.dirname, '..', '..', 'ui', 'dist');

export interface UiOptions {
  /**
   * The built web app: a folder holding index.html and assets/.
   * @default ui/dist of the checkout
   */
  root?: string;
}

const NOT_BUILT = 'the web app is not built: run npm run build';
// Vite names every asset under assets/ by its content hash, so a changed file gets a new URL.
const IMMUTABLE = 'public, max-age=31536000, immutable';

/**
 * The web app at /ui/: its files, public (the shell holds no data; every API call it makes carries the user's
 * token). The root hooks still apply: helmet's headers, its CSP included, and the rate limit. The app routes in
 * the URL's hash (/ui/#/runs/42), so no path under /ui/ needs a fallback to index.html. Without a build the API
 * works as ever and /ui/ answers 503 saying how to build it.
 */
export async function registerUi(app: FastifyInstance, options: UiOptions = {}): Promise<void> {
  const root = options.root ?? UI_DIST;
  if (!existsSync(join(root, 'index.html'))) {
    app.log.warn({ root }, `${NOT_BUILT} (the API works without it)`);
    const notBuilt = async (_request: unknown, reply: FastifyReply) =>
      reply.code(503).header('cache-control', 'no-store').type('text/plain; charset=utf-8').send(NOT_BUILT);
    app.get('/ui', { schema: { hide: true } }, notBuilt);
    app.get('/ui/*', { schema: { hide: true } }, notBuilt);
    return;
  }
  const assets = join(root, 'assets') + sep;
  await app.register(fastifyStatic, {
    root,
    prefix: '/ui/',
    index: ['index.html'],
    // Another plugin (Swagger UI) may decorate the reply with sendFile; this one needs no decorator.
    decorateReply: false,
    cacheControl: false,
    setHeaders: (reply, path) => {
      reply.header('cache-control', path.startsWith(assets) ? IMMUTABLE : 'no-cache');
    },
    schemaHide: true,
  });
  // The app's URL is /ui/ (its links are relative to it); /ui is a redirect there.
  app.get('/ui', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/ui/', 301));
}
