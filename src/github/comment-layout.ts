// Which lines of a PR comment a reader sees as lines of text of their own.
//
// berth runs a command only from a line GitHub renders as visible text on its
// own line: not inside code (fenced, indented or inline), math (GitHub draws
// `$$` blocks, `$$…$$` and `$…$` with MathJax: a line there is a formula, or
// nothing at all with \phantom), a collapsed `<details>` (DETAILS_TAG), HTML, a link
// reference definition, a table, image alt text or a link title. Deciding that
// is CommonMark's job, so the comment is parsed by micromark with the GFM
// extensions and its syntax, with source positions, answers (the block pass
// reads micromark's events directly, the inline pass the mdast tree of
// `mdast-util-from-markdown`): a line counts when its first non-blank
// character lies in a text node of a paragraph or heading. A line that is in a block quote only
// by lazy continuation (it carries no `>`) is reported as such, so the caller
// can explain it. This module never decides what a command is.
//
// micromark is not linear on every input (nested lists and unclosed inline
// constructs cost quadratic time), so what it parses is bounded before it
// runs, and it runs at most twice per comment, never per line:
// - only the part of the comment that can affect the candidate lines is parsed
//   (a window from a line where nothing can still be open up to the end of the
//   last candidate's paragraph), holding at most MAX_PARSE_CHARS characters
//   (GitHub's own limit for a comment) and MAX_NESTED_CONTAINERS nested list or
//   quote markers;
// - first for blocks only; then, only when a candidate line continues a
//   paragraph that opened a code span, inline HTML, a link or an image before
//   it, those paragraphs alone for inline constructs, up to MAX_INLINE_COST.
// Past a limit nothing more is parsed and the caller is told the layout is
// unreadable, so nothing runs (fail closed).

import type { Nodes, Root } from 'mdast';
import { fromMarkdown } from 'mdast-util-from-markdown';
import { gfmFromMarkdown } from 'mdast-util-gfm';
import { gfm } from 'micromark-extension-gfm';
import { math } from 'micromark-extension-math';
import { parse, postprocess, preprocess } from 'micromark';
import { mathFromMarkdown } from 'mdast-util-math';

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
 * it renders. Parses only a bounded window of the body, at most twice.
 */
export function layoutOf(body: string, lines: readonly Line[], candidates: readonly number[]): Layout {
  const result = new Map<number, LineLayout>();
  if (!candidates.length) return { readable: true, lines: result };
  const firstLine = windowStart(body, lines, candidates[0]!);
  const from = lines[firstLine]!.start;
  const to = windowEnd(body, lines, candidates[candidates.length - 1]!);
  const size = to - from;
  if (size > MAX_PARSE_CHARS) {
    return { readable: false, why: `the Markdown around the command lines spans ${size.toLocaleString('en-US')} characters (berth reads at most ${MAX_PARSE_CHARS.toLocaleString('en-US')})` };
  }
  const nested = nestedContainers(lines, from, to);
  if (nested > MAX_NESTED_CONTAINERS) {
    return { readable: false, why: `it nests lists and quotes ${nested.toLocaleString('en-US')} times (berth reads at most ${MAX_NESTED_CONTAINERS.toLocaleString('en-US')})` };
  }

  // 1. Blocks: which lines are paragraph or heading text at all, and out of sight in a <details>.
  const blocks = blockProseOf(body.slice(from, to), from);
  const pending: { index: number; line: number; span: TextSpan }[] = [];
  let s = 0;
  for (const i of candidates) {
    const at = firstNonBlank(lines[i]!);
    while (s < blocks.spans.length && blocks.spans[s]!.end <= at) s++;
    const span = blocks.spans[s];
    if (!span || span.start > at || blocks.collapsed.has(span.prose)) {
      result.set(i, 'hidden');
      continue;
    }
    result.set(i, span.quoted ? 'lazy-quote' : 'visible');
    // Only a code span, math, inline HTML, a link or an image, opened earlier in the same
    // paragraph, can still hide the start of the line; none of them opens without ` $ < or [.
    if (blocks.prose[span.prose]!.firstOpener < at) pending.push({ index: i, line: i - firstLine + 1, span });
  }
  if (!pending.length) return { readable: true, lines: result };

  // 2. Inline: the paragraphs that need it, alone, each as written without its container markers.
  const needed = [...new Set(pending.map((p) => p.span.prose))];
  let cost = 0;
  for (const k of needed) cost += blocks.prose[k]!.scans * blocks.prose[k]!.length;
  if (cost > MAX_INLINE_COST) {
    const longest = Math.max(...needed.map((k) => blocks.prose[k]!.length));
    const scans = needed.reduce((n, k) => n + blocks.prose[k]!.scans, 0);
    return { readable: false, why: `a paragraph holding a command line is ${longest.toLocaleString('en-US')} characters long and holds ${scans.toLocaleString('en-US')} HTML comments, declarations or link ends, more than berth reads` };
  }
  let doc = '';
  const spanAt = new Map<TextSpan, number>();
  for (const k of needed) {
    if (doc) doc += '\n\n';
    for (const part of blocks.prose[k]!.parts) {
      if (typeof part === 'string') doc += part;
      else {
        spanAt.set(part, doc.length);
        doc += part.value;
      }
    }
  }
  // Reference links and images resolve against the definitions (which the window holds).
  for (const label of blocks.definitions) doc += `\n\n[${label}]: x`;
  const inline = proseOf(fromMarkdown(doc, INLINE), 0).spans;
  let t = 0;
  for (const p of pending) {
    const at = spanAt.get(p.span)! + lineStartIn(p.span, p.line - p.span.line);
    while (t < inline.length && inline[t]!.end <= at) t++;
    const span = inline[t];
    if (!span || span.start > at) result.set(p.index, 'hidden');
  }
  return { readable: true, lines: result };
}

