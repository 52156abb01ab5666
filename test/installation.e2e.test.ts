// A delivery that names no installation (GitHub always names one for an app;
// a replay or another stand-in may not): berth asks GitHub, with the app's own
// JWT, which installation the repository has, and acts through it; a
// repository the app is not installed on is ignored. Through the whole app:
// signed webhooks into Probot, the fake GitHub, the real store.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Targets } from '../src/docker/targets.js';
import { describeDocker } from './helpers/env.js';
import { FakeEngine } from './helpers/fake-engine.js';
import type { FakeGitHub } from './helpers/fake-github.js';
import { commentOnPullEvent, nextGitHubSecond, startFakeGitHub } from './helpers/fake-github.js';
import { appKeys, serveBerth, type ServedApp, type Uuid } from './helpers/app-server.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';
import { until } from './helpers/wait.js';

const SECRET = 'installation-webhook-secret';
const APP_ID = 4261;
const HEAD = 'd'.repeat(40);

describeDocker('a delivery that names no installation', () => {
  let fake: FakeGitHub;
  let ts: TestStore;
  let app: ServedApp;

  beforeAll(async () => {
    const { privateKey, publicKey } = appKeys();
    fake = await startFakeGitHub({ appKey: publicKey, appId: APP_ID, appSlug: 'berth' });
    const shop = (p: string) => readFileSync(`fixtures/repos/shop/${p}`, 'utf8');
    const files = { '.github/berth.yml': shop('.github/berth.yml').replace('project: shop', 'project: t-no-installation'), 'compose.yml': shop('compose.yml'), 'compose.production.yml': shop('compose.production.yml') };
    fake.setRepo('acme/shop', { defaultBranch: 'main' });
    fake.setFiles('acme/shop', 'main', files);
    fake.setFiles('acme/shop', HEAD, files);
    fake.setPull('acme/shop', 1, { headSha: HEAD, author: 'alice', mergeable: true });
    fake.setPermission('acme/shop', 'alice', 'write');
    ts = await sqliteTestStore();
    const targets = Targets.single('unix:///var/run/docker.sock');
    targets.engine = () => new FakeEngine();
    app = await serveBerth({ githubUrl: fake.url, appId: APP_ID, privateKey, secret: SECRET, options: { store: ts.store, targets, recover: false, drift: false } });
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await fake?.close();
    await ts?.dispose();
  });

  /** `/plan` on PR 1 of `repo`, its payload stripped of `installation`. */
  async function planWithoutInstallation(repo: string, delivery: Uuid = randomUUID()) {
    await nextGitHubSecond();
    const c = fake.addComment('acme/shop', 1, '/plan', { user: 'alice' });
    const payload = { ...commentOnPullEvent({ repo, pr: 1, comment: { id: c.id, body: '/plan', user: 'alice', createdAt: c.createdAt, updatedAt: c.updatedAt } }), installation: undefined };
    const from = fake.requests.length;
    expect(await app.post('issue_comment', payload, delivery)).toBe(200);
    await app.services.idle();
    return { comment: c.id, made: fake.requests.slice(from) };
  }

  it('asks GitHub for the repository’s installation with the app’s JWT, then acts through it: 👀, a check run per environment, the plan comment', async () => {
    const { comment, made } = await planWithoutInstallation('acme/shop');
    const ops = made.map((r) => r.operationId);
    expect(made.filter((r) => r.operationId === 'apps/get-repo-installation').map((r) => r.path)).toEqual(['/repos/acme/shop/installation']);
    expect(made.filter((r) => r.operationId === 'apps/create-installation-access-token').map((r) => r.path)).toEqual(['/app/installations/1/access_tokens']);
    // The installation first, then its token, then the work.
    expect(ops.indexOf('apps/get-repo-installation')).toBeLessThan(ops.indexOf('apps/create-installation-access-token'));
    expect(fake.reactions('acme/shop', comment).map((r) => r.content)).toEqual(['eyes']);
    expect(fake.checkRuns('acme/shop', HEAD).map((c) => [c.name, c.conclusion]).sort()).toEqual([
      ['berth / production', 'action_required'],
      ['berth / staging', 'action_required'],
    ]);
    expect((await ts.store.latestPlan('acme/shop', 1, 'staging'))?.headSha).toBe(HEAD);
    expect(fake.violations).toEqual([]);
  });

  it('asks once per repository: the next such delivery goes straight to work', async () => {
    const { made } = await planWithoutInstallation('acme/shop');
    expect(made.filter((r) => r.operationId === 'apps/get-repo-installation')).toEqual([]);
    expect(made.filter((r) => r.operationId === 'reactions/create-for-issue-comment')).toHaveLength(1);
  });

  /** Another berth process on the same store, with recovery on (its first pass resumes what dead ones left). */
  const recoveringProcess = () => {
    const targets = Targets.single('unix:///var/run/docker.sock');
    targets.engine = () => new FakeEngine();
    return serveBerth({ githubUrl: fake.url, appId: APP_ID, privateKey: appKeys().privateKey, secret: SECRET, options: { store: ts.store, targets, recover: true, drift: false } });
  };

  it('a delivery naming no installation that a dead process claimed is resumed by the next one: the installation asked, the work done once', async () => {
    await nextGitHubSecond();
    const c = fake.addComment('acme/shop', 1, '/plan', { user: 'alice' });
    const payload = { ...commentOnPullEvent({ repo: 'acme/shop', pr: 1, comment: { id: c.id, body: '/plan', user: 'alice', createdAt: c.createdAt, updatedAt: c.updatedAt } }), installation: undefined };
    const delivery = randomUUID();
    // Claimed (stored with its payload) by a process that died before its work: the claim lapses in 1 ms.
    expect(await ts.store.claimDelivery(delivery, 'issue_comment.created', JSON.stringify(payload), 'dead-replica', 1)).toBe(true);
    await new Promise((r) => setTimeout(r, 20));
    const from = fake.requests.length;
    // A new process with recovery on: its first pass resumes the delivery.
    const next = await recoveringProcess();
    try {
      await until('the resumed delivery reacts to its comment', () => fake.reactions('acme/shop', c.id).length > 0, { timeoutMs: 20_000 });
      await next.services.idle();
      const made = fake.requests.slice(from);
      expect(made.filter((r) => r.operationId === 'apps/get-repo-installation').map((r) => r.path)).toEqual(['/repos/acme/shop/installation']);
      expect(fake.reactions('acme/shop', c.id).map((r) => r.content)).toEqual(['eyes']);
      // Done: no process runs it again.
      expect(await ts.store.claimDelivery(delivery, 'issue_comment', '{}', 'another-replica', 1)).toBe(false);
    } finally {
      await next.close();
    }
  });

  it('a delivery whose work was started three times and never finished (each claim ended with its process) is given up, not a crash loop', async () => {
    await nextGitHubSecond();
    const c = fake.addComment('acme/shop', 1, '/plan', { user: 'alice' });
    const payload = commentOnPullEvent({ repo: 'acme/shop', pr: 1, comment: { id: c.id, body: '/plan', user: 'alice', createdAt: c.createdAt, updatedAt: c.updatedAt } });
    const delivery = randomUUID();
    // Three processes took it and died while handling it (as an out-of-memory kill would).
    for (const dead of ['dead-1', 'dead-2', 'dead-3']) {
      expect(await ts.store.claimDelivery(delivery, 'issue_comment.created', JSON.stringify(payload), dead, 1)).toBe(true);
      await new Promise((r) => setTimeout(r, 20));
    }
    const from = fake.requests.length;
    const next = await recoveringProcess();
    try {
      await until('the recovery pass gives the delivery up', async () => !(await ts.store.pendingDeliveries()).some((d) => d.deliveryId === delivery), { timeoutMs: 20_000 });
      await next.services.idle();
      // Not run a fourth time: nothing asked of GitHub for it, no reaction; and done for every replica.
      expect(fake.requests.slice(from).filter((r) => r.operationId === 'reactions/create-for-issue-comment')).toEqual([]);
      expect(fake.reactions('acme/shop', c.id)).toEqual([]);
      expect(await ts.store.claimDelivery(delivery, 'issue_comment', '{}', 'another-replica', 1)).toBe(false);
    } finally {
      await next.close();
    }
  });

  it('a repository the app is not installed on (GitHub answers 404): ignored, nothing written anywhere, the server unharmed', async () => {
    const delivery = randomUUID();
    const { made } = await planWithoutInstallation('acme/elsewhere', delivery);
    expect(made.map((r) => `${r.operationId} ${r.status}`)).toEqual(['apps/get-repo-installation 404']);
    // Done: the same delivery again is a duplicate (no request), not work left for a recovery pass.
    const again = await planWithoutInstallation('acme/elsewhere', delivery);
    expect(again.made).toEqual([]);
    expect(await ts.store.claimDelivery(delivery, 'issue_comment', '{}', 'another-replica', 1)).toBe(false);
    // And the app still works.
    const { made: after } = await planWithoutInstallation('acme/shop');
    expect(after.filter((r) => r.operationId === 'checks/create')).toHaveLength(2);
  });
});
