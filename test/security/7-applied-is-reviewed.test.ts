// Issue 10, item 7: `/apply` applies what its author saw. A head berth first
// saw, or a plan comment berth wrote, after the command comment was created
// (GitHub's `created_at`) makes the command refuse, naming both heads and
// times; an edited comment never carries a command. Through the whole app:
// the push lands between the comment and its webhook, as it does on GitHub.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';
import { commentOnPullEvent, nextGitHubSecond } from '../helpers/fake-github.js';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';

const REPO = 'acme/sec-reviewed';
const PROJECT = 't-sec-7';
const [HEAD_A, HEAD_B] = [sha('a'), sha('b')];

const CONFIG = berthYml(PROJECT, [{ name: 'staging', compose: ['compose.yml'] }]);
const compose = (image: string) => ['services:', '  web:', `    image: ${image}`, ''].join('\n');

describeDocker('security: what is applied is what was reviewed (issue 10, item 7)', () => {
  let app: App;
  const applies = () => app.ts.store.listApplies({ repo: REPO });

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { alice: 'write', mallory: 'write' }, logLevel: 'warn' });
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': compose('berth-test/app:1') });
    app.fake.setFiles(REPO, HEAD_A, { '.github/berth.yml': CONFIG, 'compose.yml': compose('berth-test/app:1') });
    // The head pushed a moment after the reviewer's comment: another image.
    app.fake.setFiles(REPO, HEAD_B, { '.github/berth.yml': CONFIG, 'compose.yml': compose('berth-test/app:2') });
    app.fake.setPull(REPO, 1, { headSha: HEAD_A, author: 'mallory' });
    expect(await app.open(1, HEAD_A)).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
  });

  /** The comment as GitHub stores it now; its webhook is delivered later by `deliver`. */
  async function write(body: string, user = 'alice') {
    await nextGitHubSecond();
    const c = app.fake.addComment(REPO, 1, body, { user });
    return {
      c,
      deliver: (over: { body?: string; updatedAt?: string; action?: 'created' | 'edited' } = {}) =>
        app.deliver(
          'issue_comment',
          commentOnPullEvent({ repo: REPO, pr: 1, action: over.action ?? 'created', comment: { id: c.id, body: over.body ?? body, user, createdAt: c.createdAt, updatedAt: over.updatedAt ?? c.updatedAt } }),
        ),
    };
  }

  it('a push between the comment and its handling is refused, naming both heads and times', async () => {
    const cmd = await write('/apply staging');
    await nextGitHubSecond();
    app.fake.setPull(REPO, 1, { headSha: HEAD_B });
    expect(await app.open(1, HEAD_B, 'synchronize')).toBe(200);
    expect(app.berthComments(1)[0]!.body).toContain('berth-test/app:2');
    expect(await cmd.deliver()).toBe(200);
    const reply = app.lastReply(1);
    expect(reply).toContain('changed after the command was written');
    expect(reply).toContain('`aaaaaaa`');
    expect(reply).toContain('`bbbbbbb`');
    expect(reply).toContain(cmd.c.createdAt);
    expect(await applies()).toEqual([]);
  });

  it('a plan comment rewritten after the comment (same head) is refused', async () => {
    const cmd = await write('/apply staging');
    await nextGitHubSecond();
    await app.say(1, '/plan staging', 'mallory'); // berth rewrites its plan comment
    expect(await cmd.deliver()).toBe(200);
    const reply = app.lastReply(1);
    expect(reply).toContain('changed after the command was written');
    expect(reply).toContain('plan comment');
    expect(await applies()).toEqual([]);
  });

  it('an edited comment does not carry a command: neither as an edit event nor with updated_at after created_at', async () => {
    const cmd = await write('LGTM');
    await nextGitHubSecond();
    const before = app.berthComments(1).length;
    const edited = new Date(Date.parse(cmd.c.createdAt) + 5000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    expect(await cmd.deliver({ body: '/apply staging', updatedAt: edited, action: 'edited' })).toBe(200);
    expect(app.berthComments(1)).toHaveLength(before);
    expect(await cmd.deliver({ body: '/apply staging', updatedAt: edited })).toBe(200);
    expect(app.lastReply(1)).toContain('edited');
    expect(await applies()).toEqual([]);
  });

  it('a command written after the plan of the current head applies that head', async () => {
    await app.say(1, '/apply staging');
    await app.drain();
    const all = await applies();
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ state: 'completed', headSha: HEAD_B });
    const [c] = await app.containers();
    expect(c!.Image).toMatch(/(^|\/)berth-test\/app:2$/);
  }, 60_000);
});
