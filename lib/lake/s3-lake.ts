import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  paginateListObjectsV2,
  S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { pipeline, Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { LakeNotFoundError, type Lake, type LakeObject, type StoredObject } from './lake.ts';
import { assertSafeKey, assertSafePrefix, Measure, toReadable } from './support.ts';

export interface S3LakeOptions {
  /** `s3://bucket` or `s3://bucket/prefix`. */
  root: string;
  /** The client to use; when given, `endpoint`, `region` and `forcePathStyle` are ignored. */
  client?: S3Client;
  /**
   * An S3-compatible server to use instead of AWS, e.g. `http://127.0.0.1:5000`.
   * @default the AWS endpoint for the region
   */
  endpoint?: string;
  /** @default the SDK's own lookup (`AWS_REGION`, the shared config file, …) */
  region?: string;
  /**
   * Addresses the bucket in the path (`host/bucket/key`) instead of the host name, as most S3-compatible servers
   * need.
   * @default true when `endpoint` is set, false otherwise
   */
  forcePathStyle?: boolean;
}

/** The parts of `s3://bucket/prefix`; `prefix` is empty or ends with `/`. */
export function parseS3Uri(uri: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(uri);
  if (!match?.[1]) throw new Error(`an S3 lake root must look like s3://bucket/prefix (got "${uri}")`);
  const path = (match[2] ?? '').replace(/\/+$/, '');
  if (path !== '') assertSafeKey(path);
  return { bucket: match[1], prefix: path === '' ? '' : `${path}/` };
}

// Parts are held in memory while they upload: about PART_SIZE * (QUEUE_SIZE + 1) bytes per put at most.
const PART_SIZE = 8 * 1024 * 1024;
const QUEUE_SIZE = 2;
// The most keys one DeleteObjects call takes.
const DELETE_BATCH = 1000;

/** The lake on S3 (or an S3-compatible server): a bucket and a key prefix. */
export class S3Lake implements Lake {
  readonly root: string;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #client: S3Client;

  constructor(options: S3LakeOptions) {
    const { bucket, prefix } = parseS3Uri(options.root);
    this.#bucket = bucket;
    this.#prefix = prefix;
    this.root = `s3://${bucket}${prefix === '' ? '' : `/${prefix.slice(0, -1)}`}`;
    this.#client =
      options.client ??
      new S3Client({
        endpoint: options.endpoint,
        region: options.region,
        forcePathStyle: options.forcePathStyle ?? options.endpoint !== undefined,
      });
  }

  uri(key: string): string {
    return `${this.root}/${key}`;
  }

  async put(
    key: string,
    body: Readable | Buffer | string,
    options: { contentType?: string } = {},
  ): Promise<StoredObject> {
    const s3Key = this.#key(key);
    const source = toReadable(body);
    const measure = new Measure();
    // A failing body destroys `measure` with its error, which fails the upload; the callback has nothing to add.
    pipeline(source, measure, () => {});
    const upload = new Upload({
      client: this.#client,
      params: { Bucket: this.#bucket, Key: s3Key, Body: measure, ContentType: options.contentType },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
      // Parts of a failed multipart upload are aborted, so a failed put leaves nothing behind.
      leavePartsOnError: false,
    });
    try {
      await upload.done();
    } catch (error) {
      // When S3 fails first, nothing reads the body any more: stop it now rather than leave it open.
      source.destroy();
      measure.destroy();
      throw error;
    }
    return { key, uri: this.uri(key), ...measure.result() };
  }

  async get(key: string): Promise<Readable> {
    const { Body } = await this.#client
      .send(new GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }))
      .catch((error: unknown) => this.#rethrow(key, error));
    if (!(Body instanceof Readable)) throw new Error(`S3 returned no stream for ${this.uri(key)}`);
    return Body;
  }

  async getBytes(key: string): Promise<Buffer> {
    return buffer(await this.get(key));
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.#client.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  async *list(prefix: string): AsyncIterable<LakeObject> {
    assertSafePrefix(prefix);
    const pages = paginateListObjectsV2(
      { client: this.#client },
      { Bucket: this.#bucket, Prefix: this.#prefix + prefix },
    );
    for await (const page of pages) {
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        yield { key: object.Key.slice(this.#prefix.length), bytes: object.Size ?? 0 };
      }
    }
  }

  async delete(keys: string[]): Promise<void> {
    const objects = keys.map((key) => ({ Key: this.#key(key) }));
    for (let start = 0; start < objects.length; start += DELETE_BATCH) {
      const { Errors } = await this.#client.send(
        new DeleteObjectsCommand({
          Bucket: this.#bucket,
          Delete: { Objects: objects.slice(start, start + DELETE_BATCH), Quiet: true },
        }),
      );
      // DeleteObjects answers 200 even when some keys failed; missing keys are not failures.
      const first = Errors?.[0];
      if (first) {
        throw new Error(`could not delete ${this.uri(first.Key ?? '?')}: ${first.Code} ${first.Message}`);
      }
    }
  }

  #key(key: string): string {
    assertSafeKey(key);
    return this.#prefix + key;
  }

  #rethrow(key: string, error: unknown): never {
    if (isNotFound(error)) throw new LakeNotFoundError(key, this.uri(key));
    throw error;
  }
}

// HeadObject answers a bare 404 (no error code), GetObject NoSuchKey. A missing bucket is a setup error, not a
// missing object, so it stays as it is.
function isNotFound(error: unknown): boolean {
  const { name, $metadata } = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return name === 'NoSuchKey' || (name !== 'NoSuchBucket' && $metadata?.httpStatusCode === 404);
}
