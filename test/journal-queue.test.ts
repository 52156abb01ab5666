// The executor's group commit (src/apply/journal-queue.ts): which writes go
// together, in what order, and when a batch goes. Driven by real timers: the
// case it exists for is a wide wave of Docker calls returning in one run of
// timer callbacks, which holds the event loop's next turn back.
import { describe, expect, it } from 'vitest';
import { JournalQueue } from '../src/apply/journal-queue.js';
import type { Fence, TaskUpdate } from '../src/store/store.js';

const fence: Fence = { lease: 'apply:a1', holder: 'me', token: 't1' };
const running = (id: string): TaskUpdate => ({ id, expected: 'pending', patch: { state: 'running', startedAt: 1 } });
const succeeded = (id: string): TaskUpdate => ({ id, expected: 'running', patch: { state: 'succeeded', finishedAt: 2, result: null } });

/** A queue whose store records each batch (the ids, in order, and when), every write winning. */
function recording() {
  const batches: { ids: string[]; at: number }[] = [];
  const queue = new JournalQueue(async (updates) => {
    batches.push({ ids: updates.map((u) => u.id), at: performance.now() });
    return updates.map(() => true);
  });
  return { queue, batches };
}

/** Keeps the event loop busy for `ms`, as a returning call's bookkeeping does. */
function busy(ms: number) {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/**
 * `n` timer callbacks due at the same moment (one run of timers: the event
 * loop turns only after the last), each busy for `ms` and then calling `each`.
 * Resolves with when each callback ran, and when the event loop's next turn
 * came (a setImmediate queued by the first callback, before anything else).
 *
 * Usually all `n` run before that turn. Not always: Node stamps each timer
 * with the clock when it is set, so on a loaded machine the loop setting them
 * can cross a millisecond and the later ones fall due one turn later. So the
 * tests compare with the turn, never with the last callback alone.
 */
function timerRun(n: number, ms: number, each: (i: number) => void): Promise<{ ran: number[]; turn: number }> {
  const ran: number[] = [];
  let turn = Infinity;
  return new Promise((resolve) => {
    for (let i = 0; i < n; i++)
      setTimeout(() => {
        if (i === 0) setImmediate(() => (turn = performance.now()));
        busy(ms);
        each(i);
        ran.push(performance.now());
        if (ran.length === n) setImmediate(() => resolve({ ran, turn }));
      }, 5);
  });
}

describe('journal queue', () => {
  it('commits the writes made in one turn of the event loop as one batch, in the order written', async () => {
    const { queue, batches } = recording();
    const written = ['a', 'b', 'c', 'd'].map((id) => queue.write(running(id), fence));
    expect(await Promise.all(written)).toEqual([true, true, true, true]);
    expect(batches.map((b) => b.ids)).toEqual([['a', 'b', 'c', 'd']]);
  });

  it('commits a promoted write with the write that promoted it, before it', async () => {
    const { queue, batches } = recording();
    const parent = queue.write(succeeded('parent'), fence, { lazy: true });
    queue.promote('parent');
    const child = queue.write(running('child'), fence);
    await Promise.all([parent, child]);
    expect(batches.map((b) => b.ids)).toEqual([['parent', 'child']]);
  });

  it('commits an urgent write during a long run of returning calls, not after it', async () => {
    const { queue, batches } = recording();
    let urgent: Promise<boolean> | undefined;
    // 40 calls return together, each taking 0.1 ms to handle; the first one's dependant starts (an urgent
    // `running` write), every one of them writes its own `succeeded` (lazy: nothing waits for it yet).
    const { ran } = await timerRun(40, 0.1, (i) => {
      void queue.write(succeeded(`done${i}`), fence, { lazy: true });
      if (i === 0) urgent = queue.write(running('next'), fence);
    });
    expect(await urgent).toBe(true);
    const first = batches.find((b) => b.ids.includes('next'))!;
    // Committed once it had waited about 0.25 ms: a few callbacks in, long before the 40th.
    expect(first.at).toBeLessThan(ran[ran.length - 1]!);
    expect(ran.filter((t) => t < first.at).length).toBeLessThan(20);
    // What was not urgent waited: the run's lazy writes are not in that batch.
    expect(first.ids).toEqual(['next']);
  });

  it('lets lazy writes wait for the turn: a run of returning calls with nothing urgent commits once, after it', async () => {
    const { queue, batches } = recording();
    const written: Promise<boolean>[] = [];
    const { ran, turn } = await timerRun(40, 0.05, (i) => written.push(queue.write(succeeded(`done${i}`), fence, { lazy: true })));
    expect(await Promise.all(written)).toEqual(written.map(() => true));
    // Nothing committed between two callbacks of the run: the first batch came with the turn, after every
    // callback before it (all 40 of them, unless the clock split the run; see timerRun).
    const beforeTurn = ran.filter((t) => t < turn);
    expect(beforeTurn.length).toBeGreaterThan(0);
    expect(batches[0]!.at).toBeGreaterThan(turn);
    // A few statements' worth a batch (LAZY_STATEMENTS), all of it in order.
    expect(batches.flatMap((b) => b.ids)).toEqual(Array.from({ length: 40 }, (_, i) => `done${i}`));
  });

  it('answers every write of a batch the store refused with its error', async () => {
    const queue = new JournalQueue(async () => {
      throw new Error('store down');
    });
    const a = queue.write(running('a'), fence);
    const b = queue.write(running('b'), fence);
    await expect(a).rejects.toThrow('store down');
    await expect(b).rejects.toThrow('store down');
  });
});
