import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { count, ident, psql } from './pg.ts';

// The load baseline: psql `\copy` of the rows a pipeline loaded, from CSV into fresh UNLOGGED tables with the
// same columns (CREATE TABLE … (LIKE …): the same types and NOT NULLs, no keys or indexes), one table after the
// other. The export to CSV is not timed; each `\copy … from` is, psql's start included (a few ms).

export interface CopyMeasure {
  /** The schema the rows were exported from. */
  from: string;
  /** Rows copied per table. */
  tables: Record<string, number>;
  /** Milliseconds of each table's `\copy … from`. */
  tableMs: Record<string, number>;
  rows: number;
  ms: number;
  rowsPerS: number;
}

export async function copyBaseline(
  source: { schema: string; tables: string[] },
  target: string,
  dir: string,
): Promise<CopyMeasure> {
  if (dir.includes("'")) throw new Error(`the temp folder's path has a quote: ${dir}`);
  await psql(`create schema ${ident(target)}`);
  const files: Record<string, string> = {};
  for (const table of source.tables) {
    const file = join(dir, `${table}.csv`);
    files[table] = file;
    await psql(`\\copy (select * from ${ident(source.schema)}.${ident(table)}) to '${file}' csv`);
    await psql(
      `create unlogged table ${ident(target)}.${ident(table)} (like ${ident(source.schema)}.${ident(table)})`,
    );
  }
  // Checkpoint first so no table's copy pays for the dirty pages of the export or of the load before it.
  await psql('checkpoint');
  const tableMs: Record<string, number> = {};
  for (const table of source.tables) {
    const started = performance.now();
    await psql(`\\copy ${ident(target)}.${ident(table)} from '${files[table]}' csv`);
    tableMs[table] = Math.round(performance.now() - started);
  }
  const tables: Record<string, number> = {};
  for (const table of source.tables) {
    const [copied, original] = [await count(target, table), await count(source.schema, table)];
    if (copied !== original)
      throw new Error(`\\copy wrote ${copied} rows into ${table}, the source has ${original}`);
    tables[table] = copied;
  }
  await Promise.all(Object.values(files).map((f) => rm(f, { force: true })));
  const rows = Object.values(tables).reduce((a, b) => a + b, 0);
  const ms = Object.values(tableMs).reduce((a, b) => a + b, 0);
  return { from: source.schema, tables, tableMs, rows, ms, rowsPerS: Math.round(rows / (ms / 1000)) };
}
