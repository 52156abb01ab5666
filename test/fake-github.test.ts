import { generateKeyPairSync } from 'node:crypto';
import { Octokit as OctokitCore } from '@octokit/core';
import { paginateRest } from '@octokit/plugin-paginate-rest';
import { restEndpointMethods } from '@octokit/plugin-rest-endpoint-methods';
import { verify } from '@octokit/webhooks-methods';
import { Probot } from 'probot';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { FakeGitHub } from './helpers/fake-github.js';
import { CommitCache } from '../src/github/commit-cache.js';
import { PartialListing, TreeListing } from '../src/github/github.js';
import { OctokitGitHub } from '../src/github/octokit-github.js';
import { readOnce } from '../src/github/read-once.js';
import { commentOnPullEvent, loadExample, pullRequestEvent, signWebhook, startFakeGitHub, webhookHeaders } from './helpers/fake-github.js';

// @octokit/rest is exactly core + REST endpoint methods + pagination (it is
// not installed on its own here): no retries, so faults reach the test as is.
const Octokit = OctokitCore.plugin(restEndpointMethods, paginateRest);

const REPO = 'acme/shop';
const owner = 'acme';
const repo = 'shop';

let fake: FakeGitHub;
let gh: InstanceType<typeof Octokit>;
let expectViolations = false;

beforeEach(async () => {
  fake = await startFakeGitHub();
  gh = new Octokit({ baseUrl: fake.url, auth: fake.token });
  expectViolations = false;
});

afterEach(async () => {
  const violations = fake.violations;
  await fake.close();
  if (!expectViolations) expect(violations).toEqual([]);
});

/** A call the typed client would not let us make: GitHub must refuse it. */
const raw = (route: string, params: Record<string, unknown>) => gh.request(route as never, params as never);

const status = (p: Promise<unknown>) =>
  p.then(
    () => 200,
    (e: { status?: number }) => e.status,
  );

