/**
 * The lake layout (DESIGN.md, "Lake layout"). Keys are deterministic from the source, the run's date and its
 * id, so a retry writes the same keys and overwrites instead of duplicating. A stage's manifest is written
 * last and is its commit marker: readers trust only what a manifest lists.
 */
export const LAYERS = ['raw', 'validated', 'rejected', 'curated'] as const;
export type Layer = (typeof LAYERS)[number];

export const MANIFEST = '_manifest.json';

/** `raw/source=<s>/dt=<yyyy-mm-dd>/run=<runId>/` and the same shape for validated and rejected. */
export function runPrefix(
  layer: Exclude<Layer, 'curated'>,
  source: string,
  dt: string,
  runId: number,
): string {
  return `${layer}/source=${source}/dt=${dt}/run=${runId}/`;
}

/** `curated/<table>/dt=<yyyy-mm-dd>/run=<runId>/` */
export function curatedPrefix(table: string, dt: string, runId: number): string {
  return `curated/${table}/dt=${dt}/run=${runId}/`;
}

export function partKey(prefix: string, index: number, extension = 'ndjson.gz'): string {
  return `${prefix}part-${String(index).padStart(5, '0')}.${extension}`;
}

export function manifestKey(prefix: string): string {
  return `${prefix}${MANIFEST}`;
}

/** The partition date of a run: the UTC day it was created. */
export function runDate(createdAt: Date): string {
  return createdAt.toISOString().slice(0, 10);
}

/** The parts one ingest invocation committed before handing over to the next (see IngestContinuation). */
export function segmentKey(prefix: string, segment: number): string {
  return `${prefix}_segments/segment-${String(segment).padStart(5, '0')}.json`;
}

/** The marker a validate group writes last, under the validated prefix. */
export function groupManifestKey(prefix: string, group: number): string {
  return `${prefix}_groups/group-${String(group).padStart(5, '0')}.json`;
}

/** `part-<group>-<index>.ndjson.gz`: groups write side by side without sharing a key. */
export function groupPartKey(prefix: string, group: number, index: number): string {
  return `${prefix}part-${String(group).padStart(5, '0')}-${String(index).padStart(5, '0')}.ndjson.gz`;
}
