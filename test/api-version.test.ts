// Settings only newer engines honour (src/docker/api-version.ts): the apply
// asks the target's engine which API it speaks and refuses, naming the
// setting, before anything is created; a new enough engine gets the setting.
import { describe, expect, it } from 'vitest';
import { Executor } from '../src/apply/executor.js';
import { Lanes } from '../src/apply/lanes.js';
import { prepareApply } from '../src/apply/prepare-apply.js';
import { apiAtLeast } from '../src/docker/api-version.js';
import { FakeEngine, observeFake } from './helpers/fake-engine.js';
import { spec, state, vol } from './helpers/specs.js';
import { sqliteTestStore } from './helpers/stores.js';

describe('engine API versions', () => {
  it('compares versions as numbers, not text', () => {
    expect(apiAtLeast('1.44', '1.44')).toBe(true);
    expect(apiAtLeast('1.45', '1.44')).toBe(true);
    expect(apiAtLeast('1.41', '1.44')).toBe(false);
    expect(apiAtLeast('1.9', '1.44')).toBe(false);
    expect(apiAtLeast('1.100', '1.44')).toBe(true);
    expect(apiAtLeast('2.0', '1.44')).toBe(true);
  });

  const withStartInterval = state([spec('db', { healthcheck: { test: ['CMD', 'true'], intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 60_000, startIntervalMs: 2000 } })], undefined, [], 'shop', 'staging');

  async function applyOn(engine: FakeEngine, desired = withStartInterval) {
    const t = await sqliteTestStore();
    try {
      const executor = new Executor({ store: t.store, engine: () => engine, lanes: new Lanes(), stopPollMs: 0 });
      const observe = async (_target: string, project: string, environment: string) => observeFake(engine, project, environment, { imageOf: () => 'docker.io/berth-test/app:1', hashOf: () => '' });
      const { applyId, handover } = await prepareApply(t.store, observe, {
        repo: 'acme/shop', pr: 1, environment: 'staging', kind: 'apply', actor: 'alice', headSha: null, desired, targets: ['local'], onFailure: 'halt',
        start: { lock: { owner: 'acme/shop#1', pr: 1 }, lease: { holder: executor.holder, ttlMs: executor.leaseTtlMs } },
      });
      const state = await executor.run(applyId, handover);
      return { state, tasks: await t.store.listTasks((await t.store.listOperations(applyId))[0]!.id) };
    } finally {
      await t.dispose();
    }
  }

  it('healthcheck.start_interval on an engine older than API 1.44: the create is refused, naming the setting and the versions; nothing is created', async () => {
    const engine = new FakeEngine({ apiVersion: '1.41' });
    const { state: s, tasks } = await applyOn(engine);
    expect(s).toBe('failed');
    const create = tasks.find((t) => t.kind === 'CreateContainer')!;
    expect(create.state).toBe('failed');
    expect(create.error).toBe(
      "service db: healthcheck.start_interval needs Docker Engine 25 or later (API 1.44); this target's engine speaks API 1.41 and would ignore it — remove healthcheck.start_interval, or deploy to a newer engine (the container was not created)",
    );
    expect(engine.calls.map((c) => c.method)).not.toContain('createContainer');
    expect(engine.containers.size).toBe(0);
  });

  // [setting, the desired state using it, the API that lacks it, the API that has it, the refusal on the older one]
  const refusedOnOlder: [string, ReturnType<typeof state>, string, string, string][] = [
    [
      'volume.subpath needs API 1.45: refused on 1.44 naming the mount, created on 1.45',
      state([spec('db', { volumes: [{ type: 'volume', source: 'data', target: '/var/lib/db', readOnly: false, subpath: 'db' }] })], undefined, [vol('data')], 'shop', 'staging'),
      '1.44',
      '1.45',
      "service db: volume.subpath of the mount at /var/lib/db needs Docker Engine 26 or later (API 1.45); this target's engine speaks API 1.44 and would ignore it — remove volume.subpath of the mount at /var/lib/db, or deploy to a newer engine (the container was not created)",
    ],
    [
      // Docker 23 (API 1.42) names its own default profile `builtin`; 20.10 takes the create and fails the start
      'security_opt seccomp=builtin needs API 1.42: refused on 1.41 naming the versions and what the old engine does, created on 1.42',
      state([spec('db', { securityOpt: ['seccomp=builtin'] })], undefined, [], 'shop', 'staging'),
      '1.41',
      '1.42',
      "service db: security_opt seccomp=builtin needs Docker Engine 23 or later (API 1.42); this target's engine speaks API 1.41 and would fail to start the container (it reads builtin as a profile's JSON) — remove security_opt seccomp=builtin, or deploy to a newer engine (the container was not created)",
    ],
  ];
  for (const [name, desired, older, newer, refusal] of refusedOnOlder)
    it(name, async () => {
      const old = new FakeEngine({ apiVersion: older });
      const r = await applyOn(old, desired);
      expect(r.state).toBe('failed');
      expect(r.tasks.find((t) => t.kind === 'CreateContainer')!.error).toBe(refusal);
      expect(old.containers.size).toBe(0);
      const recent = new FakeEngine({ apiVersion: newer });
      expect((await applyOn(recent, desired)).state).toBe('completed');
      expect(recent.containers.size).toBe(1);
    });

  it('healthcheck.start_interval on API 1.44 or later: created and started', async () => {
    const engine = new FakeEngine({ apiVersion: '1.44' });
    const { state: s } = await applyOn(engine);
    expect(s).toBe('completed');
    expect(engine.calls.filter((c) => c.method === 'createContainer')).toHaveLength(1);
  });
});
