// A progress update of a check run that is still in flight (GitHub slow, the
// client retrying a 502 or waiting out a rate limit) when the apply ends must
// never land after the final update: the check would stay `in_progress`
// forever. The chaos suite met this on a loaded machine.
import { describe, expect, it } from 'vitest';
import type { Executor } from '../src/apply/executor.js';
import type { CheckRunUpdate, GitHubPort } from '../src/github/github.js';
import { ApplyRunner, progressSummary } from '../src/apply/supervisor.js';
import type { AggregateState, ApplyRow, TaskRow, TaskState } from '../src/store/store.js';
import { until } from './helpers/wait.js';

describe('progress and the final check-run update', () => {
  it('a progress update still in flight when the apply ends lands before the final one, never after', async () => {
    let state: ApplyRow['state'] = 'running';
    const apply = { id: 'a1', repo: 'acme/shop', pr: 1, environment: 'staging', checkRunId: 7, createdAt: 0, startedAt: 0, finishedAt: null } as unknown as ApplyRow;
    const store = {
      getApply: async () => ({ ...apply, state, ...(state === 'running' ? {} : { finishedAt: 1 }) }),
      listTasksForApply: async () => [],
      getLock: async () => undefined,
      // this driver is the one that reports (the store's compare-and-set grants it)
      claimReport: async () => true,
      reportClaim: async () => undefined,
      markReported: async () => true,
    } as never;
    // GitHub answers the progress write only when the test says so (a client deep in its retries).
    const writes: CheckRunUpdate[] = [];
    let answerProgress!: () => void;
    const progressHeld = new Promise<void>((r) => (answerProgress = r));
    let progressStarted = false;
    const gh = {
      async updateCheckRun(_r: unknown, _id: number, u: CheckRunUpdate) {
        if (u.status === 'in_progress') {
          progressStarted = true;
          await progressHeld;
        }
        writes.push(u);
      },
      async createComment() {
        return 1;
      },
      async getPull() {
        return { state: 'open' };
      },
    } as unknown as GitHubPort;
    let end!: (s: AggregateState) => void;
    const ended = new Promise<AggregateState>((r) => (end = r));
    const silent = { info() {}, warn() {}, error() {} };
    const runner = new ApplyRunner({ store, executor: () => ({ run: () => ended }) as unknown as Executor, github: async () => gh, log: silent, progressIntervalMs: 0 });

    const done = runner.start('a1');
    runner.progress('a1');
    await until('the progress write to reach GitHub', () => progressStarted);
    state = 'completed';
    end('completed');
    // The final report waits for the progress write rather than racing it.
    await new Promise((r) => setImmediate(r));
    answerProgress();
    await done;
    expect(writes.map((w) => w.status)).toEqual(['in_progress', 'completed']);
  });

  it('a stop in progress says so, and counts cancelled or skipped steps apart from the ones done', () => {
    const apply = { id: 'a1', environment: 'staging', state: 'stopping', stopRequested: true } as unknown as ApplyRow;
    const tasks = (['succeeded', 'succeeded', 'running', 'cancelled', 'cancelled', 'skipped'] as TaskState[]).map((state, i) => ({ id: `t${i}`, kind: 'StartContainer', resource: `service:s${i}:1`, state }) as unknown as TaskRow);
    const p = progressSummary(apply, tasks);
    expect(p.title).toBe('Stopping staging: 2/6 steps, 3 not run');
    expect(p.summary.split('\n')[0]).toBe('**2/6** steps done, 3 not run · state `stopping`');
    const running = progressSummary({ ...apply, state: 'running', stopRequested: false } as ApplyRow, tasks.slice(0, 3));
    expect(running.title).toBe('Applying staging: 2/3 steps');
  });
});

