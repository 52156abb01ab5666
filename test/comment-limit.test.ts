// GitHub refuses (422) a comment body longer than 65,536 characters. The plan
// comment is split into parts, but other comments (a configuration error that
// lists every problem of a large compose file, an apply outcome with a long
// failure) have no such bound: the GitHub port clips any body to the limit, with
// a visible note, rather than have GitHub refuse the whole reply.
import { expect, it } from 'vitest';
import { COMMENT_LIMIT, OctokitGitHub } from '../src/github/octokit-github.js';

function stub() {
  const sent: string[] = [];
  const octokit = {
    rest: {
      issues: {
        createComment: async (p: { body: string }) => (sent.push(p.body), { data: { id: 1 } }),
        updateComment: async (p: { body: string }) => (sent.push(p.body), { data: {} }),
      },
    },
  };
  return { gh: new OctokitGitHub(octokit as never), sent };
}
const repo = { owner: 'acme', name: 'shop' };

it('clips a comment longer than GitHub takes, and says so', async () => {
  const { gh, sent } = stub();
  const issues = Array.from({ length: 3000 }, (_, i) => `services.svc${i}.foo: berth does not know this key`).join('\n');
  await gh.createComment(repo, 1, `<!-- berth -->\n${issues}`);
  await gh.updateComment(repo, 5, '😀'.repeat(40_000));
  expect(COMMENT_LIMIT).toBe(65_536);
  for (const body of sent) {
    expect(body.length).toBeLessThanOrEqual(65_536);
    expect(body).toMatch(/truncated/);
    // never half a surrogate pair
    expect(body).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  }
  expect(sent[0]!.startsWith('<!-- berth -->\nservices.svc0.foo')).toBe(true);
});

it('leaves a body within the limit as it is', async () => {
  const { gh, sent } = stub();
  const body = 'x'.repeat(65_536);
  await gh.createComment(repo, 1, body);
  expect(sent).toEqual([body]);
});

it('closes a code block the cut left open', async () => {
  const { gh, sent } = stub();
  await gh.createComment(repo, 1, 'intro\n\n```text\n' + 'line\n'.repeat(20_000) + '```\n');
  const body = sent[0]!;
  expect(body.length).toBeLessThanOrEqual(65_536);
  expect(body).toMatch(/\n```\n\n… \(truncated/);
});
