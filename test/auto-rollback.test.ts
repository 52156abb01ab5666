// failure_action: rollback for the whole service (issue 13): the decision a
// failed apply leads to, the state the rollback returns to, the plan cut down
// to the returned services, and the report's account. Pure; the real engine
// and the GitHub path are in test/auto-rollback.e2e.test.ts.
import { describe, expect, it } from 'vitest';
import { decideAutoRollback, returnedState, stoppedRollouts } from '../src/apply/auto-rollback.js';
import type { ApplyPayload } from '../src/apply/executor.js';
import { loadCompose } from '../src/compose/load.js';
import { msg } from '../src/github/messages.js';
import type { DesiredState, ObservedState } from '../src/model/model.js';
import type { Plan } from '../src/plan/plan.js';
import { planToString } from '../src/plan/plan.js';
import { reconcile } from '../src/plan/reconcile.js';
import { restrictPlan } from '../src/plan/restrict.js';
import type { ApplyRow, TaskRow, TaskState } from '../src/store/store.js';
import { emptyObserved, simulate } from './helpers/simulate.js';

const compose = (web: { image: string; action?: string; extra?: string[]; top?: string[] }, api = 'berth-test/app:1') =>
  loadCompose(
    [
      {
        path: 'compose.yml',
        text: [
          'services:',
          '  web:',
          `    image: ${web.image}`,
          '    deploy:',
          '      replicas: 3',
          '      update_config:',
          '        order: start-first',
          '        parallelism: 1',
          `        failure_action: ${web.action ?? 'rollback'}`,
          '    healthcheck:',
          '      test: ["CMD-SHELL", "test -f /VERSION"]',
          ...(web.extra ?? []),
          '  api:',
          `    image: ${api}`,
          ...(web.top ?? []),
          '',
        ].join('\n'),
      },
    ],
    { project: 'shop', environment: 'prod', variables: {} },
  );

const V1 = compose({ image: 'berth-test/app:1' });

/** The observed state after applying `d` from nothing. */
const appliedFrom = (d: DesiredState): ObservedState => simulate(reconcile(d, emptyObserved('shop', 'prod')), emptyObserved('shop', 'prod'));

function row(over: Partial<ApplyRow> & { desired: DesiredState }): ApplyRow {
  const payload: ApplyPayload = { desired: over.desired, onFailure: 'halt' };
  const { desired: _d, ...rest } = over;
  return {
    id: 'a-failed',
    repo: 'acme/shop',
    pr: 7,
    environment: 'prod',
    kind: 'apply',
    actor: 'alice',
    headSha: '2'.repeat(40),
    desiredDigest: 'd',
    planFingerprint: null,
    desiredJson: JSON.stringify(payload),
    state: 'failed',
    version: 1,
    stopRequested: false,
    checkRunId: null,
    commentId: null,
    createdAt: 2_000,
    startedAt: 2_000,
    finishedAt: 3_000,
    error: null,
    ...rest,
  };
}

/**
 * The tasks of a rollout of `plan` in which replica `passed` passed its gate, replica `failing` failed it
 * (and was put back), and every later batch was skipped behind the failed BatchGate.
 */
function tasksOf(plan: Plan, outcome: { passed: number[]; failing: number }): TaskRow[] {
  return plan.nodes.map((n) => {
    const r = n.target.replica;
    let state: TaskState = 'succeeded';
    if (n.kind === 'BatchGate') state = n.target.rollout!.batch >= outcome.failing ? 'failed' : 'succeeded';
    else if (n.group?.startsWith('start-first:web:') && r !== undefined && !outcome.passed.includes(r))
      state = r === outcome.failing ? (n.kind === 'WaitHealthy' ? 'failed' : n.id < plan.nodes.find((x) => x.group === n.group && x.kind === 'WaitHealthy')!.id ? 'succeeded' : 'skipped') : 'skipped';
    return { id: `t${n.id}`, operationId: 'op1', applyId: 'a-failed', nodeId: n.id, kind: n.kind, resource: n.resource, reason: n.reason, deps: n.deps, nodeJson: JSON.stringify(n), state, version: 1, error: state === 'failed' ? 'unhealthy' : null, result: null, startedAt: null, finishedAt: null };
  });
}

