// The executor against the real dockerd: converge from empty, no-op after,
// image bump recreates in order, healthcheck failure skips dependants, a
// missing image fails with Docker's own message.
import { afterAll, afterEach, beforeAll, beforeEach, expect, it } from 'vitest';
import type { Observer } from '../src/apply/prepare-apply.js';
import { planTargets, prepareApply } from '../src/apply/prepare-apply.js';
import { apiAtLeast } from '../src/docker/api-version.js';
import { DockerEngine } from '../src/docker/docker-engine.js';
import { observe } from '../src/docker/observe.js';
import { Executor } from '../src/apply/executor.js';
import { Lanes } from '../src/apply/lanes.js';
import type { DesiredState, ServiceSpec } from '../src/model/model.js';
import { LABEL } from '../src/model/model.js';
import type { TaskRow } from '../src/store/store.js';
import { docker, removeProject } from './helpers/docker.js';
import { describeDocker } from './helpers/env.js';
import { spec, state, vol } from './helpers/specs.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

const PROJECT = `t-exec-${process.pid}`;

/** Busybox services that exit at once on SIGTERM (the image's own CMD). */
function svc(name: string, over: Partial<ServiceSpec> = {}): ServiceSpec {
  const s = spec(name, over);
  if (!over.command) delete s.command;
  return s;
}

const observer: Observer = async (_t, project, env) => (await observe(docker, project, env)).observed;

const cleanup = () => removeProject(PROJECT);