describe('state round-trips through the REST API', () => {
  it('created comments are listed, fetched and edited with the same fields', async () => {
    fake.setPull(REPO, 7);
    const human = fake.addComment(REPO, 7, '/plan', { user: 'alice' });
    const { data: created, status: code } = await gh.rest.issues.createComment({ owner, repo, issue_number: 7, body: '### berth plan' });
    expect(code).toBe(201);
    expect(created.body).toBe('### berth plan');
    expect(created.user).toMatchObject({ login: 'berth[bot]', type: 'Bot' });

    const { data: listed } = await gh.rest.issues.listComments({ owner, repo, issue_number: 7 });
    expect(listed.map((c) => [c.id, c.body, c.user?.login])).toEqual([
      [human.id, '/plan', 'alice'],
      [created.id, '### berth plan', 'berth[bot]'],
    ]);

    await gh.rest.issues.updateComment({ owner, repo, comment_id: created.id, body: '### berth plan (updated)' });
    const { data: fetched } = await gh.rest.issues.getComment({ owner, repo, comment_id: created.id });
    expect(fetched.body).toBe('### berth plan (updated)');
    expect(fake.comments(REPO, 7).map((c) => c.body)).toEqual(['/plan', '### berth plan (updated)']);
    expect(fake.comment(REPO, created.id)?.history).toEqual(['### berth plan', '### berth plan (updated)']);

    expect(await status(gh.rest.issues.updateComment({ owner, repo, comment_id: 999_999, body: 'x' }))).toBe(404);
    expect(await status(gh.rest.issues.createComment({ owner, repo, issue_number: 8, body: 'no such PR' }))).toBe(404);
  });

  it('lists long comment threads page by page with Link headers', async () => {
    fake.setPull(REPO, 1);
    for (let i = 0; i < 130; i++) fake.addComment(REPO, 1, `c${i}`);
    const all = await gh.paginate(gh.rest.issues.listComments, { owner, repo, issue_number: 1, per_page: 50 });
    expect(all.map((c) => c.body)).toEqual(Array.from({ length: 130 }, (_, i) => `c${i}`));
    expect(fake.requestsTo('issues/list-comments').map((r) => r.query.page ?? '1')).toEqual(['1', '2', '3']);
  });

  it('check runs are created, updated and listed with their latest fields', async () => {
    const { headSha } = fake.setPull(REPO, 3);
    const { data: run } = await gh.rest.checks.create({
      owner,
      repo,
      name: 'berth / staging',
      head_sha: headSha,
      status: 'in_progress',
      external_id: 'apply-1',
      output: { title: 'Applying', summary: '0 of 4 steps' },
    });
    expect(run).toMatchObject({ name: 'berth / staging', head_sha: headSha, status: 'in_progress', conclusion: null, external_id: 'apply-1' });
    await gh.rest.checks.update({ owner, repo, check_run_id: run.id, output: { title: 'Applying', summary: '2 of 4 steps' } });
    await gh.rest.checks.update({ owner, repo, check_run_id: run.id, status: 'completed', conclusion: 'success', output: { title: 'Applied', summary: '4 of 4 steps', text: 'details' } });

    const [latest] = fake.checkRuns(REPO, headSha);
    expect(latest).toMatchObject({ id: run.id, status: 'completed', conclusion: 'success', title: 'Applied', summary: '4 of 4 steps', text: 'details', externalId: 'apply-1' });
    expect(latest!.completedAt).toEqual(expect.any(String));
    expect(latest!.writes).toHaveLength(3);

    const { data: fetched } = await gh.rest.checks.get({ owner, repo, check_run_id: run.id });
    expect(fetched).toMatchObject({ status: 'completed', conclusion: 'success', output: { title: 'Applied', summary: '4 of 4 steps', text: 'details' } });
    expect(fetched.pull_requests.map((p) => p.number)).toEqual([3]);

    // A re-plan creates a new run with the same name: "latest" lists only the newest per name.
    await gh.rest.checks.create({ owner, repo, name: 'berth / staging', head_sha: headSha, conclusion: 'action_required', output: { title: 'Plan', summary: '1 to change' } });
    await gh.rest.checks.create({ owner, repo, name: 'berth / production', head_sha: headSha, status: 'queued' });
    const { data: list } = await gh.rest.checks.listForRef({ owner, repo, ref: headSha });
    expect(list.total_count).toBe(2);
    expect(list.check_runs.map((c) => [c.name, c.status, c.conclusion])).toEqual([
      ['berth / production', 'queued', null],
      ['berth / staging', 'completed', 'action_required'],
    ]);
    const { data: all } = await gh.rest.checks.listForRef({ owner, repo, ref: headSha, filter: 'all', check_name: 'berth / staging' });
    expect(all.total_count).toBe(2);
    expect(fake.checkRuns(REPO, headSha)).toHaveLength(3);
  });

  it('serves file contents per ref, base64 as GitHub wraps it, and 404 otherwise', async () => {
    fake.setRepo(REPO, { defaultBranch: 'trunk' });
    fake.setFiles(REPO, 'trunk', { '.github/berth.yml': 'project: shop\n' });
    const { headSha } = fake.setPull(REPO, 2);
    const compose = `services:\n  web:\n    image: nginx:1.27\n${'# padding\n'.repeat(20)}`;
    fake.setFiles(REPO, headSha, { 'compose.yml': compose, 'deploy/prod.yml': 'x: 1\n' });

    const read = async (path: string, ref?: string) => {
      const { data } = await gh.rest.repos.getContent({ owner, repo, path, ...(ref ? { ref } : {}) });
      if (Array.isArray(data) || data.type !== 'file') throw new Error('not a file');
      return { content: data.content, text: Buffer.from(data.content, 'base64').toString('utf8') };
    };
    expect((await read('.github/berth.yml')).text).toBe('project: shop\n'); // default branch
    const file = await read('compose.yml', headSha);
    expect(file.text).toBe(compose);
    expect(file.content).toMatch(/^[A-Za-z0-9+/=]{60}\n/);

    expect(await status(gh.rest.repos.getContent({ owner, repo, path: 'compose.yml', ref: 'trunk' }))).toBe(404);
    expect(await status(gh.rest.repos.getContent({ owner, repo, path: 'compose.yml', ref: 'f'.repeat(40) }))).toBe(404);
    const { data: dir } = await gh.rest.repos.getContent({ owner, repo, path: 'deploy', ref: headSha });
    expect(Array.isArray(dir) && dir.map((e) => [e.type, e.path])).toEqual([['file', 'deploy/prod.yml']]);

    fake.setFile(REPO, headSha, 'compose.yml', null);
    expect(await status(gh.rest.repos.getContent({ owner, repo, path: 'compose.yml', ref: headSha }))).toBe(404);
    expect(fake.requestsTo('repos/get-content')[0]!.path).toBe('/repos/acme/shop/contents/.github/berth.yml');
  });

  it('lists a tree recursively or one level, and reports truncation', async () => {
    const sha = 'a'.repeat(40);
    fake.setFiles(REPO, sha, { 'compose.yml': 'a', 'deploy/prod/compose.yml': 'b' }, { truncated: true });
    const { data } = await gh.rest.git.getTree({ owner, repo, tree_sha: sha, recursive: '1' });
    expect(data.truncated).toBe(true);
    expect(data.tree.map((e) => [e.type, e.path])).toEqual([
      ['blob', 'compose.yml'],
      ['tree', 'deploy'],
      ['tree', 'deploy/prod'],
      ['blob', 'deploy/prod/compose.yml'],
    ]);
    const { data: top } = await gh.rest.git.getTree({ owner, repo, tree_sha: sha });
    expect(top.tree.map((e) => e.path)).toEqual(['compose.yml', 'deploy']);
    expect(await status(gh.rest.git.getTree({ owner, repo, tree_sha: 'b'.repeat(40) }))).toBe(404);
  });

  it('a listing carries the git modes other than 100644, and a file is read byte for byte', async () => {
    const sha = 'e'.repeat(40);
    fake.setFiles(REPO, sha, { 'run.sh': '#!/bin/sh\n', 'conf/app.conf': 'x = 1\n' }, { modes: { 'run.sh': '100755' } });
    const port = new OctokitGitHub(gh as unknown as ConstructorParameters<typeof OctokitGitHub>[0]);
    const listed = await port.listFiles({ owner, name: repo }, sha);
    expect(listed).toBeInstanceOf(TreeListing);
    expect([...(listed as TreeListing).modes]).toEqual([['run.sh', '100755']]);
    // and each file's size, so a read over what berth reads is refused before it is made
    expect([...(listed as TreeListing).sizes].sort()).toEqual([['conf/app.conf', 6], ['run.sh', 10]]);
    expect((await port.readFileBytes({ owner, name: repo }, 'conf/app.conf', sha))!.equals(Buffer.from('x = 1\n'))).toBe(true);
    expect(await port.readFileBytes({ owner, name: repo }, 'missing', sha)).toBeUndefined();
  });

  it('a truncated tree (a big monorepo) is a partial listing: each file is then asked for, and it is never cached as the commit', async () => {
    const sha = 'd'.repeat(40);
    fake.setFiles(REPO, sha, { 'compose.yml': 'services: {}\n', 'deploy/compose.yml': 'b' }, { truncated: true });
    const port = new OctokitGitHub(gh as unknown as ConstructorParameters<typeof OctokitGitHub>[0]);
    const listed = await port.listFiles({ owner, name: repo }, sha);
    expect(listed).toBeInstanceOf(PartialListing);
    expect((listed as PartialListing).sizes.get('compose.yml')).toBe(13);
    // It cannot tell absence: a path it does not hold may still be in the commit.
    expect(listed.has('not-listed.yml')).toBe(true);
    const cache = new CommitCache();
    const reads = readOnce(cache.wrap(port));
    expect(await reads.listFiles({ owner, name: repo }, sha)).toBeInstanceOf(PartialListing);
    const before = fake.requestsTo('repos/get-content').length;
    expect(await reads.readFile({ owner, name: repo }, 'compose.yml', sha)).toBe('services: {}\n');
    expect(await reads.readFile({ owner, name: repo }, '.env', sha)).toBeUndefined();
    // Both asked for (the listing could not say .env is absent), and the tree is not remembered.
    expect(fake.requestsTo('repos/get-content').length - before).toBe(2);
    // compose.yml alone: its blob, and what it is at this commit (a pointer to that blob).
    expect(cache.stats().entries).toBe(2);
  });

  it('serves pull requests with head SHA, fork, mergeability, and their reviews', async () => {
    const pr = fake.setPull(REPO, 5, { headSha: 'c'.repeat(40), fork: true, author: 'mallory', mergeable: null });
    const { data } = await gh.rest.pulls.get({ owner, repo, pull_number: 5 });
    expect(data).toMatchObject({ number: 5, state: 'open', merged: false, mergeable: null, user: { login: 'mallory' } });
    expect(data.head).toMatchObject({ sha: pr.headSha, repo: { full_name: 'mallory/shop', fork: true } });
    expect(data.base.repo.full_name).toBe(REPO);

    fake.setPull(REPO, 5, { state: 'closed', merged: true, mergeable: true });
    const { data: merged } = await gh.rest.pulls.get({ owner, repo, pull_number: 5 });
    expect(merged).toMatchObject({ state: 'closed', merged: true, mergeable: true, head: { sha: pr.headSha } });

    fake.setPull(REPO, 6, { headRepo: null });
    expect((await gh.rest.pulls.get({ owner, repo, pull_number: 6 })).data.head.repo).toBeNull();
    expect(await status(gh.rest.pulls.get({ owner, repo, pull_number: 404 }))).toBe(404);

    for (let i = 0; i < 120; i++) fake.addReview(REPO, 5, { user: `u${i}`, state: i % 2 ? 'APPROVED' : 'COMMENTED' });
    fake.addReview(REPO, 5, { user: 'bob', state: 'CHANGES_REQUESTED', submittedAt: '2025-01-02T03:04:05Z' });
    const reviews = await gh.paginate(gh.rest.pulls.listReviews, { owner, repo, pull_number: 5, per_page: 100 });
    expect(reviews).toHaveLength(121);
    expect(reviews.at(-1)).toMatchObject({ user: { login: 'bob' }, state: 'CHANGES_REQUESTED', submitted_at: '2025-01-02T03:04:05Z', commit_id: pr.headSha });
  });

  it('reports permissions as GitHub does: maintain and triage fold into write and read, role_name keeps them', async () => {
    fake.setRepo(REPO);
    fake.setPermission(REPO, 'alice', 'maintain');
    fake.setPermission(REPO, 'tim', 'triage');
    fake.setPermission(REPO, 'ghost', null);
    const perm = async (username: string) => (await gh.rest.repos.getCollaboratorPermissionLevel({ owner, repo, username })).data;
    expect(await perm('alice')).toMatchObject({ permission: 'write', role_name: 'maintain' });
    expect(await perm('tim')).toMatchObject({ permission: 'read', role_name: 'triage' });
    expect(await perm('stranger')).toMatchObject({ permission: 'none' });
    expect(await status(perm('ghost'))).toBe(404);
  });

  it('reports team memberships, 404 for non-members', async () => {
    fake.setTeamMembership('acme', 'ops', 'alice', {});
    fake.setTeamMembership('acme', 'ops', 'bob', { state: 'pending', role: 'maintainer' });
    const member = async (username: string) => (await gh.rest.teams.getMembershipForUserInOrg({ org: 'acme', team_slug: 'ops', username })).data;
    expect(await member('alice')).toMatchObject({ state: 'active', role: 'member' });
    expect(await member('bob')).toMatchObject({ state: 'pending', role: 'maintainer' });
    expect(await status(member('carol'))).toBe(404);
  });

  it('records reactions once per user and content', async () => {
    fake.setPull(REPO, 1);
    const c = fake.addComment(REPO, 1, '/apply staging');
    const first = await gh.rest.reactions.createForIssueComment({ owner, repo, comment_id: c.id, content: 'eyes' });
    const again = await gh.rest.reactions.createForIssueComment({ owner, repo, comment_id: c.id, content: 'eyes' });
    expect([first.status, again.status]).toEqual([201, 200]);
    expect(again.data.id).toBe(first.data.id);
    expect(fake.reactions(REPO, c.id)).toEqual([{ id: first.data.id, content: 'eyes', user: 'berth[bot]' }]);
  });

  it('records every request: method, decoded path, query, headers and JSON body', async () => {
    fake.setPull(REPO, 1);
    await gh.rest.issues.createComment({ owner, repo, issue_number: 1, body: 'hi' });
    await gh.rest.issues.listComments({ owner, repo, issue_number: 1, per_page: 10 });
    const [post, get] = fake.requests;
    expect(post).toMatchObject({ seq: 1, method: 'POST', path: '/repos/acme/shop/issues/1/comments', query: {}, body: { body: 'hi' }, operationId: 'issues/create-comment', status: 201 });
    expect(post!.headers.authorization).toBe(`token ${fake.token}`);
    expect(get).toMatchObject({ method: 'GET', query: { per_page: '10' }, body: undefined, status: 200 });
  });
});

