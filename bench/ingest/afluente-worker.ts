// afluente: the ingest handler, exactly as the local Lambda invoker runs it, into a file lake.
// Prints {ms, records, maxRssKiB} as JSON. Run as a child so its peak RSS is its own.
import type { IngestRequest } from '../../contract/ingest.ts';
import { handler } from '../../lambdas/ingest/handler.ts';

const request = JSON.parse(process.argv[2] ?? '{}') as IngestRequest;
const started = performance.now();
const result = await handler(request);
const ms = performance.now() - started;
if (result.kind !== 'done') {
  console.error(JSON.stringify(result));
  process.exit(1);
}
console.log(JSON.stringify({ ms, records: result.records, maxRssKiB: process.resourceUsage().maxRSS }));
