// Drift without the real engine: interval parsing, state normalisation,
// computeDrift tables, the reconciler's rules against a fake container list
// (forged and hand-made containers, in-flight applies, failed reads, constant
// store query count from 10 to 1,000 containers), the drift report and
// `berth status --drift`, and leases between two replicas on MariaDB and PostgreSQL.
import { randomUUID } from 'node:crypto';
import type Dockerode from 'dockerode';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { desiredService } from '../src/model/desired.js';
import type { DockerLister, DriftLogger, TickResult } from '../src/drift/drift.js';
import { computeDrift, driftReport, DriftReconciler, movedTags, normalizeContainerState, parseDriftInterval, renderDriftText, tagOf } from '../src/drift/drift.js';
import type { ApplyPayload } from '../src/apply/executor.js';
import type { DesiredState } from '../src/model/model.js';
import { LABEL } from '../src/model/model.js';
import { MASK } from '../src/plan/mask.js';
import { outText } from '../src/text/outbound.js';
import { openStore } from '../src/store/open.js';
import type { ContainerRow, Store } from '../src/store/store.js';
import { countingStore } from './helpers/counting-store.js';
import { describeMysql, describePostgres } from './helpers/env.js';
import { spec, state } from './helpers/specs.js';
import type { TestStore } from './helpers/stores.js';
import { mysqlTestStore, postgresTestStore, sqliteTestStore } from './helpers/stores.js';

// ── helpers ───────────────────────────────────────────────────────────────

function recordingLog() {
  const lines: { level: 'info' | 'warn' | 'error'; obj: object; msg: string }[] = [];
  const log: DriftLogger = {
    info: (obj, msg = '') => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg = '') => lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg = '') => lines.push({ level: 'error', obj, msg }),
  };
  return { log, lines };
}

interface Synthetic {
  id?: string;
  project?: string;
  environment?: string;
  service?: string;
  replica?: number | string;
  hash?: string;
  apply?: string;
  state?: string;
  name?: string;
}

let seq = 0;
function container(s: Synthetic): Dockerode.ContainerInfo {
  const id = s.id ?? `c${String(++seq).padStart(63, '0')}`;
  const labels: Record<string, string> = {};
  if (s.project !== undefined) labels[LABEL.project] = s.project;
  if (s.environment !== undefined) labels[LABEL.environment] = s.environment;
  if (s.service !== undefined) labels[LABEL.service] = s.service;
  if (s.replica !== undefined) labels[LABEL.replica] = String(s.replica);
  if (s.hash !== undefined) labels[LABEL.configHash] = s.hash;
  if (s.apply !== undefined) labels[LABEL.applyId] = s.apply;
  return { Id: id, Names: [`/${s.name ?? `${s.project}-${s.environment}-${s.service}-${s.replica}`}`], State: s.state ?? 'running', Labels: labels } as unknown as Dockerode.ContainerInfo;
}

/** A managed container of `apply`, as the executor would have labelled it. */
const managed = (apply: string, service: string, replica: number, over: Synthetic = {}) =>
  container({ project: 'shop', environment: 'staging', service, replica, hash: 'h-' + service, apply, ...over });

/** A Docker client whose one list call returns `list` (or throws `fail`), and counts its calls. */
function fakeDocker(list: () => Dockerode.ContainerInfo[], fail?: () => Error | undefined) {
  const calls: unknown[] = [];
  const d: DockerLister = {
    listContainers: (async (opts?: unknown) => {
      calls.push(opts);
      const e = fail?.();
      if (e) throw e;
      return list();
    }) as DockerLister['listContainers'],
  };
  return { docker: d, calls };
}