describe('requests are checked against GitHub’s REST API description', () => {
  beforeEach(() => {
    expectViolations = true;
  });

  it('rejects a check run with an invalid conclusion and lists it in violations', async () => {
    const { headSha } = fake.setPull(REPO, 1);
    const err = await gh.rest.checks
      .create({ owner, repo, name: 'berth / staging', head_sha: headSha, conclusion: 'passed' as 'success' })
      .catch((e: { status: number; message: string }) => e);
    expect(err).toMatchObject({ status: 422 });
    expect(fake.violations).toEqual([
      {
        side: 'request',
        method: 'POST',
        path: '/repos/acme/shop/check-runs',
        operationId: 'checks/create',
        problems: ['body.conclusion: "passed" is not one of "action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out"'],
      },
    ]);
    expect(fake.checkRuns(REPO, headSha)).toEqual([]);
  });

  it('rejects what GitHub rejects beyond the enums', async () => {
    const { headSha } = fake.setPull(REPO, 1);
    const { data: run } = await gh.rest.checks.create({ owner, repo, name: 'berth / staging', head_sha: headSha, status: 'queued' });
    const cases: [string, () => Promise<unknown>, RegExp][] = [
      ['completed without a conclusion (create)', () => gh.rest.checks.create({ owner, repo, name: 'n', head_sha: headSha, status: 'completed' }), /conclusion: is required when status is completed/],
      ['completed without a conclusion (update)', () => gh.rest.checks.update({ owner, repo, check_run_id: run.id, status: 'completed' }), /matches none of the allowed forms/],
      ['stale conclusion', () => gh.rest.checks.update({ owner, repo, check_run_id: run.id, conclusion: 'stale' }), /"stale" can only be set by GitHub/],
      ['missing required field', () => raw('POST /repos/{owner}/{repo}/check-runs', { owner, repo, head_sha: headSha }), /body\.name: is required/],
      ['output without a summary', () => gh.rest.checks.create({ owner, repo, name: 'n', head_sha: headSha, output: { title: 't' } as { title: string; summary: string } }), /body\.output\.summary: is required/],
      ['summary over 65,535 characters', () => gh.rest.checks.create({ owner, repo, name: 'n', head_sha: headSha, output: { title: 't', summary: 'x'.repeat(65_536) } }), /longer than 65535/],
      ['branch name as head_sha', () => gh.rest.checks.create({ owner, repo, name: 'n', head_sha: 'main' }), /is not a commit SHA/],
      ['unknown commit', () => gh.rest.checks.create({ owner, repo, name: 'n', head_sha: 'd'.repeat(40) }), /no commit found/],
      ['reaction GitHub does not have', () => gh.rest.reactions.createForIssueComment({ owner, repo, comment_id: 1, content: 'thumbsup' as 'eyes' }), /content: "thumbsup" is not one of/],
      ['comment over 65,536 characters', () => gh.rest.issues.createComment({ owner, repo, issue_number: 1, body: 'x'.repeat(65_537) }), /body\.body: is too long/],
      ['comment without a body', () => raw('POST /repos/{owner}/{repo}/issues/{issue_number}/comments', { owner, repo, issue_number: 1 }), /body: required|body\.body: is required/],
      ['non-integer path parameter', () => raw('GET /repos/{owner}/{repo}/pulls/{pull_number}', { owner, repo, pull_number: 'seven' }), /pull_number: expected an integer/],
      ['unknown query parameter', () => raw('GET /repos/{owner}/{repo}/pulls/{pull_number}/reviews', { owner, repo, pull_number: 1, sort: 'new' }), /query parameter sort: not a parameter/],
      ['bad enum in the query', () => raw('GET /repos/{owner}/{repo}/commits/{ref}/check-runs', { owner, repo, ref: headSha, filter: 'newest' }), /query parameter filter: "newest" is not one of/],
    ];
    for (const [what, call, problem] of cases) {
      const before = fake.violations.length;
      const code = await status(call());
      expect(code, what).toBe(422);
      expect(fake.violations.length, what).toBe(before + 1);
      expect(fake.violations.at(-1)!.problems.join('\n'), what).toMatch(problem);
    }
    expect(fake.checkRuns(REPO, headSha)).toHaveLength(1);
  });

  it('answers 404 for a path or method that is no operation', async () => {
    expect(await status(raw('GET /repos/{owner}/{repo}/check-suns', { owner, repo }))).toBe(404);
    expect(await status(raw('DELETE /repos/{owner}/{repo}/check-runs', { owner, repo }))).toBe(404);
    expect(fake.violations.map((v) => v.problems[0])).toEqual([
      'no operation of GitHub’s REST API has this path',
      'DELETE is not an operation on this path (it has POST)',
    ]);
  });

  it('answers 501 for a valid operation the fake does not implement, without calling it a violation', async () => {
    fake.setRepo(REPO);
    expect(await status(gh.rest.repos.listBranches({ owner, repo }))).toBe(501);
    expect(fake.violations).toEqual([]);
    expect(fake.unhandled.map((r) => r.operationId)).toEqual(['repos/list-branches']);
  });
});

