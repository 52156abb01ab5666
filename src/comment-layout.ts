// Which lines of a PR comment a reader sees as lines of text of their own.
//
// berth runs a command only from a line GitHub renders as visible text on its
// own line: not inside code (fenced, indented or inline), HTML, a link
// reference definition, a table, image alt text or a link title. Deciding that
// is CommonMark's job, so the comment is parsed by micromark with the GFM
// extensions (`mdast-util-from-markdown`) and the syntax tree, with its source
// positions, answers: a line counts when its first non-blank character lies in
// a text node of a paragraph or heading. A line that is in a block quote only
// by lazy continuation (it carries no `>`) is reported as such, so the caller
// can explain it. This module never decides what a command is.
//
// micromark is not linear on every input (nested lists and unclosed inline
// constructs cost quadratic time), so its input is bounded before it runs, and
// it runs at most once per comment:
// - only the part of the comment that can affect the candidate lines is parsed
//   (a window from a line where nothing can still be open up to the end of the
//   last candidate's paragraph);
// - that window holds at most MAX_PARSE_CHARS characters (GitHub's own limit
//   for a comment) and at most MAX_NESTED_CONTAINERS nested list or quote
//   markers. Past either limit nothing is parsed and the caller is told the
//   layout is unreadable, so nothing runs (fail closed).

import type { Nodes } from 'mdast';
import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';

/** GitHub's limit for a comment body: a window this large covers any comment GitHub can send. */
export const MAX_PARSE_CHARS = 65_536;
/** Nested list / block quote markers in the window (micromark's cost grows with their square). */
export const MAX_NESTED_CONTAINERS = 1_000;

/** A line of the comment: where it starts in the body, and its text without the line ending. */
export interface Line {
  start: number;
  text: string;
}

/** How a candidate line renders: visible text, visible only as a lazy part of a quote, or not as text of its own. */
export type LineLayout = 'visible' | 'lazy-quote' | 'hidden';

export type Layout =
  | { readable: true; lines: Map<number, LineLayout> }
  | { readable: false; why: string };

/** The lines of a body, split at CRLF, CR or LF, with their offsets. */
export function splitLines(body: string): Line[] {
  const out: Line[] = [];
  const re = /\r\n|\r|\n/g;
  let start = 0;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    out.push({ start, text: body.slice(start, m.index) });
    start = m.index + m[0].length;
  }
  out.push({ start, text: body.slice(start) });
  return out;
}

/**
 * The layout of the candidate lines (indices into `lines`, ascending): for each, how
 * it renders. Parses at most once, and only a bounded window of the body.
 */
export function layoutOf(body: string, lines: readonly Line[], candidates: readonly number[]): Layout {
  const result = new Map<number, LineLayout>();
  if (!candidates.length) return { readable: true, lines: result };
  const from = windowStart(body, lines, candidates[0]!);
  const to = windowEnd(body, lines, candidates[candidates.length - 1]!);
  const size = to - from;
  if (size > MAX_PARSE_CHARS) {
    return { readable: false, why: `the Markdown around the command lines spans ${size.toLocaleString('en-US')} characters (berth reads at most ${MAX_PARSE_CHARS.toLocaleString('en-US')})` };
  }
  const nested = nestedContainers(lines, from, to);
  if (nested > MAX_NESTED_CONTAINERS) {
    return { readable: false, why: `it nests lists and quotes ${nested.toLocaleString('en-US')} times (berth reads at most ${MAX_NESTED_CONTAINERS.toLocaleString('en-US')})` };
  }

  const tree = parse(body.slice(from, to));
  const spans = textSpans(tree, from);
  let s = 0;
  for (const i of candidates) {
    const at = firstNonBlank(lines[i]!);
    while (s < spans.length && spans[s]!.end <= at) s++;
    const span = spans[s];
    result.set(i, span && span.start <= at ? (span.quoted ? 'lazy-quote' : 'visible') : 'hidden');
  }
  return { readable: true, lines: result };
}

