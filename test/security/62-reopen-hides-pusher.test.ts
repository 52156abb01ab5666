// Red team: the last pusher's approval does not count (security 59), and berth learns who pushed a head from
// the sender of its `opened` or `synchronize` webhook. GitHub sends neither for a push to a CLOSED pull
// request: the PR takes the branch's new head when it is reopened, in a `reopened` event whose sender is only
// who reopened it. A writer not trusted with production closed a colleague's PR (any writer may), pushed
// their change onto its branch, reopened it, approved the head — not the author, and berth knew no pusher —
// and commented `/apply`: `approvals: 1` counted their own approval of their own change. A head that first
// reaches a PR by a reopen now has an unknown pusher, and an unknown pusher meets no approval requirement.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';
import { pullRequestEvent } from '../helpers/fake-github.js';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';

const REPO = 'acme/sec-reopen-pusher';
const PROJECT = 't-sec-62';
const [HEAD_A, HEAD_B, HEAD_C] = [sha('a'), sha('b'), sha('c')];

const CONFIG = berthYml(PROJECT, [{ name: 'staging', compose: ['compose.yml'], extra: ['approvals: 1'] }]);
const compose = (label: string) => ['services:', '  web:', '    image: berth-test/app:1', '    labels:', `      rev: "${label}"`, ''].join('\n');

describeDocker('security: a head that came with a reopen has no known pusher', () => {
  let app: App;
  const applies = () => app.ts.store.listApplies({ repo: REPO });

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { carol: 'write', mallory: 'write', bob: 'write' }, logLevel: 'warn' });
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': compose('main') });
    for (const [head, label] of [[HEAD_A, 'a'], [HEAD_B, 'b'], [HEAD_C, 'c']] as const) app.fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': compose(label) });
    app.fake.setPull(REPO, 1, { headSha: HEAD_A, author: 'carol' });
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'opened', headSha: HEAD_A, sender: 'carol' }))).toBe(200);
    // mallory closes carol's PR, pushes onto its branch (GitHub sends no synchronize for a closed PR), reopens it
    app.fake.setPull(REPO, 1, { state: 'closed' });
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'closed', headSha: HEAD_A, sender: 'mallory' }))).toBe(200);
    app.fake.setPull(REPO, 1, { state: 'open', headSha: HEAD_B });
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'reopened', headSha: HEAD_B, sender: 'mallory' }))).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await app?.cleanup();
    await app?.close();
  });

  it("the approval of whoever pushed a head while the PR was closed does not meet approvals: 1", async () => {
    app.fake.addReview(REPO, 1, { user: 'mallory', state: 'APPROVED', commitId: HEAD_B });
    await app.say(1, '/apply staging', 'mallory');
    const reply = app.lastReply(1);
    expect(reply).toContain('Apply requirement not met');
    expect(reply).toContain('who pushed the current head');
    expect(await applies()).toEqual([]);
  });

  it('nor does anyone else’s: berth cannot tell them from the pusher', async () => {
    app.fake.addReview(REPO, 1, { user: 'bob', state: 'APPROVED', commitId: HEAD_B });
    await app.say(1, '/apply staging', 'mallory');
    expect(app.lastReply(1)).toContain('Apply requirement not met');
    expect(await applies()).toEqual([]);
  });

  it('a push berth sees (synchronize) makes its pusher known again, and approvals count as before', async () => {
    app.fake.setPull(REPO, 1, { headSha: HEAD_C });
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'synchronize', headSha: HEAD_C, sender: 'carol' }))).toBe(200);
    app.fake.addReview(REPO, 1, { user: 'bob', state: 'APPROVED', commitId: HEAD_C });
    await app.say(1, '/apply staging', 'bob');
    await app.drain();
    const all = await applies();
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ state: 'completed', headSha: HEAD_C });
  }, 60_000);

  it('a PR closed and reopened without a push keeps the pusher berth knew', async () => {
    app.fake.setPull(REPO, 1, { state: 'closed' });
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'closed', headSha: HEAD_C, sender: 'carol' }))).toBe(200);
    app.fake.setPull(REPO, 1, { state: 'open' });
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'reopened', headSha: HEAD_C, sender: 'mallory' }))).toBe(200);
    expect(await app.ts.store.headPushers(REPO, 1, HEAD_C)).toEqual(['carol']);
  });
});
