// Finding many texts in a text at once, whatever their number, length or
// overlap, in one pass over the text (Aho–Corasick). The masker finds every
// secret it knows in everything that leaves berth, and what it knows grows with
// what PRs write: a regular expression of its texts has a size limit, and a
// scan that tries each text at each position costs the product of the lengths
// (a learnt run of `aaaa…` over a longer one). Case is ignored as the masker
// needs it (a secret shown upper- or lower-cased): each UTF-16 unit is compared
// lower-cased, where lower-casing keeps it one unit.

/** Each UTF-16 unit lower-cased, where that gives one unit (İ lower-cases to two: kept as it is). */
const FOLD = (() => {
  const t = new Uint16Array(65536);
  for (let c = 0; c < 65536; c++) {
    const l = String.fromCharCode(c).toLowerCase();
    t[c] = l.length === 1 ? l.charCodeAt(0) : c;
  }
  return t;
})();

/** [start, end) of a found text in the input. */
export type Span = [number, number];

/** Some texts, found together (see the header); an empty text is never found. */
export class Needles {
  /** the automaton's edges: node × 65536 + unit → node (node 0 is the root) */
  private readonly next = new Map<number, number>();
  private readonly fail: Int32Array;
  /** the units a text starts with: at the root, any other unit is passed over without a lookup */
  private readonly first = new Uint8Array(65536);
  /** the longest text that ends at each node, itself or through its failure links (0: none) */
  private readonly longest: Int32Array;

  constructor(texts: Iterable<string>) {
    const own: number[] = [0];
    for (const text of texts) {
      if (!text) continue;
      let node = 0;
      this.first[FOLD[text.charCodeAt(0)]!] = 1;
      for (let i = 0; i < text.length; i++) {
        const key = node * 65536 + FOLD[text.charCodeAt(i)]!;
        let child = this.next.get(key);
        if (child === undefined) {
          child = own.length;
          own.push(0);
          this.next.set(key, child);
        }
        node = child;
      }
      own[node] = Math.max(own[node]!, text.length);
    }
    const nodes = own.length;
    const children: number[][] = Array.from({ length: nodes }, () => []);
    for (const [key, child] of this.next) children[Math.floor(key / 65536)]!.push(key % 65536, child);
    this.fail = new Int32Array(nodes);
    this.longest = Int32Array.from(own);
    // Breadth first: a node's failure link (the longest proper suffix that is a prefix of some text) is known
    // before its children's.
    const queue: number[] = [0];
    for (let q = 0; q < queue.length; q++) {
      const parent = queue[q]!;
      const list = children[parent]!;
      for (let j = 0; j < list.length; j += 2) {
        const unit = list[j]!;
        const child = list[j + 1]!;
        let f = 0;
        if (parent !== 0) {
          for (let s = this.fail[parent]!; ; s = this.fail[s]!) {
            const to = this.next.get(s * 65536 + unit);
            if (to !== undefined) {
              f = to;
              break;
            }
            if (s === 0) break;
          }
        }
        this.fail[child] = f;
        this.longest[child] = Math.max(this.longest[child]!, this.longest[f]!);
        queue.push(child);
      }
    }
  }

  /**
   * Where the texts occur in `input`: every occurrence, overlapping ones too, as spans whose union is exactly
   * theirs (each the longest text ending at a position; spans that overlap the one before are joined to it).
   */
  find(input: string): Span[] {
    const out: Span[] = [];
    let last: Span | undefined;
    let node = 0;
    for (let i = 0; i < input.length; i++) {
      const unit = FOLD[input.charCodeAt(i)]!;
      if (node === 0 && !this.first[unit]) continue;
      for (;;) {
        const to = this.next.get(node * 65536 + unit);
        if (to !== undefined) {
          node = to;
          break;
        }
        if (node === 0) break;
        node = this.fail[node]!;
      }
      const length = this.longest[node]!;
      if (!length) continue;
      const start = i + 1 - length;
      if (last && start <= last[1]) {
        last[0] = Math.min(last[0], start);
        last[1] = i + 1;
      } else out.push((last = [start, i + 1]));
    }
    return out;
  }
}

/** `text` with each union of overlapping or touching spans replaced by `by`. */
export function replaceSpans(text: string, spans: Span[], by: string): string {
  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  let out = '';
  let from = 0;
  let i = 0;
  while (i < spans.length) {
    let [start, end] = spans[i]!;
    for (i++; i < spans.length && spans[i]![0] <= end; i++) end = Math.max(end, spans[i]![1]);
    out += text.slice(from, start) + by;
    from = Math.max(from, end);
  }
  return out + text.slice(from);
}
