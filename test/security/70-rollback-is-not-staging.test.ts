// Staging-first (DESIGN, "GitHub surface" and "Security model") means THIS
// pull request's changes were tried on staging, successfully. A rollback —
// berth's own after a failed rollout (failure_action: rollback), or a
// `/rollback` — runs another state than the PR's: an earlier commit's, or a
// mix of the two. Its record still carries the PR number and a desired
// digest, and the gate took any completed apply of the PR with the head's
// digest. The attack: a PR adds a service `worker` and rolls `web` out to
// v2 on staging; web's rollout fails after its first replica (the apply
// fails, worker is never started), and berth's rollback returns web alone
// while recording the failed apply's entry for worker (auto-rollback.ts,
// returnedState: "otherwise the failed apply's entry"). That rollback
// completes with the digest of {web v1, worker}. The author then pushes a
// head whose staging state is exactly that — web back at v1, worker kept —
// and `/apply production` passed staging-first: worker reached production
// without ever having run on staging. A rollback's record never counts as
// having applied a state for staging-first; only an /apply (or a merge's or
// a push's apply) does. The same for the push path (apply_on: push), which
// read the latest completed apply of the digest from any PR and of any kind.
// First with a real store (SQLite) and Docker stood in for by simulated
// states, as in test/auto-rollback.runner.test.ts; then the attack itself
// through the whole app, with real applies on dockerd.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Executor } from '../../src/apply/executor.js';
import { prepareApply, type Observer } from '../../src/apply/prepare-apply.js';
import { ApplyRunner } from '../../src/apply/supervisor.js';
import { loadCompose } from '../../src/compose/load.js';
import { pushRequiresGate, requiresGate } from '../../src/github/gates.js';
import type { GitHubPort } from '../../src/github/github.js';
import { LABEL, type ObservedState } from '../../src/model/model.js';
import { desiredDigest, reconcile } from '../../src/plan/reconcile.js';
import type { App } from '../chaos/app-harness.js';
import { docker, sha, startApp } from '../chaos/app-harness.js';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';
import { emptyObserved, simulate } from '../helpers/simulate.js';
import { sqliteTestStore, type TestStore } from '../helpers/stores.js';
import { journalFailedRollout } from '../helpers/failed-rollout.js';

const REPO = { owner: 'acme', name: 'shop' };
const H1 = '1'.repeat(40);
const H2 = '2'.repeat(40);
const H3 = '3'.repeat(40);
const rollout = ['    deploy:', '      replicas: 3', '      update_config:', '        order: start-first', '        parallelism: 1', '        failure_action: rollback', '    healthcheck:', '      test: ["CMD-SHELL", "test -f /VERSION"]'];
const staging = (webImage: string, worker: boolean) =>
  loadCompose(
    [{ path: 'compose.yml', text: ['services:', '  web:', `    image: ${webImage}`, ...rollout, ...(worker ? ['  worker:', '    image: berth-test/app:2', '    command: ["sleep", "infinity"]'] : []), ''].join('\n') }],
    { project: 'shop', environment: 'staging', variables: {} },
  );
const V1 = staging('berth-test/app:1', false);
const V2 = staging('berth-test/app:2', true);
/** The head the author pushes after the failure: web back at v1, worker kept. */
const MIXED = staging('berth-test/app:1', true);
const observed1 = simulate(reconcile(V1, emptyObserved('shop', 'staging')), emptyObserved('shop', 'staging'));
const silent = { info() {}, warn() {}, error() {} };
const PRODUCTION = { name: 'production', requires: ['staging'] };
const KNOWN = ['staging', 'production'];

