// The semantic checks on a source's tables: names, column types, and how the one parent table and
// its children fit together through parentKey, key and index.
import { Type, type Static } from 'typebox';
import {
  ColumnPathSchema,
  ELEMENT_COLUMN,
  ELEMENT_PATH,
  IDENTIFIER_PATTERN,
  IdentifierSchema,
  readColumnType,
  TableSchema,
  type ColumnSpec,
  type TableSpec,
} from '../../../contract/source-config.ts';
import { configAjv, reportAjvErrors } from './messages.ts';
import type { Scope } from './scope.ts';
import { isRecord } from './unknown-values.ts';
import type { Path } from './yaml-positions.ts';

// Table, column and parentKey names are checked here rather than by pattern, so that a bad name
// gets its own message; columns are checked one by one because they also take a bare type.
const TableShape = Type.Object(
  {
    ...TableSchema.properties,
    parentKey: Type.Optional(Type.Record(Type.String(), IdentifierSchema, { minProperties: 1 })),
    columns: Type.Record(Type.String(), Type.Unknown(), { minProperties: 1 }),
  },
  { additionalProperties: false },
);

const ColumnShape = Type.Object(
  { path: Type.Optional(ColumnPathSchema), type: Type.String() },
  { additionalProperties: false },
);

const validateTableShape = configAjv.compile<Static<typeof TableShape>>(TableShape);
const validateColumnShape = configAjv.compile<Static<typeof ColumnShape>>(ColumnShape);

const IDENTIFIER = new RegExp(IDENTIFIER_PATTERN);
const IDENTIFIER_RULE = 'use a-z, 0-9 and _, do not start with a digit, and keep it to 63 characters';
const NOT_A_COLUMN_NAME = `is not a valid column name: ${IDENTIFIER_RULE}`;
const CHILD_ONLY = 'is only allowed on a child table (one with "from")';

// What the relation checks need from a table; known as soon as its shape is right, even when a
// column type is wrong, so one bad column does not hide a bad key.
type TableOutline = Pick<TableSpec, 'from' | 'parentKey' | 'key' | 'index'> & {
  readonly columnNames: readonly string[];
};

interface CheckedTable {
  readonly outline?: TableOutline;
  readonly spec?: TableSpec;
}

export function checkTables(
  raw: Record<string, unknown>,
  scope: Scope,
): Record<string, TableSpec> | undefined {
  const before = scope.count();
  const tables: Record<string, TableSpec> = {};
  const outlines = new Map<string, TableOutline>();
  for (const [name, value] of Object.entries(raw)) {
    if (!IDENTIFIER.test(name)) {
      scope.problem(['tables', name], `is not a valid table name: ${IDENTIFIER_RULE}`);
    }
    const { outline, spec } = checkTable(value, ['tables', name], scope);
    if (outline !== undefined) outlines.set(name, outline);
    if (spec !== undefined) tables[name] = spec;
  }
  checkTableRelations(raw, outlines, scope);
  return scope.count() > before ? undefined : tables;
}

function checkTable(value: unknown, at: Path, scope: Scope): CheckedTable {
  if (!isRecord(value)) {
    scope.problem(at, 'must be a map with key and columns');
    return {};
  }
  const shapeOk = validateTableShape(value);
  if (!shapeOk) reportAjvErrors(validateTableShape.errors, at, scope);
  for (const column of Object.keys(isRecord(value.parentKey) ? value.parentKey : {})) {
    if (!IDENTIFIER.test(column)) {
      scope.problem([...at, 'parentKey', column], NOT_A_COLUMN_NAME);
    }
  }
  const isChild = value.from !== undefined;
  const columns: Record<string, ColumnSpec> = {};
  let columnsOk = true;
  for (const [name, column] of Object.entries(isRecord(value.columns) ? value.columns : {})) {
    const spec = checkColumn(column, name, isChild, [...at, 'columns', name], scope);
    if (spec === undefined) columnsOk = false;
    else columns[name] = spec;
  }
  if (!shapeOk) return {};
  const { from, parentKey, key, index } = value;
  const outline = { from, parentKey, key, index, columnNames: Object.keys(value.columns) };
  return columnsOk ? { outline, spec: { ...value, columns } } : { outline };
}