async function newApply(store: Store, opts: { completed?: boolean; desired?: DesiredState; repo?: string; environment?: string; targets?: string[] } = {}): Promise<string> {
  const desired = opts.desired ?? state([spec('web')], undefined, undefined, 'shop', opts.environment ?? 'staging');
  const payload: ApplyPayload = { desired, onFailure: 'halt' };
  const created = await store.createApply({
    repo: opts.repo ?? 'acme/shop',
    pr: 1,
    environment: opts.environment ?? desired.environment,
    kind: 'apply',
    actor: 'alice',
    headSha: 'abc',
    desiredDigest: 'd',
    planFingerprint: null,
    desiredJson: JSON.stringify(payload),
    operations: (opts.targets ?? ['local']).map((target) => ({ target, tasks: [] })),
  });
  if (opts.completed ?? true) {
    expect(await store.casApplyState(created.id, 0, { state: 'completed', startedAt: Date.now(), finishedAt: Date.now() })).toBe(true);
  }
  return created.id;
}

const byId = (rows: ContainerRow[]) => new Map(rows.map((r) => [r.containerId, r]));
const ok = (r: TickResult) => {
  if (r.status !== 'ok') throw new Error(`tick was ${r.status}: ${JSON.stringify(r)}`);
  return r;
};

// ── pure parts ────────────────────────────────────────────────────────────

describe('parseDriftInterval', () => {
  it.each([
    [undefined, 60_000, false],
    ['', 60_000, false],
    ['30s', 30_000, false],
    ['2m', 120_000, false],
    ['90000', 90_000, false],
    ['15000ms', 15_000, false],
    ['1.5m', 90_000, false],
    [' 45S ', 45_000, false],
    ['1s', 10_000, true],
    ['500', 10_000, true],
    ['1h', 600_000, true],
    ['11m', 600_000, true],
    ['soon', 60_000, true],
    ['-5s', 60_000, true],
  ])('%j → %i ms (warning: %s)', (raw, ms, warns) => {
    const r = parseDriftInterval(raw);
    expect(r.ms).toBe(ms);
    expect(r.warning !== undefined).toBe(warns);
  });
});

describe('normalizeContainerState', () => {
  it.each([
    ['running', 'running'],
    ['exited', 'stopped'],
    ['dead', 'stopped'],
    ['removing', 'stopped'],
    ['restarting', 'restarting'],
    ['paused', 'paused'],
    ['created', 'created'],
    ['Running', 'running'],
    ['weird', undefined],
    [undefined, undefined],
  ])('%s → %s', (docker, indexed) => {
    expect(normalizeContainerState(docker)).toBe(indexed);
  });
});

