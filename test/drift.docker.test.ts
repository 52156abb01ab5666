// The drift reconciler against the real Docker engine: the index is populated
// from one list call, a container removed by hand becomes `missing`, one made
// by hand with forged labels is refused, an unreachable engine changes no row,
// rows and containers of an apply in flight are left alone, and the store is
// asked the same number of times for 10 real containers as for 1,000.
//
// The engine is shared with other test files: the reconciler sees their
// containers too (they name applies this store never made, so they come back
// as refused). Assertions look at this file's project only.
import { randomUUID } from 'node:crypto';
import Dockerode from 'dockerode';
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import { desiredService } from '../src/model/desired.js';
import { DockerEngine } from '../src/docker/docker-engine.js';
import type { DockerLister, DriftLogger, TickResult } from '../src/drift/drift.js';
import { driftReport, DriftReconciler } from '../src/drift/drift.js';
import type { ApplyPayload } from '../src/apply/executor.js';
import type { DesiredState } from '../src/model/model.js';
import { LABEL, names } from '../src/model/model.js';
import type { ContainerRow, Store } from '../src/store/store.js';
import { countingStore } from './helpers/counting-store.js';
import { DOCKER_SOCKET, describeDocker } from './helpers/env.js';
import { spec, state } from './helpers/specs.js';
import type { TestStore } from './helpers/stores.js';
import { sqliteTestStore } from './helpers/stores.js';

const docker = new Dockerode({ socketPath: DOCKER_SOCKET });
const engine = new DockerEngine(docker);
const PROJECT = `t-drift-${process.pid}`;
const ENV = 'staging';
const IMAGE = 'docker.io/berth-test/app:1';

