// Rollouts (deploy.update_config) on the real engine: a start-first update of an
// HTTP service keeps answering a client on the service's network (no request
// reaches a starting or a stopped container), a new version that fails its
// health gate rolls back by itself while the old version keeps serving, and a
// /stop mid-rollout leaves every replica serving.
import { afterEach, expect, it } from 'vitest';
import { loadCompose } from '../src/compose/load.js';
import { LABEL } from '../src/model/model.js';
import type { DesiredState } from '../src/model/model.js';
import { planTargets, prepareApply } from '../src/apply/prepare-apply.js';
import { DockerEngine } from '../src/docker/docker-engine.js';
import { Executor } from '../src/apply/executor.js';
import { Lanes } from '../src/apply/lanes.js';
import { docker } from './helpers/docker.js';
import { realObserver } from './helpers/real-apply.js';
import { sqliteTestStore } from './helpers/stores.js';
import { until } from './helpers/wait.js';
import { describeDocker } from './helpers/env.js';
import { realApplyHarness } from './helpers/real-apply.js';
import { startProbe } from './helpers/http-probe.js';

const PROJECT = `t-rollout-${process.pid}`;
const ENV = 'prod';
const PROBE = `${PROJECT}-probe`;
const BROKEN = `berth-test/app:broken-${process.pid}`;

/** A two-replica busybox httpd serving /VERSION, healthy once it answers. */
function web(image: string, update: string): DesiredState {
  const text = `services:
  web:
    image: ${image}
    command: ["httpd", "-f", "-p", "8080", "-h", "/"]
    init: true
    deploy:
      replicas: 2
      update_config:
${update.replace(/^/gm, '        ')}
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/VERSION"]
      interval: 1s
      timeout: 5s
      retries: 3
`;
  return loadCompose([{ path: 'compose.yml', text }], { project: PROJECT, environment: ENV, variables: {} });
}

const probe = () => startProbe(docker, { name: PROBE, network: `${PROJECT}-${ENV}_default`, host: 'web' });

