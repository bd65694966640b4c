import prettyBytes from 'pretty-bytes';
import type { Engine, StepEngine } from '../../contract/source-config.ts';

/** What decides a stage's engine. */
export interface EngineChoiceInput {
  /** The engine the run asked for (`params.engine`: on POST /runs, a replay or a retry), if any. */
  requested?: Engine | null;
  /** The source's `engine`. */
  configured: Engine;
  /** The bytes of the validated parts the run's data comes from (the validated manifest the transform read). */
  validatedBytes: number;
  /** AFLUENTE_EMBEDDED_MAX_BYTES: `auto` runs embedded up to this many validated bytes. */
  maxEmbeddedBytes: number;
}

/** The engine a stage runs on, and why, in words recorded on the job and the run. */
export interface EngineChoice {
  engine: StepEngine;
  reason: string;
}

/**
 * Picks the engine of a transform or load: the run's requested engine, else the source's `engine`, else (both
 * `auto`) embedded while the validated bytes are at most `maxEmbeddedBytes`, Spark above. Pure: the transform and
 * the load of one run give it the same bytes, so under `auto` they agree.
 */
export function chooseEngine(input: EngineChoiceInput): EngineChoice {
  const { requested, configured, validatedBytes, maxEmbeddedBytes } = input;
  if (requested && requested !== 'auto') return { engine: requested, reason: 'requested on the run' };
  if (!requested && configured !== 'auto')
    return { engine: configured, reason: `source config engine: ${configured}` };
  const fits = validatedBytes <= maxEmbeddedBytes;
  const how = requested ? 'auto (requested on the run)' : 'auto';
  return {
    engine: fits ? 'embedded' : 'spark',
    reason:
      `${how}: validated ${formatBytes(validatedBytes)} ${fits ? '≤' : '>'} ` +
      `AFLUENTE_EMBEDDED_MAX_BYTES (${formatBytes(maxEmbeddedBytes)})`,
  };
}

/** `0 B`, `812 B`, `1.2 MiB`, `590 KiB`, `2 GiB`: binary units, three significant digits (pretty-bytes). */
export function formatBytes(bytes: number): string {
  return prettyBytes(bytes, { binary: true });
}
