// "Each apply is reported exactly once" (DESIGN), across a crash between the
// report's claim and its sends: the claim is not the report. A process that
// claims an ended apply's report and dies before (or while) sending it leaves
// the claim behind; once the claim is older than a lease, a recovery pass of
// any replica sends the report again, idempotently — the check run is updated
// by id, the outcome comment is found by its hidden marker and edited rather
// than posted twice, a deployment status GitHub already holds is not repeated.
// What GitHub ends with is asserted on the fake GitHub (requests checked
// against GitHub's REST description), on every store backend.
import { Octokit as OctokitCore } from '@octokit/core';
import { paginateRest } from '@octokit/plugin-paginate-rest';
import { restEndpointMethods } from '@octokit/plugin-rest-endpoint-methods';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Executor } from '../src/apply/executor.js';
import { ApplyRunner } from '../src/apply/supervisor.js';
import { deploymentSpec } from '../src/github/deployments.js';
import type { GitHubPort } from '../src/github/github.js';
import { parseRepo } from '../src/github/github.js';
import { OctokitGitHub } from '../src/github/octokit-github.js';
import { openStore } from '../src/store/open.js';
import type { NewApply, Store } from '../src/store/store.js';
import { describeMysql, describePostgres } from './helpers/env.js';
import type { FakeGitHub } from './helpers/fake-github.js';
import { startFakeGitHub } from './helpers/fake-github.js';
import { mysqlTestStore, postgresScratchDatabase, sqliteTestStore, type TestStore } from './helpers/stores.js';

const Octokit = OctokitCore.plugin(restEndpointMethods, paginateRest);
const silent = { info() {}, warn() {}, error() {} };
const PAYLOAD = JSON.stringify({ desired: { project: 'shop', environment: 'prod', services: [], networks: [], volumes: [] }, onFailure: 'halt' });
const HEAD = 'a'.repeat(40);
const TTL = 300;

let fake: FakeGitHub;
beforeAll(async () => {
  fake = await startFakeGitHub();
});
afterAll(async () => {
  await fake?.close();
});

function newApply(repo: string): NewApply {
  const nodeJson = JSON.stringify({ id: 1, kind: 'CreateNetwork', deps: [], target: { kind: 'network', name: 'default' } });
  return {
    repo,
    pr: 7,
    environment: 'prod',
    kind: 'apply',
    actor: 'alice',
    headSha: HEAD,
    desiredDigest: 'sha256:d1',
    planFingerprint: 'fp1',
    desiredJson: PAYLOAD,
    operations: [{ target: 'local', tasks: [{ nodeId: 1, kind: 'CreateNetwork', resource: 'network:default', reason: 'missing', deps: [], nodeJson }] }],
  };
}

const port = (): GitHubPort => new OctokitGitHub(new Octokit({ baseUrl: fake.url, auth: fake.token }) as never);

/** What dies, and when: after GitHub took the call (its answer lost), or before the call is made. */
type CrashPoint = { method: keyof GitHubPort; sent: boolean };

/**
 * The port of a process that dies at `at`: that call (made or not) and every call after it never
 * return, as if the process were gone. `died` resolves when it happened.
 */
