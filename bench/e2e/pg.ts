import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

// PostgreSQL through psql: the benchmark counts rows, makes and drops its schemas, and times `\copy` with it.

/** The local warehouse both sides load into (the service's default AFLUENTE_WAREHOUSE_URL). */
export const PG_URL = 'postgresql://postgres@127.0.0.1:5432/afluente';

const execFileAsync = promisify(execFile);

/** Runs one psql command and returns its unaligned, tuples-only output. */
export async function psql(command: string): Promise<string> {
  try {
    const { stdout } = await execFileAsync(
      'psql',
      ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', PG_URL, '-c', command],
      { maxBuffer: 1 << 24 },
    );
    return stdout.trim();
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`psql -c ${JSON.stringify(command)} failed: ${stderr || (error as Error).message}`, {
      cause: error,
    });
  }
}

/** Schema and table names are the benchmark's own; anything else is refused rather than quoted. */
export function ident(name: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`not a plain identifier: ${name}`);
  return `"${name}"`;
}

export async function count(schema: string, table: string): Promise<number> {
  return Number(await psql(`select count(*) from ${ident(schema)}.${ident(table)}`));
}

export async function tableExists(schema: string, table: string): Promise<boolean> {
  return (await psql(`select to_regclass('${ident(schema)}.${ident(table)}') is not null`)) === 't';
}

export async function dropSchemas(schemas: string[]): Promise<void> {
  if (schemas.length === 0) return;
  await psql(schemas.map((s) => `drop schema if exists ${ident(s)} cascade;`).join(' '));
}

export async function serverVersion(): Promise<string> {
  return psql('show server_version');
}