describe('security: a rollback never counts as having applied a state for staging-first', () => {
  let ts: TestStore;
  const gh = {
    async createComment() {
      return 1;
    },
    async createCheckRun() {
      return 99;
    },
    async updateCheckRun() {},
    async getPull() {
      return { state: 'open' };
    },
  } as unknown as GitHubPort;

  beforeEach(async () => {
    ts = await sqliteTestStore();
  });
  afterEach(() => ts.dispose());

  const complete = async (id: string) => {
    const a = (await ts.store.getApply(id))!;
    expect(await ts.store.casApplyState(id, a.version, { state: 'completed', startedAt: a.createdAt, finishedAt: a.createdAt + 1 })).toBe(true);
    await ts.store.markReported(id);
  };

  /**
   * PR 7 applied V1 to staging (completed), then V2: web's rollout passed on replica 1 and failed on replica 2,
   * worker was never created (halt). berth's own rollback of web follows; it completes.
   */
  async function failedRolloutRolledBack(): Promise<{ failedId: string; rollbackId: string }> {
    const { applyId: first } = await prepareApply(ts.store, async () => emptyObserved('shop', 'staging'), { repo: 'acme/shop', pr: 7, environment: 'staging', kind: 'apply', actor: 'alice', headSha: H1, desired: V1, targets: ['local'], onFailure: 'halt' });
    await complete(first);
    const observe: Observer = async () => observed1;
    const prepared = await prepareApply(ts.store, observe, {
      repo: 'acme/shop', pr: 7, environment: 'staging', kind: 'apply', actor: 'alice', headSha: H2, desired: V2, targets: ['local'], onFailure: 'halt',
      start: { lock: { owner: 'acme/shop#7', pr: 7 }, lease: { holder: 'driver', ttlMs: 60_000 } },
    });
    const plan = prepared.plans[0]!.plan;
    expect(plan.nodes.some((n) => n.target.service === 'worker' && n.kind === 'CreateContainer')).toBe(true);
    // halt: worker's steps never ran
    await journalFailedRollout(ts.store, prepared.applyId, plan.nodes, prepared.fence!, (n) => (n.target.service === 'worker' ? 'skipped' : undefined));
    const a = (await ts.store.getApply(prepared.applyId))!;
    expect(await ts.store.casApplyState(a.id, a.version, { state: 'failed', startedAt: 3, finishedAt: 4 })).toBe(true);
    // What staging shows: replica 1 runs v2, replicas 2 and 3 v1, and there is no worker.
    const mixed: ObservedState = simulate({ ...plan, nodes: plan.nodes.filter((n) => n.group === 'start-first:web:1' || n.kind === 'EnsureImage') }, observed1, 'n');
    expect(mixed.containers.some((c) => c.service === 'worker')).toBe(false);
    const runner = new ApplyRunner({
      store: ts.store,
      executor: () => ({ run: async (id: string) => (await ts.store.getApply(id))!.state, holder: 'reporter', leaseTtlMs: 60_000 }) as unknown as Executor,
      github: async () => gh,
      log: silent,
      observe: async () => mixed,
    });
    await runner.finish(a.id);
    await runner.drain(5_000);
    const [rollback] = await ts.store.listApplies({ repo: 'acme/shop', environment: 'staging', states: ['pending'] });
    expect(rollback).toMatchObject({ kind: 'rollback', actor: 'berth', pr: 7 });
    // The rollback touches web alone (worker stays as it is: absent) and completes.
    const tasks = await ts.store.listTasksForApply(rollback!.id);
    expect(tasks.some((t) => t.resource.startsWith('service:worker'))).toBe(false);
    await complete(rollback!.id);
    return { failedId: a.id, rollbackId: rollback!.id };
  }

  it("a head whose staging state is the rollback's recorded state does not pass staging-first", async () => {
    const { rollbackId } = await failedRolloutRolledBack();
    const digest = desiredDigest(MIXED);
    // The rollback recorded exactly the pushed head's staging state, worker included, although worker never ran.
    expect((await ts.store.getApply(rollbackId))!.desiredDigest).toBe(digest);
    const gate = await requiresGate(ts.store, REPO, { number: 7, headSha: H3 }, PRODUCTION, KNOWN, async () => digest);
    expect(gate.ok).toBe(false);
    expect(!gate.ok && gate.message).toContain('a rollback');
  });

  it('a `/rollback` of this PR to another state does not count as this PR applying it either', async () => {
    // Another PR's state (V1) completed on staging; PR 7 applied V2 (completed), then rolled back to V1 by `/rollback`.
    const { applyId: other } = await prepareApply(ts.store, async () => emptyObserved('shop', 'staging'), { repo: 'acme/shop', pr: 6, environment: 'staging', kind: 'apply', actor: 'bob', headSha: H1, desired: V1, targets: ['local'], onFailure: 'halt' });
    await complete(other);
    const { applyId: mine } = await prepareApply(ts.store, async () => observed1, { repo: 'acme/shop', pr: 7, environment: 'staging', kind: 'apply', actor: 'alice', headSha: H2, desired: V2, targets: ['local'], onFailure: 'halt' });
    await complete(mine);
    const { applyId: back } = await prepareApply(ts.store, async () => observed1, { repo: 'acme/shop', pr: 7, environment: 'staging', kind: 'rollback', actor: 'alice', headSha: H1, desired: V1, targets: ['local'], onFailure: 'halt' });
    await complete(back);
    // PR 7's head now produces V1 on staging: PR 6's changes, which PR 7 never applied.
    const gate = await requiresGate(ts.store, REPO, { number: 7, headSha: H3 }, PRODUCTION, KNOWN, async () => desiredDigest(V1));
    expect(gate.ok).toBe(false);
    // Its own /apply of V2 still counts.
    expect(await requiresGate(ts.store, REPO, { number: 7, headSha: H2 }, PRODUCTION, KNOWN, async () => desiredDigest(V2))).toEqual({ ok: true });
  });

  it("an apply of this PR's state completed earlier still counts after a rollback of the same state", async () => {
    // PR 7: V1 (completed), V2 (completed), `/rollback` to V1 (completed); the head goes back to V1: its own apply of V1 counts.
    const { applyId: a1 } = await prepareApply(ts.store, async () => emptyObserved('shop', 'staging'), { repo: 'acme/shop', pr: 7, environment: 'staging', kind: 'apply', actor: 'alice', headSha: H1, desired: V1, targets: ['local'], onFailure: 'halt' });
    await complete(a1);
    const { applyId: a2 } = await prepareApply(ts.store, async () => observed1, { repo: 'acme/shop', pr: 7, environment: 'staging', kind: 'apply', actor: 'alice', headSha: H2, desired: V2, targets: ['local'], onFailure: 'halt' });
    await complete(a2);
    const { applyId: back } = await prepareApply(ts.store, async () => observed1, { repo: 'acme/shop', pr: 7, environment: 'staging', kind: 'rollback', actor: 'alice', headSha: H1, desired: V1, targets: ['local'], onFailure: 'halt' });
    await complete(back);
    expect(await requiresGate(ts.store, REPO, { number: 7, headSha: H3 }, PRODUCTION, KNOWN, async () => desiredDigest(V1))).toEqual({ ok: true });
  });

  it("apply_on: push: the rollback's recorded state does not count either, nor an apply of the state that a later one failed", async () => {
    await failedRolloutRolledBack();
    // A push (any writer's, no PR) whose staging state is the rollback's: refused.
    const refused = await pushRequiresGate(ts.store, REPO, PRODUCTION, KNOWN, async () => desiredDigest(MIXED));
    expect(refused.ok).toBe(false);
    expect(!refused.ok && refused.message).toContain("this commit's `staging` state");
    // V1 was applied and completed (PR 7's first apply): it counts for a push of V1's state…
    expect(await pushRequiresGate(ts.store, REPO, PRODUCTION, KNOWN, async () => desiredDigest(V1))).toEqual({ ok: true });
    // …until a later apply of that very state fails there: it is the latest apply of that state that must have completed.
    const { applyId } = await prepareApply(ts.store, async () => observed1, { repo: 'acme/shop', pr: 8, environment: 'staging', kind: 'apply', actor: 'bob', headSha: H3, desired: V1, targets: ['local'], onFailure: 'halt' });
    const a = (await ts.store.getApply(applyId))!;
    expect(await ts.store.casApplyState(applyId, a.version, { state: 'failed', startedAt: 9, finishedAt: 10 })).toBe(true);
    expect((await pushRequiresGate(ts.store, REPO, PRODUCTION, KNOWN, async () => desiredDigest(V1))).ok).toBe(false);
    // An environment the config does not list fails closed.
    expect((await pushRequiresGate(ts.store, REPO, { name: 'production', requires: ['qa'] }, KNOWN, async () => desiredDigest(V1))).ok).toBe(false);
  });
});

