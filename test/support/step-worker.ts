// A worker's part in one local Spark step, as a process of its own: `node test/support/step-worker.ts <lake> <request>`
// starts the step with the local runner (configured from AFLUENTE_* in its environment), prints the handle as
// one JSON line, and waits for the step. A test kills it to leave the step behind, as a worker that died would.
import { openLake } from '../../lib/lake/open-lake.ts';
import { loadConfig } from '../../service/config/env.ts';
import { createLogger } from '../../service/observability/logger.ts';
import { openStepRunner } from '../../service/steps/open-runner.ts';
import type { StepRequest } from '../../service/steps/step-runner.ts';

const [lake, request] = process.argv.slice(2);
if (!lake || !request) throw new Error('usage: step-worker.ts <lake uri> <step request as JSON>');
const runner = openStepRunner(
  loadConfig(process.env, { requireTokens: false }),
  openLake(lake),
  createLogger('silent'),
);
await runner.run(JSON.parse(request) as StepRequest, {
  signal: new AbortController().signal,
  onSubmitted: async (handle) => {
    process.stdout.write(`${JSON.stringify(handle)}\n`);
  },
});
