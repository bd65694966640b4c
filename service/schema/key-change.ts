import { describeKeyChange, sameKey, tableKey, type TableKey } from './diff.ts';
import type { WarehouseSpec } from './spec.ts';

// Whether a load would merge a table by another key than its warehouse rows were merged by. Pure: no I/O.

/** A version some load committed, with when the last such load did. */
export interface LoadedVersion {
  id: number;
  lastLoadedAt: Date;
  spec: WarehouseSpec;
}

export interface KeyChange {
  table: string;
  /** The loaded version the table's warehouse rows were last merged with. */
  since: { versionId: number; lastLoadedAt: Date };
  from: TableKey;
  to: TableKey;
}

/**
 * The tables of `next` whose key, parentKey or `from` differs from the one their warehouse rows were last loaded
 * with. `loaded` is every loaded version of the source, latest loaded first; each table is compared with the
 * latest one that has it, so a table dropped from the config and later added back with another key is caught
 * too (the warehouse keeps a dropped table's rows).
 */
export function keyChanges(loaded: readonly LoadedVersion[], next: WarehouseSpec): KeyChange[] {
  const changes: KeyChange[] = [];
  for (const [table, spec] of Object.entries(next.tables)) {
    const last = loaded.find((v) => Object.hasOwn(v.spec.tables, table));
    const before = last?.spec.tables[table];
    if (!last || !before) continue;
    const [from, to] = [tableKey(before), tableKey(spec)];
    if (!sameKey(from, to))
      changes.push({ table, since: { versionId: last.id, lastLoadedAt: last.lastLoadedAt }, from, to });
  }
  return changes;
}

/**
 * Why the load is refused and what the operator can do, naming the source, each table and its old and new key.
 * `schema` is the warehouse schema that holds the tables; `runId` the refused run, which a retry can resume.
 */
export function keyChangeRefusal(
  source: string,
  changes: readonly KeyChange[],
  where: { schema: string; runId: number },
): string {
  const tables = changes.map(
    (c) =>
      `table "${c.table}" ${describeKeyChange(c.from, c.to)} since schema version ${c.since.versionId} (last ` +
      `loaded ${c.since.lastLoadedAt.toISOString()})`,
  );
  const names = changes.map((c) => `"${c.table}"`).join(', ');
  const qualified = changes.map((c) => `${where.schema}.${c.table}`).join(', ');
  return (
    `source "${source}": load refused before any warehouse row changed: ${tables.join('; ')}. Loads merge rows ` +
    'by key, so loading by the new key into rows merged by the old one would leave duplicates. To go on, either ' +
    `load into a new table (rename ${names} in the source's tables and start a run; the old table stays), or ` +
    `rebuild: drop or rename ${qualified} in the warehouse, then retry this run accepting the key change (POST ` +
    `/runs/${where.runId}/retry {"acceptKeyChange": true}, or npx afluente retry ${where.runId} ` +
    '--accept-key-change); the table is created anew with only what that load and later ones bring.'
  );
}
