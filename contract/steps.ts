/**
 * The contract between the service and the Spark steps (spark/split_tables.py, spark/load_warehouse.py).
 *
 * A step reads one JSON document, its spec, written to the lake before the step is submitted: EMR step arguments
 * are short and public, so they carry only the spec's URI. A spec never holds a secret; the warehouse password,
 * when there is one, reaches the step as an environment variable (locally) or through IAM (on EMR).
 *
 * Every path in a spec or a manifest is a key relative to `lakeRoot`, so a runner can stage a step through a
 * temporary folder by handing it another root (the local runner does this for an s3:// lake).
 */
import type { TableSpec } from './source-config.ts';

export const SPARK_JOBS = ['split_tables', 'load_warehouse'] as const;
export type SparkJob = (typeof SPARK_JOBS)[number];

/** The environment variable a load step reads the warehouse password from, when the warehouse needs one. */
export const WAREHOUSE_PASSWORD_ENV = 'AFLUENTE_WAREHOUSE_PASSWORD';

/**
 * A step's exit code when it failed the way it will fail again until its spec, its data or the warehouse changes
 * (a bad spec, a record that does not fit, a missing column); any other non-zero code may succeed on a retry.
 * spark/afluente_spark/errors.py has the same (EXIT_PERMANENT), and spark-submit exits with the driver's code.
 */
export const STEP_EXIT_PERMANENT = 2;

/** What split_tables.py reads. */
export interface TransformSpec {
  version: 1;
  job: 'split_tables';
  runId: number;
  jobId: number;
  source: string;
  dt: string;
  lakeRoot: string;
  /** The run's validated parts (keys), in the validated manifest's order. */
  inputs: string[];
  /** How many records the validated manifest says the inputs hold; the step fails if it reads another number. */
  records: number;
  tables: Record<string, TableSpec>;
  /** Among records with the same parent key, the one with the greatest value here wins (ties: the later one). */
  cursorField: string | null;
}

/** One Parquet file a step wrote. */
export interface CuratedFile {
  key: string;
  rows: number;
  bytes: number;
}

export interface CuratedTable {
  /** `curated/<table>/dt=<dt>/run=<runId>/` */
  prefix: string;
  rows: number;
  files: CuratedFile[];
}

/**
 * Written by split_tables.py at `curatedManifestKey`, after every table: the transform's commit marker.
 * `read` = parent rows + `duplicates`.
 */
export interface TransformManifest {
  version: 1;
  stage: 'transform';
  runId: number;
  source: string;
  dt: string;
  read: number;
  /** Records dropped because a later record of the run had the same parent key. */
  duplicates: number;
  /** Child rows dropped because another element of the same array had the same key, per child table. */
  childDuplicates: Record<string, number>;
  tables: Record<string, CuratedTable>;
}

export const WAREHOUSE_DIALECTS = ['postgres', 'redshift'] as const;
export type WarehouseDialect = (typeof WAREHOUSE_DIALECTS)[number];

/** What load_warehouse.py reads. */
export interface LoadSpec {
  version: 1;
  job: 'load_warehouse';
  runId: number;
  jobId: number;
  source: string;
  dt: string;
  lakeRoot: string;
  /** The transform's manifest (a key); the step loads exactly the files it lists. */
  manifest: string;
  tables: Record<string, TableSpec>;
  /**
   * The parent column read from the source's cursor field, when it has one of a type that orders (a number, a
   * date or a timestamp): the load never replaces a warehouse row whose cursor is greater than the staged one's.
   */
  cursorColumn: string | null;
  warehouse: {
    dialect: WarehouseDialect;
    /** A JDBC URL without credentials, e.g. jdbc:postgresql://127.0.0.1:5432/afluente. */
    jdbcUrl: string;
    user: string | null;
    /** The schema that holds the target tables, the staging tables and the load ledger. */
    schema: string;
    /** Redshift only: the role COPY assumes to read the curated Parquet from S3. */
    copyRoleArn: string | null;
  };
}

/** Written by load_warehouse.py at `loadResultKey` once its transaction has committed. */
export interface LoadResult {
  version: 1;
  stage: 'load';
  runId: number;
  /** Rows merged into each target table by the committed load (the load ledger's rows). */
  rows: Record<string, number>;
  /**
   * Curated rows the load left out because the warehouse already held a newer version of their parent record
   * (by `cursorColumn`): `rows` + `stale` = the curated rows, per table. Absent in a result from before it existed.
   */
  stale?: Record<string, number>;
  /** True when the ledger already held this run: the step changed nothing. */
  alreadyLoaded: boolean;
  /**
   * What the load changed in the warehouse's tables before its merge, in its transaction, to match the table
   * spec: `create table order_notes`, `add column orders.discount`, `widen column order_items.line`. Absent in
   * a result from before schema evolution existed; empty when the ledger already held the run.
   */
  schemaChanges?: string[];
  /** Per table, the warehouse columns the spec no longer names: kept, and NULL in the rows this load wrote. */
  keptColumns?: Record<string, string[]>;
}

/** `steps/source=<s>/dt=<dt>/run=<runId>/<job>.json`: the spec a step reads. */
export function stepSpecKey(source: string, dt: string, runId: number, job: SparkJob): string {
  return `steps/source=${source}/dt=${dt}/run=${runId}/${job}.json`;
}

/** `steps/source=<s>/dt=<dt>/run=<runId>/load_warehouse.result.json` */
export function loadResultKey(source: string, dt: string, runId: number): string {
  return `steps/source=${source}/dt=${dt}/run=${runId}/load_warehouse.result.json`;
}

/** `curated/_runs/source=<s>/dt=<dt>/run=<runId>/_manifest.json`: the transform's manifest, over all tables. */
export function curatedManifestKey(source: string, dt: string, runId: number): string {
  return `curated/_runs/source=${source}/dt=${dt}/run=${runId}/_manifest.json`;
}
