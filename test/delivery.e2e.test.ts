// GitHub-native delivery (issue 14), end to end: signed webhooks into the real
// app, a fake GitHub that checks every request against GitHub's REST
// description, applies on the real dockerd with a real store. Each apply and
// rollback must appear as a GitHub deployment with its statuses; `/status`
// answers in one comment; merges and pushes apply by themselves; and the
// `berth / <env>` check can be a required check that only an apply turns green.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createNodeMiddleware, Probot, ProbotOctokit } from 'probot';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { berth } from '../src/index.js';
import type { BerthServices } from '../src/index.js';
import { Targets } from '../src/targets.js';
import { removeProject } from './helpers/docker.js';
import { describeDocker } from './helpers/env.js';
import type { FakeCheckRun, FakeGitHub } from './helpers/fake-github.js';
import { commentOnPullEvent, nextGitHubSecond, pullRequestEvent, startFakeGitHub, webhookHeaders } from './helpers/fake-github.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

const REPO = 'acme/deliver';
const SECRET = 'delivery-webhook-secret';
const PROJECT = 't-deliver';
const APP_ID = 4343;
const sha = (c: string) => c.repeat(40);
const A = sha('a');
const B = sha('b');
const C = sha('c');
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
`;

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
  const file = `${GOLDEN}/${name}.md`;
  const text = normalise(body);
  if (process.env.UPDATE_GOLDEN || !existsSync(file)) writeFileSync(file, text);
  expect(text).toBe(readFileSync(file, 'utf8'));
}

describeDocker('GitHub-native delivery, end to end', () => {
  let fake: FakeGitHub;
  let ts: TestStore;
  let server: Server;
  let url: string;
  let services!: BerthServices;

  beforeAll(async () => {
    await removeProject(PROJECT);
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    fake = await startFakeGitHub({ appKey: publicKey, appId: APP_ID, appSlug: 'berth' });
    fake.setRepo(REPO, { defaultBranch: 'main' });
    fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': compose() });
    fake.setFiles(REPO, A, { '.github/berth.yml': CONFIG, 'compose.yml': compose() });
    fake.setFiles(REPO, B, { '.github/berth.yml': CONFIG, 'compose.yml': compose('      - FEATURE=on\n') });
    fake.setFiles(REPO, C, { '.github/berth.yml': CONFIG, 'compose.yml': compose(FAILING) });
    fake.setPull(REPO, 1, { headSha: A, author: 'alice', mergeable: true });
    fake.setPermission(REPO, 'alice', 'write');
    ts = await sqliteTestStore();
    const Octokit = ProbotOctokit.defaults((o: Record<string, unknown>) => ({ ...o, throttle: { ...(o.throttle as object), enabled: false } }));
    const probot = new Probot({ appId: APP_ID, privateKey, secret: SECRET, baseUrl: fake.url, Octokit, log: pino({ level: process.env.E2E_LOG ?? 'silent' }) });
    const mw = await createNodeMiddleware(
      berth({ store: ts.store, targets: Targets.single('unix:///var/run/docker.sock'), recover: false, drift: false, progressIntervalMs: 200, onReady: (s) => (services = s) }),
      { probot },
    );
    server = createServer((req, res) => void mw(req, res, () => res.writeHead(404).end()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 60_000);

  afterAll(async () => {
    await services?.runner.drain(30_000);
    await new Promise((r) => server?.close(r));
    await fake?.close();
    await ts?.dispose();
    await removeProject(PROJECT);
  });

  async function deliver(event: string, payload: unknown): Promise<void> {
    const body = JSON.stringify(payload);
    const res = await fetch(`${url}/api/github/webhooks`, { method: 'POST', headers: webhookHeaders(event, body, SECRET, randomUUID()), body });
    await res.text();
    expect(res.status).toBe(200);
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
    await say(1, '/apply staging');
    expect((await ended('staging')).state).toBe('completed');
    fake.fail('repos/create-deployment-status', 500, { times: 0 });
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

  it('every request matched GitHub\'s REST description and no secret left the server', async () => {
    expect(fake.violations).toEqual([]);
    expect(fake.unhandled).toEqual([]);
    expect(JSON.stringify(fake.requests.map((r) => r.body))).not.toContain(TOKEN);
  });
});
