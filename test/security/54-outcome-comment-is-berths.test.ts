// The outcome of an apply is berth's own comment. When posting it is retried
// (GitHub failed the first try, or a recovering replica sends it again), berth
// looks for the comment it may already have posted by the outcome's hidden
// marker — which names the apply id, shown in the start comment. Anyone who
// can comment could post that marker first: berth then wrote the outcome into
// the other person's comment (an app may edit any comment) and posted none
// of its own, so the outcome the thread shows was authored, and editable, by
// someone else ("✅ completed" over a failure). Only a comment berth wrote counts.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';

const REPO = 'acme/sec-outcome-owner';
const PROJECT = 't-sec-54';
const HEAD = sha('1');
const CONFIG = berthYml(PROJECT, [{ name: 'staging', compose: ['compose.yml'] }]);
const files = { '.github/berth.yml': CONFIG, 'compose.yml': ['services:', '  web:', '    image: berth-test/app:1', ''].join('\n') };

describeDocker("security: an apply's outcome is posted as berth's own comment", () => {
  let app: App;

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { alice: 'write', mallory: 'read' }, logLevel: 'warn' });
    for (const ref of ['main', HEAD]) app.fake.setFiles(REPO, ref, files);
    app.fake.setPull(REPO, 1, { headSha: HEAD, author: 'alice' });
    expect(await app.open(1, HEAD)).toBe(200);
  }, 60_000);
  afterAll(async () => {
    await app?.close();
  });

  it("a comment someone else wrote with the outcome's marker is never taken for berth's", async () => {
    await app.say(1, '/apply staging');
    const [apply] = await app.ts.store.listApplies({ repo: REPO, environment: 'staging' });
    expect(apply).toBeDefined();
    expect(app.lastReply(1)).toContain(apply!.id); // the start comment names the apply
    // mallory plants the marker, and the first try to post the outcome fails
    const planted = app.fake.addComment(REPO, 1, `<!-- berth:outcome:${apply!.id} -->\nlooks good`, { user: 'mallory' });
    app.fake.fail('issues/create-comment', { status: 502, message: 'Bad Gateway' }, { times: 4 }); // the client's own retries too
    await app.drain();
    expect((await app.ts.store.listApplies({ repo: REPO, environment: 'staging' }))[0]).toMatchObject({ state: 'completed' });
    expect(app.fake.comment(REPO, planted.id)!.body).toBe(`<!-- berth:outcome:${apply!.id} -->\nlooks good`);
    expect(app.berthComments(1).filter((c) => c.body.includes(`<!-- berth:outcome:${apply!.id} -->`))).toHaveLength(1);
  }, 60_000);
});
