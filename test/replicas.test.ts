// Two replicas (separate processes) on one shared database (MariaDB, then
// PostgreSQL) and one engine race to drive the same apply: exactly one drives
// it, every container is created once (Docker's live event stream), and the
// apply completes.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { prepareApply } from '../src/apply/prepare-apply.js';
import { observe } from '../src/docker/observe.js';
import { LABEL } from '../src/model/model.js';
import { crashStack } from './helpers/crash-stack.js';
import { docker, removeProject, watchCreates } from './helpers/docker.js';
import { describeDocker, describeMysql, describePostgres } from './helpers/env.js';
import { mysqlTestStore, postgresTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

const PROJECT = `t-replica-${process.pid}`;

const cleanup = () => removeProject(PROJECT);

/** A replica process driving the apply: `ready` once it printed so, `go()` releases it, `done` is its verdict. */
function replica(url: string, applyId: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/drive-child.ts', url, applyId], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const done = new Promise<string>((resolve, reject) => child.on('exit', (code) => (code === 0 ? resolve(out.replace(/^ready\n/, '').trim()) : reject(new Error(`exit ${code}: ${err}`)))));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (out.startsWith('ready\n')) resolve();
    });
    void done.catch(reject);
  });
  return { ready, done, go: () => child.stdin.end('go\n') };
}

function twoProcesses(name: string, open: () => Promise<TestStore>, d: (name: string, fn: () => void) => void) {
  d(`two processes, one apply (${name})`, () => {
    let ts: TestStore;
    beforeAll(async () => {
      await cleanup();
      ts = await open();
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
      const replicas = [replica(ts.url, applyId), replica(ts.url, applyId)];
      // Released together once both are set up, however long a loaded machine takes to start them.
      await Promise.all(replicas.map((r) => r.ready));
      for (const r of replicas) r.go();
      const outs = await Promise.all(replicas.map((r) => r.done));
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
}

describeDocker('replicas', () => {
  twoProcesses('MariaDB', mysqlTestStore, describeMysql);
  twoProcesses('PostgreSQL', postgresTestStore, describePostgres);
});
