// Issue 10, item 6: `approvals: N` counts only what GitHub itself would count
// as an approval of what is about to be applied — the latest review of each
// reviewer, APPROVED, of the current head, by someone with write access (or
// among the environment's appliers), never the author — and a GitHub error
// while checking refuses. Through the whole app: signed webhooks, the
// spec-validating fake GitHub, the real dockerd.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';

const REPO = 'acme/sec-approvals';
const PROJECT = 't-sec-6';
const [HEAD_A, HEAD_B] = [sha('a'), sha('b')];

const CONFIG = berthYml(PROJECT, [{ name: 'staging', compose: ['compose.yml'], extra: ['approvals: 1', 'appliers:', '  teams: [release]'] }]);
const compose = (label: string) => ['services:', '  web:', '    image: berth-test/app:1', '    labels:', `      rev: "${label}"`, ''].join('\n');

describeDocker('security: approvals (issue 10, item 6)', () => {
  let app: App;
  const refusals = () => app.berthComments(1).filter((c) => c.body.includes('Apply requirement not met'));

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { alice: 'write', bob: 'write', mallory: 'read', dave: 'read' }, logLevel: 'warn' });
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': compose('main') });
    app.fake.setFiles(REPO, HEAD_A, { '.github/berth.yml': CONFIG, 'compose.yml': compose('a') });
    app.fake.setFiles(REPO, HEAD_B, { '.github/berth.yml': CONFIG, 'compose.yml': compose('b') });
    app.fake.setPull(REPO, 1, { headSha: HEAD_A, author: 'alice' });
    expect(await app.open(1, HEAD_A)).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
  });

  async function refusedWith(...needles: string[]) {
    const before = refusals().length;
    await app.say(1, '/apply staging');
    expect(refusals()).toHaveLength(before + 1);
    const reply = app.lastReply(1);
    for (const n of needles) expect(reply).toContain(n);
    expect(await app.ts.store.listApplies({ repo: REPO })).toEqual([]);
    return reply;
  }

  it('an approval from an account without write access does not count', async () => {
    app.fake.addReview(REPO, 1, { user: 'mallory', state: 'APPROVED' });
    await refusedWith('needs 1 approving review', 'has 0', '@mallory', 'no write access');
  });

  it("the author's own approval does not count", async () => {
    app.fake.addReview(REPO, 1, { user: 'alice', state: 'APPROVED' });
    await refusedWith('has 0');
  });

  it('an approval of an older head does not count after a push', async () => {
    app.fake.addReview(REPO, 1, { user: 'bob', state: 'APPROVED' }); // of HEAD_A
    app.fake.setPull(REPO, 1, { headSha: HEAD_B });
    expect(await app.open(1, HEAD_B, 'synchronize')).toBe(200);
    await refusedWith('has 0', '@bob', '`aaaaaaa`', '`bbbbbbb`');
  });

  it('a later CHANGES_REQUESTED or DISMISSED of the same reviewer cancels the approval', async () => {
    app.fake.addReview(REPO, 1, { user: 'bob', state: 'APPROVED' }); // of HEAD_B
    app.fake.addReview(REPO, 1, { user: 'bob', state: 'CHANGES_REQUESTED' });
    await refusedWith('has 0');
    app.fake.addReview(REPO, 1, { user: 'bob', state: 'APPROVED' });
    app.fake.addReview(REPO, 1, { user: 'bob', state: 'DISMISSED' });
    await refusedWith('has 0');
  });

  it('a GitHub error while checking a reviewer refuses (fail closed)', async () => {
    // dave has read access: whether he is among the appliers is asked of the team, which fails.
    app.fake.addReview(REPO, 1, { user: 'dave', state: 'APPROVED' });
    // The app lacks the members permission: GitHub answers 403 (not retried).
    app.fake.fail('teams/get-membership-for-user-in-org', { status: 403, message: 'Resource not accessible by integration' });
    await refusedWith('checking the requirements failed', 'Resource not accessible by integration');
  });

  it("an approval of the current head by an environment's applier (team member) counts, and the apply runs", async () => {
    app.fake.setTeamMembership('acme', 'release', 'dave', { state: 'active' });
    await app.say(1, '/apply staging');
    await app.drain();
    const applies = await app.ts.store.listApplies({ repo: REPO });
    expect(applies).toHaveLength(1);
    expect(applies[0]).toMatchObject({ state: 'completed', headSha: HEAD_B });
    expect(app.berthComments(1).some((c) => /Applying `staging` at `bbbbbbb`/.test(c.body))).toBe(true);
  }, 60_000);
});
