// The Docker engine restarts in the middle of an apply: the step that hits
// the outage fails with the engine's message naming what it acted on, the
// apply ends `failed` (never reported as success) with nothing left running,
// and the next apply converges. What the engine says while it goes away
// varies (connection refused, socket hang up, transport is closing, ...), so
// the test asserts berth's behaviour, not those words. The engine is stopped
// by the PID in its pid file (scripts/dockerd.sh), started again with the
// flags and log it had. Runs last in the chaos suite (file order) because it
// takes the engine away for a few seconds.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Observer } from '../../src/apply/prepare-apply.js';
import { planTargets, prepareApply } from '../../src/apply/prepare-apply.js';
import { DockerEngine } from '../../src/docker/docker-engine.js';
import { observe } from '../../src/docker/observe.js';
import { Executor } from '../../src/apply/executor.js';
import { Lanes } from '../../src/apply/lanes.js';
import { names } from '../../src/model/model.js';
import type { PlanNode } from '../../src/plan/plan.js';
import { crashStack } from '../helpers/crash-stack.js';
import { docker, removeProject } from '../helpers/docker.js';
import type { Relaunch } from '../helpers/dockerd.js';
import { dockerdPid, startDockerd, stopDockerd } from '../helpers/dockerd.js';
import { until } from '../helpers/wait.js';
import { sqliteTestStore } from '../helpers/stores.js';
import type { TestStore } from '../helpers/stores.js';
import { recordFigure } from './app-harness.js';

const PROJECT = 't-chaos-restart';
const ENV = 'restart';
const observer: Observer = async (_t, p, e) => (await observe(docker, p, e)).observed;

const engineUp = () => until('the Docker engine to answer', () => docker.ping().then(() => true, () => false), { timeoutMs: 90_000, intervalMs: 250 });

/** The Docker object a step acts on, by the name berth gave it: what its error must name. */
function subject(nodeJson: string): string {
  const t = (JSON.parse(nodeJson) as PlanNode).target;
  const s = t.containerName ?? t.containerId ?? t.image ?? (t.network && names.network(PROJECT, ENV, t.network)) ?? (t.volume && names.volume(PROJECT, ENV, t.volume));
  if (!s) throw new Error(`a step with nothing to name: ${nodeJson}`);
  return s;
}

describe('the Docker engine restarted mid-apply', () => {
  let ts: TestStore;
  /** Set while the engine is down: however the test ends, it comes back before the file does. */
  let down: Relaunch | undefined;
  beforeAll(async () => {
    // The engine is restarted by its PID (pid file, checked against the socket); never by process name.
    await dockerdPid();
    await removeProject(PROJECT);
    ts = await sqliteTestStore();
  });
  // Long enough to bring the engine back (and wait for it) after a failed test.
  afterAll(async () => {
    if (down) await startDockerd(down);
    down = undefined;
    await engineUp();
    await ts?.dispose();
    await removeProject(PROJECT);
  }, 240_000);

  it('the step that meets the outage fails with the engine\'s message, the apply fails, the next apply recovers', async () => {
    const desired = crashStack(PROJECT, ENV);
    const { applyId } = await prepareApply(ts.store, observer, { repo: 'acme/r', pr: 1, environment: ENV, kind: 'apply', actor: 'x', headSha: null, desired, targets: ['local'], onFailure: 'halt' });
    const executor = new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 50, parallelism: 2 });
    const run = executor.run(applyId);
    await until('four steps to succeed', async () => {
      const tasks = await ts.store.listTasksForApply(applyId);
      expect(tasks.filter((t) => t.state === 'failed').map((t) => t.error), 'the apply failed before the engine was stopped').toEqual([]);
      return tasks.filter((t) => t.state === 'succeeded').length >= 4;
    }, { timeoutMs: 120_000, intervalMs: 10 });
    // Take the engine away mid-apply, let the apply end without it, then bring it back as it was.
    down = await stopDockerd();
    const state = await run;
    await startDockerd(down);
    down = undefined;
    await engineUp();

    // Berth's behaviour, whatever words the engine used for its outage: the apply failed, the
    // step(s) that met the outage failed with a message naming what they acted on, nothing was
    // left running or pending, and the stored apply says so too.
    expect(state).toBe('failed');
    expect((await ts.store.getApply(applyId))!.state).toBe('failed');
    const tasks = await ts.store.listTasksForApply(applyId);
    expect(tasks.filter((t) => t.state === 'running' || t.state === 'pending').map((t) => `${t.kind} ${t.resource}: ${t.state}`)).toEqual([]);
    const failed = tasks.filter((t) => t.state === 'failed');
    console.log(`[chaos] engine restart: ${failed.map((t) => `${t.kind} ${t.resource} failed: ${t.error}`).join(' | ')}`);
    expect(failed.length).toBeGreaterThan(0);
    for (const t of failed) {
      const what = subject(t.nodeJson);
      expect(t.error, `${t.kind} ${t.resource}`).toEqual(expect.stringContaining(what));
      // More than the name: the engine's (or the wait's) own words follow it.
      expect(t.error!.replace(what, '').replace(/[\s:.]/g, '').length, `${t.kind} ${t.resource}: ${t.error}`).toBeGreaterThan(0);
    }

    // The next apply plans against what survived the restart and converges.
    const again = await prepareApply(ts.store, observer, { repo: 'acme/r', pr: 1, environment: ENV, kind: 'apply', actor: 'x', headSha: null, desired, targets: ['local'], onFailure: 'halt' });
    expect(await new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 50 }).run(again.applyId)).toBe('completed');
    const [after] = await planTargets(desired, ['local'], observer);
    expect(after!.plan.nodes).toEqual([]);
    recordFigure({ section: 'faults: Docker engine restarted mid-apply', injected: 1, survived: 1, failed_steps: failed.length });
  }, 300_000);
});