describe('automatic rollback of a stopped rollout (issue 13)', () => {
  const observed1 = appliedFrom(V1);
  const earlier = row({ id: 'a-earlier', kind: 'apply', state: 'completed', headSha: '1'.repeat(40), createdAt: 1_000, desired: V1 });

  it('replica 1 updated, replica 2 failed, replica 3 not started: roll web back to the earlier state, nothing else', () => {
    const v2 = compose({ image: 'berth-test/app:2' }, 'berth-test/app:2');
    const plan = reconcile(v2, observed1);
    const decision = decideAutoRollback(row({ desired: v2 }), tasksOf(plan, { passed: [1], failing: 2 }), earlier);
    expect(decision.kind).toBe('rollback');
    if (decision.kind !== 'rollback') return;
    expect(decision.stopped).toEqual([{ service: 'web', updated: [1], restored: [2], notStarted: [3], previousImage: 'docker.io/berth-test/app:1' }]);
    expect(decision.services).toEqual(['web']);
    expect(decision.earlier.id).toBe('a-earlier');
    // web as the earlier apply had it; api (changed by the failed apply, which did not roll it out) stays the failed apply's.
    expect(decision.desired.services.find((s) => s.spec.name === 'web')).toEqual(V1.services.find((s) => s.spec.name === 'web'));
    expect(decision.desired.services.find((s) => s.spec.name === 'api')).toEqual(v2.services.find((s) => s.spec.name === 'api'));
  });

  it('no earlier completed apply: nothing is started, and the reason is given', () => {
    const v2 = compose({ image: 'berth-test/app:2' });
    const plan = reconcile(v2, observed1);
    const decision = decideAutoRollback(row({ desired: v2 }), tasksOf(plan, { passed: [1], failing: 2 }), undefined);
    expect(decision).toMatchObject({ kind: 'no_earlier', why: 'prod has no completed apply before this one' });
    expect(decision.stopped).toEqual([{ service: 'web', updated: [1], restored: [2], notStarted: [3], previousImage: 'docker.io/berth-test/app:1' }]);
    // …and the report says so, with the replicas that run the new version.
    const text = msg.rolloutOutcome('prod', decision.stopped, { kind: 'none', why: (decision as { why: string }).why });
    expect(text).toContain('replica 1 had already passed its gate and runs the new version');
    expect(text).toContain('⚠️ Not rolled back: prod has no completed apply before this one. `web` runs mixed versions until a known good version is applied.');
  });

  it('an earlier apply that did not deploy the service: nothing to return it to', () => {
    const without = loadCompose([{ path: 'compose.yml', text: 'services:\n  api:\n    image: berth-test/app:1\n' }], { project: 'shop', environment: 'prod', variables: {} });
    const v2 = compose({ image: 'berth-test/app:2' });
    const decision = decideAutoRollback(row({ desired: v2 }), tasksOf(reconcile(v2, observed1), { passed: [1], failing: 2 }), row({ id: 'a-old', state: 'completed', desired: without }));
    expect(decision).toMatchObject({ kind: 'no_earlier', why: 'the last completed apply (a-old) did not deploy web' });
  });

  it('failure_action pause or continue: never rolled back by itself', () => {
    for (const action of ['pause', 'continue']) {
      const v2 = compose({ image: 'berth-test/app:2', action });
      const tasks = tasksOf(reconcile(v2, observed1), { passed: [1], failing: 2 });
      expect(stoppedRollouts({ desired: v2, onFailure: 'halt' }, tasks)).toEqual([]);
      expect(decideAutoRollback(row({ desired: v2 }), tasks, earlier).kind).toBe('none');
    }
  });

  it('the first replica failed: every replica already serves the old version, nothing to start', () => {
    const v2 = compose({ image: 'berth-test/app:2' });
    const decision = decideAutoRollback(row({ desired: v2 }), tasksOf(reconcile(v2, observed1), { passed: [], failing: 1 }), earlier);
    expect(decision).toEqual({ kind: 'none', stopped: [{ service: 'web', updated: [], restored: [1], notStarted: [2, 3], previousImage: 'docker.io/berth-test/app:1' }] });
  });

  it('a replica whose step failed after its new container took over counts as updated (it serves the new version)', () => {
    const v2 = compose({ image: 'berth-test/app:2' });
    const plan = reconcile(v2, observed1);
    // Replica 1: everything up to removing the old container succeeded, the removal failed (the new one serves); the rollout stopped there.
    const tasks = tasksOf(plan, { passed: [1], failing: 1 }).map((t) => {
      const n = plan.nodes.find((x) => x.id === t.nodeId)!;
      if (n.group !== 'start-first:web:1') return t;
      if (n.kind === 'RemoveContainer') return { ...t, state: 'failed' as const, error: 'device busy' };
      if (n.kind === 'RenameContainer') return { ...t, state: 'skipped' as const };
      return t;
    });
    const decision = decideAutoRollback(row({ desired: v2 }), tasks, earlier);
    expect(decision.stopped).toEqual([{ service: 'web', updated: [1], restored: [], notStarted: [2, 3], previousImage: 'docker.io/berth-test/app:1' }]);
    expect(decision.kind).toBe('rollback');
  });

  it('a rollback that fails, or an apply that did not fail, starts nothing (no loop)', () => {
    const v2 = compose({ image: 'berth-test/app:2' });
    const tasks = tasksOf(reconcile(v2, observed1), { passed: [1], failing: 2 });
    expect(decideAutoRollback(row({ desired: v2, kind: 'rollback' }), tasks, earlier).kind).toBe('none');
    expect(decideAutoRollback(row({ desired: v2, state: 'stopped' }), tasks, earlier).kind).toBe('none');
  });

  it('the rollback plan touches only the returned service: the updated replica goes back, other services stay as they run', () => {
    // The failed apply also changed api, which it never got to (halted): web:1 runs v2 (with a new volume), web:2 and web:3 v1, api v1.
    const failedDesired = compose({ image: 'berth-test/app:2', extra: ['    volumes: ["claim:/claim"]'], top: ['volumes:', '  claim: {}'] }, 'berth-test/app:2');
    const plan2 = reconcile(failedDesired, observed1);
    const ranNodes = plan2.nodes.filter((n) => n.group === 'start-first:web:1' || n.kind === 'EnsureImage' || n.kind === 'CreateVolume');
    const mixed = simulate({ ...plan2, nodes: ranNodes }, observed1, 'n');
    const back = returnedState(failedDesired, V1, ['web']);
    // Uncut, the plan would carry on with the failed apply's api change; the cut leaves api as it runs.
    const full = reconcile(back, mixed, { rollout: 'rollback' });
    expect(planToString(full)).toContain('service:api:1, CreateContainer');
    const cut = restrictPlan(full, new Set(['web']));
    expect(typeof cut).not.toBe('string');
    const text = planToString(cut as Plan);
    expect(text).toContain('service:web:1, CreateContainer');
    expect(text).not.toMatch(/service:web:[23]/);
    expect(text).not.toContain('service:api');
    // Dense ids, deps inside the cut.
    const nodes = (cut as Plan).nodes;
    expect(nodes.map((n) => n.id)).toEqual(nodes.map((_, i) => i + 1));
    expect(nodes.every((n) => n.deps.every((d) => d >= 1 && d < n.id))).toBe(true);
    // The volume the failed version added is kept (volumes are never removed implicitly), and the earlier spec needs none.
    expect(back.volumes.map((v) => v.spec.name)).toEqual(['claim']);
  });

  it('the recorded state says what runs: a service the failed apply never got to keeps its earlier entry, one it changed keeps the new one', () => {
    const v2 = compose({ image: 'berth-test/app:2' }, 'berth-test/app:2');
    const plan2 = reconcile(v2, observed1);
    const entry = (d: DesiredState, name: string) => d.services.find((s) => s.spec.name === name);
    // Halted before api: api still runs v1.
    const notApi = simulate({ ...plan2, nodes: plan2.nodes.filter((n) => n.group === 'start-first:web:1' || n.kind === 'EnsureImage') }, observed1, 'n');
    const a = returnedState(v2, V1, ['web'], [notApi]);
    expect(entry(a, 'web')).toEqual(entry(V1, 'web'));
    expect(entry(a, 'api')).toEqual(entry(V1, 'api'));
    // api was updated: it keeps the failed apply's entry (the rollback does not touch it).
    const withApi = simulate({ ...plan2, nodes: plan2.nodes.filter((n) => n.group === 'start-first:web:1' || n.kind === 'EnsureImage' || n.target.service === 'api') }, observed1, 'n');
    const b = returnedState(v2, V1, ['web'], [withApi]);
    expect(entry(b, 'web')).toEqual(entry(V1, 'web'));
    expect(entry(b, 'api')).toEqual(entry(v2, 'api'));
    // A service the failed apply was to remove, still running, stays in the recorded state.
    const withoutApi: DesiredState = { ...v2, services: v2.services.filter((s) => s.spec.name !== 'api') };
    expect(entry(returnedState(withoutApi, V1, ['web'], [notApi]), 'api')).toEqual(entry(V1, 'api'));
    expect(entry(returnedState(withoutApi, V1, ['web'], [withApi]), 'api')).toBeUndefined();
  });

  it('a service whose plan needs another change first (its network replaced) is refused, not cut', () => {
    const v2 = compose({ image: 'berth-test/app:2' });
    const observed = appliedFrom(v2);
    // The desired network differs from the observed one: it is replaced (removed once its containers left, then created).
    const changedNet = { ...v2, networks: v2.networks.map((n) => ({ ...n, configHash: 'changed', spec: { ...n.spec, internal: true } })) };
    const full = reconcile(changedNet, observed);
    expect(full.nodes.some((n) => n.kind === 'RemoveNetwork')).toBe(true);
    const cut = restrictPlan(full, new Set(['web']));
    expect(typeof cut).toBe('string');
    expect(cut).toContain('needs');
  });
});
