// Registry and remote-engine benchmarks (issue 12), against what
// scripts/ci-services.sh starts (local registry, sshd on 127.0.0.1):
//  plan_resolve_30_images_ms  observe + resolve 30 distinct registry tags + plan,
//                             next to plan_without_resolution_30_images_ms
//  apply_ssh_vs_unix_ratio    the same 30-service apply over SSH / over the local socket
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import type { Observer } from '../src/apply/prepare-apply.js';
import { planTargets, prepareApply } from '../src/apply/prepare-apply.js';
import { observe } from '../src/docker/observe.js';
import { credentialsFor } from '../src/docker/registry-auth.js';
import { pinDesired, resolveImages } from '../src/docker/resolve.js';
import { Executor } from '../src/apply/executor.js';
import { Lanes } from '../src/apply/lanes.js';
import type { DesiredState } from '../src/model/model.js';
import { LABEL } from '../src/model/model.js';
import { openStore } from '../src/store/open.js';
import { Targets } from '../src/docker/targets.js';
import { spec, state } from '../test/helpers/specs.js';
import type { Figure } from './lib.js';
import { figure, time } from './lib.js';

const CI = process.env.BERTH_CI_DIR ?? '/tmp/berth-ci';
const SSH_PORT = Number(process.env.BERTH_CI_SSH_PORT ?? 22022);
const REGISTRY = '127.0.0.1:5000';
const N = 30;
const docker = new Dockerode({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });

const stack = (project: string, image: (i: number) => string): DesiredState =>
  state(
    Array.from({ length: N }, (_, i) => {
      const s = spec(`s${i}`, { image: image(i), dependsOn: i >= 5 ? [{ service: `s${i % 5}`, condition: 'service_started' }] : [] });
      delete s.command;
      return s;
    }),
    undefined,
    [],
    project,
    'bench',
  );

export async function planResolve(log: (line: string) => void): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-config-'));
  const repo = `${REGISTRY}/t-bench-resolve/app`;
  const cli = (...args: string[]) => execFileSync('docker', ['--config', dir, ...args], { stdio: ['pipe', 'pipe', 'pipe'], input: args[0] === 'login' ? readFileSync(`${CI}/registry/password`) : undefined });
  try {
    cli('login', REGISTRY, '-u', 'berth', '--password-stdin');
    log(`pushing ${N} tags to ${repo}`);
    for (let i = 0; i < N; i++) {
      cli('tag', 'berth-test/app:1', `${repo}:t${i}`);
      cli('push', `${repo}:t${i}`);
      cli('rmi', `${repo}:t${i}`);
    }
    const creds = credentialsFor('local', { BERTH_DOCKER_CONFIG: join(dir, 'config.json') });
    const desired = stack('t-bench-resolve', (i) => `${repo}:t${i}`);
    const observer: Observer = async (_t, p, e) => (await observe(docker, p, e)).observed;
    const plain = await time(() => planTargets(desired, ['local'], observer), 10, 2);
    const pinned = await time(async () => planTargets(pinDesired(desired, await resolveImages(docker, desired.services.map((s) => s.spec.image), creds)), ['local'], observer), 10, 2);
    return [figure('plan_resolve_30_images_ms', pinned, null, { images: N, plan_without_resolution_median_ms: figure('x', plain, null).median }), figure('plan_without_resolution_30_images_ms', plain, null, { images: N })];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function removeProject(project: string) {
  const cs = await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${project}`] } });
  await Promise.all(cs.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
  for (const n of await docker.listNetworks({ filters: { label: [`${LABEL.project}=${project}`] } })) await docker.getNetwork(n.Id).remove().catch(() => {});
}

async function applyOnce(targets: Targets, project: string): Promise<number> {
  await removeProject(project);
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-'));
  const store = await openStore(`sqlite:${join(dir, 'b.sqlite')}`);
  try {
    const desired = stack(project, () => 'docker.io/berth-test/app:1');
    const observer: Observer = async (t, p, e) => (await observe(targets.docker(t), p, e)).observed;
    const t0 = performance.now();
    const { applyId } = await prepareApply(store, observer, { repo: 'b/b', pr: null, environment: 'bench', kind: 'apply', actor: 'bench', headSha: null, desired, targets: ['local'], onFailure: 'halt', parallelism: 32 });
    const s = await new Executor({ store, engine: (t) => targets.engine(t), lanes: new Lanes() }).run(applyId);
    const ms = performance.now() - t0;
    if (s !== 'completed') throw new Error(`bench apply of ${project} ended ${s}`);
    return ms;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    await removeProject(project);
  }
}

export async function sshVsUnix(log: (line: string) => void): Promise<Figure[]> {
  const unix = Targets.single('unix:///var/run/docker.sock');
  const ssh = Targets.single(`ssh://root@127.0.0.1:${SSH_PORT}?identity=${CI}/ssh/id_ed25519&known_hosts=${CI}/ssh/known_hosts`);
  const runs = Number(process.env.BENCH_APPLY_RUNS ?? 3);
  const t = { unix: [] as number[], ssh: [] as number[] };
  for (let r = 0; r < runs; r++) {
    // Alternate who goes first so the engine's drift hits both alike.
    for (const who of r % 2 ? (['ssh', 'unix'] as const) : (['unix', 'ssh'] as const)) {
      t[who].push(await applyOnce(who === 'ssh' ? ssh : unix, `t-bench-${who}${r}`));
      log(`${who} run ${r}: ${t[who].at(-1)!.toFixed(0)} ms`);
    }
  }
  const u = figure('x', t.unix, null).median;
  const s = figure('x', t.ssh, null).median;
  return [{ ...figure('apply_ssh_vs_unix_ratio', [s / u], null, { services: N, runs, ssh_median_ms: Math.round(s), unix_median_ms: Math.round(u) }, 'ratio') }];
}
