// `npm run test:chaos`: fault injection, hostile input, policy and secrets
// suites (test/chaos/*.chaos.ts), one file at a time (they load the engine),
// ending with the figures table.
import { defineConfig } from 'vitest/config';
import { BaseSequencer } from 'vitest/node';
import type { TestSpecification } from 'vitest/node';

/** The engine-restart file takes Docker away for a while: it always runs last. */
class RestartLast extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const last = (f: TestSpecification) => f.moduleId.includes('engine-restart');
    return [...sorted.filter((f) => !last(f)), ...sorted.filter(last)];
  }
}

export default defineConfig({
  test: {
    include: ['test/chaos/**/*.chaos.ts'],
    globalSetup: ['test/global-setup.ts', 'test/chaos/figures.ts'],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    sequence: { sequencer: RestartLast },
    reporters: ['default'],
  },
});
