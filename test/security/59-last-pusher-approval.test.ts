// Red team: GitHub's "require approval of the most recent reviewable push" rule, which `approvals` is meant to
// mirror. A writer not trusted with production pushed a commit onto someone else's PR (a colleague's, a bot's),
// approved it — they are not the PR's author — and commented `/apply`: `approvals: 1` counted their own
// approval of their own change. berth now records who pushed each head (the sender of its `opened` or
// `synchronize` webhook), and the pusher's approval of the current head does not count.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';
import { pullRequestEvent } from '../helpers/fake-github.js';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';

const REPO = 'acme/sec-last-pusher';
const PROJECT = 't-sec-59';
const [HEAD_A, HEAD_B] = [sha('a'), sha('b')];

const CONFIG = berthYml(PROJECT, [{ name: 'staging', compose: ['compose.yml'], extra: ['approvals: 1'] }]);
const compose = (label: string) => ['services:', '  web:', '    image: berth-test/app:1', '    labels:', `      rev: "${label}"`, ''].join('\n');

describeDocker("security: the last pusher's approval does not count", () => {
  let app: App;
  const applies = () => app.ts.store.listApplies({ repo: REPO });

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { carol: 'write', mallory: 'write', bob: 'write' }, logLevel: 'warn' });
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': compose('main') });
    app.fake.setFiles(REPO, HEAD_A, { '.github/berth.yml': CONFIG, 'compose.yml': compose('a') });
    app.fake.setFiles(REPO, HEAD_B, { '.github/berth.yml': CONFIG, 'compose.yml': compose('b') });
    app.fake.setPull(REPO, 1, { headSha: HEAD_A, author: 'carol' });
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'opened', headSha: HEAD_A, sender: 'carol' }))).toBe(200);
    // mallory pushes onto carol's PR
    app.fake.setPull(REPO, 1, { headSha: HEAD_B });
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'synchronize', headSha: HEAD_B, sender: 'mallory' }))).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await app?.cleanup();
    await app?.close();
  });

  it('the pusher of the current head approving it does not meet approvals: 1', async () => {
    app.fake.addReview(REPO, 1, { user: 'mallory', state: 'APPROVED', commitId: HEAD_B });
    await app.say(1, '/apply staging', 'mallory');
    const reply = app.lastReply(1);
    expect(reply).toContain('Apply requirement not met');
    expect(reply).toContain('has 0');
    expect(reply).toContain('@mallory (pushed the current head)');
    expect(await applies()).toEqual([]);
  });

  it("someone else's approval of that head counts", async () => {
    app.fake.addReview(REPO, 1, { user: 'bob', state: 'APPROVED', commitId: HEAD_B });
    await app.say(1, '/apply staging', 'mallory');
    await app.drain();
    const all = await applies();
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ state: 'completed', headSha: HEAD_B });
  }, 60_000);
});