// ── the attack through the app ───────────────────────────────────────────────

const APP_REPO = 'acme/sec-rollback-staging';
const PROJECT = 't-sec-70';
const [A1, A2, A3] = [sha('a'), sha('b'), sha('c')];
const APP_CONFIG = berthYml(PROJECT, [
  { name: 'staging', compose: ['compose.yml'] },
  { name: 'production', compose: ['compose.yml'], extra: ['requires: [staging]'] },
]);
const webV1 = ['  web:', '    image: berth-test/app:1', ...rollout, '      interval: 1s', '      timeout: 5s', '      retries: 3'];
/** v2: healthy only in the first container that runs it (a claim in a shared volume): replica 1 passes its gate, replica 2 fails it. */
const webV2 = [
  '  web:',
  '    image: berth-test/app:2',
  ...rollout.slice(0, -1),
  '      test: ["CMD-SHELL", "mkdir /claim/first 2>/dev/null && hostname > /claim/first/who; hostname | cmp -s - /claim/first/who"]',
  '      interval: 1s',
  '      timeout: 5s',
  '      retries: 3',
  '    volumes: ["claim:/claim"]',
];
/**
 * The new service: it waits for web, so it is never started when web's rollout fails. It mounts the claim
 * volume, which the state the rollback records keeps (an unused volume is left out of a state).
 */
