// reconcile_tick_1000_containers_ms: one drift reconciler tick of a target
// holding 1,000 berth-labelled containers (created, not started) on the real
// engine — the one list call, the store reads and the batched upsert of 1,000
// rows into a SQLite index. Target < 1 s (issue 5).
//
// reconcile_store_queries_per_tick: store calls made by one tick at 10 and at
// 1,000 containers, counted through a Proxy; the two must be equal.
//
// Everything is created under project `t-bench-drift` and removed afterwards,
// even on failure or SIGINT/SIGTERM (leftovers of an earlier crashed run are
// removed first).
import { randomUUID } from 'node:crypto';
import Dockerode from 'dockerode';
import { desiredService } from '../src/model/desired.js';
import { DockerEngine } from '../src/docker/docker-engine.js';
import type { DockerLister, TickResult } from '../src/drift/drift.js';
import { DriftReconciler } from '../src/drift/drift.js';
import type { ApplyPayload } from '../src/apply/executor.js';
import { LABEL, names } from '../src/model/model.js';
import type { Store } from '../src/store/store.js';
import { countingStore } from '../test/helpers/counting-store.js';
import { spec, state } from '../test/helpers/specs.js';
import { sqliteTestStore } from '../test/helpers/stores.js';
import { pool, quantile } from './lib.js';

const PROJECT = 't-bench-drift';
const ENV = 'bench';
const IMAGE = 'docker.io/berth-test/app:1';
const SERVICES = 100;
const REPLICAS = 10; // 1,000 containers
const RUNS = 15;
const WARMUP = 2;
const CONCURRENCY = 16;
export const TICK_TARGET_MS = 1000;

type Figure = { name: string; value: number; unit: string; target: number | null; detail?: Record<string, unknown> };

