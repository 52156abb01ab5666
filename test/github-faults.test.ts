// GitHub answering differently: what berth's GitHub port makes of answers a
// GitHub (or a stand-in) gives without an optional field, and the gates'
// verdicts on them. The port runs on a stubbed Octokit: each case is one
// answer as a GitHub may send it.
import { describe, expect, it } from 'vitest';
import { OctokitGitHub } from '../src/github/octokit-github.js';
import { authorise, requirementsGate } from '../src/github/gates.js';
import { failureReply } from '../src/github/webhooks/delivery.js';

const repo = { owner: 'acme', name: 'shop' };
const HEAD = 'a'.repeat(40);
type Rest = Record<string, Record<string, unknown>>;
const port = (rest: Rest, paginate: (...a: unknown[]) => Promise<unknown[]> = async () => []) => new OctokitGitHub({ rest, paginate } as unknown as ConstructorParameters<typeof OctokitGitHub>[0]);
const PULL = { number: 1, state: 'open', head: { sha: HEAD, repo: { full_name: 'acme/shop' } }, base: { repo: { full_name: 'acme/shop' } }, user: { login: 'bob' }, html_url: 'https://github.com/acme/shop/pull/1' };

describe('pulls.get without optional fields', () => {
  it('a PR answered without mergeable is "not known yet", never "has conflicts"; without merged, draft or user it still reads', async () => {
    const { mergeable: _m, ...bare } = { ...PULL, mergeable: undefined };
    const gh = port({ pulls: { get: async () => ({ data: bare }) } });
    const pull = await gh.getPull(repo, 1);
    expect(pull).toMatchObject({ mergeable: null, merged: false, draft: false, author: 'bob', headSha: HEAD });
    const gate = await requirementsGate(gh, repo, pull, { name: 'production', requires: [], require: { mergeable: true } });
    expect(gate.ok).toBe(false);
    expect(!gate.ok && gate.message).toContain('GitHub has not finished checking whether this PR can be merged');
    expect(!gate.ok && gate.message).not.toContain('conflicts');
    const ghost = port({ pulls: { get: async () => ({ data: { ...PULL, user: null } }) } });
    expect((await ghost.getPull(repo, 1)).author).toBe('');
  });
});

describe('repos.getCollaboratorPermissionLevel without permission', () => {
  const answering = (data: unknown) => port({ repos: { getCollaboratorPermissionLevel: async () => ({ data }) } });
  it('an answer with only role_name is read by it; an unknown role or an empty answer is no permission, denied with a clear reason', async () => {
    expect(await answering({ role_name: 'admin' }).permission(repo, 'alice')).toBe('admin');
    expect(await answering({ role_name: 'write' }).permission(repo, 'alice')).toBe('write');
    expect(await answering({ permission: 'read', role_name: 'maintain' }).permission(repo, 'alice')).toBe('maintain');
    // a custom role: GitHub's permission is its base role
    expect(await answering({ permission: 'write', role_name: 'deployer' }).permission(repo, 'alice')).toBe('write');
    expect(await answering({ role_name: 'deployer' }).permission(repo, 'alice')).toBe('none');
    expect(await answering({}).permission(repo, 'alice')).toBe('none');
    expect(await authorise(answering({ role_name: 'write' }), repo, 'alice', { name: 'staging', requires: [] })).toEqual({ ok: true });
    const denied = await authorise(answering({}), repo, 'alice', { name: 'staging', requires: [] });
    expect(!denied.ok && denied.message).toContain('their permission on this repository is `none`');
  });
});

