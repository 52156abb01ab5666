// Issue 10, item 8: staging-first is met only by an apply of THIS pull request
// (its current head, or an earlier head of it with the same staging state),
// never by another PR's apply that happens to leave staging in the same state.
// Through the whole app, with real applies on dockerd.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';

const REPO = 'acme/sec-staging-first';
const PROJECT = 't-sec-8';
const [HEAD_1, HEAD_2, HEAD_2B] = [sha('1'), sha('2'), sha('3')];

const CONFIG = berthYml(PROJECT, [
  { name: 'staging', compose: ['compose.yml'] },
  { name: 'production', compose: ['compose.yml', 'compose.production.yml'], extra: ['requires: [staging]'] },
]);
const COMPOSE = ['services:', '  web:', '    image: berth-test/app:1', ''].join('\n');
const production = (tier: string) => ['services:', '  web:', '    labels:', `      tier: "${tier}"`, ''].join('\n');
const files = (tier: string) => ({ '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE, 'compose.production.yml': production(tier) });

describeDocker('security: staging-first is per pull request (issue 10, item 8)', () => {
  let app: App;
  const productionApplies = () => app.ts.store.listApplies({ repo: REPO, environment: 'production' });

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { alice: 'write', carol: 'write' }, logLevel: 'warn' });
    app.fake.setFiles(REPO, 'main', files('main'));
    app.fake.setFiles(REPO, HEAD_1, files('main'));
    // PR 2 changes only production's input: its staging state is PR 1's.
    app.fake.setFiles(REPO, HEAD_2, files('gold'));
    app.fake.setFiles(REPO, HEAD_2B, files('platinum'));
    app.fake.setPull(REPO, 1, { headSha: HEAD_1, author: 'alice' });
    app.fake.setPull(REPO, 2, { headSha: HEAD_2, author: 'carol' });
    expect(await app.open(1, HEAD_1)).toBe(200);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
  });

  it("another PR's completed staging apply of the same staging state does not let this PR into production", async () => {
    await app.say(1, '/apply staging');
    await app.drain();
    expect(await app.ts.store.latestApply(REPO, 'staging')).toMatchObject({ pr: 1, state: 'completed' });
    await app.say(1, '/unlock staging'); // PR 1 is done with staging
    expect(await app.open(2, HEAD_2)).toBe(200);
    expect(app.berthComments(2)[0]!.body).toMatch(/staging[\s\S]*No changes/);

    await app.say(2, '/apply production', 'carol');
    const reply = app.lastReply(2);
    expect(reply).toContain('### 🚫 Staging first');
    expect(reply).toContain('`staging`');
    expect(reply).toContain('#2');
    expect(reply).toContain('`2222222`');
    expect(reply).toContain('`/apply staging`');
    expect(await productionApplies()).toEqual([]);
  }, 60_000);

  it("this PR's own staging apply, even of an earlier head with the same staging state, lets it into production", async () => {
    await app.say(2, '/apply staging', 'carol');
    await app.drain();
    expect(await app.ts.store.latestApply(REPO, 'staging')).toMatchObject({ pr: 2, headSha: HEAD_2, state: 'completed' });

    // A push that changes production's input again: staging's state is still the one PR 2 applied.
    app.fake.setPull(REPO, 2, { headSha: HEAD_2B });
    expect(await app.open(2, HEAD_2B, 'synchronize')).toBe(200);
    await app.say(2, '/apply production', 'carol');
    await app.drain();
    const [p] = await productionApplies();
    expect(p).toMatchObject({ pr: 2, headSha: HEAD_2B, state: 'completed' });
  }, 60_000);
});
