// The whole app, end to end: signed webhooks (real payload shapes) go over
// HTTP into Probot, berth talks to a fake GitHub that validates every request
// against GitHub's REST description, and applies run on the real dockerd with
// a real store. Every comment and check run berth posts is asserted.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BerthServices } from '../src/index.js';
import { LABEL } from '../src/model/model.js';
import { Targets } from '../src/docker/targets.js';
import { docker, removeProject } from './helpers/docker.js';
import { describeDocker } from './helpers/env.js';
import type { FakeCheckRun, FakeGitHub } from './helpers/fake-github.js';
import { commentOnPullEvent, nextGitHubSecond, pullRequestEvent, startFakeGitHub } from './helpers/fake-github.js';
import { appKeys, serveBerth, type ServedApp } from './helpers/app-server.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';
import { expectGolden } from './helpers/golden.js';

const REPO = 'acme/shop';
const SECRET = 'e2e-webhook-secret';
const PROJECT = 't-e2e';
const APP_ID = 4242;
const sha = (c: string) => c.repeat(40);
const HEAD1 = sha('a');
const HEAD1B = sha('b');
const HEAD2 = sha('c');
const HEAD3 = sha('d');
const GOLDEN = 'fixtures/comments';

function repoFiles(extra: Record<string, string> = {}): Record<string, string> {
  const shop = (p: string) => readFileSync(`fixtures/repos/shop/${p}`, 'utf8');
  const config = shop('.github/berth.yml')
    .replace('project: shop', `project: ${PROJECT}`)
    .replace('"18080"', '"28180"')
    .replace('"18081"', '"28181"')
    .concat(
      [
        '',
        '# appended by the e2e test: a slow environment for /stop and close-while-applying',
      ].join('\n'),
    );
  // `preview`: a chain of services that each wait for the previous to be healthy (a few seconds in all).
  const withPreview = config.replace(
    'policy:',
    ['  - name: preview', '    compose: [compose.slow.yml]', '    targets: [local]', 'policy:'].join('\n'),
  );
  const slow = ['services:'];
  for (let i = 0; i < 5; i++) {
    slow.push(`  step${i}:`, '    image: berth-test/app:1', '    healthcheck:', '      test: ["CMD-SHELL", "test -f /VERSION"]', '      interval: 1s', '      retries: 30');
    if (i > 0) slow.push('    depends_on:', `      step${i - 1}:`, '        condition: service_healthy');
  }
  return {
    '.github/berth.yml': withPreview,
    'compose.yml': shop('compose.yml'),
    'compose.production.yml': shop('compose.production.yml'),
    'compose.slow.yml': slow.join('\n') + '\n',
    ...extra,
  };
}

const cleanup = () => removeProject(PROJECT);

/** Variable parts of a comment (ids, durations) replaced so golden files are stable. */
function normalise(body: string): string {
  return body
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<apply-id>')
    .replace(/\b\d+(\.\d+)? (ms|s)\b/g, '<duration>')
    .replace(/\b\d+ min \d+ s\b/g, '<duration>')
    .replace(/Fingerprint: [0-9a-f]+/g, 'Fingerprint: <fingerprint>')
    .replace(/`[0-9a-f]{32}`/g, '`<fingerprint>`')
    // the apply timeline's task times (Mermaid Gantt, epoch ms)
    .replace(/\b\d{13}\b/g, '<ms>');
}

function golden(name: string, body: string) {
  expectGolden(`${GOLDEN}/${name}.md`, normalise(body));
}

