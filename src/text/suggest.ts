// "did you mean" for unknown keys and names.

export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** No suggestion is further than this many edits away (see the limit in closest). */
const MAX_EDITS = 3;

/** The closest candidate when it is close enough to be a plausible typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    // A length further off than the most edits a suggestion may be is no suggestion: skipped before the distance,
    // which costs the product of the two lengths (a PR may write a name of a megabyte).
    if (Math.abs(c.length - word.length) > MAX_EDITS) continue;
    const d = editDistance(w, c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(1, Math.min(MAX_EDITS, Math.floor(Math.max(word.length, best.length) / 3)));
  return bestD <= limit ? best : undefined;
}

export function didYouMean(word: string, candidates: readonly string[]): string {
  const c = closest(word, candidates);
  return c ? `did you mean "${c}"?` : '';
}