/**
 * Inline work micromark may do on the paragraphs it parses, as (HTML comments,
 * declarations, instructions and `]`) × (paragraph length): an unclosed HTML
 * opener makes micromark read to the end of the paragraph, and each `]` (a link
 * end, or a destination left open) costs up to as much. (Unclosed code spans are
 * bounded by the number of distinct backtick run lengths.)
 */
export const MAX_INLINE_COST = 8_000_000;

const TEXT_CONSTRUCTS = ['attention', 'autolink', 'characterEscape', 'characterReference', 'codeText', 'hardBreakEscape', 'htmlText', 'labelEnd', 'labelStartImage', 'labelStartLink'];
const GFM_TEXT_CONSTRUCTS = ['emailAutolink', 'protocolAutolink', 'wwwAutolink', 'strikethrough', 'gfmFootnoteCall', 'gfmPotentialFootnoteCall', 'tasklistCheck'];
const FLOW_CONSTRUCTS = ['blockQuote', 'list', 'codeIndented', 'codeFenced', 'headingAtx', 'htmlFlow', 'setextUnderline', 'thematicBreak', 'definition', 'table', 'gfmFootnoteDefinition'];

/**
 * Block structure only, with GFM's tables and footnotes: paragraph text comes back as
 * written. (The autolink-literal transform is left out: it rewrites text nodes
 * without source positions, and a literal autolink hides nothing.)
 */
/** Exported for the equivalence test of blockProseOf. */
export const BLOCKS = {
  extensions: [gfm(), math(), { disable: { null: [...TEXT_CONSTRUCTS, ...GFM_TEXT_CONSTRUCTS, 'mathText'] } }],
  mdastExtensions: [...gfmFromMarkdown().filter((e) => !e.transforms), mathFromMarkdown()],
};
/**
 * The block pass's parser options (its text is read from the events, blockProseOf): BLOCKS without
 * the text-level parts of GFM and math. They are disabled there anyway, but registered they split
 * every paragraph's text at each character they could start at (every letter, for literal autolinks)
 * and are tried and refused there one by one.
 */
const { text: _gfmText, insideSpan: _gfmInsideSpan, attentionMarkers: _gfmMarkers, ...GFM_BLOCKS } = gfm();
const { text: _mathText, ...MATH_BLOCKS } = math();
const BLOCK_PARSE = { extensions: [GFM_BLOCKS, MATH_BLOCKS, BLOCKS.extensions[2]!] };
/**
 * Paragraph text alone: no blocks but definitions, and only CommonMark's inline
 * constructs that can hide a line (code spans, HTML, links, images, with escapes and
 * autolinks that decide where they start). Emphasis is left out: it hides nothing
 * and its delimiter matching costs quadratic time on hostile input.
 */
const INLINE = {
  extensions: [math(), { disable: { null: [...FLOW_CONSTRUCTS.filter((c) => c !== 'definition'), 'mathFlow', 'attention', 'characterReference'] } }],
  mdastExtensions: [mathFromMarkdown()],
};

// ── the window ──────────────────────────────────────────────────────────────

