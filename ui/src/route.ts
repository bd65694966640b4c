import { STATUSES, type Status } from './types.ts';

// The app's routes live in the URL's hash (/ui/#/runs/42), so the server serves one page and a view can be
// linked, filters included. Pure: parsing and formatting only.

export type Route =
  | { view: 'runs'; source?: string; status?: Status }
  | { view: 'run'; id: number }
  | { view: 'rejects'; id: number }
  | { view: 'sources' }
  | { view: 'source'; name: string }
  | { view: 'not-found'; path: string };

const RUN_ID = /^[1-9][0-9]{0,9}$/;

/** The route a location hash (`#/runs?status=FAILED`, `#/runs/42`, `` for the start) names. */
export function parseRoute(hash: string): Route {
  const text = hash.replace(/^#/, '');
  const [rawPath = '', rawQuery = ''] = text.split('?', 2);
  const parts = rawPath
    .split('/')
    .filter((p) => p !== '')
    .map((p) => safeDecode(p));
  const query = new URLSearchParams(rawQuery);
  const [first, second, third] = parts;
  if (parts.length === 0 || (first === 'runs' && parts.length === 1)) {
    const source = query.get('source') ?? undefined;
    const status = query.get('status') ?? undefined;
    return {
      view: 'runs',
      ...(source ? { source } : {}),
      ...(status && isStatus(status) ? { status } : {}),
    };
  }
  if (first === 'runs' && second !== undefined && RUN_ID.test(second)) {
    if (parts.length === 2) return { view: 'run', id: Number(second) };
    if (parts.length === 3 && third === 'rejects') return { view: 'rejects', id: Number(second) };
  }
  if (first === 'sources' && parts.length === 1) return { view: 'sources' };
  if (first === 'sources' && parts.length === 2 && second) return { view: 'source', name: second };
  return { view: 'not-found', path: rawPath };
}

/** The hash for a route, `#/…`; the inverse of parseRoute. */
export function formatRoute(route: Route): string {
  switch (route.view) {
    case 'runs': {
      const query = new URLSearchParams();
      if (route.source) query.set('source', route.source);
      if (route.status) query.set('status', route.status);
      return query.size > 0 ? `#/runs?${query.toString()}` : '#/runs';
    }
    case 'run':
      return `#/runs/${route.id}`;
    case 'rejects':
      return `#/runs/${route.id}/rejects`;
    case 'sources':
      return '#/sources';
    case 'source':
      return `#/sources/${encodeURIComponent(route.name)}`;
    case 'not-found':
      return `#${route.path}`;
  }
}

function isStatus(value: string): value is Status {
  return (STATUSES as readonly string[]).includes(value);
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
