import pg from 'pg';
import type { Config } from '../../service/config/env.ts';

/** What the warehouse holds for a test: rows per table, and the load ledger's rows for one run, per table. */
export async function warehouseState(
  config: Config,
  tables: string[],
  runId: number,
): Promise<{ rows: Record<string, number>; ledger: Record<string, number> }> {
  const db = new pg.Client({ connectionString: config.warehouse.url });
  await db.connect();
  try {
    const schema = config.warehouse.schema;
    const rows: Record<string, number> = {};
    for (const table of tables) {
      const { rows: r } = await db.query<{ n: string }>(
        `SELECT count(*)::text AS n FROM "${schema}"."${table}"`,
      );
      rows[table] = Number(r[0]?.n);
    }
    const { rows: entries } = await db.query<{ table_name: string; n: string }>(
      `SELECT table_name, count(*)::text AS n FROM "${schema}"._afluente_load_ledger WHERE run_id = $1 GROUP BY table_name`,
      [runId],
    );
    return { rows, ledger: Object.fromEntries(entries.map((e) => [e.table_name, Number(e.n)])) };
  } finally {
    await db.end();
  }
}

/** A warehouse table's row count and a digest of every row, leaving out afluente's own columns (run id, load time). */
export async function tableContents(
  db: pg.Client,
  schema: string,
  table: string,
): Promise<{ n: number; digest: string }> {
  const { rows } = await db.query<{ n: string; digest: string }>(
    `SELECT count(*)::text AS n, coalesce(md5(string_agg(r::text, '|' ORDER BY r::text)), '') AS digest
       FROM (SELECT (SELECT jsonb_object_agg(key, value) FROM jsonb_each(to_jsonb(x))
                      WHERE key NOT LIKE '\\_afluente\\_%') AS r FROM "${schema}"."${table}" x) rows`,
  );
  return { n: Number(rows[0]?.n), digest: rows[0]?.digest ?? '' };
}
