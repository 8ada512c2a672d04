import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests spawn processes and servers; two workers match the 2-core machine.
    pool: 'forks',
    maxWorkers: 2,
  },
})
