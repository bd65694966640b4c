import { defineConfig } from 'vitest/config';

// Tests talk to the real MariaDB, Redis and PostgreSQL on loopback. Each test file makes its own
// database and queue prefix, so files can run in parallel; two workers match CI's two cores.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The chaos suite stops and starts whole services: `npm run test:chaos` (vitest.chaos.config.ts) runs it.
    exclude: ['test/chaos/**', '**/node_modules/**'],
    globalSetup: ['test/support/global-setup.ts'],
    reporters: ['default', './test/support/summary-reporter.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
