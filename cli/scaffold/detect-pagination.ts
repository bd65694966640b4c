// Which pagination kind a first page shows, as candidates in the order sample.ts tries them: a Link header,
// a next cursor in the body, a next URL in the body that differs from the request by one page, offset or
// cursor parameter, an offset/limit/total shape, a page/per_page/total_pages shape. Each is checked by
// following pages with the ingest's own paginator before it is proposed.
import type { Pagination } from '../../contract/source-config.ts';
import { nextLink } from '../../lambdas/ingest/link-header.ts';
import { isObject } from './records.ts';

/** The config's default `maxPages`, which the proposal leaves out. */
export const MAX_PAGES = 100_000;

export interface Candidate {
  pagination: Pagination;
  /** Query parameters the paginator sets itself, so they leave the proposal's request URL and query. */
  consumed: string[];
  /** What in the first page led here, for the summary and the comment. */
  why: string;
  /** Said next to `pagination`, e.g. that a parameter name is a guess. */
  note?: string;
  /** Other `cursorParam` names to try when the guess does not move the pages. */
  otherCursorParams?: string[];
}

export interface Detection {
  candidates: Candidate[];
  /** Why the first page may have more pages behind it when no candidate works: said next to `kind: none`. */
  hints: string[];
}

interface Leaf {
  path: string[];
  key: string;
  norm: string;
  parent: string;
  value: unknown;
}

const norm = (key: string): string => key.toLowerCase().replace(/[-_]/g, '');
const PAGE_KEYS = new Set(['page', 'currentpage', 'pagenumber', 'pageno', 'pageindex', 'pagenum']);
const PAGES_KEYS = new Set(['totalpages', 'lastpage', 'pagecount', 'numpages', 'pages']);
const OFFSET_KEYS = new Set(['offset', 'skip', 'start', 'startindex']);
const SIZE_KEYS = new Set(['perpage', 'pagesize', 'limit', 'size', 'count', 'maxresults', 'pagelimit']);
const TOTAL_KEYS = new Set([
  'total',
  'totalcount',
  'totalresults',
  'totalitems',
  'totalrecords',
  'totalentries',
]);
// Keys that hold the next page's token or URL, beyond those starting with "next".
const NEXT_KEYS = new Set(['endcursor', 'after', 'continuation', 'continuationtoken', 'scrollid']);
const CURSOR_PARENTS = new Set([
  'cursor',
  'cursors',
  'paging',
  'pagination',
  'links',
  'meta',
  'pageinfo',
  'next',
]);

function leavesOf(body: unknown, records: string | undefined): Leaf[] {
  const out: Leaf[] = [];
  const skip = records ?? '';
  const walk = (value: unknown, path: string[]): void => {
    if (path.join('.') === skip && records !== undefined) return;
    if (isObject(value)) {
      if (path.length >= 4) return;
      for (const [key, child] of Object.entries(value)) walk(child, [...path, key]);
      return;
    }
    if (Array.isArray(value) || path.length === 0) return;
    const key = path.at(-1) ?? '';
    out.push({ path, key, norm: norm(key), parent: norm(path.at(-2) ?? ''), value });
  };
  if (records !== undefined) walk(body, []);
  return out;
}

const isInteger = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const dotted = (leaf: Leaf): string => leaf.path.join('.');

function urlParam(url: URL, names: Set<string>): [string, string] | undefined {
  for (const [name, value] of url.searchParams) if (names.has(norm(name))) return [name, value];
  return undefined;
}

function looksLikeUrl(text: string): boolean {
  return /^(https?:\/\/|\/|\?)/i.test(text);
}