describe('fault injection', () => {
  it('fails the next N calls to a route with a 5xx, then recovers', async () => {
    const { headSha } = fake.setPull(REPO, 1);
    fake.fail('checks/create', 500, { times: 2 });
    const create = () => gh.rest.checks.create({ owner, repo, name: 'berth / staging', head_sha: headSha, status: 'queued' });
    expect(await status(create())).toBe(500);
    expect(await status(create())).toBe(500);
    expect(await status(create())).toBe(200);
    expect(fake.checkRuns(REPO, headSha)).toHaveLength(1);
    expect(fake.requestsTo('POST /repos/{owner}/{repo}/check-runs').map((r) => r.status)).toEqual([500, 500, 201]);
  });

  it('only affects the route it names', async () => {
    fake.setPull(REPO, 1);
    fake.fail('issues/update-comment', 502);
    expect(await status(gh.rest.issues.createComment({ owner, repo, issue_number: 1, body: 'x' }))).toBe(200);
  });

  it('answers a secondary rate limit as GitHub does: 403, its message and retry-after', async () => {
    fake.setPull(REPO, 1);
    fake.fail('issues/create-comment', 'secondary-rate-limit', { retryAfter: 7 });
    const err = await gh.rest.issues.createComment({ owner, repo, issue_number: 1, body: 'x' }).catch((e) => e);
    expect(err.status).toBe(403);
    expect(err.message).toMatch(/secondary rate limit/);
    expect(err.response.headers['retry-after']).toBe('7');
  });

  it('answers a rate limit with 429, retry-after and an exhausted quota', async () => {
    fake.setRepo(REPO);
    fake.fail('repos/get', 'rate-limit', { retryAfter: 3 });
    const err = await gh.rest.repos.get({ owner, repo }).catch((e) => e);
    expect(err.status).toBe(429);
    expect(err.response.headers).toMatchObject({ 'retry-after': '3', 'x-ratelimit-remaining': '0' });
    expect((await gh.rest.repos.get({ owner, repo })).status).toBe(200);
  });

  it('refuses to inject on a route that does not exist', () => {
    expect(() => fake.fail('checks/craete', 500)).toThrow(/neither an operationId/);
  });
});

