// berth refuses another environment's, project's or repository's objects that
// carry its own labels (17-foreign-objects), but a volume or network another
// docker compose project made on the same host (labelled
// com.docker.compose.project, say a database stack run by hand) was taken as
// it was: a staging PR's `volumes: {d: {external: true, name: billing_pgdata}}`
// mounted that stack's database files, and `name: billing_pgdata` without
// external adopted it "as what berth would create". Such an object belongs to
// another deployment: refused, located, unless policy.allow_shared_objects
// names it. Real engine: the objects are created here with compose's labels.
import Dockerode from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { parseConfig } from '../../src/config/config.js';
import { observe } from '../../src/docker/observe.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { DOCKER_SOCKET, describeDocker } from '../helpers/env.js';

const PROJECT = 't-sec-29';
const REPO = 'acme/sec29';
const VOLUME = 't-sec-29-billing_pgdata';
const NETWORK = 't-sec-29-billing_default';
const composeLabels = (kind: 'volume' | 'network', key: string) => ({ 'com.docker.compose.project': 't-sec-29-billing', [`com.docker.compose.${kind}`]: key, 'com.docker.compose.version': '2.29.0' });
const policyOf = (yaml: string) => parseConfig([`project: ${PROJECT}`, 'environments:', '  - name: staging', yaml].join('\n')).policy;

describeDocker("another docker compose project's volumes and networks are not a PR's to take", () => {
  const docker = new Dockerode({ socketPath: DOCKER_SOCKET });
  const cleanup = async () => {
    await docker.getVolume(VOLUME).remove().catch(() => undefined);
    await docker.getNetwork(NETWORK).remove().catch(() => undefined);
  };
  beforeAll(async () => {
    await cleanup();
    await docker.createVolume({ Name: VOLUME, Labels: composeLabels('volume', 'pgdata') });
    await docker.createNetwork({ Name: NETWORK, Labels: composeLabels('network', 'default') });
  });
  afterAll(cleanup);

  const plan = async (compose: string, policy = policyOf('')) => {
    const desired = { ...loadCompose([{ path: 'compose.yml', text: compose }], { project: PROJECT, environment: 'staging', policy }), repository: REPO };
    const { observed } = await observe(docker, PROJECT, 'staging', { repository: REPO, desired });
    return reconcile(desired, observed);
  };
  const volume = (decl: string[]) => ['services:', '  web:', '    image: berth-test/app:1', '    volumes: [d:/data]', 'volumes:', '  d:', ...decl.map((l) => `    ${l}`), ''].join('\n');
  const network = ['services:', '  web:', '    image: berth-test/app:1', '    networks: [n]', 'networks:', '  n:', '    external: true', `    name: ${NETWORK}`, ''].join('\n');

  it('external: true naming it is refused, located, naming the compose project', async () => {
    await expect(plan(volume(['external: true', `name: ${VOLUME}`]))).rejects.toMatchObject({
      code: 'foreign_object',
      file: 'compose.yml',
      line: 6,
      message: expect.stringContaining(`"${VOLUME}" belongs to docker compose project t-sec-29-billing`),
      hint: expect.stringContaining('allow_shared_objects'),
    });
    await expect(plan(network)).rejects.toMatchObject({ code: 'foreign_object', message: expect.stringContaining(`"${NETWORK}" belongs to docker compose project t-sec-29-billing`) });
  });

  it('name: without external never adopts it', async () => {
    await expect(plan(volume([`name: ${VOLUME}`]))).rejects.toMatchObject({ code: 'name_taken', message: expect.stringContaining('docker compose project t-sec-29-billing') });
  });

  it('a volume `docker compose -p <project>-<env>` made (a stack moving to berth) is still adopted under berth\'s name', async () => {
    const own = `${PROJECT}-staging_cache`;
    await docker.createVolume({ Name: own, Labels: { 'com.docker.compose.project': `${PROJECT}-staging`, 'com.docker.compose.volume': 'cache' } });
    try {
      const p = await plan(['services:', '  web:', '    image: berth-test/app:1', '    volumes: [cache:/cache]', 'volumes:', '  cache: {}', ''].join('\n'));
      expect(p.changes.find((c) => c.kind === 'volume')).toMatchObject({ name: 'cache', action: 'unchanged', reasons: [`adopted existing ${own}`] });
    } finally {
      await docker.getVolume(own).remove().catch(() => undefined);
    }
  });

  it('policy.allow_shared_objects naming it lets the plan use it', async () => {
    const p = await plan(volume(['external: true', `name: ${VOLUME}`]), policyOf(`policy:\n  allow_shared_objects: [${VOLUME}]`));
    expect(p.nodes.some((n) => n.kind === 'CreateVolume')).toBe(false);
  });
});
