// Black-box QA round (2026-12-06): a berth process killed while it handles an
// `/apply` leaves the comment's delivery unfinished, and the next start runs it
// again (durable deliveries). The apply the command made was recovered and
// reported; the command's second run then answered "the plan is out of date —
// comment /apply again" (the host had moved: the apply was changing it), or, on
// an environment that already matched, made a second apply and a second
// outcome. An apply records the comment whose command made it; the command's
// delivery run again (a restart, or GitHub's Redeliver) finds it and adds
// nothing. Nor did that apply become a GitHub deployment: what to create was
// stored only after the start comment; it is stored before the start report.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Replica } from '../helpers/app-process.js';
import { appKeys, APP_ID, HoldingProxy, startReplica, until } from '../helpers/app-process.js';
import { describeDocker } from '../helpers/env.js';
import { removeProject } from '../helpers/docker.js';
import type { FakeGitHub } from '../helpers/fake-github.js';
import { commentOnPullEvent, nextGitHubSecond, pullRequestEvent, startFakeGitHub } from '../helpers/fake-github.js';
import { sqliteTestStore } from '../helpers/stores.js';
import type { TestStore } from '../helpers/stores.js';

const REPO = 'acme/resumed';
const PROJECT = 't-sec-47';
const HEAD = 'f'.repeat(40);
const CONFIG = [`project: ${PROJECT}`, 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', ''].join('\n');
const COMPOSE = ['services:', '  web:', '    image: berth-test/app:1', '    command: ["sleep", "600"]', ''].join('\n');
const FAST = { BERTH_RECOVER_INTERVAL_MS: '500', BERTH_LEASE_TTL_MS: '2000' };

describeDocker('security 47: a command whose delivery runs again adds nothing to the apply it made', () => {
  let fake: FakeGitHub;
  let proxy: HoldingProxy;
  let ts: TestStore;
  let first: Replica | undefined;
  let second: Replica | undefined;

  beforeAll(async () => {
    await removeProject(PROJECT);
    fake = await startFakeGitHub({ appKey: appKeys().publicKey, appId: APP_ID, appSlug: 'berth' });
    fake.setRepo(REPO, { defaultBranch: 'main' });
    const files = { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE };
    fake.setFiles(REPO, 'main', files);
    fake.setFiles(REPO, HEAD, files);
    fake.setPermission(REPO, 'alice', 'write');
    fake.setPull(REPO, 1, { headSha: HEAD, author: 'alice', mergeable: true });
    proxy = await new HoldingProxy(fake.url).start();
    ts = await sqliteTestStore();
  }, 60_000);

  afterAll(async () => {
    for (const r of [first, second]) if (r && r.child.exitCode === null) r.child.kill('SIGTERM');
    await first?.exited;
    await second?.exited;
    await proxy?.close();
    await fake?.close();
    await ts?.dispose();
    await removeProject(PROJECT);
  });

  it('killed while reporting its /apply, the next start resumes the delivery: one apply, one outcome, no "out of date"', async () => {
    first = await startReplica({ databaseUrl: ts.url, githubUrl: proxy.url, env: FAST });
    expect(await first.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'opened', headSha: HEAD }))).toBe(200);
    await first.idle();
    await nextGitHubSecond();
    // The start comment is held: the process is killed while it handles the command, its apply stored.
    const held = proxy.hold(/^POST \/repos\/acme\/resumed\/issues\/1\/comments .*Applying/);
    const c = fake.addComment(REPO, 1, '/apply staging', { user: 'alice' });
    const event = commentOnPullEvent({ repo: REPO, pr: 1, comment: { id: c.id, body: '/apply staging', user: 'alice', createdAt: c.createdAt, updatedAt: c.updatedAt } });
    expect(await first.deliver('issue_comment', event)).toBe(200);
    await until('the start comment held', () => held.held > 0);
    expect((await ts.store.listApplies({ repo: REPO })).length).toBe(1);
    first.child.kill('SIGKILL');
    await first.exited;
    held.release();

    second = await startReplica({ databaseUrl: ts.url, githubUrl: proxy.url, env: FAST });
    await until('the apply recovered and completed', async () => (await ts.store.latestApply(REPO, 'staging'))?.state === 'completed');
    await until('the delivery resumed and finished', async () => (await ts.store.pendingDeliveries(10)).length === 0);
    await second.idle();
    // GitHub's "Redeliver" of the same comment, under a new delivery id: nothing more either.
    expect(await second.deliver('issue_comment', event)).toBe(200);
    await second.idle();
    await until('the outcome reported', () => fake.comments(REPO, 1).some((x) => /applied|completed/i.test(x.body) && !/Applying/.test(x.body)));

    expect((await ts.store.listApplies({ repo: REPO })).length).toBe(1);
    const bodies = fake.comments(REPO, 1).map((x) => x.body);
    expect(bodies.filter((b) => /out of date/.test(b))).toEqual([]);
    expect(bodies.filter((b) => /already matches/.test(b))).toEqual([]);
    // one start comment at most (it was held when the process died), one outcome
    expect(bodies.filter((b) => /Applying/.test(b)).length).toBeLessThanOrEqual(1);
    // the apply is a GitHub deployment all the same: stored before the start report, created by the final one
    await until('the deployment reported', () => fake.deployments(REPO, 'staging').some((d) => d.statuses.some((st) => st.state === 'success')));
    expect(fake.deployments(REPO, 'staging')).toHaveLength(1);
  }, 120_000);
});
