// Issue 10, item 10: a driver that loses its lease stops. Two drivers on one
// shared database, MariaDB or PostgreSQL (two store instances, as two replicas have): driver A's
// lease renewals start failing mid-apply. From the moment A knows (its first
// failed renewal) it starts no Docker call; driver B takes the apply over once
// A's lease lapsed and completes it, every container created once; and A's
// journal writes, fenced by its old lease token, are refused by the store.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { prepareApply } from '../../src/apply/prepare-apply.js';
import type { Engine } from '../../src/apply/engine.js';
import { Executor } from '../../src/apply/executor.js';
import { Lanes } from '../../src/apply/lanes.js';
import type { ObservedState } from '../../src/model/model.js';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { until } from '../helpers/app-process.js';
import { describeMysql, describePostgres } from '../helpers/env.js';
import { FakeEngine } from '../helpers/fake-engine.js';
import { spec, state } from '../helpers/specs.js';
import { mysqlTestStore, postgresTestStore } from '../helpers/stores.js';
import type { TestStore } from '../helpers/stores.js';

/** The engine as one driver sees it: every call it starts is recorded with the wall-clock time. */
function recorded(engine: FakeEngine, calls: { at: number; call: string }[]): Engine {
  return new Proxy(engine, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls.push({ at: Date.now(), call: `${String(prop)} ${typeof args[0] === 'string' ? args[0] : ''}` });
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  }) as Engine;
}

function fencing(name: string, open: () => Promise<TestStore>, d: (name: string, fn: () => void) => void) {
  d(`security 10: fencing — a driver that lost its lease stops (${name})`, () => {
    let ts: TestStore;
    let storeB: Store;
    beforeAll(async () => {
      ts = await open();
      storeB = await openStore(ts.url);
    });
    afterAll(async () => {
      await storeB?.close();
      await ts?.dispose();
    });

    it('no Docker call after the first failed renewal; the successor completes; the stale driver’s writes are refused', async () => {
      const ttlMs = 900;
      const services = Array.from({ length: 10 }, (_, i) => spec(`s${i}`, i > 0 ? { dependsOn: [{ service: `s${i - 1}`, condition: 'service_started' }] } : {}));
      const desired = state(services, undefined, [], 't-sec-10', 'staging');
      const empty = async (_t: string, project: string, environment: string): Promise<ObservedState> => ({ project, environment, containers: [], networks: [], volumes: [] });
      const prepared = await prepareApply(ts.store, empty, {
        repo: 'acme/fence', pr: 1, environment: 'staging', kind: 'apply', actor: 'alice', headSha: 'f'.repeat(40), desired, targets: ['local'], onFailure: 'halt',
        start: { lock: { owner: 'acme/fence#1', pr: 1 }, lease: { holder: 'driver-a', ttlMs } },
      });
      const fenceA = prepared.fence!;
      expect(fenceA).toMatchObject({ lease: `apply:${prepared.applyId}`, holder: 'driver-a' });

      // One Docker host, slow enough that the apply is mid-way when A loses its lease.
      const host = new FakeEngine({ delayMs: 120 });
      const callsA: { at: number; call: string }[] = [];
      const callsB: { at: number; call: string }[] = [];
      let renewalsFail = false;
      const storeA = new Proxy(ts.store, {
        get(target, prop, receiver) {
          const v = Reflect.get(target, prop, receiver);
          if (prop === 'claimLease') return (...args: unknown[]) => (renewalsFail ? Promise.reject(new Error('the database is unreachable from driver A')) : (v as (...a: unknown[]) => unknown).apply(target, args));
          return typeof v === 'function' ? v.bind(target) : v;
        },
      }) as Store;
      let lostAt: number | undefined;
      const logA = { info() {}, warn() {}, error: (_o: object, msg?: string) => void (msg?.startsWith('lease lost') && (lostAt ??= Date.now())) };
      const driverA = new Executor({ store: storeA, engine: () => recorded(host, callsA), lanes: new Lanes(), holder: 'driver-a', leaseTtlMs: ttlMs, parallelism: 2, log: logA });
      const runA = driverA.run(prepared.applyId, fenceA);

      await until('driver A to be mid-apply', () => callsA.length >= 6);
      renewalsFail = true;
      await runA;
      expect(lostAt).toBeDefined();
      // Not one Docker call started once A knew it had lost the lease.
      expect(callsA.filter((c) => c.at > lostAt!)).toEqual([]);
      const applyAfterA = await ts.store.getApply(prepared.applyId);
      expect(['pending', 'running']).toContain(applyAfterA!.state);

      // Driver B (another replica, its own store connection) takes over once A's lease lapsed.
      const driverB = new Executor({ store: storeB, engine: () => recorded(host, callsB), lanes: new Lanes(), holder: 'driver-b', leaseTtlMs: 5000 });
      const results = await until('driver B to recover the apply', async () => {
        const r = await driverB.recover();
        return r.length ? r : undefined;
      });
      expect(results).toEqual([{ applyId: prepared.applyId, state: 'completed' }]);
      const tasks = await ts.store.listTasksForApply(prepared.applyId);
      expect(tasks.every((t) => t.state === 'succeeded')).toBe(true);
      // Every container created once, across both drivers.
      const creates = [...callsA, ...callsB].filter((c) => c.call.startsWith('createContainer')).map((c) => c.call).sort();
      expect(creates).toEqual([...new Set(creates)]);
      expect(creates).toHaveLength(10);

      // A's late journal writes carry its lost tenure: refused, nothing changes.
      const victim = tasks[tasks.length - 1]!;
      expect(await storeA.updateTasks([{ id: victim.id, expected: 'succeeded', patch: { state: 'failed', error: 'stale driver' } }], fenceA)).toEqual([false]);
      expect(await storeA.updateTask(victim.id, 'succeeded', { state: 'failed', error: 'stale driver' }, fenceA)).toBe(false);
      expect((await ts.store.getTask(victim.id))!.state).toBe('succeeded');
    }, 120_000);
  });
}

fencing('MariaDB', mysqlTestStore, describeMysql);
fencing('PostgreSQL', postgresTestStore, describePostgres);
