// A staging PR (or another repository) must not reach production's data or
// network by naming it: `volumes: x: {external: true, name: <production's
// volume>}` or a network of another project. An object carrying berth's labels
// of another (repository, project, environment) is refused at plan time (and
// so at apply, which plans again) unless policy.allow_shared_objects names it.
// Real engine: the objects are created here with berth's labels.
import Dockerode from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { parseConfig } from '../../src/config/config.js';
import { observe } from '../../src/docker/observe.js';
import { LABEL } from '../../src/model/model.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { DOCKER_SOCKET, describeDocker } from '../helpers/env.js';

const PROJECT = 't-sec-17';
const REPO = 'acme/sec17';
const PROD_VOLUME = 't-sec-17_production_data';
const PROD_NETWORK = 't-sec-17_production_backend';
const OTHER_VOLUME = 't-sec-17_staging_cache';
const HANDMADE_VOLUME = 't-sec-17-portainer_data';
const HANDMADE_NETWORK = 't-sec-17-web';
const labels = (environment: string, kind: 'volume' | 'network', key: string, repository = REPO) => ({
  [LABEL.project]: PROJECT,
  [LABEL.environment]: environment,
  [LABEL.repository]: repository,
  [kind === 'volume' ? LABEL.volume : LABEL.network]: key,
});

const policyOf = (yaml: string) => parseConfig(['project: t-sec-17', 'environments:', '  - name: staging', yaml].join('\n')).policy;

describeDocker('foreign berth objects named by a PR are refused unless the policy allows them by name', () => {
  const docker = new Dockerode({ socketPath: DOCKER_SOCKET });
  const cleanup = async () => {
    await docker.getVolume(PROD_VOLUME).remove().catch(() => undefined);
    await docker.getVolume(OTHER_VOLUME).remove().catch(() => undefined);
    await docker.getNetwork(PROD_NETWORK).remove().catch(() => undefined);
    await docker.getVolume(HANDMADE_VOLUME).remove().catch(() => undefined);
    await docker.getNetwork(HANDMADE_NETWORK).remove().catch(() => undefined);
  };
  beforeAll(async () => {
    await cleanup();
    await docker.createVolume({ Name: PROD_VOLUME, Labels: labels('production', 'volume', 'data') });
    await docker.createNetwork({ Name: PROD_NETWORK, Labels: labels('production', 'network', 'backend') });
    // same project and environment as the PR's, but made by another repository
    await docker.createVolume({ Name: OTHER_VOLUME, Labels: labels('staging', 'volume', 'cache', 'evil/other') });
    // made by hand, with no labels at all (another app's data, a reverse proxy's shared network)
    await docker.createVolume({ Name: HANDMADE_VOLUME });
    await docker.createNetwork({ Name: HANDMADE_NETWORK });
  });
  afterAll(cleanup);

  const plan = async (compose: string, policy = policyOf('')) => {
    const desired = { ...loadCompose([{ path: 'compose.yml', text: compose }], { project: PROJECT, environment: 'staging', policy }), repository: REPO };
    const { observed } = await observe(docker, PROJECT, 'staging', { repository: REPO, desired });
    return reconcile(desired, observed);
  };
  const volumeCompose = ['services:', '  web:', '    image: berth-test/app:1', '    volumes: [data:/data]', 'volumes:', '  data:', '    external: true', `    name: ${PROD_VOLUME}`, ''].join('\n');
  const networkCompose = ['services:', '  web:', '    image: berth-test/app:1', '    networks: [backend]', 'networks:', '  backend:', '    external: true', `    name: ${PROD_NETWORK}`, ''].join('\n');

  it("staging's external volume naming production's volume is refused, located", async () => {
    await expect(plan(volumeCompose)).rejects.toMatchObject({
      code: 'foreign_object',
      file: 'compose.yml',
      message: expect.stringContaining(`volume data: "${PROD_VOLUME}" is berth's volume data of project t-sec-17, environment production`),
    });
  });

  it("staging's external network naming production's network is refused", async () => {
    await expect(plan(networkCompose)).rejects.toMatchObject({ code: 'foreign_object', message: expect.stringContaining(`network backend: "${PROD_NETWORK}"`) });
  });

  it('the legacy external: {name: …} form is refused the same way', async () => {
    const legacy = ['services:', '  web:', '    image: berth-test/app:1', '    volumes: [data:/data]', 'volumes:', '  data:', '    external:', `      name: ${PROD_VOLUME}`, ''].join('\n');
    await expect(plan(legacy)).rejects.toMatchObject({ code: 'foreign_object' });
  });

  it('another repository’s object of the same project and environment is never adopted through name:', async () => {
    const compose = ['services:', '  web:', '    image: berth-test/app:1', '    volumes: [cache:/cache]', 'volumes:', '  cache:', `    name: ${OTHER_VOLUME}`, ''].join('\n');
    await expect(plan(compose)).rejects.toMatchObject({ code: 'name_taken', message: expect.stringContaining('repository evil/other') });
    const external = compose.replace(`    name: ${OTHER_VOLUME}`, `    external: true\n    name: ${OTHER_VOLUME}`);
    await expect(plan(external)).rejects.toMatchObject({ code: 'foreign_object', message: expect.stringContaining('repository evil/other') });
  });

  it('policy.allow_shared_objects naming the object lets the plan use it (and only that one)', async () => {
    const policy = policyOf(`policy:\n  allow_shared_objects: [${PROD_VOLUME}]`);
    const p = await plan(volumeCompose, policy);
    expect(p.nodes.some((n) => n.kind === 'CreateVolume')).toBe(false);
    await expect(plan(networkCompose, policy)).rejects.toMatchObject({ code: 'foreign_object' });
  });

  // Red team: an object with no labels at all (`docker volume create`, `docker run -v`, a hand-made proxy
  // network) was reachable by external: true, or adopted through name: — another app's data, or a network
  // production's containers are on. Now it takes the policy naming it, as an object of another environment does.
  it('an object made by hand (no labels) is reached neither by external: true nor by name: unless the policy names it', async () => {
    const volume = (how: string) => ['services:', '  web:', '    image: berth-test/app:1', '    volumes: [data:/data]', 'volumes:', '  data:', ...how.split('\n').map((l) => `    ${l}`), ''].join('\n');
    const network = ['services:', '  web:', '    image: berth-test/app:1', '    networks: [edge]', 'networks:', '  edge:', '    external: true', `    name: ${HANDMADE_NETWORK}`, ''].join('\n');
    await expect(plan(volume(`external: true\nname: ${HANDMADE_VOLUME}`))).rejects.toMatchObject({ code: 'not_shared', file: 'compose.yml', line: 6, message: expect.stringContaining(`"${HANDMADE_VOLUME}" exists on this target but was not made by this environment`) });
    await expect(plan(volume(`name: ${HANDMADE_VOLUME}`))).rejects.toMatchObject({ code: 'not_shared', line: 6 });
    await expect(plan(network)).rejects.toMatchObject({ code: 'not_shared', line: 6 });
    const policy = policyOf(`policy:\n  allow_shared_objects: [${HANDMADE_VOLUME}, ${HANDMADE_NETWORK}]`);
    expect((await plan(volume(`external: true\nname: ${HANDMADE_VOLUME}`), policy)).nodes.some((n) => n.kind === 'CreateVolume')).toBe(false);
    expect((await plan(volume(`name: ${HANDMADE_VOLUME}`), policy)).nodes.some((n) => n.kind === 'CreateVolume')).toBe(false);
    expect((await plan(network, policy)).nodes.some((n) => n.kind === 'CreateNetwork')).toBe(false);
  });
});