describe('computeDrift', () => {
  const web = desiredService(spec('web', { replicas: 2 }));
  const migrate = desiredService(spec('migrate'));
  const api = desiredService(spec('api', { dependsOn: [{ service: 'migrate', condition: 'service_completed_successfully' }] }));
  const desired: DesiredState = { project: 'shop', environment: 'staging', services: [api, migrate, web], networks: [], volumes: [] };
  const row = (service: string, replica: number, over: Partial<ContainerRow> = {}): ContainerRow => {
    const hash = desired.services.find((s) => s.spec.name === service)?.configHash ?? 'other';
    return {
      target: 'local',
      containerId: `${service}-${replica}-${over.state ?? 'running'}-${over.name ?? ''}`,
      project: 'shop',
      environment: 'staging',
      service,
      replica,
      name: `shop-staging-${service}-${replica}`,
      state: 'running',
      configHash: hash,
      applyId: 'a1',
      seenAt: 1000,
      updatedAt: 1000,
      ...over,
    };
  };
  const healthy = () => [row('api', 1), row('migrate', 1, { state: 'stopped' }), row('web', 1), row('web', 2)];
  const summary = (rows: ContainerRow[]) => computeDrift(desired, rows).map((i) => `${i.service}#${i.replica} ${i.kind}${i.observed ? ` ${i.observed}` : ''}`);

  it.each<[string, () => ContainerRow[], string[]]>([
    ['everything as applied (a one-shot service may have exited)', healthy, []],
    ['a replica never seen', () => healthy().filter((r) => !(r.service === 'web' && r.replica === 2)), ['web#2 missing']],
    ['a replica whose container vanished', () => [...healthy().filter((r) => !(r.service === 'web' && r.replica === 2)), row('web', 2, { state: 'missing' })], ['web#2 missing']],
    ['a replacement next to the vanished row is not drift', () => [...healthy(), row('web', 2, { state: 'missing', containerId: 'old' })], []],
    ['a stopped long-running service', () => [row('api', 1, { state: 'stopped' }), ...healthy().filter((r) => r.service !== 'api')], ['api#1 stopped stopped']],
    ['paused, restarting and created count as not running', () => [row('api', 1, { state: 'paused' }), row('migrate', 1, { state: 'stopped' }), row('web', 1, { state: 'restarting' }), row('web', 2, { state: 'created' })], ['api#1 stopped paused', 'web#1 stopped restarting', 'web#2 stopped created']],
    ['a changed config hash', () => [...healthy().filter((r) => r.service !== 'api'), row('api', 1, { configHash: 'edited-by-hand' })], ['api#1 config-changed edited-by-hand']],
    ['changed and stopped: both reported', () => [...healthy().filter((r) => r.service !== 'api'), row('api', 1, { configHash: 'x', state: 'stopped' })], ['api#1 config-changed x', 'api#1 stopped stopped']],
    ['a service no longer applied', () => [...healthy(), row('cache', 1)], ['cache#1 unexpected']],
    ['a replica beyond the applied count', () => [...healthy(), row('web', 3)], ['web#3 unexpected']],
    ['two containers for one replica: the canonical name is the one, the other is extra', () => [...healthy(), row('web', 1, { name: 'shop-staging-web-1_abcdef123456' })], ['web#1 unexpected']],
    ['missing rows of services no longer applied are history, not drift', () => [...healthy(), row('cache', 1, { state: 'missing' })], []],
    ['rows of other projects and environments are ignored', () => [...healthy(), row('web', 9, { project: 'other' }), row('web', 9, { environment: 'prod' })], []],
    ['an empty index: every replica missing', () => [], ['api#1 missing', 'migrate#1 missing', 'web#1 missing', 'web#2 missing']],
  ])('%s', (_name, rows, expected) => {
    expect(summary(rows())).toEqual(expected);
  });

  it('names the container and the hashes it compared', () => {
    const [item] = computeDrift(desired, [row('api', 1, { configHash: 'abcdef0123456789' }), row('migrate', 1), row('web', 1), row('web', 2)]);
    expect(item).toMatchObject({ service: 'api', replica: 1, kind: 'config-changed', name: 'shop-staging-api-1', expected: api.configHash, observed: 'abcdef0123456789' });
    expect(item!.detail).toContain('abcdef012345');
  });

  it('a service scaled to zero expects nothing', () => {
    const zero: DesiredState = { ...desired, services: [desiredService(spec('web', { replicas: 0 }))] };
    expect(computeDrift(zero, [])).toEqual([]);
    expect(computeDrift(zero, [row('web', 1)]).map((i) => i.kind)).toEqual(['unexpected']);
  });
});

// ── the reconciler against a fake container list ─────────────────────────

