// Splits a long Markdown comment into parts GitHub accepts (a comment body is
// at most 65,536 characters). Cuts fall between top-level blocks; a fenced
// code block or a <details> block is cut only when it alone does not fit a
// part, and then it is closed at the cut and reopened in the next part with a
// "(continued)" marker, so every part renders on its own.

export const GITHUB_COMMENT_LIMIT = 65_536;
/** Head room under GitHub's limit for what the poster adds around a part (links, markers). */
export const SPLIT_MARGIN = 1_024;
export const DEFAULT_SPLIT_LIMIT = GITHUB_COMMENT_LIMIT - SPLIT_MARGIN;

export const CONTINUED = '*(continued)*';

const partHeader = (i: number, n: number) => `**Part ${i}/${n}**`;

type Ctx =
  | { type: 'fence'; char: string; len: number; opener: string }
  | { type: 'details'; tag: string; reopen: string; awaitingSummary: boolean };

const FENCE_OPEN = /^ {0,3}(`{3,}|~{3,})(.*)$/;
const FENCE_CLOSE = /^ {0,3}(`{3,}|~{3,})[ \t]*$/;
const DETAILS_TAG = /<details\b[^>]*>|<\/details\s*>/gi;
const SUMMARY = /<summary>([\s\S]*?)<\/summary>/i;

const continuedSummary = (tag: string, inner: string) => `${tag}<summary>${inner ? `${inner} ` : ''}(continued)</summary>`;

/** Which fences and <details> blocks are open after each line: CommonMark fences, HTML details outside fences. */
export class BlockScanner {
  stack: Ctx[] = [];

  clone(): BlockScanner {
    const s = new BlockScanner();
    s.stack = this.stack.map((c) => ({ ...c }));
    return s;
  }

  feed(line: string): void {
    const top = this.stack[this.stack.length - 1];
    if (top?.type === 'fence') {
      const m = FENCE_CLOSE.exec(line);
      if (m && m[1][0] === top.char && m[1].length >= top.len) this.stack.pop();
      return;
    }
    const f = FENCE_OPEN.exec(line);
    if (f && !(f[1][0] === '`' && f[2].includes('`'))) {
      this.stack.push({ type: 'fence', char: f[1][0], len: f[1].length, opener: line });
      return;
    }
    if (top?.type === 'details' && top.awaitingSummary) {
      top.awaitingSummary = false;
      const s = SUMMARY.exec(line);
      if (s && /^\s*<summary>/i.test(line)) top.reopen = continuedSummary(top.tag, s[1]);
    }
    DETAILS_TAG.lastIndex = 0;
    for (let m = DETAILS_TAG.exec(line); m; m = DETAILS_TAG.exec(line)) {
      if (m[0].startsWith('</')) {
        const last = this.stack[this.stack.length - 1];
        if (last?.type === 'details') this.stack.pop();
      } else {
        const rest = line.slice(m.index + m[0].length);
        const s = SUMMARY.exec(rest);
        this.stack.push({ type: 'details', tag: m[0], reopen: continuedSummary(m[0], s ? s[1] : ''), awaitingSummary: !s });
      }
    }
  }

  /** Lines that close every open block, innermost first. */
  closers(): string[] {
    return [...this.stack].reverse().map((c) => (c.type === 'fence' ? c.char.repeat(c.len) : '</details>'));
  }

  /** Lines that reopen every open block in a new part, outermost first. */
  reopeners(): string[] {
    const out: string[] = [];
    if (this.stack[0]?.type === 'fence') out.push(CONTINUED, '');
    for (const c of this.stack) {
      if (c.type === 'fence') out.push(c.opener);
      else out.push(c.reopen, '');
    }
    return out;
  }
}

const joinedLength = (lines: readonly string[]) => (lines.length ? lines.reduce((n, l) => n + l.length, 0) + lines.length - 1 : 0);

/** Top-level units: a line outside any block, or a whole fence / <details> block. */
function units(lines: readonly string[]): string[][] {
  const out: string[][] = [];
  const scan = new BlockScanner();
  let cur: string[] = [];
  for (const line of lines) {
    cur.push(line);
    scan.feed(line);
    if (!scan.stack.length) {
      out.push(cur);
      cur = [];
    }
  }
  if (cur.length) out.push(cur);
  return out;
}

/** Cuts `s` to at most `n` UTF-16 units without splitting a surrogate pair. */
function cut(s: string, n: number): [string, string] {
  let k = Math.min(n, s.length);
  if (k > 0 && k < s.length && /[\ud800-\udbff]/.test(s[k - 1])) k--;
  return [s.slice(0, k), s.slice(k)];
}