/** The one call into micromark (exported for the limits test, which counts calls and sizes). */
export function parse(markdown: string): Nodes {
  return fromMarkdown(markdown, { extensions: [gfm()], mdastExtensions: [gfmFromMarkdown()] });
}

// ── the window ──────────────────────────────────────────────────────────────

// Constructs that stay open across a blank line at the top level (fenced code,
// HTML blocks of CommonMark types 1–5) or act on the whole document (link
// reference and footnote definitions). Before the first of them, a
// non-indented line after a blank line starts with nothing open.
const LONG_REACH = /```|~~~|<[!?]|<(?:pre|script|style|textarea)|\]:/i;

/** The latest line at or before `first` where a parse can start with nothing open. */
function windowStart(body: string, lines: readonly Line[], first: number): number {
  const reach = body.search(LONG_REACH);
  const limit = reach === -1 ? Infinity : reach;
  for (let i = first; i > 0; i--) {
    const line = lines[i]!;
    if (line.start > limit) continue;
    // After a blank line, a line that starts in column 0 closes every list item, quote, paragraph and table.
    if (isBlank(lines[i - 1]!.text) && line.text.length > 0 && line.text[0] !== ' ' && line.text[0] !== '\t') return line.start;
  }
  return 0;
}

/** The end of the paragraph holding the last candidate: nothing after a blank line changes it (unless definitions follow). */
function windowEnd(body: string, lines: readonly Line[], last: number): number {
  for (let i = last + 1; i < lines.length; i++) {
    if (!isBlank(lines[i]!.text)) continue;
    const end = lines[i]!.start;
    return body.slice(end).includes(']:') ? body.length : end;
  }
  return body.length;
}

/** Nested container markers: every list/quote marker of a line after its first, and a first one that is indented. */
function nestedContainers(lines: readonly Line[], from: number, to: number): number {
  let n = 0;
  for (const line of lines) {
    if (line.start < from) continue;
    if (line.start >= to) break;
    const prefix = CONTAINER_PREFIX.exec(line.text)?.[0];
    if (!prefix) continue;
    const markers = prefix.match(CONTAINER_MARKER)!.length;
    n += markers - 1 + (/^(?: {2}|\t)/.test(prefix) ? 1 : 0);
    if (n > MAX_NESTED_CONTAINERS) return n;
  }
  return n;
}

const CONTAINER_PREFIX = /^(?:[ \t]*(?:>|[-+*](?=[ \t]|$)|\d{1,9}[.)](?=[ \t]|$)))+/;
const CONTAINER_MARKER = />|[-+*]|\d{1,9}[.)]/g;

// ── the tree ────────────────────────────────────────────────────────────────

interface Span {
  start: number;
  end: number;
  /** inside a block quote */
  quoted: boolean;
}

/** Every text node of a paragraph or heading, in document order, with its offsets in the body. */
function textSpans(tree: Nodes, offset: number): Span[] {
  const out: Span[] = [];
  // Iterative: a deeply nested tree must not exhaust the call stack.
  const stack: { node: Nodes; prose: boolean; quoted: boolean }[] = [{ node: tree, prose: false, quoted: false }];
  while (stack.length) {
    const { node, prose, quoted } = stack.pop()!;
    if (node.type === 'text') {
      const p = node.position;
      if (prose && p?.start.offset !== undefined && p.end.offset !== undefined) out.push({ start: offset + p.start.offset, end: offset + p.end.offset, quoted });
      continue;
    }
    if (!('children' in node)) continue; // code, html, inlineCode, definition, image, …
    const inProse = prose || node.type === 'paragraph' || node.type === 'heading';
    const inQuote = quoted || node.type === 'blockquote';
    for (let i = node.children.length - 1; i >= 0; i--) stack.push({ node: node.children[i] as Nodes, prose: inProse, quoted: inQuote });
  }
  return out;
}

function firstNonBlank(line: Line): number {
  let i = 0;
  while (i < line.text.length && (line.text[i] === ' ' || line.text[i] === '\t')) i++;
  return line.start + i;
}

function isBlank(text: string): boolean {
  return /^[ \t]*$/.test(text);
}