describe('authentication and Probot', () => {
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });

  it('refuses calls without a valid token', async () => {
    fake.setRepo(REPO);
    expect(await status(new Octokit({ baseUrl: fake.url }).rest.repos.get({ owner, repo }))).toBe(401);
    expect(await status(new Octokit({ baseUrl: fake.url, auth: 'ghs_stolen' }).rest.repos.get({ owner, repo }))).toBe(401);
  });

  it('authenticates a Probot app: JWT checked against its key, installation token issued and accepted', async () => {
    await fake.close();
    fake = await startFakeGitHub({ appKey: privateKey, appId: 42 });
    fake.setRepo(REPO, { defaultBranch: 'trunk' });
    const probot = new Probot({ appId: 42, privateKey, baseUrl: fake.url, logLevel: 'fatal' });
    const octokit = await probot.auth(7);
    const { data } = await octokit.rest.repos.get({ owner, repo });
    expect(data.default_branch).toBe('trunk');
    const [token, get] = fake.requests;
    expect(token).toMatchObject({ method: 'POST', path: '/app/installations/7/access_tokens', status: 201 });
    expect(token!.headers.authorization).toMatch(/^bearer [\w-]+\.[\w-]+\.[\w-]+$/i);
    expect(get!.headers.authorization).toMatch(/^token ghs_fake/);

    const other = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    const impostor = new Probot({ appId: 42, privateKey: other.privateKey, baseUrl: fake.url, logLevel: 'fatal' });
    expect(await status((await impostor.auth(7)).rest.repos.get({ owner, repo }))).toBe(401);
  });

  it("Probot's octokit retries 5xx and primary rate limits, but not a secondary rate limit", async () => {
    await fake.close();
    fake = await startFakeGitHub({ appKey: privateKey });
    fake.setPull(REPO, 1);
    const probot = new Probot({ appId: 1, privateKey, baseUrl: fake.url, logLevel: 'fatal' });
    const octokit = await probot.auth(1);
    fake.fail('issues/create-comment', 500);
    fake.fail('issues/create-comment', 'rate-limit', { retryAfter: 1 });
    const { status: code } = await octokit.rest.issues.createComment({ owner, repo, issue_number: 1, body: 'eventually' });
    expect(code).toBe(201);
    expect(fake.requestsTo('issues/create-comment').map((r) => r.status)).toEqual([500, 429, 201]);
    expect(fake.comments(REPO, 1).map((c) => c.body)).toEqual(['eventually']);

    // Probot's default onSecondaryRateLimit only logs: the call fails, the caller must cope.
    fake.fail('issues/create-comment', 'secondary-rate-limit', { retryAfter: 1 });
    expect(await status(octokit.rest.issues.createComment({ owner, repo, issue_number: 1, body: 'again' }))).toBe(403);
  }, 30_000);

  it('delivers a signed webhook built from a real example to a Probot app, which answers through the fake', async () => {
    await fake.close();
    fake = await startFakeGitHub({ appKey: privateKey });
    fake.setPull(REPO, 9);
    const comment = fake.addComment(REPO, 9, '/help', { user: 'alice' });
    const secret = 'webhook-secret';
    const probot = new Probot({ appId: 1, privateKey, secret, baseUrl: fake.url, logLevel: 'fatal' });
    await probot.load((app) => {
      app.on('issue_comment.created', async (context) => {
        if (!context.payload.issue.pull_request) return;
        await context.octokit.rest.reactions.createForIssueComment(context.repo({ comment_id: context.payload.comment.id, content: 'eyes' }));
      });
    });

    const payload = commentOnPullEvent({ repo: REPO, pr: 9, comment: { id: comment.id, body: comment.body, user: 'alice' }, installationId: 5 });
    const body = JSON.stringify(payload);
    const headers = webhookHeaders('issue_comment', body, secret, 'delivery-1');
    await probot.webhooks.verifyAndReceive({ id: headers['x-github-delivery']!, name: 'issue_comment', payload: body, signature: headers['x-hub-signature-256']! });

    expect(fake.reactions(REPO, comment.id)).toEqual([expect.objectContaining({ content: 'eyes', user: 'berth[bot]' })]);
    await expect(
      probot.webhooks.verifyAndReceive({ id: 'delivery-2', name: 'issue_comment', payload: body, signature: signWebhook('wrong-secret', body) }),
    ).rejects.toThrow();
  });
});

