// What both lake adapters share: the rules for keys, and measuring a body while it streams past.
import { createHash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';

/**
 * Throws unless `key` is a relative, slash-separated path of plain segments. Both adapters apply the same rule,
 * so a key that works on `s3://` also works on `file://`, where `..` or an absolute path would leave the root.
 */
export function assertSafeKey(key: string): void {
  if (!isSafePath(key))
    throw new Error(`unsafe lake key "${key}": keys are relative paths of plain segments`);
}

/** Like {@link assertSafeKey}, for a list prefix: empty, or it may end with `/` or in the middle of a name. */
export function assertSafePrefix(prefix: string): void {
  const slash = prefix.lastIndexOf('/');
  if (prefix.includes('\\') || (slash >= 0 && !isSafePath(prefix.slice(0, slash)))) {
    throw new Error(`unsafe lake prefix "${prefix}": prefixes are relative paths of plain segments`);
  }
}

function isSafePath(path: string): boolean {
  return !path.includes('\\') && path.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

/** Passes bytes through unchanged, counting them and hashing them with sha256 on the way. */
export class Measure extends Transform {
  readonly #hash = createHash('sha256');
  #bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    callback(null, chunk);
  }

  /** Call once, after the last byte has passed. */
  result(): { bytes: number; sha256: string } {
    return { bytes: this.#bytes, sha256: this.#hash.digest('hex') };
  }
}

export function toReadable(body: Readable | Buffer | string): Readable {
  // Wrapped in an array: Readable.from(buffer) would emit it one byte at a time.
  if (typeof body === 'string') return Readable.from([Buffer.from(body)]);
  return Buffer.isBuffer(body) ? Readable.from([body]) : body;
}

/** Sorts keys by their UTF-8 bytes, the order S3 lists in, so both adapters list in the same order. */
export function byKey(a: { key: string }, b: { key: string }): number {
  return Buffer.compare(Buffer.from(a.key), Buffer.from(b.key));
}