describeDocker('berth as a GitHub App, end to end', () => {
  let fake: FakeGitHub;
  let ts: TestStore;
  let app: ServedApp;
  let services!: BerthServices;
  let commentSeq = 0;
  const latencies: number[] = [];

  beforeAll(async () => {
    await cleanup();
    const { privateKey, publicKey } = appKeys();
    fake = await startFakeGitHub({ appKey: publicKey, appId: APP_ID, appSlug: 'berth' });
    fake.setRepo(REPO, { defaultBranch: 'main' });
    fake.setFiles(REPO, 'main', repoFiles());
    fake.setFiles(REPO, HEAD1, repoFiles());
    fake.setFiles(REPO, HEAD1B, repoFiles());
    fake.setPull(REPO, 1, { headSha: HEAD1, author: 'alice', mergeable: true });
    fake.setPermission(REPO, 'alice', 'write');
    fake.setPermission(REPO, 'mallory', 'read');
    ts = await sqliteTestStore();
    // Throttling spaces writes ≥1 s apart (GitHub's advice, kept in production); the fake has no quota: off here.
    app = await serveBerth({ githubUrl: fake.url, appId: APP_ID, privateKey, secret: SECRET, options: { store: ts.store, targets: Targets.single('unix:///var/run/docker.sock'), recover: false, progressIntervalMs: 200 } });
    services = app.services;
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await fake?.close();
    await ts?.dispose();
    await cleanup();
  });

  async function deliver(event: string, payload: unknown, delivery: `${string}-${string}-${string}-${string}-${string}` = randomUUID()): Promise<number> {
    const t0 = performance.now();
    const status = await app.post(event, payload, delivery);
    latencies.push(performance.now() - t0);
    await services.idle();
    return status;
  }

  async function say(pr: number, body: string, user = 'alice', delivery?: `${string}-${string}-${string}-${string}-${string}`): Promise<number> {
    if (/\/(apply|rollback)\b/.test(body)) await nextGitHubSecond();
    const c = fake.addComment(REPO, pr, body, { user });
    commentSeq = c.id;
    expect(await deliver('issue_comment', commentOnPullEvent({ repo: REPO, pr, comment: { id: c.id, body, user, createdAt: c.createdAt, updatedAt: c.updatedAt } }), delivery)).toBe(200);
    return c.id;
  }

  const berthComments = (pr: number) => fake.comments(REPO, pr).filter((c) => c.user === 'berth[bot]');
  const lastReply = (pr: number) => berthComments(pr).at(-1)!.body;
  const check = (headSha: string, name: string): FakeCheckRun => fake.checkRuns(REPO, headSha).filter((c) => c.name === name).at(-1)!;

  async function applyEnded(env: string) {
    await services.runner.drain(60_000);
    const a = await ts.store.latestApply(REPO, env);
    expect(a && ['completed', 'failed', 'stopped']).toContain(a!.state);
    return a!;
  }

  async function running(env: string): Promise<string[]> {
    const cs = await docker.listContainers({ filters: { label: [`${LABEL.project}=${PROJECT}`, `${LABEL.environment}=${env}`] } });
    return cs.map((c) => c.Names[0]!.slice(1)).sort();
  }

  it('PR opened: one plan comment for every environment, and an action_required check per environment', async () => {
    expect(await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'opened', headSha: HEAD1 }))).toBe(200);
    const comments = berthComments(1);
    expect(comments).toHaveLength(1);
    const body = comments[0]!.body;
    expect(body).toContain('## berth plan for `aaaaaaa`');
    for (const env of ['staging', 'production', 'preview']) expect(body).toContain(env);
    expect(body).toContain('```diff');
    expect(body).not.toContain('staging-secret');
    golden('pr-opened', body);
    for (const env of ['staging', 'production', 'preview']) {
      const c = check(HEAD1, `berth / ${env}`);
      expect(c.status).toBe('completed');
      expect(c.conclusion).toBe('action_required');
    }
    expect(check(HEAD1, 'berth / staging').title).toBe('6 to create, 0 to change, 0 to remove');
    expect(await ts.store.latestPlan(REPO, 1, 'staging')).toMatchObject({ headSha: HEAD1 });
  });

  it('/apply production before staging is refused by the staging-first gate', async () => {
    fake.setPermission(REPO, 'bob', 'write');
    fake.addReview(REPO, 1, { user: 'bob', state: 'APPROVED' });
    const id = await say(1, '/apply production');
    expect(fake.reactions(REPO, id).map((r) => r.content)).toEqual(['eyes']);
    const reply = lastReply(1);
    expect(reply).toContain('### 🚫 Staging first');
    expect(reply).toContain('`staging`: this pull request (#1 at `aaaaaaa`) has not applied its `staging` state there');
    expect(reply).toContain('`/apply staging`');
    golden('refused-staging-first', reply);
    expect(await ts.store.listApplies({ environment: 'production' })).toEqual([]);
  });

  it('an unauthorised actor is refused', async () => {
    await say(1, '/apply staging', 'mallory');
    const reply = lastReply(1);
    expect(reply).toContain('### 🚫 Not authorised');
    expect(reply).toContain('@mallory');
    expect(reply).toContain('`read`');
    expect(await ts.store.listApplies({ environment: 'staging' })).toEqual([]);
  });

  it('/apply staging: containers run, the check goes in_progress then success, the lock is held', async () => {
    await say(1, '/apply staging');
    expect(lastReply(1)).toMatch(/🚀 Applying `staging` at `aaaaaaa`: 12 steps/);
    const apply = await applyEnded('staging');
    expect(apply.state).toBe('completed');
    expect(await running('staging')).toEqual([`${PROJECT}-staging-api-1`, `${PROJECT}-staging-db-1`, `${PROJECT}-staging-web-1`]);
    const c = check(HEAD1, 'berth / staging');
    expect(c.externalId).toBe(apply.id);
    expect(c.writes.some((w) => w.status === 'in_progress')).toBe(true);
    expect(c.status).toBe('completed');
    expect(c.conclusion).toBe('success');
    expect(c.title).toMatch(/^Applied staging in /);
    expect(c.summary).toContain('| 12 | 0 | 0 | 0 |');
    expect(lastReply(1)).toMatch(/✅ Apply to `staging` completed in /);
    golden('apply-completed', lastReply(1));
    expect(await ts.store.getLock(REPO, 'staging')).toMatchObject({ owner: `${REPO}#1`, pr: 1, applyId: null });
  }, 60_000);

  it('after staging, /apply production passes the gate and applies', async () => {
    await say(1, '/apply production');
    const apply = await applyEnded('production');
    expect(apply.state).toBe('completed');
    expect(check(HEAD1, 'berth / production').conclusion).toBe('success');
    expect(await running('production')).toEqual([`${PROJECT}-production-api-1`, `${PROJECT}-production-api-2`, `${PROJECT}-production-db-1`, `${PROJECT}-production-web-1`]);
  }, 60_000);

  it('a second PR is told who holds the lock, with a link', async () => {
    fake.setFiles(REPO, HEAD2, repoFiles({ 'compose.yml': readFileSync('fixtures/repos/shop/compose.yml', 'utf8').replace('      - DB_HOST=db', '      - DB_HOST=db\n      - FEATURE=on') }));
    fake.setPull(REPO, 2, { headSha: HEAD2, author: 'carol' });
    fake.setPermission(REPO, 'carol', 'write');
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 2, action: 'opened', headSha: HEAD2 }));
    expect(check(HEAD2, 'berth / staging').conclusion).toBe('action_required');
    expect(berthComments(2)[0]!.body).toContain('FEATURE');
    await say(2, '/apply staging', 'carol');
    const reply = lastReply(2);
    expect(reply).toContain('### 🚫 `staging` is locked');
    expect(reply).toContain('[acme/shop#1](https://github.com/acme/shop/pull/1)');
    expect(await ts.store.listApplies({ environment: 'staging' })).toHaveLength(1);
  });

  it('a PR from a fork cannot apply', async () => {
    fake.setFiles(REPO, HEAD3, repoFiles());
    fake.setPull(REPO, 3, { headSha: HEAD3, author: 'eve', fork: true });
    fake.setPermission(REPO, 'dave', 'admin');
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 3, action: 'opened', headSha: HEAD3, headRepo: 'eve/shop' }));
    await say(3, '/apply preview', 'dave');
    expect(lastReply(3)).toContain('### 🚫 PRs from forks cannot apply');
    expect(await ts.store.listApplies({ pr: 3 })).toEqual([]);
  });

  it('a malformed command gets the help table and a did-you-mean', async () => {
    const id = await say(1, '/aply staging');
    expect(fake.reactions(REPO, id).map((r) => r.content)).toEqual(['eyes']);
    const reply = lastReply(1);
    expect(reply).toContain('/apply staging');
    expect(reply).toMatch(/did you mean/i);
    expect(reply).toContain('| `/plan');
    golden('invalid-command', reply);
    // Ordinary talk and commands inside code are ignored, with no reaction.
    const before = berthComments(1).length;
    const quiet = await say(1, 'Looks good.\n```\n/apply staging\n```');
    expect(berthComments(1)).toHaveLength(before);
    expect(fake.reactions(REPO, quiet)).toEqual([]);
  });

  it('a stale head is refused: berth re-plans and says so', async () => {
    fake.setPull(REPO, 1, { headSha: HEAD1B });
    await say(1, '/apply staging');
    const reply = lastReply(1);
    expect(reply).toContain('### 🚫 The plan is out of date');
    expect(reply).toContain('`aaaaaaa`');
    expect(reply).toContain('`bbbbbbb`');
    expect(check(HEAD1B, 'berth / staging').conclusion).toBe('success'); // re-planned at the new head: nothing to do
    expect(await ts.store.listApplies({ environment: 'staging' })).toHaveLength(1);
    // The plan comment was edited in place, not duplicated.
    expect(berthComments(1)[0]!.body).toContain('## berth plan for `bbbbbbb`');
  });

  it('/apply at a head whose plan fails answers with the plan\'s error, not "plan again and apply again" (black-box QA)', async () => {
    const broken = sha('9');
    fake.setFiles(REPO, broken, repoFiles({ 'compose.yml': 'services:\n  web:\n    imagee: nginx\n' }));
    fake.setPull(REPO, 1, { headSha: broken });
    try {
      await say(1, '/apply staging');
      const reply = lastReply(1);
      expect(reply).toContain('### 🚫 The plan failed');
      expect(reply).toContain('compose.yml');
      expect(reply).toContain('imagee');
      expect(reply).not.toContain('out of date');
      expect(check(broken, 'berth / staging').conclusion).toBe('failure');
      expect(await ts.store.listApplies({ environment: 'staging' })).toHaveLength(1);
    } finally {
      fake.setPull(REPO, 1, { headSha: HEAD1B });
    }
  });

  it('a redelivered /apply runs once; /stop mid-apply ends it cancelled', async () => {
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'synchronize', headSha: HEAD1B }));
    const delivery = randomUUID();
    await say(1, '/apply preview', 'alice', delivery);
    // GitHub redelivers the same delivery id.
    const body = commentOnPullEvent({ repo: REPO, pr: 1, comment: { id: commentSeq, body: '/apply preview', user: 'alice' } });
    expect(await deliver('issue_comment', body, delivery)).toBe(200);
    expect(await ts.store.listApplies({ environment: 'preview' })).toHaveLength(1);
    // Wait for the first steps to run, then stop.
    for (;;) {
      const a = await ts.store.latestApply(REPO, 'preview');
      const tasks = await ts.store.listTasksForApply(a!.id);
      if (tasks.filter((t) => t.state === 'succeeded').length >= 3) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    await say(1, '/stop preview');
    expect(berthComments(1).some((c) => c.body.includes('⏹️ Stop requested for `preview`'))).toBe(true);
    const apply = await applyEnded('preview');
    expect(apply.state).toBe('stopped');
    const c = check(HEAD1B, 'berth / preview');
    expect(c.conclusion).toBe('cancelled');
    const tasks = await ts.store.listTasksForApply(apply.id);
    expect(tasks.some((t) => t.state === 'cancelled')).toBe(true);
    expect(tasks.some((t) => t.state === 'running' || t.state === 'pending')).toBe(false);
    expect(lastReply(1)).toContain('⏹️ Apply to `preview` was stopped');
  }, 60_000);

  it('PR closed with an apply in flight: other locks go at once, that one when the apply ends', async () => {
    await say(1, '/plan preview');
    await say(1, '/apply preview');
    const inflight = await ts.store.applyOf(REPO, 1, 'preview');
    expect(inflight).toBeDefined();
    fake.setPull(REPO, 1, { state: 'closed', merged: true });
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'closed', headSha: HEAD1B, merged: true }));
    expect(await ts.store.getLock(REPO, 'staging')).toBeUndefined();
    expect(await ts.store.getLock(REPO, 'production')).toBeUndefined();
    expect(await ts.store.getLock(REPO, 'preview')).toMatchObject({ pr: 1, applyId: inflight!.id });
    const apply = await applyEnded('preview');
    expect(apply.state).toBe('completed');
    expect(await ts.store.getLock(REPO, 'preview')).toBeUndefined();
  }, 60_000);

  it('after the lock is free, PR 2 applies; /rollback re-applies the previous state; /unlock releases', async () => {
    await say(2, '/apply staging', 'carol');
    expect((await applyEnded('staging')).state).toBe('completed');
    const env = async () => (await docker.getContainer(`${PROJECT}-staging-api-1`).inspect()).Config.Env ?? [];
    expect(await env()).toContain('FEATURE=on');
    await say(2, '/rollback staging', 'carol');
    const rb = await applyEnded('staging');
    expect(rb.kind).toBe('rollback');
    expect(rb.state).toBe('completed');
    expect(await env()).not.toContain('FEATURE=on');
    expect(await ts.store.getLock(REPO, 'staging')).toMatchObject({ pr: 2 });
    await say(2, '/unlock staging', 'mallory');
    expect(lastReply(2)).toContain('### 🚫 Not authorised');
    await say(2, '/unlock staging', 'carol');
    expect(lastReply(2)).toContain('🔓 Unlocked `staging`');
    expect(await ts.store.getLock(REPO, 'staging')).toBeUndefined();
  }, 60_000);

  it('re-requesting a check re-plans that environment', async () => {
    const before = fake.checkRuns(REPO, HEAD2).filter((c) => c.name === 'berth / production').length;
    const payload = {
      action: 'rerequested',
      check_run: { id: 1, name: 'berth / production', head_sha: HEAD2, status: 'completed', conclusion: 'action_required', pull_requests: [{ number: 2, id: 2, url: '', head: { ref: 'x', sha: HEAD2, repo: {} }, base: { ref: 'main', sha: HEAD2, repo: {} } }] },
      repository: { full_name: REPO, name: 'shop', owner: { login: 'acme' } },
      installation: { id: 1 },
      sender: { login: 'carol', type: 'User' },
    };
    expect(await deliver('check_run', payload)).toBe(200);
    const after = fake.checkRuns(REPO, HEAD2).filter((c) => c.name === 'berth / production');
    expect(after.length).toBe(before + 1);
    expect(after.at(-1)!.conclusion).toBe('action_required');
  });

  it('comments by bots, berth included, are ignored', async () => {
    const before = berthComments(2).length;
    const id = await say(2, '/apply staging', 'renovate[bot]');
    expect(fake.reactions(REPO, id)).toEqual([]);
    expect(berthComments(2)).toHaveLength(before);
    expect(await ts.store.listApplies({ pr: 2 })).toHaveLength(2);
  });

  it('an exception in a handler is logged and reported on the PR; the app keeps serving', async () => {
    const original = services.bot.planPullRequest.bind(services.bot);
    services.bot.planPullRequest = async () => {
      throw new Error('boom: injected');
    };
    try {
      const delivery = randomUUID();
      expect(await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 2, action: 'synchronize', headSha: HEAD2 }), delivery)).toBe(200);
      expect(lastReply(2)).toContain('⚠️ berth hit an internal error');
      expect(lastReply(2)).toContain(delivery);
      expect(lastReply(2)).not.toContain('boom');
    } finally {
      services.bot.planPullRequest = original;
    }
    await say(2, '/help', 'carol');
    expect(lastReply(2)).toContain('### berth commands');
  });

  it('a secondary rate limit on a write is waited out, not lost', async () => {
    fake.fail('checks/create', 'secondary-rate-limit', { times: 1, retryAfter: 1 });
    const before = fake.checkRuns(REPO, HEAD2).length;
    await say(2, '/plan staging', 'carol');
    const after = fake.checkRuns(REPO, HEAD2);
    expect(after.length).toBe(before + 1);
    expect(after.at(-1)!.name).toBe('berth / staging');
  });

  it('a check-run reporting failure never affects the apply', async () => {
    fake.fail('checks/update', 500, { times: 50 });
    fake.fail('checks/create', 500, { times: 5 });
    await say(2, '/apply staging', 'carol');
    const a = await applyEnded('staging');
    expect(a.state).toBe('completed');
    expect(lastReply(2)).toContain('✅ Apply to `staging` completed');
    fake.fail('checks/update', 500, { times: 0 });
  }, 60_000);

  it('every request berth made matches GitHub\'s REST description, and no secret left the server', async () => {
    expect(fake.violations).toEqual([]);
    expect(fake.unhandled).toEqual([]);
    const all = JSON.stringify(fake.requests.map((r) => r.body));
    for (const secret of ['staging-secret', 'production-secret']) expect(all).not.toContain(secret);
    // The operations series saw what happened.
    const text = await services.metrics.text();
    expect(text).toMatch(/berth_commands_total\{command="apply",outcome="handled"\} [1-9]/);
    expect(text).toMatch(/berth_commands_total\{command="invalid",outcome="rejected"\} [1-9]/);
    expect(text).toMatch(/berth_apply_duration_seconds_count\{outcome="completed"\} [1-9]/);
    expect(text).toMatch(/berth_apply_duration_seconds_count\{outcome="stopped"\} 1/);
    expect(text).toMatch(/berth_tasks_total\{kind="CreateContainer",state="succeeded"\} [1-9]/);
    expect(text).toMatch(/berth_webhooks_total\{event="issue_comment",outcome="duplicate"\} 1/);
    // Webhook handling is detached: GitHub gets its answer fast.
    const sorted = [...latencies].sort((a, b) => a - b);
    expect(sorted.length).toBeGreaterThan(10);
  });
});
