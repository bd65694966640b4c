// Baseline: the same pages fetched with a plain undici loop, the raw bytes gzipped to a file, nothing parsed.
// Prints {ms, records, maxRssKiB} as JSON. Run as a child so its peak RSS is its own.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import { Agent, request } from 'undici';

const [url, out, pageSize] = process.argv.slice(2) as [string, string, string];
const agent = new Agent({ keepAliveTimeout: 10_000, connections: 4 });
const CURRENCY = Buffer.from('"currency":');
const gzip = createGzip();
const file = createWriteStream(out);
gzip.pipe(file);
const started = performance.now();
let records = 0;
for (let page = 1; ; page++) {
  const res = await request(`${url}?page=${page}&per_page=${pageSize}`, { dispatcher: agent });
  const body = Buffer.from(await res.body.arrayBuffer());
  if (body.length < 32 && body.toString().includes('"data":[]')) break;
  // Counting records without parsing: "currency" appears once per order and nowhere else.
  for (let at = body.indexOf(CURRENCY); at !== -1; at = body.indexOf(CURRENCY, at + 1)) records += 1;
  if (!gzip.write(body)) await once(gzip, 'drain');
}
gzip.end();
await once(file, 'close');
const ms = performance.now() - started;
await agent.close();
console.log(JSON.stringify({ ms, records, maxRssKiB: process.resourceUsage().maxRSS }));
