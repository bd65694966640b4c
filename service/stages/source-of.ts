import type { LoadedSource } from '../config/sources.ts';
import { NonRetryableError } from '../orchestration/stage-handler.ts';

/** The source a run belongs to. A run outlives config edits, so its source may be gone: no retry fixes that. */
export function sourceOf(sources: ReadonlyMap<string, LoadedSource>, run: { source: string }): LoadedSource {
  const source = sources.get(run.source);
  if (!source)
    throw new NonRetryableError('unknown_source', `source "${run.source}" is no longer in the sources file`);
  return source;
}
