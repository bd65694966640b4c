import { once } from 'node:events';
import { createGzip, type Gzip } from 'node:zlib';
import { partKey } from '../../contract/lake-layout.ts';
import type { PartInfo } from '../../contract/ingest.ts';
import type { Lake, StoredObject } from '../../lib/lake/lake.ts';

export interface PartWriterOptions {
  /** The folder the parts go in, e.g. `raw/source=demo/dt=2026-01-31/run=7/`. */
  prefix: string;
  /** The index of the first part this writer opens. */
  startIndex: number;
  /** The key of the part with this index. @default partKey(prefix, index) */
  key?: (index: number) => string;
  /** Close a part after this many records... */
  maxRecords: number;
  /** ...or this many uncompressed bytes. */
  maxBytes: number;
}

interface OpenPart {
  key: string;
  gzip: Gzip;
  stored: Promise<StoredObject>;
  /** Settles when the compressor has taken the last chunk written. */
  draining: Promise<void>;
  records: number;
  bytes: number;
}

/**
 * Writes NDJSON lines into gzipped parts, streaming each part straight to the lake and rotating by record count
 * and bytes. Memory is bounded by one part's compression window and the lake's upload buffer, not by the run.
 */
export class PartWriter {
  readonly parts: PartInfo[] = [];
  private readonly lake: Lake;
  private readonly options: PartWriterOptions;
  private current: OpenPart | undefined;
  private index: number;

  constructor(lake: Lake, options: PartWriterOptions) {
    this.lake = lake;
    this.options = options;
    this.index = options.startIndex;
  }

  /** The index the next part will get. */
  get nextIndex(): number {
    return this.index;
  }

  get records(): number {
    return this.parts.reduce((n, p) => n + p.records, 0) + (this.current?.records ?? 0);
  }

  /**
   * Appends lines (each one JSON document, no newline). `joined`, if given, is `lines.join('\n')`: a caller that
   * built it anyway saves the writer from concatenating the page again.
   */
  async write(lines: readonly string[], joined?: string): Promise<void> {
    const { maxRecords, maxBytes } = this.options;
    if (lines.length === 0) return;
    // The common case, a whole page that fits in the open part, is one write with one size check.
    const part = this.current ?? this.open();
    // Encoded once: the size check and the compressor share the bytes.
    const chunk = Buffer.from(`${joined ?? lines.join('\n')}\n`);
    if (part.records + lines.length < maxRecords && part.bytes + chunk.length < maxBytes) {
      part.records += lines.length;
      part.bytes += chunk.length;
      await this.push(part, chunk);
      return;
    }
    await this.writeSplitting(lines);
  }

  private async writeSplitting(lines: readonly string[]): Promise<void> {
    const { maxRecords, maxBytes } = this.options;
    let i = 0;
    while (i < lines.length) {
      const part = this.current ?? this.open();
      let text = '';
      while (i < lines.length && part.records < maxRecords && part.bytes < maxBytes) {
        const line = `${lines[i]}\n`;
        text += line;
        part.records += 1;
        part.bytes += Buffer.byteLength(line);
        i += 1;
      }
      if (text) await this.push(part, text);
      if (part.records >= maxRecords || part.bytes >= maxBytes) await this.finish();
    }
  }

  /** Closes the open part, if any. Every part written so far is then committed to the lake. */
  async close(): Promise<PartInfo[]> {
    await this.finish();
    return this.parts;
  }

  /** Abandons the open part: its upload fails and nothing is stored at its key. */
  async abort(reason: Error): Promise<void> {
    const part = this.current;
    this.current = undefined;
    if (!part) return;
    part.gzip.destroy(reason);
    await part.stored.catch(() => undefined);
  }

  private open(): OpenPart {
    const key = this.options.key ? this.options.key(this.index) : partKey(this.options.prefix, this.index);
    this.index += 1;
    // Large output chunks: a page compresses in a few callbacks instead of one per 16 KiB.
    const gzip = createGzip({ chunkSize: 128 * 1024 });
    // Failures reach us through `stored`; an adapter that stops listening once its upload has settled must not
    // turn an abort into an uncaught 'error' event.
    gzip.on('error', () => undefined);
    const stored = this.lake.put(key, gzip, { contentType: 'application/x-ndjson' });
    // Observed in push/finish; this keeps an early upload failure from being reported as unhandled.
    stored.catch(() => undefined);
    this.current = { key, gzip, stored, draining: Promise.resolve(), records: 0, bytes: 0 };
    return this.current;
  }

  /**
   * Hands a chunk to the compressor without waiting for it to be compressed, so the caller fetches the next page
   * while zlib works on this one in the thread pool. It waits for the previous chunk to drain first, so at most
   * two chunks are ever buffered.
   */
  private async push(part: OpenPart, chunk: Buffer | string): Promise<void> {
    await part.draining;
    if (!part.gzip.write(chunk)) {
      // A failed upload is reported by `stored`, which finish() awaits; here it only has to stop the wait.
      part.draining = Promise.race([once(part.gzip, 'drain'), part.stored]).then(
        () => undefined,
        () => undefined,
      );
    }
  }

  private async finish(): Promise<void> {
    const part = this.current;
    if (!part) return;
    this.current = undefined;
    part.gzip.end();
    const stored = await part.stored;
    this.parts.push({ key: part.key, records: part.records, bytes: stored.bytes, sha256: stored.sha256 });
  }
}