// Constructs that stay open across a blank line at the top level (fenced code,
// math blocks, HTML blocks of CommonMark types 1–5, a `<details>` as GitHub draws it) or act
// on the whole document (link reference and footnote definitions). Before the first of them, a
// non-indented line after a blank line starts with nothing open.
const LONG_REACH = /```|~~~|\$\$|<[!?]|<(?:pre|script|style|textarea|details)|\]:/i;

/** The latest line (index) at or before `first` where a parse can start with nothing open. */
function windowStart(body: string, lines: readonly Line[], first: number): number {
  const reach = body.search(LONG_REACH);
  const limit = reach === -1 ? Infinity : reach;
  for (let i = first; i > 0; i--) {
    const line = lines[i]!;
    if (line.start > limit) continue;
    // After a blank line, a line that starts in column 0 closes every list item, quote, paragraph and table.
    if (isBlank(lines[i - 1]!.text) && line.text.length > 0 && line.text[0] !== ' ' && line.text[0] !== '\t') return i;
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

interface TextSpan {
  /** offsets in the body */
  start: number;
  end: number;
  /** inside a block quote */
  quoted: boolean;
  /** the paragraph or heading it is in (index into Prose[]) */
  prose: number;
  /** its first line, 1-based, in the parsed text */
  line: number;
  value: string;
  /** start of each line of `value`, computed on first use */
  lineStarts?: number[];
}

interface Prose {
  /** its text as written (container markers and indentation removed): strings are hard breaks */
  parts: (TextSpan | string)[];
  length: number;
  /** body offset of its first ` $ < or [ (what a code span, math, HTML, a link or an image opens with), or Infinity */
  firstOpener: number;
  /** how many `<!`, `<?` and `]` it holds: where micromark reads on to a closer, or back to a label start */
  scans: number;
}