describeDocker('executor on the real Docker engine', () => {
  let ts: TestStore;
  let executor: Executor;
  beforeAll(cleanup);
  afterAll(cleanup);
  beforeEach(async () => {
    ts = await sqliteTestStore();
    executor = new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 100 });
  });
  afterEach(async () => {
    await ts.dispose();
    await cleanup();
  });

  async function apply(d: DesiredState) {
    const { applyId, plans } = await prepareApply(ts.store, observer, {
      repo: 'acme/shop', pr: 1, environment: d.environment, kind: 'apply', actor: 'alice', headSha: 'abc', desired: d, targets: ['local'], onFailure: 'halt',
    });
    const result = await executor.run(applyId);
    return { applyId, result, plans, tasks: await ts.store.listTasksForApply(applyId) };
  }

  // Generous timeout and retries: on a loaded 2-core engine a docker exec can take over a second, and
  // three slow checks in a row would call a healthy container unhealthy. Healthy is seen at the first pass.
  const health = { test: ['CMD-SHELL', 'test -f /VERSION'], intervalMs: 200, timeoutMs: 5000, retries: 10, startPeriodMs: 0 };
  const stack = (image: string, env = 'staging') =>
    state(
      [
        svc('db', { image, healthcheck: health, volumes: [{ type: 'volume', source: 'data', target: '/data', readOnly: false }] }),
        svc('api', { image, dependsOn: [{ service: 'db', condition: 'service_healthy' }], environment: { DB_HOST: 'db' } }),
        svc('web', { image, dependsOn: [{ service: 'api', condition: 'service_started' }], replicas: 2 }),
      ],
      undefined,
      [vol('data')],
      PROJECT,
      env,
    );

  it('converges a multi-service stack from an empty host; the next plan is empty', async () => {
    const r = await apply(stack('docker.io/berth-test/app:1'));
    expect(r.result).toBe('completed');
    expect(r.tasks.every((t) => t.state === 'succeeded')).toBe(true);
    const running = await docker.listContainers({ filters: { label: [`${LABEL.project}=${PROJECT}`] } });
    expect(running.map((c) => c.Names[0]).sort()).toEqual([`/${PROJECT}-staging-api-1`, `/${PROJECT}-staging-db-1`, `/${PROJECT}-staging-web-1`, `/${PROJECT}-staging-web-2`]);
    for (const c of running) expect(c.Labels[LABEL.applyId]).toBe(r.applyId);
    const [again] = await planTargets(stack('docker.io/berth-test/app:1'), ['local'], observer);
    expect(again!.plan.nodes).toEqual([]);
  }, 60_000);

  it('an image bump recreates every container in order: create tmp, stop old, park old, rename, start, remove old', async () => {
    await apply(stack('docker.io/berth-test/app:1'));
    const before = await docker.getContainer(`${PROJECT}-staging-api-1`).inspect();
    const r = await apply(stack('docker.io/berth-test/app:2'));
    expect(r.result).toBe('completed');
    const after = await docker.getContainer(`${PROJECT}-staging-api-1`).inspect();
    expect(after.Id).not.toBe(before.Id);
    expect(after.Config.Image).toBe('docker.io/berth-test/app:2');
    expect(after.State.Running).toBe(true);
    // Journal order within the recreate group of api:1.
    const group = r.tasks.filter((t) => JSON.parse(t.nodeJson).group === 'recreate:api:1');
    const order = [...group].sort((a, b) => a.startedAt! - b.startedAt! || a.nodeId - b.nodeId).map((t) => t.kind);
    expect(order).toEqual(['CreateContainer', 'StopContainer', 'RenameContainer', 'RenameContainer', 'StartContainer', 'RemoveContainer']);
    for (const t of group) for (const d of t.deps) {
      const dep = r.tasks.find((x) => x.nodeId === d)!;
      expect(t.startedAt!).toBeGreaterThanOrEqual(dep.finishedAt!);
    }
    // The volume survived, no temporary container is left.
    const names = (await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`] } })).map((c) => c.Names[0]);
    expect(names.some((n) => n!.includes('_'))).toBe(false);
    const [again] = await planTargets(stack('docker.io/berth-test/app:2'), ['local'], observer);
    expect(again!.plan.nodes).toEqual([]);
  }, 90_000);

  it('a container failing its healthcheck fails the apply with the health log; dependants are skipped', async () => {
    const bad = { test: ['CMD-SHELL', 'echo db-not-ready >&2; exit 1'], intervalMs: 200, timeoutMs: 1000, retries: 1, startPeriodMs: 0 };
    const d = state(
      [svc('db', { healthcheck: bad }), svc('api', { dependsOn: [{ service: 'db', condition: 'service_healthy' }] })],
      undefined,
      [],
      PROJECT,
      'health',
    );
    const r = await apply(d);
    expect(r.result).toBe('failed');
    const by = (k: string, res: string) => r.tasks.find((t) => t.kind === k && t.resource === res) as TaskRow;
    expect(by('WaitHealthy', 'service:db:1').state).toBe('failed');
    expect(by('WaitHealthy', 'service:db:1').error).toContain('unhealthy');
    expect(by('WaitHealthy', 'service:db:1').error).toContain('db-not-ready');
    // api may be created ahead (like compose), never started.
    expect(by('StartContainer', 'service:api:1').state).toBe('skipped');
    const api = await docker.listContainers({ all: true, filters: { name: [`${PROJECT}-health-api-1`] } });
    expect(api.every((c) => c.State !== 'running')).toBe(true);
  }, 60_000);

  it('healthcheck.start_interval needs API 1.44: on an older engine the create is refused before anything exists; on a newer one it reaches the container', async () => {
    const api = ((await docker.version()) as { ApiVersion: string }).ApiVersion;
    expect(await new DockerEngine(docker).apiVersion()).toBe(api);
    const r = await apply(state([svc('db', { image: 'docker.io/berth-test/app:1', healthcheck: { ...health, startPeriodMs: 60_000, startIntervalMs: 1000 } })], undefined, [], PROJECT, 'staging'));
    const create = r.tasks.find((t) => t.kind === 'CreateContainer')!;
    if (apiAtLeast(api, '1.44')) {
      expect(r.result).toBe('completed');
      expect((await docker.getContainer(`${PROJECT}-staging-db-1`).inspect()).Config.Healthcheck?.StartInterval).toBe(1_000_000_000);
    } else {
      expect(r.result).toBe('failed');
      expect(create.error).toBe(`service db: healthcheck.start_interval needs Docker Engine 25 or later (API 1.44); this target's engine speaks API ${api} and would ignore it — remove healthcheck.start_interval, or deploy to a newer engine (the container was not created)`);
      expect(await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`] } })).toEqual([]);
    }
  }, 60_000);

  it('volume.subpath needs API 1.45: on an older engine the create is refused before anything exists; on a newer one the subdirectory is mounted', async () => {
    const api = ((await docker.version()) as { ApiVersion: string }).ApiVersion;
    const r = await apply(state([svc('db', { image: 'docker.io/berth-test/app:1', volumes: [{ type: 'volume', source: 'data', target: '/d', readOnly: false, subpath: 'sub' }] })], undefined, [vol('data')], PROJECT, 'staging'));
    if (apiAtLeast(api, '1.45')) {
      expect(r.result).toBe('completed');
      const m = (await docker.getContainer(`${PROJECT}-staging-db-1`).inspect()).Mounts as unknown as { Destination: string }[];
      expect(m.map((x) => x.Destination)).toContain('/d');
    } else {
      expect(r.result).toBe('failed');
      expect(r.tasks.find((t) => t.kind === 'CreateContainer')!.error).toContain(`needs Docker Engine 26 or later (API 1.45); this target's engine speaks API ${api} and would ignore it`);
      expect(await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`] } })).toEqual([]);
    }
  }, 60_000);

  it('an image that does not exist fails with Docker\'s message in the task row', async () => {
    const d = state([svc('ghost', { image: 'docker.io/berth-test/does-not-exist:1' })], undefined, [], PROJECT, 'ghost');
    const r = await apply(d);
    expect(r.result).toBe('failed');
    const pull = r.tasks.find((t) => t.kind === 'EnsureImage')!;
    expect(pull.state).toBe('failed');
    expect(pull.error).toContain('berth-test/does-not-exist');
    expect(pull.error!.length).toBeGreaterThan('pull image docker.io/berth-test/does-not-exist:1: '.length);
    expect(r.tasks.filter((t) => t.kind === 'CreateContainer').every((t) => t.state === 'skipped')).toBe(true);
  }, 60_000);
});
