import {
  byCount,
  DRIFT_MAX_FIELDS,
  type Drift,
  type DriftField,
  type JsonType,
  type NamedPaths,
} from '../../contract/validate.ts';

/** A sample's and a path's length, past which they are cut (`…`). */
export const DRIFT_SAMPLE_CHARS = 80;
const PATH_CHARS = 200;

// What the columns name, as a tree: the walk goes down named objects and `from` arrays only, so a record costs
// one look-up per field of a named object, and a field nothing names is counted once, as a whole.
interface Named {
  /** The path of this node's fields, e.g. `customer.` or `items[].`; fixed, so a named field costs no string. */
  readonly prefix: string;
  readonly fields: Map<string, Named>;
  /** The element of a child's `from` array. */
  items?: Named;
  /** A column's value: what is inside is the column's (a json column's, or a scalar's, which validation checks). */
  column: boolean;
  json: boolean;
  /** Nothing inside is walked: a json column, or a column with no other column below it. */
  leaf: boolean;
}

interface Tracked {
  readonly path: string;
  readonly type: JsonType;
  count: number;
  /** The record that last counted it: a record counts once however many array elements hold the field. */
  record: number;
  readonly sample: string;
}

/**
 * Counts, over the records it is shown, the fields that no column names: for each (path, JSON type), how many
 * records hold it, and the first value seen. Hand-written because it is a walk over a tree of names that no
 * library does; ajv's `additionalProperties` could only reject such fields, not count them.
 */
export class DriftCounter {
  private readonly root: Named;
  private readonly tracked = new Map<string, Tracked>();
  private truncated = false;
  private record = 0;

  constructor(named: NamedPaths) {
    this.root = namedTree(named);
  }

  /** Counts one record's unnamed fields. A record that is not an object has none (validation rejects it). */
  count(record: unknown): void {
    this.record += 1;
    if (isObject(record)) this.walkObject(record, this.root);
  }

  result(): Drift {
    const fields: DriftField[] = [...this.tracked.values()]
      .map(({ path, type, count, sample }) => ({ path, type, count, sample }))
      .sort(byCount);
    return { fields, truncated: this.truncated };
  }

  private walkObject(value: Record<string, unknown>, named: Named): void {
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue;
      const field = value[key];
      const child = named.fields.get(key);
      if (child === undefined) this.unnamed(named.prefix + key, field);
      else if (!child.leaf) this.walk(field, child);
    }
  }

  private walk(value: unknown, named: Named): void {
    const items = named.items;
    if (items !== undefined && Array.isArray(value)) {
      if (!items.leaf) for (const element of value) if (isObject(element)) this.walkObject(element, items);
    } else if (named.fields.size > 0 && isObject(value)) {
      this.walkObject(value, named);
    }
  }

  private unnamed(path: string, value: unknown): void {
    const type = jsonType(value);
    const key = `${type} ${path}`;
    const seen = this.tracked.get(key);
    if (seen !== undefined) {
      if (seen.record !== this.record) {
        seen.count += 1;
        seen.record = this.record;
      }
      return;
    }
    if (this.tracked.size >= DRIFT_MAX_FIELDS) {
      this.truncated = true;
      return;
    }
    this.tracked.set(key, {
      path: cut(path, PATH_CHARS),
      type,
      count: 1,
      record: this.record,
      sample: sample(value),
    });
  }
}

function namedTree(named: NamedPaths): Named {
  const node = (prefix: string): Named => ({
    prefix,
    fields: new Map(),
    column: false,
    json: false,
    leaf: false,
  });
  const root = node('');
  const json = new Set(named.json);
  for (const path of named.columns) {
    let at = root;
    for (const segment of path.split('.')) {
      const array = segment.endsWith('[]');
      const name = array ? segment.slice(0, -2) : segment;
      let next = at.fields.get(name);
      if (next === undefined) {
        next = node(`${at.prefix}${name}.`);
        at.fields.set(name, next);
      }
      if (array) next.items ??= node(`${at.prefix}${name}[].`);
      at = array ? (next.items as Named) : next;
    }
    at.column = true;
    at.json ||= json.has(path);
  }
  markLeaves(root);
  return root;
}

function markLeaves(at: Named): void {
  at.leaf = at.json || (at.column && at.fields.size === 0 && at.items === undefined);
  for (const field of at.fields.values()) markLeaves(field);
  if (at.items !== undefined) markLeaves(at.items);
}

function jsonType(value: unknown): JsonType {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  const type = typeof value;
  // A parsed JSON document holds nothing else.
  return type === 'boolean' || type === 'number' || type === 'string' ? type : 'object';
}

function sample(value: unknown): string {
  // A long string is cut before it is quoted, so a megabyte of text is never copied for its first characters.
  const text =
    typeof value === 'string'
      ? JSON.stringify(value.length > DRIFT_SAMPLE_CHARS ? value.slice(0, DRIFT_SAMPLE_CHARS) : value)
      : JSON.stringify(value);
  return cut(text, DRIFT_SAMPLE_CHARS);
}

function cut(text: string, chars: number): string {
  return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