function reconcilerRules(open: () => Promise<TestStore>) {
  let ts: TestStore;
  let store: Store;
  beforeEach(async () => {
    ts = await open();
    store = ts.store;
  });
  afterEach(async () => {
    await ts.dispose();
  });

  const reconciler = (docker: DockerLister, over: Partial<ConstructorParameters<typeof DriftReconciler>[0]> = {}) => {
    const rec = recordingLog();
    const r = new DriftReconciler({ store, targets: ['local'], docker: () => docker, holder: 'r1', intervalMs: 10_000, log: rec.log, ...over });
    return { r, lines: rec.lines };
  };

  it('indexes managed containers with normalised states, in one list call filtered by the project label', async () => {
    const a = await newApply(store);
    const list = [managed(a, 'web', 1), managed(a, 'web', 2, { state: 'exited' }), managed(a, 'db', 1, { state: 'created' }), managed(a, 'q', 1, { state: 'paused' }), managed(a, 'w', 1, { state: 'restarting' })];
    const { docker, calls } = fakeDocker(() => list);
    const { r } = reconciler(docker);
    const res = ok(await r.tick('local'));
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ all: true, filters: { label: [LABEL.project] } });
    expect(res).toMatchObject({ listed: 5, indexed: 5, missing: 0, forged: [], unadopted: 0, invalid: [] });
    const rows = await store.listContainers('local');
    expect(rows.map((x) => [x.service, x.replica, x.state, x.applyId, x.configHash])).toEqual([
      ['db', 1, 'created', a, 'h-db'],
      ['q', 1, 'paused', a, 'h-q'],
      ['w', 1, 'restarting', a, 'h-w'],
      ['web', 1, 'running', a, 'h-web'],
      ['web', 2, 'stopped', a, 'h-web'],
    ]);
    expect(res.states).toEqual({ running: 1, stopped: 1, restarting: 1, paused: 1, created: 1, missing: 0 });
  });

  it('refuses forged apply ids (warned once), leaves hand-made and unreadable containers out', async () => {
    const a = await newApply(store);
    const forged = managed(randomUUID(), 'web', 9, { name: 'evil' });
    const byHand = container({ project: 'shop', environment: 'staging', service: 'web', replica: 1, hash: 'x', name: 'by-hand' });
    const unreadable = managed(a, 'web', 3, { replica: 'three' });
    const good = managed(a, 'web', 1);
    const { docker } = fakeDocker(() => [forged, byHand, unreadable, good]);
    const { r, lines } = reconciler(docker);
    const res = ok(await r.tick('local'));
    expect(res.forged.map((f) => f.id)).toEqual([forged.Id]);
    expect(res.unadopted).toBe(1);
    expect(res.invalid).toHaveLength(1);
    expect(res.invalid[0]).toContain('is not a positive integer');
    expect((await store.listContainers('local')).map((x) => x.containerId)).toEqual([good.Id]);
    const warnings = lines.filter((l) => l.level === 'warn' && l.msg.includes('not in this berth'));
    expect(warnings).toHaveLength(1);
    expect(JSON.stringify(warnings[0]!.obj)).toContain('evil');
    // Seen again next tick: still refused, not logged again.
    ok(await r.tick('local'));
    expect(lines.filter((l) => l.level === 'warn' && l.msg.includes('not in this berth'))).toHaveLength(1);
  });

  it('marks vanished rows missing, never those of an apply in flight; leaves in-flight containers to their apply', async () => {
    const done = await newApply(store);
    const running = await newApply(store, { completed: false });
    const keep = managed(done, 'web', 1);
    const gone = managed(done, 'web', 2);
    const inflightLive = managed(running, 'api', 1, { state: 'created' });
    let list = [keep, gone];
    const { docker } = fakeDocker(() => list);
    const { r } = reconciler(docker);
    ok(await r.tick('local'));
    // The executor's placeholder for a container its apply is about to make.
    await store.upsertContainers('local', [{ containerId: 'placeholder-1', project: 'shop', environment: 'staging', service: 'api', replica: 1, name: 'shop-staging-api-1', state: 'created', configHash: 'h-api', applyId: running }]);
    const placeholderBefore = (await store.listContainers('local')).find((x) => x.containerId === 'placeholder-1')!;
    list = [keep, inflightLive];
    const res = ok(await r.tick('local'));
    expect(res).toMatchObject({ missing: 1, inFlight: 1 });
    const rows = byId(await store.listContainers('local'));
    expect(rows.get(gone.Id)!.state).toBe('missing');
    expect(rows.get(keep.Id)!.state).toBe('running');
    expect(rows.get('placeholder-1')).toEqual(placeholderBefore);
    expect(rows.has(inflightLive.Id)).toBe(false);
    // Once the apply ends, its placeholder is an ordinary vanished row and its container is indexed.
    expect(await store.casApplyState(running, 0, { state: 'completed', finishedAt: Date.now() })).toBe(true);
    ok(await r.tick('local'));
    const after = byId(await store.listContainers('local'));
    expect(after.get('placeholder-1')!.state).toBe('missing');
    expect(after.get(inflightLive.Id)).toMatchObject({ state: 'created', applyId: running });
  });

  it('a container name a secret made (its io.berth.secret-fields label says so) is masked on every outbound channel from the first tick', async () => {
    const done = await newApply(store);
    const named = managed(done, 'web', 1, { name: 'app-Kq7-rotated-away' });
    named.Labels[LABEL.secretFields] = JSON.stringify(['container_name', 'environment.X']);
    const plain = managed(done, 'api', 1);
    const { docker } = fakeDocker(() => [named, plain]);
    const { r } = reconciler(docker);
    ok(await r.tick('local'));
    expect(outText('container app-Kq7-rotated-away is gone')).toBe(`container ${MASK} is gone`);
    expect(outText("container shop-staging-api-1 is gone")).toBe("container shop-staging-api-1 is gone");
  });

  it('never overwrites the apply id the executor wrote', async () => {
    const a = await newApply(store);
    const b = await newApply(store);
    const c = managed(b, 'web', 1);
    await store.upsertContainers('local', [{ containerId: c.Id, project: 'shop', environment: 'staging', service: 'web', replica: 1, name: 'shop-staging-web-1', state: 'running', configHash: 'h-web', applyId: a }]);
    const { docker } = fakeDocker(() => [c]);
    ok(await reconciler(docker).r.tick('local'));
    expect((await store.listContainers('local'))[0]!.applyId).toBe(a);
  });

  it('a failed Docker list changes no row', async () => {
    const a = await newApply(store);
    const list = [managed(a, 'web', 1), managed(a, 'web', 2)];
    let broken = false;
    const { docker } = fakeDocker(
      () => list,
      () => (broken ? Object.assign(new Error('connect ENOENT /var/run/docker.sock'), { code: 'ENOENT' }) : undefined),
    );
    const { r, lines } = reconciler(docker);
    ok(await r.tick('local'));
    const before = await store.listContainers('local');
    broken = true;
    const counted = countingStore(store);
    const r2 = new DriftReconciler({ store: counted.store, targets: ['local'], docker: () => docker, holder: 'r1', log: recordingLog().log });
    const res = await r2.tick('local');
    expect(res).toMatchObject({ status: 'error', stage: 'docker' });
    expect(counted.calls.filter((c) => /upsert|mark|delete/.test(c))).toEqual([]);
    expect(await store.listContainers('local')).toEqual(before);
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(0); // r's own log was not involved
  });

  it('a list call that hangs is aborted after listTimeoutMs; no row changes', async () => {
    const a = await newApply(store);
    const { docker } = fakeDocker(() => [managed(a, 'web', 1)]);
    ok(await reconciler(docker).r.tick('local'));
    const before = await store.listContainers('local');
    const hung: DockerLister = {
      listContainers: ((opts?: Dockerode.ContainerListOptions) =>
        new Promise((_resolve, reject) => opts?.abortSignal?.addEventListener('abort', () => reject(new Error('aborted: the engine did not answer'))))) as DockerLister['listContainers'],
    };
    const res = await reconciler(hung, { listTimeoutMs: 50 }).r.tick('local');
    expect(res).toMatchObject({ status: 'error', stage: 'docker' });
    expect(await store.listContainers('local')).toEqual(before);
  });

  it.each(['listContainers', 'listApplies', 'knownApplyIds'])('a failed store read (%s) changes no row', async (method) => {
    const a = await newApply(store);
    const { docker } = fakeDocker(() => [managed(a, 'web', 1)]);
    ok(await reconciler(docker).r.tick('local'));
    const before = await store.listContainers('local');
    const { docker: d2 } = fakeDocker(() => []); // everything gone: a tick that went on would mark the row missing
    const writes: string[] = [];
    const failing = new Proxy(store, {
      get(t, p) {
        const v = Reflect.get(t, p, t) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          if (p === method) return Promise.reject(new Error('database went away'));
          if (/upsert|mark|delete/.test(String(p))) writes.push(String(p));
          return (v as (...x: unknown[]) => unknown).apply(t, args);
        };
      },
    });
    const { log, lines } = recordingLog();
    const res = await new DriftReconciler({ store: failing, targets: ['local'], docker: () => d2, holder: 'r1', log }).tick('local');
    expect(res).toMatchObject({ status: 'error', stage: 'store-read', error: 'database went away' });
    expect(writes).toEqual([]);
    expect(await store.listContainers('local')).toEqual(before);
    expect(lines.some((l) => l.level === 'error' && l.msg.includes('no row changed'))).toBe(true);
  });

  it('prunes rows missing for longer than the retention', async () => {
    const a = await newApply(store);
    const c = managed(a, 'web', 1);
    let list = [c];
    const { docker } = fakeDocker(() => list);
    let clock = Date.now();
    const { r } = reconciler(docker, { now: () => clock, missingRetentionMs: 60_000 });
    ok(await r.tick('local'));
    list = [];
    expect(ok(await r.tick('local')).missing).toBe(1);
    expect(ok(await r.tick('local')).pruned).toBe(0);
    clock += 61_000;
    expect(ok(await r.tick('local')).pruned).toBe(1);
    expect(await store.listContainers('local')).toEqual([]);
  });

  it('makes the same store calls per tick for 10 and for 1,000 containers', async () => {
    const a = await newApply(store);
    const b = await newApply(store, { completed: false });
    const make = (n: number, tag: string) =>
      Array.from({ length: n }, (_, i) => managed(i % 10 === 0 ? b : a, `svc${tag}${Math.floor(i / 10)}`, (i % 10) + 1, { id: `${tag}${String(i).padStart(60, '0')}` }));
    const perTick = async (n: number, tag: string) => {
      let list = make(n, tag);
      const { docker, calls: dockerCalls } = fakeDocker(() => list);
      const counted = countingStore(store);
      const r = new DriftReconciler({ store: counted.store, targets: [`t-${tag}`], docker: () => docker, holder: 'r1' });
      const first = (ok(await r.tick(`t-${tag}`)), counted.counts());
      counted.reset();
      list = list.slice(0, n / 2); // half vanish: a tick with writes of both kinds
      const second = ok(await r.tick(`t-${tag}`));
      // every tenth container belongs to the apply in flight: never indexed, so never marked
      expect(second.missing).toBe(Array.from({ length: n / 2 }, (_, i) => i + n / 2).filter((i) => i % 10 !== 0).length);
      expect(second.inFlight).toBe(Array.from({ length: n / 2 }, (_, i) => i).filter((i) => i % 10 === 0).length);
      return { first, second: counted.counts(), docker: dockerCalls.length };
    };
    const ten = await perTick(10, 'a');
    const thousand = await perTick(1000, 'b');
    expect(ten.docker).toBe(2);
    expect(thousand.docker).toBe(2);
    expect(thousand.first).toEqual(ten.first);
    expect(thousand.second).toEqual(ten.second);
    expect(ten.first).toEqual({ acquireLease: 1, listContainers: 1, listApplies: 1, knownApplyIds: 1, upsertContainers: 1, markContainersMissing: 1, deleteContainers: 1 });
  });
}

