// The automatic rollback where an apply's end is reported (issue 13): the
// runner that claims a failed apply's report decides, starts the follow-up
// rollback under the failed apply's lock, and says in the failed apply's
// outcome what serves which version; with no earlier completed apply it says
// that instead, and with failure_action pause it says nothing and starts
// nothing. A real store (SQLite); Docker is stood in for by simulated states.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Executor } from '../src/apply/executor.js';
import { parsePayload } from '../src/apply/executor.js';
import { prepareApply, type Observer } from '../src/apply/prepare-apply.js';
import { ApplyRunner } from '../src/apply/supervisor.js';
import { loadCompose } from '../src/compose/load.js';
import type { CheckRunUpdate, GitHubPort } from '../src/github/github.js';
import type { DesiredState, ObservedState } from '../src/model/model.js';
import { reconcile } from '../src/plan/reconcile.js';
import { emptyObserved, simulate } from './helpers/simulate.js';
import { sqliteTestStore, type TestStore } from './helpers/stores.js';
import { journalFailedRollout } from './helpers/failed-rollout.js';

const web = (image: string, action = 'rollback') =>
  loadCompose(
    [
      {
        path: 'compose.yml',
        text: ['services:', '  web:', `    image: ${image}`, '    deploy:', '      replicas: 3', '      update_config:', '        order: start-first', '        parallelism: 1', `        failure_action: ${action}`, '    healthcheck:', '      test: ["CMD-SHELL", "test -f /VERSION"]', ''].join('\n'),
      },
    ],
    { project: 'shop', environment: 'prod', variables: {} },
  );
const V1 = web('berth-test/app:1');
const observed1 = simulate(reconcile(V1, emptyObserved('shop', 'prod')), emptyObserved('shop', 'prod'));
const silent = { info() {}, warn() {}, error() {} };

