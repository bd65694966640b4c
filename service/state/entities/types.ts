import type { Engine } from '../../../contract/source-config.ts';
import type { Stage } from '../../../contract/stages.ts';

/** Why a job or a run failed: a short machine reason, a human message, and where to read more. */
export interface ErrorInfo {
  reason: string;
  message: string;
  stage?: Stage;
  attempt?: number;
  /** Where the logs are: a CloudWatch stream, an EMR log URI, or a local file. */
  logs?: string;
  /** For a failed HTTP request: its status and its URL, with credentials removed. */
  httpStatus?: number;
  url?: string;
}

/** What a caller may set on a run: a time window or an explicit cursor for the source, and an engine. */
export interface RunParams {
  window?: { from?: string; to?: string };
  cursor?: string;
  /** The engine of the transform and load, over the source's `engine` (a retry may change it). */
  engine?: Engine;
  /**
   * Set by a retry that accepts a key change its load would refuse, after the operator rebuilt the warehouse
   * tables (service/schema/key-change.ts).
   */
  acceptKeyChange?: boolean;
}