describe('DriftReconciler rules (SQLite, fake Docker)', () => reconcilerRules(sqliteTestStore));
describeMysql('DriftReconciler rules (MariaDB, fake Docker)', () => reconcilerRules(mysqlTestStore));
describePostgres('DriftReconciler rules (PostgreSQL, fake Docker)', () => reconcilerRules(postgresTestStore));

// ── drift report and `berth status --drift` ───────────────────────────────

describe('driftReport and berth status --drift', () => {
  let ts: TestStore;
  beforeEach(async () => {
    ts = await sqliteTestStore();
  });
  afterEach(async () => {
    await ts.dispose();
  });

  const desired = state([spec('web', { replicas: 2 }), spec('api')], undefined, undefined, 'shop', 'staging');
  const hashOf = (svc: string) => desired.services.find((s) => s.spec.name === svc)!.configHash;
  const index = async (apply: string, rows: [string, number, ContainerRow['state'], string?][], target = 'local') =>
    ts.store.upsertContainers(
      target,
      rows.map(([service, replica, st, hash]) => ({ containerId: `${target}-${service}-${replica}`, project: 'shop', environment: 'staging', service, replica, name: `shop-staging-${service}-${replica}`, state: st, configHash: hash ?? hashOf(service), applyId: apply })),
    );

  it('compares the last completed apply with the index, per target it ran on', async () => {
    const old = await newApply(ts.store, { desired: state([spec('web')], undefined, undefined, 'shop', 'staging') });
    const a = await newApply(ts.store, { desired, targets: ['local', 'edge'] });
    await newApply(ts.store, { desired: state([spec('other')], undefined, undefined, 'shop', 'staging'), completed: false }); // in flight: not the reference
    expect(old).not.toBe(a);
    await index(a, [['web', 1, 'running'], ['web', 2, 'stopped'], ['api', 1, 'running', 'hand-edited']]);
    await index(a, [['web', 1, 'running'], ['web', 2, 'running'], ['api', 1, 'running']], 'edge');
    const report = await driftReport(ts.store);
    expect(report.environments.map((e) => [e.target, e.applyId, e.items.map((i) => `${i.service}#${i.replica} ${i.kind}`)])).toEqual([
      ['edge', a, []],
      ['local', a, ['api#1 config-changed', 'web#2 stopped']],
    ]);
    expect(report.count).toBe(2);
    expect((await driftReport(ts.store, { targets: ['edge'] })).count).toBe(0);
    expect((await driftReport(ts.store, { repo: 'someone/else' })).environments).toEqual([]);

    const text = renderDriftText(report);
    expect(text).toContain('acme/shop  staging  target local');
    expect(text).toMatch(/SERVICE\s+REPLICA\s+DRIFT/);
    expect(text).toMatch(/api\s+1\s+config-changed\s+shop-staging-api-1/);
    expect(text).not.toContain('target edge');

    const out: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(`ERR ${s}`) };
    expect(await main(['status', '--drift', '--database', ts.url], io)).toBe(2);
    expect(out.join('\n')).toContain('config-changed');
  });

  it('says "No drift." when the index matches, and when nothing was applied says so', async () => {
    const out: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => out.push(`ERR ${s}`) };
    expect(await main(['status', '--drift', '--database', ts.url], io)).toBe(0);
    expect(out.pop()).toMatch(/No completed applies/);
    const a = await newApply(ts.store, { desired });
    await index(a, [['web', 1, 'running'], ['web', 2, 'running'], ['api', 1, 'running']]);
    expect(await main(['status', '--drift', '--database', ts.url], io)).toBe(0);
    expect(out.pop()).toBe('No drift.');
  });

  it('an unreadable desired state is reported, not thrown', async () => {
    const created = await ts.store.createApply({ repo: 'acme/shop', pr: 1, environment: 'staging', kind: 'apply', actor: 'a', headSha: null, desiredDigest: 'd', planFingerprint: null, desiredJson: '{"nope":1}', operations: [{ target: 'local', tasks: [] }] });
    await ts.store.casApplyState(created.id, 0, { state: 'completed', finishedAt: Date.now() });
    const report = await driftReport(ts.store);
    expect(report.environments[0]!.error).toContain('cannot be read');
    expect(renderDriftText(report)).toContain('error:');
  });
});

