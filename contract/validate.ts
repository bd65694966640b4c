import type { PartInfo, StageFailure } from './ingest.ts';
import type { Transforms } from './source-config.ts';

/** One validate invocation: a group of a run's raw parts. Groups run in parallel and commit on their own. */
export interface ValidateRequest {
  invocationId: string;
  runId: number;
  jobId: number;
  source: string;
  dt: string;
  lakeRoot: string;
  /** The group's index; its outputs are named after it, so a retried group rewrites only its own keys. */
  group: number;
  /** The raw parts of this group, from the raw manifest. */
  parts: PartInfo[];
  /** The source's JSON Schema for one record. */
  schema: Record<string, unknown>;
  /** What the source's columns name, so the fields nothing names are counted as drift. */
  named: NamedPaths;
  /**
   * A hash of what decides a group's outcome (schema, transforms, named paths), kept in its manifest: a retry
   * reuses a committed group only if it was validated on the same basis, so a fixed config is not ignored.
   */
  basis: string;
  transforms: Transforms;
  limits: { partMaxRecords: number; partMaxBytes: number };
}

/**
 * The record paths the source's columns name. A path is a dot path from the record root, where `[]` steps into
 * a child table's `from` array: `customer.address.city`, `items[].sku`, and `tags[]` for a child that reads the
 * element itself.
 */
export interface NamedPaths {
  /** Every column's path. The objects on their way, and the `from` arrays, are named too. */
  columns: string[];
  /** The paths of json columns: everything inside their value is theirs. */
  json: string[];
}

/** How many distinct (path, type) pairs drift tracks per group and per run: a map keyed by ids can't outgrow it. */
export const DRIFT_MAX_FIELDS = 200;

/** The JSON types drift tells apart. */
export const JSON_TYPES = ['null', 'boolean', 'number', 'string', 'array', 'object'] as const;
export type JsonType = (typeof JSON_TYPES)[number];

/** A field no column names, as seen with one JSON type. */
export interface DriftField {
  /** Dot path as in {@link NamedPaths}, e.g. `discount` or `items[].discount`. */
  path: string;
  type: JsonType;
  /** How many records hold it (a record with it in three array elements counts once). */
  count: number;
  /** One value it had, as JSON text cut to 80 characters (`…` marks a cut). */
  sample: string;
}

/** The fields no column names, over some records. */
export interface Drift {
  /** Most frequent first, then by path and type. */
  fields: DriftField[];
  /**
   * More distinct (path, type) pairs were seen than are tracked (DRIFT_MAX_FIELDS): the pairs seen
   * after that are not listed, and the listed counts may miss records of groups that were full.
   */
  truncated: boolean;
}

/** Most frequent first, then by path and type, so equal inputs give equal lists. */
export function byCount(a: DriftField, b: DriftField): number {
  return b.count - a.count || compare(a.path, b.path) || compare(a.type, b.type);
}

const compare = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** A run's drift: its validate groups' drift summed, out of the records they read. */
export interface RunDrift extends Drift {
  records: number;
}

/** A validation error of one record: where in the record, and what is wrong. */
export interface RecordError {
  /** JSON Pointer into the record, e.g. `/customer/email`; empty for the record itself. */
  path: string;
  message: string;
}

/** One line of a rejected part. */
export interface RejectedLine {
  /** The record as it came from the source, before any transform. */
  record: unknown;
  /** The raw part and the 1-based line the record came from. */
  source: { file: string; line: number };
  errors: RecordError[];
}

/** How often an error message occurred, for the quality gate's report. */
export interface ErrorCount {
  message: string;
  count: number;
}

/** What one group committed. Written last by the group; the stage commits when every group has one. */
export interface ValidateGroupManifest {
  version: 1;
  group: number;
  inputs: string[];
  read: number;
  valid: number;
  rejected: number;
  validFiles: PartInfo[];
  rejectedFiles: PartInfo[];
  /** The most frequent error messages of the group, most frequent first. */
  errors: ErrorCount[];
  /** The fields no column names, over every record read (valid or not). Absent from a manifest older than drift. */
  drift?: Drift;
  /** The request's `basis`. */
  basis?: string;
}

/** The stage's commit marker in the validated (or rejected) prefix, written by the service after every group. */
export interface ValidateManifest {
  version: 1;
  stage: 'validate';
  layer: 'validated' | 'rejected';
  source: string;
  runId: number;
  dt: string;
  files: PartInfo[];
  records: number;
  read: number;
  valid: number;
  rejected: number;
  errors: ErrorCount[];
}

export type ValidateResult =
  | { kind: 'done'; manifestKey: string; read: number; valid: number; rejected: number }
  | { kind: 'failed'; error: StageFailure };
