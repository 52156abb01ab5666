// observe() against the real engine: objects made by hand with DockerEngine
// and berth labels read back exactly, and a host that matches its desired
// state plans to nothing.
import { randomBytes } from 'node:crypto';
import Dockerode from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerEngine } from '../src/docker/docker-engine.js';
import { observe } from '../src/docker/observe.js';
import { EngineError } from '../src/apply/engine.js';
import type { DesiredState, ServiceSpec } from '../src/model/model.js';
import { LABEL, names } from '../src/model/model.js';
import { planToString } from '../src/plan/plan.js';
import { reconcile } from '../src/plan/reconcile.js';
import { removeProject } from './helpers/docker.js';
import { DOCKER_SOCKET, describeDocker } from './helpers/env.js';
import { net, spec, state, vol } from './helpers/specs.js';

const PROJECT = `t-obs-${randomBytes(4).toString('hex')}`;
const OTHER_PROJECT = `${PROJECT}-other`;
const ENV = 'test';
const APPLY = 'apply-obs-1';

/** The image's own CMD exits on SIGTERM; the helpers' `sleep 3600` as PID 1 would make every stop wait 10 s. */
function svc(name: string, over: Partial<ServiceSpec> = {}): ServiceSpec {
  const { command: _command, ...s } = spec(name, over);
  return s;
}

function desiredState(): DesiredState {
  return state(
    [
      svc('web', { replicas: 2, networks: ['back', 'default'], environment: { DB_HOST: 'db' }, dependsOn: [{ service: 'db', condition: 'service_started' }] }),
      svc('db', { networks: ['back'], volumes: [{ type: 'volume', source: 'data', target: '/data', readOnly: false }] }),
    ],
    [net('back'), net('default')],
    [vol('data')],
    PROJECT,
    ENV,
  );
}

/** Creates the desired state by hand, as an apply would: networks, volumes, then containers on their networks, started. */
async function createByHand(engine: DockerEngine, d: DesiredState): Promise<void> {
  for (const n of d.networks) {
    await engine.createNetwork(names.network(d.project, d.environment, n.spec.name), n.spec, {
      [LABEL.project]: d.project,
      [LABEL.environment]: d.environment,
      [LABEL.network]: n.spec.name,
      [LABEL.configHash]: n.configHash,
      [LABEL.applyId]: APPLY,
    });
  }
  for (const v of d.volumes) {
    await engine.createVolume(names.volume(d.project, d.environment, v.spec.name), v.spec, {
      [LABEL.project]: d.project,
      [LABEL.environment]: d.environment,
      [LABEL.volume]: v.spec.name,
      [LABEL.configHash]: v.configHash,
      [LABEL.applyId]: APPLY,
    });
  }
  for (const s of d.services) {
    for (let r = 1; r <= s.spec.replicas; r++) {
      const name = names.container(d.project, d.environment, s.spec.name, r);
      const [first, ...rest] = s.spec.networks;
      await engine.createContainer(name, s.spec, { project: d.project, environment: d.environment, replica: r, configHash: s.configHash, applyId: APPLY }, first);
      for (const n of rest) await engine.connectNetwork(names.network(d.project, d.environment, n), name, { Aliases: [s.spec.name] });
      await engine.startContainer(name);
    }
  }
}

