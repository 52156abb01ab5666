// The queue webhook work runs on, detached from the webhook request.
import { Lanes } from '../apply/lanes.js';

/** Detached jobs, serialised per key (one PR's events in order), tracked for idle/drain. */
export class Work {
  private readonly lanes = new Lanes();
  private readonly jobs = new Set<Promise<unknown>>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  /** At most `limit` jobs run at once, so a burst of deliveries cannot starve the webhook endpoint itself. */
  constructor(private readonly limit = 4) {}

  run(key: string, fn: () => Promise<void>): void {
    const p = this.lanes.run(key, () => this.slot(fn)).finally(() => this.jobs.delete(p));
    this.jobs.add(p);
  }

  private async slot(fn: () => Promise<void>): Promise<void> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else await new Promise<void>((r) => setImmediate(r)); // answer the webhook first
    this.active++;
    try {
      await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  async idle(): Promise<void> {
    while (this.jobs.size) await Promise.allSettled([...this.jobs]);
  }
}
