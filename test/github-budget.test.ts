// GitHub's request budget and the apply's start, through the whole app:
// signed webhooks into Probot, berth talking to the fake GitHub (behind a
// proxy that can hold requests), the real store, observed state from the
// local engine, and applies on an in-memory engine. Counts of requests are
// behaviour (which calls a command makes), never timings.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BerthServices } from '../src/index.js';
import { Targets } from '../src/docker/targets.js';
import { HoldingProxy } from './helpers/app-process.js';
import { describeDocker } from './helpers/env.js';
import { FakeEngine } from './helpers/fake-engine.js';
import type { FakeGitHub } from './helpers/fake-github.js';
import { commentOnPullEvent, nextGitHubSecond, pullRequestEvent, startFakeGitHub } from './helpers/fake-github.js';
import { appKeys, serveBerth, type ServedApp } from './helpers/app-server.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';
import { until } from './helpers/wait.js';

const SECRET = 'budget-webhook-secret';
const APP_ID = 4251;
const HEAD = 'e'.repeat(40);

function shopFiles(): Record<string, string> {
  const shop = (p: string) => readFileSync(`fixtures/repos/shop/${p}`, 'utf8');
  return { '.github/berth.yml': shop('.github/berth.yml').replace('project: shop', 'project: t-budget-shop'), 'compose.yml': shop('compose.yml'), 'compose.production.yml': shop('compose.production.yml') };
}

