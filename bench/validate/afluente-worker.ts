// afluente: the validate handler, exactly as the local Lambda invoker runs it, on one group of raw parts.
// Prints {ms, records, maxRssKiB} as JSON. Run as a child so its peak RSS is its own.
import type { ValidateRequest } from '../../contract/validate.ts';
import { handler } from '../../lambdas/validate/handler.ts';

const request = JSON.parse(process.argv[2] ?? '{}') as ValidateRequest;
const started = performance.now();
const result = await handler(request);
const ms = performance.now() - started;
if (result.kind !== 'done') {
  console.error(JSON.stringify(result));
  process.exit(1);
}
console.log(JSON.stringify({ ms, records: result.read, maxRssKiB: process.resourceUsage().maxRSS }));
