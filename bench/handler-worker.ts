// afluente's side of a benchmark: one Lambda handler, exactly as the local Lambda invoker runs it.
// `node bench/handler-worker.ts <ingest|validate> <request JSON>` prints {ms, records, maxRssKiB} as JSON.
// Run as a child so its peak RSS is its own.
import type { IngestRequest } from '../contract/ingest.ts';
import type { ValidateRequest } from '../contract/validate.ts';
import { handler as ingest } from '../lambdas/ingest/handler.ts';
import { handler as validate } from '../lambdas/validate/handler.ts';

const [fn, json] = process.argv.slice(2);
const request = JSON.parse(json ?? '{}') as unknown;
const started = performance.now();
const result =
  fn === 'ingest' ? await ingest(request as IngestRequest) : await validate(request as ValidateRequest);
const ms = performance.now() - started;
if (result.kind !== 'done') {
  console.error(JSON.stringify(result));
  process.exit(1);
}
const records = 'records' in result ? result.records : result.read;
console.log(JSON.stringify({ ms, records, maxRssKiB: process.resourceUsage().maxRSS }));