describe('pulls.listReviews without optional fields', () => {
  const reviewing = (reviews: unknown[]) =>
    port(
      {
        pulls: { listReviews: {} },
        repos: {
          getCollaboratorPermissionLevel: async ({ username }: { username: string }) => {
            if (!username) throw Object.assign(new Error('Not Found'), { status: 404 });
            return { data: { permission: 'write' } };
          },
        },
      },
      async () => reviews,
    );
  const pull = { number: 1, state: 'open' as const, merged: false, draft: false, headSha: HEAD, headRepo: 'acme/shop', baseRepo: 'acme/shop', mergeable: true, author: 'bob', htmlUrl: '' };
  const env = { name: 'production', requires: [], approvals: 1 };
  it("a review by a deleted account (user: null) counts for nobody and does not fail the gate for the others' approvals", async () => {
    const gh = reviewing([
      { user: null, state: 'APPROVED', commit_id: HEAD },
      { user: { login: 'carol' }, state: 'APPROVED', commit_id: HEAD },
    ]);
    expect(await requirementsGate(gh, repo, pull, env)).toEqual({ ok: true });
    const alone = await requirementsGate(reviewing([{ user: null, state: 'APPROVED', commit_id: HEAD }]), repo, pull, env);
    expect(!alone.ok && alone.message).toContain('this PR has 0');
  });
  it('a review without commit_id is of an unknown commit: not counted, and the refusal says why', async () => {
    const gate = await requirementsGate(reviewing([{ user: { login: 'carol' }, state: 'APPROVED' }]), repo, pull, env);
    expect(!gate.ok && gate.message).toContain('@carol (approved an unknown commit, not the current head)');
  });
});

describe('reads under GitHub\'s secondary rate limit', () => {
  const limited = () => Object.assign(new Error('You have exceeded a secondary rate limit. Please wait a few minutes before you try again.'), { status: 403, response: { headers: { 'retry-after': '1' } } });
  /** answers `data` after one secondary-rate-limit refusal; counts the calls */
  const once = (data: unknown) => {
    const calls = { n: 0 };
    const fn = async () => {
      if (calls.n++ === 0) throw limited();
      return { data };
    };
    return { fn, calls };
  };
  it('are waited out and asked again, as writes are: the config, the PR, the tree, the permission and the reviews a command needs', async () => {
    const content = once({ type: 'file', encoding: 'base64', size: 4, sha: 'f', content: Buffer.from('a: 1').toString('base64') });
    const pull = once(PULL);
    const tree = once({ truncated: false, tree: [{ path: 'compose.yml', type: 'blob', sha: 'e', size: 4 }] });
    const perm = once({ permission: 'write' });
    const reviews = once([{ user: { login: 'carol' }, state: 'APPROVED', commit_id: HEAD }]);
    const gh = port(
      { repos: { getContent: content.fn, getCollaboratorPermissionLevel: perm.fn }, pulls: { get: pull.fn, listReviews: {} }, git: { getTree: tree.fn } },
      async () => (await reviews.fn()).data as unknown[],
    );
    const t0 = Date.now();
    const [text, p, files, may, listed] = await Promise.all([gh.readFile(repo, '.github/berth.yml'), gh.getPull(repo, 1), gh.listFiles(repo, HEAD), authorise(gh, repo, 'alice', { name: 'staging', requires: [] }), gh.listReviews(repo, 1)]);
    expect(text).toBe('a: 1');
    expect(p.headSha).toBe(HEAD);
    expect([...files]).toEqual(['compose.yml']);
    expect(may).toEqual({ ok: true });
    expect(listed).toEqual([{ user: 'carol', state: 'APPROVED', submittedAt: null, commitId: HEAD }]);
    for (const c of [content, pull, tree, perm, reviews]) expect(c.calls.n).toBe(2);
    // the wait GitHub asked for (retry-after: 1), once
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  });
  it('a failure that is no rate limit is not retried: a 404 is still "no such file", a 500 is thrown for the caller', async () => {
    let n = 0;
    const gh = port({ repos: { getContent: async () => { n++; throw Object.assign(new Error('Not Found'), { status: 404 }); } }, pulls: { get: async () => { n++; throw Object.assign(new Error('Server Error'), { status: 500 }); } } });
    expect(await gh.readFile(repo, 'x')).toBeUndefined();
    await expect(gh.getPull(repo, 1)).rejects.toMatchObject({ status: 500 });
    expect(n).toBe(2);
  });
});

describe('a command a GitHub failure stopped', () => {
  it('is answered as GitHub\'s failure, naming the request and its status; any other failure stays an internal error', async () => {
    const { RequestError } = await import('@octokit/request-error');
    const err = new RequestError('Server Error', 502, { request: { method: 'GET', url: 'https://api.github.com/repos/acme/shop/git/trees/abc?recursive=true', headers: {} } });
    const reply = failureReply('d-1', err);
    expect(reply).toContain('GitHub failed a request berth needed to handle this (`GET /repos/acme/shop/git/trees/abc` answered 502)');
    expect(reply).toContain('Nothing was applied');
    expect(failureReply('d-2', new TypeError('x is undefined'))).toContain('berth hit an internal error');
  });
});
