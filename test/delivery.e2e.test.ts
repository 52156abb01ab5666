// GitHub-native delivery (issue 14), end to end: signed webhooks into the real
// app, a fake GitHub that checks every request against GitHub's REST
// description, applies on the real dockerd with a real store. Each apply and
// rollback must appear as a GitHub deployment with its statuses; `/status`
// answers in one comment; merges and pushes apply by themselves; and the
// `berth / <env>` check can be a required check that only an apply turns green.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BerthServices } from '../src/index.js';
import { Targets } from '../src/docker/targets.js';
import { removeProject } from './helpers/docker.js';
import { describeDocker } from './helpers/env.js';
import type { FakeCheckRun, FakeGitHub } from './helpers/fake-github.js';
import { commentOnPullEvent, nextGitHubSecond, pullRequestEvent, startFakeGitHub } from './helpers/fake-github.js';
import { appKeys, serveBerth, type ServedApp } from './helpers/app-server.js';
import { mermaidBlocks, validateMermaid } from './helpers/mermaid-subset.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';
import { expectGolden } from './helpers/golden.js';
import { pushEvent } from './helpers/push-event.js';

const REPO = 'acme/deliver';
const SECRET = 'delivery-webhook-secret';
const PROJECT = 't-deliver';
const APP_ID = 4343;
const sha = (c: string) => c.repeat(40);
const A = sha('a');
const B = sha('b');
const C = sha('c');
/** the merge commit of PR 1, and of PR 3 */
const M1 = sha('e');
const M3 = sha('f');
const D = sha('d');
/** pushes to the default branch */
const P1 = '1'.repeat(40);
const P2 = '2'.repeat(40);
const P3 = '3'.repeat(40);
/** PR 4's heads: G2 has the same files as G1, G3 changes them */
const G1 = '4'.repeat(40);
const G2 = '5'.repeat(40);
const G3 = '6'.repeat(40);
const GOLDEN = 'fixtures/comments';
const TOKEN = 'tok-very-secret-4711';

const CONFIG = `project: ${PROJECT}
environments:
  - name: staging
    compose: [compose.yml]
    url: https://staging.shop.example
    variables:
      TAG: "1"
      API_TOKEN: ${TOKEN}
  - name: qa
    compose: [compose.yml]
    production_environment: true
    transient_environment: true
    variables:
      TAG: "1"
  - name: prod
    compose: [compose.yml]
    requires: [staging]
    apply_on: merge
    url: https://shop.example
    variables:
      TAG: "1"
      API_TOKEN: ${TOKEN}
  - name: edge
    compose: [edge.yml]
    apply_on: push
`;

/** edge: a short chain of services that wait for each other to be healthy, so an apply lasts a few seconds. */
const edge = (feature: string) => {
  const out = ['services:'];
  for (let i = 0; i < 3; i++) {
    out.push(`  step${i}:`, '    image: berth-test/app:1', '    environment:', `      - FEATURE=${feature}`, '    healthcheck:', '      test: ["CMD-SHELL", "test -f /VERSION"]', '      interval: 1s', '      retries: 30');
    if (i > 0) out.push('    depends_on:', `      step${i - 1}:`, '        condition: service_healthy');
  }
  return out.join('\n') + '\n';
};

const tree = (composeText: string, feature = 'base') => ({ '.github/berth.yml': CONFIG, 'compose.yml': composeText, 'edge.yml': edge(feature) });

const compose = (extra = '') => `services:
  app:
    image: berth-test/app:\${TAG}
    environment:
      - API_TOKEN=\${API_TOKEN:-none}
${extra}`;

/** A service whose health check never passes, and one that waits for it: the apply fails at WaitHealthy. */
const FAILING = `      - FEATURE=on
  sick:
    image: berth-test/app:1
    healthcheck:
      test: ["CMD-SHELL", "exit 1"]
      interval: 1s
      timeout: 1s
      retries: 1
  waiter:
    image: berth-test/app:1
    depends_on:
      sick:
        condition: service_healthy
`;