async function serving(): Promise<{ name: string; image: string; running: boolean }[]> {
  const cs = await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`] } });
  return cs.map((c) => ({ name: c.Names[0]!.slice(1), image: c.Image, running: c.State === 'running' })).sort((a, b) => (a.name < b.name ? -1 : 1));
}

describeDocker('rollouts on the real engine', () => {
  const h = realApplyHarness(PROJECT);
  afterEach(async () => {
    await docker.getContainer(PROBE).remove({ force: true }).catch(() => {});
  });

  it('a start-first update under a client on the service network: both versions answer, no request fails', async () => {
    const v1 = await h.apply(web('berth-test/app:1', 'order: start-first\nparallelism: 1'));
    expect(v1.result).toBe('completed');
    const p = await probe();
    const v2 = await h.apply(web('berth-test/app:2', 'order: start-first\nparallelism: 1'));
    const seen = await p.stop();
    expect(v2.tasks.filter((t) => t.state !== 'succeeded').map((t) => `${t.kind}: ${t.error}`)).toEqual([]);
    expect(v2.result).toBe('completed');
    // The rollout happened under the probe: it saw both versions.
    expect(seen.ok['1']).toBeGreaterThan(0);
    expect(seen.ok['2']).toBeGreaterThan(0);
    // No request reached a replacement still starting, nor a stopped container, and none fell into the engine's
    // gap: Docker 20.10 takes a disconnected container's interface down before it drops its DNS record, so a
    // lookup in between names the old address; the old container connects again at once (outside the DNS
    // name, at the address Docker hands it back) and drains, so TCP's retry of such a connection is answered.
    // The bench measures the zero (0/6242 over 4 runs); here, on a CI machine loaded by parallel suites, a retry
    // that lands after the address went to another container may still lose one request: a regression (a replacement
    // in DNS before its gate, an old container stopped while named) fails dozens.
    expect(seen.failed).toBeLessThanOrEqual(1);
    expect(await serving()).toEqual([
      { name: `${PROJECT}-${ENV}-web-1`, image: 'docker.io/berth-test/app:2', running: true },
      { name: `${PROJECT}-${ENV}-web-2`, image: 'docker.io/berth-test/app:2', running: true },
    ]);
    // The plan ran as a rollout: replica 2 only after replica 1's batch passed.
    expect(v2.plan.nodes.filter((n) => n.kind === 'BatchGate').map((n) => n.reason)).toEqual(['rollout batch 1/2']);
  }, 180_000);

  it('a new image that fails its health gate rolls back by itself; the old version keeps serving', async () => {
    // The broken version: app:2 without the file its healthcheck asks for.
    const maker = await docker.createContainer({ Image: 'berth-test/app:2', Cmd: ['rm', '/VERSION'] });
    try {
      await maker.start();
      await maker.wait();
      await maker.commit({ repo: BROKEN.split(':')[0], tag: BROKEN.split(':')[1] });
    } finally {
      await maker.remove({ force: true });
    }
    try {
      const v1 = await h.apply(web('berth-test/app:1', 'order: start-first\nparallelism: 1\nfailure_action: rollback'));
      expect(v1.result).toBe('completed');
      const p = await probe();
      const bad = await h.apply(web(BROKEN, 'order: start-first\nparallelism: 1\nfailure_action: rollback'));
      const seen = await p.stop();
      expect(bad.result).toBe('failed');
      const failed = bad.tasks.filter((t) => t.state === 'failed');
      // The gate of replica 1, then the BatchGate that stops the rollout there.
      expect(failed.map((t) => t.kind)).toEqual(['WaitHealthy', 'BatchGate']);
      expect(failed[1]!.error).toContain('rollout of web rolled back: 1 of 2 replicas failed their gate after batch 1/2');
      // The health log and what still serves, in the failure the check run shows.
      expect(failed[0]!.error).toMatch(/_[0-9a-f]{12} is unhealthy\. Last health check output: wget: server returned error: HTTP\/1\.1 404 Not Found/);
      expect(failed[0]!.error).toContain('rolled back — still serving docker.io/berth-test/app:1');
      // Replica 2 was never touched: its batch did not start.
      const replica2 = bad.tasks.filter((t) => (JSON.parse(t.nodeJson) as { resource: string }).resource === 'service:web:2');
      expect(replica2.length).toBeGreaterThan(0);
      expect(replica2.every((t) => t.state === 'skipped')).toBe(true);
      expect(await serving()).toEqual([
        { name: `${PROJECT}-${ENV}-web-1`, image: 'docker.io/berth-test/app:1', running: true },
        { name: `${PROJECT}-${ENV}-web-2`, image: 'docker.io/berth-test/app:1', running: true },
      ]);
      expect(seen.failed).toBe(0);
      expect(seen.ok['1']).toBeGreaterThan(0);

      // failure_action continue: the failing replica keeps its old container and the next batch goes on (failing the same way).
      const cont = await h.apply(web(BROKEN, 'order: start-first\nparallelism: 1\nfailure_action: continue'));
      expect(cont.result).toBe('failed');
      expect(cont.tasks.filter((t) => t.state === 'failed').map((t) => `${t.kind} ${(JSON.parse(t.nodeJson) as { resource: string }).resource}`)).toEqual(['WaitHealthy service:web:1', 'WaitHealthy service:web:2']);
      expect(cont.tasks.find((t) => t.kind === 'BatchGate')!.state).toBe('succeeded');
      expect(await serving()).toEqual([
        { name: `${PROJECT}-${ENV}-web-1`, image: 'docker.io/berth-test/app:1', running: true },
        { name: `${PROJECT}-${ENV}-web-2`, image: 'docker.io/berth-test/app:1', running: true },
      ]);
    } finally {
      await docker.getImage(BROKEN).remove({ force: true }).catch(() => {});
    }
  }, 180_000);

  it('a stop honours the container\'s own grace period (stop_grace_period), not a fixed 10 s', async () => {
    // It traps SIGTERM and needs 3 s to finish: with a grace period of 1 s it is killed (137); under
    // a fixed 10 s timeout it would have finished its handler and exited 0.
    const c = await docker.createContainer({
      name: `${PROJECT}-grace`,
      Image: 'berth-test/app:1',
      Cmd: ['sh', '-c', 'trap "sleep 3; exit 0" TERM; while true; do sleep 0.1; done'],
      StopTimeout: 1,
      Labels: { [LABEL.project]: PROJECT },
    });
    try {
      await c.start();
      await new DockerEngine(docker).stopContainer(c.id);
      expect((await c.inspect()).State.ExitCode).toBe(137);
    } finally {
      await c.remove({ force: true });
    }
  }, 60_000);

  it('/stop during a rollout finishes the batch in flight and leaves every replica serving', async () => {
    expect((await h.apply(web('berth-test/app:1', 'order: start-first\nparallelism: 1'))).result).toBe('completed');
    const ts = await sqliteTestStore();
    try {
      const desired = web('berth-test/app:2', 'order: start-first\nparallelism: 1');
      expect((await planTargets(desired, ['local'], realObserver))[0]!.plan.nodes.some((n) => n.kind === 'BatchGate')).toBe(true);
      const { applyId } = await prepareApply(ts.store, realObserver, { repo: 'acme/shop', pr: 1, environment: ENV, kind: 'apply', actor: 'alice', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt' });
      const run = new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 100 }).run(applyId);
      // The first batch has begun (its new container is being created or started): now /stop.
      await until('the first batch to begin', async () => (await ts.store.listTasksForApply(applyId)).some((t) => t.kind === 'CreateContainer' && t.state !== 'pending'), { intervalMs: 5 });
      expect(await ts.store.requestStop(applyId)).toBe(true);
      expect(await run).toBe('stopped');
      const tasks = await ts.store.listTasksForApply(applyId);
      const of = (resource: string) => tasks.filter((t) => (JSON.parse(t.nodeJson) as { resource: string }).resource === resource).map((t) => t.state);
      // Batch 1 ran to its end; the gate and batch 2 were cancelled before they began.
      expect(new Set(of('service:web:1'))).toEqual(new Set(['succeeded']));
      expect(new Set(of('service:web'))).toEqual(new Set(['cancelled']));
      expect(new Set(of('service:web:2'))).toEqual(new Set(['cancelled']));
      expect(await serving()).toEqual([
        { name: `${PROJECT}-${ENV}-web-1`, image: 'docker.io/berth-test/app:2', running: true },
        { name: `${PROJECT}-${ENV}-web-2`, image: 'docker.io/berth-test/app:1', running: true },
      ]);
    } finally {
      await ts.dispose();
    }
  }, 180_000);
});
