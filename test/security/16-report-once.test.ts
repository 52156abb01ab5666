// Issue 10, item 16: each apply's outcome is reported exactly once. A real
// berth process with a short recovery interval (every second) applies 20
// environments through the app while GitHub is slow to create the apply's
// check run — longer than the recovery interval, so a recovery pass always
// runs while the bot has stored the apply but not yet started it. Every apply
// must get exactly one final check-run update and one outcome comment.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Replica } from '../helpers/app-process.js';
import { appKeys, APP_ID, HoldingProxy, startReplica, until } from '../helpers/app-process.js';
import { describeDocker } from '../helpers/env.js';
import type { FakeGitHub } from '../helpers/fake-github.js';
import { commentOnPullEvent, nextGitHubSecond, pullRequestEvent, startFakeGitHub } from '../helpers/fake-github.js';
import { sqliteTestStore } from '../helpers/stores.js';
import type { TestStore } from '../helpers/stores.js';

const REPO = 'acme/once';
const HEAD = 'e'.repeat(40);
const ENVS = Array.from({ length: 20 }, (_, i) => `env${i}`);
// Environments with nothing to run: the apply is stored, started and ends at once, reported like any other.
const CONFIG = ['project: t-sec-16', 'environments:', ...ENVS.flatMap((e) => [`  - name: ${e}`, '    compose: [compose.yml]', '    targets: [local]']), ''].join('\n');

// Planning observes the Docker engine (read only: the environments run nothing).
describeDocker('security 16: every apply is reported exactly once, whatever recovers it', () => {
  let fake: FakeGitHub;
  let proxy: HoldingProxy;
  let ts: TestStore;
  let app: Replica;

  beforeAll(async () => {
    fake = await startFakeGitHub({ appKey: appKeys().publicKey, appId: APP_ID, appSlug: 'berth' });
    fake.setRepo(REPO, { defaultBranch: 'main' });
    const files = { '.github/berth.yml': CONFIG, 'compose.yml': 'services: {}\n' };
    fake.setFiles(REPO, 'main', files);
    fake.setFiles(REPO, HEAD, files);
    fake.setPermission(REPO, 'alice', 'write');
    fake.setPull(REPO, 1, { headSha: HEAD, author: 'alice', mergeable: true });
    proxy = await new HoldingProxy(fake.url).start();
    // The apply's in-progress check run takes longer than a recovery interval to create.
    proxy.delay(/^POST \/repos\/acme\/once\/check-runs .*"in_progress"/, 1500);
    ts = await sqliteTestStore();
    app = await startReplica({ databaseUrl: ts.url, githubUrl: proxy.url, env: { BERTH_RECOVER_INTERVAL_MS: '1000' } });
  }, 60_000);

  afterAll(async () => {
    if (app && app.child.exitCode === null) app.child.kill('SIGTERM');
    await app?.exited;
    await proxy?.close();
    await fake?.close();
    await ts?.dispose();
  });

  it('20 applies: one final check-run update and one outcome comment each', async () => {
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'opened', headSha: HEAD }))).toBe(200);
    await app.idle();
    // Written after the plan was posted (berth refuses a command from the same second as the plan it answers).
    await nextGitHubSecond();
    for (const env of ENVS) {
      const body = `/apply ${env}`;
      const c = fake.addComment(REPO, 1, body, { user: 'alice' });
      expect(await app.deliver('issue_comment', commentOnPullEvent({ repo: REPO, pr: 1, comment: { id: c.id, body, user: 'alice' } }))).toBe(200);
    }
    await app.idle();
    const ended = async () => (await ts.store.listApplies({ repo: REPO })).filter((a) => a.state === 'completed');
    await until('every apply to complete', async () => (await ended()).length === ENVS.length, 120_000);
    const applies = await ended();
    expect(applies.map((a) => a.environment).sort()).toEqual([...ENVS].sort());
    // Reports follow the end; wait until each apply has at least one, then for the app to settle (a recovery pass or two).
    const outcomes = (env: string) => fake.comments(REPO, 1).filter((c) => c.user.endsWith('[bot]') && c.body.includes(`Apply to \`${env}\``));
    const finals = (applyId: string) => {
      const runs = fake.checkRuns(REPO, HEAD).filter((r) => r.externalId === applyId);
      return runs.flatMap((r) => r.writes.slice(1).filter((w) => w.status === 'completed'));
    };
    await until('every outcome to be reported', () => applies.every((a) => outcomes(a.environment).length >= 1 && finals(a.id).length >= 1), 60_000);
    await new Promise((r) => setTimeout(r, 2500)); // two more recovery passes: a late duplicate would show now
    await app.idle();
    const counts = applies.map((a) => ({ env: a.environment, checkRuns: fake.checkRuns(REPO, HEAD).filter((r) => r.externalId === a.id).length, finalUpdates: finals(a.id).length, outcomeComments: outcomes(a.environment).length }));
    expect(counts).toEqual(applies.map((a) => ({ env: a.environment, checkRuns: 1, finalUpdates: 1, outcomeComments: 1 })));
  }, 240_000);
});
