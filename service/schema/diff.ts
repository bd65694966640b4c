import type { TableSpec } from '../../contract/source-config.ts';
import type { WarehouseSpec } from './spec.ts';

// What changes between two schema versions, as the warehouse sees them. Pure: no I/O.

// The columns a load gives a table beyond the declared ones; spark/afluente_spark/spec.py (output_columns) makes
// them, and these must stay equal to its EXTRA_COLUMN and INDEX_TYPE.
const EXTRA_COLUMN = '_extra';
const INDEX_TYPE = 'int';

/** What identifies a table's rows: its key, and for a child the array it comes from and how it joins its parent. */
export interface TableKey {
  key: string[];
  /** Child column → parent key column; null for the parent table. */
  parentKey: Record<string, string> | null;
  /** The array a child table is taken from; null for the parent table. */
  from: string | null;
}

/** A column of a warehouse table: its name, its type, and the record path it is read from (none for derived ones). */
export interface WarehouseColumn {
  column: string;
  type: string;
  path: string | null;
}

export interface TableShape {
  table: string;
  key: TableKey;
  columns: WarehouseColumn[];
}

export interface TableDiff {
  table: string;
  columnsAdded: WarehouseColumn[];
  /** Columns the newer spec no longer has: the warehouse keeps them (NULL in rows loaded later). */
  columnsRemoved: WarehouseColumn[];
  typesChanged: { column: string; from: string; to: string }[];
  /** The same column read from another place in the record: no warehouse change, but its values change meaning. */
  pathsChanged: { column: string; from: string; to: string }[];
  /** Null when the key, the parentKey and the `from` are the same. */
  keyChanged: { from: TableKey; to: TableKey } | null;
}

export interface SchemaDiff {
  tablesAdded: TableShape[];
  /** Tables the newer spec no longer has: the warehouse keeps them, and loads stop writing them. */
  tablesRemoved: TableShape[];
  /** Tables in both specs that changed, in the newer spec's order. */
  tablesChanged: TableDiff[];
  cursorColumn: { from: string | null; to: string | null } | null;
}

export function tableKey(spec: TableSpec): TableKey {
  return {
    key: [...spec.key],
    parentKey: spec.parentKey ? { ...spec.parentKey } : null,
    from: spec.from ?? null,
  };
}

const sorted = (values: Iterable<string>): string[] => [...values].sort();
const sameList = (a: string[], b: string[]): boolean =>
  a.length === b.length && a.every((v, i) => v === b[i]);
const entries = (map: Record<string, string> | null): string[] =>
  sorted(Object.entries(map ?? {}).map(([k, v]) => `${k}=${v}`));

/**
 * Whether two tables identify their rows the same way. A key is a set of columns (the merge matches on all of
 * them, in any order), and so is a parentKey; a child's `from` must be the same array.
 */
export function sameKey(a: TableKey, b: TableKey): boolean {
  return (
    sameList(sorted(a.key), sorted(b.key)) &&
    sameList(entries(a.parentKey), entries(b.parentKey)) &&
    a.from === b.from
  );
}

/** The parts of a key that changed: `key [order_id, line] → [order_id, sku]`, `from items → lines`. */
export function describeKeyChange(from: TableKey, to: TableKey): string {
  const parentKey = (k: TableKey): string =>
    `{${Object.entries(k.parentKey ?? {})
      .map(([child, parent]) => `${child}: ${parent}`)
      .join(', ')}}`;
  const parts: string[] = [];
  if (!sameList(sorted(from.key), sorted(to.key)))
    parts.push(`key [${from.key.join(', ')}] → [${to.key.join(', ')}]`);
  if (!sameList(entries(from.parentKey), entries(to.parentKey)))
    parts.push(`parentKey ${parentKey(from)} → ${parentKey(to)}`);
  if (from.from !== to.from) parts.push(`from ${from.from ?? 'none'} → ${to.from ?? 'none'}`);
  return parts.join(', ');
}