function dying(gh: GitHubPort, at: CrashPoint): { gh: GitHubPort; died: Promise<void> } {
  let dead = false;
  let die!: () => void;
  const died = new Promise<void>((r) => (die = r));
  const never = new Promise<never>(() => {});
  const proxy = new Proxy(gh, {
    get(target, prop) {
      const fn = Reflect.get(target, prop) as unknown;
      if (typeof fn !== 'function') return fn;
      return async (...args: unknown[]) => {
        if (dead) return never;
        if (prop !== at.method) return (fn as (...a: unknown[]) => unknown).apply(target, args);
        dead = true;
        if (at.sent) await (fn as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        die();
        return never;
      };
    },
  });
  return { gh: proxy, died };
}

function runner(store: Store, holder: string, gh: GitHubPort): ApplyRunner {
  return new ApplyRunner({
    store,
    executor: () => ({ run: async (id: string) => (await store.getApply(id))!.state, holder, leaseTtlMs: TTL }) as unknown as Executor,
    github: async () => gh,
    log: silent,
    reportAttempts: 2,
    reportRetryMs: 10,
  });
}

function suite(name: string, open: () => Promise<TestStore>) {
  describe(`a report claimed and never sent is sent once, after all (${name})`, () => {
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

    /** An apply that ended `state`, started as the app starts one: its check run and its GitHub deployment exist. */
    async function ended(state: 'completed' | 'failed') {
      const repo = `acme/r${Math.random().toString(36).slice(2, 8)}`;
      fake.setRepo(repo, { defaultBranch: 'main' });
      fake.setFiles(repo, HEAD, { 'compose.yml': 'services: {}\n' });
      fake.setPull(repo, 7, { headSha: HEAD, author: 'alice' });
      const r = await ts.store.startApply(newApply(repo), { lock: { owner: `${repo}#7`, pr: 7 }, lease: { holder: 'driver', ttlMs: TTL } });
      if (!r.started) throw new Error('not started');
      const gh = port();
      const checkRunId = await gh.createCheckRun(parseRepo(repo), { name: 'berth / prod', headSha: HEAD, status: 'in_progress', title: 'Applying prod', summary: '…', externalId: r.apply.id });
      await ts.store.setApplyCheckRun(r.apply.id, checkRunId);
      await runner(ts.store, 'driver', gh).deploy(gh, { id: r.apply.id, repo, environment: 'prod', checkRunId }, deploymentSpec({ name: 'prod', transient_environment: false }, { id: r.apply.id, kind: 'apply', pr: 7, actor: 'alice' }, HEAD));
      const [t] = await ts.store.listTasksForApply(r.apply.id);
      expect(await ts.store.updateTask(t!.id, 'pending', { state: state === 'completed' ? 'succeeded' : 'failed' }, r.fence)).toBe(true);
      const a = (await ts.store.getApply(r.apply.id))!;
      expect(await ts.store.casApplyState(a.id, a.version, { state, startedAt: 1, finishedAt: 2 })).toBe(true);
      expect(await ts.store.releaseLease(`apply:${a.id}`, 'driver')).toBe(true);
      return { repo, applyId: a.id, checkRunId };
    }

    /** What GitHub shows of the apply's report: outcome comments, the check run, the deployment's statuses. */
    function onGitHub(repo: string, checkRunId: number) {
      const outcomes = fake.comments(repo, 7).filter((c) => /Apply to `prod` (completed|failed)/.test(c.body));
      const run = fake.checkRuns(repo, HEAD).find((c) => c.id === checkRunId)!;
      const [deployment] = fake.deployments(repo, 'prod');
      return { outcomes, run, statuses: deployment!.statuses.map((s) => s.state) };
    }

    const points: [string, CrashPoint][] = [
      ['after the claim, before the check run is completed', { method: 'updateCheckRun', sent: false }],
      ['after the check run was completed, before the comment', { method: 'createComment', sent: false }],
      ['after GitHub took the outcome comment, before berth heard back', { method: 'createComment', sent: true }],
      ['after GitHub took the final deployment status, before berth heard back', { method: 'createDeploymentStatus', sent: true }],
    ];
    for (const [when, at] of points) {
      it(`crash ${when}: recovery on another replica sends the rest; GitHub holds one outcome, one conclusion, one final status`, async () => {
        const { repo, applyId, checkRunId } = await ended('failed');
        const { gh, died } = dying(port(), at);
        void runner(ts.store, 'replica-1', gh).finish(applyId);
        await died;
        // The claim is taken and the report not out: owed still, but not to be taken while the claim is young.
        expect(await ts.store.reportClaim(applyId)).toMatchObject({ holder: 'replica-1' });
        expect((await ts.store.listUnreportedApplies()).map((a) => a.id)).toEqual([applyId]);
        const two = runner(second, 'replica-2', port());
        expect(await two.recoverReports()).toEqual([]);
        await new Promise((r) => setTimeout(r, TTL + 100));
        expect(await two.recoverReports()).toEqual([applyId]);
        const seen = onGitHub(repo, checkRunId);
        expect(seen.outcomes).toHaveLength(1);
        expect(seen.outcomes[0]!.body).toContain('❌ Apply to `prod` failed');
        expect(seen.run).toMatchObject({ status: 'completed', conclusion: 'failure' });
        expect(seen.statuses).toEqual(['in_progress', 'failure']);
        // Reported now: no pass of any replica sends anything again.
        const requests = fake.requests.length;
        await new Promise((r) => setTimeout(r, TTL + 100));
        expect(await Promise.all([two.recoverReports(), runner(ts.store, 'replica-3', port()).recoverReports()])).toEqual([[], []]);
        expect(fake.requests.length).toBe(requests);
        expect(await ts.store.listUnreportedApplies()).toEqual([]);
      });
    }

    it('a send GitHub keeps refusing (5xx) leaves the report owed; a later pass sends it, once', async () => {
      const { repo, applyId, checkRunId } = await ended('completed');
      fake.fail('issues/create-comment', { status: 502 }, { times: 100 });
      try {
        await runner(ts.store, 'replica-1', port()).finish(applyId);
      } finally {
        fake.fail('issues/create-comment', { status: 502 }, { times: 0 });
      }
      expect(onGitHub(repo, checkRunId).outcomes).toHaveLength(0);
      expect((await ts.store.listUnreportedApplies()).map((a) => a.id)).toEqual([applyId]);
      await new Promise((r) => setTimeout(r, TTL + 100));
      expect(await runner(second, 'replica-2', port()).recoverReports()).toEqual([applyId]);
      const seen = onGitHub(repo, checkRunId);
      expect(seen.outcomes).toHaveLength(1);
      expect(seen.outcomes[0]!.body).toContain('✅ Apply to `prod` completed');
      expect(seen.run).toMatchObject({ status: 'completed', conclusion: 'success' });
      expect(seen.statuses).toEqual(['in_progress', 'success']);
      expect(await ts.store.listUnreportedApplies()).toEqual([]);
    });

    it('a GitHub that does not serve the listings a re-send looks at (404) still gets the report, sent once when nothing was before', async () => {
      const { repo, applyId, checkRunId } = await ended('failed');
      const { gh, died } = dying(port(), { method: 'updateCheckRun', sent: false });
      void runner(ts.store, 'replica-1', gh).finish(applyId);
      await died;
      await new Promise((r) => setTimeout(r, TTL + 100));
      for (const route of ['issues/list-comments', 'repos/list-deployment-statuses']) fake.fail(route, { status: 404, message: 'Not Found' }, { times: 100 });
      try {
        expect(await runner(second, 'replica-2', port()).recoverReports()).toEqual([applyId]);
      } finally {
        for (const route of ['issues/list-comments', 'repos/list-deployment-statuses']) fake.fail(route, 404, { times: 0 });
      }
      const seen = onGitHub(repo, checkRunId);
      expect(seen.outcomes).toHaveLength(1);
      expect(seen.run).toMatchObject({ status: 'completed', conclusion: 'failure' });
      expect(seen.statuses).toEqual(['in_progress', 'failure']);
      expect(await ts.store.listUnreportedApplies()).toEqual([]);
    });

    it('a 422 on the final check update is retried and lands; a 4xx every attempt got is GitHub\'s last word: logged, the rest sent, reported', async () => {
      const once = await ended('completed');
      fake.fail('checks/update', { status: 422, message: 'Validation Failed' }, { times: 1 });
      await runner(ts.store, 'replica-1', port()).finish(once.applyId);
      expect(onGitHub(once.repo, once.checkRunId).run).toMatchObject({ status: 'completed', conclusion: 'success' });
      const always = await ended('completed');
      fake.fail('checks/update', { status: 422, message: 'Validation Failed' }, { times: 100 });
      try {
        await runner(ts.store, 'replica-1', port()).finish(always.applyId);
      } finally {
        fake.fail('checks/update', 422, { times: 0 });
      }
      const seen = onGitHub(always.repo, always.checkRunId);
      expect(seen.run.status).toBe('in_progress');
      expect(seen.outcomes).toHaveLength(1);
      expect(seen.statuses).toEqual(['in_progress', 'success']);
      expect(await ts.store.listUnreportedApplies()).toEqual([]);
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