function checkColumn(
  value: unknown,
  name: string,
  isChild: boolean,
  at: Path,
  scope: Scope,
): ColumnSpec | undefined {
  let ok = IDENTIFIER.test(name);
  if (!ok) scope.problem(at, NOT_A_COLUMN_NAME);
  // In a child of an array of scalars, `value` with no path is the element itself.
  const defaultPath = isChild && name === ELEMENT_COLUMN ? ELEMENT_PATH : name;
  let typeAt = at;
  let spec: { path?: string; type: string };
  if (typeof value === 'string') {
    spec = { type: value };
  } else if (isRecord(value) && validateColumnShape(value)) {
    spec = value;
    typeAt = [...at, 'type'];
  } else {
    if (isRecord(value)) reportAjvErrors(validateColumnShape.errors, at, scope);
    else scope.problem(at, 'must be a column type or a map with path and type');
    return;
  }
  const type = readColumnType(spec.type);
  if (!type.ok) {
    scope.problem(typeAt, type.reason);
    ok = false;
  }
  return ok && type.ok ? { path: spec.path ?? defaultPath, type: type.type } : undefined;
}

function checkTableRelations(
  raw: Record<string, unknown>,
  tables: ReadonlyMap<string, TableOutline>,
  scope: Scope,
): void {
  // Parents are counted from what was written, so a broken parent does not also read as a missing one.
  const parents = Object.entries(raw)
    .filter(([, table]) => isRecord(table) && table.from === undefined)
    .map(([name]) => name);
  const [parentName] = parents;
  if (parentName === undefined && Object.keys(raw).length > 0) {
    scope.problem(
      ['tables'],
      'must have one parent table (a table without "from"), and every table here has "from"',
    );
  }
  for (const extra of parents.slice(1)) {
    scope.problem(
      ['tables', extra],
      `has no "from", but "${parentName}" is already the parent table: every other table needs "from" and "parentKey"`,
    );
  }
  const parent = parents.length === 1 && parentName !== undefined ? tables.get(parentName) : undefined;
  for (const [name, table] of tables) {
    checkTableColumns(name, table, scope);
    if (table.from === undefined) continue;
    if (table.parentKey === undefined) {
      scope.problem(['tables', name, 'parentKey'], 'is required for a child table (one with "from")');
    } else if (parent !== undefined && parentName !== undefined) {
      checkParentKey(name, table.parentKey, parentName, parent, scope);
    }
  }
}

function checkTableColumns(name: string, table: TableOutline, scope: Scope): void {
  const at = ['tables', name];
  if (table.from === undefined) {
    if (table.parentKey !== undefined) scope.problem([...at, 'parentKey'], CHILD_ONLY);
    if (table.index !== undefined) scope.problem([...at, 'index'], CHILD_ONLY);
  }
  const declared = new Set(table.columnNames);
  for (const column of Object.keys(table.parentKey ?? {})) {
    if (declared.has(column)) {
      scope.problem(
        [...at, 'parentKey', column],
        `declares column "${column}" again: it is already in columns`,
      );
    }
    declared.add(column);
  }
  if (table.index !== undefined) {
    if (declared.has(table.index)) {
      scope.problem(
        [...at, 'index'],
        `declares column "${table.index}" again: it is already in columns or parentKey`,
      );
    }
    declared.add(table.index);
  }
  table.key.forEach((column, position) => {
    if (!declared.has(column)) {
      scope.problem(
        [...at, 'key', position],
        `names "${column}", which is not a column of table "${name}" (declared: ${[...declared].join(', ')})`,
      );
    }
  });
}

function checkParentKey(
  name: string,
  parentKey: Readonly<Record<string, string>>,
  parentName: string,
  parent: TableOutline,
  scope: Scope,
): void {
  const at = ['tables', name, 'parentKey'];
  let refsOk = true;
  for (const [column, parentColumn] of Object.entries(parentKey)) {
    if (!parent.key.includes(parentColumn)) {
      refsOk = false;
      scope.problem(
        [...at, column],
        `refers to "${parentColumn}", which is not in the key of parent table "${parentName}" (${parent.key.join(', ')})`,
      );
    }
  }
  // A child row must carry the whole parent key, or it cannot be joined back to exactly one parent row.
  const missing = parent.key.filter((column) => !Object.values(parentKey).includes(column));
  if (refsOk && missing.length > 0) {
    scope.problem(
      at,
      `must map every key column of parent table "${parentName}"; missing ${missing.join(', ')}`,
    );
  }
}
