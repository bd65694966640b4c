import type { Readable } from 'node:stream';

/** What a write to the lake stored: the object's key and URI, its size, and the sha256 of its bytes. */
export interface StoredObject {
  key: string;
  uri: string;
  bytes: number;
  sha256: string;
}

export interface LakeObject {
  key: string;
  bytes: number;
}

/** A key that is not in the lake. */
export class LakeNotFoundError extends Error {
  override name = 'LakeNotFoundError';
  readonly key: string;
  constructor(key: string, uri: string) {
    super(`lake object not found: ${uri}`);
    this.key = key;
  }
}

/**
 * The data lake, one port with two adapters: `file://` (a folder) and `s3://` (a bucket and prefix). Keys are
 * relative, slash-separated paths such as `raw/source=demo/dt=2026-01-31/run=7/part-00000.ndjson.gz`.
 *
 * A put is atomic: readers see the whole old object or the whole new one, never a partial write. Writing an
 * existing key replaces it, which is what makes retries with deterministic keys idempotent.
 */
export interface Lake {
  /** The lake root, e.g. `file:///abs/path/.data/lake` or `s3://bucket/prefix`. */
  readonly root: string;
  /** The URI of a key under the root. */
  uri(key: string): string;
  /** Streams `body` to `key`; memory stays bounded by the adapter's buffer, not by the object's size. */
  put(
    key: string,
    body: Readable | Buffer | string,
    options?: { contentType?: string },
  ): Promise<StoredObject>;
  /** Streams an object; throws {@link LakeNotFoundError} if it does not exist. */
  get(key: string): Promise<Readable>;
  /** Reads a small object (a manifest) whole; throws {@link LakeNotFoundError} if it does not exist. */
  getBytes(key: string): Promise<Buffer>;
  exists(key: string): Promise<boolean>;
  /** Every object under `prefix`, in key order. */
  list(prefix: string): AsyncIterable<LakeObject>;
  /** Deletes the given keys; missing keys are fine. */
  delete(keys: string[]): Promise<void>;
}
