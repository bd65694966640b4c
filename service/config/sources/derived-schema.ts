// The records' JSON Schema (draft-07) of a source without a `schema` file, derived from its `tables`: what the
// tables can say about a record, and nothing more. Pure, so the tests and the scaffolding can call it directly.
import {
  ELEMENT_PATH,
  childTables,
  parentTable,
  parseColumnType,
  type ColumnType,
  type SourceConfig,
  type TableSpec,
} from '../../../contract/source-config.ts';

type Schema = Record<string, unknown>;

// One place in the record: an object (fields), an array (a child's `from`), a column's value, or several of
// these at once when two specs name the same path in different ways (they must all hold).
interface Node {
  readonly fields: Map<string, Node>;
  readonly values: Schema[];
  items?: Node;
  /** On the way to a key column: present and not null. */
  required: boolean;
  /** An object of a table with `unknownFields: reject`: fields no column names are refused. */
  closed: boolean;
}

const node = (): Node => ({ fields: new Map(), values: [], required: false, closed: false });

const INT_RANGE = { int: [-2_147_483_648, 2_147_483_647], smallint: [-32_768, 32_767] } as const;

/** The value schema of one column type, not null. */
export function columnValueSchema(type: ColumnType): Schema {
  const parsed = parseColumnType(type);
  switch (parsed.kind) {
    case 'int':
    case 'smallint': {
      const [minimum, maximum] = INT_RANGE[parsed.kind];
      return { type: 'integer', minimum, maximum };
    }
    case 'bigint':
      return { type: 'integer' };
    case 'double':
      return { type: 'number' };
    case 'decimal': {
      // Bounds the digits before the point, which a warehouse column cannot hold more of. The digits after it are
      // rounded to the scale by the load, and a multipleOf on a binary float would refuse exact-looking values
      // such as 0.07, so they are not checked.
      const limit = 10 ** (parsed.precision - parsed.scale);
      return { type: 'number', exclusiveMinimum: -limit, exclusiveMaximum: limit };
    }
    case 'string':
      return { type: 'string' };
    case 'boolean':
      return { type: 'boolean' };
    case 'date':
      return { type: 'string', format: 'date' };
    case 'timestamp':
      // `date-time` is also what the timestampsToUtc transform rewrites.
      return { type: 'string', format: 'date-time' };
    case 'json':
      return {};
  }
}

/**
 * A draft-07 schema for one record of a source with these tables. Every column's path must hold its type or be
 * missing or null, except the parent's key columns and the child key columns read from the element, which must be
 * there and not null (and so must the objects on their way). A child's `from` is an array, missing or null, of
 * objects with the child's columns, or of scalars when its one column reads the element (`.`). Fields no column
 * names are allowed, except in the objects of a table with `unknownFields: reject`.
 */
export function deriveRecordSchema(source: Pick<SourceConfig, 'tables'>): Schema {
  const root = node();
  root.required = true;
  const [, parent] = parentTable(source);
  addTable(root, parent, []);
  for (const [, child] of childTables(source)) {
    const from = (child.from ?? '').split('.');
    const array = walk(root, from, false, parent.unknownFields === 'reject');
    array.items ??= node();
    addTable(array.items, child, Object.keys(child.parentKey ?? {}));
  }
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $comment: 'derived from the source tables by afluente',
    ...emit(root),
  };
}

/** Adds a table's columns under `at` (the record, or a child's array element); `notRead` are not in the element. */
function addTable(at: Node, table: TableSpec, notRead: readonly string[]): void {
  const closed = table.unknownFields === 'reject';
  at.closed ||= closed;
  const keys = new Set(table.key.filter((column) => !notRead.includes(column) && column !== table.index));
  for (const [name, column] of Object.entries(table.columns)) {
    const path = column.path === ELEMENT_PATH ? [] : column.path.split('.');
    const leaf = walk(at, path, keys.has(name), closed);
    if (keys.has(name)) at.required = true;
    leaf.values.push(columnValueSchema(column.type));
  }
}

/** The node at `path` under `at`, made on the way; `required` marks the whole way as present and not null. */
function walk(at: Node, path: readonly string[], required: boolean, closed: boolean): Node {
  let current = at;
  for (const segment of path) {
    let next = current.fields.get(segment);
    if (next === undefined) {
      next = node();
      current.fields.set(segment, next);
    }
    next.required ||= required;
    current = next;
  }
  // The objects on the way belong to this table; the end is a value (or an array), whose fields are not its own.
  markClosed(at, path.slice(0, -1), closed);
  return current;
}

function markClosed(at: Node, path: readonly string[], closed: boolean): void {
  if (!closed) return;
  at.closed = true;
  let current = at;
  for (const segment of path) {
    current = current.fields.get(segment) ?? current;
    current.closed = true;
  }
}

function emit(at: Node): Schema {
  const parts: Schema[] = [];
  if (at.fields.size > 0) {
    const properties = Object.fromEntries([...at.fields].map(([name, field]) => [name, emit(field)]));
    const required = [...at.fields].filter(([, field]) => field.required).map(([name]) => name);
    parts.push({
      type: at.required ? 'object' : ['object', 'null'],
      properties,
      ...(required.length > 0 ? { required } : {}),
      // A json column at this same path covers every field inside it.
      ...(at.closed && at.values.length === 0 ? { additionalProperties: false } : {}),
    });
  }
  if (at.items !== undefined) {
    parts.push({ type: at.required ? 'array' : ['array', 'null'], items: emit(at.items) });
  }
  for (const value of at.values) parts.push(at.required ? notNull(value) : orNull(value));
  if (parts.length === 0) return {};
  const [only] = parts;
  return parts.length === 1 && only !== undefined ? only : { allOf: parts };
}

function orNull(value: Schema): Schema {
  return typeof value.type === 'string' ? { ...value, type: [value.type, 'null'] } : value;
}

function notNull(value: Schema): Schema {
  return value.type === undefined ? { ...value, not: { type: 'null' } } : value;
}
