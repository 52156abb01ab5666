// `npm run test:chaos`: fault injection, hostile input, policy and secrets
// suites (test/chaos/*.chaos.ts), one file at a time (they load the engine),
// ending with the figures table.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/chaos/**/*.chaos.ts'],
    globalSetup: ['test/global-setup.ts', 'test/chaos/figures.ts'],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    reporters: ['default'],
  },
});
