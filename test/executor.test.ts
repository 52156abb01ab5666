// The executor against an in-memory engine: ordering, parallelism, failure
// propagation, stop, halt/continue, lanes, recovery and CAS races. The same
// paths against the real dockerd live in executor.docker.test.ts.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Observer } from '../src/apply/prepare-apply.js';
import { prepareApply, StalePlanError, planTargets, expectedOf } from '../src/apply/prepare-apply.js';
import { Executor } from '../src/apply/executor.js';
import type { OnFailure } from '../src/apply/executor.js';
import { Lanes } from '../src/apply/lanes.js';
import type { DesiredState } from '../src/model/model.js';
import type { Store, TaskRow, TaskUpdate } from '../src/store/store.js';
import { FakeEngine, observeFake } from './helpers/fake-engine.js';
import type { FakeEngineOptions } from './helpers/fake-engine.js';
import { describeMysql, describePostgres } from './helpers/env.js';
import { spec, state } from './helpers/specs.js';
import { mysqlTestStore, postgresTestStore, sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

/** Observes the FakeEngine of each target the way observe() reads a real host. */
function fakeObserver(engines: Map<string, FakeEngine>): Observer {
  // The fake does not keep network/volume hashes: report what the desired state would have made.
  return async (target, project, environment) => observeFake(engines.get(target)!, project, environment, { imageOf: () => 'docker.io/berth-test/app:1', hashOf: (n) => hashes.get(n) ?? '' });
}

const hashes = new Map<string, string>();
function rememberHashes(d: DesiredState) {
  for (const n of d.networks) hashes.set(`${d.project}-${d.environment}_${n.spec.name}`, n.configHash);
  for (const v of d.volumes) hashes.set(`${d.project}-${d.environment}_${v.spec.name}`, v.configHash);
}

interface Harness {
  engines: Map<string, FakeEngine>;
  executor: Executor;
  observe: Observer;
  apply(desired: DesiredState, o?: { targets?: string[]; onFailure?: OnFailure; parallelism?: number }): Promise<string>;
  tasks(applyId: string): Promise<TaskRow[]>;
}

function harness(store: Store, engineOpts: Record<string, FakeEngineOptions> = {}, lanes = new Lanes()): Harness {
  const engines = new Map<string, FakeEngine>();
  const engine = (t: string) => {
    let e = engines.get(t);
    if (!e) engines.set(t, (e = new FakeEngine(engineOpts[t] ?? engineOpts['*'] ?? {})));
    return e;
  };
  for (const t of ['local', 'edge']) engine(t);
  const executor = new Executor({ store, engine, lanes, stopPollMs: 0, healthPollMs: 5 });
  const observe = fakeObserver(engines);
  return {
    engines,
    executor,
    observe,
    async apply(desired, o = {}) {
      rememberHashes(desired);
      const { applyId } = await prepareApply(store, observe, {
        repo: 'acme/shop',
        pr: 1,
        environment: desired.environment,
        kind: 'apply',
        actor: 'alice',
        headSha: 'abc',
        desired,
        targets: o.targets ?? ['local'],
        onFailure: o.onFailure ?? 'halt',
        ...(o.parallelism ? { parallelism: o.parallelism } : {}),
      });
      return applyId;
    },
    tasks: (id) => store.listTasksForApply(id),
  };
}

/** web ← api ← db chain plus independent workers: the shape every test below needs. */
function stack(image = 'docker.io/berth-test/app:1', workers = 4): DesiredState {
  const services = [
    spec('db', { image, healthcheck: { test: ['CMD', 'true'], intervalMs: 10, timeoutMs: 10, retries: 1, startPeriodMs: 0 } }),
    spec('api', { image, dependsOn: [{ service: 'db', condition: 'service_healthy' }] }),
    spec('web', { image, dependsOn: [{ service: 'api', condition: 'service_started' }] }),
  ];
  for (let i = 0; i < workers; i++) services.push(spec(`worker${i}`, { image }));
  return state(services);
}

const svc = (d: DesiredState, name: string) => d.services.find((s) => s.spec.name === name)!;
const byResource = (tasks: TaskRow[]) => Object.fromEntries(tasks.map((t) => [`${t.kind} ${t.resource}`, t]));

function backendSuite(name: string, open: () => Promise<TestStore>, d: (name: string, fn: () => void) => void = describe) {
  d(`executor on ${name}`, () => {
    let ts: TestStore;
    beforeEach(async () => {
      ts = await open();
    });
    afterEach(async () => {
      await ts.dispose();
    });

    it('converges from an empty host and the next plan is empty', async () => {
      const h = harness(ts.store);
      const id = await h.apply(stack());
      expect(await h.executor.run(id)).toBe('completed');
      const tasks = await h.tasks(id);
      expect(tasks.every((t) => t.state === 'succeeded')).toBe(true);
      expect((await ts.store.listOperations(id))[0]!.state).toBe('completed');
      const [again] = await planTargets(stack(), ['local'], h.observe);
      expect(again!.plan.nodes).toEqual([]);
      // Each task is journaled with its times and, for creates, the container id.
      const created = tasks.filter((t) => t.kind === 'CreateContainer');
      for (const t of created) expect(t.result).toMatch(/^ctr\d+$/);
      for (const t of tasks) expect(t.finishedAt! >= t.startedAt!).toBe(true);
    });

    it('an apply handed over with the rows startApply wrote (as /apply starts one) runs without reading them back, to the same end', async () => {
      const reads: string[] = [];
      let firstCall = false;
      const watched: Store = new Proxy(ts.store, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver);
          if (typeof v !== 'function') return v;
          return (...a: unknown[]) => {
            if (!firstCall) reads.push(String(prop));
            return (v as (...x: unknown[]) => unknown).apply(target, a);
          };
        },
      });
      const h = harness(watched);
      // The stop flag read at its usual interval (the harness reads it before every step).
      const executor = new Executor({ store: watched, engine: (t) => h.engines.get(t)!, lanes: new Lanes(), healthPollMs: 5 });
      const engine = h.engines.get('local')!;
      const startContainer = engine.startContainer.bind(engine);
      const ensureImage = engine.ensureImage.bind(engine);
      engine.ensureImage = (...a) => ((firstCall = true), ensureImage(...a));
      engine.startContainer = (...a) => ((firstCall = true), startContainer(...a));
      const desired = stack();
      rememberHashes(desired);
      const prepared = await prepareApply(ts.store, h.observe, {
        repo: 'acme/shop', pr: 1, environment: desired.environment, kind: 'apply', actor: 'alice', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt',
        start: { lock: { owner: 'acme/shop#1', pr: 1 }, lease: { holder: executor.holder, ttlMs: executor.leaseTtlMs } },
      });
      expect(prepared.handover?.operations[0]?.tasks.map((t) => [t.nodeId, t.state, t.version])).toEqual(prepared.plans[0]!.plan.nodes.map((n) => [n.id, 'pending', 0]));
      // What the store holds is what was handed over, row for row.
      expect(await ts.store.listTasks(prepared.handover!.operations[0]!.row.id)).toEqual(prepared.handover!.operations[0]!.tasks);
      expect(await ts.store.listOperations(prepared.applyId)).toEqual(prepared.handover!.operations.map((o) => o.row));
      expect(await executor.run(prepared.applyId, prepared.handover)).toBe('completed');
      // Before its first Docker call the drive took the target's lease and wrote its journal: it read nothing back.
      expect(reads.filter((r) => !['claimLease', 'updateTasks', 'requestStop'].includes(r))).toEqual([]);
      expect(reads.filter((r) => r === 'claimLease')).toHaveLength(1);
      const tasks = await h.tasks(prepared.applyId);
      expect(tasks.every((t) => t.state === 'succeeded' && t.version === 2)).toBe(true);
      expect((await ts.store.getApplyStatus(prepared.applyId))?.state).toBe('completed');
      expect((await ts.store.listOperations(prepared.applyId))[0]!.state).toBe('completed');
      expect(await ts.store.getLease(`apply:${prepared.applyId}`)).toBeUndefined();
      const [again] = await planTargets(stack(), ['local'], h.observe);
      expect(again!.plan.nodes).toEqual([]);
      // A handover serves one drive, which took its rows and moved them on: handed over again, it is only a fence.
      const calls = engine.calls.length;
      expect(await executor.run(prepared.applyId, prepared.handover)).toBe('completed');
      expect(engine.calls.length).toBe(calls);
    });

    it('keeps the derived states current while a wave runs, without asking the store each turn when nothing it derives changed', async () => {
      const asked: string[] = [];
      const counting: Store = new Proxy(ts.store, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver);
          if (typeof v !== 'function') return v;
          return (...a: unknown[]) => (asked.push(String(prop)), (v as (...x: unknown[]) => unknown).apply(target, a));
        },
      });
      const h = harness(ts.store, { '*': { delayMs: 15 } });
      const executor = new Executor({ store: counting, engine: (t) => h.engines.get(t)!, lanes: new Lanes(), healthPollMs: 5, settleDelayMs: 1 });
      const id = await h.apply(stack('docker.io/berth-test/app:1', 12));
      const run = executor.run(id);
      let seenRunning = false;
      for (let i = 0; i < 200 && !seenRunning; i++) {
        seenRunning = (await ts.store.getApplyStatus(id))?.state === 'running';
        await new Promise((r) => setTimeout(r, 2));
      }
      expect(seenRunning).toBe(true);
      expect(await run).toBe('completed');
      expect((await ts.store.listOperations(id))[0]!.state).toBe('completed');
      // pending → running (a lost race re-reads), then the final settle: not one read of the operation per turn of the wave.
      expect(asked.filter((m) => m === "getOperation").length).toBeLessThanOrEqual(5);
      expect(h.engines.get('local')!.calls.length).toBeGreaterThan(20);
    });

    it('a handed-over apply that waited for its target longer than the stop poll reads the stop flag before its first call', async () => {
      const h = harness(ts.store, { '*': { delayMs: 15 } });
      const executor = new Executor({ store: ts.store, engine: (t) => h.engines.get(t)!, lanes: new Lanes(), healthPollMs: 5, stopPollMs: 20 });
      const first = stack();
      const second = state([spec('solo', { image: 'docker.io/berth-test/app:1' })], undefined, [], 'other', 'prod');
      const start = (desired: DesiredState, pr: number) => {
        rememberHashes(desired);
        return prepareApply(ts.store, h.observe, {
          repo: 'acme/shop', pr, environment: desired.environment, kind: 'apply', actor: 'alice', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt',
          start: { lock: { owner: `acme/shop#${pr}`, pr }, lease: { holder: executor.holder, ttlMs: executor.leaseTtlMs } },
        });
      };
      const a = await start(first, 1);
      const b = await start(second, 2);
      const runA = executor.run(a.applyId, a.handover);
      // Queued behind the first on the target's lane; stopped while it waits.
      const runB = executor.run(b.applyId, b.handover);
      await new Promise((r) => setTimeout(r, 5));
      expect(await ts.store.requestStop(b.applyId)).toBe(true);
      expect(await runA).toBe('completed');
      expect(await runB).toBe('stopped');
      const calls = h.engines.get('local')!.calls;
      expect(calls.filter((c) => /other-prod|solo/.test(c.subject))).toEqual([]);
      expect(calls.filter((c) => c.method === 'ensureImage')).toHaveLength(1);
    });

    it('a handed-over apply whose rows moved before its drive (stopped, every task cancelled) makes no Docker call and ends as the journal says', async () => {
      const h = harness(ts.store);
      const desired = stack();
      rememberHashes(desired);
      const prepared = await prepareApply(ts.store, h.observe, {
        repo: 'acme/shop', pr: 1, environment: desired.environment, kind: 'apply', actor: 'alice', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt',
        start: { lock: { owner: 'acme/shop#1', pr: 1 }, lease: { holder: h.executor.holder, ttlMs: h.executor.leaseTtlMs } },
      });
      expect(await ts.store.requestStop(prepared.applyId)).toBe(true);
      expect(await ts.store.cancelPendingTasks(prepared.applyId)).toBe(prepared.plans[0]!.plan.nodes.length);
      expect(await h.executor.run(prepared.applyId, prepared.handover)).toBe('stopped');
      expect(h.engines.get('local')!.calls).toEqual([]);
      expect((await h.tasks(prepared.applyId)).every((t) => t.state === 'cancelled' && t.version === 1)).toBe(true);
    });

    it('journals a wide wave in few commits (a commit carries at most 16 kinds of write), never a call before its own write, never a task running before its dependencies are recorded succeeded', async () => {
      // One log of what happened, in order: each journal commit (its writes that won) and each engine call.
      const log: ({ commit: TaskUpdate[] } | { call: string })[] = [];
      const recording: Store = new Proxy(ts.store, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver);
          if (prop === 'updateTasks')
            return async (...a: Parameters<Store['updateTasks']>) => {
              const r = await target.updateTasks(...a);
              log.push({ commit: a[0].filter((_, i) => r[i]) });
              return r;
            };
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
      const h = harness(recording);
      const engine = h.engines.get('local')!;
      for (const m of ['createContainer', 'startContainer'] as const) {
        const real = engine[m].bind(engine) as (...a: unknown[]) => Promise<unknown>;
        (engine as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => {
          log.push({ call: `${m} ${String(a[0])}` });
          return real(...a);
        };
      }
      const id = await h.apply(stack(undefined, 80), { parallelism: 512 });
      expect(await h.executor.run(id)).toBe('completed');
      const tasks = await h.tasks(id);
      const byId = new Map(tasks.map((t) => [t.id, t]));
      const byNode = new Map(tasks.map((t) => [t.nodeId, t]));
      const commits = log.filter((e): e is { commit: TaskUpdate[] } => 'commit' in e);
      // Writes with the same expected states that set the same columns share one statement (values may differ):
      // a commit holds few statements' worth, and at most 32 writes.
      const kind = (u: TaskUpdate) => JSON.stringify([typeof u.expected === 'string' ? [u.expected] : [...u.expected].sort(), Object.keys(u.patch).sort()]);
      for (const c of commits) {
        expect(new Set(c.commit.map(kind)).size).toBeLessThanOrEqual(16);
        expect(c.commit.length).toBeLessThanOrEqual(32);
      }
      // 166 writes in far fewer commits: a wave goes together.
      expect(commits.length).toBeLessThan(40);
      // Every task written running once and ended once, whatever the batching.
      for (const state of ['running', 'succeeded']) expect(commits.flatMap((c) => c.commit.filter((w) => w.patch.state === state).map((w) => w.id)).sort()).toEqual(tasks.map((t) => t.id).sort());
      // A task is journaled running only in the commit of its dependencies' success or after it.
      const committedAt = new Map<string, number>();
      commits.forEach((c, i) => {
        for (const w of c.commit) committedAt.set(`${w.id} ${w.patch.state}`, i);
      });
      for (const t of tasks) for (const d of t.deps) expect(committedAt.get(`${byNode.get(d)!.id} succeeded`)!).toBeLessThanOrEqual(committedAt.get(`${t.id} running`)!);
      // At every point, no more creates have been called than have had their running write committed.
      let written = 0;
      let called = 0;
      for (const e of log) {
        if ('commit' in e) written += e.commit.filter((w) => w.patch.state === 'running' && byId.get(w.id)!.kind === 'CreateContainer').length;
        if ('call' in e && e.call.startsWith('createContainer')) {
          called++;
          expect(called).toBeLessThanOrEqual(written);
        }
      }
      expect(called).toBe(83);
    });

    it('runs independent nodes in parallel and dependent nodes strictly in order', async () => {
      const h = harness(ts.store, { '*': { delayMs: 20 } });
      const id = await h.apply(stack(undefined, 6), { parallelism: 8 });
      expect(await h.executor.run(id)).toBe('completed');
      const engine = h.engines.get('local')!;
      expect(engine.maxConcurrent).toBeGreaterThan(3);
      expect(engine.maxConcurrent).toBeLessThanOrEqual(8);
      // Every dependency edge: the dependant's call started after the dependency's call ended.
      const tasks = await h.tasks(id);
      const byNode = new Map(tasks.map((t) => [t.nodeId, t]));
      let edges = 0;
      for (const t of tasks) {
        for (const d of t.deps) {
          expect(t.startedAt!).toBeGreaterThanOrEqual(byNode.get(d)!.finishedAt!);
          edges++;
        }
      }
      expect(edges).toBeGreaterThan(10);
      // And on the engine's own clock: db is healthy before api is created.
      const call = (m: string, s: string) => engine.calls.find((c) => c.method === m && c.subject === s)!;
      // (Creates may run ahead, like compose; starts wait for what they depend on.)
      const lastHealth = Math.max(...engine.calls.filter((c) => c.method === 'health' && c.subject === 'shop-staging-db-1').map((c) => c.end));
      expect(call('startContainer', 'shop-staging-api-1').start).toBeGreaterThanOrEqual(lastHealth);
      expect(call('startContainer', 'shop-staging-web-1').start).toBeGreaterThanOrEqual(call('startContainer', 'shop-staging-api-1').end);
    });

    it('respects the parallelism bound', async () => {
      const h = harness(ts.store, { '*': { delayMs: 10 } });
      const id = await h.apply(stack(undefined, 10), { parallelism: 2 });
      expect(await h.executor.run(id)).toBe('completed');
      expect(h.engines.get('local')!.maxConcurrent).toBe(2);
    });

    it('a failed node fails the apply with Docker\'s message, its dependants are skipped, independent work finishes', async () => {
      const h = harness(ts.store, { '*': { failures: [{ match: /^createContainer shop-staging-api-1$/, message: 'No such image: berth-test/nope:1' }] } });
      const id = await h.apply(stack(), { onFailure: 'continue' });
      expect(await h.executor.run(id)).toBe('failed');
      const t = byResource(await h.tasks(id));
      expect(t['CreateContainer service:api:1']!.state).toBe('failed');
      expect(t['CreateContainer service:api:1']!.error).toContain('No such image: berth-test/nope:1');
      expect(t['StartContainer service:api:1']!.state).toBe('skipped');
      // web's create does not depend on api; its start does (transitively skipped).
      expect(t['StartContainer service:web:1']!.state).toBe('skipped');
      expect(t['StartContainer service:web:1']!.error).toBe('a dependency did not succeed');
      expect(t['StartContainer service:worker0:1']!.state).toBe('succeeded');
      expect((await ts.store.getApply(id))!.finishedAt).not.toBeNull();
    });

    it('a WaitHealthy on an unhealthy container fails with the last health log and skips dependants', async () => {
      const h = harness(ts.store, { '*': { health: [{ match: /db/, status: 'unhealthy', lastLog: 'pg_isready: no response' }] } });
      const id = await h.apply(stack());
      expect(await h.executor.run(id)).toBe('failed');
      const t = byResource(await h.tasks(id));
      expect(t['WaitHealthy service:db:1']!.state).toBe('failed');
      expect(t['WaitHealthy service:db:1']!.error).toContain('pg_isready: no response');
      expect(t['StartContainer service:api:1']!.state).toBe('skipped');
      expect(t['StartContainer service:web:1']!.state).toBe('skipped');
      expect(t['StartContainer service:worker0:1']!.state).toBe('succeeded');
    });

    it('a dependant the plan starts waits for a service_healthy dependency the plan keeps running, as docker compose checks it: unhealthy, the dependant is not touched', async () => {
      const h = harness(ts.store);
      expect(await h.executor.run(await h.apply(stack()))).toBe('completed');
      // the same state again: nothing to start, so nothing waits for db (an unchanged stack's plan stays empty)
      const [same] = await planTargets(stack(), ['local'], h.observe);
      expect(same!.plan.nodes).toEqual([]);
      // db, kept as it is, turns unhealthy; api changes (recreated): its new container must not replace the old one
      const engine = h.engines.get('local')!;
      const db = [...engine.containers.values()].find((c) => c.name.endsWith('-db-1'))!;
      db.healthy = 'unhealthy';
      const changed = stack();
      svc(changed, 'api').spec.environment = { REV: '2' };
      svc(changed, 'api').configHash = 'api-rev-2';
      const [plan] = await planTargets(changed, ['local'], h.observe);
      const wait = plan!.plan.nodes.find((n) => n.kind === 'WaitHealthy' && n.resource === 'service:db:1')!;
      expect(wait).toMatchObject({ reason: 'service_healthy (kept running)', target: { containerName: db.name } });
      const stopOld = plan!.plan.nodes.find((n) => n.kind === 'StopContainer' && n.resource === 'service:api:1')!;
      expect(stopOld.deps).toContain(wait.id);
      const id = await h.apply(changed);
      expect(await h.executor.run(id)).toBe('failed');
      const t = byResource(await h.tasks(id));
      expect(t['WaitHealthy service:db:1']!.state).toBe('failed');
      expect(t['WaitHealthy service:db:1']!.error).toContain('is unhealthy');
      expect(t['StopContainer service:api:1']!.state).toBe('skipped');
      // the old api still serves; db was never restarted
      expect([...engine.containers.values()].filter((c) => c.name.endsWith('-api-1') && c.running)).toHaveLength(1);
      expect(engine.calls.filter((c) => c.method === 'startContainer' && c.subject.endsWith('-db-1'))).toHaveLength(1);
      // healthy again: the same change applies, checking db first
      db.healthy = 'healthy';
      const again = await h.apply(changed);
      expect(await h.executor.run(again)).toBe('completed');
      expect(byResource(await h.tasks(again))['WaitHealthy service:db:1']!.state).toBe('succeeded');
    });

    it('a journal write that committed but whose answer was lost (connection killed after COMMIT) is not taken for a lost race', async () => {
      // Every third journal batch commits, then the connection "dies" before the answer: the retry finds its own write.
      let batches = 0;
      const lossy: Store = new Proxy(ts.store, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver);
          if (prop === 'updateTasks') return async (...a: Parameters<Store['updateTasks']>) => {
            const r = await target.updateTasks(...a);
            if (++batches % 3 === 0) throw Object.assign(new Error('Connection lost: The server closed the connection.'), { code: 'PROTOCOL_CONNECTION_LOST' });
            return r;
          };
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
      const h = harness(lossy);
      const id = await h.apply(stack(undefined, 3), { parallelism: 2 });
      expect(await h.executor.run(id)).toBe('completed');
      expect(batches).toBeGreaterThan(3);
      const bad = (await h.tasks(id)).filter((t) => t.state !== 'succeeded').map((t) => `${t.kind} ${t.resource} ${t.state}: ${t.error}`);
      expect(bad).toEqual([]);
    });

    it('stop: running tasks finish, pending ones are cancelled, the apply ends stopped', async () => {
      const h = harness(ts.store, { '*': { delayMs: 40 } });
      const id = await h.apply(stack(undefined, 2), { parallelism: 2 });
      const run = h.executor.run(id);
      // Wait until something is running, then ask to stop (as another replica would: through the store).
      for (;;) {
        const tasks = await h.tasks(id);
        if (tasks.some((t) => t.state === 'running')) break;
        await new Promise((r) => setTimeout(r, 2));
      }
      expect(await ts.store.requestStop(id)).toBe(true);
      expect(await run).toBe('stopped');
      const tasks = await h.tasks(id);
      const states = new Set(tasks.map((t) => t.state));
      expect(states.has('running')).toBe(false);
      expect(states.has('pending')).toBe(false);
      expect(tasks.filter((t) => t.state === 'succeeded').length).toBeGreaterThan(0);
      expect(tasks.filter((t) => t.state === 'cancelled').length).toBeGreaterThan(0);
      // Nothing started after the stop: every succeeded task has a Docker call, every cancelled one none.
      const calls = h.engines.get('local')!.calls.filter((c) => c.method !== 'health').length;
      expect(calls).toBe(tasks.filter((t) => (t.state === 'succeeded' || t.state === 'failed') && t.kind !== 'WaitHealthy').length);
      expect((await ts.store.getApply(id))!.state).toBe('stopped');
    });

    it('on_failure halt: a failure on one target cancels what has not started on the others', async () => {
      const h = harness(ts.store, { local: { failures: [{ match: /createContainer shop-staging-db-1/, message: 'boom' }] }, edge: { delayMs: 150 } });
      const id = await h.apply(stack(), { targets: ['local', 'edge'], onFailure: 'halt' });
      expect(await h.executor.run(id)).toBe('failed');
      const ops = await ts.store.listOperations(id);
      expect(ops.map((o) => [o.target, o.state])).toEqual([
        ['local', 'failed'],
        ['edge', 'stopped'],
      ]);
      const edgeTasks = await ts.store.listTasks(ops[1]!.id);
      expect(edgeTasks.some((t) => t.state === 'cancelled')).toBe(true);
    });

    it('on_failure continue: the other targets run to completion', async () => {
      const h = harness(ts.store, { local: { failures: [{ match: /createContainer shop-staging-db-1/, message: 'boom' }] }, edge: { delayMs: 5 } });
      const id = await h.apply(stack(), { targets: ['local', 'edge'], onFailure: 'continue' });
      expect(await h.executor.run(id)).toBe('failed');
      const ops = await ts.store.listOperations(id);
      expect(ops.map((o) => [o.target, o.state])).toEqual([
        ['local', 'failed'],
        ['edge', 'completed'],
      ]);
    });

    it('two applies on one target queue: their Docker calls never interleave', async () => {
      const lanes = new Lanes();
      const h = harness(ts.store, { '*': { delayMs: 5 } }, lanes);
      const a = await h.apply(stack());
      const img2 = { image: 'docker.io/berth-test/app:2' };
      const other = state([spec('solo1', img2), spec('solo2', img2), spec('solo3', img2)], undefined, undefined, 'shop', 'preview');
      const b = await h.apply(other);
      const [ra, rb] = await Promise.all([h.executor.run(a), h.executor.run(b)]);
      expect([ra, rb]).toEqual(['completed', 'completed']);
      const calls = h.engines.get('local')!.calls;
      const ofB = (c: { subject: string }) => c.subject.includes('preview') || c.subject.includes('app:2');
      const a_ = calls.filter((c) => !ofB(c));
      const b_ = calls.filter(ofB);
      const span = (cs: typeof calls) => [Math.min(...cs.map((c) => c.start)), Math.max(...cs.map((c) => c.end))] as const;
      const [sa, ea] = span(a_);
      const [sb, eb] = span(b_);
      // Whichever reached the lane first ran alone; the other started only after it ended.
      expect(ea <= sb || eb <= sa).toBe(true);
    });

    it('recovery: a task left running whose effect landed is marked succeeded, one whose effect did not is run once', async () => {
      const h = harness(ts.store);
      const d = stack(undefined, 1);
      const id = await h.apply(d);
      const tasks = await h.tasks(id);
      const t = byResource(tasks);
      const engine = h.engines.get('local')!;
      // Simulate a crash: the network and db container were created by this apply, the process died
      // before journaling the second one; the api create was journaled running but never reached Docker.
      const net = t['CreateNetwork network:default']!;
      await ts.store.updateTask(net.id, 'pending', { state: 'running', startedAt: 1 });
      await engine.createNetwork('shop-staging_default', d.networks[0]!.spec, {});
      const img = t['EnsureImage image:docker.io/berth-test/app:1']!;
      await ts.store.updateTask(img.id, 'pending', { state: 'succeeded', startedAt: 1, finishedAt: 2 });
      await ts.store.updateTask(net.id, 'running', { state: 'succeeded', finishedAt: 2 });
      const dbCreate = t['CreateContainer service:db:1']!;
      await ts.store.updateTask(dbCreate.id, 'pending', { state: 'running', startedAt: 3 });
      await engine.createContainer('shop-staging-db-1', svc(d, 'db').spec, { project: 'shop', environment: 'staging', replica: 1, configHash: svc(d, 'db').configHash, applyId: id }, 'default');
      const w = t['CreateContainer service:worker0:1']!;
      await ts.store.updateTask(w.id, 'pending', { state: 'running', startedAt: 3 });
      engine.calls.length = 0;

      const recovered = await h.executor.recover();
      expect(recovered).toEqual([{ applyId: id, state: 'completed' }]);
      const after = byResource(await h.tasks(id));
      expect(after['CreateContainer service:db:1']!.state).toBe('succeeded');
      expect(after['CreateContainer service:db:1']!.result).toBe(engine.containers.size ? [...engine.containers.values()].find((c) => c.name === 'shop-staging-db-1')!.id : null);
      // The db create is never repeated; the worker create runs exactly once.
      const creates = engine.calls.filter((c) => c.method === 'createContainer').map((c) => c.subject);
      expect(creates).not.toContain('shop-staging-db-1');
      expect(creates.filter((s) => s === 'shop-staging-worker0-1')).toHaveLength(1);
      expect([...engine.containers.values()].map((c) => c.name).sort()).toEqual(['shop-staging-api-1', 'shop-staging-db-1', 'shop-staging-web-1', 'shop-staging-worker0-1']);
    });

    it('recovery after a crash between a create and its upload puts the copied repository files in again, byte for byte; no second container', async () => {
      const h = harness(ts.store);
      const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]);
      const base = state([spec('web', { files: [{ kind: 'file', source: 'html/logo.png', target: '/srv/logo.png', mode: 0o644, digest: 'd' }] })]);
      const d: DesiredState = { ...base, contents: { 'file:html/logo.png': png.toString('base64') } };
      const id = await h.apply(d);
      const t = byResource(await h.tasks(id));
      const engine = h.engines.get('local')!;
      // The dead process created the container (journaled running) and died before its upload.
      for (const k of ['EnsureImage image:docker.io/berth-test/app:1', 'CreateNetwork network:default']) {
        await ts.store.updateTask(t[k]!.id, 'pending', { state: 'running', startedAt: 1 });
        await ts.store.updateTask(t[k]!.id, 'running', { state: 'succeeded', finishedAt: 2 });
      }
      await engine.createNetwork('shop-staging_default', d.networks[0]!.spec, {});
      await ts.store.updateTask(t['CreateContainer service:web:1']!.id, 'pending', { state: 'running', startedAt: 3 });
      const cid = await engine.createContainer('shop-staging-web-1', svc(d, 'web').spec, { project: 'shop', environment: 'staging', replica: 1, configHash: svc(d, 'web').configHash, applyId: id }, 'default');
      engine.calls.length = 0;

      expect(await h.executor.recover()).toEqual([{ applyId: id, state: 'completed' }]);
      // The create is replayed and adopts the container the dead process made: still one, the same one.
      expect([...engine.containers.values()].filter((c) => c.name === 'shop-staging-web-1').map((c) => c.id)).toEqual([cid]);
      const put = engine.files.get(cid)!;
      expect(put.map((f) => f.path)).toEqual(['/srv/logo.png']);
      expect(Buffer.from(put[0]!.content as Uint8Array).equals(png)).toBe(true);
    });

    it('a create replayed after a crash adopts the container this apply made (the engine finished the dead process\'s call)', async () => {
      const h = harness(ts.store);
      const d = stack(undefined, 0);
      const id = await h.apply(d);
      const t = byResource(await h.tasks(id));
      const engine = h.engines.get('local')!;
      // Recovery saw nothing and reset the task to pending; then the engine completed the old request.
      const existing = await engine.createContainer('shop-staging-db-1', svc(d, 'db').spec, { project: 'shop', environment: 'staging', replica: 1, configHash: svc(d, 'db').configHash, applyId: id }, 'default');
      expect(await h.executor.run(id)).toBe('completed');
      const after = byResource(await h.tasks(id));
      expect(after['CreateContainer service:db:1']!.result).toBe(existing);
      expect([...engine.containers.values()].filter((c) => c.name === 'shop-staging-db-1')).toHaveLength(1);
      void t;
    });

    it('a create colliding with a container of another apply fails with Docker\'s conflict', async () => {
      const h = harness(ts.store);
      const d = stack(undefined, 0);
      const id = await h.apply(d);
      await h.engines.get('local')!.createContainer('shop-staging-db-1', svc(d, 'db').spec, { project: 'shop', environment: 'staging', replica: 1, configHash: 'x', applyId: 'another-apply' });
      expect(await h.executor.run(id)).toBe('failed');
      expect(byResource(await h.tasks(id))['CreateContainer service:db:1']!.error).toContain('is already in use');
    });

    it('recovery refuses to adopt a container of the same name that this apply did not create', async () => {
      const h = harness(ts.store);
      const d = stack(undefined, 0);
      const id = await h.apply(d);
      const t = byResource(await h.tasks(id));
      const engine = h.engines.get('local')!;
      await ts.store.updateTask(t['CreateContainer service:db:1']!.id, 'pending', { state: 'running', startedAt: 1 });
      await engine.createContainer('shop-staging-db-1', svc(d, 'db').spec, { project: 'shop', environment: 'staging', replica: 1, configHash: 'x', applyId: 'someone-else' });
      const [r] = await h.executor.recover();
      expect(r!.state).toBe('failed');
      const after = byResource(await h.tasks(id));
      expect(after['CreateContainer service:db:1']!.error).toMatch(/was not created by this apply/);
    });

    it('concurrent derivations on one apply never lose a sibling\'s state', async () => {
      // Two targets finish at the same moment and each reads its sibling before the other's write lands.
      const slow: Store = new Proxy(ts.store, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver);
          if (prop === 'listOperations') return async (id: string) => {
            const rows = await target.listOperations(id);
            await new Promise((r) => setTimeout(r, 15));
            return rows;
          };
          return typeof v === 'function' ? v.bind(target) : v;
        },
      });
      for (let i = 0; i < 5; i++) {
        const h = harness(slow);
        const d = state([spec(`s${i}`)], undefined, undefined, 'shop', `env${i}`);
        const id = await h.apply(d, { targets: ['local', 'edge'] });
        expect(await h.executor.run(id)).toBe('completed');
        const ops = await ts.store.listOperations(id);
        expect(ops.map((o) => o.state)).toEqual(['completed', 'completed']);
        expect((await ts.store.getApply(id))!.state).toBe('completed');
      }
      const h = harness(slow, { edge: { failures: [{ match: /createContainer/, message: 'nope' }] } });
      const id = await h.apply(state([spec('x')], undefined, undefined, 'shop', 'envf'), { targets: ['local', 'edge'], onFailure: 'continue' });
      expect(await h.executor.run(id)).toBe('failed');
      expect((await ts.store.listOperations(id)).map((o) => o.state)).toEqual(['completed', 'failed']);
    });

    it('the stale-plan guard refuses when the host moved since the reviewed plan, naming the change', async () => {
      const h = harness(ts.store);
      const d = stack(undefined, 0);
      const reviewed = expectedOf(await planTargets(d, ['local'], h.observe));
      // Someone creates the db container by hand after the plan was shown.
      await h.engines.get('local')!.createContainer('shop-staging-db-1', svc(d, 'db').spec, { project: 'shop', environment: 'staging', replica: 1, configHash: 'handmade', applyId: 'x' });
      const err = await prepareApply(ts.store, h.observe, {
        repo: 'acme/shop', pr: 1, environment: 'staging', kind: 'apply', actor: 'alice', headSha: 'abc', desired: d, targets: ['local'], onFailure: 'halt', expected: reviewed,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StalePlanError);
      expect((err as Error).message).toContain('target `local` changed since the plan was made');
      expect((err as Error).message).toContain('+ [');
      expect((err as Error).message).toMatch(/service:db:1, (StopContainer|RemoveContainer|CreateContainer)/);
      expect(await ts.store.listApplies()).toEqual([]);
    });
  });
}

backendSuite('SQLite', sqliteTestStore);
backendSuite('MariaDB', mysqlTestStore, describeMysql);
backendSuite('PostgreSQL', postgresTestStore, describePostgres);
