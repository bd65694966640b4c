import type { SourceConfig } from './source-config.ts';

/** Tuning of one ingest invocation. The service fills it from config; the Lambda never guesses. */
export interface IngestLimits {
  /** This invocation's own time budget (Lambda: 15 minutes). Near its end the handler returns a continuation. */
  timeLimitMs: number;
  /** No new page is started when less than this remains of the time budget. */
  safetyMarginMs: number;
  /** The whole stage's deadline (epoch ms); past it the stage fails instead of continuing. */
  deadline: number;
  /** A page body larger than this (after decompression) fails the stage. */
  maxResponseBytes: number;
  /** A part is closed after this many records... */
  partMaxRecords: number;
  /** ...or this many uncompressed NDJSON bytes, whichever comes first. */
  partMaxBytes: number;
  /** Retries of one request on 429, 5xx, timeouts and connection errors. */
  maxRetries: number;
  /** Exponential backoff: base and cap of the delay before a retry (full jitter). */
  retryBaseMs: number;
  retryMaxMs: number;
}

/** Where the next page starts, for each pagination kind. */
export interface PageState {
  page?: number;
  offset?: number;
  cursor?: string | null;
  url?: string;
}

/** Everything the next invocation needs to go on exactly where this one stopped: no gap, no duplicate. */
export interface IngestContinuation {
  next: PageState;
  pages: number;
  records: number;
  partIndex: number;
  segment: number;
  maxCursor: string | null;
  /** Hashes of the last pages, so a repeated page is caught across the seam too. */
  recentPages: string[];
  /** Cursors and link URLs already followed (the most recent ones), so a loop is caught across the seam. */
  seen: string[];
  /** Page requests retried so far in the stage (a 429, a 5xx, a timeout); absent before retries were counted. */
  retries?: number;
}

export interface IngestRequest {
  invocationId: string;
  runId: number;
  jobId: number;
  source: string;
  /** The operator's source config. Secrets are only environment variable names, never values. */
  config: SourceConfig;
  /** The run's partition date, yyyy-mm-dd. */
  dt: string;
  lakeRoot: string;
  /** The source's stored incremental cursor, or the run's override; null on a run with a window. */
  cursor: string | null;
  /** The run's time window, sent through the source's `window` params instead of the cursor. */
  window?: { from?: string; to?: string } | null;
  continuation: IngestContinuation | null;
  limits: IngestLimits;
}

export interface PartInfo {
  key: string;
  records: number;
  bytes: number;
  sha256: string;
}

/** A stage's committed output. Written last; readers trust only what it lists. */
export interface IngestManifest {
  version: 1;
  stage: 'ingest';
  source: string;
  runId: number;
  dt: string;
  files: PartInfo[];
  records: number;
  bytes: number;
  pages: number;
  /** Page requests retried in the stage (a 429, a 5xx, a timeout); absent in manifests written before. */
  retries?: number;
  cursorField: string | null;
  startCursor: string | null;
  nextCursor: string | null;
}

/** The parts one invocation committed before handing over to the next. */
export interface IngestSegment {
  segment: number;
  files: PartInfo[];
}

/** Why a stage failed, as the Lambda reports it. */
export interface StageFailure {
  reason: string;
  message: string;
  /** False for what no retry can fix: a 401, a bad config, a cursor loop. */
  retryable: boolean;
  httpStatus?: number;
  /** The request URL, with credentials removed. */
  url?: string;
}

export type IngestResult =
  | {
      kind: 'done';
      manifestKey: string;
      files: number;
      records: number;
      bytes: number;
      pages: number;
      /** Page requests retried in the whole stage so far, as `records` and `pages` count it. */
      retries: number;
      nextCursor: string | null;
    }
  | { kind: 'continue'; continuation: IngestContinuation; records: number; pages: number; retries: number }
  /** `retries` is absent when the invocation failed before it asked the source for anything. */
  | { kind: 'failed'; error: StageFailure; retries?: number };
