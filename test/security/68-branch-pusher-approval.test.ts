// Red team: the approval of whoever pushed the current head does not count (security 59), and berth learnt the
// pusher only from the PR's own events: the sender of `opened` (taken as the pusher) or `synchronize`. A
// writer not trusted with production pushed their change to a branch and had a colleague open the PR from it
// (the colleague is the author; the writer is not), approved the head and met `approvals: 1` with their own
// approval of their own change. berth now also records the sender of every `push` webhook, per commit made a
// branch's head, and no pusher of the current head counts as an approver. The same record names the pusher of
// a head pushed while its PR was closed (security 62), so approvals of others count again after a reopen.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';
import { pullRequestEvent } from '../helpers/fake-github.js';
import { pushEvent } from '../helpers/push-event.js';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';

const REPO = 'acme/sec-branch-pusher';
const PROJECT = 't-sec-68';
const [HEAD_A, HEAD_B] = [sha('a'), sha('b')];
const REPOSITORY = { id: 68, name: 'sec-branch-pusher', full_name: REPO, default_branch: 'main', owner: { login: 'acme', name: 'acme' } };

const CONFIG = berthYml(PROJECT, [{ name: 'staging', compose: ['compose.yml'], extra: ['approvals: 1'] }]);
const compose = (label: string) => ['services:', '  web:', '    image: berth-test/app:1', '    labels:', `      rev: "${label}"`, ''].join('\n');

describeDocker('security: whoever pushed a branch cannot approve its head for the PR someone else opened', () => {
  let app: App;
  const applies = () => app.ts.store.listApplies({ repo: REPO });
  const push = async (after: string, login: string) => {
    expect(await app.deliver('push', pushEvent(REPOSITORY, after, 'refs/heads/feature', { login, id: 7, type: 'User' }))).toBe(200);
    await app.drain();
  };

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { carol: 'write', mallory: 'write', bob: 'write' }, logLevel: 'warn' });
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': compose('main') });
    for (const [head, label] of [[HEAD_A, 'a'], [HEAD_B, 'b']] as const) app.fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': compose(label) });
    // mallory pushes the branch; carol opens the PR from it
    await push(HEAD_A, 'mallory');
    app.fake.setPull(REPO, 1, { headSha: HEAD_A, author: 'carol' });
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'opened', headSha: HEAD_A, sender: 'carol' }))).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await app?.cleanup();
    await app?.close();
  });

  it("the branch's pusher's approval of the head does not meet approvals: 1", async () => {
    expect(await app.ts.store.headPushers(REPO, 1, HEAD_A)).toEqual(['carol', 'mallory']);
    app.fake.addReview(REPO, 1, { user: 'mallory', state: 'APPROVED', commitId: HEAD_A });
    await app.say(1, '/apply staging', 'mallory');
    const reply = app.lastReply(1);
    expect(reply).toContain('Apply requirement not met');
    expect(reply).toContain('@mallory (pushed the current head)');
    expect(await applies()).toEqual([]);
  });

  it('a head pushed while its PR was closed: the push names its pusher, and another writer’s approval counts', async () => {
    app.fake.setPull(REPO, 1, { state: 'closed' });
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'closed', headSha: HEAD_A, sender: 'mallory' }))).toBe(200);
    await push(HEAD_B, 'mallory');
    app.fake.setPull(REPO, 1, { state: 'open', headSha: HEAD_B });
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'reopened', headSha: HEAD_B, sender: 'mallory' }))).toBe(200);
    expect(await app.ts.store.headPushers(REPO, 1, HEAD_B)).toEqual(['?', 'mallory']);
    app.fake.addReview(REPO, 1, { user: 'mallory', state: 'APPROVED', commitId: HEAD_B });
    await app.say(1, '/apply staging', 'mallory');
    expect(app.lastReply(1)).toContain('@mallory (pushed the current head)');
    expect(await applies()).toEqual([]);
    app.fake.addReview(REPO, 1, { user: 'bob', state: 'APPROVED', commitId: HEAD_B });
    await app.say(1, '/apply staging', 'bob');
    await app.drain();
    const all = await applies();
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ state: 'completed', headSha: HEAD_B });
  }, 60_000);
});
