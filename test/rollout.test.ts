// deploy.update_config / rollback_config: parsed with compose's defaults,
// refused where two containers of a replica cannot coexist, never part of the
// config hash, and planned as batches (the golden plans 25-27 show the shapes).
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../src/compose/load.js';
import type { DesiredState } from '../src/model/model.js';
import { DRAIN_MS, planToString } from '../src/plan/plan.js';
import { reconcile } from '../src/plan/reconcile.js';
import { renderPlanMarkdown } from '../src/plan/render.js';
import { errorOf } from './helpers/errors.js';
import { emptyObserved, simulate } from './helpers/simulate.js';

const load = (service: string, files: string[] = []): DesiredState =>
  loadCompose(
    [
      { path: 'compose.yml', text: `services:\n  web:\n${service.replace(/^/gm, '    ')}\n` },
      ...files.map((text, i) => ({ path: `override${i}.yml`, text })),
    ],
    { project: 'shop', environment: 'prod', variables: {} },
  );
const web = (d: DesiredState) => d.services.find((s) => s.spec.name === 'web')!;

describe('deploy.update_config', () => {
  it('is parsed with compose defaults for what it leaves out, and rollback_config too', () => {
    const d = load('image: nginx\ndeploy:\n  update_config:\n    order: start-first\n    delay: 10s\n  rollback_config:\n    parallelism: 0');
    expect(web(d).spec.rollout).toEqual({
      update: { parallelism: 1, delayMs: 10_000, order: 'start-first', failureAction: 'pause', monitorMs: 5000, maxFailureRatio: 0 },
      rollback: { parallelism: 0, delayMs: 0, order: 'stop-first', failureAction: 'pause', monitorMs: 5000, maxFailureRatio: 0 },
    });
  });

  it('merges key by key across files', () => {
    const d = load('image: nginx\ndeploy:\n  update_config:\n    order: start-first\n    parallelism: 2', ['services:\n  web:\n    deploy:\n      update_config:\n        failure_action: rollback\n']);
    expect(web(d).spec.rollout?.update).toMatchObject({ order: 'start-first', parallelism: 2, failureAction: 'rollback' });
  });

  it('never changes the config hash (a new rollout setting recreates nothing), but does change the desired digest', () => {
    const plain = load('image: nginx');
    const rolled = load('image: nginx\ndeploy:\n  update_config:\n    order: start-first');
    expect(web(rolled).configHash).toBe(web(plain).configHash);
    const host = simulate(reconcile(plain, emptyObserved('shop', 'prod')), emptyObserved('shop', 'prod'));
    expect(planToString(reconcile(rolled, host))).toBe('');
    expect(reconcile(rolled, host).desiredDigest).not.toBe(reconcile(plain, host).desiredDigest);
  });

  it('bad values are located errors', () => {
    const e = errorOf(() => load('image: nginx\ndeploy:\n  update_config:\n    order: blue-green'));
    expect(e.message).toMatch(/^compose\.yml:6: services\.web\.deploy\.update_config\.order: deploy\.update_config\.order must be stop-first or start-first, not "blue-green"/);
    expect(errorOf(() => load('image: nginx\ndeploy:\n  update_config:\n    failure_action: retry')).line).toBe(6);
    expect(errorOf(() => load('image: nginx\ndeploy:\n  update_config:\n    max_failure_ratio: 2')).problem).toMatch(/max_failure_ratio must be a number from 0 to 1/);
    expect(errorOf(() => load('image: nginx\ndeploy:\n  update_config:\n    paralelism: 2')).hint).toMatch(/parallelism/);
    expect(errorOf(() => load('image: nginx\ndeploy:\n  rollback_config:\n    delay: soon')).code).toBe('bad_duration');
  });

  it('start-first with a fixed host port is refused at plan time, pointing at order: and explaining the choices', () => {
    const e = errorOf(() => load('image: nginx\nports: ["8080:80"]\ndeploy:\n  update_config:\n    order: start-first'));
    expect(e.code).toBe('start_first_conflict');
    expect(e.file).toBe('compose.yml');
    expect(e.line).toBe(7);
    expect(e.problem).toBe('service web: deploy.update_config.order is start-first, but the service publishes the fixed host port 8080 (compose.yml:4), which the old and the new container cannot hold at the same time');
    expect(e.hint).toMatch(/reverse proxy on its network.*or use order: stop-first/);
    // An ephemeral host port is fine: each container gets its own.
    expect(web(load('image: nginx\nports: ["80"]\ndeploy:\n  update_config:\n    order: start-first')).spec.rollout?.update?.order).toBe('start-first');
    expect(errorOf(() => load('image: nginx\nnetwork_mode: host\ndeploy:\n  rollback_config:\n    order: start-first')).problem).toMatch(/rollback_config\.order is start-first, but the service uses network_mode: host/);
    // Two containers with one MAC address on one network, side by side, would each lose frames to the other.
    expect(errorOf(() => load('image: nginx\nnetworks:\n  default: {mac_address: 02:42:ac:11:00:03}\ndeploy:\n  update_config:\n    order: start-first')).problem).toMatch(/has the fixed MAC address 02:42:ac:11:00:03 on network default \(compose\.yml:5\)/);
    expect(errorOf(() => load('image: nginx\nmac_address: 02:42:ac:11:00:02\ndeploy:\n  update_config:\n    order: start-first')).problem).toBe(
      'service web: deploy.update_config.order is start-first, but the service has the fixed MAC address 02:42:ac:11:00:02 (compose.yml:4), which the old and the new container cannot hold at the same time',
    );
  });

  it('start-first: the old container leaves DNS, connects again at once outside it (Docker hands it back its address), drains, then stops', () => {
    const v1 = load('image: berth-test/app:1\ndeploy:\n  replicas: 1');
    const host = simulate(reconcile(v1, emptyObserved('shop', 'prod')), emptyObserved('shop', 'prod'));
    const plan = reconcile(load('image: berth-test/app:2\ndeploy:\n  replicas: 1\n  update_config:\n    order: start-first'), host);
    const old = host.containers[0]!;
    const byKey = new Map(plan.nodes.map((n) => [n.id, n]));
    const leave = plan.nodes.find((n) => n.kind === 'DisconnectNetwork' && n.target.containerId === old.id)!;
    const back = plan.nodes.find((n) => n.kind === 'ConnectNetwork' && n.target.containerId === old.id)!;
    const stop = plan.nodes.find((n) => n.kind === 'StopContainer')!;
    const join = plan.nodes.find((n) => n.kind === 'ConnectNetwork' && n.reason === 'joins DNS')!;
    // The new container is in the DNS name before the old one leaves it; the old one comes straight back, without the aliases.
    expect(leave.deps).toEqual([join.id]);
    expect(back.deps).toEqual([leave.id]);
    expect(back.target).toMatchObject({ containerId: old.id, network: 'default', outsideDns: true });
    expect(back.reason).toBe(`rejoins outside DNS, drains ${DRAIN_MS / 1000} s`);
    // It drains (longer than TCP's first SYN retransmission) before it is stopped; the stop waits for every network's return.
    expect(stop.deps).toEqual([back.id]);
    expect(stop.target.drainMs).toBe(DRAIN_MS);
    expect(DRAIN_MS).toBeGreaterThan(1000);
    expect([...byKey.values()].filter((n) => n.target.drainMs !== undefined)).toEqual([stop]);
    // Applying the plan converges: the old container is gone, the new one has its name.
    const after = simulate(plan, host);
    expect(after.containers.map((c) => [c.name, c.image])).toEqual([['shop-prod-web-1', 'docker.io/berth-test/app:2']]);
  });

  it('the plan comment shows the rollout: gates, batches and order', () => {
    const v1 = load('image: berth-test/app:1\ndeploy:\n  replicas: 2');
    const host = simulate(reconcile(v1, emptyObserved('shop', 'prod')), emptyObserved('shop', 'prod'));
    const plan = reconcile(load('image: berth-test/app:2\ndeploy:\n  replicas: 2\n  update_config:\n    order: start-first\n    delay: 1s'), host);
    const md = renderPlanMarkdown(plan, { environment: 'prod' });
    expect(md).toContain('service:web, BatchGate, rollout batch 1/2 (start-first; failure_action pause; delay 1s)');
    expect(md).toContain('WaitHealthy, rollout gate (running 5s) [start-first:web:1]');
    expect(md).toContain('service <code>web</code> rolls out start-first in 2 batches of 1');
  });

  it('a /rollback rolls out with rollback_config (update_config when there is none)', () => {
    const v1 = load('image: berth-test/app:1\ndeploy:\n  replicas: 2');
    const host = simulate(reconcile(v1, emptyObserved('shop', 'prod')), emptyObserved('shop', 'prod'));
    const back = load('image: berth-test/app:2\ndeploy:\n  replicas: 2\n  update_config:\n    order: start-first\n  rollback_config:\n    parallelism: 0\n    failure_action: continue');
    const gates = (p: ReturnType<typeof reconcile>) => p.nodes.filter((n) => n.kind === 'BatchGate').length;
    const starts = (p: ReturnType<typeof reconcile>) => p.nodes.filter((n) => n.group?.startsWith('start-first:')).length;
    expect(gates(reconcile(back, host))).toBe(1);
    expect(starts(reconcile(back, host))).toBeGreaterThan(0);
    const rolled = reconcile(back, host, { rollout: 'rollback' });
    expect(gates(rolled)).toBe(0);
    expect(starts(rolled)).toBe(0);
    expect(rolled.nodes.filter((n) => n.reason === 'rollout gate')).toHaveLength(2);
    expect(renderPlanMarkdown(rolled, { environment: 'prod' })).toContain('rolls out stop-first in 1 batch of 2');
    // Only update_config: a rollback uses it.
    const onlyUpdate = load('image: berth-test/app:2\ndeploy:\n  replicas: 2\n  update_config:\n    order: start-first');
    expect(starts(reconcile(onlyUpdate, host, { rollout: 'rollback' }))).toBeGreaterThan(0);
  });

  it('without update_config every replica is replaced at once, stop-first (compose), and no gate is planned', () => {
    const v1 = load('image: berth-test/app:1\ndeploy:\n  replicas: 3');
    const host = simulate(reconcile(v1, emptyObserved('shop', 'prod')), emptyObserved('shop', 'prod'));
    const plan = reconcile(load('image: berth-test/app:2\ndeploy:\n  replicas: 3'), host);
    expect(plan.nodes.filter((n) => n.kind === 'BatchGate' || n.kind === 'WaitHealthy')).toEqual([]);
    expect(plan.nodes.filter((n) => n.kind === 'CreateContainer').every((n) => n.deps.length === 1)).toBe(true);
  });
});
