import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { DependsOnCondition, DesiredState, ObservedState, ServiceSpec } from '../src/model/model.js';
import { planToString } from '../src/plan/plan.js';
import { reconcile } from '../src/plan/reconcile.js';
import { emptyObserved, simulate } from './helpers/simulate.js';
import { net, spec, state, vol } from './helpers/specs.js';

const SERVICE_NAMES = ['api', 'cache', 'db', 'web', 'worker'];

/** A random desired state: services depend only on services earlier in the list, so there is no cycle. */
const desiredArb: fc.Arbitrary<DesiredState> = fc
  .record({
    count: fc.integer({ min: 0, max: SERVICE_NAMES.length }),
    perService: fc.array(
      fc.record({
        image: fc.constantFrom('docker.io/berth-test/app:1', 'docker.io/berth-test/app:2'),
        replicas: fc.integer({ min: 0, max: 3 }),
        env: fc.constantFrom<Record<string, string>>({}, { A: '1' }, { A: '2', B: 'x' }),
        nets: fc.constantFrom(['default'], ['back'], ['back', 'default']),
        vol: fc.boolean(),
        deps: fc.array(fc.record({ idx: fc.nat(), cond: fc.constantFrom<DependsOnCondition>('service_started', 'service_healthy') }), { maxLength: 2 }),
        health: fc.boolean(),
      }),
      { minLength: SERVICE_NAMES.length, maxLength: SERVICE_NAMES.length },
    ),
    backInternal: fc.boolean(),
  })
  .map(({ count, perService, backInternal }) => {
    const services: ServiceSpec[] = [];
    for (let i = 0; i < count; i++) {
      const p = perService[i];
      const deps = new Map<string, DependsOnCondition>();
      if (i > 0) for (const d of p.deps) deps.set(SERVICE_NAMES[d.idx % i], d.cond);
      services.push(
        spec(SERVICE_NAMES[i], {
          image: p.image,
          replicas: p.replicas,
          environment: p.env,
          networks: [...p.nets],
          volumes: p.vol ? [{ type: 'volume', source: 'data', target: '/data', readOnly: false }] : [],
          dependsOn: [...deps].sort().map(([service, condition]) => ({ service, condition })),
          ...(p.health ? { healthcheck: { test: ['CMD', 'true'], intervalMs: 1000, timeoutMs: 1000, retries: 3, startPeriodMs: 0 } } : {}),
        }),
      );
    }
    return state(services, [net('back', { internal: backInternal }), net('default')], [vol('data')]);
  });

/** Hand-made disturbances after an apply: what people and crashes do to a host. */
const mutationArb = fc.array(
  fc.record({ op: fc.constantFrom('stop', 'remove', 'disconnect', 'create-state'), idx: fc.nat() }),
  { maxLength: 4 },
);

function disturb(o: ObservedState, muts: { op: string; idx: number }[]): ObservedState {
  const out = structuredClone(o);
  for (const m of muts) {
    if (!out.containers.length) break;
    const c = out.containers[m.idx % out.containers.length];
    if (m.op === 'stop') c.state = 'exited';
    else if (m.op === 'create-state') c.state = 'created';
    else if (m.op === 'disconnect') c.networks = c.networks.slice(1);
    else out.containers = out.containers.filter((x) => x !== c);
  }
  return out;
}

function shuffled<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let s = seed || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** The host after an apply holds exactly the desired replicas, running, current, on their networks. */
function expectHostMatches(d: DesiredState, host: ObservedState) {
  const want = d.services.flatMap((s) =>
    Array.from({ length: s.spec.replicas }, (_, i) => `${d.project}-${d.environment}-${s.spec.name}-${i + 1} ${s.configHash} running ${[...s.spec.networks].sort().join(',')}`),
  );
  const have = host.containers.map((c) => `${c.name} ${c.configHash} ${c.state} ${[...c.networks].sort().join(',')}`);
  expect(have.sort()).toEqual(want.sort());
  for (const n of d.networks) expect(host.networks.filter((x) => x.name === n.spec.name).map((x) => x.configHash)).toEqual([n.configHash]);
}

describe('reconcile properties', () => {
  it('converges: planning again after applying the plan yields an empty plan', () => {
    fc.assert(
      fc.property(desiredArb, desiredArb, fc.boolean(), mutationArb, (before, other, same, muts) => {
        // Half the runs keep the desired state and only disturb the host: drift repair must converge too.
        const after = same ? before : other;
        const host = disturb(simulate(reconcile(before, emptyObserved('shop', 'staging')), emptyObserved('shop', 'staging'), 'a'), muts);
        const plan = reconcile(after, host);
        const applied = simulate(plan, host, 'b');
        const again = reconcile(after, applied);
        expect(planToString(again)).toBe('');
        expectHostMatches(after, applied);
        // Every dependency points backwards: ids are a topological order.
        for (const node of plan.nodes) for (const d of node.deps) expect(d).toBeLessThan(node.id);
      }),
      { numRuns: 400 },
    );
  });

  it('is deterministic across runs and input orderings', () => {
    fc.assert(
      fc.property(desiredArb, desiredArb, mutationArb, fc.integer({ min: 1, max: 1e6 }), (before, after, muts, seed) => {
        const host = disturb(simulate(reconcile(before, emptyObserved('shop', 'staging')), emptyObserved('shop', 'staging'), 'a'), muts);
        const text = planToString(reconcile(after, host));
        const reordered: DesiredState = { ...after, services: shuffled(after.services, seed), networks: shuffled(after.networks, seed + 1) };
        const hostReordered: ObservedState = { ...host, containers: shuffled(host.containers, seed + 2), networks: shuffled(host.networks, seed + 3) };
        const again = reconcile(reordered, hostReordered);
        expect(planToString(again)).toBe(text);
        expect(again.fingerprint).toBe(reconcile(after, host).fingerprint);
      }),
      { numRuns: 200 },
    );
  });

  it('changes the fingerprint when the host moves', () => {
    const d = state([spec('web')]);
    const host = simulate(reconcile(d, emptyObserved('shop', 'staging')), emptyObserved('shop', 'staging'));
    const moved = structuredClone(host);
    moved.containers[0].state = 'exited';
    expect(reconcile(d, host).fingerprint).not.toBe(reconcile(d, moved).fingerprint);
    expect(reconcile(d, host).desiredDigest).toBe(reconcile(d, moved).desiredDigest);
  });
});
