// Two replicas (separate processes) on one MariaDB and one engine race to
// drive the same apply: exactly one drives it, every container is created
// once (Docker's live event stream), and the apply completes.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { prepareApply } from '../src/apply.js';
import { observe } from '../src/docker/observe.js';
import { LABEL } from '../src/model.js';
import { crashStack } from './helpers/crash-stack.js';
import { docker, removeProject, watchCreates } from './helpers/docker.js';
import { describeDocker, describeMysql } from './helpers/env.js';
import { mysqlTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

const PROJECT = `t-replica-${process.pid}`;

const cleanup = () => removeProject(PROJECT);

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`exit ${code}: ${err}`))));
  });
}

describeDocker('replicas', () => {
  describeMysql('two processes, one apply', () => {
    let ts: TestStore;
    beforeAll(async () => {
      await cleanup();
      ts = await mysqlTestStore();
    });
    afterAll(async () => {
      await ts.dispose();
      await cleanup();
    });

    it('exactly one process drives it; nothing is created twice', async () => {
      const desired = crashStack(PROJECT, 'race');
      const { applyId } = await prepareApply(ts.store, async (_t, p, e) => (await observe(docker, p, e)).observed, {
        repo: 'acme/race', pr: 1, environment: 'race', kind: 'apply', actor: 'x', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt',
      });
      const watch = await watchCreates(PROJECT);
      const barrier = String(Date.now() + 2500);
      const outs = await Promise.all([run(['test/helpers/drive-child.ts', ts.url, applyId, barrier]), run(['test/helpers/drive-child.ts', ts.url, applyId, barrier])]);
      await watch.stop();
      expect(outs.filter((o) => o === 'driven completed')).toHaveLength(1);
      expect(outs.filter((o) => o.startsWith('not-driven'))).toHaveLength(1);
      expect((await ts.store.getApply(applyId))!.state).toBe('completed');
      expect((await ts.store.listTasksForApply(applyId)).every((t) => t.state === 'succeeded')).toBe(true);
      expect([...watch.names].sort()).toEqual(Array.from({ length: 8 }, (_, i) => `${PROJECT}-race-s${i}-1`).sort());
      // The lease is released once the apply ended.
      expect(await ts.store.getLease(`apply:${applyId}`)).toBeUndefined();
    }, 60_000);
  });
});
