// start-first on the in-memory engine: the replaced container leaves the
// service's DNS name, connects again at once outside it (Docker hands it back
// the address it released, so a client's retry of a connection that fell into
// the engine's leave gap is answered), drains, and only then is stopped; a
// refused reconnect never fails a rollout whose new container already serves.
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { Observer } from '../src/apply/prepare-apply.js';
import { prepareApply } from '../src/apply/prepare-apply.js';
import { Executor } from '../src/apply/executor.js';
import { Lanes } from '../src/apply/lanes.js';
import type { DesiredState, RolloutConfig } from '../src/model/model.js';
import { FakeEngine, observeFake } from './helpers/fake-engine.js';
import type { FakeEngineOptions } from './helpers/fake-engine.js';
import { spec, state } from './helpers/specs.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

const START_FIRST: RolloutConfig = { parallelism: 1, delayMs: 0, order: 'start-first', failureAction: 'rollback', monitorMs: 0, maxFailureRatio: 0 };
const HEALTH = { test: ['CMD', 'true'], intervalMs: 10, timeoutMs: 10, retries: 1, startPeriodMs: 0 };
const web = (image: string): DesiredState => state([spec('web', { image, healthcheck: HEALTH, rollout: { update: START_FIRST } })]);

/** Reads the fake engine the way observe() reads a real host (the image each config hash was created from). */
function observer(e: FakeEngine, images: Map<string, string>): Observer {
  return async (_t, project, environment) => observeFake(e, project, environment, { imageOf: (h) => images.get(h) ?? '' });
}

let ts: TestStore;
beforeEach(async () => {
  ts = await sqliteTestStore();
});
afterEach(async () => {
  await ts.dispose();
});

async function rollout(opts: FakeEngineOptions) {
  const engine = new FakeEngine(opts);
  const images = new Map<string, string>();
  const observe = observer(engine, images);
  const run = async (d: DesiredState) => {
    for (const s of d.services) images.set(s.configHash, s.spec.image);
    // The network's hash as the desired state makes it, so only the service changes.
    const { applyId } = await prepareApply(ts.store, async (...a) => {
      const o = await observe(...a);
      return { ...o, networks: o.networks.map((n) => ({ ...n, configHash: d.networks.find((x) => x.spec.name === n.name)!.configHash })) };
    }, { repo: 'acme/shop', pr: 1, environment: d.environment, kind: 'apply', actor: 'alice', headSha: 'abc', desired: d, targets: ['local'], onFailure: 'halt' });
    const state = await new Executor({ store: ts.store, engine: () => engine, lanes: new Lanes(), stopPollMs: 0, healthPollMs: 5, drainMs: 30 }).run(applyId);
    return { state, tasks: await ts.store.listTasksForApply(applyId) };
  };
  expect((await run(web('docker.io/berth-test/app:1'))).state).toBe('completed');
  const old = [...engine.containers.values()][0]!;
  engine.calls.length = 0;
  const v2 = await run(web('docker.io/berth-test/app:2'));
  return { engine, old, v2 };
}

it('the replaced container leaves DNS, rejoins outside it at once, drains, then stops', async () => {
  const { engine, old, v2 } = await rollout({});
  expect(v2.state).toBe('completed');
  const onOld = engine.calls.filter((c) => c.subject.startsWith(old.id)).map((c) => c.method);
  expect(onOld).toEqual(['disconnectNetwork', 'connectNetwork', 'stopContainer', 'removeContainer']);
  const at = (m: string) => engine.calls.find((c) => c.method === m && c.subject.startsWith(old.id))!;
  // Nothing happens between its return and its stop but the drain.
  expect(at('stopContainer').start - at('connectNetwork').end).toBeGreaterThanOrEqual(25);
  expect(engine.containers.get(old.id)).toBeUndefined();
  expect([...engine.containers.values()].map((c) => [c.name, c.running])).toEqual([['shop-staging-web-1', true]]);
});

it('a refused rejoin does not fail the rollout: the old container is stopped and removed anyway', async () => {
  const { engine, old, v2 } = await rollout({ failures: [{ match: /^connectNetwork ctr2 /, message: 'network is busy' }] });
  expect(old.id).toBe('ctr2'); // the fake's ids are deterministic: the failure above names the old container
  expect(v2.state).toBe('completed');
  expect(v2.tasks.every((t) => t.state === 'succeeded')).toBe(true);
  expect(engine.calls.filter((c) => c.subject.startsWith(old.id)).map((c) => c.method)).toEqual(['disconnectNetwork', 'connectNetwork', 'stopContainer', 'removeContainer']);
  expect([...engine.containers.values()].map((c) => [c.name, c.running])).toEqual([['shop-staging-web-1', true]]);
});
