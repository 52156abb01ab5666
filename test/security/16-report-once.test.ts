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
import { removeProject } from '../helpers/docker.js';
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

// The gap between an apply's end and its report: a replica is SIGKILLed after
// the apply reached its terminal state and before its report was claimed
// (it waits for a progress update GitHub never answers). Two new replicas on
// the same store race their recovery passes: the ended apply is reported
// once — one final check-run update, one outcome comment, one final
// deployment status — by exactly one of them.
const CRASH_REPO = 'acme/orphan';
const CRASH_HEAD = 'f'.repeat(40);
const CRASH_PROJECT = `t-sec-16k-${process.pid}`;

describeDocker('security 16: an apply whose process died before its report is reported once by recovery', () => {
  let fake: FakeGitHub;
  let proxy: HoldingProxy;
  let ts: TestStore;
  const replicas: Replica[] = [];

  beforeAll(async () => {
    fake = await startFakeGitHub({ appKey: appKeys().publicKey, appId: APP_ID, appSlug: 'berth' });
    fake.setRepo(CRASH_REPO, { defaultBranch: 'main' });
    const config = [`project: ${CRASH_PROJECT}`, 'environments:', '  - name: prod', '    compose: [compose.yml]', '    targets: [local]', ''].join('\n');
    const files = { '.github/berth.yml': config, 'compose.yml': 'services:\n  web:\n    image: berth-test/app:1\n' };
    fake.setFiles(CRASH_REPO, 'main', files);
    fake.setFiles(CRASH_REPO, CRASH_HEAD, files);
    fake.setPermission(CRASH_REPO, 'alice', 'write');
    fake.setPull(CRASH_REPO, 1, { headSha: CRASH_HEAD, author: 'alice', mergeable: true });
    proxy = await new HoldingProxy(fake.url).start();
    ts = await sqliteTestStore();
  }, 60_000);

  afterAll(async () => {
    for (const r of replicas) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.exited));
    await proxy?.close();
    await fake?.close();
    await ts?.dispose();
    await removeProject(CRASH_PROJECT);
  });

  it('killed between the end and the claim: two recovering replicas, one report', async () => {
    // Short leases: the dead replica's lapse soon after it dies.
    const lease = { BERTH_LEASE_TTL_MS: '1000', BERTH_RECOVER_INTERVAL_MS: '1000' };
    const a = await startReplica({ databaseUrl: ts.url, githubUrl: proxy.url, env: lease });
    replicas.push(a);
    expect(await a.deliver('pull_request', pullRequestEvent({ repo: CRASH_REPO, pr: 1, action: 'opened', headSha: CRASH_HEAD }))).toBe(200);
    await a.idle();
    await nextGitHubSecond();
    // Progress updates never get through: the apply ends, and its reporter waits for the last one before claiming.
    const progress = proxy.hold(/^PATCH \/repos\/acme\/orphan\/check-runs\/\d+ .*"in_progress"/);
    const body = '/apply prod';
    const c = fake.addComment(CRASH_REPO, 1, body, { user: 'alice' });
    expect(await a.deliver('issue_comment', commentOnPullEvent({ repo: CRASH_REPO, pr: 1, comment: { id: c.id, body, user: 'alice' } }))).toBe(200);
    await a.idle();
    const apply = (await until('the apply to end', async () => (await ts.store.listApplies({ repo: CRASH_REPO })).find((x) => x.state === 'completed'), 60_000))!;
    expect(progress.held).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 300));
    a.child.kill('SIGKILL');
    await a.exited;
    // Dead before the claim: nothing of the outcome reached GitHub.
    const outcomes = () => fake.comments(CRASH_REPO, 1).filter((x) => x.user.endsWith('[bot]') && x.body.includes('Apply to `prod` completed'));
    const run = () => fake.checkRuns(CRASH_REPO, CRASH_HEAD).filter((r) => r.externalId === apply.id);
    const finals = () => run().flatMap((r) => r.writes.slice(1).filter((w) => w.status === 'completed'));
    const ends = () => fake.deployments(CRASH_REPO, 'prod').flatMap((d) => d.statuses.filter((x) => x.state === 'success'));
    expect(outcomes()).toHaveLength(0);
    expect(finals()).toHaveLength(0);
    expect(ends()).toHaveLength(0);
    expect(run()).toHaveLength(1);
    expect((await ts.store.getApply(apply.id))!.state).toBe('completed');
    expect((await ts.store.listUnreportedApplies()).map((x) => x.id)).toEqual([apply.id]);

    // Two replicas start at once on the same store: both recovery passes see the unreported apply.
    const [b, c2] = await Promise.all([startReplica({ databaseUrl: ts.url, githubUrl: fake.url, env: lease }), startReplica({ databaseUrl: ts.url, githubUrl: fake.url, env: lease })]);
    replicas.push(b, c2);
    await until('the outcome to be reported', () => outcomes().length >= 1 && finals().length >= 1 && ends().length >= 1, 30_000);
    await new Promise((r) => setTimeout(r, 3000)); // a few more recovery passes on both: a duplicate would show now
    expect(outcomes()).toHaveLength(1);
    expect(finals()).toHaveLength(1);
    expect(finals()[0]).toMatchObject({ status: 'completed', conclusion: 'success' });
    expect(run()).toHaveLength(1);
    expect(ends()).toHaveLength(1);
    // The lock no longer points at the ended apply.
    expect((await ts.store.getLock(CRASH_REPO, 'prod'))?.applyId ?? null).toBeNull();
  }, 180_000);
});
