import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Real-Docker tests share one engine; files run in parallel but each uses its own project label.
    fileParallelism: true,
    reporters: ['default'],
  },
});
