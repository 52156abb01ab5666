// observe_500_containers_ms: observe() of a project with 500 labelled
// containers (created, not started) on the real engine, next to the raw
// label-filtered listContainers call it is built on. Everything it creates
// carries project `t-bench-…` and is removed afterwards, even on failure.
import { randomBytes } from 'node:crypto';
import Dockerode from 'dockerode';
import { DockerEngine } from '../src/docker/docker-engine.js';
import { berthFilters, observe } from '../src/docker/observe.js';
import { desiredNetwork, desiredService } from '../src/model/desired.js';
import { LABEL, names } from '../src/model/model.js';
import { net, spec } from '../test/helpers/specs.js';
import type { Figure } from './lib.js';
import { figure, pool, time } from './lib.js';

const SERVICES = 50;
const REPLICAS = 10; // 500 containers
const RUNS = 25;
const WARMUP = 3;
const CONCURRENCY = 8;
const IMAGE = 'docker.io/berth-test/app:1';
/** Not from the design: a provisional budget (PERF.md measured < 1 ms for one list of a 30-container stack). */
export const OBSERVE_TARGET_MS = 100;

async function removeProject(docker: Dockerode, project: string): Promise<number> {
  const filters = { label: [`${LABEL.project}=${project}`] };
  const containers = await docker.listContainers({ all: true, filters });
  await pool(containers, CONCURRENCY, async (c) => {
    await docker.getContainer(c.Id).remove({ force: true, v: true });
  });
  for (const n of await docker.listNetworks({ filters })) await docker.getNetwork(n.Id).remove();
  return containers.length;
}

export async function bench(log: (line: string) => void): Promise<Figure[]> {
  const docker = new Dockerode({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
  const engine = new DockerEngine(docker);
  try {
    await docker.getImage(IMAGE).inspect();
  } catch {
    throw new Error(`${IMAGE} is not on this engine: run bash scripts/test-images.sh first`);
  }
  const project = `t-bench-${randomBytes(4).toString('hex')}`;
  const env = 'bench';
  let cleaning: Promise<number> | undefined;
  const cleanup = () => (cleaning ??= removeProject(docker, project));
  const onSignal = (sig: NodeJS.Signals) => {
    log(`observe: ${sig}: removing ${project} before exiting`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const network = desiredNetwork(net('default'));
    await engine.createNetwork(names.network(project, env, 'default'), network.spec, {
      [LABEL.project]: project,
      [LABEL.environment]: env,
      [LABEL.network]: 'default',
      [LABEL.configHash]: network.configHash,
      [LABEL.applyId]: 'bench',
    });
    const work = Array.from({ length: SERVICES * REPLICAS }, (_, i) => {
      const s = desiredService(spec(`svc${String(Math.floor(i / REPLICAS)).padStart(2, '0')}`, { image: IMAGE, replicas: REPLICAS, environment: { INDEX: String(i) } }));
      return { s, replica: (i % REPLICAS) + 1 };
    });
    const t0 = Date.now();
    await pool(work, CONCURRENCY, async ({ s, replica }) => {
      await engine.createContainer(names.container(project, env, s.spec.name, replica), s.spec, { project, environment: env, replica, configHash: s.configHash, applyId: 'bench' }, 'default');
    });
    log(`observe: created ${work.length} containers in ${((Date.now() - t0) / 1000).toFixed(1)} s (project ${project})`);

    const check = await observe(docker, project, env);
    if (check.observed.containers.length !== work.length || check.warnings.length) {
      throw new Error(`observe read ${check.observed.containers.length} containers and ${check.warnings.length} warnings, expected ${work.length} and none`);
    }
    const filters = berthFilters(project, env);
    // Alternate the two so load on the shared engine hits both alike.
    const obs: number[] = [];
    const raw: number[] = [];
    await time(() => observe(docker, project, env), 0, WARMUP);
    for (let i = 0; i < RUNS; i++) {
      obs.push(...(await time(() => observe(docker, project, env), 1, 0)));
      raw.push(...(await time(() => docker.listContainers({ all: true, filters }), 1, 0)));
    }
    const o = figure('observe_500_containers_ms', obs, OBSERVE_TARGET_MS, { containers: work.length });
    const r = figure('list_containers_raw_500_ms', raw, null, { containers: work.length });
    o.ratio_vs_raw_list = Number((o.median / r.median).toFixed(3));
    return [o, r];
  } finally {
    const removed = await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    log(`observe: removed ${removed} containers of ${project}`);
  }
}
