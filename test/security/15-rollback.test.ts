// Issue 10, item 15: `/rollback` is an apply like any other. The state it goes
// back to is rebuilt from that apply's commit under TODAY's default-branch
// configuration and policy (a policy tightened since refuses it, with the
// located policy error), its plan is posted — masked like every plan — before
// anything runs, and it passes the same authorisation, freshness and lock
// gates as `/apply`. Through the whole app, with real applies on dockerd.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';

const REPO = 'acme/sec-rollback';
const PROJECT = 't-sec-15';
const [HEAD_1, HEAD_2] = [sha('e'), sha('f')];
const SECRET = 'rollback-s3cret-value';

const config = (policy: string[]) => berthYml(PROJECT, [{ name: 'staging', compose: ['compose.yml'], extra: ['variables:', `  DB_PASSWORD: ${SECRET}`] }], policy);
// PR 1 runs with NET_ADMIN (allowed by the policy of its day); PR 2 drops it.
const COMPOSE_1 = ['services:', '  web:', '    image: berth-test/app:1', '    cap_add: [NET_ADMIN]', '    environment:', '      DB_PASSWORD: ${DB_PASSWORD}', ''].join('\n');
const COMPOSE_2 = ['services:', '  web:', '    image: berth-test/app:2', '    environment:', '      DB_PASSWORD: ${DB_PASSWORD}', ''].join('\n');
const LOOSE = config(['allow_cap_add: [NET_ADMIN]']);
const TIGHT = config([]);

describeDocker('security: /rollback passes today’s policy and shows its plan first (issue 10, item 15)', () => {
  let app: App;
  const applies = () => app.ts.store.listApplies({ repo: REPO });

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { alice: 'write', mallory: 'read' }, logLevel: 'warn' });
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': LOOSE, 'compose.yml': COMPOSE_1 });
    app.fake.setFiles(REPO, HEAD_1, { '.github/berth.yml': LOOSE, 'compose.yml': COMPOSE_1 });
    app.fake.setFiles(REPO, HEAD_2, { '.github/berth.yml': LOOSE, 'compose.yml': COMPOSE_2 });
    app.fake.setPull(REPO, 1, { headSha: HEAD_1, author: 'alice' });
    app.fake.setPull(REPO, 2, { headSha: HEAD_2, author: 'alice' });
    expect(await app.open(1, HEAD_1)).toBe(200);
    await app.say(1, '/apply staging');
    await app.drain();
    await app.say(1, '/unlock staging');
    expect(await app.open(2, HEAD_2)).toBe(200);
    await app.say(2, '/apply staging');
    await app.drain();
    expect((await applies()).map((a) => [a.pr, a.state])).toEqual([
      [2, 'completed'],
      [1, 'completed'],
    ]);
  }, 90_000);

  afterAll(async () => {
    await app?.close();
  });

  it('a rollback to a state that today’s policy denies is refused with the located policy error; nothing runs', async () => {
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': TIGHT, 'compose.yml': COMPOSE_2 });
    await app.say(2, '/rollback staging');
    const reply = app.lastReply(2);
    expect(reply).toContain('cap_add');
    expect(reply).toContain('NET_ADMIN');
    expect(reply).toContain('compose.yml');
    expect(reply).toMatch(/line 4\b/);
    expect(reply).toContain('allow_cap_add');
    expect(reply).not.toContain(SECRET);
    expect(await applies()).toHaveLength(2);
    const [c] = await app.containers();
    expect(c!.Image).toMatch(/(^|\/)berth-test\/app:2$/);
  });

  it('someone without write access cannot roll back', async () => {
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': LOOSE, 'compose.yml': COMPOSE_2 });
    await app.say(2, '/rollback staging', 'mallory');
    expect(app.lastReply(2)).toContain('### 🚫 Not authorised');
    expect(await applies()).toHaveLength(2);
  });

  it('an allowed rollback posts its plan (masked) before it runs, then applies it', async () => {
    const before = app.berthComments(2).length;
    await app.say(2, '/rollback staging');
    await app.drain();
    const posted = app.berthComments(2).slice(before);
    const planAt = posted.findIndex((c) => c.body.includes('Rollback plan for `staging`'));
    const startedAt = posted.findIndex((c) => /Applying `staging`/.test(c.body));
    expect(planAt).toBeGreaterThanOrEqual(0);
    expect(startedAt).toBeGreaterThan(planAt);
    const plan = posted[planAt]!.body;
    expect(plan).toContain('berth-test/app:1');
    expect(plan).toContain('NET_ADMIN');
    expect(plan).toContain('`eeeeeee`');
    for (const c of posted) expect(c.body).not.toContain(SECRET);
    const [latest] = await applies();
    expect(latest).toMatchObject({ kind: 'rollback', state: 'completed', pr: 2 });
    const [c] = await app.containers();
    expect(c!.Image).toMatch(/(^|\/)berth-test\/app:1$/);
  }, 60_000);
});
