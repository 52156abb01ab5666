// Shared by the bench modules: timing, statistics and the figure format
// `bench/run.ts` prints as one JSON line each.

export interface Figure {
  name: string;
  /** milliseconds unless `unit` says otherwise */
  median: number;
  p95: number;
  min: number;
  max: number;
  runs: number;
  /** the figure should stay at or below this (the issues write ≤); null when there is no agreed target */
  target: number | null;
  unit: 'ms' | 'ratio';
  /** median / target: at most 1 meets the target */
  ratio_to_target: number | null;
  /** anything else worth recording: sizes, related figures */
  [extra: string]: unknown;
}

export interface BenchModule {
  /** runs the benchmark and returns its figures; logs progress through `log` */
  bench(log: (line: string) => void): Promise<Figure[]>;
}

export function quantile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));

export function figure(name: string, samples: readonly number[], target: number | null, extra: Record<string, unknown> = {}, unit: Figure['unit'] = 'ms'): Figure {
  const s = [...samples].sort((a, b) => a - b);
  const median = quantile(s, 0.5);
  return {
    name,
    median: round(median),
    p95: round(quantile(s, 0.95)),
    min: round(s[0]),
    max: round(s[s.length - 1]),
    runs: s.length,
    target,
    unit,
    ratio_to_target: target ? round(median / target) : null,
    ...extra,
  };
}

/** Runs `fn` `warmup` times untimed, then `runs` times timed (ms each). */
export async function time(fn: () => unknown, runs: number, warmup: number): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function pool<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** One human line for a figure of the usual shape, or of the `{name, value, unit, target}` shape. */
export function describeFigure(f: { name: string } & Record<string, unknown>): string {
  const unit = typeof f.unit === 'string' ? f.unit : '';
  const value = typeof f.median === 'number' ? f.median : typeof f.value === 'number' ? f.value : undefined;
  const spread = typeof f.median === 'number' ? `median ${f.median} ${unit}, p95 ${f.p95}, min ${f.min}, max ${f.max} over ${f.runs} runs` : `${value} ${unit}`;
  const target = typeof f.target === 'number' ? f.target : undefined;
  // A figure with no target may have a floor: the least it can be (a count of requests the API makes unavoidable).
  const floor = typeof f.floor === 'number' ? f.floor : undefined;
  const vs =
    target !== undefined && value !== undefined
      ? ` (target ≤ ${target} ${unit}: ${(value / target).toFixed(3)}× of target, ${value <= target ? 'met' : 'MISSED'})`
      : floor !== undefined && value !== undefined
        ? ` (floor ${floor} ${unit}: ${value <= floor ? 'at its floor' : `${value - floor} over its floor`})`
        : '';
  return `${f.name}: ${spread}${vs}`;
}
