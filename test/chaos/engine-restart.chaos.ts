// The Docker engine restarts in the middle of an apply: the step that hits
// the outage fails with the engine's message, the apply ends `failed` (never
// reported as success), and the next apply converges. Runs last in the chaos
// suite (file order) because it takes the engine away for a few seconds.
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Observer } from '../../src/apply.js';
import { planTargets, prepareApply } from '../../src/apply.js';
import { DockerEngine } from '../../src/docker/engine.js';
import { observe } from '../../src/docker/observe.js';
import { Executor } from '../../src/executor.js';
import { Lanes } from '../../src/lanes.js';
import { crashStack } from '../helpers/crash-stack.js';
import { docker, removeProject } from '../helpers/docker.js';
import { sqliteTestStore } from '../helpers/stores.js';
import type { TestStore } from '../helpers/stores.js';
import { recordFigure } from './app-harness.js';

const PROJECT = 't-chaos-restart';
const observer: Observer = async (_t, p, e) => (await observe(docker, p, e)).observed;

async function engineUp(timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await docker.ping().then(() => true, () => false)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

describe('the Docker engine restarted mid-apply', () => {
  let ts: TestStore;
  beforeAll(async () => {
    await removeProject(PROJECT);
    ts = await sqliteTestStore();
  });
  afterAll(async () => {
    await engineUp(60_000);
    await ts.dispose();
    await removeProject(PROJECT);
  });

  it('the step that meets the outage fails with the engine\'s message, the apply fails, the next apply recovers', async () => {
    // The suite restarts the engine the way .ci/run starts it; it must be a dockerd this machine runs.
    expect(spawnSync('pgrep', ['-x', 'dockerd']).status, 'dockerd must run on this machine (started by .ci/run)').toBe(0);
    const desired = crashStack(PROJECT, 'restart');
    const { applyId } = await prepareApply(ts.store, observer, { repo: 'acme/r', pr: 1, environment: 'restart', kind: 'apply', actor: 'x', headSha: null, desired, targets: ['local'], onFailure: 'halt' });
    const executor = new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 50, parallelism: 2 });
    const run = executor.run(applyId);
    for (;;) {
      const done = (await ts.store.listTasksForApply(applyId)).filter((t) => t.state === 'succeeded').length;
      if (done >= 4) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    // Stop the engine, and start it again once it is gone.
    spawnSync('pkill', ['-TERM', '-x', 'dockerd']);
    const down = Date.now() + 60_000;
    while (spawnSync('pgrep', ['-x', 'dockerd']).status === 0 && Date.now() < down) await new Promise((r) => setTimeout(r, 100));
    const state = await run;
    const child = spawn('bash', ['-c', 'nohup setsid dockerd >>/tmp/berth-chaos-dockerd.log 2>&1 </dev/null &'], { stdio: 'ignore', detached: true });
    child.unref();
    expect(await engineUp(90_000)).toBe(true);

    expect(state).toBe('failed');
    const tasks = await ts.store.listTasksForApply(applyId);
    const failed = tasks.filter((t) => t.state === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed[0]!.error).toMatch(/ENOENT|ECONNREFUSED|ECONNRESET|socket hang up|EOF|connect|not running|is unhealthy|exited/i);
    expect(tasks.some((t) => t.state === 'running' || t.state === 'pending')).toBe(false);

    // The next apply plans against what survived the restart and converges.
    const again = await prepareApply(ts.store, observer, { repo: 'acme/r', pr: 1, environment: 'restart', kind: 'apply', actor: 'x', headSha: null, desired, targets: ['local'], onFailure: 'halt' });
    expect(await new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 50 }).run(again.applyId)).toBe('completed');
    const [after] = await planTargets(desired, ['local'], observer);
    expect(after!.plan.nodes).toEqual([]);
    recordFigure({ section: 'faults: Docker engine restarted mid-apply', injected: 1, survived: 1 });
  }, 240_000);
});
