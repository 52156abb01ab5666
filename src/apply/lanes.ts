// One serial lane per target: two applies on the same Docker host queue
// behind each other instead of interleaving their mutations.
export class Lanes {
  private tails = new Map<string, Promise<void>>();
  private waiting = new Map<string, number>();

  /** Runs fn when every earlier holder of this target's lane has finished. */
  async run<T>(target: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(target) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = previous.then(() => mine);
    this.tails.set(target, tail);
    this.waiting.set(target, (this.waiting.get(target) ?? 0) + 1);
    try {
      await previous;
      return await fn();
    } finally {
      release();
      const left = (this.waiting.get(target) ?? 1) - 1;
      if (left === 0) {
        this.waiting.delete(target);
        if (this.tails.get(target) === tail) this.tails.delete(target);
      } else this.waiting.set(target, left);
    }
  }

  /** How many operations hold or wait for this target's lane. */
  depth(target: string): number {
    return this.waiting.get(target) ?? 0;
  }
}
