// Baseline: the same raw parts read and rewritten with no validation: gunzip, JSON.parse, JSON.stringify, gzip.
// Prints {ms, records, maxRssKiB} as JSON. Run as a child so its peak RSS is its own.
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createGunzip, createGzip } from 'node:zlib';
import { lineBatches } from '../../lambdas/common/ndjson-lines.ts';

const [out, ...files] = process.argv.slice(2) as [string, ...string[]];
const started = performance.now();
const gzip = createGzip();
const sink = createWriteStream(out);
gzip.pipe(sink);
let records = 0;
for (const file of files) {
  for await (const batch of lineBatches(createReadStream(file).pipe(createGunzip()))) {
    const lines = batch.map((line) => JSON.stringify(JSON.parse(line)));
    records += lines.length;
    if (!gzip.write(`${lines.join('\n')}\n`)) await once(gzip, 'drain');
  }
}
gzip.end();
await once(sink, 'close');
console.log(
  JSON.stringify({ ms: performance.now() - started, records, maxRssKiB: process.resourceUsage().maxRSS }),
);
