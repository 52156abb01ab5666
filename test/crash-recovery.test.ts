// A process driving an apply against the real engine is SIGKILLed mid-apply;
// a new executor recovers the apply to a terminal state. Docker's own event
// stream proves no container was created twice.
import { spawn } from 'node:child_process';
import { afterEach, beforeAll, expect, it } from 'vitest';
import { planTargets } from '../src/apply/prepare-apply.js';
import { DockerEngine } from '../src/docker/docker-engine.js';
import { observe } from '../src/docker/observe.js';
import { Executor } from '../src/apply/executor.js';
import { Lanes } from '../src/apply/lanes.js';
import { LABEL } from '../src/model/model.js';
import { openStore } from '../src/store/open.js';
import { TERMINAL_TASK_STATES } from '../src/store/store.js';
import { crashStack } from './helpers/crash-stack.js';
import { docker, projectWithStore, removeProject, watchCreates } from './helpers/docker.js';
import { describeDocker } from './helpers/env.js';
import type { TestStore } from './helpers/stores.js';

const PROJECT = `t-crash-${process.pid}`;
/** The dead process's lease on its apply: long, so it is surely still live when the test first looks. */
const CHILD_LEASE_MS = 60_000;

describeDocker('crash recovery (SIGKILL mid-apply)', () => {
  const files = projectWithStore(PROJECT);
  let ts: TestStore;
  beforeAll(() => void (ts = files.ts));
  // Each case has its own environment: its containers and network go as soon as it is checked.
  afterEach(() => removeProject(PROJECT));

  for (const killAfter of [2, 9]) {
    it(`recovers an apply killed after ${killAfter} finished tasks, with no duplicate container`, async () => {
      const env = `k${killAfter}`;
      const watch = await watchCreates(PROJECT);
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/apply-child.ts', ts.url, PROJECT, env, String(CHILD_LEASE_MS)], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));

      // Kill it once enough tasks finished and something is in flight.
      let applyId: string | undefined;
      for (;;) {
        if (child.exitCode !== null) throw new Error(`child ended before it could be killed: ${out}\n${err}`);
        applyId ??= /apply (\S+)/.exec(out)?.[1];
        if (applyId) {
          const tasks = await ts.store.listTasksForApply(applyId);
          const done = tasks.filter((t) => t.state === 'succeeded').length;
          if (done >= killAfter && tasks.some((t) => t.state === 'running')) break;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      child.kill('SIGKILL');
      await exited;
      expect(out).not.toContain('done');

      const now = await openStore(ts.url);
      const before = await now.listTasksForApply(applyId);
      expect(before.some((t) => t.state === 'running' || t.state === 'pending')).toBe(true);
      // The dead process's lease on the apply must expire first: until then recovery leaves it alone.
      expect(await new Executor({ store: now, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 50 }).recover()).toEqual([]);
      await now.close();
      // Once it has expired (a store whose clock is past it, rather than a minute's sleep), recovery takes the apply over.
      const later = () => Date.now() + 2 * CHILD_LEASE_MS;
      const store = await openStore(ts.url, { now: later });
      const executor = new Executor({ store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 50, now: later });
      const results = await executor.recover();
      const failed = (await store.listTasksForApply(applyId)).filter((t) => t.state !== 'succeeded');
      expect(failed.map((t) => `${t.kind} ${t.resource}: ${t.state} ${t.error ?? ''}`)).toEqual([]);
      expect(results).toEqual([{ applyId, state: 'completed' }]);

      const after = await store.listTasksForApply(applyId);
      expect(after.every((t) => TERMINAL_TASK_STATES.includes(t.state))).toBe(true);
      expect(after.every((t) => t.state === 'succeeded')).toBe(true);
      // Tasks that had succeeded before the kill were not touched.
      for (const t of before.filter((x) => x.state === 'succeeded')) expect(after.find((a) => a.id === t.id)!.finishedAt).toBe(t.finishedAt);

      const containers = await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`, `${LABEL.environment}=${env}`] } });
      const names = containers.map((c) => c.Names[0]!.slice(1)).sort();
      expect(names).toEqual(Array.from({ length: 8 }, (_, i) => `${PROJECT}-${env}-s${i}-1`).sort());
      expect(containers.every((c) => c.State === 'running')).toBe(true);
      await watch.stop();
      const mine = watch.names.filter((n) => n.startsWith(`${PROJECT}-${env}-`));
      expect(mine.sort()).toEqual(names);

      const [again] = await planTargets(crashStack(PROJECT, env), ['local'], async (_t, p, e) => (await observe(docker, p, e)).observed);
      expect(again!.plan.nodes).toEqual([]);
      await store.close();
    }, 90_000);
  }
});
