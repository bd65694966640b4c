import { manifestKey } from '../../contract/lake-layout.ts';
import type { TransformManifest, TransformSpec } from '../../contract/steps.ts';
import type { ValidateManifest } from '../../contract/validate.ts';
import type { Lake } from '../../lib/lake/lake.ts';
import { readJson } from './lake-json.ts';

// What engine `auto` weighs: the bytes of the validated parts a run's transform reads. The transform sums its
// validated manifest; the load finds the same manifest through the transform's spec, so both stages of a run
// weigh the same bytes and pick the same engine.

export function bytesOf(files: readonly { bytes: number }[]): number {
  return files.reduce((n, f) => n + f.bytes, 0);
}

/**
 * The bytes of the validated parts a transform read (its spec's `inputs`), as their validated manifest lists
 * them. A manifest removed since (the lake cleaned up) leaves the curated files' bytes to weigh instead.
 */
export async function validatedBytesRead(
  lake: Lake,
  spec: Pick<TransformSpec, 'inputs'>,
  curated: TransformManifest,
): Promise<number> {
  const [first] = spec.inputs;
  if (first === undefined) return 0;
  const key = manifestKey(first.slice(0, first.lastIndexOf('/') + 1));
  if (!(await lake.exists(key))) return bytesOf(Object.values(curated.tables).flatMap((t) => t.files));
  const inputs = new Set(spec.inputs);
  const validated = await readJson<ValidateManifest>(lake, key);
  return bytesOf(validated.files.filter((f) => inputs.has(f.key)));
}
