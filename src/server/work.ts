// The queue webhook work runs on, detached from the webhook request.
import { Lanes } from '../apply/lanes.js';

/**
 * Detached jobs, serialised per key (one PR's events in order), tracked for idle/drain, at most `limit` at once.
 * Slots are shared fairly between groups (repositories): on a public repository anyone can comment on any PR or
 * open fork PRs, each PR a queue of its own, so one repository's burst would otherwise fill every slot and queue
 * ahead of every other repository's work.
 */
export class Work {
  private readonly lanes = new Lanes();
  private readonly jobs = new Set<Promise<unknown>>();
  private active = 0;
  /** group → its jobs waiting for a slot, oldest first; groups in the order they last had a turn */
  private readonly waiting = new Map<string, (() => void)[]>();
  /** group → its jobs holding a slot */
  private readonly running = new Map<string, number>();

  /** At most `limit` jobs run at once, so a burst of deliveries cannot starve the webhook endpoint itself. */
  constructor(private readonly limit = 4) {}

  /** `group`: whose share of the slots the job uses (default: its key's). */
  run(key: string, fn: () => Promise<void>, group = key): void {
    const p = this.lanes.run(key, () => this.slot(group, fn)).finally(() => this.jobs.delete(p));
    this.jobs.add(p);
  }

  private async slot(group: string, fn: () => Promise<void>): Promise<void> {
    // The slot is counted when it is granted, before any wait: jobs queued in one tick (a burst of deliveries,
    // a resume of a hundred) all saw a free slot and all ran at once when it was counted after the wait.
    if (this.active < this.limit) {
      this.active++;
      await new Promise<void>((r) => setImmediate(r)); // answer the webhook first
    } else await new Promise<void>((r) => (this.waiting.get(group) ?? this.waiting.set(group, []).get(group)!).push(r));
    this.running.set(group, (this.running.get(group) ?? 0) + 1);
    try {
      await fn();
    } finally {
      const left = this.running.get(group)! - 1;
      if (left) this.running.set(group, left);
      else this.running.delete(group);
      this.handOver();
    }
  }

  /** A freed slot goes to the waiting group that holds the fewest slots (of those, the one waiting longest for a turn). */
  private handOver(): void {
    let pick: string | undefined;
    for (const g of this.waiting.keys()) if (pick === undefined || (this.running.get(g) ?? 0) < (this.running.get(pick) ?? 0)) pick = g;
    if (pick === undefined) {
      this.active--;
      return;
    }
    const queue = this.waiting.get(pick)!;
    const next = queue.shift()!;
    // To the back of the line for its next turn.
    this.waiting.delete(pick);
    if (queue.length) this.waiting.set(pick, queue);
    next(); // the slot passes on: `active` is unchanged
  }

  async idle(): Promise<void> {
    while (this.jobs.size) await Promise.allSettled([...this.jobs]);
  }
}
