// An apply that ended while its process died before the report was claimed
// (DESIGN: "each apply is reported exactly once"): a recovery pass of any
// replica finds it and reports it, once. The reporter's lease keeps recovery
// off an apply whose reporter is alive; two replicas racing recovery on one
// database report it once between them. On every store backend (real
// databases: the lease and the claim are compare-and-set there).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Executor } from '../src/apply/executor.js';
import { ApplyRunner } from '../src/apply/supervisor.js';
import type { CheckRunUpdate, GitHubPort } from '../src/github/github.js';
import { openStore } from '../src/store/open.js';
import type { NewApply, Store } from '../src/store/store.js';
import { describeMysql, describePostgres } from './helpers/env.js';
import { mysqlTestStore, postgresScratchDatabase, sqliteTestStore, type TestStore } from './helpers/stores.js';

const silent = { info() {}, warn() {}, error() {} };
const PAYLOAD = JSON.stringify({ desired: { project: 'shop', environment: 'prod', services: [], networks: [], volumes: [] }, onFailure: 'halt' });

function newApply(repo: string): NewApply {
  const nodeJson = JSON.stringify({ id: 1, kind: 'CreateNetwork', deps: [], target: { kind: 'network', name: 'default' } });
  return {
    repo,
    pr: 7,
    environment: 'prod',
    kind: 'apply',
    actor: 'alice',
    headSha: 'a'.repeat(40),
    desiredDigest: 'sha256:d1',
    planFingerprint: 'fp1',
    desiredJson: PAYLOAD,
    operations: [{ target: 'local', tasks: [{ nodeId: 1, kind: 'CreateNetwork', resource: 'network:default', reason: 'missing', deps: [], nodeJson }] }],
  };
}

/** What the fake GitHub received, across every runner. */
interface Sent {
  comments: string[];
  checkWrites: CheckRunUpdate[];
}

function github(sent: Sent): GitHubPort {
  return {
    async createComment(_r: unknown, _pr: number, body: string) {
      sent.comments.push(body);
      return sent.comments.length;
    },
    async updateCheckRun(_r: unknown, _id: number, u: CheckRunUpdate) {
      sent.checkWrites.push(u);
    },
    async getPull() {
      return { state: 'open' };
    },
  } as unknown as GitHubPort;
}

function runner(store: Store, holder: string, sent: Sent, now: () => number = Date.now): ApplyRunner {
  return new ApplyRunner({
    store,
    executor: () => ({ run: async (id: string) => (await store.getApply(id))!.state, holder, leaseTtlMs: 60_000 }) as unknown as Executor,
    github: async () => github(sent),
    log: silent,
    reportAttempts: 1,
    now,
  });
}