/** The request parameter the API most likely takes a token from, by the body field that holds it. */
function cursorParamGuesses(leaf: Leaf): string[] {
  const camel = /[a-z][A-Z]/.test(leaf.key);
  const style = (snake: string, camelCase: string): string => (camel ? camelCase : snake);
  let first: string;
  if (leaf.norm === 'nextpagetoken' || leaf.norm === 'pagetoken') first = style('page_token', 'pageToken');
  else if (leaf.norm === 'endcursor' || leaf.norm === 'after') first = 'after';
  else if (leaf.norm === 'nextmarker') first = style('marker', 'marker');
  else if (leaf.norm === 'scrollid') first = style('scroll_id', 'scrollId');
  else if (leaf.norm.startsWith('continuation') || leaf.norm === 'nexttoken' || leaf.norm === 'nextkey')
    first = leaf.key;
  else first = 'cursor';
  return [...new Set([first, 'cursor', leaf.key, 'after', style('page_token', 'pageToken')])];
}

function pageCandidate(
  pageParam: string,
  startPage: number,
  size: { param?: string; value: number },
  why: string,
  note?: string,
): Candidate {
  return {
    pagination: {
      kind: 'page',
      pageParam,
      ...(size.param ? { sizeParam: size.param } : {}),
      size: size.value,
      startPage,
      maxPages: MAX_PAGES,
    },
    consumed: [pageParam, ...(size.param ? [size.param] : [])],
    why,
    note:
      note ??
      (size.param
        ? undefined
        : `no page size parameter was seen: size is the ${size.value} records page 1 held; set sizeParam if the API takes one`),
  };
}

function offsetCandidate(
  offsetParam: string,
  limit: { param?: string; value: number },
  why: string,
): Candidate {
  const limitParam = limit.param ?? 'limit';
  return {
    pagination: { kind: 'offset', offsetParam, limitParam, size: limit.value, maxPages: MAX_PAGES },
    consumed: [offsetParam, limitParam],
    why,
    ...(limit.param
      ? {}
      : {
          note: `the limit parameter's name was not seen: "limit" is a guess, check it (size is what page 1 held)`,
        }),
  };
}

/** Page size: a size parameter in the request, else a size field in the body, else what page 1 held. */
function sizeOf(request: URL, leaves: Leaf[], records: number): { param?: string; value: number } {
  const inUrl = urlParam(request, SIZE_KEYS);
  if (inUrl && /^\d+$/.test(inUrl[1]) && Number(inUrl[1]) > 0)
    return { param: inUrl[0], value: Number(inUrl[1]) };
  const inBody = leaves.find(
    (l) => SIZE_KEYS.has(l.norm) && l.norm !== 'count' && isInteger(l.value) && l.value > 0,
  );
  if (inBody) return { param: inBody.key, value: inBody.value as number };
  return { value: Math.max(1, records) };
}

/** A next-page URL from the body, as a kind the paginator can follow, or why it cannot be. */
function fromNextUrl(
  next: URL,
  request: URL,
  leaf: Leaf,
  leaves: Leaf[],
  records: number,
  ignored: readonly string[],
): Candidate | { unusable: string } {
  const where = `body.${dotted(leaf)} holds the next page's URL`;
  const later = 'following a next URL from the body (nextPath) comes in a later release';
  if (next.origin !== request.origin || next.pathname !== request.pathname)
    return { unusable: `${where}, on another path (${next.pathname}); ${later}` };
  const changed = [...new Set(next.searchParams.keys())].filter(
    (p) => !ignored.includes(p) && next.searchParams.get(p) !== request.searchParams.get(p),
  );
  const sizes = changed.filter((p) => SIZE_KEYS.has(norm(p)));
  const moving = changed.filter((p) => !SIZE_KEYS.has(norm(p)));
  const [param] = moving;
  if (param === undefined || moving.length > 1)
    return {
      unusable: `${where}, which differs from the request in ${changed.length === 0 ? 'no query parameter' : changed.join(', ')}, not in one page, offset or cursor parameter; ${later}`,
    };
  const value = next.searchParams.get(param) ?? '';
  const sizeParam = sizes[0] ?? urlParam(request, SIZE_KEYS)?.[0];
  const sizeValue = Number(
    sizeParam ? (next.searchParams.get(sizeParam) ?? request.searchParams.get(sizeParam)) : NaN,
  );
  const size =
    sizeParam && sizeValue > 0 ? { param: sizeParam, value: sizeValue } : sizeOf(request, leaves, records);
  const why = `${where}, which differs from the request only in "${param}"`;
  if (OFFSET_KEYS.has(norm(param)) && /^\d+$/.test(value)) return offsetCandidate(param, size, why);
  if (PAGE_KEYS.has(norm(param)) || (norm(param) === 'p' && /^\d+$/.test(value))) {
    const current = Number(request.searchParams.get(param) ?? Number(value) - 1);
    return pageCandidate(param, current === 0 ? 0 : 1, size, why);
  }
  const token = leaves.find(
    (l) => l !== leaf && (typeof l.value === 'string' || isInteger(l.value)) && String(l.value) === value,
  );
  if (token)
    return {
      pagination: { kind: 'cursor', cursorPath: dotted(token), cursorParam: param, maxPages: MAX_PAGES },
      consumed: [param],
      why: `${why}, whose value is also at body.${dotted(token)}`,
    };
  return {
    unusable: `${where}, and its "${param}" token is in no other body field that a cursor could read; ${later}`,
  };
}

