// Round 16: a resumed delivery that could not get a GitHub client gave back
// every claim of its process. Resuming what a crashed replica left, a delivery
// whose installation token GitHub would not issue (GitHub down, a 5xx, an
// installation suspended: 403) was "given back, tried again at the next pass"
// with releaseDeliveries(replica) — which lapses every delivery this live
// process holds, the ones it is working on right now included. Until its next
// heartbeat, any replica's recovery pass took those over and ran them a second
// time, concurrently: a command answered twice, two plans of one PR racing,
// the "done exactly once" of durable deliveries (security 12) broken. Only the
// delivery that failed is given back now.
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
const payload = (repo: string, pr: number) => ({ action: 'created', issue: { number: pr }, repository: { full_name: repo } });

describe('security 65: resuming a delivery that cannot be handled gives back that delivery only', () => {
  let ts: TestStore;
  beforeAll(async () => {
    ts = await sqliteTestStore();
  });
  afterAll(async () => {
    await ts?.dispose();
  });

  it('the deliveries a live replica is working on stay its own; none runs twice', async () => {
    const runs = new Map<string, string[]>();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const routes = (replica: string): Routes => ({
      'issue_comment.created': (p) => ({
        pr: p.issue.number as number,
        run: async (_gh, repo) => {
          const key = `${repo.owner}/${repo.name}#${p.issue.number}`;
          runs.set(key, [...(runs.get(key) ?? []), replica]);
          await held;
        },
      }),
    });
    const replica = (name: string, githubFor: (repo: string) => Promise<GitHubPort>) => {
      const work = new Work(4);
      const s = { log: quiet, store: ts.store, metrics: new Metrics(), work, installations: new Map(), replica: name, leaseTtlMs: 60_000, githubFor, commitCache: new CommitCache(0) } as unknown as Services;
      return { work, d: deliveries(s, routes(name)) };
    };
    const gh = {} as GitHubPort;
    // Replica A cannot get a client for acme/suspended (GitHub answers 403 for its installation's token).
    const a = replica('A', async (repo) => {
      if (repo === 'acme/suspended') throw Object.assign(new Error('This installation has been suspended'), { status: 403 });
      return gh;
    });
    const c = replica('C', async () => gh);

    // A works on a comment of acme/shop (its claim live for a minute).
    await a.d.handle({ id: 'live-1', name: 'issue_comment', payload: payload('acme/shop', 1) } as unknown as Context, 'issue_comment.created');
    await until('A to work on it', () => runs.has('acme/shop#1'), 10_000);
    // A replica that died left a delivery of acme/suspended unfinished (its claim lapsed).
    expect(await ts.store.claimDelivery('left-2', 'issue_comment.created', JSON.stringify(payload('acme/suspended', 2)), 'dead', 1)).toBe(true);
    await new Promise((r) => setTimeout(r, 10));

    // A's recovery pass takes it, gets no client, and gives it back; then C's pass runs.
    await a.d.resume();
    await c.d.resume();
    await new Promise((r) => setTimeout(r, 50));
    release();
    await Promise.all([a.work.idle(), c.work.idle()]);

    // A's own delivery ran once, by A; the one it gave back was C's to run.
    expect(runs.get('acme/shop#1')).toEqual(['A']);
    expect(runs.get('acme/suspended#2')).toEqual(['C']);
  });
});
