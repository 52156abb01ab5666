// Plan and apply a desired state on the real engine through the app's own
// path (observe with name look-ups → prepareApply → executor), with a fresh
// SQLite store per test and the project's Docker objects removed around each.
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import type { Observer } from '../../src/apply/prepare-apply.js';
import { planTargets, prepareApply } from '../../src/apply/prepare-apply.js';
import { DockerEngine } from '../../src/docker/docker-engine.js';
import { observe } from '../../src/docker/observe.js';
import { Executor } from '../../src/apply/executor.js';
import { Lanes } from '../../src/apply/lanes.js';
import type { DesiredState } from '../../src/model/model.js';
import { docker, removeProject } from './docker.js';
import { sqliteTestStore, type TestStore } from './stores.js';

export const realObserver: Observer = async (_t, project, env, opts) => (await observe(docker, project, env, opts)).observed;

/** Registers the hooks; call inside a describe. */
export function realApplyHarness(project: string) {
  let ts: TestStore;
  let executor: Executor;
  beforeAll(() => removeProject(project));
  afterAll(() => removeProject(project));
  beforeEach(async () => {
    ts = await sqliteTestStore();
    executor = new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 100 });
  });
  afterEach(async () => {
    await ts.dispose();
    await removeProject(project);
  });
  return {
    async plan(d: DesiredState) {
      const [p] = await planTargets(d, ['local'], realObserver);
      return p!.plan;
    },
    async apply(d: DesiredState) {
      const { applyId, plans } = await prepareApply(ts.store, realObserver, {
        repo: 'acme/shop', pr: 1, environment: d.environment, kind: 'apply', actor: 'alice', headSha: 'abc', desired: d, targets: ['local'], onFailure: 'halt',
      });
      const result = await executor.run(applyId);
      return { applyId, result, plan: plans[0]!.plan, tasks: await ts.store.listTasksForApply(applyId) };
    },
  };
}
