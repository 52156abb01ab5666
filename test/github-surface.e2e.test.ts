// GitHub's surface beyond the happy path, through the whole app: signed
// webhooks built from @octokit/webhooks-examples go over HTTP into Probot,
// berth talks to the fake GitHub (every request checked against GitHub's REST
// description), observed state comes from the local engine. Each case asserts
// what berth did on GitHub, request by request.
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BerthServices } from '../src/index.js';
import { Targets } from '../src/docker/targets.js';
import { describeDocker } from './helpers/env.js';
import { FakeEngine } from './helpers/fake-engine.js';
import type { FakeGitHub } from './helpers/fake-github.js';
import { checkSuiteEvent, commentOnPullEvent, nextGitHubSecond, pullRequestEvent, startFakeGitHub } from './helpers/fake-github.js';
import { appKeys, serveBerth, type ServedApp } from './helpers/app-server.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';
import { pushEvent } from './helpers/push-event.js';

const SECRET = 'surface-webhook-secret';
const APP_ID = 4263;
const REPO = 'acme/shop';
const sha = (c: string) => c.repeat(40);
const HEAD = sha('1');
const FORK_HEAD = sha('2');
const MOVED = sha('3');
/** a repository whose one environment applies on an in-memory engine */
const SMALL = 'acme/small';
const MERGED = sha('4');
const ON_MERGE = 'acme/onmerge';
const ON_MERGE_FILES = {
  '.github/berth.yml': ['project: t-surface-merge', 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', '    apply_on: merge', ''].join('\n'),
  'compose.yml': ['services:', '  web:', '    image: berth-test/app:1', ''].join('\n'),
};
const PUSHED = sha('5');
const ON_PUSH = 'acme/onpush';
const ON_PUSH_FILES = {
  '.github/berth.yml': ['project: t-surface-push', 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', '    apply_on: push', ''].join('\n'),
  'compose.yml': ['services:', '  web:', '    image: berth-test/app:1', ''].join('\n'),
};
const SMALL_FILES = {
  '.github/berth.yml': ['project: t-surface-small', 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', ''].join('\n'),
  'compose.yml': ['services:', '  web:', '    image: berth-test/app:1', ''].join('\n'),
};

function shopFiles(): Record<string, string> {
  const shop = (p: string) => readFileSync(`fixtures/repos/shop/${p}`, 'utf8');
  return { '.github/berth.yml': shop('.github/berth.yml').replace('project: shop', 'project: t-surface-shop'), 'compose.yml': shop('compose.yml'), 'compose.production.yml': shop('compose.production.yml') };
}

describeDocker('GitHub surface: events and answers a different GitHub may send', () => {
  let fake: FakeGitHub;
  let ts: TestStore;
  let app: ServedApp;
  let services!: BerthServices;
  type Logged = { level: number; msg: string; status?: number };
  const logged: Logged[] = [];

  beforeAll(async () => {
    const { privateKey, publicKey } = appKeys();
    fake = await startFakeGitHub({ appKey: publicKey, appId: APP_ID, appSlug: 'berth' });
    fake.setRepo(REPO, { defaultBranch: 'main' });
    for (const ref of ['main', HEAD, FORK_HEAD, MOVED]) fake.setFiles(REPO, ref, shopFiles());
    fake.setPull(REPO, 1, { headSha: HEAD, author: 'alice', mergeable: true });
    fake.setPull(REPO, 2, { headSha: FORK_HEAD, author: 'mallory', fork: true });
    fake.setPermission(REPO, 'alice', 'write');
    fake.setRepo(SMALL, { defaultBranch: 'main' });
    for (const ref of ['main', HEAD]) fake.setFiles(SMALL, ref, SMALL_FILES);
    fake.setPull(SMALL, 1, { headSha: HEAD, author: 'alice', mergeable: true });
    fake.setPermission(SMALL, 'alice', 'write');
    fake.setRepo(ON_MERGE, { defaultBranch: 'main' });
    for (const ref of ['main', HEAD, MERGED]) fake.setFiles(ON_MERGE, ref, ON_MERGE_FILES);
    fake.setPull(ON_MERGE, 1, { headSha: HEAD, author: 'alice', mergeable: true });
    fake.setPermission(ON_MERGE, 'alice', 'write');
    fake.setRepo(ON_PUSH, { defaultBranch: 'main' });
    for (const ref of ['main', PUSHED]) fake.setFiles(ON_PUSH, ref, ON_PUSH_FILES);
    fake.setPermission(ON_PUSH, 'alice', 'write');
    ts = await sqliteTestStore();
    const targets = Targets.single('unix:///var/run/docker.sock');
    // Applies run on an in-memory host; planning observes the local engine (the projects run nothing there).
    targets.engine = () => new FakeEngine();
    app = await serveBerth({
      githubUrl: fake.url,
      appId: APP_ID,
      privateKey,
      secret: SECRET,
      log: pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line) as Logged) }),
      // APP_ID as the server reads it (Probot's environment): berth knows its own suites by it.
      options: { env: { ...process.env, APP_ID: String(APP_ID) }, store: ts.store, targets, recover: false, drift: false, progressIntervalMs: 60_000 },
    });
    services = app.services;
    // Both PRs opened (berth records their heads): plan comments and one check per environment each.
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'opened', headSha: HEAD }));
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 2, action: 'opened', headSha: FORK_HEAD, headRepo: 'mallory/shop' }));
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await fake?.close();
    await ts?.dispose();
  });

  async function deliver(event: string, payload: unknown): Promise<void> {
    expect(await app.post(event, payload)).toBe(200);
    await services.idle();
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

  const checks = (head: string) => fake.checkRuns(REPO, head).map((c) => `${c.name}: ${c.conclusion}`);

  it('check_suite.rerequested ("Re-run all checks") on berth\'s suite re-plans every environment of the PR GitHub names', async () => {
    const before = checks(HEAD);
    expect(before.sort()).toEqual(['berth / production: action_required', 'berth / staging: action_required']);
    const { by } = await requestsDuring(() => deliver('check_suite', checkSuiteEvent({ repo: REPO, headSha: HEAD, prs: [1], appId: APP_ID })));
    // The PR read (open, head still the suite's), berth.yml, a check per environment, the plan comment edited in place.
    expect(by).toMatchObject({ 'pulls/get': 1, 'checks/create': 2, 'issues/update-comment': 1 });
    expect(by['issues/create-comment']).toBeUndefined();
    expect(checks(HEAD).slice(before.length).sort()).toEqual(['berth / production: action_required', 'berth / staging: action_required']);
  });

  it('a fork PR\'s suite comes without pull_requests: the PR is found by the head berth recorded, and re-planned', async () => {
    const before = fake.checkRuns(REPO, FORK_HEAD).length;
    const { by } = await requestsDuring(() => deliver('check_suite', checkSuiteEvent({ repo: REPO, headSha: FORK_HEAD, prs: [], appId: APP_ID })));
    expect(by).toMatchObject({ 'pulls/get': 1, 'checks/create': 2 });
    const fresh = fake.checkRuns(REPO, FORK_HEAD).slice(before);
    expect(fresh.map((c) => c.name).sort()).toEqual(['berth / production', 'berth / staging']);
    expect(fresh.every((c) => c.externalId === 'berth-plan:pr:2')).toBe(true);
  });

  it('another app\'s suite, a commit berth never saw on a PR, and a PR whose head moved on are left alone', async () => {
    const other = await requestsDuring(() => deliver('check_suite', checkSuiteEvent({ repo: REPO, headSha: HEAD, prs: [1], appId: APP_ID + 1 })));
    expect(other.made).toEqual([]);
    const unknown = await requestsDuring(() => deliver('check_suite', checkSuiteEvent({ repo: REPO, headSha: sha('9'), prs: [], appId: APP_ID })));
    expect(unknown.made).toEqual([]);
    // PR 1 was pushed to since the suite's commit: re-running the old suite must not plan the new head as the old one's.
    fake.setPull(REPO, 1, { headSha: MOVED, author: 'alice', mergeable: true });
    const moved = await requestsDuring(() => deliver('check_suite', checkSuiteEvent({ repo: REPO, headSha: HEAD, prs: [1], appId: APP_ID })));
    expect(moved.by).toEqual({ 'pulls/get': 1 });
    fake.setPull(REPO, 1, { headSha: HEAD, author: 'alice', mergeable: true });
  });

  it('re-running a check of a closed PR plans nothing (the PR is read, nothing written)', async () => {
    fake.setPull(REPO, 3, { headSha: HEAD, author: 'alice', state: 'closed' });
    const run = fake.checkRuns(REPO, HEAD).find((c) => c.name === 'berth / staging')!;
    const payload = {
      action: 'rerequested',
      check_run: { id: run.id, name: run.name, head_sha: HEAD, status: 'completed', conclusion: run.conclusion, external_id: 'berth-plan:pr:3', pull_requests: [], app: { id: APP_ID } },
      repository: { full_name: REPO, name: 'shop', owner: { login: 'acme' } },
      installation: { id: 1 },
      sender: { login: 'alice', type: 'User' },
    };
    const { by } = await requestsDuring(() => deliver('check_run', payload));
    expect(by).toEqual({ 'pulls/get': 1 });
  });

  it('berth never takes its own comments as commands, even shown under a plain user: made through its app, or opening with its marker', async () => {
    await nextGitHubSecond();
    const viaApp = fake.addComment(REPO, 1, '/plan', { user: 'berth-app' });
    const own = commentOnPullEvent({ repo: REPO, pr: 1, comment: { id: viaApp.id, body: '/plan', user: 'berth-app', createdAt: viaApp.createdAt, updatedAt: viaApp.updatedAt } }) as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    own.comment.performed_via_github_app = { id: APP_ID, slug: 'berth', name: 'berth' };
    expect((await requestsDuring(() => deliver('issue_comment', own))).made).toEqual([]);
    const quoted = fake.addComment(REPO, 1, '<!-- berth -->\n/plan', { user: 'berth-app' });
    const marked = commentOnPullEvent({ repo: REPO, pr: 1, comment: { id: quoted.id, body: quoted.body, user: 'berth-app', createdAt: quoted.createdAt, updatedAt: quoted.updatedAt } });
    expect((await requestsDuring(() => deliver('issue_comment', marked))).made).toEqual([]);
    // The same command from a person is one (the control): acknowledged and planned.
    const person = fake.addComment(REPO, 1, '/plan staging', { user: 'alice' });
    const { by } = await requestsDuring(() => deliver('issue_comment', commentOnPullEvent({ repo: REPO, pr: 1, comment: { id: person.id, body: person.body, user: 'alice', createdAt: person.createdAt, updatedAt: person.updatedAt } })));
    expect(by).toMatchObject({ 'reactions/create-for-issue-comment': 1, 'checks/create': 1 });
  });

  it('GitHub refusing deployments (403, no Deployments permission) never touches the apply: applied, reported once, the refusal logged, not retried', async () => {
    await deliver('pull_request', pullRequestEvent({ repo: SMALL, pr: 1, action: 'opened', headSha: HEAD }));
    fake.fail('repos/create-deployment', { status: 403, message: 'Resource not accessible by integration' }, { times: 10 });
    try {
      await nextGitHubSecond();
      const c = fake.addComment(SMALL, 1, '/apply staging', { user: 'alice' });
      const t0 = Date.now();
      const { by } = await requestsDuring(async () => {
        await deliver('issue_comment', commentOnPullEvent({ repo: SMALL, pr: 1, comment: { id: c.id, body: c.body, user: 'alice', createdAt: c.createdAt, updatedAt: c.updatedAt } }));
        await services.runner.drain(30_000);
      });
      const a = await ts.store.latestApply(SMALL, 'staging');
      expect(a?.state).toBe('completed');
      expect(fake.checkRuns(SMALL, HEAD).find((r) => r.externalId === a!.id)).toMatchObject({ status: 'completed', conclusion: 'success' });
      expect(fake.comments(SMALL, 1).filter((x) => x.body.includes('✅ Apply to `staging` completed'))).toHaveLength(1);
      // Asked at the start, and once more by the final report: a refusal GitHub will repeat is not retried with backoff.
      expect(by['repos/create-deployment']).toBe(2);
      expect(by['repos/create-deployment-status']).toBeUndefined();
      expect(Date.now() - t0).toBeLessThan(6_000);
      expect(logged.some((l) => l.level === 50 && l.msg === 'could not create the GitHub deployment: GitHub refused it' && l.status === 403)).toBe(true);
      // Reported: no recovery pass owes it anything.
      expect((await ts.store.listUnreportedApplies()).map((x) => x.id)).not.toContain(a!.id);
    } finally {
      fake.fail('repos/create-deployment', 403, { times: 0 });
    }
  }, 60_000);

  it('a check run GitHub refuses to create (403) while planning is logged; the plan comment is still written, no internal error', async () => {
    fake.fail('checks/create', { status: 403, message: 'Resource not accessible by integration' }, { times: 2 });
    const before = fake.comments(REPO, 1).filter((c) => c.user === 'berth[bot]').map((c) => c.body);
    const from = logged.length;
    await nextGitHubSecond();
    const c = fake.addComment(REPO, 1, '/plan', { user: 'alice' });
    const { by } = await requestsDuring(() => deliver('issue_comment', commentOnPullEvent({ repo: REPO, pr: 1, comment: { id: c.id, body: c.body, user: 'alice', createdAt: c.createdAt, updatedAt: c.updatedAt } })));
    expect(by['checks/create']).toBe(2);
    expect(by['issues/update-comment']).toBe(1);
    const after = fake.comments(REPO, 1).filter((x) => x.user === 'berth[bot]');
    expect(after).toHaveLength(before.length);
    expect(after.some((x) => x.body.includes('berth hit an internal error'))).toBe(false);
    expect(logged.slice(from).filter((l) => l.level === 50 && l.msg === 'could not create check run')).toHaveLength(2);
  });

  it('a merge whose payload leaves out the repository\'s default branch still applies apply_on: merge (the default branch is asked)', async () => {
    await deliver('pull_request', pullRequestEvent({ repo: ON_MERGE, pr: 1, action: 'opened', headSha: HEAD }));
    fake.setPull(ON_MERGE, 1, { headSha: HEAD, author: 'alice', state: 'closed', merged: true });
    const closed = pullRequestEvent({ repo: ON_MERGE, pr: 1, action: 'closed', headSha: HEAD, merged: true }) as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    closed.pull_request.merge_commit_sha = MERGED;
    closed.pull_request.base.ref = 'main';
    closed.pull_request.merged_by = { login: 'alice', type: 'User' };
    delete closed.repository.default_branch;
    const { by } = await requestsDuring(async () => {
      await deliver('pull_request', closed);
      await services.runner.drain(30_000);
    });
    expect(by['repos/get']).toBe(1);
    const a = await ts.store.latestApply(ON_MERGE, 'staging');
    expect(a).toMatchObject({ state: 'completed', headSha: MERGED, pr: 1 });
    expect(fake.checkRuns(ON_MERGE, MERGED).find((r) => r.externalId === a!.id)).toMatchObject({ conclusion: 'success' });
  }, 60_000);

  it('a push whose payload leaves out the default branch: a push to it applies apply_on: push, one to another branch does not', async () => {
    const push = (ref: string) => pushEvent({ id: 5, name: 'onpush', full_name: ON_PUSH, owner: { login: 'acme', name: 'acme' } }, PUSHED, ref);
    const other = await requestsDuring(async () => {
      await deliver('push', push('refs/heads/feature'));
      await services.runner.drain(30_000);
    });
    expect(other.by).toEqual({ 'repos/get': 1 });
    expect(await ts.store.latestApply(ON_PUSH, 'staging')).toBeUndefined();
    await deliver('push', push('refs/heads/main'));
    await services.runner.drain(30_000);
    const a = await ts.store.latestApply(ON_PUSH, 'staging');
    expect(a).toMatchObject({ state: 'completed', headSha: PUSHED, pr: null });
    expect(fake.checkRuns(ON_PUSH, PUSHED).find((r) => r.externalId === a!.id)).toMatchObject({ conclusion: 'success' });
  }, 60_000);

  it('check_suite.requested and .completed (sent on every push) plan nothing: pull_request events do', async () => {
    for (const action of ['requested', 'completed'] as const) {
      const { made } = await requestsDuring(() => deliver('check_suite', checkSuiteEvent({ repo: REPO, headSha: HEAD, prs: [1], appId: APP_ID, action })));
      expect(made).toEqual([]);
    }
  });
});
