/**
 * The pipeline's stages, in their default order. A run stores its own plan (a subsequence of these),
 * and the service, the Lambdas and the Spark jobs all name stages with these literals.
 */
export const STAGES = ['ingest', 'validate', 'transform', 'load'] as const;
export type Stage = (typeof STAGES)[number];

export function isStage(value: string): value is Stage {
  return (STAGES as readonly string[]).includes(value);
}
