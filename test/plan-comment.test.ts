// The plan comment is edited in place — unless someone deleted it (or one of its
// parts): GitHub then answers 404 to the edit, and berth must post the comment
// again rather than fail the whole plan with an internal error.
import { afterEach, beforeEach, expect, it } from 'vitest';
import { Bot } from '../src/github/bot.js';
import type { BotOptions } from '../src/github/bot.js';
import type { GitHubPort } from '../src/github/github.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

const repo = { owner: 'acme', name: 'shop' };
let ts: TestStore;
beforeEach(async () => {
  ts = await sqliteTestStore();
});
afterEach(async () => ts.dispose());

/** GitHub's comment endpoints, with comments a user can delete. */
function comments() {
  const live = new Map<number, string>();
  let next = 100;
  const calls: string[] = [];
  const httpError = (status: number, message: string) => Object.assign(new Error(message), { status });
  const gh = {
    createComment: async (_r: unknown, _pr: number, body: string) => {
      live.set(next, body);
      calls.push(`create ${next}`);
      return next++;
    },
    updateComment: async (_r: unknown, id: number, body: string) => {
      calls.push(`update ${id}`);
      if (!live.has(id)) throw httpError(404, 'Not Found');
      live.set(id, body);
    },
  } as unknown as GitHubPort;
  return { gh, live, calls, failNext: httpError };
}

const bot = () => new Bot({ store: ts.store, log: { info() {}, warn() {}, error() {} } } as unknown as BotOptions);

it('posts the plan comment again when the one berth edits was deleted', async () => {
  const c = comments();
  await bot().upsertPlanComment(c.gh, repo, 7, '<!-- berth -->\nfirst plan');
  expect([...c.live.keys()]).toEqual([100]);
  c.live.delete(100); // a user deleted berth's comment
  await bot().upsertPlanComment(c.gh, repo, 7, '<!-- berth -->\nsecond plan');
  expect([...c.live.entries()]).toEqual([[101, '<!-- berth -->\nsecond plan']]);
  expect(await ts.store.getPrComments('acme/shop', 7)).toEqual([101]);
  // and the new one is what is edited from then on
  await bot().upsertPlanComment(c.gh, repo, 7, '<!-- berth -->\nthird plan');
  expect(c.calls.slice(-1)).toEqual(['update 101']);
  expect(c.live.get(101)).toBe('<!-- berth -->\nthird plan');
});

it('forgets a deleted part that is no longer needed instead of failing', async () => {
  const c = comments();
  const long = '<!-- berth -->\n' + Array.from({ length: 4 }, (_, i) => `## env${i}\n\n` + 'x'.repeat(30_000)).join('\n\n');
  await bot().upsertPlanComment(c.gh, repo, 7, long);
  const ids = await ts.store.getPrComments('acme/shop', 7);
  expect(ids.length).toBeGreaterThan(1);
  c.live.delete(ids[ids.length - 1]!);
  await bot().upsertPlanComment(c.gh, repo, 7, '<!-- berth -->\nshort now');
  expect(c.live.get(ids[0]!)).toBe('<!-- berth -->\nshort now');
  expect(await ts.store.getPrComments('acme/shop', 7)).toEqual(ids.slice(0, -1));
});

it('other failures of an edit still fail the plan', async () => {
  const c = comments();
  await bot().upsertPlanComment(c.gh, repo, 7, '<!-- berth -->\nfirst plan');
  (c.gh as { updateComment: unknown }).updateComment = async () => {
    throw c.failNext(500, 'Server Error');
  };
  await expect(bot().upsertPlanComment(c.gh, repo, 7, '<!-- berth -->\nsecond')).rejects.toThrow('Server Error');
});

// Red team: a 12 KB compose file rendered a plan of 45 comments, and every /plan wrote them all again.
it('a plan longer than ten comments is posted as ten: the last says how many more it would have taken', async () => {
  const c = comments();
  const huge = '<!-- berth -->\n' + Array.from({ length: 40 }, (_, i) => `## env${i}\n\n` + 'x'.repeat(60_000)).join('\n\n');
  await bot().upsertPlanComment(c.gh, repo, 7, huge);
  expect(c.calls.filter((x) => x.startsWith('create'))).toHaveLength(10);
  const last = c.live.get(109)!;
  expect(last).toMatch(/^<!-- berth -->\n\*\*Part 10\/10\*\*/);
  expect(last).toMatch(/The rest of the plan is not posted: it would take \d+ more comments/);
  for (const body of c.live.values()) expect(body.length).toBeLessThanOrEqual(65_536);
});