async function removeProject(docker: Dockerode): Promise<number> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`] } });
  await pool(containers, CONCURRENCY, async (c) => {
    await docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => {});
  });
  return containers.length;
}

function okTick(r: TickResult) {
  if (r.status !== 'ok') throw new Error(`tick ${r.status}: ${JSON.stringify(r)}`);
  return r;
}

/** Store calls of the first tick (index empty) and of a steady tick, for the containers `lister` returns. */
async function countQueries(store: Store, lister: DockerLister, target: string) {
  const counted = countingStore(store);
  const r = new DriftReconciler({ store: counted.store, targets: [target], docker: () => lister, holder: 'bench' });
  const first = okTick(await r.tick(target));
  const firstCalls = counted.calls.length;
  const firstByMethod = counted.counts();
  counted.reset();
  okTick(await r.tick(target));
  return { indexed: first.indexed, first: firstCalls, steady: counted.calls.length, byMethod: firstByMethod, steadyByMethod: counted.counts() };
}

export async function run(log: (line: string) => void = (l) => console.log(l)): Promise<Figure[]> {
  const docker = new Dockerode({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
  const engine = new DockerEngine(docker);
  try {
    await docker.getImage(IMAGE).inspect();
  } catch {
    throw new Error(`${IMAGE} is not on this engine: run bash scripts/test-images.sh first`);
  }
  const leftovers = await removeProject(docker);
  if (leftovers) log(`drift: removed ${leftovers} containers an earlier run left behind`);

  let cleaning: Promise<number> | undefined;
  const cleanup = () => (cleaning ??= removeProject(docker));
  const onSignal = (sig: NodeJS.Signals) => {
    log(`drift: ${sig}: removing ${PROJECT} before exiting`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const ts = await sqliteTestStore();
  try {
    const store = ts.store;
    const desired = state(
      Array.from({ length: SERVICES }, (_, i) => spec(`svc${String(i).padStart(3, '0')}`, { image: IMAGE, replicas: REPLICAS })),
      undefined,
      undefined,
      PROJECT,
      ENV,
    );
    const payload: ApplyPayload = { desired, onFailure: 'halt' };
    const { id: applyId } = await store.createApply({
      repo: 'bench/drift', pr: null, environment: ENV, kind: 'apply', actor: 'bench', headSha: null, desiredDigest: randomUUID(), planFingerprint: null,
      desiredJson: JSON.stringify(payload), operations: [{ target: 'local', tasks: [] }],
    });
    await store.casApplyState(applyId, 0, { state: 'completed', startedAt: Date.now(), finishedAt: Date.now() });

    const work = desired.services.flatMap((s) => Array.from({ length: REPLICAS }, (_, r) => ({ s, replica: r + 1 })));
    const create = (items: typeof work) =>
      pool(items, CONCURRENCY, async ({ s, replica }) => {
        await engine.createContainer(names.container(PROJECT, ENV, s.spec.name, replica), s.spec, { project: PROJECT, environment: ENV, replica, configHash: s.configHash, applyId });
      });
    // Only this project's containers, for exact 10 vs 1,000 counts (the engine is shared); still one list call.
    const ours: DockerLister = {
      listContainers: (async (opts?: Dockerode.ContainerListOptions) =>
        (await docker.listContainers(opts)).filter((c) => c.Labels?.[LABEL.project] === PROJECT)) as DockerLister['listContainers'],
    };

    const t0 = Date.now();
    await create(work.slice(0, 10));
    const q10 = await countQueries(store, ours, 'q10');
    await create(work.slice(10));
    log(`drift: created ${work.length} containers in ${((Date.now() - t0) / 1000).toFixed(1)} s (project ${PROJECT})`);
    const q1000 = await countQueries(store, ours, 'q1000');
    if (q10.indexed !== 10 || q1000.indexed !== 1000) throw new Error(`indexed ${q10.indexed} and ${q1000.indexed}, expected 10 and 1000`);

    // The timed tick sees every berth container on the engine, as in production.
    const r = new DriftReconciler({ store, targets: ['local'], docker: () => docker, holder: 'bench' });
    const tFirst = performance.now();
    const first = okTick(await r.tick('local'));
    const firstMs = performance.now() - tFirst;
    for (let i = 1; i < WARMUP; i++) okTick(await r.tick('local'));
    const samples: number[] = [];
    let last = first;
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      last = okTick(await r.tick('local'));
      samples.push(performance.now() - t);
    }
    samples.sort((a, b) => a - b);
    const rawList: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      await docker.listContainers({ all: true, filters: { label: [LABEL.project] } });
      rawList.push(performance.now() - t);
    }
    rawList.sort((a, b) => a - b);
    const round = (x: number) => Number(x.toFixed(3));
    const median = quantile(samples, 0.5);
    return [
      {
        name: 'reconcile_tick_1000_containers_ms',
        value: round(median),
        unit: 'ms',
        target: TICK_TARGET_MS,
        detail: {
          runs: RUNS,
          p95: round(quantile(samples, 0.95)),
          min: round(samples[0]!),
          max: round(samples[samples.length - 1]!),
          first_tick_ms: round(firstMs),
          listed: last.listed,
          indexed: last.indexed,
          refused_other_projects: last.forged.length,
          raw_list_call_median_ms: round(quantile(rawList, 0.5)),
          store: 'sqlite',
          ratio_to_target: round(median / TICK_TARGET_MS),
        },
      },
      {
        name: 'reconcile_store_queries_per_tick',
        value: q1000.steady,
        unit: 'queries',
        // Not a ceiling: the figure must EQUAL the 10-container count (detail.equal).
        target: null,
        detail: {
          must_equal_10_container_count: q10.steady,
          containers_10: { first_tick: q10.first, steady_tick: q10.steady, by_method: q10.steadyByMethod },
          containers_1000: { first_tick: q1000.first, steady_tick: q1000.steady, by_method: q1000.steadyByMethod },
          equal: q10.first === q1000.first && q10.steady === q1000.steady && JSON.stringify(q10.steadyByMethod) === JSON.stringify(q1000.steadyByMethod),
        },
      },
    ];
  } finally {
    const removed = await cleanup().catch((err) => {
      log(`drift: cleanup failed: ${String(err)}`);
      return -1;
    });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await ts.dispose();
    log(`drift: removed ${removed} containers of ${PROJECT}`);
  }
}