// ── leases: two replicas on one shared database (MariaDB, PostgreSQL) ─────

function replicaLeases(name: string, open: () => Promise<TestStore>, d: (name: string, fn: () => void) => void) {
  d(`drift leases between two replicas on ${name}`, () => {
    let ts: TestStore;
    let stores: Store[] = [];
    let clock = 0;
    beforeEach(async () => {
      ts = await open();
      clock = Date.now();
      // Two replicas: two store instances (own pools) on one database, one clock to move time.
      stores = [await openStore(ts.url, { now: () => clock }), await openStore(ts.url, { now: () => clock })];
    });
    afterEach(async () => {
      for (const s of stores) await s.close();
      await ts.dispose();
    });

    it('only one replica reconciles a target per tick; after the lease expires the other takes over; stop() hands it over at once', async () => {
      const a = await newApply(stores[0]!);
      const { docker } = fakeDocker(() => [managed(a, 'web', 1)]);
      const [r1, r2] = stores.map((store, i) => new DriftReconciler({ store, targets: ['local'], docker: () => docker, holder: `replica-${i + 1}`, intervalMs: 10_000, now: () => clock }));
      for (let round = 0; round < 5; round++) {
        const results = await Promise.all([r1!.tick('local'), r2!.tick('local')]);
        const states = results.map((r) => r.status).sort();
        expect(states).toEqual(['lease-held', 'ok']);
      }
      // Whoever won keeps the target while it keeps ticking.
      const winner = (await stores[0]!.getLease('drift:local'))!.holder;
      const [w, l] = winner === 'replica-1' ? [r1!, r2!] : [r2!, r1!];
      expect(await l.tick('local')).toMatchObject({ status: 'lease-held', holder: winner });
      expect((await w.tick('local')).status).toBe('ok');
      // The winner dies (stops ticking): within the ttl the other still waits, after it takes over.
      clock += w.leaseTtlMs - 1;
      expect((await l.tick('local')).status).toBe('lease-held');
      clock += 2;
      expect((await l.tick('local')).status).toBe('ok');
      expect((await w.tick('local')).status).toBe('lease-held');
      // A clean stop releases the lease: the other replica does not wait for expiry.
      await l.stop();
      expect((await w.tick('local')).status).toBe('ok');
    });

    it('the reconciled index is shared: a row written by one replica is seen by the other', async () => {
      const a = await newApply(stores[0]!);
      let list = [managed(a, 'web', 1), managed(a, 'web', 2)];
      const { docker } = fakeDocker(() => list);
      const [r1, r2] = stores.map((store, i) => new DriftReconciler({ store, targets: ['local'], docker: () => docker, holder: `replica-${i + 1}`, intervalMs: 10_000 }));
      ok(await r1!.tick('local'));
      await r1!.stop();
      list = list.slice(0, 1);
      expect(ok(await r2!.tick('local')).missing).toBe(1);
      expect((await stores[0]!.listContainers('local')).map((r) => r.state)).toEqual(['running', 'missing']);
    });
  });
}