describe('webhook helpers', () => {
  it('signWebhook produces the signature @octokit/webhooks-methods verifies', async () => {
    const body = JSON.stringify(loadExample('ping'));
    const signature = signWebhook('s3cret', body);
    expect(signature).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(await verify('s3cret', body, signature)).toBe(true);
    expect(await verify('other', body, signature)).toBe(false);
    expect(await verify('s3cret', body + ' ', signature)).toBe(false);
  });

  it('loadExample returns real payloads, as independent copies', () => {
    const opened = loadExample('pull_request', (p) => p.action === 'opened');
    expect(opened.action).toBe('opened');
    expect(opened.pull_request.head.sha).toMatch(/^[0-9a-f]{40}$/);
    opened.pull_request.number = -1;
    expect(loadExample('pull_request', (p) => p.action === 'opened').pull_request.number).not.toBe(-1);

    const created = loadExample('issue_comment', (p) => p.action === 'created');
    expect(created.comment.body).toEqual(expect.any(String));
    expect(() => loadExample('pull_request', (p) => p.action === ('exploded' as string))).toThrow(/actions available: .*opened/);
  });

  it('adapts real examples to a repository and pull request', () => {
    const c = commentOnPullEvent({ repo: REPO, pr: 4, comment: { id: 77, body: '/apply staging', user: 'alice' }, installationId: 3 });
    expect(c).toMatchObject({
      action: 'created',
      issue: { number: 4, pull_request: { url: 'https://api.github.com/repos/acme/shop/pulls/4' } },
      comment: { id: 77, body: '/apply staging', user: { login: 'alice', type: 'User' } },
      repository: { full_name: REPO, name: 'shop', owner: { login: 'acme' } },
      installation: { id: 3 },
    });
    const p = pullRequestEvent({ repo: REPO, pr: 4, action: 'closed', merged: true, headSha: 'e'.repeat(40) });
    expect(p).toMatchObject({ action: 'closed', number: 4, pull_request: { number: 4, state: 'closed', merged: true, head: { sha: 'e'.repeat(40) } }, repository: { full_name: REPO } });
  });
});
