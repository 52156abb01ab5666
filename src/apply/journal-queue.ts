// The executor's group commit. Task transitions are queued and committed in
// batches, one transaction per lease tenure (each write carries its fence, so
// a stale driver's batch is refused as a whole), one batch after the other.
//
// Two lanes, because not every write holds work back:
// - urgent: a `running` write (its Docker call waits for it), a promoted
//   `succeeded` write, failures, skips and cancellations. Committed first, in
//   the order written, at most 32 writes and 16 kinds of write a batch (so the
//   first, critical-path, tasks of a wide wave start before the rest is written).
// - lazy: a `succeeded` write nothing waits for yet (its dependants still wait
//   for other tasks). Committed when no urgent write is queued, a few
//   statements' worth at a time, so an urgent write never waits behind many.
// A lazy write is promoted (moved to the end of the urgent lane) as soon as a
// dependant's `running` write is about to be queued: the journal never holds
// a task `running` whose dependency is not yet recorded as succeeded.
import type { Fence, TaskPatch, TaskUpdate } from '../store/store.js';

interface Entry {
  u: TaskUpdate;
  fence: Fence;
  /** which statement of the store the write goes in (its fence, expected states and columns; see take) */
  kind: number;
  /** when it joined the urgent lane (performance.now()) */
  at: number;
  resolve: (ok: boolean) => void;
  reject: (err: unknown) => void;
}

/** Writes one batch of the same fence; answers per write whether its compare-and-set won. */
export type WriteBatch = (updates: TaskUpdate[], fence: Fence) => Promise<boolean[]>;

/**
 * How many kinds of write (expected states and the columns set) one batch may
 * hold: a rough cost, since writes of one kind share a statement in the store.
 * Urgent batches take more: their calls wait for them.
 */
const URGENT_STATEMENTS = 16;
const LAZY_STATEMENTS = 4;
/** How long an urgent write may wait for its batch's turn before the batch goes at once (see hurry). */
const OVERDUE_MS = 0.25;
/** Most writes of one batch. */
const BATCH_MAX = 32;

export class JournalQueue {
  private readonly urgent: Entry[] = [];
  private readonly lazy = new Map<string, Entry>();
  /** a drain is under way: waiting for its turn, or committing */
  private draining = false;
  /** ends the drain's wait for its turn at once (set while it waits) */
  private waiting: (() => void) | undefined;

  constructor(private readonly writeBatch: WriteBatch) {}

  /** Queues one write; resolves once it is committed, with whether its compare-and-set won. */
  write(u: TaskUpdate, fence: Fence, opts: { lazy?: boolean } = {}): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const e = { u, fence, kind: kindOf(u, fence), at: 0, resolve, reject };
      if (opts.lazy && !this.lazy.has(u.id)) this.lazy.set(u.id, e);
      else this.queueUrgent(e);
      this.schedule();
      this.hurry();
    });
  }

  /** Moves the queued lazy write of this task, if any, to the urgent lane (a dependant of it is about to start). */
  promote(taskId: string | undefined): void {
    const e = taskId === undefined ? undefined : this.lazy.get(taskId);
    if (!e) return;
    this.lazy.delete(taskId!);
    this.queueUrgent(e);
  }

  private queueUrgent(e: Entry): void {
    e.at = performance.now();
    this.urgent.push(e);
  }

  /**
   * An urgent write waits for the next turn of the event loop, so that a wave
   * of writes goes in one batch. But a long run of timers (a wide wave of
   * calls returning) holds that turn back for milliseconds, and a task's
   * Docker call with it; so once the oldest urgent write has waited
   * OVERDUE_MS, the batch goes now. Each write asks (every returning call
   * writes), between two callbacks of such a run.
   */
  private hurry(): void {
    if (this.waiting && this.urgent.length && performance.now() - this.urgent[0]!.at >= OVERDUE_MS) this.waiting();
  }

  private schedule(): void {
    if (this.draining) return;
    this.draining = true;
    void this.drain();
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        // Writes made in the same turn of the event loop (a wave of tasks starting or finishing together) go
        // together; after a batch, the callers it answered move on (their calls begun, their dependants' writes queued).
        await this.turn();
        const batch = this.urgent.length ? take(this.urgent, URGENT_STATEMENTS) : take(this.lazy, LAZY_STATEMENTS);
        if (!batch.length) return;
        await this.commit(batch);
      }
    } finally {
      this.draining = false;
      if (this.urgent.length || this.lazy.size) this.schedule();
    }
  }

  /**
   * The next turn of the event loop, or sooner when a write hurries it (not
   * at once: the callers the last batch answered move on first).
   */
  private turn(): Promise<void> {
    return new Promise((resolve) => {
      const go = () => {
        if (this.waiting !== go) return;
        this.waiting = undefined;
        resolve();
      };
      this.waiting = go;
      setImmediate(go);
    });
  }

  private async commit(batch: Entry[]): Promise<void> {
    // By the fence itself: a drive writes every entry with its lease's one fence object (a fence equal but
    // not the same would only cost a transaction of its own).
    const byFence = new Map<Fence, Entry[]>();
    for (const e of batch) {
      const list = byFence.get(e.fence);
      if (list) list.push(e);
      else byFence.set(e.fence, [e]);
    }
    await Promise.all(
      [...byFence.values()].map(async (entries) => {
        try {
          const results = await this.writeBatch(
            entries.map((e) => e.u),
            entries[0]!.fence,
          );
          entries.forEach((e, i) => e.resolve(results[i] === true));
        } catch (err) {
          for (const e of entries) e.reject(err);
        }
      }),
    );
  }
}

/** The oldest writes of a lane, as many as `statements` statements carry (at least one), taken out of it. */
function take(lane: Entry[] | Map<string, Entry>, statements: number): Entry[] {
  const shapes = new Set<number>();
  const out: Entry[] = [];
  for (const e of lane.values()) {
    if (!shapes.has(e.kind) && shapes.size >= statements) break;
    shapes.add(e.kind);
    out.push(e);
    if (out.length >= BATCH_MAX) break;
  }
  if (Array.isArray(lane)) lane.splice(0, out.length);
  else for (const e of out) lane.delete(e.u.id);
  return out;
}

/**
 * The store groups writes by fence, expected states and the columns they set; values may differ
 * (store/tables/tasks.ts). A kind is one number made of the three, each numbered the first time it
 * is seen: a wave writes hundreds, and a string per write (lease, token, states, columns) was most
 * of what the queue allocated. Kinds only size a batch (take); commit groups by the fence itself,
 * so two fences that share a number after it wraps cost a batch's size, never its correctness.
 */
function kindOf(u: TaskUpdate, fence: Fence): number {
  let columns = 0;
  for (let i = 0; i < PATCH_KEYS.length; i++) if (u.patch[PATCH_KEYS[i]!] !== undefined) columns |= 1 << i;
  let f = fenceNumbers.get(fence);
  if (f === undefined) fenceNumbers.set(fence, (f = nextFence++ % 0x10000));
  const states = typeof u.expected === 'string' ? u.expected : [...u.expected].sort().join(',');
  let e = expectedNumbers.get(states);
  if (e === undefined) expectedNumbers.set(states, (e = expectedNumbers.size));
  return (f * 0x100 + e) * 0x20 + columns;
}

const PATCH_KEYS = ['state', 'error', 'result', 'startedAt', 'finishedAt'] as const satisfies readonly (keyof TaskPatch)[];
const fenceNumbers = new WeakMap<Fence, number>();
let nextFence = 0;
/** every set of expected states written (a handful: the executor's transitions) */
const expectedNumbers = new Map<string, number>();
