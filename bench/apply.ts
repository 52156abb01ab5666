// Apply benchmarks (figures printed as JSON lines by bench/run.ts):
//  apply_critical_path_ratio     scheduler overhead on a fake engine (20 ms per call): wall ÷ the
//                                nominal bound (critical path × 20 ms); the median of 9 applies on
//                                one store, after 3 more (the process's first) reported apart
//  apply_critical_path_ratio_actual_calls  the same runs ÷ the bound from each call's recorded
//                                duration (the fake engine's timers fire late by 0–5 ms)
//  apply_vs_floor_ratio          berth vs raw parallel dockerode calls, real engine
//  apply_vs_docker_compose_ratio berth vs `docker-compose up -d`, real engine
//  noop_apply_100_services_ms    load + observe + plan when nothing changed
// PERF.md: the engine's floor on these machines is 0.75–0.91× docker-compose,
// so berth ÷ compose is reported, not targeted (PERF.md of 2026-12-02 replaced
// its 0.80); berth ÷ the raw parallel floor (≤ 1.10) is the target that counts.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Dockerode from 'dockerode';
import type { Observer } from '../src/apply/prepare-apply.js';
import { planTargets, prepareApply } from '../src/apply/prepare-apply.js';
import { loadCompose } from '../src/compose/load.js';
import { DockerEngine } from '../src/docker/docker-engine.js';
import { observe } from '../src/docker/observe.js';
import { Executor } from '../src/apply/executor.js';
import { Lanes } from '../src/apply/lanes.js';
import type { DesiredState } from '../src/model/model.js';
import { LABEL } from '../src/model/model.js';
import type { PlanNode } from '../src/plan/plan.js';
import { reconcile } from '../src/plan/reconcile.js';
import { openStore } from '../src/store/open.js';
import type { Store } from '../src/store/store.js';
import { FakeEngine } from '../test/helpers/fake-engine.js';
import { spec, state } from '../test/helpers/specs.js';