/** Reads the first page for pagination: candidates, best first, ending with `none`. */
export function detectPagination(
  page: { body: unknown; headers: Record<string, string | string[] | undefined>; url: URL },
  request: URL,
  recordsPath: string | undefined,
  records: number,
  /** Query parameters auth adds, which a next URL may repeat. */
  authParams: readonly string[] = [],
): Detection {
  const candidates: Candidate[] = [];
  const hints: string[] = [];
  const leaves = leavesOf(page.body, recordsPath);

  if (nextLink(page.headers.link, page.url))
    candidates.push({
      pagination: { kind: 'link', maxPages: MAX_PAGES },
      consumed: [],
      why: 'the response has a Link header with rel="next"',
    });

  const nextish = leaves.filter(
    (l) =>
      (l.norm.startsWith('next') && l.norm !== 'nextpageexists') ||
      NEXT_KEYS.has(l.norm) ||
      (CURSOR_PARENTS.has(l.parent) && (l.norm === 'next' || l.norm === 'after')),
  );
  for (const leaf of nextish) {
    const { value } = leaf;
    if (typeof value === 'string' && value !== '' && looksLikeUrl(value)) {
      const next = URL.parse(value, page.url.href);
      if (next === null) continue;
      const found = fromNextUrl(next, request, leaf, leaves, records, authParams);
      if ('unusable' in found) hints.push(found.unusable);
      else candidates.push(found);
    } else if (isInteger(value) && /page|^next$/.test(leaf.norm)) {
      const param = urlParam(request, PAGE_KEYS)?.[0] ?? 'page';
      candidates.push(
        pageCandidate(
          param,
          value - 1 === 0 ? 0 : 1,
          sizeOf(request, leaves, records),
          `body.${dotted(leaf)} is the next page's number (${value})`,
        ),
      );
    } else if (typeof value === 'string' && /^\d{4}-\d{2}-\d{2}/.test(value)) {
      // A date (next_billing_date, next_run_at) says when, not where the next page is.
      continue;
    } else if ((typeof value === 'string' && value !== '') || (isInteger(value) && !/page/.test(leaf.norm))) {
      const [param = 'cursor', ...others] = cursorParamGuesses(leaf);
      candidates.push({
        pagination: { kind: 'cursor', cursorPath: dotted(leaf), cursorParam: param, maxPages: MAX_PAGES },
        consumed: [param],
        why: `body.${dotted(leaf)} holds a next-page token`,
        note: `cursorParam "${param}" is a guess from the field's name: check the API takes the token as ${param}`,
        otherCursorParams: others,
      });
    } else if (value === null || value === '') {
      // A token field that is empty on page 1: the API has one page now, but pages by cursor.
      if (!/url|link|href|page$/.test(leaf.norm)) {
        const [param = 'cursor'] = cursorParamGuesses(leaf);
        candidates.push({
          pagination: { kind: 'cursor', cursorPath: dotted(leaf), cursorParam: param, maxPages: MAX_PAGES },
          consumed: [param],
          why: `body.${dotted(leaf)} looks like a next-page token field (empty on page 1: one page so far)`,
          note: `cursorParam "${param}" is a guess from the field's name, not tried (there was no next page): check it`,
        });
      }
    }
  }

  const numeric = (keys: Set<string>): Leaf | undefined =>
    leaves.find((l) => keys.has(l.norm) && isInteger(l.value));
  const offsetLeaf = numeric(OFFSET_KEYS);
  const limitLeaf = numeric(SIZE_KEYS);
  const totalLeaf = numeric(TOTAL_KEYS);
  const pageLeaf = numeric(PAGE_KEYS);
  const pagesLeaf = numeric(PAGES_KEYS);
  const offsetInUrl = urlParam(request, OFFSET_KEYS);
  const pageInUrl = urlParam(request, PAGE_KEYS);
  const size = sizeOf(request, leaves, records);
  const offsetParam =
    offsetInUrl?.[0] ?? (offsetLeaf && /^[a-zA-Z]+$/.test(offsetLeaf.key) ? offsetLeaf.key : 'offset');
  const pageParam =
    pageInUrl?.[0] ??
    (pageLeaf && PAGE_KEYS.has(pageLeaf.norm) && pageLeaf.norm !== 'currentpage' ? pageLeaf.key : 'page');
  const startPage = Number(pageInUrl?.[1] ?? (pageLeaf?.value as number | undefined) ?? 1) === 0 ? 0 : 1;

  if (offsetInUrl || (offsetLeaf && (limitLeaf || totalLeaf)))
    candidates.push(
      offsetCandidate(
        offsetParam,
        size,
        offsetInUrl
          ? `the request's "${offsetInUrl[0]}" parameter`
          : `the body's ${[offsetLeaf, limitLeaf, totalLeaf]
              .filter((l) => l !== undefined)
              .map((l) => `"${dotted(l)}"`)
              .join(', ')}`,
      ),
    );
  if (pageInUrl || pageLeaf || pagesLeaf)
    candidates.push(
      pageCandidate(
        pageParam,
        startPage,
        size,
        pageInUrl
          ? `the request's "${pageInUrl[0]}" parameter`
          : `the body's ${[pageLeaf, pagesLeaf, limitLeaf]
              .filter((l) => l !== undefined)
              .map((l) => `"${dotted(l)}"`)
              .join(', ')}`,
      ),
    );
  const total = totalLeaf?.value ?? Number(firstHeader(page.headers['x-total-count']) ?? NaN);
  if (candidates.length === 0 && typeof total === 'number' && total > records) {
    const why = `${totalLeaf ? `body.${dotted(totalLeaf)}` : 'the X-Total-Count header'} (${total}) is more than page 1's ${records} records`;
    candidates.push(offsetCandidate('offset', size, `${why}; offset is a guess`));
    candidates.push(pageCandidate('page', 1, size, `${why}; page is a guess`));
  }
  const more = leaves.find(
    (l) => /^(hasmore|hasnextpage|more|moreavailable)$/.test(l.norm) && l.value === true,
  );
  if (more) hints.push(`body.${dotted(more)} is true, but no way to ask for the next page was found`);
  if (typeof total === 'number' && total > records && hints.length === 0)
    hints.push(`the API reports ${total} records in all, more than page 1's ${records}`);
  return { candidates: dedupe(candidates), hints };
}

function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function dedupe(candidates: Candidate[]): Candidate[] {
  const seen = new Set<string>();
  return candidates.filter((c) => {
    const key = JSON.stringify(c.pagination);
    return !seen.has(key) && seen.add(key);
  });
}
