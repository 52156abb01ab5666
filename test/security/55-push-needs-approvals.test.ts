// `apply_on: push` on an environment that needs approvals: a push to the
// default branch carries no review berth can count (a direct push has none;
// a PR's merge pushes whatever its last head was, approved or not — GitHub
// keeps stale approvals by default), so it applies nothing and says why,
// rather than skipping the rule: every merge of an unapproved head had applied
// an `approvals: 1` production through the push it makes.
// Through the whole app, with real applies on dockerd.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';
import { pushEvent } from '../helpers/push-event.js';

const REPO = 'acme/sec-push-approvals';
const PROJECT = 't-sec-55';
const PUSHED = sha('5');
const CONFIG = berthYml(PROJECT, [{ name: 'production', compose: ['compose.yml'], extra: ['apply_on: push', 'approvals: 1'] }]);
const files = { '.github/berth.yml': CONFIG, 'compose.yml': ['services:', '  web:', '    image: berth-test/app:1', ''].join('\n') };

describeDocker('security: apply_on: push cannot skip the approvals an environment needs', () => {
  let app: App;
  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { alice: 'write' }, logLevel: 'warn' });
    for (const ref of ['main', PUSHED]) app.fake.setFiles(REPO, ref, files);
  }, 60_000);
  afterAll(async () => {
    await app?.close();
  });

  it('a push (a merge of an unapproved head included) to the default branch applies nothing, and its check says why', async () => {
    const push = pushEvent({ id: 5, name: 'sec-push-approvals', full_name: REPO, default_branch: 'main', owner: { login: 'acme', name: 'acme' } }, PUSHED);
    expect(await app.deliver('push', push)).toBe(200);
    await app.drain();
    expect(await app.ts.store.listApplies({ repo: REPO, environment: 'production' })).toEqual([]);
    expect(await app.containers()).toEqual([]);
    expect(app.check(PUSHED, 'berth / production')).toMatchObject({ conclusion: 'failure' });
  }, 60_000);
});
