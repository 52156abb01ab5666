// berth as a black box: the real server started the way README says
// (`probot run` on the app, configured only by environment variables:
// APP_ID, PRIVATE_KEY, WEBHOOK_SECRET, GHE_HOST + GHE_PROTOCOL for another
// GitHub, DATABASE_URL), against an independent GitHub stand-in
// (helpers/standin-github.ts, nothing shared with fake-github.ts) that checks
// every request against @octokit/openapi, paginates with Link headers and
// injects the faults real GitHub produces. Webhooks are signed HTTP requests:
// every example of every event the app subscribes to (and the ones GitHub
// sends an app anyway: ping, installation, check_suite) from
// @octokit/webhooks-examples, then a PR's life on the real Docker engine.
// BERTH_BLACKBOX_DIST=1: run the built dist/ (after `npm run build`) as `npm start` does;
// BERTH_BLACKBOX_DEBUG=1: print every request the stand-in saw and berth's warnings.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { execIn, removeProject } from './helpers/docker.js';
import { describeDocker } from './helpers/env.js';
import { signed, startStandIn } from './helpers/standin-github.js';
import type { StandIn } from './helpers/standin-github.js';

const REPO = 'acme/blackbox';
const SECRET = 'blackbox-secret';
const APP_ID = 31337;
const INSTALLATION = 9090;
const PROJECT = 't-blackbox';
const HEAD = 'b1'.repeat(20);
/** a head whose compose file is long: the plan is split over comments and clipped in check runs */
const LONG = 'c2'.repeat(20);

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const CONFIG = [
  `project: ${PROJECT}`,
  'environments:',
  '  - name: staging',
  '    compose: [compose.yml]',
  '    targets: [local]',
  '  - name: production',
  '    compose: [compose.yml]',
  '    targets: [local]',
  '    requires: [staging]',
  '    approvals: 1',
  '',
].join('\n');
// A bound repository file: the app copies it into the container from the PR head (no checkout on the target).
const COMPOSE = ['services:', '  web:', '    image: berth-test/app:1', '    command: ["sleep", "600"]', '    volumes: ["./conf/app.conf:/etc/app/app.conf:ro"]', ''].join('\n');
const APP_CONF = 'listen 8080;\n';

/**
 * A port the server can take: below the kernel's ephemeral range (32768 up), so a port the kernel hands
 * another socket meanwhile (the stand-in's, another test's) is never this one, and free when tried. The
 * server is still started again on another port should one be taken in between (EADDRINUSE).
 */
async function freePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const s = createServer();
    const free = await new Promise<boolean>((r) => {
      s.once('error', () => r(false));
      s.listen(port, '127.0.0.1', () => r(true));
    });
    if (free) {
      await new Promise((r) => s.close(r));
      return port;
    }
  }
}

let gh: StandIn;
let child: ChildProcess;
let out = '';
let url = '';
let dir = '';

function logLines(from = 0): Json[] {
  return out
    .slice(from)
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return { level: 0, raw: l };
      }
    });
}
/** Error-level log lines since `mark()` (Probot logs a refused signature as an error: that one is expected). */
let marked = 0;
const mark = () => void (marked = out.lastIndexOf('\n') + 1);
const errors = () => logLines(marked).filter((l) => l.level >= 50).map((l) => `${l.msg}: ${l.err ?? ''} ${l.stack ?? ''}`);

async function deliver(event: string, payload: Json, secret = SECRET): Promise<{ status: number; ms: number }> {
  const body = JSON.stringify(payload);
  const t = Date.now();
  const res = await fetch(`${url}/api/github/webhooks`, { method: 'POST', headers: signed(secret, event, body, randomUUID()), body });
  await res.text();
  return { status: res.status, ms: Date.now() - t };
}