describe('the runner starts the rollback of a stopped rollout', () => {
  let ts: TestStore;
  const comments: string[] = [];
  const checkWrites: CheckRunUpdate[] = [];
  const gh = {
    async createComment(_r: unknown, _pr: number, body: string) {
      comments.push(body);
      return comments.length;
    },
    async createCheckRun() {
      return 99;
    },
    async updateCheckRun(_r: unknown, _id: number, u: CheckRunUpdate) {
      checkWrites.push(u);
    },
    async getPull() {
      return { state: 'open' };
    },
  } as unknown as GitHubPort;

  beforeEach(async () => {
    ts = await sqliteTestStore();
    comments.length = 0;
    checkWrites.length = 0;
  });
  afterEach(() => ts.dispose());

  /** An earlier completed apply of V1 (unless `none`), then a failed rollout of `v2` in which replica 1 passed and replica 2 failed. */
  async function failedRollout(v2: DesiredState, earlier = true, finish = true) {
    const observe: Observer = async () => observed1;
    if (earlier) {
      const { applyId } = await prepareApply(ts.store, async () => emptyObserved('shop', 'prod'), { repo: 'acme/shop', pr: 6, environment: 'prod', kind: 'apply', actor: 'alice', headSha: '1'.repeat(40), desired: V1, targets: ['local'], onFailure: 'halt' });
      const a = (await ts.store.getApply(applyId))!;
      expect(await ts.store.casApplyState(applyId, a.version, { state: 'completed', startedAt: 1, finishedAt: 2 })).toBe(true);
      expect(await ts.store.markReported(applyId)).toBe(true);
    }
    const prepared = await prepareApply(ts.store, observe, {
      repo: 'acme/shop', pr: 7, environment: 'prod', kind: 'apply', actor: 'alice', headSha: '2'.repeat(40), desired: v2, targets: ['local'], onFailure: 'halt',
      start: { lock: { owner: 'acme/shop#7', pr: 7 }, lease: { holder: 'driver', ttlMs: 60_000 } },
    });
    const plan = prepared.plans[0]!.plan;
    await journalFailedRollout(ts.store, prepared.applyId, plan.nodes, prepared.fence!);
    await ts.store.setApplyCheckRun(prepared.applyId, 42);
    const a = (await ts.store.getApply(prepared.applyId))!;
    expect(await ts.store.casApplyState(a.id, a.version, { state: 'failed', startedAt: 3, finishedAt: 4 })).toBe(true);
    // What the targets show now: replica 1 runs v2, replicas 2 and 3 v1.
    const mixed: ObservedState = simulate({ ...plan, nodes: plan.nodes.filter((n) => n.group === 'start-first:web:1' || n.kind === 'EnsureImage') }, observed1, 'n');
    const makeRunner = (store = ts.store, holder = 'reporter') => new ApplyRunner({
      store,
      // The rollback is only started here; nothing drives it (its state stays pending).
      executor: () => ({ run: async (id: string) => (await ts.store.getApply(id))!.state, holder, leaseTtlMs: 60_000 }) as unknown as Executor,
      github: async () => gh,
      log: silent,
      observe: async () => mixed,
    });
    const runner = makeRunner();
    if (finish) await runner.finish(a.id);
    return { failedId: a.id, runner, makeRunner };
  }

  it('starts a rollback of web alone, under the PR lock, linked to the failed apply; the outcome names it', async () => {
    const { failedId, runner } = await failedRollout(web('berth-test/app:2'));
    await runner.drain(5_000);
    const [rollback] = await ts.store.listApplies({ repo: 'acme/shop', environment: 'prod', states: ['pending'] });
    expect(rollback).toMatchObject({ kind: 'rollback', actor: 'berth', pr: 7, headSha: '1'.repeat(40), checkRunId: 99 });
    const payload = parsePayload(rollback!.desiredJson);
    expect(payload).toMatchObject({ rollbackOf: failedId, services: ['web'], onFailure: 'halt' });
    expect(payload.desired.services[0]).toEqual(V1.services[0]);
    const tasks = await ts.store.listTasksForApply(rollback!.id);
    expect(new Set(tasks.map((t) => t.resource).filter((r) => r.startsWith('service:')))).toEqual(new Set(['service:web:1']));
    // The lock passed from the failed apply to its rollback.
    expect(await ts.store.getLock('acme/shop', 'prod')).toMatchObject({ owner: 'acme/shop#7', applyId: rollback!.id });
    const outcome = comments.find((c) => c.includes('❌ Apply to `prod` failed'))!;
    expect(outcome).toContain(`⏪ berth started rollback apply \`${rollback!.id}\` by itself to return \`web\``);
    expect(checkWrites.find((w) => w.conclusion === 'failure')!.summary).toContain('**Rollout stopped**');
    // Its own start report comes after the failed apply's outcome.
    expect(comments.findIndex((c) => c.includes('⏪ Rolling back `web` on `prod` by itself'))).toBeGreaterThan(comments.indexOf(outcome));
  });

  it('a crash after the rollback started and before the report was claimed: whoever reports next names it, and starts no second one', async () => {
    const { failedId, makeRunner } = await failedRollout(web('berth-test/app:2'), true, false);
    // The first reporter dies at its claim (after starting the rollback).
    const crashing = new Proxy(ts.store, { get: (t, k) => (k === 'claimReport' ? async () => { throw new Error('process died'); } : Reflect.get(t, k)) });
    await expect(makeRunner(crashing).finish(failedId)).rejects.toThrow('process died');
    const started = await ts.store.listApplies({ repo: 'acme/shop', environment: 'prod', states: ['pending'] });
    expect(started).toHaveLength(1);
    expect(comments.some((c) => c.includes('❌ Apply to `prod` failed'))).toBe(false);
    // The next one (another replica, or recovery) reports the failed apply with that rollback, and starts nothing more.
    await makeRunner().finish(failedId);
    expect(await ts.store.listApplies({ repo: 'acme/shop', environment: 'prod', states: ['pending'] })).toEqual(started);
    const outcome = comments.find((c) => c.includes('❌ Apply to `prod` failed'))!;
    expect(outcome).toContain(`⏪ berth started rollback apply \`${started[0]!.id}\` by itself`);
    // A third caller finds the report claimed: nothing more is posted.
    const posted = comments.length;
    await makeRunner().finish(failedId);
    expect(comments).toHaveLength(posted);
    expect(await ts.store.listApplies({ repo: 'acme/shop', environment: 'prod' })).toHaveLength(3);
  });

  it('a crash after the failed apply ended, before its reporter ran at all: two recovering replicas start one rollback and report once', async () => {
    const { failedId, makeRunner } = await failedRollout(web('berth-test/app:2'), true, false);
    // The driver died: its lease lapsed (released here rather than waited out).
    expect(await ts.store.releaseLease(`apply:${failedId}`, 'driver')).toBe(true);
    expect((await ts.store.listUnreportedApplies()).map((a) => a.id)).toEqual([failedId]);
    const one = makeRunner(ts.store, 'replica-1');
    const two = makeRunner(ts.store, 'replica-2');
    const [a, b] = await Promise.all([one.recoverReports(), two.recoverReports()]);
    expect([...a, ...b]).toEqual([failedId]);
    await Promise.all([one.drain(5_000), two.drain(5_000)]);
    const started = await ts.store.listApplies({ repo: 'acme/shop', environment: 'prod', states: ['pending'] });
    expect(started).toHaveLength(1);
    expect(started[0]).toMatchObject({ kind: 'rollback', actor: 'berth' });
    expect(parsePayload(started[0]!.desiredJson).rollbackOf).toBe(failedId);
    expect(await ts.store.getLock('acme/shop', 'prod')).toMatchObject({ applyId: started[0]!.id });
    const outcomes = comments.filter((c) => c.includes('❌ Apply to `prod` failed'));
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]).toContain(`⏪ berth started rollback apply \`${started[0]!.id}\` by itself`);
    expect(comments.filter((c) => c.includes('⏪ Rolling back `web` on `prod` by itself'))).toHaveLength(1);
    expect(checkWrites.filter((w) => w.conclusion === 'failure')).toHaveLength(1);
    // Later passes find nothing owed: no second rollback, no second report.
    const posted = comments.length;
    expect(await Promise.all([one.recoverReports(), two.recoverReports()])).toEqual([[], []]);
    expect(comments).toHaveLength(posted);
    expect(await ts.store.listApplies({ repo: 'acme/shop', environment: 'prod' })).toHaveLength(3);
  });

  it('a rollback owed after a crash, but a later apply came first: none is started, and the outcome says why', async () => {
    const { failedId, makeRunner } = await failedRollout(web('berth-test/app:2'), true, false);
    expect(await ts.store.releaseLease(`apply:${failedId}`, 'driver')).toBe(true);
    // While nobody reported the failed apply, the environment moved on.
    const { applyId: later } = await prepareApply(ts.store, async () => observed1, { repo: 'acme/shop', pr: 7, environment: 'prod', kind: 'apply', actor: 'alice', headSha: '3'.repeat(40), desired: web('berth-test/app:3'), targets: ['local'], onFailure: 'halt' });
    expect(await makeRunner().recoverReports()).toEqual([failedId]);
    expect(await ts.store.listApplies({ repo: 'acme/shop', environment: 'prod', states: ['pending'] })).toEqual([expect.objectContaining({ id: later, kind: 'apply' })]);
    const outcome = comments.find((c) => c.includes('❌ Apply to `prod` failed'))!;
    expect(outcome).toContain(`⚠️ Not rolled back: apply ${later} was started on prod after this one`);
  });

  it('no earlier completed apply: nothing starts, and the failed apply says the service runs mixed versions', async () => {
    await failedRollout(web('berth-test/app:2'), false);
    expect(await ts.store.listApplies({ repo: 'acme/shop', environment: 'prod' })).toHaveLength(1);
    const outcome = comments.find((c) => c.includes('❌ Apply to `prod` failed'))!;
    expect(outcome).toContain('replica 1 had already passed its gate and runs the new version');
    expect(outcome).toContain('⚠️ Not rolled back: prod has no completed apply before this one. `web` runs mixed versions until a known good version is applied.');
    expect(await ts.store.getLock('acme/shop', 'prod')).toMatchObject({ owner: 'acme/shop#7', applyId: null });
  });

  it('failure_action pause: nothing starts and nothing is added to the outcome', async () => {
    await failedRollout(web('berth-test/app:2', 'pause'));
    expect(await ts.store.listApplies({ repo: 'acme/shop', environment: 'prod', states: ['pending'] })).toEqual([]);
    const outcome = comments.find((c) => c.includes('❌ Apply to `prod` failed'))!;
    expect(outcome).not.toContain('Rollout stopped');
  });
});
