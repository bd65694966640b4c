import { writeFileSync } from 'node:fs';
import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints one plain closing line, `N passed, N failed, N skipped`, after vitest's own summary, so CI logs can be
 * read by tools that understand that line and not vitest's colourful table. A file that failed to load counts
 * as a failure. With AFLUENTE_TEST_COUNTS set, the counts also go to that file as JSON, for the closing line of
 * `npm test` (scripts/test.ts), which counts vitest and pytest together.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>): void {
    let passed = 0;
    let failed = unhandledErrors.length;
    let skipped = 0;
    for (const module of testModules) {
      if (module.state() === 'failed' && [...module.children.allTests()].length === 0) failed += 1;
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed += 1;
        else if (state === 'failed') failed += 1;
        else skipped += 1;
      }
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
    const file = process.env.AFLUENTE_TEST_COUNTS;
    if (file) writeFileSync(file, JSON.stringify({ passed, failed, skipped }));
  }
}