const OPENER = /[`$<[]/;
const SCAN = /<[!?]|\]/g;

/** Every text node of a paragraph or heading, in document order, with its offsets in the body; and those paragraphs. */
/** Exported for the equivalence test of blockProseOf. */
export function proseOf(tree: Root, offset: number): { spans: TextSpan[]; prose: Prose[]; definitions: string[] } {
  const spans: TextSpan[] = [];
  const prose: Prose[] = [];
  const definitions = new Map<string, string>();
  // Iterative: a deeply nested tree must not exhaust the call stack.
  const stack: { node: Nodes; prose: number; quoted: boolean }[] = [{ node: tree, prose: -1, quoted: false }];
  while (stack.length) {
    const { node, prose: k, quoted } = stack.pop()!;
    const p = node.position;
    if (node.type === 'text' || node.type === 'break') {
      if (k < 0 || p?.start.offset === undefined || p.end.offset === undefined) continue;
      const owner = prose[k]!;
      if (node.type === 'break') {
        owner.parts.push('\n');
        owner.length++;
        continue;
      }
      const span: TextSpan = { start: offset + p.start.offset, end: offset + p.end.offset, quoted, prose: k, line: p.start.line, value: node.value };
      spans.push(span);
      owner.parts.push(span);
      owner.length += node.value.length;
      if (owner.firstOpener === Infinity) {
        const first = node.value.search(OPENER);
        if (first !== -1) owner.firstOpener = openerOffset(span, first);
      }
      owner.scans += node.value.match(SCAN)?.length ?? 0;
      continue;
    }
    if (node.type === 'definition') definitions.set(node.identifier, node.label ?? node.identifier);
    if (!('children' in node)) continue; // code, html, inlineCode, definition, image, …
    let inProse = k;
    if (k < 0 && (node.type === 'paragraph' || node.type === 'heading')) {
      inProse = prose.length;
      prose.push({ parts: [], length: 0, firstOpener: Infinity, scans: 0 });
    }
    const inQuote = quoted || node.type === 'blockquote';
    for (let i = node.children.length - 1; i >= 0; i--) stack.push({ node: node.children[i] as Nodes, prose: inProse, quoted: inQuote });
  }
  return { spans, prose, definitions: [...definitions.values()] };
}

/**
 * GitHub draws a `<details>` collapsed, and what it holds — to its `</details>` — is out of sight until
 * someone opens it; CommonMark, though, ends the HTML block at the first blank line and reads what follows
 * as paragraphs. So the block pass counts the tags itself: an opening tag in an HTML block or written in
 * a paragraph's text (where a browser opens the element all the same), a closing tag only in an HTML block
 * (one in a paragraph may be in a code span: left open, which only hides more).
 */
const DETAILS_TAG = /<(\/?)details(?=[\s>/]|$)/gi;
const DETAILS_OPEN = /<details(?=[\s>/]|$)/gi;

/**
 * proseOf(fromMarkdown(text, BLOCKS), offset), read straight from micromark's
 * events: the block pass covers the whole window, and building the syntax tree
 * (a node for every block, cell and line) cost about as much as parsing it.
 * With every text construct disabled, a paragraph's or heading's text is its
 * `data` and line endings (one text node until a hard break, as
 * mdast-util-from-markdown merges them), a trailing hard break is a break, and
 * the line ending a setext heading's underline follows is not text.
 */
/** Exported for its equivalence test (test/comment-layout.events.test.ts). */
export function blockProseOf(text: string, offset: number): { spans: TextSpan[]; prose: Prose[]; definitions: string[]; collapsed: Set<number> } {
  const events = postprocess(parse(BLOCK_PARSE).document().write(preprocess()(text, undefined, true)));
  const spans: TextSpan[] = [];
  const prose: Prose[] = [];
  const definitions = new Map<string, string>();
  /** the paragraphs and headings a <details> holds (indices into prose) */
  const collapsed = new Set<number>();
  /** <details> elements open here, as GitHub draws the comment */
  let details = 0;
  let quotes = 0;
  let k = -1;
  /** inside a paragraph, or the text of a heading */
  let inText = false;
  let atHardBreak = false;
  let current: TextSpan | undefined;
  for (const [kind, token, context] of events) {
    const type = token.type;
    if (kind === 'enter') {
      if (type === 'blockQuote') quotes++;
      else if (type === 'paragraph' || type === 'atxHeading' || type === 'setextHeading') {
        k = prose.length;
        prose.push({ parts: [], length: 0, firstOpener: Infinity, scans: 0 });
        if (details > 0) collapsed.add(k);
        current = undefined;
        atHardBreak = false;
        if (type === 'paragraph') inText = true;
      } else if (type === 'atxHeadingText' || type === 'setextHeadingText') inText = true;
      else if (inText && (type === 'hardBreakTrailing' || type === 'hardBreakEscape')) {
        prose[k]!.parts.push('\n');
        prose[k]!.length++;
        current = undefined;
      }
      continue;
    }
    switch (type) {
      case 'blockQuote':
        quotes--;
        break;
      case 'paragraph':
      case 'atxHeading':
      case 'setextHeading':
        k = -1;
        inText = false;
        current = undefined;
        break;
      case 'atxHeadingText':
      case 'setextHeadingText':
        inText = false;
        break;
      case 'hardBreakTrailing':
      case 'hardBreakEscape':
        if (inText) atHardBreak = true;
        break;
      case 'definitionLabelString': {
        const label = context.sliceSerialize(token);
        definitions.set(normalizeLabel(label), label);
        break;
      }
      case 'htmlFlow': {
        // in order: `<details>…</details>` on one line closes what it opened
        const html = context.sliceSerialize(token);
        for (const m of html.matchAll(DETAILS_TAG)) details = m[1] ? Math.max(0, details - 1) : details + 1;
        break;
      }
      case 'lineEnding':
        if (!inText) break;
        if (atHardBreak) {
          atHardBreak = false;
          break;
        }
      // falls through: a line ending inside text is text
      case 'data': {
        if (!inText) break;
        const value = context.sliceSerialize(token);
        if (!current) {
          current = { start: offset + token.start.offset, end: offset + token.end.offset, quoted: quotes > 0, prose: k, line: token.start.line, value: '' };
          spans.push(current);
          prose[k]!.parts.push(current);
        }
        current.value += value;
        current.end = offset + token.end.offset;
        prose[k]!.length += value.length;
        // opened in the text: the rest of the paragraph, and what follows, is inside it (the paragraph's start too, to err hidden)
        const opened = value.includes('<') ? (value.match(DETAILS_OPEN)?.length ?? 0) : 0;
        if (opened) {
          details += opened;
          collapsed.add(k);
        }
        break;
      }
    }
  }
  for (const span of spans) {
    const owner = prose[span.prose]!;
    if (owner.firstOpener === Infinity) {
      const first = span.value.search(OPENER);
      if (first !== -1) owner.firstOpener = openerOffset(span, first);
    }
    owner.scans += span.value.match(SCAN)?.length ?? 0;
  }
  return { spans, prose, definitions: [...definitions.values()], collapsed };
}

/** A definition's identifier as mdast-util-from-markdown derives it from its label. */
function normalizeLabel(label: string): string {
  return label.replace(/[\t\n\r ]+/g, ' ').replace(/^ | $/g, '').toLowerCase().toUpperCase().toLowerCase();
}

/**
 * A body offset at or before that of the character at `index` of the span's value:
 * the value only drops characters of the source (container markers, indentation),
 * so this errs towards "an opener comes first", which costs a parse, never a miss.
 */
function openerOffset(span: TextSpan, index: number): number {
  return span.start + index;
}

/** Where line `n` (0-based) of a span's value starts in that value. */
function lineStartIn(span: TextSpan, n: number): number {
  if (!span.lineStarts) {
    span.lineStarts = [0];
    const re = /\r\n|\r|\n/g;
    for (let m = re.exec(span.value); m; m = re.exec(span.value)) span.lineStarts.push(m.index + m[0].length);
  }
  return span.lineStarts[n] ?? span.value.length;
}

function firstNonBlank(line: Line): number {
  let i = 0;
  while (i < line.text.length && (line.text[i] === ' ' || line.text[i] === '\t')) i++;
  return line.start + i;
}

function isBlank(text: string): boolean {
  return /^[ \t]*$/.test(text);
}
