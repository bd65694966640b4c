import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import request from 'supertest';
import { build } from 'vite';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../service/observability/logger.ts';
import { startTestApp, type TestApp } from '../support/app.ts';
import { TOKEN } from '../support/env.ts';

// The web app at /ui/, served by the api role from a real build of ui/ (into a temp folder), on the real MariaDB
// and Redis: public (no token), with helmet's headers and the rate limit like every route, hashed assets cached
// for good and index.html revalidated; and a clear 503 when the app was never built, the API working regardless.

let dist: string;
let t: TestApp | undefined;

beforeAll(async () => {
  dist = await mkdtemp(join(tmpdir(), 'afluente-ui-'));
  await build({ root: 'ui', logLevel: 'silent', build: { outDir: dist, emptyOutDir: true } });
}, 60_000);
afterAll(async () => {
  await rm(dist, { recursive: true, force: true });
});
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('the web app at /ui/', () => {
  it('serves index.html without a token, not cached, with the security headers and the rate limit', async () => {
    t = await startTestApp({ env: { AFLUENTE_ROLES: 'api' }, ui: { root: dist } });
    const res = await request(t.app.server).get('/ui/');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.headers['x-ratelimit-limit']).toBeDefined();
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    // The app runs under helmet's default CSP: scripts from this origin only, and none inline.
    const csp = res.headers['content-security-policy'] as string;
    const directives = csp.split(';').map((d) => d.trim());
    expect(directives).toContain("script-src 'self'");
    expect(directives).toContain("default-src 'self'");
    // Plain HTTP on a host other than localhost must keep working (compose from another machine).
    expect(directives.some((d) => d.startsWith('upgrade-insecure-requests'))).toBe(false);
    expect(res.text).toContain('<div id="app"></div>');
    expect(res.text).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(res.text).toMatch(/<script type="module" crossorigin src="\/ui\/assets\/index-[\w-]+\.js">/);
  });

  it('serves the hashed assets with immutable caching and their content types', async () => {
    t = await startTestApp({ env: { AFLUENTE_ROLES: 'api' }, ui: { root: dist } });
    const assets = await readdir(join(dist, 'assets'));
    const script = assets.find((f) => f.endsWith('.js'));
    const style = assets.find((f) => f.endsWith('.css'));
    expect(script && style).toBeTruthy();
    const js = await request(t.app.server).get(`/ui/assets/${script}`);
    expect(js.status).toBe(200);
    expect(js.headers['content-type']).toMatch(/^(text|application)\/javascript/);
    expect(js.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const css = await request(t.app.server).get(`/ui/assets/${style}`);
    expect(css.status).toBe(200);
    expect(css.headers['content-type']).toMatch(/^text\/css/);
    expect(css.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    const missing = await request(t.app.server).get('/ui/assets/nothing-here.js');
    expect(missing.status).toBe(404);
  });

  it('redirects /ui to /ui/, and the API behind it still wants a token', async () => {
    t = await startTestApp({ env: { AFLUENTE_ROLES: 'api' }, ui: { root: dist } });
    const res = await request(t.app.server).get('/ui');
    expect(res.status).toBe(301);
    expect(res.headers.location).toBe('/ui/');
    expect((await request(t.app.server).get('/runs')).status).toBe(401);
    const runs = await request(t.app.server)
      .get('/runs')
      .set({ authorization: `Bearer ${TOKEN}` });
    expect(runs.status).toBe(200);
  });

  it('answers 503 naming the fix when the app is not built, logs it once, and the API works', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'afluente-ui-empty-'));
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    try {
      t = await startTestApp({
        env: { AFLUENTE_ROLES: 'api' },
        ui: { root: empty },
        logger: createLogger('info', sink),
      });
      for (const path of ['/ui/', '/ui', '/ui/assets/index.js']) {
        const res = await request(t.app.server).get(path);
        expect(res.status, path).toBe(503);
        expect(res.headers['content-type']).toMatch(/^text\/plain/);
        expect(res.text).toBe('the web app is not built: run npm run build');
      }
      expect(lines.filter((l) => l.includes('the web app is not built'))).toHaveLength(1);
      const runs = await request(t.app.server)
        .get('/runs')
        .set({ authorization: `Bearer ${TOKEN}` });
      expect(runs.status).toBe(200);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('is not served by a process without the api role', async () => {
    t = await startTestApp({ env: { AFLUENTE_ROLES: 'worker' }, ui: { root: dist } });
    expect((await request(t.app.server).get('/ui/')).status).toBe(404);
  });
});
