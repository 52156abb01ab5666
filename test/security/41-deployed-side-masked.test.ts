// The deployed side of a plan's diff is read back from the containers' config
// label. When a secret fed a field, that field was masked only while the
// desired state still fed it from a secret: once a PR stopped using the
// secret there (or removed the service), or the secret rotated to a value the
// masker no longer knows, the old value showed in the clear (`- environment.X:
// <old secret>`; red-team round of 2026-12-06, H1). The create now labels the
// fields a secret fed (io.berth.secret-fields) and the plan masks them on the
// deployed side whatever the desired state says.
import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { prepareApply } from '../../src/apply/prepare-apply.js';
import type { Observer } from '../../src/apply/prepare-apply.js';
import { Executor, parsePayload, redactError } from '../../src/apply/executor.js';
import { Lanes } from '../../src/apply/lanes.js';
import type { ContainerIdentity } from '../../src/apply/engine.js';
import { loadCompose } from '../../src/compose/load.js';
import { containerLabels } from '../../src/docker/create-options.js';
import { observe } from '../../src/docker/observe.js';
import { LABEL } from '../../src/model/model.js';
import type { DesiredState, ServiceSpec } from '../../src/model/model.js';
import { secretVariableValues } from '../../src/plan/mask.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { planToJson, renderPlanMarkdown, renderPlanText } from '../../src/plan/render.js';
import { FakeEngine, observeFake } from '../helpers/fake-engine.js';
import { sqliteTestStore } from '../helpers/stores.js';

const OLD = 'Tr0ub4dor-and-3';
const NEW = 'c0rrect-h0rse-b4ttery';

const load = (compose: string, secret: string): DesiredState =>
  loadCompose([{ path: 'compose.yml', text: compose }], { project: 'shop', environment: 'staging', variables: { DB_PASSWORD: secret } });

/**
 * What a berth before red-team round 8 loaded and deployed: an image a secret fed (now refused while planning,
 * which resolves images: security 43). Its containers still carry that in their labels.
 */
const secretImageOfOldBerth = (compose: string, secret: string): DesiredState => {
  const d = load(compose.replace('${DB_PASSWORD}', secret), secret);
  return { ...d, secretFields: { ...d.secretFields, web: [...(d.secretFields?.web ?? []), 'image'] } };
};

/** The containers `engine` creates, as Docker lists them: with the labels each create wrote (the fake engine keeps only some). */
function listedAsCreated(engine: FakeEngine): Dockerode.ContainerInfo[] {
  const listed: Dockerode.ContainerInfo[] = [];
  const create = engine.createContainer.bind(engine);
  engine.createContainer = async (name: string, spec: ServiceSpec, who: ContainerIdentity, ...rest: [string?]) => {
    const id = await create(name, spec, who, ...rest);
    listed.push({ Id: id, Names: [`/${name}`], Image: spec.image, State: 'running', Status: '', Labels: containerLabels(spec, who), NetworkSettings: { Networks: {} }, Mounts: [] } as unknown as Dockerode.ContainerInfo);
    return id;
  };
  return listed;
}

