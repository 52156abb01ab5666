// A store lease held by one process while it works: renewed well inside its
// TTL, and given up for good at the first renewal that fails or comes too
// late. Whoever holds one asks `live()` before every Docker mutation, and
// carries `fence` on its journal writes, so a driver that lost its lease (a
// stalled process, a database blip, a takeover by another replica) neither
// touches Docker nor overwrites its successor's journal.
import type { Fence, Store } from '../store/store.js';

export class LeaseLostError extends Error {
  constructor(readonly lease: string) {
    super(`lost the lease ${lease}: another process may be driving this work now`);
    this.name = 'LeaseLostError';
  }
}

export interface LeaseLog {
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export class HeldLease {
  private lost = false;
  private validUntil: number;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly store: Store,
    readonly fence: Fence,
    private readonly ttlMs: number,
    takenAt: number,
    private readonly now: () => number,
    private readonly log: LeaseLog,
  ) {
    this.validUntil = takenAt + ttlMs;
    // A third of the TTL: two renewals may be slow before the lease is in danger.
    this.timer = setInterval(() => void this.renew(), Math.max(20, Math.floor(ttlMs / 3)));
    this.timer.unref?.();
  }

  /** Holds `fence` (a lease already taken, e.g. by startApply) if it is still ours with that token. */
  static async resume(store: Store, fence: Fence, ttlMs: number, now: () => number, log: LeaseLog): Promise<HeldLease | undefined> {
    const t0 = now();
    const token = await store.claimLease(fence.lease, fence.holder, ttlMs);
    if (token === null || token !== fence.token) return undefined;
    return new HeldLease(store, fence, ttlMs, t0, now, log);
  }

  /**
   * Holds `fence`, the lease this process took a moment ago with the work
   * itself (startApply's transaction), without asking the store again; it is
   * renewed on the usual schedule. Should it have changed hands meanwhile
   * (only after a stall longer than its TTL), the journal's writes, fenced by
   * its token in the database, are refused before any Docker call, and the
   * first renewal ends the tenure.
   */
  static adopt(store: Store, fence: Fence, ttlMs: number, now: () => number, log: LeaseLog): HeldLease {
    return new HeldLease(store, fence, ttlMs, now(), now, log);
  }

  /** Takes the lease if it is free, expired or already ours. */
  static async take(store: Store, lease: string, holder: string, ttlMs: number, now: () => number, log: LeaseLog): Promise<HeldLease | undefined> {
    const t0 = now();
    const token = await store.claimLease(lease, holder, ttlMs);
    return token === null ? undefined : new HeldLease(store, { lease, holder, token }, ttlMs, t0, now, log);
  }

  /** Waits (polling) until the lease is ours; gives up when `stillWanted` turns false. */
  static async wait(store: Store, lease: string, holder: string, ttlMs: number, now: () => number, log: LeaseLog, stillWanted: () => boolean, pollMs = 100): Promise<HeldLease> {
    for (;;) {
      const held = await HeldLease.take(store, lease, holder, ttlMs, now, log);
      if (held) return held;
      if (!stillWanted()) throw new LeaseLostError(lease);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** Still ours: no failed renewal, and the last good one is not about to run out. */
  live(): boolean {
    if (this.lost) return false;
    if (this.now() >= this.validUntil - Math.min(this.ttlMs / 5, 5000)) this.lose('the lease could not be renewed before it expires');
    return !this.lost;
  }

  private lose(why: string): void {
    if (this.lost) return;
    this.lost = true;
    clearInterval(this.timer);
    this.log.error({ lease: this.fence.lease, why }, 'lease lost: stopping work under it');
  }

  private async renew(): Promise<void> {
    if (this.lost) return;
    const t0 = this.now();
    try {
      const token = await this.store.claimLease(this.fence.lease, this.fence.holder, this.ttlMs);
      if (token !== this.fence.token) return this.lose(token === null ? 'another process holds it' : 'it lapsed and a new tenure began');
      if (!this.lost) this.validUntil = t0 + this.ttlMs;
    } catch (err) {
      // The first failed renewal ends the tenure: continuing would be betting that nobody else took over.
      this.lose(`renewal failed: ${String(err)}`);
    }
  }

  /** Stops renewing here and keeps the lease, for a `resume` of the same fence elsewhere (before it expires). */
  detach(): void {
    clearInterval(this.timer);
    this.lost = true;
  }

  /** Stops renewing; gives the lease back when it is still ours. */
  async release(): Promise<void> {
    clearInterval(this.timer);
    const wasLive = !this.lost;
    this.lost = true;
    if (wasLive) await this.store.releaseLease(this.fence.lease, this.fence.holder).catch(() => false);
  }
}
