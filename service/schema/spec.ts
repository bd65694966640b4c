import { createHash } from 'node:crypto';
import { configure } from 'safe-stable-stringify';
import { parentTable, parseColumnType, type TableSpec } from '../../contract/source-config.ts';

/**
 * What shapes a source's warehouse tables, as its loads hand it to the load step: the tables as the config loader
 * normalized them (columns with path and type, keys, children's `from` and `parentKey`, `unknownFields`), and the
 * parent column that guards a load against replacing a newer record. One value of it is one schema version.
 */
export interface WarehouseSpec {
  tables: Record<string, TableSpec>;
  cursorColumn: string | null;
}

// Column types that order the same way in Spark and in both warehouses (text and json do not).
const ORDERED_KINDS: ReadonlySet<string> = new Set([
  'bigint',
  'int',
  'smallint',
  'double',
  'decimal',
  'date',
  'timestamp',
]);

/**
 * The parent column read from exactly the source's cursor field, when its type orders: the load never replaces a
 * warehouse row whose value there is greater than the run's. Null when there is no such column.
 */
export function cursorColumn(tables: Record<string, TableSpec>, cursorField: string | null): string | null {
  if (!cursorField) return null;
  const [, parent] = parentTable({ tables });
  const found = Object.entries(parent.columns).find(
    ([, column]) => column.path === cursorField && ORDERED_KINDS.has(parseColumnType(column.type).kind),
  );
  return found ? found[0] : null;
}

/** The spec of a source's tables and its incremental cursor field (null without one). */
export function warehouseSpec(tables: Record<string, TableSpec>, cursorField: string | null): WarehouseSpec {
  return { tables, cursorColumn: cursorColumn(tables, cursorField) };
}

// Keys sorted at every level, so the order a sources file lists tables or columns in does not make a new version;
// arrays (a key's columns) keep their order, which is meaningful.
const canonical = configure({ deterministic: true, bigint: false, circularValue: TypeError });

/** The version's identity: sha256 (hex) of the spec's canonical JSON. */
export function specHash(spec: WarehouseSpec): string {
  const text = canonical(spec);
  if (text === undefined) throw new Error('a warehouse spec must serialize to JSON');
  return createHash('sha256').update(text).digest('hex');
}