function suite(name: string, open: () => Promise<TestStore>) {
  describe(`owed reports are recovered once (${name})`, () => {
    let ts: TestStore;
    let second: Store;
    beforeEach(async () => {
      ts = await open();
      second = await openStore(ts.url);
    });
    afterEach(async () => {
      await second?.close();
      await ts?.dispose();
    });

    /** An apply that ended `state` under a process that died before its report: its leases still run for `ttlMs`. */
    async function orphan(state: 'completed' | 'failed' | 'stopped', ttlMs: number) {
      const repo = `acme/r${Math.random().toString(36).slice(2, 8)}`;
      const r = await ts.store.startApply(newApply(repo), { lock: { owner: `${repo}#7`, pr: 7 }, lease: { holder: 'dead', ttlMs } });
      if (!r.started) throw new Error('not started');
      // The dead process's report lease, as runner.start takes it.
      expect(await ts.store.claimLease(`report:${r.apply.id}`, 'dead', ttlMs)).not.toBeNull();
      const [t] = await ts.store.listTasksForApply(r.apply.id);
      expect(await ts.store.updateTask(t!.id, 'pending', { state: state === 'completed' ? 'succeeded' : state === 'failed' ? 'failed' : 'cancelled' }, r.fence)).toBe(true);
      await ts.store.setApplyCheckRun(r.apply.id, 42);
      const a = (await ts.store.getApply(r.apply.id))!;
      expect(await ts.store.casApplyState(a.id, a.version, { state, startedAt: 1, finishedAt: 2 })).toBe(true);
      return { repo, applyId: a.id };
    }

    it('an ended, unreported apply is listed until its report is out: claimed is not enough, marked reported is', async () => {
      const { applyId } = await orphan('completed', 60_000);
      expect((await ts.store.listUnreportedApplies()).map((a) => a.id)).toEqual([applyId]);
      expect(await second.claimReport(applyId, { holder: 'replica-2', ttlMs: 60_000 })).toBe(true);
      expect((await ts.store.listUnreportedApplies()).map((a) => a.id)).toEqual([applyId]);
      expect(await second.markReported(applyId)).toBe(true);
      expect(await ts.store.listUnreportedApplies()).toEqual([]);
    });

    it('left alone while the dead process\'s leases run; then two racing replicas report it once', async () => {
      const sent: Sent = { comments: [], checkWrites: [] };
      const { repo, applyId } = await orphan('failed', 400);
      const one = runner(ts.store, 'replica-1', sent);
      const two = runner(second, 'replica-2', sent);
      // Its reporter may still be alive: not taken.
      expect(await one.recoverReports()).toEqual([]);
      expect(sent.comments).toEqual([]);
      await new Promise((r) => setTimeout(r, 500));
      const [a, b] = await Promise.all([one.recoverReports(), two.recoverReports()]);
      expect([...a, ...b]).toEqual([applyId]);
      expect(sent.comments.filter((c) => c.includes('❌ Apply to `prod` failed'))).toHaveLength(1);
      expect(sent.checkWrites.filter((w) => w.status === 'completed')).toEqual([expect.objectContaining({ conclusion: 'failure' })]);
      // Reported: no later pass of either sends anything again, and the leases are gone.
      const before = sent.comments.length + sent.checkWrites.length;
      expect(await Promise.all([one.recoverReports(), two.recoverReports(), one.recoverReports()])).toEqual([[], [], []]);
      expect(sent.comments.length + sent.checkWrites.length).toBe(before);
      expect(await ts.store.listUnreportedApplies()).toEqual([]);
      expect(await ts.store.getLease(`report:${applyId}`)).toBeUndefined();
      // The lock no longer points at the ended apply.
      expect((await ts.store.getLock(repo, 'prod'))?.applyId).toBeNull();
    });

    it('many replicas racing many owed applies: each reported exactly once', async () => {
      const sent: Sent = { comments: [], checkWrites: [] };
      const ids = [];
      for (const s of ['completed', 'failed', 'stopped', 'completed'] as const) ids.push((await orphan(s, 1)).applyId);
      await new Promise((r) => setTimeout(r, 50));
      const runners = Array.from({ length: 4 }, (_, i) => runner(i % 2 ? second : ts.store, `replica-${i}`, sent));
      const done = (await Promise.all(runners.map((r) => r.recoverReports()))).flat();
      expect(done.sort()).toEqual([...ids].sort());
      expect(sent.comments).toHaveLength(4);
      expect(sent.checkWrites.filter((w) => w.status === 'completed')).toHaveLength(4);
    });

    it('an apply whose reporter is alive (its report lease renewed) is never taken', async () => {
      const sent: Sent = { comments: [], checkWrites: [] };
      const { applyId } = await orphan('completed', 60_000);
      // The apply lease lapses at its end (released), the report lease is still held.
      await ts.store.releaseLease(`apply:${applyId}`, 'dead');
      expect(await runner(second, 'replica-2', sent).recoverReports()).toEqual([]);
      expect(sent.comments).toEqual([]);
      expect((await ts.store.listUnreportedApplies()).map((a) => a.id)).toEqual([applyId]);
    });
  });
}

suite('SQLite', sqliteTestStore);
describeMysql('MariaDB', () => suite('MariaDB', mysqlTestStore));
describePostgres('PostgreSQL', () =>
  suite('PostgreSQL', async () => {
    const db = await postgresScratchDatabase();
    const store = await openStore(db.url);
    return {
      store,
      url: db.url,
      dispose: async () => {
        await store.close();
        await db.drop();
      },
    };
  }),
);