function normalise(body: string): string {
  return body
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '<apply-id>')
    .replace(/\b\d+(\.\d+)? (ms|s)\b/g, '<duration>')
    .replace(/\b\d+ min \d+ s\b/g, '<duration>')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, '<time>')
    .replace(/runs\/\d+/g, 'runs/<id>')
    .replace(/`[0-9a-f]{8}`/g, '`<apply>`');
}

function golden(name: string, body: string) {
  expectGolden(`${GOLDEN}/${name}.md`, normalise(body));
}

describeDocker('GitHub-native delivery, end to end', () => {
  let fake: FakeGitHub;
  let ts: TestStore;
  let app: ServedApp;
  let services!: BerthServices;

  beforeAll(async () => {
    await removeProject(PROJECT);
    const { privateKey, publicKey } = appKeys();
    fake = await startFakeGitHub({ appKey: publicKey, appId: APP_ID, appSlug: 'berth' });
    fake.setRepo(REPO, { defaultBranch: 'main' });
    fake.setFiles(REPO, 'main', tree(compose()));
    fake.setFiles(REPO, A, tree(compose()));
    fake.setFiles(REPO, B, tree(compose('      - FEATURE=on\n')));
    fake.setFiles(REPO, C, tree(compose(FAILING)));
    fake.setFiles(REPO, M1, tree(compose()));
    fake.setFiles(REPO, D, tree(compose('      - FEATURE=three\n')));
    fake.setFiles(REPO, M3, tree(compose('      - FEATURE=three\n')));
    fake.setFiles(REPO, G1, tree(compose('      - FEATURE=four\n')));
    fake.setFiles(REPO, G2, tree(compose('      - FEATURE=four\n')));
    fake.setFiles(REPO, G3, tree(compose('      - FEATURE=five\n')));
    for (const [p, f] of [[P1, 'one'], [P2, 'two'], [P3, 'three']] as const) fake.setFiles(REPO, p, tree(compose(), f));
    fake.setPull(REPO, 1, { headSha: A, author: 'alice', mergeable: true });
    fake.setPermission(REPO, 'alice', 'write');
    ts = await sqliteTestStore();
    app = await serveBerth({ githubUrl: fake.url, appId: APP_ID, privateKey, secret: SECRET, options: { store: ts.store, targets: Targets.single('unix:///var/run/docker.sock'), recover: false, drift: false, progressIntervalMs: 200 } });
    services = app.services;
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await fake?.close();
    await ts?.dispose();
    await removeProject(PROJECT);
  });

  async function deliver(event: string, payload: unknown): Promise<void> {
    expect(await app.post(event, payload)).toBe(200);
    await services.idle();
  }

  async function say(pr: number, body: string, user = 'alice'): Promise<void> {
    if (/\/(apply|rollback)\b/.test(body)) await nextGitHubSecond();
    const c = fake.addComment(REPO, pr, body, { user });
    await deliver('issue_comment', commentOnPullEvent({ repo: REPO, pr, comment: { id: c.id, body, user, createdAt: c.createdAt, updatedAt: c.updatedAt } }));
  }

  const berthComments = (pr: number) => fake.comments(REPO, pr).filter((c) => c.user === 'berth[bot]');
  const lastReply = (pr: number) => berthComments(pr).at(-1)!.body;
  const check = (headSha: string, name: string): FakeCheckRun => fake.checkRuns(REPO, headSha).filter((c) => c.name === name).at(-1)!;

  async function ended(env: string) {
    await services.runner.drain(60_000);
    const a = await ts.store.latestApply(REPO, env);
    expect(['completed', 'failed', 'stopped']).toContain(a!.state);
    return a!;
  }

  async function push(pr: number, head: string) {
    fake.setPull(REPO, pr, { headSha: head });
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr, action: 'synchronize', headSha: head }));
  }

  const states = (d: { statuses: { state: string }[] }) => d.statuses.map((s) => s.state);

  // ── 1. deployments ─────────────────────────────────────────────────────────

  it('an apply is a GitHub deployment of its environment at the applied head: in_progress, then success with the URL and the check run as log', async () => {
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'opened', headSha: A }));
    await say(1, '/apply staging');
    const apply = await ended('staging');
    expect(apply.state).toBe('completed');
    const [d, ...rest] = fake.deployments(REPO, 'staging');
    expect(rest).toEqual([]);
    expect(d!.ref).toBe(A);
    expect(d!.request).toMatchObject({ ref: A, environment: 'staging', required_contexts: [], auto_merge: false, production_environment: false, transient_environment: false });
    expect(d!.payload).toMatchObject({ apply_id: apply.id, kind: 'apply', pr: 1, actor: 'alice' });
    expect(states(d!)).toEqual(['in_progress', 'success']);
    const checkRun = check(A, 'berth / staging');
    for (const s of d!.statuses) {
      expect(s.environmentUrl).toBe('https://staging.shop.example');
      expect(s.logUrl).toBe(`https://github.com/${REPO}/runs/${checkRun.id}`);
    }
    expect(await ts.store.getDeployment(apply.id)).toMatchObject({ deploymentId: d!.id, state: 'success' });
    // The pictures (4): the plan comment draws each environment's plan, the outcome comment the apply's timeline; all valid.
    const plan = berthComments(1)[0]!.body;
    const charts = mermaidBlocks(plan);
    expect(charts.length).toBe(4);
    for (const c of charts) expect(validateMermaid(c.lines.join('\n'))).toEqual([]);
    const outcome = lastReply(1);
    const [gantt] = mermaidBlocks(outcome);
    expect(gantt!.kind).toBe('gantt');
    expect(validateMermaid(gantt!.lines.join('\n'))).toEqual([]);
    expect(outcome).toContain('section app');
  }, 60_000);

  it('production_environment and transient_environment come from berth.yml', async () => {
    await say(1, '/apply qa');
    expect((await ended('qa')).state).toBe('completed');
    const [d] = fake.deployments(REPO, 'qa');
    expect(d!.request).toMatchObject({ environment: 'qa', production_environment: true, transient_environment: true });
    expect(d!.statuses.every((s) => s.environmentUrl === '')).toBe(true);
    expect(states(d!)).toEqual(['in_progress', 'success']);
    await removeProject(PROJECT, { environment: 'qa' });
  }, 60_000);

  it('a new successful apply marks the earlier deployment inactive; a rollback is a deployment of the commit it restores', async () => {
    await push(1, B);
    await say(1, '/apply staging');
    expect((await ended('staging')).state).toBe('completed');
    let ds = fake.deployments(REPO, 'staging');
    expect(ds.map((d) => d.ref)).toEqual([A, B]);
    expect(states(ds[0]!)).toEqual(['in_progress', 'success', 'inactive']);
    expect(ds[0]!.statuses.at(-1)!.creator).toBe('berth[bot]');
    expect(states(ds[1]!)).toEqual(['in_progress', 'success']);

    await say(1, '/rollback staging');
    const rb = await ended('staging');
    expect(rb.kind).toBe('rollback');
    ds = fake.deployments(REPO, 'staging');
    expect(ds).toHaveLength(3);
    expect(ds[2]!.ref).toBe(A);
    expect(ds[2]!.payload).toMatchObject({ apply_id: rb.id, kind: 'rollback' });
    expect(states(ds[2]!)).toEqual(['in_progress', 'success']);
    expect(states(ds[1]!)).toEqual(['in_progress', 'success', 'inactive']);
    expect(states(ds[0]!)).toEqual(['in_progress', 'success', 'inactive']);
  }, 90_000);

  it('a failed apply ends its deployment failure and leaves the live one active', async () => {
    await push(1, C);
    await say(1, '/apply staging');
    const a = await ended('staging');
    expect(a.state).toBe('failed');
    const ds = fake.deployments(REPO, 'staging');
    expect(ds).toHaveLength(4);
    expect(ds[3]!.ref).toBe(C);
    expect(states(ds[3]!)).toEqual(['in_progress', 'failure']);
    expect(states(ds[2]!)).toEqual(['in_progress', 'success']);
    await removeProject(PROJECT, { environment: 'staging' });
  }, 90_000);

  it('GitHub failing to create the deployment never affects the apply: the final report creates it', async () => {
    await push(1, A);
    fake.fail('repos/create-deployment', { status: 422, message: 'injected' }, { times: 1 });
    await say(1, '/apply staging');
    const a = await ended('staging');
    expect(a.state).toBe('completed');
    const d = fake.deployments(REPO, 'staging').at(-1)!;
    expect(d.payload).toMatchObject({ apply_id: a.id });
    expect(states(d)).toEqual(['success']);
    // A status GitHub keeps refusing is given up on after the retries; the apply is untouched.
    fake.fail('repos/create-deployment-status', { status: 422, message: 'injected' }, { times: 1000 });
    await say(1, '/plan staging'); // the world moved since the plan berth showed: plan again first
    await say(1, '/apply staging');
    const b = await ended('staging');
    fake.fail('repos/create-deployment-status', 500, { times: 0 });
    expect(b.id).not.toBe(a.id);
    expect(b.state).toBe('completed');
    expect(lastReply(1)).toContain('Apply to `staging` completed');
    const refused = fake.deployments(REPO, 'staging').at(-1)!;
    expect(refused.payload).toMatchObject({ apply_id: b.id });
    expect(refused.statuses).toEqual([]);
    expect(fake.requestsTo('repos/create-deployment-status').filter((r) => r.status === 422).length).toBe(5); // in_progress, then 4 final attempts
  }, 120_000);

  // ── 2. /status ─────────────────────────────────────────────────────────────

  it('/status answers in one comment: each environment\'s lock, running apply and last applies; /status <env> only that one', async () => {
    const before = berthComments(1).length;
    await say(1, '/status');
    expect(berthComments(1)).toHaveLength(before + 1);
    const all = lastReply(1);
    expect(all).toContain('#### `staging`');
    expect(all).toContain('#### `qa`');
    expect(all).toContain(`🔒 **Locked** by [${REPO}#1](https://github.com/${REPO}/pull/1)`);
    golden('status-e2e', all);
    await say(1, '/status qa');
    const one = lastReply(1);
    expect(one).not.toContain('`staging`');
    golden('status-e2e-qa', one);
    await say(1, '/help');
    expect(lastReply(1)).toContain('| `/status [env]` |');
  });

  // ── 3. apply_on: merge and push ────────────────────────────────────────────

  it('apply_on: merge — merging PR 1 applies its merge commit to prod under the PR\'s lock, reports on the PR and on the merge commit, then releases', async () => {
    fake.setPull(REPO, 1, { state: 'closed', merged: true });
    const event = pullRequestEvent({ repo: REPO, pr: 1, action: 'closed', headSha: A, merged: true }) as unknown as { pull_request: Record<string, unknown> };
    event.pull_request.merge_commit_sha = M1;
    event.pull_request.merged_by = { login: 'alice', id: 1, type: 'User' };
    await deliver('pull_request', event);
    await services.runner.drain(60_000);
    const a = (await ts.store.listApplies({ repo: REPO, environment: 'prod' }))[0]!;
    expect(a).toMatchObject({ pr: 1, headSha: M1, state: 'completed', actor: 'alice', kind: 'apply' });
    const c = check(M1, 'berth / prod');
    expect(c.externalId).toBe(a.id);
    expect(c.writes[0]).toMatchObject({ status: 'in_progress' });
    expect(c.conclusion).toBe('success');
    const replies = berthComments(1).map((x) => x.body);
    expect(replies.some((b) => b.includes('🚀 Applying `prod` at the merge commit `eeeeeee`'))).toBe(true);
    expect(replies.at(-1)).toMatch(/✅ Apply to `prod` completed in /);
    expect(fake.deployments(REPO, 'prod').map((d) => [d.ref, d.statuses.map((st) => st.state).join(',')])).toEqual([[M1, 'in_progress,success']]);
    // The PR's locks — the one the merge apply used, and staging's — are gone.
    expect(await ts.store.listLocks(REPO)).toEqual([]);
    await removeProject(PROJECT, { environment: 'prod' });
  }, 90_000);

  it('apply_on: merge is refused loudly when the gates say no: a failing check on the merge commit and a comment on the PR', async () => {
    fake.setPull(REPO, 3, { headSha: D, author: 'carol' });
    fake.setPermission(REPO, 'carol', 'write');
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 3, action: 'opened', headSha: D }));
    fake.setPull(REPO, 3, { state: 'closed', merged: true });
    const event = pullRequestEvent({ repo: REPO, pr: 3, action: 'closed', headSha: D, merged: true }) as unknown as { pull_request: Record<string, unknown> };
    event.pull_request.merge_commit_sha = M3;
    event.pull_request.merged_by = { login: 'carol', id: 3, type: 'User' };
    await deliver('pull_request', event);
    const c = check(M3, 'berth / prod');
    expect(c.conclusion).toBe('failure');
    expect(c.title).toBe('Staging first');
    expect(lastReply(3)).toContain('### ❌ `prod` was not applied on merge');
    expect(lastReply(3)).toContain('has not applied its `staging` state');
    expect(await ts.store.listApplies({ repo: REPO, pr: 3 })).toEqual([]);
    // Merging is no way around the environment's appliers: a merger without write permission applies nothing.
    fake.setPermission(REPO, 'mallory', 'read');
    fake.setPull(REPO, 5, { headSha: D, author: 'mallory', state: 'closed', merged: true });
    const other = pullRequestEvent({ repo: REPO, pr: 5, action: 'closed', headSha: D, merged: true }) as unknown as { pull_request: Record<string, unknown> };
    other.pull_request.merge_commit_sha = M3;
    other.pull_request.merged_by = { login: 'mallory', id: 5, type: 'User' };
    await deliver('pull_request', other);
    expect(lastReply(5)).toContain('### 🚫 Not authorised');
    expect(check(M3, 'berth / prod')).toMatchObject({ conclusion: 'failure', title: 'Not authorised' });
    expect(await ts.store.listApplies({ repo: REPO, pr: 5 })).toEqual([]);
  });

  it('apply_on: push — pushes to the default branch apply in order; those arriving while one applies are coalesced to the newest, the skipped one reported', async () => {
    const repository = { id: 1, name: 'deliver', full_name: REPO, owner: { login: 'acme', name: 'acme' }, default_branch: 'main', master_branch: 'main' };
    const post = async (after: string, ref?: string) => expect(await app.post('push', pushEvent(repository, after, ref))).toBe(200);
    // Another branch is not the default branch: nothing happens.
    await post(P2, 'refs/heads/feature');
    await services.idle();
    expect(fake.checkRuns(REPO, P2)).toEqual([]);
    await post(P1);
    // P1 is applying (its dependency chain waits for health checks) when P2 and P3 arrive.
    let first;
    while (!(first = (await ts.store.listApplies({ repo: REPO, environment: 'edge' }))[0])) await new Promise((r) => setTimeout(r, 20));
    await post(P2);
    await post(P3);
    // /status while P1 applies (on the closed PR 3's thread: its own queue, not the pushes').
    const before = berthComments(3).length;
    const c = fake.addComment(REPO, 3, '/status edge', { user: 'carol' });
    await app.post('issue_comment', commentOnPullEvent({ repo: REPO, pr: 3, comment: { id: c.id, body: '/status edge', user: 'carol', createdAt: c.createdAt, updatedAt: c.updatedAt } }));
    while (berthComments(3).length === before) await new Promise((r) => setTimeout(r, 20));
    expect(['pending', 'running']).toContain((await ts.store.getApply(first.id))!.state); // the precondition of coalescing (and of the reply below)
    const status = lastReply(3);
    expect(status).toContain(`▶️ **Applying** \`${first.id}\` (apply) from — at \`1111111\` by \`alice\``);
    expect(status).toMatch(/🔒 \*\*Locked\*\* by `acme\/deliver@push` since /);
    await services.idle();
    await services.runner.drain(60_000);
    const applies = (await ts.store.listApplies({ repo: REPO, environment: 'edge' })).reverse();
    expect(applies.map((a) => [a.headSha, a.state, a.pr])).toEqual([
      [P1, 'completed', null],
      [P3, 'completed', null],
    ]);
    expect(check(P1, 'berth / edge').conclusion).toBe('success');
    expect(check(P3, 'berth / edge').conclusion).toBe('success');
    const skipped = check(P2, 'berth / edge');
    expect(skipped.conclusion).toBe('skipped');
    expect(skipped.title).toBe('Skipped: superseded by 3333333');
    expect(fake.deployments(REPO, 'edge').map((d) => d.ref)).toEqual([P1, P3]);
    // A push's lock is the apply's own: released when it ends.
    expect(await ts.store.getLock(REPO, 'edge')).toBeUndefined();
    await removeProject(PROJECT, { environment: 'edge' });
  }, 120_000);

  // ── 5. apply before merge, enforced by GitHub ──────────────────────────────

  it('branch protection: `berth / staging` as a required check is success only once staging is applied (or has nothing to apply) at the PR head', async () => {
    const staging = (head: string) => check(head, 'berth / staging');
    fake.setPull(REPO, 4, { headSha: G1, author: 'alice' });
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 4, action: 'opened', headSha: G1 }));
    // Changes to apply: the required check is not green, so GitHub keeps the PR from merging.
    expect(staging(G1)).toMatchObject({ status: 'completed', conclusion: 'action_required' });
    await say(4, '/apply staging');
    expect((await ended('staging')).state).toBe('completed');
    expect(staging(G1)).toMatchObject({ status: 'completed', conclusion: 'success' });
    // A new head with the same compose state: planned, nothing to apply, green at once.
    await push(4, G2);
    expect(staging(G2)).toMatchObject({ status: 'completed', conclusion: 'success' });
    // A new head that changes it: not green until applied again.
    await push(4, G3);
    expect(staging(G3)).toMatchObject({ status: 'completed', conclusion: 'action_required' });
    await say(4, '/apply staging');
    expect((await ended('staging')).state).toBe('completed');
    expect(staging(G3).conclusion).toBe('success');
    // A rollback leaves staging at an earlier state: the head's check is no longer green.
    await say(4, '/rollback staging');
    const rb = await ended('staging');
    expect(rb).toMatchObject({ kind: 'rollback', state: 'completed' });
    expect(staging(G3)).toMatchObject({ conclusion: 'action_required', title: 'Rolled back staging: this head is not applied' });
    // A failed apply is red.
    await push(4, C);
    await say(4, '/apply staging');
    expect((await ended('staging')).state).toBe('failed');
    expect(staging(C).conclusion).toBe('failure');
    await say(4, '/unlock staging');
    await removeProject(PROJECT, { environment: 'staging' });
  }, 120_000);

  it('every request matched GitHub\'s REST description and no secret left the server', async () => {
    expect(fake.violations).toEqual([]);
    expect(fake.unhandled).toEqual([]);
    expect(JSON.stringify(fake.requests.map((r) => r.body))).not.toContain(TOKEN);
  });
});