describeDocker('observe (real Docker engine)', () => {
  const docker = new Dockerode({ socketPath: DOCKER_SOCKET });
  const engine = new DockerEngine(docker);
  const d = desiredState();

  beforeAll(async () => {
    await createByHand(engine, d);
  });

  afterAll(async () => {
    await removeProject(PROJECT, { client: docker });
    await removeProject(OTHER_PROJECT, { client: docker });
  });

  it('reads back containers, networks and volumes with their berth labels', async () => {
    const { observed, warnings } = await observe(docker, PROJECT, ENV);
    expect(warnings).toEqual([]);
    expect(observed.project).toBe(PROJECT);
    expect(observed.environment).toBe(ENV);
    const web = d.services.find((s) => s.spec.name === 'web')!;
    const db = d.services.find((s) => s.spec.name === 'db')!;
    expect(observed.containers.map(({ id, config, ...rest }) => rest)).toEqual([
      { name: `${PROJECT}-${ENV}-db-1`, service: 'db', replica: 1, configHash: db.configHash, applyId: APPLY, image: 'docker.io/berth-test/app:1', state: 'running', networks: ['back'] },
      { name: `${PROJECT}-${ENV}-web-1`, service: 'web', replica: 1, configHash: web.configHash, applyId: APPLY, image: 'docker.io/berth-test/app:1', state: 'running', networks: ['back', 'default'] },
      { name: `${PROJECT}-${ENV}-web-2`, service: 'web', replica: 2, configHash: web.configHash, applyId: APPLY, image: 'docker.io/berth-test/app:1', state: 'running', networks: ['back', 'default'] },
    ]);
    for (const c of observed.containers) expect(c.id).toMatch(/^[0-9a-f]{64}$/);
    // The config label round-trips to the spec it was created from.
    expect(observed.containers[0].config).toEqual(db.spec);
    expect(observed.containers[1].config).toEqual(web.spec);
    expect(observed.networks.map(({ id, ...rest }) => rest)).toEqual(
      d.networks.map((n) => ({ dockerName: names.network(PROJECT, ENV, n.spec.name), name: n.spec.name, configHash: n.configHash })),
    );
    expect(observed.volumes).toEqual([{ dockerName: names.volume(PROJECT, ENV, 'data'), name: 'data', configHash: d.volumes[0].configHash }]);
  });

  it('plans nothing when the host matches the desired state', async () => {
    const { observed } = await observe(docker, PROJECT, ENV);
    const plan = reconcile(d, observed);
    expect(planToString(plan)).toBe('');
    expect(plan.changes.every((c) => c.action === 'unchanged')).toBe(true);
  });

  it('lists nothing of another project or environment, and turns unreadable labels into warnings', async () => {
    const base = { Image: 'docker.io/berth-test/app:1' };
    const labels = (project: string, env: string, over: Record<string, string> = {}) => ({
      [LABEL.project]: project,
      [LABEL.environment]: env,
      [LABEL.service]: 'web',
      [LABEL.replica]: '1',
      [LABEL.configHash]: 'h',
      ...over,
    });
    await docker.createContainer({ ...base, name: `${OTHER_PROJECT}-${ENV}-web-1`, Labels: labels(OTHER_PROJECT, ENV) });
    await docker.createContainer({ ...base, name: `${PROJECT}-staging-web-1`, Labels: labels(PROJECT, 'staging') });
    await docker.createNetwork({ Name: `${OTHER_PROJECT}-${ENV}_default`, Labels: { [LABEL.project]: OTHER_PROJECT, [LABEL.environment]: ENV, [LABEL.network]: 'default', [LABEL.configHash]: 'h' } });
    const garbage = await docker.createContainer({ ...base, name: `${PROJECT}-${ENV}-web-x`, Labels: labels(PROJECT, ENV, { [LABEL.replica]: 'one' }) });
    const badConfig = await docker.createContainer({ ...base, name: `${PROJECT}-${ENV}-extra-1`, Labels: labels(PROJECT, ENV, { [LABEL.service]: 'extra', [LABEL.config]: '{not json' }) });
    try {
      const { observed, warnings } = await observe(docker, PROJECT, ENV);
      expect(observed.containers.map((c) => c.name)).toEqual([`${PROJECT}-${ENV}-db-1`, `${PROJECT}-${ENV}-extra-1`, `${PROJECT}-${ENV}-web-1`, `${PROJECT}-${ENV}-web-2`]);
      expect(observed.networks.map((n) => n.dockerName)).toEqual([`${PROJECT}-${ENV}_back`, `${PROJECT}-${ENV}_default`]);
      expect(warnings).toEqual([`container ${PROJECT}-${ENV}-web-x (${garbage.id.slice(0, 12)}): ${LABEL.replica} "one" is not a positive integer; ignored`]);
      // An unreadable config label is tolerated: the container is kept, without a config.
      const extra = observed.containers.find((c) => c.service === 'extra')!;
      expect(extra.config).toBeUndefined();
      expect(extra.state).toBe('created');
      expect(extra.networks).toEqual([]);
    } finally {
      // What this test added goes now (its network too), not at the end of the file.
      await garbage.remove({ force: true });
      await badConfig.remove({ force: true });
      await removeProject(OTHER_PROJECT, { client: docker });
      await removeProject(PROJECT, { client: docker, environment: 'staging' });
    }
  });

  it('plans a start for a stopped container and a create for a removed one', async () => {
    const web1 = names.container(PROJECT, ENV, 'web', 1);
    const web2 = names.container(PROJECT, ENV, 'web', 2);
    // Killed (exit 137), not stopped: the test image exits 0 on SIGTERM, and a container that exited 0 under
    // restart "no" reads as a finished one-shot job (converged), as compose treats one.
    await docker.getContainer(web1).kill();
    await docker.getContainer(web1).wait();
    await docker.getContainer(web2).remove({ force: true });
    const { observed } = await observe(docker, PROJECT, ENV);
    expect(observed.containers.find((c) => c.name === web1)!.state).toBe('exited');
    expect(observed.containers.some((c) => c.name === web2)).toBe(false);
    const plan = reconcile(d, observed);
    expect(planToString(plan)).toBe(
      [
        '[] -> #1 image:docker.io/berth-test/app:1, EnsureImage, needed',
        '[] -> #2 service:web:1, StartContainer, stopped',
        '[1] -> #3 service:web:2, CreateContainer, missing',
        '[3] -> #4 service:web:2, ConnectNetwork, missing (default)',
        '[3,4] -> #5 service:web:2, StartContainer, missing',
        '',
      ].join('\n'),
    );
    // The start acts on the observed container, by id.
    expect(plan.nodes[1].target.containerId).toBe(observed.containers.find((c) => c.name === web1)!.id);
    expect(plan.changes.find((c) => c.name === 'web')).toMatchObject({ action: 'change', replicasBefore: 1, replicasAfter: 2 });
  });

  it("reports Docker's own message as an EngineError", async () => {
    const old = new Dockerode({ socketPath: DOCKER_SOCKET, version: 'v1.0' });
    const err = await observe(old, PROJECT, ENV).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).message).toMatch(/^list (containers|networks|volumes) of t-obs-[0-9a-f]+\/test: .*version/i);
    expect((err as EngineError).statusCode).toBe(400);
  });
});