export interface Figure {
  name: string;
  value: number;
  unit: 'ms' | 'ratio';
  /** null: reported, not targeted */
  target: number | null;
  detail?: Record<string, unknown>;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const docker = new Dockerode({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });

async function tempStore(): Promise<{ store: Store; dispose: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-'));
  const store = await openStore(`sqlite:${join(dir, 'b.sqlite')}`);
  return { store, dispose: async () => (await store.close(), rmSync(dir, { recursive: true, force: true })) };
}

/** Longest chain of nodes in the plan DAG (each node is one call). */
function criticalPathNodes(nodes: PlanNode[]): number {
  return longestPath(nodes, () => 1);
}

/** Longest path through the plan DAG, each node weighing `weight(node)`. */
function longestPath(nodes: PlanNode[], weight: (n: PlanNode) => number): number {
  const depth = new Map<number, number>();
  for (const n of [...nodes].sort((a, b) => a.id - b.id)) depth.set(n.id, weight(n) + Math.max(0, ...n.deps.map((d) => depth.get(d)!)));
  return Math.max(0, ...depth.values());
}

/**
 * How long each node's engine call really took on the fake engine (its 20 ms
 * timer fires late by up to a few ms): the node's call is found by method and
 * subject, as the fake engine records them. Throws when a node has no call.
 */
function actualDurations(nodes: PlanNode[], calls: readonly { method: string; subject: string; start: number; end: number }[], project: string): (n: PlanNode) => number {
  const took = new Map(calls.map((c) => [`${c.method} ${c.subject}`, c.end - c.start]));
  return (n) => {
    const t = n.target;
    const subject = n.kind === 'EnsureImage' ? t.image : n.kind === 'CreateNetwork' ? `${project}_${t.network}` : (t.containerId ?? t.containerName);
    const ms = took.get(`${n.kind[0]!.toLowerCase()}${n.kind.slice(1)} ${subject}`);
    if (ms === undefined) throw new Error(`critical-path bench: no engine call recorded for node ${n.id} (${n.kind} ${subject})`);
    return ms;
  };
}

export async function criticalPath(): Promise<Figure[]> {
  const LEVELS = 5;
  const PER_LEVEL = 40;
  const CALL_MS = 20;
  // Wide enough that the bound is the critical path itself (the definition), so the ratio is pure executor overhead.
  const PARALLELISM = 512;
  // Measured applies, after WARMUP more (reported apart, as warmup_walls_ms: the process's first applies,
  // while V8 is still optimising the executor's code); the median of the measured ones counts.
  const WARMUP = 3;
  const RUNS = 9;
  const services = [];
  for (let l = 0; l < LEVELS; l++)
    for (let i = 0; i < PER_LEVEL; i++)
      services.push(
        spec(`l${l}s${i}`, {
          dependsOn: l === 0 ? [] : [{ service: `l${l - 1}s${i}`, condition: 'service_started' as const }, { service: `l${l - 1}s${(i + 7) % PER_LEVEL}`, condition: 'service_started' as const }].sort((a, b) => (a.service < b.service ? -1 : 1)),
        }),
      );
  const desired = state(services, undefined, [], 'bench', 'cp');
  const plan = reconcile(desired, { project: 'bench', environment: 'cp', containers: [], networks: [], volumes: [] });
  const chain = criticalPathNodes(plan.nodes);
  // No schedule can beat the longest chain (nor, with a narrower bound, the work spread over the slots).
  const bound = Math.max(chain, Math.ceil(plan.nodes.length / PARALLELISM)) * CALL_MS;
  const walls: number[] = [];
  // The same bound from the calls' real durations (each run's own): what the executor adds, the fake engine's timer lateness aside.
  const actualBounds: number[] = [];
  // As in a server: one store for every apply (SQLite prepares each statement once per connection, and a
  // fresh file per run would charge those preparations to every run's critical path).
  const { store, dispose } = await tempStore();
  const warmups: number[] = [];
  try {
    for (let run = 0; run < WARMUP + RUNS; run++) {
      const engine = new FakeEngine({ delayMs: CALL_MS });
      const observer: Observer = async (_t, project, environment) => ({ project, environment, containers: [], networks: [], volumes: [] });
      const executor = new Executor({ store, engine: () => engine, lanes: new Lanes() });
      // As `/apply` starts one: lock, apply and the driver's lease in one transaction, the rows handed to the executor.
      // Each run its own repository, as applies of several PRs and repositories on one server are.
      const repo = `b/b${run}`;
      const { applyId, handover } = await prepareApply(store, observer, {
        repo, pr: 1, environment: 'cp', kind: 'apply', actor: 'bench', headSha: null, desired, targets: ['local'], onFailure: 'halt', parallelism: PARALLELISM,
        start: { lock: { owner: `${repo}#1`, pr: 1 }, lease: { holder: executor.holder, ttlMs: executor.leaseTtlMs } },
      });
      const t0 = performance.now();
      const s = await executor.run(applyId, handover);
      const took = performance.now() - t0;
      if (s !== 'completed') throw new Error(`critical-path bench apply ended ${s}`);
      if (run < WARMUP) {
        warmups.push(took);
        continue;
      }
      walls.push(took);
      const work = engine.calls.reduce((a, c) => a + (c.end - c.start), 0);
      actualBounds.push(Math.max(longestPath(plan.nodes, actualDurations(plan.nodes, engine.calls, 'bench-cp')), work / PARALLELISM));
    }
  } finally {
    await dispose();
  }
  const wall = median(walls);
  const actual = walls.map((w, i) => w / actualBounds[i]!);
  const detail = { services: services.length, nodes: plan.nodes.length, critical_path_nodes: chain, call_ms: CALL_MS, parallelism: PARALLELISM, runs: walls.length, walls_ms: walls.map((w) => +w.toFixed(1)), warmup_walls_ms: warmups.map((w) => +w.toFixed(1)) };
  return [
    {
      name: 'apply_critical_path_ratio',
      value: +(wall / bound).toFixed(3),
      unit: 'ratio',
      target: 1.1,
      detail: { what: 'median wall ÷ the nominal bound (critical path × 20 ms)', ...detail, lower_bound_ms: bound, median_wall_ms: +wall.toFixed(1) },
    },
    {
      // Not the figure: the same runs against the bound their engine calls really allowed (a 20 ms timer fires 0–5 ms late).
      name: 'apply_critical_path_ratio_actual_calls',
      value: +median(actual).toFixed(3),
      unit: 'ratio',
      target: 1.1,
      detail: {
        what: 'per run, wall ÷ the longest DAG path weighted by the recorded duration of each node’s engine call (or the recorded work ÷ parallelism, if longer); median over the runs',
        ...detail,
        actual_bounds_ms: actualBounds.map((b) => +b.toFixed(1)),
        ratios: actual.map((r) => +r.toFixed(3)),
      },
    },
  ];
}

// ── real engine: 30 busybox services, 5 roots and 25 dependants (PERF.md's stack) ──

const STACK_SERVICES = 30;

function composeYaml(project: string): string {
  const lines = ['version: "2.4"', 'services:'];
  for (let i = 0; i < STACK_SERVICES; i++) {
    lines.push(`  s${i}:`, '    image: berth-test/app:1', `    labels:`, `      ${LABEL.project}: ${project}`);
    if (i >= 5) lines.push('    depends_on:', `      - s${i % 5}`);
  }
  return lines.join('\n') + '\n';
}

function berthCompose(): string {
  const lines = ['services:'];
  for (let i = 0; i < STACK_SERVICES; i++) {
    lines.push(`  s${i}:`, '    image: berth-test/app:1');
    if (i >= 5) lines.push('    depends_on:', `      - s${i % 5}`);
  }
  return lines.join('\n') + '\n';
}

async function removeProject(project: string) {
  const cs = await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${project}`] } });
  await Promise.all(cs.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
  const byName = await docker.listContainers({ all: true, filters: { name: [project] } });
  await Promise.all(byName.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => {})));
  const ns = await docker.listNetworks({ filters: { label: [`${LABEL.project}=${project}`] } });
  await Promise.all(ns.map((n) => docker.getNetwork(n.Id).remove().catch(() => {})));
  const ns2 = await docker.listNetworks({ filters: { name: [project] } });
  await Promise.all(ns2.map((n) => docker.getNetwork(n.Id).remove().catch(() => {})));
}

function ensureCompose(): string {
  const have = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' });
  if (have.status === 0) return 'docker-compose';
  execFileSync('apt-get', ['install', '-y', '-qq', 'docker-compose'], { stdio: 'inherit' });
  return 'docker-compose';
}

async function berthApplyOnce(project: string, desired: DesiredState): Promise<number> {
  const { store, dispose } = await tempStore();
  const observer: Observer = async (_t, p, e) => (await observe(docker, p, e)).observed;
  const t0 = performance.now();
  const { applyId } = await prepareApply(store, observer, { repo: 'b/b', pr: null, environment: desired.environment, kind: 'apply', actor: 'bench', headSha: null, desired, targets: ['local'], onFailure: 'halt', parallelism: 32 });
  const s = await new Executor({ store, engine: () => new DockerEngine(docker), lanes: new Lanes() }).run(applyId);
  const ms = performance.now() - t0;
  await dispose();
  if (s !== 'completed') throw new Error(`berth bench apply of ${project} ended ${s}`);
  return ms;
}

/** The engine's floor: the same creates/starts issued directly, level by level, all in parallel. */
async function rawOnce(project: string): Promise<number> {
  const t0 = performance.now();
  const net = await docker.createNetwork({ Name: `${project}_default`, Labels: { [LABEL.project]: project } });
  const level = async (ids: number[]) =>
    Promise.all(
      ids.map(async (i) => {
        const c = await docker.createContainer({ name: `${project}-s${i}`, Image: 'berth-test/app:1', Labels: { [LABEL.project]: project }, HostConfig: { NetworkMode: net.id } });
        await c.start();
      }),
    );
  await level([0, 1, 2, 3, 4]);
  await level(Array.from({ length: STACK_SERVICES - 5 }, (_, k) => k + 5));
  return performance.now() - t0;
}

function composeOnce(bin: string, dir: string, project: string): number {
  const t0 = performance.now();
  execFileSync(bin, ['-p', project, '-f', join(dir, 'docker-compose.yml'), 'up', '-d'], { stdio: 'ignore' });
  return performance.now() - t0;
}

export async function realEngine(): Promise<Figure[]> {
  const bin = ensureCompose();
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-compose-'));
  const runs = Number(process.env.BENCH_APPLY_RUNS ?? 3);
  const times = { berth: [] as number[], compose: [] as number[], raw: [] as number[] };
  try {
    for (let r = 0; r < runs; r++) {
      // Alternate who goes first so drift in the engine's state hits everyone alike.
      const order = r % 2 ? (['compose', 'raw', 'berth'] as const) : (['berth', 'raw', 'compose'] as const);
      for (const who of order) {
        const project = `t-bench${who}${r}`;
        await removeProject(project);
        if (who === 'compose') {
          writeFileSync(join(dir, 'docker-compose.yml'), composeYaml(project));
          times.compose.push(composeOnce(bin, dir, project));
          execFileSync(bin, ['-p', project, '-f', join(dir, 'docker-compose.yml'), 'down', '-t', '1'], { stdio: 'ignore' });
        } else if (who === 'raw') {
          times.raw.push(await rawOnce(project));
        } else {
          const desired = loadCompose([{ path: 'compose.yml', text: berthCompose() }], { project, environment: 'bench' });
          times.berth.push(await berthApplyOnce(project, desired));
        }
        await removeProject(project);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const m = { berth: median(times.berth), compose: median(times.compose), raw: median(times.raw) };
  const detail = { services: STACK_SERVICES, runs, berth_median_ms: +m.berth.toFixed(0), docker_compose_median_ms: +m.compose.toFixed(0), raw_parallel_median_ms: +m.raw.toFixed(0) };
  return [
    { name: 'apply_vs_floor_ratio', value: +(m.berth / m.raw).toFixed(3), unit: 'ratio', target: 1.1, detail },
    { name: 'apply_vs_docker_compose_ratio', value: +(m.berth / m.compose).toFixed(3), unit: 'ratio', target: null, detail },
  ];
}

export async function noop(): Promise<Figure[]> {
  const project = 't-bench-noop';
  await removeProject(project);
  const lines = ['services:'];
  for (let i = 0; i < 100; i++) lines.push(`  s${i}:`, '    image: berth-test/app:1');
  const text = lines.join('\n') + '\n';
  const desired = loadCompose([{ path: 'compose.yml', text }], { project, environment: 'noop' });
  try {
    await berthApplyOnce(project, desired);
    const observer: Observer = async (_t, p, e) => (await observe(docker, p, e)).observed;
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      const d = loadCompose([{ path: 'compose.yml', text }], { project, environment: 'noop' });
      const [p] = await planTargets(d, ['local'], observer);
      times.push(performance.now() - t0);
      if (p!.plan.nodes.length) throw new Error(`noop bench: plan not empty (${p!.plan.nodes.length} steps)`);
    }
    return [{ name: 'noop_apply_100_services_ms', value: +median(times).toFixed(1), unit: 'ms', target: 500, detail: { runs: times.length, what: 'load compose + observe + plan, nothing to apply' } }];
  } finally {
    await removeProject(project);
  }
}