class Packer {
  readonly parts: string[][] = [];
  private cur: string[] = [];
  private curLen = 0;
  /** lines of the document (not reopeners) in the current part */
  private real = 0;

  constructor(private readonly budget: number) {}

  private push(line: string, real: boolean): void {
    this.curLen += (this.cur.length ? 1 : 0) + line.length;
    this.cur.push(line);
    if (real) this.real++;
  }

  private fits(lines: readonly string[]): boolean {
    return this.curLen + (this.cur.length && lines.length ? 1 : 0) + joinedLength(lines) <= this.budget;
  }

  private flush(): void {
    if (this.cur.length) this.parts.push(this.cur);
    this.cur = [];
    this.curLen = 0;
    this.real = 0;
  }

  unit(lines: string[]): void {
    if (this.fits(lines)) {
      for (const l of lines) this.push(l, true);
      return;
    }
    if (joinedLength(lines) <= this.budget) {
      this.flush();
      for (const l of lines) this.push(l, true);
      return;
    }
    this.stream(lines);
  }

  /** A unit too big for one part: line by line, closing and reopening the open blocks at each cut. */
  private stream(lines: string[]): void {
    const scan = new BlockScanner();
    for (const whole of lines) {
      let line = whole;
      const next = scan.clone();
      next.feed(whole);
      for (;;) {
        if (this.fits([line, ...next.closers()])) {
          this.push(line, true);
          break;
        }
        if (this.real > 0) {
          for (const c of scan.closers()) this.push(c, false);
          this.flush();
          for (const r of scan.reopeners()) this.push(r, false);
          if (this.fits([line, ...next.closers()])) continue;
        }
        // A single line longer than a part: hard-cut it.
        const closers = joinedLength(next.closers()) > joinedLength(scan.closers()) ? next.closers() : scan.closers();
        const room = this.budget - this.curLen - (this.cur.length ? 1 : 0) - (closers.length ? joinedLength(closers) + 1 : 0);
        if (room < 1) throw new Error(`splitMarkdown: limit too small for the blocks open at a cut (${this.budget} characters available per part)`);
        const [head, tail] = cut(line, room);
        this.push(head, true);
        line = tail;
        for (const c of scan.closers()) this.push(c, false);
        this.flush();
        for (const r of scan.reopeners()) this.push(r, false);
      }
      scan.stack = next.stack;
    }
  }

  finish(): string[][] {
    this.flush();
    return this.parts;
  }
}

/**
 * Splits `md` into parts each shorter than `limit` characters (UTF-16 units,
 * which never undercount GitHub's characters). One part is returned unchanged;
 * several are numbered "Part i/n" at their top.
 */
/**
 * At most this many parts: a plan a PR can make huge (a few characters of compose can ask for a diff of
 * megabytes) must not turn into hundreds of comments, each a GitHub write from the installation's budget.
 */
export const MAX_PARTS = 10;

/** What stands for the parts left out of a plan longer than MAX_PARTS comments. */
export const leftOut = (n: number) =>
  `_The rest of the plan is not posted: it would take ${n} more ${n === 1 ? 'comment' : 'comments'}. Each environment's check run has its summary; \`berth plan\` from a checkout prints the whole plan._`;

/** `maxParts`: the last parts past it are left out, one part saying so in their place (the PR comment: MAX_PARTS). */
export function splitMarkdown(md: string, limit: number = DEFAULT_SPLIT_LIMIT, maxParts = Infinity): string[] {
  if (md.length < limit) return [md];
  const lines = md.split('\n');
  const blocks = units(lines);
  for (let digits = String(Math.ceil(md.length / limit) + 1).length; ; digits++) {
    const nines = '9'.repeat(digits);
    const headerLen = partHeader(Number(nines), Number(nines)).length + 2;
    const budget = limit - 1 - headerLen;
    const packer = new Packer(budget);
    for (const u of blocks) packer.unit(u);
    const parts = packer.finish();
    if (String(parts.length).length > digits) continue;
    // Each part renders on its own (a block cut is closed at the cut), so the last ones can be left out whole.
    if (parts.length > maxParts) {
      const kept = parts.slice(0, maxParts - 1);
      return [...kept.map((p, i) => `${partHeader(i + 1, maxParts)}\n\n${p.join('\n')}`), `${partHeader(maxParts, maxParts)}\n\n${leftOut(parts.length - kept.length)}`];
    }
    return parts.map((p, i) => `${partHeader(i + 1, parts.length)}\n\n${p.join('\n')}`);
  }
}