/** One environment: a network, the image, and `n` services created and started (2 + 2n steps). */
function stackFiles(project: string, n: number): Record<string, string> {
  const lines = ['services:'];
  for (let i = 0; i < n; i++) lines.push(`  s${i}:`, '    image: berth-test/app:1');
  return {
    '.github/berth.yml': [`project: ${project}`, 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', ''].join('\n'),
    'compose.yml': lines.join('\n') + '\n',
  };
}

describeDocker('GitHub requests per command, and Docker work that does not wait for GitHub', () => {
  let fake: FakeGitHub;
  let proxy: HoldingProxy;
  let ts: TestStore;
  let app: ServedApp;
  let services!: BerthServices;
  let engine = new FakeEngine();

  beforeAll(async () => {
    const { privateKey, publicKey } = appKeys();
    fake = await startFakeGitHub({ appKey: publicKey, appId: APP_ID, appSlug: 'berth' });
    proxy = await new HoldingProxy(fake.url).start();
    for (const [repo, files] of [
      ['acme/shop', shopFiles()],
      ['acme/stack8', stackFiles('t-budget-8', 3)],
      ['acme/stack200', stackFiles('t-budget-200', 99)],
      ['acme/held', stackFiles('t-budget-held', 3)],
    ] as const) {
      fake.setRepo(repo, { defaultBranch: 'main' });
      fake.setFiles(repo, 'main', files);
      fake.setFiles(repo, HEAD, files);
      fake.setPull(repo, 1, { headSha: HEAD, author: 'alice', mergeable: true });
      fake.setPermission(repo, 'alice', 'write');
    }
    ts = await sqliteTestStore();
    const targets = Targets.single('unix:///var/run/docker.sock');
    // Applies run on an in-memory host (a fresh one per apply, like the empty project the local engine shows).
    targets.engine = () => engine;
    app = await serveBerth({ githubUrl: proxy.url, appId: APP_ID, privateKey, secret: SECRET, options: { store: ts.store, targets, recover: false, drift: false, progressIntervalMs: 60_000 } });
    services = app.services;
    // Probot's installation token, fetched once and cached: not a command's request.
    await deliver('pull_request', pullRequestEvent({ repo: 'acme/held', pr: 1, action: 'opened', headSha: HEAD }));
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await proxy?.close();
    await fake?.close();
    await ts?.dispose();
  });

  async function post(event: string, payload: unknown): Promise<void> {
    expect(await app.post(event, payload)).toBe(200);
  }

  async function deliver(event: string, payload: unknown): Promise<void> {
    await post(event, payload);
    await services.idle();
    await services.runner.drain(60_000);
  }

  async function comment(repo: string, body: string, wait = true): Promise<void> {
    await nextGitHubSecond();
    const c = fake.addComment(repo, 1, body, { user: 'alice' });
    const payload = commentOnPullEvent({ repo, pr: 1, comment: { id: c.id, body, user: 'alice', createdAt: c.createdAt, updatedAt: c.updatedAt } });
    if (wait) await deliver('issue_comment', payload);
    else await post('issue_comment', payload);
  }

  /** The requests made while `fn` ran (the installation token aside), by operation. */
  async function requestsDuring(fn: () => Promise<void>) {
    const from = fake.requests.length;
    await fn();
    const made = fake.requests.slice(from).filter((r) => !r.path.endsWith('/access_tokens'));
    const by: Record<string, number> = {};
    for (const r of made) by[r.operationId!] = (by[r.operationId!] ?? 0) + 1;
    return { made, by };
  }

  it('PR opened: 7 requests — berth.yml from the default branch once (no repos.get), the tree and each compose file at the head once', async () => {
    const { made, by } = await requestsDuring(() => deliver('pull_request', pullRequestEvent({ repo: 'acme/shop', pr: 1, action: 'opened', headSha: HEAD })));
    expect(by).toEqual({ 'repos/get-content': 3, 'git/get-tree': 1, 'checks/create': 2, 'issues/create-comment': 1 });
    // compose.yml serves staging and production: read once at the commit.
    const reads = made.filter((r) => r.operationId === 'repos/get-content').map((r) => `${r.path.replace('/repos/acme/shop/contents/', '')}@${r.query.ref ?? 'default branch'}`);
    expect(reads.sort()).toEqual(['.github/berth.yml@default branch', `compose.production.yml@${HEAD}`, `compose.yml@${HEAD}`]);
    expect(made).toHaveLength(7);
  });

  it('/plan at the head the autoplan read: 6 requests — 👀, berth.yml from the default branch, the PR, a check per environment, the comment edited; the tree and compose files come from the commit cache', async () => {
    const { made, by } = await requestsDuring(() => comment('acme/shop', '/plan'));
    expect(by).toEqual({
      'reactions/create-for-issue-comment': 1,
      'repos/get-content': 1,
      'pulls/get': 1,
      'checks/create': 2,
      'issues/update-comment': 1,
    });
    // The config is never taken from the cache: it is read from the default branch, which moves.
    expect(made.filter((r) => r.operationId === 'repos/get-content').map((r) => [r.path, r.query.ref])).toEqual([['/repos/acme/shop/contents/.github/berth.yml', undefined]]);
    expect(made).toHaveLength(6);
    expect(fake.violations).toEqual([]);
  });

  it('/plan on another replica (or after a restart) at the head the autoplan read: 7 requests — the tree listed again, each compose file found in the store by its blob', async () => {
    const { privateKey } = appKeys();
    const targets = Targets.single('unix:///var/run/docker.sock');
    targets.engine = () => engine;
    // A second process on the same store: nothing in its memory.
    const replica = await serveBerth({ githubUrl: proxy.url, appId: APP_ID, privateKey, secret: SECRET, options: { store: ts.store, targets, recover: false, drift: false, progressIntervalMs: 60_000 } });
    try {
      // Its installation token first (Probot's, cached for an hour: not the command's).
      expect(await replica.post('pull_request', pullRequestEvent({ repo: 'acme/held', pr: 1, action: 'opened', headSha: HEAD }))).toBe(200);
      await replica.services.idle();
      const { made, by } = await requestsDuring(async () => {
        await nextGitHubSecond();
        const c = fake.addComment('acme/shop', 1, '/plan', { user: 'alice' });
        expect(await replica.post('issue_comment', commentOnPullEvent({ repo: 'acme/shop', pr: 1, comment: { id: c.id, body: '/plan', user: 'alice', createdAt: c.createdAt, updatedAt: c.updatedAt } }))).toBe(200);
        await replica.services.idle();
      });
      expect(by).toEqual({
        'reactions/create-for-issue-comment': 1,
        'repos/get-content': 1,
        'git/get-tree': 1,
        'pulls/get': 1,
        'checks/create': 2,
        'issues/update-comment': 1,
      });
      expect(made.filter((r) => r.operationId === 'repos/get-content').map((r) => [r.path, r.query.ref])).toEqual([['/repos/acme/shop/contents/.github/berth.yml', undefined]]);
      expect(fake.violations).toEqual([]);
    } finally {
      await replica.close();
    }
  });

  it('/plan at a head no event read yet: 8 requests (its tree, and of its compose files only the one the push changed: the other is known by its blob); the next /plan there: 6; a changed default-branch config is read at once', async () => {
    const head2 = 'f'.repeat(40);
    const files = shopFiles();
    fake.setFiles('acme/shop', head2, { ...files, 'compose.yml': files['compose.yml']!.replace('      - DB_HOST=db', '      - DB_HOST=db\n      - FEATURE=cold') });
    const planAtHead = await ts.store.latestPlan('acme/shop', 1, 'staging');
    expect(planAtHead?.headSha).toBe(HEAD);
    fake.setPull('acme/shop', 1, { headSha: head2 });
    try {
      const cold = await requestsDuring(() => comment('acme/shop', '/plan'));
      expect(cold.by).toEqual({
        'reactions/create-for-issue-comment': 1,
        'repos/get-content': 2,
        'pulls/get': 1,
        'git/get-tree': 1,
        'checks/create': 2,
        'issues/update-comment': 1,
      });
      const reads = cold.made.filter((r) => r.operationId === 'repos/get-content').map((r) => `${r.path.replace('/repos/acme/shop/contents/', '')}@${r.query.ref ?? 'default branch'}`);
      expect(reads.sort()).toEqual(['.github/berth.yml@default branch', `compose.yml@${head2}`]);
      // The plan is of the new head's files, not of anything remembered from the old head.
      const plan = await ts.store.latestPlan('acme/shop', 1, 'staging');
      expect(plan?.headSha).toBe(head2);
      expect(plan?.desiredDigest).not.toBe(planAtHead?.desiredDigest);
      const warm = await requestsDuring(() => comment('acme/shop', '/plan'));
      expect(warm.made).toHaveLength(6);
      // The default branch's berth.yml changed between two commands at the same head: the next command sees it.
      fake.setFiles('acme/shop', 'main', { ...files, '.github/berth.yml': files['.github/berth.yml']! + '\n# changed\n' });
      const before = fake.requestsTo('repos/get-content').length;
      await comment('acme/shop', '/plan');
      const after = fake.requestsTo('repos/get-content').slice(before);
      expect(after.map((r) => r.path)).toEqual(['/repos/acme/shop/contents/.github/berth.yml']);
    } finally {
      fake.setFiles('acme/shop', 'main', files);
      fake.setPull('acme/shop', 1, { headSha: HEAD });
    }
    expect(fake.violations).toEqual([]);
  });

  it('a GitHub that will not list trees (404): /plan asks for each file instead, an absent one answering 404, and plans as usual', async () => {
    const head3 = '3'.repeat(40);
    const files = shopFiles();
    fake.setFiles('acme/shop', head3, { ...files, 'compose.yml': files['compose.yml']!.replace('      - DB_HOST=db', '      - DB_HOST=db\n      - FEATURE=no-tree') });
    fake.setPull('acme/shop', 1, { headSha: head3 });
    fake.fail('git/get-tree', { status: 404, message: 'Not Found' }, { times: 1000 });
    try {
      const { made, by } = await requestsDuring(() => comment('acme/shop', '/plan'));
      expect(by['git/get-tree']).toBe(1);
      const reads = made.filter((r) => r.operationId === 'repos/get-content').map((r) => `${r.path.replace('/repos/acme/shop/contents/', '')}@${r.query.ref ?? 'default branch'}`);
      // Without a listing no blob is named: both compose files are read, and .env is asked for (it is not there).
      expect(reads.sort()).toEqual(['.env@' + head3, '.github/berth.yml@default branch', `compose.production.yml@${head3}`, `compose.yml@${head3}`]);
      const runs = fake.checkRuns('acme/shop', head3);
      expect(runs.map((c) => [c.name, c.conclusion]).sort()).toEqual([
        ['berth / production', 'action_required'],
        ['berth / staging', 'action_required'],
      ]);
      expect((await ts.store.latestPlan('acme/shop', 1, 'staging'))?.headSha).toBe(head3);
    } finally {
      fake.fail('git/get-tree', 500, { times: 0 });
      fake.setPull('acme/shop', 1, { headSha: HEAD });
    }
    expect(fake.violations).toEqual([]);
  });

  it('/apply makes the same requests for 8 steps as for 200: progress is coalesced, never a write per step', async () => {
    const counts: Record<string, number>[] = [];
    for (const repo of ['acme/stack8', 'acme/stack200']) {
      await deliver('pull_request', pullRequestEvent({ repo, pr: 1, action: 'opened', headSha: HEAD }));
      engine = new FakeEngine();
      const { by } = await requestsDuring(() => comment(repo, '/apply staging'));
      const a = await ts.store.latestApply(repo, 'staging');
      expect(a?.state).toBe('completed');
      expect((await ts.store.listTasksForApply(a!.id)).length).toBe(repo === 'acme/stack8' ? 8 : 200);
      // The final update always; one progress update at most (it is skipped when the apply already ended).
      expect(by['checks/update']).toBeGreaterThanOrEqual(1);
      expect(by['checks/update']).toBeLessThanOrEqual(2);
      const check = fake.checkRuns(repo, HEAD).find((c) => c.externalId === a!.id)!;
      expect(check.conclusion).toBe('success');
      delete by['checks/update'];
      counts.push(by);
    }
    expect(counts[0]).toEqual({
      'reactions/create-for-issue-comment': 1,
      // berth.yml from the default branch; the tree and compose.yml at the head come from the commit cache (the autoplan read them)
      'repos/get-content': 1,
      'repos/get-collaborator-permission-level': 1,
      'pulls/get': 2,
      'checks/create': 1,
      'issues/create-comment': 2,
      // berth's plan comment read back: is it what berth wrote (nobody edited it)? (one part)
      'issues/get-comment': 1,
      // the apply as a GitHub deployment (issue 14): created, in_progress, then its final status
      'repos/create-deployment': 1,
      'repos/create-deployment-status': 2,
    });
    expect(counts[1]).toEqual(counts[0]);
  }, 60_000);

  it('Docker work runs while the check run is still being created; the comments and check-run writes stay in order, once each', async () => {
    await deliver('pull_request', pullRequestEvent({ repo: 'acme/held', pr: 1, action: 'synchronize', headSha: HEAD }));
    engine = new FakeEngine();
    const hold = proxy.hold(/^POST \/repos\/acme\/held\/check-runs /);
    const before = fake.comments('acme/held', 1).filter((c) => c.user === 'berth[bot]').length;
    await comment('acme/held', '/apply staging', false);
    // Every step runs to its end while GitHub has not answered the check run's creation.
    const a = await until('the apply to complete while its check run is held', async () => {
      const x = await ts.store.latestApply('acme/held', 'staging');
      return x?.state === 'completed' ? x : undefined;
    });
    expect((await ts.store.listTasksForApply(a.id)).map((t) => t.state)).toEqual(Array(8).fill('succeeded'));
    expect(engine.calls.filter((c) => c.method === 'startContainer')).toHaveLength(3);
    // Nothing reported yet: the start comment follows its check run, the outcome follows both.
    expect(fake.checkRuns('acme/held', HEAD).some((c) => c.externalId === a.id)).toBe(false);
    expect(fake.comments('acme/held', 1).filter((c) => c.user === 'berth[bot]')).toHaveLength(before);
    // The creation is on its way (Probot spaces writes about a second apart, so it may leave after the
    // apply ended) and is held at GitHub until released: exactly one.
    await until('the check run creation to be held at GitHub', () => (hold.held === 1 ? true : undefined));
    expect(hold.held).toBe(1);
    expect(fake.comments('acme/held', 1).filter((c) => c.user === 'berth[bot]')).toHaveLength(before);
    hold.release();
    await services.idle();
    await services.runner.drain(60_000);
    const runs = fake.checkRuns('acme/held', HEAD).filter((c) => c.externalId === a.id);
    expect(runs).toHaveLength(1);
    expect(runs[0]!.status).toBe('completed');
    expect(runs[0]!.conclusion).toBe('success');
    expect(runs[0]!.writes[0]).toMatchObject({ status: 'in_progress' });
    const said = fake.comments('acme/held', 1).filter((c) => c.user === 'berth[bot]').slice(before).map((c) => c.body);
    expect(said).toHaveLength(2);
    expect(said[0]).toMatch(/🚀 Applying `staging`/);
    expect(said[1]).toMatch(/✅ Apply to `staging` completed/);
    expect(fake.violations).toEqual([]);
  }, 60_000);
});