replicaLeases('MariaDB', mysqlTestStore, describeMysql);
replicaLeases('PostgreSQL', postgresTestStore, describePostgres);

describe('moved tags', () => {
  const D1 = `sha256:${'1'.repeat(64)}`;
  const D2 = `sha256:${'2'.repeat(64)}`;
  it('a pinned tag whose registry digest moved is drift; a digest reference, an unresolvable tag and pull_policy never are not', () => {
    expect(tagOf(`r.io/a:main@${D1}`)).toBe('r.io/a:main');
    expect(tagOf(`r.io/a@${D1}`)).toBeUndefined();
    expect(tagOf('r.io/a:main')).toBeUndefined();
    const d = state([spec('web', { image: `r.io/a:main@${D1}` }), spec('db', { image: `r.io/db@${D1}` }), spec('job', { image: `r.io/j:1@${D1}` }), spec('old', { image: `r.io/o:1@${D1}`, pullPolicy: 'never' })]);
    const items = movedTags(d, new Map([['r.io/a:main', D2], ['r.io/j:1', undefined], ['r.io/o:1', D2]]));
    expect(items).toEqual([{ service: 'web', replica: null, kind: 'image-moved', expected: D1, observed: D2, detail: `r.io/a:main now resolves to ${D2.slice(0, 19)}…, the applied digest is ${D1.slice(0, 19)}… (plan to deploy it)` }]);
    expect(movedTags(d, new Map([['r.io/a:main', D1]]))).toEqual([]);
  });
});