async function cleanup() {
  const cs = await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`] } });
  await Promise.all(cs.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
}

function recordingLog() {
  const lines: { level: string; obj: object; msg: string }[] = [];
  const log: DriftLogger = {
    info: (obj, msg = '') => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg = '') => lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg = '') => lines.push({ level: 'error', obj, msg }),
  };
  return { log, lines };
}

const ok = (r: TickResult) => {
  if (r.status !== 'ok') throw new Error(`tick was ${r.status}: ${JSON.stringify(r)}`);
  return r;
};
const mine = (rows: ContainerRow[]) => rows.filter((r) => r.project === PROJECT);

describeDocker('drift reconciler on the real Docker engine', () => {
  let ts: TestStore;
  let store: Store;
  beforeAll(cleanup);
  afterAll(cleanup);
  beforeEach(async () => {
    ts = await sqliteTestStore();
    store = ts.store;
  });
  afterEach(async () => {
    await ts.dispose();
    await cleanup();
  });

  const desired: DesiredState = state([spec('web', { image: IMAGE, replicas: 2 })], undefined, undefined, PROJECT, ENV);
  const web = desired.services[0]!;

  async function newApply(completed = true): Promise<string> {
    const payload: ApplyPayload = { desired, onFailure: 'halt' };
    const { id } = await store.createApply({
      repo: 'acme/shop', pr: 1, environment: ENV, kind: 'apply', actor: 'alice', headSha: 'abc', desiredDigest: 'd', planFingerprint: null,
      desiredJson: JSON.stringify(payload), operations: [{ target: 'local', tasks: [] }],
    });
    if (completed) expect(await store.casApplyState(id, 0, { state: 'completed', startedAt: Date.now(), finishedAt: Date.now() })).toBe(true);
    return id;
  }

  /** A container as the executor makes it (berth's labels, this apply's id). */
  async function make(applyId: string, replica: number, opts: { start?: boolean; service?: string } = {}): Promise<string> {
    const s = opts.service ? desiredService(spec(opts.service, { image: IMAGE })) : web;
    const id = await engine.createContainer(names.container(PROJECT, ENV, s.spec.name, replica), s.spec, { project: PROJECT, environment: ENV, replica, configHash: s.configHash, applyId });
    if (opts.start) await engine.startContainer(id);
    return id;
  }

  const reconciler = (over: Partial<ConstructorParameters<typeof DriftReconciler>[0]> = {}) => {
    const rec = recordingLog();
    return { r: new DriftReconciler({ store, targets: ['local'], docker: () => docker, holder: 'test', intervalMs: 10_000, log: rec.log, ...over }), lines: rec.lines };
  };

  it('populates the index from the engine; the drift report compares it with the applied state', async () => {
    const a = await newApply();
    const running = await make(a, 1, { start: true });
    const created = await make(a, 2);
    const res = ok(await reconciler().r.tick('local'));
    expect(res.listed).toBeGreaterThanOrEqual(2);
    const rows = mine(await store.listContainers('local'));
    expect(rows.map((r) => [r.containerId, r.service, r.replica, r.name, r.state, r.configHash, r.applyId])).toEqual([
      [running, 'web', 1, `${PROJECT}-${ENV}-web-1`, 'running', web.configHash, a],
      [created, 'web', 2, `${PROJECT}-${ENV}-web-2`, 'created', web.configHash, a],
    ]);
    const report = await driftReport(store);
    expect(report.environments.map((e) => e.items.map((i) => `${i.service}#${i.replica} ${i.kind} ${i.state}`))).toEqual([['web#2 stopped created']]);
  });

  it('a container removed by hand becomes missing; the others stay as they are', async () => {
    const a = await newApply();
    const keep = await make(a, 1, { start: true });
    const doomed = await make(a, 2);
    const { r } = reconciler();
    ok(await r.tick('local'));
    await docker.getContainer(doomed).remove({ force: true });
    const res = ok(await r.tick('local'));
    expect(res.missing).toBe(1);
    const rows = new Map(mine(await store.listContainers('local')).map((x) => [x.containerId, x.state]));
    expect(rows.get(doomed)).toBe('missing');
    expect(rows.get(keep)).toBe('running');
    expect((await driftReport(store)).environments[0]!.items.map((i) => `${i.kind} ${i.detail}`)).toEqual([`missing container ${PROJECT}-${ENV}-web-2 (${doomed.slice(0, 12)}) is gone`]);
  });

  it('a container started by hand with forged labels is refused and logged; one with only a project label is not adopted', async () => {
    const a = await newApply();
    const real = await make(a, 1);
    const forgedApply = randomUUID();
    const forged = await docker.createContainer({
      name: `${PROJECT}-${ENV}-web-9`,
      Image: IMAGE,
      Cmd: ['sleep', '3600'],
      Labels: { [LABEL.project]: PROJECT, [LABEL.environment]: ENV, [LABEL.service]: 'web', [LABEL.replica]: '9', [LABEL.configHash]: web.configHash, [LABEL.applyId]: forgedApply },
    });
    await forged.start();
    const byHand = await docker.createContainer({ name: `${PROJECT}-by-hand`, Image: IMAGE, Cmd: ['sleep', '3600'], Labels: { [LABEL.project]: PROJECT } });
    const { r, lines } = reconciler();
    const res = ok(await r.tick('local'));
    expect(res.forged.find((f) => f.id === forged.id)).toMatchObject({ project: PROJECT, service: 'web', applyId: forgedApply, name: `${PROJECT}-${ENV}-web-9` });
    expect(res.unadopted).toBeGreaterThanOrEqual(1);
    expect(mine(await store.listContainers('local')).map((x) => x.containerId)).toEqual([real]);
    const warning = lines.find((l) => l.level === 'warn' && l.msg.includes('not in this berth') && JSON.stringify(l.obj).includes(forgedApply));
    expect(warning).toBeDefined();
    expect(lines.some((l) => l.level === 'info' && JSON.stringify(l.obj).includes(byHand.id.slice(0, 12)))).toBe(true);
  });

  it('a Docker list failure (no engine at the socket) changes no row', async () => {
    const a = await newApply();
    await make(a, 1, { start: true });
    await make(a, 2);
    ok(await reconciler().r.tick('local'));
    const before = await store.listContainers('local');
    expect(mine(before)).toHaveLength(2);
    const nowhere = new Dockerode({ socketPath: '/nonexistent/berth-test/docker.sock' });
    const { r, lines } = reconciler({ docker: () => nowhere });
    const res = await r.tick('local');
    expect(res).toMatchObject({ status: 'error', stage: 'docker' });
    expect((res as { error: string }).error).toMatch(/ENOENT|nonexistent/);
    expect(lines.some((l) => l.level === 'error' && l.msg.includes('no row changed'))).toBe(true);
    expect(await store.listContainers('local')).toEqual(before);
  });

  it('never flips rows of an apply in flight to missing, and leaves its containers to it until it ends', async () => {
    const done = await newApply();
    const inFlight = await newApply(false);
    const old = await make(done, 1, { start: true });
    const { r } = reconciler();
    ok(await r.tick('local'));
    // The running apply: a placeholder row for what it is creating, and a container it has made so far.
    await store.upsertContainers('local', [{ containerId: 'placeholder-web-2', project: PROJECT, environment: ENV, service: 'web', replica: 2, name: `${PROJECT}-${ENV}-web-2`, state: 'created', configHash: web.configHash, applyId: inFlight }]);
    const fresh = await make(inFlight, 2);
    await docker.getContainer(old).remove({ force: true }); // the apply replaced the old container
    const res = ok(await r.tick('local'));
    expect(res.inFlight).toBeGreaterThanOrEqual(1);
    let rows = new Map(mine(await store.listContainers('local')).map((x) => [x.containerId, x]));
    expect(rows.get(old)!.state).toBe('missing');
    expect(rows.get('placeholder-web-2')!.state).toBe('created');
    expect(rows.has(fresh)).toBe(false);
    // The apply ends: its container is indexed, its placeholder (never a real container) goes missing.
    expect(await store.casApplyState(inFlight, 0, { state: 'completed', finishedAt: Date.now() })).toBe(true);
    ok(await r.tick('local'));
    rows = new Map(mine(await store.listContainers('local')).map((x) => [x.containerId, x]));
    expect(rows.get(fresh)).toMatchObject({ state: 'created', applyId: inFlight });
    expect(rows.get('placeholder-web-2')!.state).toBe('missing');
  });

  it('asks the store as often for 10 real containers as for 1,000 (fake list)', async () => {
    const a = await newApply();
    for (let i = 1; i <= 10; i++) await make(a, i, { service: `s${i}` });
    const counted = countingStore(store);
    const real = new DriftReconciler({ store: counted.store, targets: ['local'], docker: () => docker, holder: 'test' });
    const ten = ok(await real.tick('local'));
    expect(mine(await store.listContainers('local'))).toHaveLength(10);
    expect(ten.listed).toBeGreaterThanOrEqual(10);
    const tenCounts = counted.counts();

    const synthetic = Array.from({ length: 1000 }, (_, i) => ({
      Id: `f${String(i).padStart(63, '0')}`,
      Names: [`/${PROJECT}-${ENV}-svc${i}-1`],
      State: 'exited',
      Labels: { [LABEL.project]: PROJECT, [LABEL.environment]: ENV, [LABEL.service]: `svc${i}`, [LABEL.replica]: '1', [LABEL.configHash]: 'h', [LABEL.applyId]: a },
    })) as unknown as Dockerode.ContainerInfo[];
    let listCalls = 0;
    const fake: DockerLister = { listContainers: (async () => (listCalls++, synthetic)) as DockerLister['listContainers'] };
    counted.reset();
    const big = ok(await new DriftReconciler({ store: counted.store, targets: ['fake'], docker: () => fake, holder: 'test' }).tick('fake'));
    expect(big.indexed).toBe(1000);
    expect(listCalls).toBe(1);
    expect(counted.counts()).toEqual(tenCounts);
    expect(Object.values(tenCounts).reduce((x, y) => x + y, 0)).toBe(7);
  });
});
