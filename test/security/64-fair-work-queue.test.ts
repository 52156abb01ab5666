// Round 16: webhook work of one repository starved every other repository's.
// Deliveries run detached on one queue per PR, at most BERTH_WEBHOOK_CONCURRENCY
// (4) at once, and a job that found every slot busy waited in one FIFO line.
// On a public repository anyone can comment on any PR (`/plan`, or anything
// that reads like a command) or open fork PRs, and each PR is a queue of its
// own: a burst over a few dozen PRs of one repository took every slot and
// queued ahead of everything else, so another repository's `/apply` or `/stop`
// waited for the whole burst to be planned. Nor did the bound hold: a slot was
// counted only after a turn of the event loop, so jobs queued in one tick (a
// burst, or a resume of a hundred unfinished deliveries) all saw it free and
// all ran at once. A slot is now counted when granted, and a freed one goes to
// the waiting repository that holds the fewest; one PR's events still in order.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Context } from 'probot';
import { CommitCache } from '../../src/github/commit-cache.js';
import type { GitHubPort } from '../../src/github/github.js';
import { deliveries, type Routes } from '../../src/github/webhooks/delivery.js';
import { Metrics } from '../../src/server/metrics.js';
import { Work } from '../../src/server/work.js';
import type { Services } from '../../src/services.js';
import { sqliteTestStore, type TestStore } from '../helpers/stores.js';
import { until } from '../helpers/app-process.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };

describe('security 64: one repository cannot starve the webhook work of another', () => {
  let ts: TestStore;
  beforeAll(async () => {
    ts = await sqliteTestStore();
  });
  afterAll(async () => {
    await ts?.dispose();
  });

  it('a delivery of another repository runs at the next free slot, not after a burst of one repository', async () => {
    const work = new Work(2);
    const started: string[] = [];
    const gates = new Map<string, () => void>();
    const routes: Routes = {
      'issue_comment.created': (payload) => ({
        pr: payload.issue.number as number,
        run: async (_gh, repo) => {
          const key = `${repo.owner}/${repo.name}#${payload.issue.number}`;
          started.push(key);
          await new Promise<void>((r) => gates.set(key, r));
        },
      }),
    };
    const gh = {} as GitHubPort;
    const s = { log: quiet, store: ts.store, metrics: new Metrics(), work, installations: new Map(), replica: 'r1', leaseTtlMs: 60_000, githubFor: async () => gh, commitCache: new CommitCache(0) } as unknown as Services;
    const d = deliveries(s, routes);
    let n = 0;
    const deliver = (repo: string, pr: number) =>
      d.handle({ id: `d-${++n}`, name: 'issue_comment', payload: { action: 'created', issue: { number: pr }, repository: { full_name: repo } } } as unknown as Context, 'issue_comment.created');

    // A burst: one comment on each of 30 PRs of one public repository; then one delivery of another repository.
    for (let pr = 1; pr <= 30; pr++) await deliver('evil/public', pr);
    await deliver('acme/shop', 7);
    await until('the first jobs to start', () => started.length >= 2, 10_000);
    await new Promise((r) => setTimeout(r, 50));
    // The bound holds: two at once (a burst in one tick once all ran at once, past BERTH_WEBHOOK_CONCURRENCY).
    expect(started).toHaveLength(2);
    expect(started.every((k) => k.startsWith('evil/public#'))).toBe(true);

    // Each job of the burst ends in turn; the other repository's starts at the first slot that frees.
    let burstJobsBefore = 0;
    while (!started.includes('acme/shop#7')) {
      const running = started.filter((k) => gates.has(k) && k.startsWith('evil/public#'));
      gates.get(running[0]!)!();
      gates.delete(running[0]!);
      burstJobsBefore++;
      const had = started.length;
      await until('the freed slot to be taken', () => started.length > had, 10_000);
      expect(burstJobsBefore).toBeLessThanOrEqual(30);
    }
    expect(burstJobsBefore).toBe(1);

    // Nothing is lost: the rest of the burst still runs.
    while (gates.size) {
      for (const [k, release] of [...gates]) {
        gates.delete(k);
        release();
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await work.idle();
    expect(new Set(started).size).toBe(31);
  });

  it('one PR’s events still run one at a time and in order; one repository alone still uses every slot', async () => {
    const work = new Work(3);
    const log: string[] = [];
    let running = 0;
    let most = 0;
    const job = (name: string) => async () => {
      running++;
      most = Math.max(most, running);
      log.push(`start ${name}`);
      await new Promise((r) => setTimeout(r, 10));
      log.push(`end ${name}`);
      running--;
    };
    for (const i of [1, 2, 3]) work.run('acme/shop#1', job(`pr1-${i}`), 'acme/shop');
    for (const pr of [2, 3, 4]) work.run(`acme/shop#${pr}`, job(`pr${pr}`), 'acme/shop');
    await work.idle();
    const pr1 = log.filter((l) => l.includes('pr1-'));
    expect(pr1).toEqual(['start pr1-1', 'end pr1-1', 'start pr1-2', 'end pr1-2', 'start pr1-3', 'end pr1-3']);
    expect(most).toBe(3);
  });
});
