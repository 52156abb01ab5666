// Red team: anyone with write access to a repository can edit anyone's comment on it, berth's plan comment
// included. A writer not trusted with production pushed a change, let berth plan it, then edited berth's
// plan comment to show a harmless plan ("No changes", or the old image). The freshness check compared the
// command with berth's own write time only, so a person who read the edited comment and commented
// `/apply` applied the stored plan they never saw. berth now keeps the digest of each part it writes and,
// before an apply, reads the parts back: a part that is not what berth wrote, or that was edited when the
// command was written or after (an edit undone later was still what the commenter read), refuses the apply.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';
import { commentOnPullEvent, nextGitHubSecond } from '../helpers/fake-github.js';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';

const REPO = 'acme/sec-plan-edit';
const PROJECT = 't-sec-58';
const HEAD = sha('a');

// A secret in the plan: the comment GitHub holds is masked, and must still read as what berth wrote.
const CONFIG = berthYml(PROJECT, [{ name: 'staging', compose: ['compose.yml'], extra: ['variables:', '  DB_PASSWORD: Tr0ub4dorAnd3'] }]);
const compose = (image: string) => ['services:', '  web:', `    image: ${image}`, '    environment:', '      PW: ${DB_PASSWORD}', ''].join('\n');

describeDocker("security: /apply refuses a plan comment someone else edited (item 1)", () => {
  let app: App;
  const applies = () => app.ts.store.listApplies({ repo: REPO });
  const planComment = () => app.berthComments(1)[0]!;

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { alice: 'write', mallory: 'write' }, logLevel: 'warn' });
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': compose('berth-test/app:1') });
    app.fake.setFiles(REPO, HEAD, { '.github/berth.yml': CONFIG, 'compose.yml': compose('berth-test/app:2') });
    app.fake.setPull(REPO, 1, { headSha: HEAD, author: 'mallory' });
    expect(await app.open(1, HEAD)).toBe(200);
    expect(planComment().body).toContain('berth-test/app:2');
  }, 60_000);

  afterAll(async () => {
    await app?.cleanup();
    await app?.close();
  });

  it('a plan comment a writer edited before the command is refused, and nothing is applied', async () => {
    const real = planComment();
    await nextGitHubSecond();
    app.fake.editComment(REPO, real.id, real.body.replaceAll('berth-test/app:2', 'berth-test/app:1'));
    await app.say(1, '/apply staging', 'alice');
    const reply = app.lastReply(1);
    expect(reply).toContain("not what berth wrote");
    expect(reply).toContain('edited by someone else');
    expect(await applies()).toEqual([]);
    // berth writes its plan again; the edit is gone
    await app.say(1, '/plan staging', 'mallory');
    expect(planComment().body).toContain('berth-test/app:2');
  });

  it('an edit undone after the command was written is refused too (the commenter read the edited text)', async () => {
    const real = planComment();
    await nextGitHubSecond();
    app.fake.editComment(REPO, real.id, real.body.replaceAll('berth-test/app:2', 'berth-test/app:1'));
    await nextGitHubSecond();
    const c = app.fake.addComment(REPO, 1, '/apply staging', { user: 'alice' });
    await nextGitHubSecond();
    app.fake.editComment(REPO, real.id, real.body);
    expect(await app.deliver('issue_comment', commentOnPullEvent({ repo: REPO, pr: 1, comment: { id: c.id, body: c.body, user: 'alice', createdAt: c.createdAt, updatedAt: c.updatedAt } }))).toBe(200);
    expect(app.lastReply(1)).toContain('was edited at');
    expect(await applies()).toEqual([]);
    await app.say(1, '/plan staging', 'mallory');
  });

  it('a plan comment as berth wrote it applies', async () => {
    await app.say(1, '/apply staging', 'alice');
    await app.drain();
    const all = await applies();
    expect(all).toHaveLength(1);
    expect(all[0]).toMatchObject({ state: 'completed', headSha: HEAD });
  }, 60_000);
});
