import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Bounds, not expectations: a loaded 2-core machine (CI, parallel work) is many times slower.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration tests spawn processes and servers; two workers match the 2-core machine.
    pool: 'forks',
    maxWorkers: 2,
    // In CI the JSON report gives .ci/run its closing "N passed, N failed" line (one file per runtime).
    reporters: process.env.CI
      ? ['default', ['json', { outputFile: process.env.VMCP_TEST_RESULTS ?? 'test-results.json' }]]
      : ['default'],
  },
})
