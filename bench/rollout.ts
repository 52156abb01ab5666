// Rollouts on the real engine (issue 13):
//   rollout_failed_requests  failed/total requests a client on the service's network sees while a
//                            2-replica busybox httpd (with a healthcheck) changes image, for berth
//                            start-first, berth stop-first (update_config, one replica at a time),
//                            berth without update_config (compose's behaviour) and `docker-compose up -d`
//                            (Debian's 1.29) on the same change
//   rollout_overhead_ratio   start-first apply time / stop-first apply time for the same change
// The probe asks the service's name in a tight loop (busybox nc, a fresh DNS lookup each time), from
// before the change until the service has answered 50 times in a row from the new version (so an
// outage after `docker-compose up -d` returned, while containers start, counts too).
// BENCH_ROLLOUT_RUNS (default 4: a zero for start-first is claimed only over at least 4 runs) runs per
// mode, alternating the order of the modes.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import type { Observer } from '../src/apply/prepare-apply.js';
import { prepareApply } from '../src/apply/prepare-apply.js';
import { loadCompose } from '../src/compose/load.js';
import { DockerEngine } from '../src/docker/docker-engine.js';
import { observe } from '../src/docker/observe.js';
import { Executor } from '../src/apply/executor.js';
import { Lanes } from '../src/apply/lanes.js';
import { openStore } from '../src/store/open.js';
import { removeProject } from '../test/helpers/docker.js';
import { startProbe, type ProbeResult } from '../test/helpers/http-probe.js';

const docker = new Dockerode({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
const ENV = 'bench';
/** the change is over once the service answered this many times in a row from the new version */
const SETTLED = { version: '2', streak: 50 };
type Mode = 'berth start-first' | 'berth stop-first' | 'berth default' | 'docker-compose';
const MODES: Mode[] = ['berth start-first', 'berth stop-first', 'berth default', 'docker-compose'];

const HEALTH = `    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/VERSION"]
      interval: 1s
      timeout: 1s
      retries: 2
`;

function berthCompose(version: 1 | 2, mode: Mode): string {
  const update = mode === 'berth start-first' ? '      update_config: {order: start-first, parallelism: 1}\n' : mode === 'berth stop-first' ? '      update_config: {order: stop-first, parallelism: 1}\n' : '';
  return `services:
  web:
    image: berth-test/app:${version}
    command: ["httpd", "-f", "-p", "8080", "-h", "/"]
    init: true
    deploy:
      replicas: 2
${update}${HEALTH}`;
}

/** compose 1.29 reads `scale:` in a 2.x file (deploy.replicas only with --compatibility). */
function composeFile(version: 1 | 2): string {
  return `version: "2.4"
services:
  web:
    image: berth-test/app:${version}
    command: ["httpd", "-f", "-p", "8080", "-h", "/"]
    init: true
    scale: 2
${HEALTH}`;
}

async function berthApply(project: string, text: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-rollout-'));
  const store = await openStore(`sqlite:${join(dir, 'b.sqlite')}`);
  try {
    const desired = loadCompose([{ path: 'compose.yml', text }], { project, environment: ENV });
    const observer: Observer = async (_t, p, e) => (await observe(docker, p, e)).observed;
    const t0 = performance.now();
    const { applyId } = await prepareApply(store, observer, { repo: 'b/b', pr: null, environment: ENV, kind: 'apply', actor: 'bench', headSha: null, desired, targets: ['local'], onFailure: 'halt' });
    const state = await new Executor({ store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 100 }).run(applyId);
    const ms = performance.now() - t0;
    if (state !== 'completed') throw new Error(`berth apply of ${project} ended ${state}`);
    return ms;
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One image change under the probe; returns what the probe saw and how long the change took. */
async function once(mode: Mode, run: number, dir: string): Promise<{ seen: ProbeResult; ms: number }> {
  const project = `t-benchroll-${mode.replace(/[^a-z]/g, '')}-${run}`;
  const probeName = `${project}-probe`;
  await docker.getContainer(probeName).remove({ force: true }).catch(() => {});
  if (mode === 'docker-compose') {
    const file = join(dir, 'docker-compose.yml');
    const compose = (...args: string[]) => execFileSync('docker-compose', ['-p', project, '-f', file, ...args], { stdio: 'ignore' });
    try {
      writeFileSync(file, composeFile(1));
      compose('up', '-d');
      await waitHealthy(project);
      const probe = await startProbe(docker, { name: probeName, network: `${project}_default`, host: 'web' });
      writeFileSync(file, composeFile(2));
      const t0 = performance.now();
      compose('up', '-d');
      const ms = performance.now() - t0;
      return { seen: await probe.stop(SETTLED), ms };
    } finally {
      await docker.getContainer(probeName).remove({ force: true }).catch(() => {});
      compose('down', '-t', '1');
    }
  }
  await removeProject(project);
  try {
    await berthApply(project, berthCompose(1, mode));
    const probe = await startProbe(docker, { name: probeName, network: `${project}-${ENV}_default`, host: 'web' });
    const ms = await berthApply(project, berthCompose(2, mode));
    return { seen: await probe.stop(SETTLED), ms };
  } finally {
    await docker.getContainer(probeName).remove({ force: true }).catch(() => {});
    await removeProject(project);
  }
}

/** compose 1.29's `up -d` does not wait for health: the bench does, so every mode starts from a serving service. */
async function waitHealthy(project: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const cs = await docker.listContainers({ filters: { label: [`com.docker.compose.project=${project}`] } });
    if (cs.length === 2 && cs.every((c) => /\(healthy\)/.test(c.Status))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${project}: docker-compose's containers did not become healthy`);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function bench(log: (line: string) => void) {
  if (spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' }).status !== 0) throw new Error('docker-compose (Debian 1.29) is not installed');
  const runs = Number(process.env.BENCH_ROLLOUT_RUNS ?? 4);
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-rollout-compose-'));
  const seen = new Map<Mode, { failed: number; total: number; perRun: string[] }>(MODES.map((m) => [m, { failed: 0, total: 0, perRun: [] }]));
  const times = new Map<Mode, number[]>(MODES.map((m) => [m, []]));
  try {
    for (let r = 0; r < runs; r++) {
      const order = r % 2 ? [...MODES].reverse() : MODES;
      for (const mode of order) {
        const { seen: s, ms } = await once(mode, r, dir);
        const acc = seen.get(mode)!;
        acc.failed += s.failed;
        acc.total += s.total;
        acc.perRun.push(`${s.failed}/${s.total}`);
        times.get(mode)!.push(ms);
        log(`${mode} run ${r + 1}: ${s.failed} failed of ${s.total} requests (answers ${JSON.stringify(s.ok)}), change took ${(ms / 1000).toFixed(1)} s`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const figures: Record<string, unknown>[] = MODES.map((mode) => {
    const s = seen.get(mode)!;
    return {
      name: 'rollout_failed_requests',
      mode,
      value: Number((s.failed / Math.max(1, s.total)).toFixed(5)),
      failed: s.failed,
      total: s.total,
      per_run: s.perRun,
      change_ms_median: Math.round(median(times.get(mode)!)),
      unit: 'ratio',
      target: null,
      ...(mode === 'berth start-first' ? { goal: 0 } : {}),
      runs,
    };
  });
  const start = median(times.get('berth start-first')!);
  const stop = median(times.get('berth stop-first')!);
  figures.push({ name: 'rollout_overhead_ratio', value: Number((start / stop).toFixed(3)), unit: 'ratio', target: null, start_first_ms: Math.round(start), stop_first_ms: Math.round(stop), runs });
  return figures as ({ name: string } & Record<string, unknown>)[];
}
