// apply_on: merge applies the merge commit of a PR merged into the DEFAULT
// branch. Branch protection (required reviews, required `berth / <env>`
// checks) guards the default branch only: a PR merged into any other branch
// (one its author created, unprotected, merged without review) must not apply
// anything — otherwise merging into a side branch is a way around review.
// Through the whole app, with real applies on dockerd.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';
import { pullRequestEvent } from '../helpers/fake-github.js';

const REPO = 'acme/sec-merge-base';
const PROJECT = 't-sec-19';
const [HEAD, MERGE_SIDE, MERGE_MAIN] = [sha('1'), sha('2'), sha('3')];
const CONFIG = berthYml(PROJECT, [{ name: 'production', compose: ['compose.yml'], extra: ['apply_on: merge'] }]);
const files = { '.github/berth.yml': CONFIG, 'compose.yml': ['services:', '  web:', '    image: berth-test/app:1', ''].join('\n') };

describeDocker('security: apply_on: merge applies only merges into the default branch', () => {
  let app: App;
  const merged = (pr: number, base: string, mergeSha: string) => {
    const e = pullRequestEvent({ repo: REPO, pr, action: 'closed', headSha: HEAD, merged: true }) as unknown as { pull_request: Record<string, unknown> & { base: Record<string, unknown> }; repository: Record<string, unknown> };
    e.repository.default_branch = 'main';
    e.pull_request.base.ref = base;
    e.pull_request.merge_commit_sha = mergeSha;
    e.pull_request.merged_by = { login: 'alice', id: 1, type: 'User' };
    return e;
  };

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { alice: 'write' }, logLevel: 'warn' });
    for (const ref of ['main', HEAD, MERGE_SIDE, MERGE_MAIN]) app.fake.setFiles(REPO, ref, files);
  }, 60_000);
  afterAll(async () => {
    await app?.close();
  });

  it('a PR merged into a side branch applies nothing and reports nothing on its merge commit', async () => {
    app.fake.setPull(REPO, 1, { headSha: HEAD, author: 'alice', state: 'closed', merged: true });
    expect(await app.deliver('pull_request', merged(1, 'side', MERGE_SIDE))).toBe(200);
    await app.drain();
    expect(await app.ts.store.listApplies({ repo: REPO, environment: 'production' })).toEqual([]);
    expect(app.check(MERGE_SIDE, 'berth / production')).toBeUndefined();
    expect(await app.containers()).toEqual([]);
  }, 60_000);

  it('control: the same merge into the default branch applies', async () => {
    app.fake.setPull(REPO, 2, { headSha: HEAD, author: 'alice', state: 'closed', merged: true });
    expect(await app.deliver('pull_request', merged(2, 'main', MERGE_MAIN))).toBe(200);
    await app.drain();
    expect(await app.ts.store.listApplies({ repo: REPO, environment: 'production' })).toMatchObject([{ pr: 2, headSha: MERGE_MAIN, state: 'completed' }]);
  }, 60_000);
});
