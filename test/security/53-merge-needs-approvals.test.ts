// `apply_on: merge` applies with the same requirements as `/apply`: an
// environment that needs `approvals: N` gets them from reviews of the PR's
// last head (by writers or appliers, not the author) — merging is no way
// around berth's own review rule. Without it a writer who may merge (no
// branch protection, or an admin bypassing it) applied production with zero
// approvals, though `/apply production` in the same PR was refused.
// Through the whole app, with real applies on dockerd.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';
import { pullRequestEvent } from '../helpers/fake-github.js';

const REPO = 'acme/sec-merge-approvals';
const PROJECT = 't-sec-53';
const [HEAD, HEAD_OLD, MERGE_1, MERGE_2] = [sha('1'), sha('0'), sha('2'), sha('3')];
const CONFIG = berthYml(PROJECT, [{ name: 'production', compose: ['compose.yml'], extra: ['apply_on: merge', 'approvals: 1', 'require: {mergeable: true}'] }]);
const files = { '.github/berth.yml': CONFIG, 'compose.yml': ['services:', '  web:', '    image: berth-test/app:1', ''].join('\n') };

describeDocker('security: apply_on: merge needs the approvals /apply needs', () => {
  let app: App;
  const merged = (pr: number, mergeSha: string) => {
    const e = pullRequestEvent({ repo: REPO, pr, action: 'closed', headSha: HEAD, merged: true }) as unknown as { pull_request: Record<string, unknown> & { base: Record<string, unknown> }; repository: Record<string, unknown> };
    e.repository.default_branch = 'main';
    e.pull_request.base.ref = 'main';
    e.pull_request.merge_commit_sha = mergeSha;
    e.pull_request.mergeable = null; // what GitHub says of a merged PR
    e.pull_request.merged_by = { login: 'alice', id: 1, type: 'User' };
    return e;
  };

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { alice: 'write', bob: 'write' }, logLevel: 'warn' });
    for (const ref of ['main', HEAD, HEAD_OLD, MERGE_1, MERGE_2]) app.fake.setFiles(REPO, ref, files);
  }, 60_000);
  afterAll(async () => {
    await app?.close();
  });

  it('a merge without an approval of the last head applies nothing, and says why', async () => {
    app.fake.setPull(REPO, 1, { headSha: HEAD, author: 'alice', state: 'closed', merged: true });
    app.fake.addReview(REPO, 1, { user: 'alice', state: 'APPROVED', commitId: HEAD }); // the author's own
    app.fake.addReview(REPO, 1, { user: 'bob', state: 'APPROVED', commitId: HEAD_OLD }); // of an earlier head
    expect(await app.deliver('pull_request', merged(1, MERGE_1))).toBe(200);
    await app.drain();
    expect(await app.ts.store.listApplies({ repo: REPO, environment: 'production' })).toEqual([]);
    expect(await app.containers()).toEqual([]);
    expect(app.check(MERGE_1, 'berth / production')).toMatchObject({ conclusion: 'failure' });
    expect(app.lastReply(1)).toContain('needs 1 approving review');
  }, 60_000);

  it('control: a merge whose last head a writer approved applies', async () => {
    app.fake.setPull(REPO, 2, { headSha: HEAD, author: 'alice', state: 'closed', merged: true });
    app.fake.addReview(REPO, 2, { user: 'bob', state: 'APPROVED', commitId: HEAD });
    expect(await app.deliver('pull_request', merged(2, MERGE_2))).toBe(200);
    await app.drain();
    expect(await app.ts.store.listApplies({ repo: REPO, environment: 'production' })).toMatchObject([{ pr: 2, headSha: MERGE_2, state: 'completed' }]);
  }, 60_000);
});
