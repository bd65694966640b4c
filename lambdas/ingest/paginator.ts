import type { PageState } from '../../contract/ingest.ts';
import type { Pagination } from '../../contract/source-config.ts';
import { getPath } from '../common/json-path.ts';
import { HandlerError } from '../common/errors.ts';
import { nextLink } from './link-header.ts';

export interface FetchedPage {
  records: unknown[];
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
  url: URL;
}

/**
 * One strategy per pagination kind: which URL fetches the page a state points at, and which state comes after
 * a page (or `null` when the source is exhausted). Page and offset kinds stop at the first empty page rather
 * than a short one, because an API that caps the page size below the configured one would otherwise be cut
 * short silently.
 */
export interface Paginator {
  first(): PageState;
  url(state: PageState): URL;
  next(state: PageState, page: FetchedPage): PageState | null;
  /** What must never repeat in one run: the cursor or link followed to reach a page. */
  loopKey(state: PageState): string | undefined;
}

export function paginator(pagination: Pagination, base: () => URL): Paginator {
  switch (pagination.kind) {
    case 'page':
      return {
        first: () => ({ page: pagination.startPage }),
        url: (state) => {
          const url = base();
          url.searchParams.set(pagination.pageParam, String(state.page));
          if (pagination.sizeParam) url.searchParams.set(pagination.sizeParam, String(pagination.size));
          return url;
        },
        next: (state, page) =>
          page.records.length === 0 ? null : { page: (state.page ?? pagination.startPage) + 1 },
        loopKey: () => undefined,
      };
    case 'offset':
      return {
        first: () => ({ offset: 0 }),
        url: (state) => {
          const url = base();
          url.searchParams.set(pagination.offsetParam, String(state.offset));
          url.searchParams.set(pagination.limitParam, String(pagination.size));
          return url;
        },
        next: (state, page) =>
          page.records.length === 0 ? null : { offset: (state.offset ?? 0) + page.records.length },
        loopKey: () => undefined,
      };
    case 'cursor':
      return {
        first: () => ({ cursor: null }),
        url: (state) => {
          const url = base();
          if (state.cursor) url.searchParams.set(pagination.cursorParam, state.cursor);
          return url;
        },
        next: (_state, page) => {
          const token = getPath(page.body, pagination.cursorPath);
          if (token === null || token === undefined || token === '') return null;
          if (typeof token !== 'string' && typeof token !== 'number') {
            throw new HandlerError({
              reason: 'bad_cursor',
              message: `the next-page token at body.${pagination.cursorPath} is not a string or a number`,
              retryable: false,
            });
          }
          return { cursor: String(token) };
        },
        loopKey: (state) => (state.cursor ? `cursor:${state.cursor}` : undefined),
      };
    case 'link':
      return {
        first: () => ({}),
        url: (state) => {
          if (!state.url) return base();
          // Keep the query the config adds (an API key, say) even if the server leaves it out of its links.
          const url = new URL(state.url);
          for (const [k, v] of base().searchParams) if (!url.searchParams.has(k)) url.searchParams.set(k, v);
          return url;
        },
        next: (_state, page) => {
          const next = nextLink(page.headers.link, page.url);
          return next ? { url: next.toString() } : null;
        },
        loopKey: (state) => (state.url ? `link:${state.url}` : undefined),
      };
    case 'none':
      return { first: () => ({}), url: () => base(), next: () => null, loopKey: () => undefined };
  }
}
