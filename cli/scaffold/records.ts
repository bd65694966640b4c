// Where a page's records are: the path `--records` names, or else the largest array of objects in the body
// (the body itself when it is an array).
import { FIELD_PATH_PATTERN } from '../../contract/source-config.ts';
import { getPath } from '../../lambdas/common/json-path.ts';

const FIELD_PATH = new RegExp(FIELD_PATH_PATTERN);
/** Arrays deeper than this are not looked at: records sit near the top of a page. */
const MAX_DEPTH = 4;

export interface ArrayFound {
  /** Dot path in the body; `undefined` for the body itself. */
  path: string | undefined;
  length: number;
}

export const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The body's arrays of objects (non-empty or not), largest first, then shallowest. */
export function arraysOfObjects(body: unknown): ArrayFound[] {
  const found: (ArrayFound & { depth: number })[] = [];
  const walk = (value: unknown, path: string[]): void => {
    if (Array.isArray(value)) {
      if (value.every(isObject))
        found.push({ path: path.join('.') || undefined, length: value.length, depth: path.length });
      return;
    }
    if (!isObject(value) || path.length >= MAX_DEPTH) return;
    for (const [key, child] of Object.entries(value)) {
      // A key that a dot path cannot spell cannot be the config's `records`.
      if (FIELD_PATH.test(key)) walk(child, [...path, key]);
    }
  };
  walk(body, []);
  return found
    .sort((a, b) => b.length - a.length || a.depth - b.depth)
    .map(({ path, length }) => ({ path, length }));
}

export type RecordsChoice =
  | { ok: true; path: string | undefined; records: Record<string, unknown>[]; why: string }
  | { ok: false; message: string };

function describe(found: ArrayFound[]): string {
  if (found.length === 0) return 'the body has no array of objects';
  return `arrays of objects in the body: ${found
    .slice(0, 5)
    .map((f) => `${f.path ?? '(the body)'} (${f.length})`)
    .join(', ')}`;
}

/** The records of the first page, and why they are the ones. `wanted` is `--records`, `.` for the body. */
export function chooseRecords(body: unknown, wanted: string | undefined): RecordsChoice {
  const found = arraysOfObjects(body);
  if (wanted !== undefined) {
    const path = wanted === '.' ? undefined : wanted;
    const value = getPath(body, path);
    if (!Array.isArray(value))
      return {
        ok: false,
        message: `--records ${wanted}: ${path ? `body.${path}` : 'the body'} is ${value === undefined ? 'missing' : `not an array (${typeOf(value)})`}; ${describe(found)}`,
      };
    if (!value.every(isObject))
      return {
        ok: false,
        message: `--records ${wanted}: ${path ? `body.${path}` : 'the body'} is an array of ${[...new Set(value.filter((v) => !isObject(v)).map(typeOf))].join(', ')}, not of objects (records); ${describe(found)}`,
      };
    return { ok: true, path, records: value, why: 'as --records says' };
  }
  const [best] = found;
  if (best === undefined)
    return {
      ok: false,
      message: `no array of records found in the body (${Array.isArray(body) ? 'it is an array, but not of objects' : `its fields: ${isObject(body) ? Object.keys(body).slice(0, 10).join(', ') || 'none' : typeOf(body)}`}); name the records array with --records <path>`,
    };
  const records = getPath(body, best.path) as Record<string, unknown>[];
  const why =
    best.path === undefined
      ? 'the body is the array of records'
      : found.length === 1
        ? `the only array of objects in the body`
        : `the largest array of objects in the body (others: ${found
            .slice(1, 4)
            .map((f) => `${f.path ?? '(the body)'} (${f.length})`)
            .join(', ')}); use --records to pick another`;
  return { ok: true, path: best.path, records, why };
}

export function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