/** No request to the stand-in for `quietMs`: berth's detached work is done. */
async function settle(quietMs = 1500, timeoutMs = 45_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  let n = -1;
  let since = Date.now();
  while (Date.now() < end) {
    if (gh.seen.length !== n) {
      n = gh.seen.length;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('berth kept talking to GitHub');
}

async function until<T>(what: string, f: () => T | undefined | false, timeoutMs = 45_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${out.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function examples(): { name: string; examples: Json[] }[] {
  const require = createRequire(import.meta.url);
  return JSON.parse(readFileSync(require.resolve('@octokit/webhooks-examples'), 'utf8'));
}

const ourRepo = () => ({ id: 42, node_id: 'R_42', name: 'blackbox', full_name: REPO, private: false, owner: { login: 'acme', id: 2, type: 'Organization' }, default_branch: 'main', html_url: `${gh.origin}/${REPO}` });
const pull = (n: number, over: Json = {}) => ({
  number: n,
  id: 1000 + n,
  state: 'open',
  draft: false,
  merged: false,
  mergeable: true,
  html_url: `${gh.origin}/${REPO}/pull/${n}`,
  user: { login: 'alice', id: 5, type: 'User' },
  head: { sha: HEAD, ref: 'feature', repo: ourRepo() },
  base: { sha: 'a0'.repeat(20), ref: 'main', repo: ourRepo() },
  ...over,
});
const installation = { id: INSTALLATION, node_id: 'I_1' };
const sender = { login: 'alice', id: 5, type: 'User' };

describeDocker('berth started as README says, against an independent GitHub stand-in', () => {
  beforeAll(async () => {
    await removeProject(PROJECT);
    dir = mkdtempSync(join(tmpdir(), 'berth-blackbox-'));
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    gh = await startStandIn({ repo: REPO, app: { id: APP_ID, publicKey }, installationId: INSTALLATION });
    gh.files.set('.github/berth.yml', CONFIG);
    gh.files.set('compose.yml', COMPOSE);
    gh.files.set('conf/app.conf', APP_CONF);
    gh.commits.add(HEAD);
    const host = new URL(gh.origin).host;
    // Exactly README's server settings; nothing berth-internal, no test hooks.
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      APP_ID: String(APP_ID),
      PRIVATE_KEY: privateKey,
      WEBHOOK_SECRET: SECRET,
      GHE_HOST: host,
      GHE_PROTOCOL: 'http',

      LOG_FORMAT: 'json',
      LOG_LEVEL: 'info',
      DATABASE_URL: `sqlite:${join(dir, 'berth.sqlite')}`,
      BERTH_DRAIN_TIMEOUT_MS: '5000',
      ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
    };
    // `npm start` is `npm run build && probot run ./dist/src/index.js`; the same `probot run` on the
    // TypeScript sources (tsx) keeps this test fast and independent of a previous build.
    // BERTH_BLACKBOX_DIST=1 runs the built ./dist/src/index.js instead (after `npm run build`), exactly what `npm start` runs.
    const app = process.env.BERTH_BLACKBOX_DIST === '1' ? ['node_modules/probot/bin/probot.js', 'run', './dist/src/index.js'] : ['--import', 'tsx', 'node_modules/probot/bin/probot.js', 'run', './src/index.ts'];
    // A port taken between its choice and the server's listen (another test's socket) is a retry, never a failure.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      out = '';
      child = spawn(process.execPath, app, { cwd: process.cwd(), env: { ...env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout!.on('data', (d) => (out += d));
      child.stderr!.on('data', (d) => (out += d));
      url = `http://localhost:${port}`;
      const started = await until('the server to answer /healthz', () => (/listening|Listening/i.test(out) ? 'listening' : /EADDRINUSE/.test(out) ? 'taken' : undefined), 40_000).catch(async (e) => {
        throw new Error(`${e}\n${out}`);
      });
      if (started === 'listening') break;
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(undefined)));
      if (attempt >= 5) throw new Error(`no free port after ${attempt} tries\n${out}`);
    }
    const end = Date.now() + 20_000;
    for (;;) {
      const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() > end) throw new Error(`no /healthz\n${out}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 90_000);

  afterAll(async () => {
    if (process.env.BERTH_BLACKBOX_DEBUG) {
      console.log(gh.seen.map((x) => `${x.method} ${x.path}?${x.query} ${x.op} ${x.status}`).join('\n'));
      console.log(logLines().filter((l) => l.level >= 40).map((l) => `${l.level} ${l.msg} ${l.err ?? ''}`).join('\n'));
      console.log([...gh.comments.values()].map((c) => `#${c.id} ${c.deleted ? 'DELETED ' : ''}${c.body.slice(0, 3000)}`).join('\n-----\n'));
      console.log(JSON.stringify([...gh.checkRuns.values()], null, 1).slice(0, 6000));
      console.log(JSON.stringify([...gh.deployments.values()], null, 1));
    }
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await gh?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    await removeProject(PROJECT);
  }, 30_000);

  it('refuses a bad signature and an unsigned delivery', async () => {
    const payload = { zen: 'Keep it logically awesome.', hook_id: 1 };
    expect((await deliver('ping', payload, 'not-the-secret')).status).toBe(400);
    const body = JSON.stringify(payload);
    const res = await fetch(`${url}/api/github/webhooks`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-github-event': 'ping', 'x-github-delivery': randomUUID() }, body });
    expect(res.status).toBe(400);
    expect((await deliver('ping', payload)).status).toBe(200);
    // A body larger than GitHub ever sends (25 MB) is refused from its Content-Length, before it is read.
    const declared = await new Promise<number>((resolve, reject) => {
      const u = new URL(`${url}/api/github/webhooks`);
      const headers = { 'content-type': 'application/json', 'content-length': 100 * 1024 * 1024, 'x-github-event': 'ping', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': 'sha256=00' };
      const r = request({ host: u.hostname, port: u.port, method: 'POST', path: u.pathname, headers }, (answer) => (answer.resume(), resolve(answer.statusCode!)));
      r.on('error', reject);
      r.write('{"zen": "');
    });
    expect(declared).toBe(413);
    expect(gh.seen).toEqual([]);
  });

  it('answers every webhooks-examples payload of the events it gets 2xx, quickly, and never errs', async () => {
    mark();
    const events = ['pull_request', 'issue_comment', 'check_run', 'check_suite', 'push', 'installation', 'installation_repositories', 'ping'];
    const slow: string[] = [];
    let n = 0;
    for (const set of examples().filter((e) => events.includes(e.name))) {
      for (const ex of set.examples) {
        const r = await deliver(set.name, ex);
        n++;
        expect(r.status, `${set.name}.${ex.action ?? ''}`).toBeGreaterThanOrEqual(200);
        expect(r.status, `${set.name}.${ex.action ?? ''}`).toBeLessThan(300);
        // GitHub gives up after 10 s; the work is detached from the request.
        if (r.ms > 3000) slow.push(`${set.name}.${ex.action ?? ''}: ${r.ms} ms`);
      }
    }
    expect(n).toBeGreaterThan(60);
    await settle();
    expect(slow).toEqual([]);
    expect(gh.problems).toEqual([]);
    expect(errors()).toEqual([]);
    expect(child.exitCode).toBe(null);
  }, 60_000);

  it('plans, survives a deleted comment, faults and pagination, applies with a deployment — every request as GitHub takes it', async () => {
    mark();
    gh.pulls.set(7, { ...pull(7), reviews: [{ id: 1, user: { login: 'bob' }, state: 'COMMENTED', commit_id: HEAD, submitted_at: new Date().toISOString() }, { id: 2, user: { login: 'carol' }, state: 'APPROVED', commit_id: HEAD, submitted_at: new Date().toISOString() }] });
    // The first comment meets GitHub's secondary rate limit, the first check run a 502.
    gh.faults.set('issues/create-comment', [{ status: 403, message: 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.', headers: { 'retry-after': '1' } }]);
    gh.faults.set('checks/create', [{ status: 502, message: 'Server Error' }]);
    const opened = await deliver('pull_request', { action: 'opened', number: 7, pull_request: pull(7), repository: ourRepo(), installation, sender });
    expect(opened.status).toBe(200);
    const planComment = await until('the plan comment', () => [...gh.comments.values()].find((c) => c.issue === 7 && c.body.includes('berth plan')));
    await settle();
    expect(planComment.body).toContain('staging');
    expect([...gh.checkRuns.values()].map((r) => r.name).sort()).toEqual(['berth / production', 'berth / staging']);

    // Someone deletes berth's plan comment; the next plan must post a new one, not fail on the 404.
    gh.comments.get(planComment.id)!.deleted = true;
    const comment = (id: number, body: string, at = new Date().toISOString()) => ({
      action: 'created',
      issue: { number: 7, id: 1007, pull_request: { url: `${gh.origin}/api/v3/repos/${REPO}/pulls/7`, html_url: `${gh.origin}/${REPO}/pull/7` }, user: sender, state: 'open' },
      comment: { id, body, user: sender, created_at: at, updated_at: at, author_association: 'OWNER', html_url: '' },
      repository: ourRepo(),
      installation,
      sender,
    });
    expect((await deliver('issue_comment', comment(501, '/plan'))).status).toBe(200);
    const replan = await until('a new plan comment', () => [...gh.comments.values()].find((c) => c.issue === 7 && !c.deleted && c.id !== planComment.id && c.body.includes('berth plan')));
    await settle();
    expect(replan.body).toContain('staging');

    // Apply staging; one progress update of the check run is refused (422) on the way.
    gh.faults.set('checks/update', [{ status: 422, message: 'Validation Failed' }]);
    expect((await deliver('issue_comment', comment(502, '/apply staging'))).status).toBe(200);
    const deployment = await until('a successful deployment', () => [...gh.deployments.values()].find((d) => d.environment === 'staging' && d.statuses.some((s: Json) => s.state === 'success')));
    await settle(2000);
    expect(deployment.ref).toBe(HEAD);
    // Links berth builds point at the GitHub GHE_HOST names.
    for (const s of deployment.statuses) if (s.log_url) expect(s.log_url.startsWith(`${gh.origin}/`), s.log_url).toBe(true);
    // the bound file is in the container, as the PR head has it
    expect(await execIn(`${PROJECT}-staging-web-1`, 'cat /etc/app/app.conf; stat -c %a /etc/app/app.conf')).toBe(`${APP_CONF}444\n`);
    const stagingRuns = [...gh.checkRuns.values()].filter((r) => r.name === 'berth / staging');
    expect(stagingRuns.some((r) => r.status === 'completed' && r.conclusion === 'success' && /appl/i.test(r.output?.title ?? ''))).toBe(true);

    // /status and an ignored edited command.
    expect((await deliver('issue_comment', comment(503, '/status'))).status).toBe(200);
    await settle();
    expect(gh.comments.size).toBeGreaterThan(0);
    expect([...gh.comments.values()].at(-1)!.body).toContain('berth status');

    // Production needs one approval: the approving review is on the second page of GitHub's listing.
    expect((await deliver('issue_comment', comment(504, '/apply production'))).status).toBe(200);
    const prod = await until('a production deployment', () => [...gh.deployments.values()].find((d) => d.environment === 'production' && d.statuses.some((s: Json) => s.state === 'success')), 45_000);
    expect(prod.production_environment).toBe(true);
    const reviewPages = gh.seen.filter((s) => s.op === 'pulls/list-reviews');
    expect(reviewPages.some((s) => s.query.get('page') === '2')).toBe(true);
    await settle();
  }, 90_000);

  it('ignores what is not a command for it without a single GitHub request, and plans a deleted fork and a long plan within GitHub limits', async () => {
    mark();
    const before = gh.seen.length;
    const base = { repository: ourRepo(), installation, sender };
    const onIssue = (id: number, body: string, over: Json = {}) => ({
      action: 'created',
      issue: { number: 11, id: 1011, user: sender, state: 'open' },
      comment: { id, body, user: sender, created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' },
      ...base,
      ...over,
    });
    const prIssue = { number: 7, id: 1007, user: sender, state: 'open', pull_request: { url: `${gh.origin}/api/v3/repos/${REPO}/pulls/7` } };
    const bot = { login: 'ci[bot]', id: 99, type: 'Bot' };
    const ignored: [string, Json][] = [
      ['issue_comment', onIssue(601, '/apply staging')], // an issue, not a PR
      ['issue_comment', onIssue(602, '/plan', { issue: prIssue, comment: { id: 602, body: '/plan', user: bot, created_at: '2026-01-01T00:00:00Z', updated_at: '2026-01-01T00:00:00Z' }, sender: bot })],
      ['issue_comment', onIssue(603, '/apply staging', { action: 'edited', issue: prIssue, changes: { body: { from: 'lgtm' } } })],
      ['issue_comment', onIssue(604, '/apply staging', { action: 'deleted', issue: prIssue })],
      ['pull_request', { action: 'labeled', number: 7, pull_request: pull(7), label: { name: 'x' }, ...base }],
      ['pull_request', { action: 'edited', number: 7, pull_request: pull(7), changes: {}, ...base }],
      ['pull_request', { action: 'converted_to_draft', number: 7, pull_request: pull(7, { draft: true }), ...base }],
      ['check_suite', { action: 'requested', check_suite: { id: 1, head_sha: HEAD, pull_requests: [] }, ...base }],
      ['check_run', { action: 'requested_action', check_run: { id: 1, name: 'berth / staging', head_sha: HEAD, pull_requests: [] }, requested_action: { identifier: 'x' }, ...base }],
      ['push', { ref: 'refs/heads/feature', before: '0'.repeat(40), after: HEAD, repository: ourRepo(), installation, sender, pusher: { name: 'alice' }, commits: [] }],
      ['push', { ref: 'refs/heads/main', before: '0'.repeat(40), after: HEAD, repository: ourRepo(), installation, sender, pusher: { name: 'alice' }, commits: [] }], // no apply_on: push here
    ];
    for (const [event, payload] of ignored) expect((await deliver(event, payload)).status, JSON.stringify(payload).slice(0, 80)).toBe(200);
    await settle();
    // The push to the default branch may read the config (it decides whether anything applies on push); nothing else happens.
    expect(gh.seen.slice(before).filter((s) => !(s.op === 'repos/get-content' && s.path.endsWith('.github/berth.yml')) && s.op !== 'apps/create-installation-access-token').map((s) => `${s.method} ${s.path}`)).toEqual([]);

    // A command whose delivery names no installation (a replay, another stand-in) is acted on through the
    // repository's installation (known from earlier deliveries here, else asked with the app's JWT): 👀, and the PR planned.
    const unnamed = gh.seen.length;
    expect((await deliver('issue_comment', { ...onIssue(605, '/plan', { issue: prIssue }), installation: undefined })).status).toBe(200);
    await settle();
    const made = gh.seen.slice(unnamed);
    for (const t of made.filter((s) => s.op === 'apps/create-installation-access-token')) expect(t.path).toBe(`/app/installations/${INSTALLATION}/access_tokens`);
    expect(made.filter((s) => s.op === 'reactions/create-for-issue-comment').map((s) => s.path)).toEqual([`/repos/${REPO}/issues/comments/605/reactions`]);
    expect(made.some((s) => s.op === 'checks/create' || s.op === 'checks/update')).toBe(true);
    expect(gh.problems).toEqual([]);

    // A PR whose fork was deleted (head.repo null) plans; a compose file of many services plans within GitHub's limits.
    const services = ['services:'];
    for (let i = 0; i < 70; i++) services.push(`  svc${i}:`, '    image: berth-test/app:1', '    environment:', ...Array.from({ length: 6 }, (_, j) => `      VAR_${j}: "${'v'.repeat(60)}${i}"`));
    gh.commits.add(LONG);
    gh.filesAt.set(LONG, new Map([...gh.files, ['compose.yml', services.join('\n') + '\n']]));
    gh.pulls.set(9, pull(9, { head: { sha: LONG, ref: 'gone', repo: null } }));
    expect((await deliver('pull_request', { action: 'opened', number: 9, pull_request: pull(9, { head: { sha: LONG, ref: 'gone', repo: null } }), ...base })).status).toBe(200);
    await until('the long plan', () => [...gh.comments.values()].filter((c) => c.issue === 9).length >= 2 || undefined, 45_000);
    await settle();
    const long = [...gh.comments.values()].filter((c) => c.issue === 9);
    for (const c of long) expect([...c.body].length).toBeLessThanOrEqual(65536);
    expect(long.map((c) => c.body).join('')).toContain('svc69');
    const runs = [...gh.checkRuns.values()].filter((r) => r.head_sha === LONG);
    expect(runs.map((r) => r.name).sort()).toEqual(['berth / production', 'berth / staging']);

    // A compose file berth refuses: a located error in the comment and a failing check, both as GitHub takes them.
    const BAD = 'd3'.repeat(20);
    gh.commits.add(BAD);
    gh.filesAt.set(BAD, new Map([...gh.files, ['compose.yml', 'services:\n  web:\n    image: berth-test/app:1\n    privileged: true\n']]));
    gh.pulls.set(10, pull(10, { head: { sha: BAD, ref: 'bad', repo: ourRepo() } }));
    expect((await deliver('pull_request', { action: 'opened', number: 10, pull_request: pull(10, { head: { sha: BAD, ref: 'bad', repo: ourRepo() } }), ...base })).status).toBe(200);
    const refused = await until('the refusal', () => [...gh.comments.values()].find((c) => c.issue === 10));
    expect(refused.body).toMatch(/privileged/);
    expect(refused.body).toMatch(/compose\.yml/);
    await until('the failing checks', () => [...gh.checkRuns.values()].filter((r) => r.head_sha === BAD && r.conclusion === 'failure').length >= 1 || undefined);

    // "Re-run" on that check: GitHub sends no pull_requests for a head outside the repository; berth still re-plans it.
    const staging = runs.find((r) => r.name === 'berth / staging')!;
    const rerun = { action: 'rerequested', check_run: { id: staging.id, name: staging.name, head_sha: LONG, external_id: staging.external_id, status: 'completed', conclusion: staging.conclusion, pull_requests: [], app: { id: APP_ID, slug: 'berth' }, check_suite: { id: 1, head_sha: LONG, pull_requests: [] } }, ...base };
    expect((await deliver('check_run', rerun)).status).toBe(200);
    await until('the re-plan of the fork PR', () => [...gh.checkRuns.values()].filter((r) => r.head_sha === LONG && r.name === 'berth / staging').length === 2 || undefined, 30_000);
    await settle();
    // Every link in what berth wrote names the stand-in, never github.com.
    const written = [...gh.comments.values()].map((c) => c.body).join('\n') + [...gh.checkRuns.values()].map((r) => JSON.stringify(r.output ?? {}) + (r.details_url ?? '')).join('\n');
    expect(written).not.toMatch(/https:\/\/github\.com\//);
    expect(gh.problems).toEqual([]);
    expect(errors()).toEqual([]);
    expect([...gh.comments.values()].filter((c) => /internal error|went wrong/i.test(c.body))).toEqual([]);
  }, 90_000);
});
