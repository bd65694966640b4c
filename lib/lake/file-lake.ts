import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { LakeNotFoundError, type Lake, type LakeObject, type StoredObject } from './lake.ts';
import { assertSafeKey, assertSafePrefix, byKey, Measure, toReadable } from './support.ts';

export interface FileLakeOptions {
  /** `file:///abs/path`, or `file://./rel/path` for a folder relative to the working directory. */
  root: string;
}

/** The lake as a folder: the local default, and what the tests and the demo use. */
export class FileLake implements Lake {
  readonly root: string;
  readonly #dir: string;

  constructor(options: FileLakeOptions) {
    this.#dir = rootDir(options.root);
    // No trailing slash, so uri() can always add one.
    this.root = pathToFileURL(this.#dir).href.replace(/\/$/, '');
  }

  uri(key: string): string {
    return `${this.root}/${key}`;
  }

  async put(key: string, body: Readable | Buffer | string): Promise<StoredObject> {
    const file = this.#path(key);
    await mkdir(dirname(file), { recursive: true });
    // Same folder as the key, so the rename is atomic: readers see the old file or the new one, never a part.
    const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
    const measure = new Measure();
    try {
      // flush: the bytes reach the disk before the rename makes them visible.
      await pipeline(toReadable(body), measure, createWriteStream(temp, { flags: 'wx', flush: true }));
      await rename(temp, file);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return { key, uri: this.uri(key), ...measure.result() };
  }

  async get(key: string): Promise<Readable> {
    // Opened here rather than by the stream, so a missing key fails this call instead of the first read.
    const handle = await open(this.#path(key)).catch((error: unknown) => this.#rethrow(key, error));
    const isFile = await handle.stat().then(
      (s) => s.isFile(),
      () => false,
    );
    if (!isFile) {
      await handle.close();
      throw new LakeNotFoundError(key, this.uri(key));
    }
    return handle.createReadStream();
  }

  async getBytes(key: string): Promise<Buffer> {
    return readFile(this.#path(key)).catch((error: unknown) => this.#rethrow(key, error));
  }

  async exists(key: string): Promise<boolean> {
    const found = await stat(this.#path(key)).catch((error: unknown) => {
      if (isMissing(error)) return undefined;
      throw error;
    });
    return found?.isFile() ?? false;
  }

  async *list(prefix: string): AsyncIterable<LakeObject> {
    assertSafePrefix(prefix);
    // Only the folder the prefix ends in is walked; the rest of the prefix filters names.
    const start = join(this.#dir, prefix.slice(0, prefix.lastIndexOf('/') + 1));
    const entries = await readdir(start, { recursive: true, withFileTypes: true }).catch((error: unknown) => {
      if (isMissing(error)) return [];
      throw error;
    });
    const found: LakeObject[] = [];
    for (const entry of entries) {
      if (!entry.isFile() || isTempFile(entry.name)) continue;
      const key = relative(this.#dir, join(entry.parentPath, entry.name)).split(sep).join('/');
      if (!key.startsWith(prefix)) continue;
      // A file deleted since the walk is simply not listed.
      const info = await stat(join(entry.parentPath, entry.name)).catch(() => undefined);
      if (info) found.push({ key, bytes: info.size });
    }
    yield* found.sort(byKey);
  }

  async delete(keys: string[]): Promise<void> {
    const files = keys.map((key) => this.#path(key));
    await Promise.all(files.map((file) => rm(file, { force: true })));
  }

  #path(key: string): string {
    assertSafeKey(key);
    return join(this.#dir, ...key.split('/'));
  }

  #rethrow(key: string, error: unknown): never {
    if (isMissing(error) || (error as NodeJS.ErrnoException).code === 'EISDIR') {
      throw new LakeNotFoundError(key, this.uri(key));
    }
    throw error;
  }
}

function rootDir(root: string): string {
  if (!root.startsWith('file://'))
    throw new Error(`a file lake root must start with file:// (got "${root}")`);
  const rest = root.slice('file://'.length);
  if (rest === '') throw new Error(`a file lake root needs a path (got "${root}")`);
  // file:///abs and file://localhost/abs are proper file URLs; anything else is a path relative to the cwd.
  const absolute = rest.startsWith('/') || rest.startsWith('localhost/');
  return resolve(absolute ? fileURLToPath(root) : rest);
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function isTempFile(name: string): boolean {
  return name.startsWith('.') && name.endsWith('.tmp');
}