const worker = ['  worker:', '    image: berth-test/app:2', '    volumes: ["claim:/claim"]', '    depends_on:', '      web:', '        condition: service_healthy'];
const tail = ['volumes:', '  claim: {}', ''];
const tree = (lines: string[]) => ({ '.github/berth.yml': APP_CONFIG, 'compose.yml': ['services:', ...lines, ...tail].join('\n') });

describeDocker('security: a failed staging rollout, rolled back by berth, does not let its new service into production', () => {
  let app: App;
  beforeAll(async () => {
    app = await startApp({ repo: APP_REPO, project: PROJECT, users: { alice: 'write' }, logLevel: 'warn' });
    app.fake.setFiles(APP_REPO, 'main', tree(webV1));
    app.fake.setFiles(APP_REPO, A1, tree(webV1));
    app.fake.setFiles(APP_REPO, A2, tree([...webV2, ...worker]));
    // After the failure: web back at v1, worker kept — the state berth's rollback recorded.
    app.fake.setFiles(APP_REPO, A3, tree([...webV1, ...worker]));
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    for (const env of ['staging', 'production']) await docker.getVolume(`${PROJECT}-${env}_claim`).remove().catch(() => {});
  });
  const settled = async () => {
    while (app.services.runner.inFlight().length) await app.services.runner.drain(120_000);
  };
  const head = async (h: string, action: 'opened' | 'synchronize') => {
    app.fake.setPull(APP_REPO, 1, { headSha: h, author: 'alice' });
    expect(await app.open(1, h, action)).toBe(200);
  };

  it('/apply production at a head equal to the rollback state is refused: its staging apply failed', async () => {
    await head(A1, 'opened');
    await app.say(1, '/apply staging');
    await settled();
    expect(await app.ts.store.latestApply(APP_REPO, 'staging')).toMatchObject({ headSha: A1, state: 'completed' });

    await head(A2, 'synchronize');
    await app.say(1, '/apply staging');
    await settled();
    const [rollback, failed] = await app.ts.store.listApplies({ repo: APP_REPO, environment: 'staging' });
    expect(failed).toMatchObject({ kind: 'apply', headSha: A2, state: 'failed' });
    expect(rollback).toMatchObject({ kind: 'rollback', actor: 'berth', pr: 1, state: 'completed' });
    // worker never ran on staging: created, its start skipped behind web's failure.
    expect((await app.containers()).filter((c) => c.Labels[LABEL.service] === 'worker').map((c) => c.State)).toEqual(['created']);

    await head(A3, 'synchronize');
    // The head's staging state is the one the rollback recorded.
    const plan = (await app.ts.store.latestPlan(APP_REPO, 1, 'staging'))!;
    expect(plan.headSha).toBe(A3);
    expect(rollback!.desiredDigest).toBe(plan.desiredDigest);
    await app.say(1, '/apply production');
    await settled();
    expect(app.lastReply(1)).toContain('### 🚫 Staging first');
    expect(await app.ts.store.listApplies({ repo: APP_REPO, environment: 'production' })).toEqual([]);
    expect((await app.containers()).some((c) => c.Labels[LABEL.environment] === 'production')).toBe(false);
  }, 240_000);
});
