import { UniqueConstraintViolationException, type EntityManager, type MikroORM } from '@mikro-orm/mysql';
import { Run, SchemaVersion } from '../state/entities/index.ts';
import { Status } from '../state/status.ts';
import { keyChanges, type KeyChange, type LoadedVersion } from './key-change.ts';
import { specHash, type WarehouseSpec } from './spec.ts';

/** A version with the runs that loaded it (COMPLETED runs that recorded it). */
export interface VersionSummary {
  version: SchemaVersion;
  runs: number;
  latestRunId: number | null;
}

/**
 * A source's schema versions in MySQL: the loads add them and record which one each run loaded, the API reads
 * them. Every write is idempotent, so a redelivered or retried load, and two loads of a source starting at once,
 * leave one row per (source, spec).
 */
export class SchemaVersions {
  private readonly orm: MikroORM;

  constructor(orm: MikroORM) {
    this.orm = orm;
  }

  private em(): EntityManager {
    return this.orm.em.fork();
  }

  /** The version of `spec`, added when the source has none with its hash. */
  async ensure(source: string, spec: WarehouseSpec): Promise<SchemaVersion> {
    const em = this.em();
    const hash = specHash(spec);
    const found = await em.findOne(SchemaVersion, { source, hash });
    if (found) return found;
    // In autocommit, not in a transaction: a concurrent insert of the same (source, hash) waits for ours, then
    // fails on the unique key, and the row it reads next is the committed one.
    try {
      await em.insert(SchemaVersion, { source, hash, spec, createdAt: new Date() });
    } catch (error) {
      if (!(error instanceof UniqueConstraintViolationException)) throw error;
    }
    return em.findOneOrFail(SchemaVersion, { source, hash }, { refresh: true });
  }

  /** Adds the version of `spec` if need be and records it as the one run `runId` loads; returns it. */
  async record(source: string, runId: number, spec: WarehouseSpec): Promise<SchemaVersion> {
    const version = await this.ensure(source, spec);
    // A plain UPDATE, like the engine a job runs on: not a state change, so no optimistic-lock bump.
    await this.em().nativeUpdate(Run, { id: runId }, { schemaVersion: version.id });
    return version;
  }

  /**
   * The tables of `spec` whose key differs from the one their warehouse rows were last loaded with (see
   * {@link keyChanges}); none when nothing was loaded yet.
   */
  async keyChanges(source: string, spec: WarehouseSpec): Promise<KeyChange[]> {
    return keyChanges(await this.loaded(source), spec);
  }

  /** The source's loaded versions, latest loaded first. */
  async loaded(source: string): Promise<LoadedVersion[]> {
    const rows = await this.em().find(
      SchemaVersion,
      { source, lastLoadedAt: { $ne: null } },
      { orderBy: { lastLoadedAt: 'desc', id: 'desc' } },
    );
    return rows.map((v) => ({ id: v.id, lastLoadedAt: v.lastLoadedAt as Date, spec: v.spec }));
  }

  /**
   * Records that a load with version `id` committed at `at`: `firstLoadedAt` is set if it is still null, and
   * `lastLoadedAt` moves to `at`. With `latest: false` (a replay that found an earlier load of the data committed,
   * and loaded nothing now) `lastLoadedAt` is only set when it is null, so an older version does not become the
   * latest loaded one. Idempotent: a redelivered load that finds its load committed may call it again.
   */
  async markLoaded(id: number, options: { latest?: boolean; at?: Date } = {}): Promise<void> {
    const at = options.at ?? new Date();
    await this.em().transactional(async (em) => {
      await em.nativeUpdate(SchemaVersion, { id, firstLoadedAt: null }, { firstLoadedAt: at });
      const which = options.latest === false ? { id, lastLoadedAt: null } : { id };
      await em.nativeUpdate(SchemaVersion, which, { lastLoadedAt: at });
    });
  }

  async get(id: number): Promise<SchemaVersion | null> {
    return this.em().findOne(SchemaVersion, id);
  }

  async byHash(source: string, hash: string): Promise<SchemaVersion | null> {
    return this.em().findOne(SchemaVersion, { source, hash });
  }

  /** The source's versions, oldest first, each with how many COMPLETED runs loaded it and the latest of them. */
  async list(source: string): Promise<VersionSummary[]> {
    const em = this.em();
    const [versions, loads] = await Promise.all([
      em.find(SchemaVersion, { source }, { orderBy: { id: 'asc' } }),
      em.execute<{ id: number; runs: number | string; latest: number }[]>(
        'select schema_version_id as id, count(*) as runs, max(id) as latest from runs ' +
          'where source = ? and status = ? and schema_version_id is not null group by schema_version_id',
        [source, Status.Completed],
      ),
    ]);
    const byId = new Map(loads.map((l) => [Number(l.id), l]));
    return versions.map((version) => {
      const l = byId.get(version.id);
      return { version, runs: l ? Number(l.runs) : 0, latestRunId: l ? Number(l.latest) : null };
    });
  }
}
