// A delivery as big as GitHub sends them, on the store that holds the least
// (MariaDB's max_allowed_packet, 16 MiB by default): a push to the default
// branch whose `commits` list runs to 18 MiB (GitHub sends up to 2,048 commits,
// each with its added, removed and modified paths, in one payload of up to 25 MB)
// is stored for recovery and applied by apply_on: push, like any other push.
// The whole payload used to go into the deliveries row: the insert failed, and
// with it the push.
import { expect, it } from 'vitest';
import { Targets } from '../src/docker/targets.js';
import { describeDocker, describeMysql } from './helpers/env.js';
import { FakeEngine } from './helpers/fake-engine.js';
import { servedForBlock } from './helpers/app-server.js';
import { mysqlTestStore } from './helpers/stores.js';
import { storedPayload } from '../src/github/webhooks/delivery.js';

const SECRET = 'delivery-size-secret';
const APP_ID = 4290;
const REPO = 'acme/bigpush';
const PUSHED = '6'.repeat(40);
const FILES = {
  '.github/berth.yml': ['project: t-bigpush', 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', '    apply_on: push', ''].join('\n'),
  'compose.yml': ['services:', '  web:', '    image: berth-test/app:1', ''].join('\n'),
};

/** GitHub's commit object in a push payload, with `paths` modified paths of 80 characters. */
function commit(i: number, paths: number) {
  const id = i.toString(16).padStart(40, '0');
  const modified = Array.from({ length: paths }, (_, p) => `services/${i}/src/${'deeply/nested/'.repeat(3)}module-${p.toString().padStart(6, '0')}.ts`);
  return {
    id,
    tree_id: id,
    distinct: true,
    message: `change ${i}`,
    timestamp: '2026-12-05T00:00:00Z',
    url: `https://github.com/${REPO}/commit/${id}`,
    author: { name: 'alice', email: 'alice@example.com', username: 'alice' },
    committer: { name: 'alice', email: 'alice@example.com', username: 'alice' },
    added: [],
    removed: [],
    modified,
  };
}

describeDocker('a delivery as big as GitHub sends', () => {
  describeMysql('on MariaDB', () => {
    const targets = Targets.single('unix:///var/run/docker.sock');
    // Applies run on an in-memory host; planning observes the local engine (the project runs nothing there).
    targets.engine = () => new FakeEngine();
    const block = servedForBlock({
      appId: APP_ID,
      secret: SECRET,
      store: mysqlTestStore,
      options: { targets, recover: false, drift: false, progressIntervalMs: 60_000 },
      setUp: (fake) => {
        fake.setRepo(REPO, { defaultBranch: 'main' });
        for (const ref of ['main', PUSHED]) fake.setFiles(REPO, ref, FILES);
        fake.setPermission(REPO, 'alice', 'write');
      },
    });

    it('a push of 18 MiB (2,048 commits) to the default branch applies apply_on: push', async () => {
      const commits = Array.from({ length: 2048 }, (_, i) => commit(i, 112));
      const payload = {
        ref: 'refs/heads/main',
        before: '0'.repeat(40),
        after: PUSHED,
        created: false,
        deleted: false,
        forced: false,
        compare: `https://github.com/${REPO}/compare/000000000000...666666666666`,
        commits,
        head_commit: commits.at(-1),
        repository: { id: 9, name: 'bigpush', full_name: REPO, default_branch: 'main', owner: { login: 'acme', name: 'acme' } },
        pusher: { name: 'alice', email: null },
        sender: { login: 'alice', id: 1, type: 'User' },
        installation: { id: 1 },
      };
      const size = Buffer.byteLength(JSON.stringify(payload));
      // What is kept for recovery to route it again: all of it but the commit lists.
      const stored = JSON.parse(storedPayload('push', payload)) as Record<string, unknown>;
      expect(Object.keys(stored).sort()).toEqual(Object.keys(payload).filter((k) => k !== 'commits' && k !== 'head_commit').sort());
      expect(stored).toMatchObject({ ref: 'refs/heads/main', after: PUSHED, repository: payload.repository, sender: payload.sender, installation: payload.installation });
      // Other events are kept whole.
      expect(storedPayload('pull_request.opened', payload)).toBe(JSON.stringify(payload));
      expect(size).toBeGreaterThan(18 * 2 ** 20);
      expect(size).toBeLessThan(25 * 2 ** 20);
      expect(await block.app.post('push', payload)).toBe(200);
      await block.services.idle();
      await block.services.runner.drain(30_000);
      expect(await block.ts.store.latestApply(REPO, 'staging')).toMatchObject({ state: 'completed', headSha: PUSHED, pr: null });
      // Handled: nothing is left for recovery to run again.
      expect(await block.ts.store.pendingDeliveries(10)).toEqual([]);
    }, 120_000);
  });
});