/**
 * The columns a table has in the warehouse, in order: for a child its parentKey columns (typed as the parent's
 * key columns) and its index column, then the declared columns, then `_extra` when unknownFields is `keep`.
 */
export function warehouseColumns(spec: WarehouseSpec, table: string): WarehouseColumn[] {
  const t = spec.tables[table];
  if (!t) return [];
  const out: WarehouseColumn[] = [];
  if (t.from !== undefined) {
    const parent = Object.values(spec.tables).find((s) => s.from === undefined);
    for (const [child, parentColumn] of Object.entries(t.parentKey ?? {}))
      out.push({ column: child, type: parent?.columns[parentColumn]?.type ?? 'unknown', path: null });
    if (t.index !== undefined) out.push({ column: t.index, type: INDEX_TYPE, path: null });
  }
  for (const [column, c] of Object.entries(t.columns)) out.push({ column, type: c.type, path: c.path });
  if (t.unknownFields === 'keep') out.push({ column: EXTRA_COLUMN, type: 'json', path: null });
  return out;
}

function shape(spec: WarehouseSpec, table: string, t: TableSpec): TableShape {
  return { table, key: tableKey(t), columns: warehouseColumns(spec, table) };
}

function diffTable(from: WarehouseSpec, to: WarehouseSpec, table: string): TableDiff {
  const before = new Map(warehouseColumns(from, table).map((c) => [c.column, c]));
  const after = warehouseColumns(to, table);
  const afterNames = new Set(after.map((c) => c.column));
  const diff: TableDiff = {
    table,
    columnsAdded: after.filter((c) => !before.has(c.column)),
    columnsRemoved: [...before.values()].filter((c) => !afterNames.has(c.column)),
    typesChanged: [],
    pathsChanged: [],
    keyChanged: null,
  };
  for (const c of after) {
    const old = before.get(c.column);
    if (!old) continue;
    if (old.type !== c.type) diff.typesChanged.push({ column: c.column, from: old.type, to: c.type });
    if (old.path !== null && c.path !== null && old.path !== c.path)
      diff.pathsChanged.push({ column: c.column, from: old.path, to: c.path });
  }
  const [oldSpec, newSpec] = [from.tables[table], to.tables[table]];
  if (oldSpec && newSpec) {
    const [a, b] = [tableKey(oldSpec), tableKey(newSpec)];
    if (!sameKey(a, b)) diff.keyChanged = { from: a, to: b };
  }
  return diff;
}

const changed = (d: TableDiff): boolean =>
  d.columnsAdded.length + d.columnsRemoved.length + d.typesChanged.length + d.pathsChanged.length > 0 ||
  d.keyChanged !== null;

/**
 * What changes from one spec to another: tables added and removed, and per table in both its columns added,
 * removed, retyped or read from another path, and a changed key. `from` null (nothing loaded yet) adds every table.
 */
export function diffSpecs(from: WarehouseSpec | null, to: WarehouseSpec): SchemaDiff {
  const base: WarehouseSpec = from ?? { tables: {}, cursorColumn: null };
  const inBase = (table: string): boolean => Object.hasOwn(base.tables, table);
  const inNext = (table: string): boolean => Object.hasOwn(to.tables, table);
  return {
    tablesAdded: Object.entries(to.tables)
      .filter(([table]) => !inBase(table))
      .map(([table, t]) => shape(to, table, t)),
    tablesRemoved: Object.entries(base.tables)
      .filter(([table]) => !inNext(table))
      .map(([table, t]) => shape(base, table, t)),
    tablesChanged: Object.keys(to.tables)
      .filter(inBase)
      .map((table) => diffTable(base, to, table))
      .filter(changed),
    cursorColumn:
      from !== null && from.cursorColumn !== to.cursorColumn
        ? { from: from.cursorColumn, to: to.cursorColumn }
        : null,
  };
}

/** Whether a diff changes nothing. */
export function isEmptyDiff(diff: SchemaDiff): boolean {
  return (
    diff.tablesAdded.length + diff.tablesRemoved.length + diff.tablesChanged.length === 0 &&
    diff.cursorColumn === null
  );
}
