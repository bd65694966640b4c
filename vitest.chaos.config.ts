import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';

// The chaos suite (`npm run test:chaos`): the real service process against private Redis and MariaDB instances
// that the tests stop and start, killed and signalled in every stage. One file at a time: each one takes whole
// services up and down and runs Spark, and two at once on two cores would only measure the machine.
// (Spread, not mergeConfig: mergeConfig concatenates `include` and `exclude` with the base's.)
export default defineConfig({
  test: {
    ...base.test,
    include: ['test/chaos/**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    maxWorkers: 1,
    testTimeout: 600_000,
  },
});