/** Applies `desired` with the executor and returns what each create was told to label, as observe() reads it back from Docker. */
async function deploy(desired: DesiredState): Promise<Dockerode.ContainerInfo[]> {
  const ts = await sqliteTestStore();
  try {
    const engine = new FakeEngine();
    const created = listedAsCreated(engine);
    const observer: Observer = async (_t, project, environment) => observeFake(engine, project, environment, { imageOf: () => 'docker.io/library/nginx:latest' });
    const secretValues = secretVariableValues({ DB_PASSWORD: OLD });
    const { applyId } = await prepareApply(ts.store, observer, { repo: 'acme/shop', pr: 1, environment: 'staging', kind: 'apply', actor: 'alice', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt', secretValues });
    expect(await new Executor({ store: ts.store, engine: () => engine, lanes: new Lanes(), stopPollMs: 0, healthPollMs: 5 }).run(applyId)).toBe('completed');
    return created;
  } finally {
    await ts.dispose();
  }
}

async function observed(containers: Dockerode.ContainerInfo[]) {
  const docker = {
    listContainers: async () => containers,
    listNetworks: async () => [],
    listVolumes: async () => ({ Volumes: [], Warnings: null }),
  } as unknown as Dockerode;
  return (await observe(docker, 'shop', 'staging')).observed;
}

function outputs(desired: DesiredState, containers: Awaited<ReturnType<typeof observed>>, secret: string): string[] {
  const plan = reconcile(desired, containers);
  const opts = { secretKeys: [] as string[], secretValues: secretVariableValues({ DB_PASSWORD: secret }) };
  return [renderPlanText(plan, opts), renderPlanMarkdown(plan, { environment: 'staging', target: 'local', ...opts }), JSON.stringify(planToJson(plan, opts))];
}

const DEPLOYED = [
  'services:',
  '  web:',
  '    image: nginx',
  '    environment:',
  '      GREETING: "hello ${DB_PASSWORD}"',
  '      MODE: blue',
  '    command: ["serve", "${DB_PASSWORD}"]',
  '  worker:',
  '    image: nginx',
  '    hostname: "w-${DB_PASSWORD}"',
  '    working_dir: "/srv/${DB_PASSWORD}"',
  '',
].join('\n');

describe('the deployed side of a diff keeps what a secret fed masked', () => {
  it('labels each created container with the fields a secret fed', async () => {
    const created = await deploy(load(DEPLOYED, OLD));
    const web = created.find((c) => c.Labels[LABEL.service] === 'web')!;
    expect(JSON.parse(web.Labels[LABEL.secretFields]!)).toEqual(expect.arrayContaining(['environment.GREETING', 'command']));
    const worker = created.find((c) => c.Labels[LABEL.service] === 'worker')!;
    expect(JSON.parse(worker.Labels[LABEL.secretFields]!)).toEqual(expect.arrayContaining(['hostname', 'working_dir']));
  });

  it('after the secret rotated and the PR stopped using it, or removed the service, the old value stays masked', async () => {
    const before = await observed(await deploy(load(DEPLOYED, OLD)));
    expect(before.containers.find((c) => c.service === 'web')!.configSecretFields).toEqual(expect.arrayContaining(['environment.GREETING', 'command']));
    // web: the greeting and the command no longer come from the secret; worker: removed; the secret has a new value
    const next = ['services:', '  web:', '    image: nginx', '    environment:', '      GREETING: "hello world"', '      MODE: green', '    command: ["serve"]', ''].join('\n');
    for (const out of outputs(load(next, NEW), before, NEW)) {
      expect(out).not.toContain(OLD);
      expect(out).not.toMatch(/w-Tr0ub/i);
      // what was never a secret's still shows, on both sides
      expect(out).toContain('blue');
      expect(out).toContain('green');
      expect(out).toContain('hello world');
    }
    const md = outputs(load(next, NEW), before, NEW)[1]!;
    expect(md).toMatch(/- environment\.GREETING: ••••••/);
    expect(md).toMatch(/\+ environment\.GREETING: hello world/);
    expect(md).toMatch(/- working_dir: ••••••/);
  });

  it("a container name a secret fed is masked in the steps that stop, rename and remove the deployed container", async () => {
    const deployed = ['services:', '  web:', '    image: nginx', '    container_name: "app-${DB_PASSWORD}"', ''].join('\n');
    const before = await observed(await deploy(load(deployed, OLD)));
    expect(before.containers[0]!.name).toBe(`app-${OLD}`);
    for (const next of [['services:', '  web:', '    image: nginx', '    container_name: app-plain', ''], ['services:', '  api:', '    image: nginx', '']])
      for (const out of outputs(load(next.join('\n'), NEW), before, NEW)) expect(out).not.toContain(OLD);
  });

  it('a Docker message quoting the deployed container a secret named is stored masked by the apply that stops it', async () => {
    const deployed = ['services:', '  web:', '    image: nginx', '    container_name: "app-${DB_PASSWORD}"', ''].join('\n');
    const before = await observed(await deploy(load(deployed, OLD)));
    const ts = await sqliteTestStore();
    try {
      const observer: Observer = async () => before;
      const desired = load(['services:', '  web:', '    image: nginx', ''].join('\n'), NEW);
      const { applyId } = await prepareApply(ts.store, observer, { repo: 'acme/shop', pr: 1, environment: 'staging', kind: 'apply', actor: 'alice', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt', secretValues: secretVariableValues({ DB_PASSWORD: NEW }) });
      const payload = parsePayload((await ts.store.getApply(applyId))!.desiredJson);
      const stored = redactError(`Error response from daemon: Cannot kill container: app-${OLD}: container app-${OLD} is not running`, payload);
      expect(stored).not.toContain(OLD);
      expect(stored).toContain('Cannot kill container');
    } finally {
      await ts.dispose();
    }
  });

  it('(red-team round 6) the image a secret fed, deployed before the secret rotated, is not in the plan JSON as a rollout\'s previousImage', async () => {
    const compose = 'services:\n  web:\n    image: "ghcr.io/acme/app:${DB_PASSWORD}"\n    deploy:\n      update_config:\n        order: start-first\n';
    const before = await observed(await deploy(secretImageOfOldBerth(compose, OLD)));
    expect(before.containers[0]!.configSecretFields).toContain('image');
    // the PR now writes the image itself
    const [text, md, json] = outputs(load(compose.replace('${DB_PASSWORD}', '2'), NEW), before, NEW);
    // the diff masks it (the label works there)
    expect(md).toMatch(/- image: ••••••/);
    for (const out of [text, md, json]) expect(out).not.toContain(OLD);
  });
  it('(red-team round 6) an anonymous volume whose path a secret fed, deployed before the secret rotated, is not in the plan JSON as an inherited volume', async () => {
    const compose = 'services:\n  web:\n    image: nginx\n    volumes: ["/data/${DB_PASSWORD}"]\n';
    const created = await deploy(load(compose, OLD));
    // Docker reports the anonymous volume the create made at that path
    for (const c of created) (c as { Mounts: unknown[] }).Mounts = [{ Type: 'volume', Name: 'a'.repeat(64), Destination: `/data/${OLD}` }];
    const before = await observed(created);
    expect(before.containers[0]!.configSecretFields).toContain('volumes');
    const [text, md, json] = outputs(load(compose, NEW), before, NEW);
    expect(md).toMatch(/- volumes: ••••••/);
    for (const out of [text, md, json]) expect(out).not.toContain(OLD);
  });
  it('(red-team round 6) a failed start-first rollout does not store nor report the old secret-made image ("rolled back — still serving …")', async () => {
    const compose = 'services:\n  web:\n    image: "ghcr.io/acme/app:${DB_PASSWORD}"\n    deploy:\n      update_config:\n        order: start-first\n';
    const ts = await sqliteTestStore();
    try {
      const engine = new FakeEngine();
      const listed = listedAsCreated(engine);
      const network = secretImageOfOldBerth(compose, OLD).networks[0]!.configHash;
      const observer: Observer = async (_t, project, environment) => ({
        ...(await observed(listed.filter((c) => engine.containers.has(c.Id)))),
        networks: observeFake(engine, project, environment, { imageOf: () => '', hashOf: () => network }).networks,
      });
      const run = async (secret: string) => {
        // first what an earlier berth deployed, then the PR's own image (the secret rotated meanwhile)
        const desired = secret === OLD ? secretImageOfOldBerth(compose, OLD) : load(compose.replace('${DB_PASSWORD}', '2'), secret);
        const { applyId } = await prepareApply(ts.store, observer, { repo: 'acme/shop', pr: 1, environment: 'staging', kind: 'apply', actor: 'alice', headSha: secret, desired, targets: ['local'], onFailure: 'halt', secretValues: secretVariableValues({ DB_PASSWORD: secret }) });
        return { applyId, state: await new Executor({ store: ts.store, engine: () => engine, lanes: new Lanes(), stopPollMs: 0, healthPollMs: 5 }).run(applyId) };
      };
      expect((await run(OLD)).state).toBe('completed');
      // the secret rotates; the new container cannot be made, the old one keeps serving
      (engine.opts as { failures?: { match: RegExp; message: string }[] }).failures = [{ match: /^createContainer .*_[0-9a-f]{12}$/, message: 'boom' }];
      const { applyId, state } = await run(NEW);
      expect(state).not.toBe('completed');
      const errors = (await ts.store.listTasksForApply(applyId)).map((t) => t.error ?? '').filter(Boolean);
      expect(errors.join('\n')).toMatch(/rolled back/);
      for (const e of errors) expect(e).not.toContain(OLD);
    } finally {
      await ts.dispose();
    }
  });

  it('a compose file cannot write the label (nor any io.berth. label) itself', () => {
    for (const labels of ['      io.berth.secret-fields: "[]"', '      - "IO.BERTH.repository=acme/other"'])
      expect(() => load(['services:', '  web:', '    image: nginx', '    labels:', labels, ''].join('\n'), OLD), labels).toThrow(/compose\.yml:5: .*labels under io\.berth\. are berth's own/);
    // a key from a secret: refused all the same, without quoting it
    const fromSecret = () => load(['services:', '  web:', '    image: nginx', '    labels:', '      - "${DB_PASSWORD}=x"', ''].join('\n'), 'io.berth.config');
    expect(fromSecret).toThrow(/compose\.yml:5: .*derived from a secret variable is invalid/);
    expect(fromSecret).not.toThrow(/io\.berth\.config/);
  });
});
