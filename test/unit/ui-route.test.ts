import { describe, expect, it } from 'vitest';
import { formatRoute, parseRoute, type Route } from '../../ui/src/route.ts';

// The web app's hash routes: what a linked URL opens, and that each view's link opens that view again.

describe('parseRoute', () => {
  it('opens the runs list at the start and on #/runs, with the filters from the query', () => {
    expect(parseRoute('')).toEqual({ view: 'runs' });
    expect(parseRoute('#/')).toEqual({ view: 'runs' });
    expect(parseRoute('#/runs')).toEqual({ view: 'runs' });
    expect(parseRoute('#/runs?source=demo&status=FAILED')).toEqual({
      view: 'runs',
      source: 'demo',
      status: 'FAILED',
    });
  });

  it('drops a status that is not one', () => {
    expect(parseRoute('#/runs?status=BROKEN&source=demo')).toEqual({ view: 'runs', source: 'demo' });
  });

  it('reads a run, its rejects, the sources and one source', () => {
    expect(parseRoute('#/runs/42')).toEqual({ view: 'run', id: 42 });
    expect(parseRoute('#/runs/42/rejects')).toEqual({ view: 'rejects', id: 42 });
    expect(parseRoute('#/sources')).toEqual({ view: 'sources' });
    expect(parseRoute('#/sources/my%20api')).toEqual({ view: 'source', name: 'my api' });
  });

  it('names anything else not found, run ids that are not ids included', () => {
    expect(parseRoute('#/runs/0')).toEqual({ view: 'not-found', path: '/runs/0' });
    expect(parseRoute('#/runs/abc')).toEqual({ view: 'not-found', path: '/runs/abc' });
    expect(parseRoute('#/runs/12345678901')).toEqual({ view: 'not-found', path: '/runs/12345678901' });
    expect(parseRoute('#/runs/4/files')).toEqual({ view: 'not-found', path: '/runs/4/files' });
    expect(parseRoute('#/elsewhere')).toEqual({ view: 'not-found', path: '/elsewhere' });
  });
});

describe('formatRoute', () => {
  it('round-trips every view', () => {
    const routes: Route[] = [
      { view: 'runs' },
      { view: 'runs', source: 'demo' },
      { view: 'runs', status: 'RUNNING' },
      { view: 'runs', source: 'a b&c', status: 'CANCELLED' },
      { view: 'run', id: 7 },
      { view: 'rejects', id: 7 },
      { view: 'sources' },
      { view: 'source', name: 'odd/name' },
    ];
    for (const route of routes) expect(parseRoute(formatRoute(route))).toEqual(route);
  });

  it('writes filters as a query a link keeps', () => {
    expect(formatRoute({ view: 'runs', source: 'demo', status: 'FAILED' })).toBe(
      '#/runs?source=demo&status=FAILED',
    );
    expect(formatRoute({ view: 'runs' })).toBe('#/runs');
  });
});
