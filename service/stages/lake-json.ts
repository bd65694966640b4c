import type { Lake } from '../../lib/lake/lake.ts';
import { NonRetryableError } from '../orchestration/stage-handler.ts';

/** Reads a small JSON document (a manifest, a step's result) from the lake. */
export async function readJson<T>(lake: Lake, key: string): Promise<T> {
  return JSON.parse((await lake.getBytes(key)).toString('utf8')) as T;
}

/**
 * Reads the manifest an earlier stage committed for the run. Without it the stage has nothing to work on, and
 * no retry of this stage can change that, so its absence is a non-retryable `reason`.
 */
export async function readCommitted<T>(
  lake: Lake,
  key: string,
  runId: number,
  reason: string,
  what: string,
): Promise<T> {
  if (!(await lake.exists(key))) {
    throw new NonRetryableError(reason, `run ${runId} has no committed ${what}: ${lake.uri(key)} is missing`);
  }
  return readJson<T>(lake, key);
}
