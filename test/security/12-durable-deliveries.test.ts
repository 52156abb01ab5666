// Issue 10, item 12: webhook work is not lost on restart. A real berth
// process is frozen in the middle of an `/unlock` (its GitHub permission
// check held by a proxy), then stopped with SIGTERM or killed with SIGKILL.
// The work must end up done exactly once: drained on SIGTERM, and after a
// SIGKILL run again by the next process (at start, or on GitHub's
// redelivery) — only a delivery whose work is done is a duplicate.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import type { Replica } from '../helpers/app-process.js';
import { appKeys, APP_ID, HoldingProxy, startReplica, until } from '../helpers/app-process.js';
import type { FakeGitHub } from '../helpers/fake-github.js';
import { commentOnPullEvent, startFakeGitHub } from '../helpers/fake-github.js';
import { sqliteTestStore } from '../helpers/stores.js';
import type { TestStore } from '../helpers/stores.js';

const REPO = 'acme/durable';
const CONFIG = ['project: t-sec-12', 'environments:', ...['staging', 'qa', 'production'].flatMap((e) => [`  - name: ${e}`, '    compose: [compose.yml]', '    targets: [local]']), ''].join('\n');

describe('security 12: webhook deliveries are durable work items', () => {
  let fake: FakeGitHub;
  let proxy: HoldingProxy;
  let ts: TestStore;
  let store: Store;
  const replicas: Replica[] = [];

  beforeAll(async () => {
    fake = await startFakeGitHub({ appKey: appKeys().publicKey, appId: APP_ID, appSlug: 'berth' });
    fake.setRepo(REPO, { defaultBranch: 'main' });
    fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': 'services: {}\n' });
    for (const u of ['alice', 'bob', 'carol']) fake.setPermission(REPO, u, 'write');
    for (const pr of [1, 2, 3]) fake.setPull(REPO, pr, { headSha: String(pr).repeat(40), author: 'alice' });
    proxy = await new HoldingProxy(fake.url).start();
    ts = await sqliteTestStore();
    store = ts.store;
  }, 60_000);

  afterAll(async () => {
    for (const r of replicas) if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    await Promise.all(replicas.map((r) => r.exited));
    await proxy?.close();
    await fake?.close();
    await ts?.dispose();
  });

  const replica = async (env: Record<string, string> = {}) => {
    const r = await startReplica({ databaseUrl: ts.url, githubUrl: proxy.url, env: { BERTH_LEASE_TTL_MS: '1500', BERTH_RECOVER_INTERVAL_MS: '1000', ...env } });
    replicas.push(r);
    return r;
  };
  /** Every comment berth wrote on the PR: a second run of the same /unlock would add one ("holds no lock"). */
  const unlockReplies = (pr: number) => {
    const mine = fake.comments(REPO, pr).filter((c) => c.user.endsWith('[bot]'));
    if (mine.length) expect(mine[0]!.body).toContain('Unlocked');
    return mine;
  };

  /** `/unlock <env>` by `user` on `pr` (which holds that lock), frozen at its permission check. */
  async function frozenUnlock(r: Replica, pr: number, env: string, user: string) {
    expect((await store.acquireLock(REPO, env, `${REPO}#${pr}`, pr)).acquired).toBe(true);
    const hold = proxy.hold(new RegExp(`/collaborators/${user}/permission`));
    const body = `/unlock ${env}`;
    const comment = fake.addComment(REPO, pr, body, { user });
    const payload = commentOnPullEvent({ repo: REPO, pr, comment: { id: comment.id, body, user } });
    const delivery = crypto.randomUUID();
    expect(await r.deliver('issue_comment', payload, delivery)).toBe(200);
    await until('the handler to reach its permission check', () => hold.held > 0);
    return { hold, payload, delivery };
  }

  /** A replica killed (SIGKILL) while frozen in the middle of that /unlock: nothing of the work was done. */
  async function killedMidUnlock(pr: number, env: string, user: string) {
    const a = await replica();
    const frozen = await frozenUnlock(a, pr, env, user);
    a.child.kill('SIGKILL');
    await a.exited;
    frozen.hold.release();
    expect(await store.getLock(REPO, env)).toBeDefined();
    expect(unlockReplies(pr)).toHaveLength(0);
    return frozen;
  }

  /** Stops a replica the graceful way: it must drain and exit 0. */
  async function stop(r: Replica) {
    r.child.kill('SIGTERM');
    expect(await r.exited).toBe(0);
  }

  it('SIGTERM drains queued webhook work before exiting; a redelivery afterwards is a duplicate', async () => {
    const a = await replica();
    const { hold, payload, delivery } = await frozenUnlock(a, 1, 'staging', 'alice');
    a.child.kill('SIGTERM');
    await until('the replica to get the signal', () => a.output().includes('sigterm'));
    hold.release();
    expect(await a.exited).toBe(0);
    // The work was finished by the draining process, not dropped.
    expect(await store.getLock(REPO, 'staging')).toBeUndefined();
    expect(unlockReplies(1)).toHaveLength(1);

    const b = await replica();
    expect(await b.deliver('issue_comment', payload, delivery)).toBe(200);
    await b.idle();
    expect(unlockReplies(1)).toHaveLength(1);
    await stop(b);
  }, 120_000);

  it('SIGKILL mid-work: the redelivery of the unfinished delivery is processed, once', async () => {
    const { payload, delivery } = await killedMidUnlock(2, 'qa', 'bob');

    // No resumption at start here: only GitHub's redelivery can bring the work back.
    const b = await replica({ BERTH_TEST_RECOVER: '0' });
    // The dead process's claim lapses (its lease TTL) and the redelivery is taken as the work it is.
    await until('the dead claim to lapse', async () => (await store.pendingDeliveries()).some((d) => d.deliveryId === delivery));
    expect(await b.deliver('issue_comment', payload, delivery)).toBe(200);
    await b.idle();
    expect(await store.getLock(REPO, 'qa')).toBeUndefined();
    expect(unlockReplies(2)).toHaveLength(1);
    // Done now: one more redelivery is the duplicate.
    expect(await b.deliver('issue_comment', payload, delivery)).toBe(200);
    await b.idle();
    expect(unlockReplies(2)).toHaveLength(1);
    await stop(b);
  }, 120_000);

  it('SIGKILL mid-work: the next process runs the unfinished delivery at start, once, with no redelivery', async () => {
    const { delivery } = await killedMidUnlock(3, 'production', 'carol');

    const b = await replica();
    await until('the restarted replica to finish the work', async () => (await store.getLock(REPO, 'production')) === undefined && unlockReplies(3).length > 0);
    await b.idle();
    expect((await store.pendingDeliveries()).map((d) => d.deliveryId)).not.toContain(delivery);
    expect(unlockReplies(3)).toHaveLength(1);
    await stop(b);
    // A second restart finds nothing left to do.
    const c = await replica();
    await c.idle();
    expect(unlockReplies(3)).toHaveLength(1);
    await stop(c);
  }, 120_000);
});
