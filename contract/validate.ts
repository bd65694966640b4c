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
  transforms: Transforms;
  limits: { partMaxRecords: number; partMaxBytes: number };
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
