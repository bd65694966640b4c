import type { LoadedSource } from '../config/sources.ts';
import { BadRequestError } from '../errors.ts';
import type { SchemaVersion } from '../state/entities/index.ts';
import { diffSpecs, isEmptyDiff, type SchemaDiff } from './diff.ts';
import { specHash, warehouseSpec, type WarehouseSpec } from './spec.ts';
import type { SchemaVersions, VersionSummary } from './versions.ts';

/** One end of a diff: a version, the current config (which may have no version yet), or nothing loaded. */
export interface DiffEnd {
  versionId: number | null;
  hash: string | null;
  /** `version 3`, `the current config (version 4)`, `nothing loaded`: for people. */
  label: string;
}

/** What GET /sources/:name/schema shows. */
export interface SchemaOverview {
  source: string;
  /** The current config's spec: its hash, and its version when a load has recorded one. */
  current: { hash: string; versionId: number | null };
  /** The version the warehouse follows: the latest one a load committed with. */
  latestLoadedId: number | null;
  versions: VersionSummary[];
  diff: { from: DiffEnd; to: DiffEnd; unchanged: boolean } & SchemaDiff;
}

/** The version ids a caller picked for the diff; absent ends default to the latest loaded → the current config. */
export interface DiffQuery {
  from?: number;
  to?: number;
}

function latestLoaded(versions: readonly VersionSummary[]): SchemaVersion | null {
  let latest: SchemaVersion | null = null;
  for (const { version } of versions) {
    if (!version.lastLoadedAt) continue;
    if (!latest?.lastLoadedAt || version.lastLoadedAt >= latest.lastLoadedAt) latest = version;
  }
  return latest;
}

/**
 * A source's schema versions, which one its current config is, and the diff between two of them (by default
 * from the latest loaded one to the current config, which is what its next load changes). An id that is not
 * one of this source's versions is a 400 naming the parameter.
 */
export async function schemaOverview(
  store: Pick<SchemaVersions, 'list' | 'get'>,
  source: Pick<LoadedSource, 'name' | 'tables' | 'incremental'>,
  query: DiffQuery,
): Promise<SchemaOverview> {
  const versions = await store.list(source.name);
  const currentSpec = warehouseSpec(source.tables, source.incremental?.cursorField ?? null);
  const currentHash = specHash(currentSpec);
  const currentVersion = versions.find((v) => v.version.hash === currentHash)?.version ?? null;
  const latest = latestLoaded(versions);

  const pick = async (param: 'from' | 'to', id: number): Promise<SchemaVersion> => {
    const version = versions.find((v) => v.version.id === id)?.version ?? (await store.get(id));
    if (!version) throw new BadRequestError(`querystring.${param}: schema version ${id} does not exist`);
    if (version.source !== source.name)
      throw new BadRequestError(
        `querystring.${param}: schema version ${id} is of source "${version.source}", not "${source.name}"`,
      );
    return version;
  };
  const end = (version: SchemaVersion): DiffEnd => ({
    versionId: version.id,
    hash: version.hash,
    label:
      version.hash === currentHash ? `the current config (version ${version.id})` : `version ${version.id}`,
  });
  const current: DiffEnd = {
    versionId: currentVersion?.id ?? null,
    hash: currentHash,
    label: currentVersion ? `the current config (version ${currentVersion.id})` : 'the current config',
  };

  let from: { end: DiffEnd; spec: WarehouseSpec | null };
  if (query.from !== undefined) {
    const version = await pick('from', query.from);
    from = { end: end(version), spec: version.spec };
  } else if (latest) {
    from = { end: end(latest), spec: latest.spec };
  } else {
    from = { end: { versionId: null, hash: null, label: 'nothing loaded' }, spec: null };
  }
  let to: { end: DiffEnd; spec: WarehouseSpec };
  if (query.to !== undefined) {
    const version = await pick('to', query.to);
    to = { end: end(version), spec: version.spec };
  } else {
    to = { end: current, spec: currentSpec };
  }
  const diff = diffSpecs(from.spec, to.spec);
  return {
    source: source.name,
    current: { hash: currentHash, versionId: currentVersion?.id ?? null },
    latestLoadedId: latest?.id ?? null,
    versions,
    diff: { from: from.end, to: to.end, unchanged: isEmptyDiff(diff), ...diff },
  };
}
