// The PR comment command parser: pure, total and linear in the comment size.
//
// A command is a line of its own starting with `/` and a command word, in a
// comment that holds exactly one such line. What a reader of the rendered
// comment sees as code, a quote or hidden HTML is never a command, so the
// comment is read the way GitHub renders it: a small CommonMark block scanner
// (block quotes, list items, fenced / indented code, HTML blocks, lazy
// continuation) and, inside paragraphs, code spans and HTML comments.
//
// Fail-safe by construction: anything that merely looks like a command (a
// near-miss word, look-alike or invisible Unicode, trailing text, a command
// that Markdown folds into a quote) is reported as `invalid` with the reason,
// and never executed. Ordinary prose — including `/usr/bin` mid-line or a
// path on a line of its own — is `none`, so berth stays quiet.

export const COMMAND_NAMES = ['plan', 'apply', 'stop', 'unlock', 'rollback', 'status', 'help'] as const;
export type CommandName = (typeof COMMAND_NAMES)[number];

export type Command =
  | { name: 'plan'; envs: string[] }
  | { name: 'apply'; env: string }
  | { name: 'stop'; env?: string }
  | { name: 'unlock'; env?: string }
  | { name: 'rollback'; env: string }
  | { name: 'status'; env?: string }
  | { name: 'help' };

export interface InvalidCommand {
  kind: 'invalid';
  /** what is wrong, Markdown, safe to post (user text is in inline code) */
  problem: string;
  /** the command the user probably meant, plain text (`/apply staging`) */
  suggestion?: string;
}

export type ParseResult = { kind: 'none' } | { kind: 'command'; command: Command } | InvalidCommand;

/**
 * Comments longer than this are not scanned (GitHub itself caps comment bodies
 * at 65,536 characters, so only a forged or foreign payload is this large).
 */
export const MAX_COMMENT_CHARS = 1_048_576;
/** Container nesting beyond this is not followed: deeper lines are never commands. */
const MAX_NESTING = 100;
/** Look-alike folding reads at most this much of a line. */
const MAX_FOLD_CHARS = 512;

interface Spec {
  min: number;
  max: number;
  usage: string;
  does: string;
}

const SPECS: Record<CommandName, Spec> = {
  plan: {
    min: 0,
    max: Infinity,
    usage: '/plan [env…]',
    does: 'Plan the named environments (every environment when none is named): updates the plan comment and the `berth / <env>` check runs.',
  },
  apply: {
    min: 1,
    max: 1,
    usage: '/apply <env>',
    does: "Apply this PR's plan to `<env>`. Takes the environment's lock for this PR until the PR is merged or closed.",
  },
  stop: {
    min: 0,
    max: 1,
    usage: '/stop [env]',
    does: "Stop this PR's apply in progress on `env` (or on every environment): running steps finish, nothing new starts.",
  },
  unlock: {
    min: 0,
    max: 1,
    usage: '/unlock [env]',
    does: "Release this PR's lock on `env` (or every lock it holds) so other PRs can apply.",
  },
  rollback: {
    min: 1,
    max: 1,
    usage: '/rollback <env>',
    does: 'Re-apply the last completed deployment of `<env>` before the current one.',
  },
  status: {
    min: 0,
    max: 1,
    usage: '/status [env]',
    does: "Show each environment's lock (who holds it, since when), its running apply with progress, and its last completed applies.",
  },
  help: { min: 0, max: 0, usage: '/help', does: 'Show this table.' },
};

const COMMAND_SET: ReadonlySet<string> = new Set(COMMAND_NAMES);

// ── public API ──────────────────────────────────────────────────────────────

/** Parse a PR comment body. `knownEnvs` are the configured environment names, in promotion order. */
export function parseCommands(body: string, knownEnvs: readonly string[]): ParseResult {
  if (body.length > MAX_COMMENT_CHARS) {
    // Not scanned. Stay quiet unless a line plausibly starts with a command.
    if (!/(?:^|[\r\n])[ \t]*[/\uFF0F]/.test(body)) return NONE;
    return {
      kind: 'invalid',
      problem: `This comment is ${body.length.toLocaleString('en-US')} characters long; berth reads commands only from comments of at most ${MAX_COMMENT_CHARS.toLocaleString('en-US')} characters, so nothing was run. Post the command in a short comment of its own.`,
    };
  }
  const lines = splitLines(body);
  const hits: { line: number; text: string; result: LineResult }[] = [];
  let total = 0;
  for (const para of scanBlocks(lines)) {
    const hidden = hiddenLineStarts(para);
    for (let i = 0; i < para.lines.length; i++) {
      const pl = para.lines[i]!;
      if (pl.quoted === 'visible' || hidden[i]) continue;
      const raw = lines[pl.index]!;
      if (hits.length >= 3) {
        // The answer is already "more than one command": only count the rest.
        if (isCommandLike(raw, knownEnvs)) total++;
        continue;
      }
      let result = evaluateLine(raw, knownEnvs);
      if (!result) continue;
      if (pl.quoted === 'lazy') result = lazyQuote(raw, result);
      total++;
      hits.push({ line: pl.index + 1, text: raw, result });
    }
  }
  if (total === 0) return NONE;
  if (total === 1) return hits[0]!.result;
  const listed = hits.map((h) => `line ${h.line}: ${code(display(trimAscii(h.text)))}`).join(', ');
  return {
    kind: 'invalid',
    problem: `This comment has ${total} command lines (${listed}${total > hits.length ? ', …' : ''}), but berth takes **one command per comment**, so none of them was run. Post each command as a comment of its own.`,
  };
}

/** The Markdown table of commands shown by `/help` and under every invalid-command reply. */
export function helpTable(knownEnvs: readonly string[]): string {
  const rows = COMMAND_NAMES.map((n) => `| ${code(SPECS[n].usage)} | ${SPECS[n].does} |`);
  const envs = knownEnvs.length
    ? `Environments, in promotion order: ${knownEnvs.map(code).join(', ')}.`
    : "This repository's berth configuration defines no environments yet.";
  return [
    '| Command | What it does |',
    '| --- | --- |',
    ...rows,
    '',
    envs,
    '',
    'Write the command alone on a line of its own, one command per comment. Lines in code blocks, inline code or `>` quotes are ignored.',
  ].join('\n');
}

/** The reply to an invalid command: what is wrong, what was probably meant, and the help table. */
export function renderInvalid(result: InvalidCommand, knownEnvs: readonly string[]): string {
  const parts = ['### ⚠️ berth did not run this command', '', result.problem];
  if (result.suggestion) parts.push('', `Did you mean ${code(result.suggestion)}?`);
  parts.push('', helpTable(knownEnvs));
  return parts.join('\n');
}

/** The canonical text of a command (`/plan staging production`). */
export function commandText(c: Command): string {
  switch (c.name) {
    case 'plan':
      return ['/plan', ...c.envs].join(' ');
    case 'apply':
    case 'rollback':
      return `/${c.name} ${c.env}`;
    case 'stop':
    case 'unlock':
    case 'status':
      return c.env === undefined ? `/${c.name}` : `/${c.name} ${c.env}`;
    case 'help':
      return '/help';
  }
}

// ── one line ────────────────────────────────────────────────────────────────

const NONE: ParseResult = Object.freeze({ kind: 'none' }) as ParseResult;

type LineResult = Exclude<ParseResult, { kind: 'none' }>;

/** null when the line is not command-like at all. */
function evaluateLine(raw: string, envs: readonly string[]): LineResult | null {
  const t = trimAscii(raw);
  if (t === '') return null;
  const first = t.charCodeAt(0);
  if (first < 0x80 && first !== 0x2f /* / */) return null;
  if (first === 0x2f) {
    const literal = literalTokens(t, envs);
    if (literal) return evaluateTokens(literal[0]!, literal.slice(1), envs);
  }
  return evaluateLookAlike(t, envs);
}

/** Whether evaluateLine would return a result, without composing it. */
function isCommandLike(raw: string, envs: readonly string[]): boolean {
  const t = trimAscii(raw);
  if (t === '') return false;
  const first = t.charCodeAt(0);
  if (first < 0x80 && first !== 0x2f) return false;
  if (first === 0x2f) {
    const literal = literalTokens(t, envs);
    if (literal) return COMMAND_SET.has(literal[0]!) || nearestCommand(literal[0]!) !== undefined;
  }
  const folded = fold(t.length > MAX_FOLD_CHARS ? t.slice(0, MAX_FOLD_CHARS) : t).trim();
  if (!folded.startsWith('/')) return false;
  const word = folded.slice(1).split(/\s+/, 1)[0]!;
  return COMMAND_SET.has(word) || nearestCommand(word) !== undefined;
}

/** `[word, ...args]` when the line is plain: ASCII, or non-ASCII only in arguments that are exactly a configured environment. */
function literalTokens(t: string, envs: readonly string[]): string[] | null {
  const tokens = t.slice(1).split(/[ \t]+/);
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i]!;
    if (!PLAIN.test(tok) && !(i > 0 && envs.includes(tok))) return null;
  }
  return tokens;
}

const PLAIN = /^[\x21-\x7e]*$/;

function evaluateTokens(word: string, args: string[], envs: readonly string[]): LineResult | null {
  if (!COMMAND_SET.has(word)) {
    const near = nearestCommand(word);
    if (!near) return null;
    const lower = word.toLowerCase() === near;
    return {
      kind: 'invalid',
      problem: `${code(display('/' + word))} is not a berth command${lower ? ' (commands are lowercase)' : ''}.`,
      suggestion: suggestCommand(near, args, envs),
    };
  }
  const name = word as CommandName;
  const spec = SPECS[name];
  const usage = code(spec.usage);

  if (args.length < spec.min) {
    return {
      kind: 'invalid',
      problem: `${code('/' + name)} needs an environment: ${usage}, where ${code('<env>')} is ${envChoice(envs)}.`,
      ...(envs.length === 1 ? { suggestion: `/${name} ${envs[0]}` } : {}),
    };
  }

  if (args.length > spec.max) {
    const head = args.slice(0, spec.max);
    const extra = args.slice(spec.max);
    if (spec.max > 0 && args.every((a) => envs.includes(a))) {
      const how = spec.min === 1 ? 'exactly one environment' : 'at most one environment';
      const hint = name === 'stop' || name === 'unlock' ? `; leave it out to ${name} every environment of this PR` : '; post one comment per environment';
      return {
        kind: 'invalid',
        problem: `${code('/' + name)} takes ${how}, but this names ${args.length}: ${listed(args)}${hint}.`,
      };
    }
    const shown = ['/' + name, ...head].join(' ');
    return {
      kind: 'invalid',
      problem: `Unexpected text after ${code(display(shown))}: ${code(display(extra.join(' ')))}. A command must be alone on its line; put anything else on another line.`,
      suggestion: suggestCommand(name, head, envs),
    };
  }

  const unknown = args.find((a) => !envs.includes(a));
  if (unknown !== undefined) {
    const fixed = args.map((a) => (envs.includes(a) ? a : suggestEnv(a, envs)));
    const caseOnly = envs.some((e) => e.toLowerCase() === unknown.toLowerCase());
    const where = envs.length
      ? `environments are ${envs.map(code).join(', ')}${caseOnly ? ' (names are case-sensitive)' : ''}`
      : "this repository's berth configuration defines no environments";
    const trailing = name === 'plan' ? ' A command must be alone on its line.' : '';
    return {
      kind: 'invalid',
      problem: `${code(display(unknown))} is not an environment of this repository: ${where}.${trailing}`,
      ...(fixed.every((f): f is string => f !== undefined) ? { suggestion: commandText(build(name, dedupe(fixed))) } : {}),
    };
  }

  return { kind: 'command', command: build(name, dedupe(args)) };
}

function build(name: CommandName, envs: string[]): Command {
  switch (name) {
    case 'plan':
      return { name, envs };
    case 'apply':
    case 'rollback':
      return { name, env: envs[0]! };
    case 'stop':
    case 'unlock':
    case 'status':
      return envs.length ? { name, env: envs[0]! } : { name };
    case 'help':
      return { name };
  }
}

function dedupe(xs: string[]): string[] {
  return [...new Set(xs)];
}

/** The corrected command for a near-miss: the right word, arguments mapped to known environments. */
function suggestCommand(name: CommandName, args: string[], envs: readonly string[]): string {
  const spec = SPECS[name];
  const fixed = args.slice(0, spec.max).map((a) => (envs.includes(a) ? a : (suggestEnv(a, envs) ?? a)));
  if (fixed.length < spec.min) fixed.push(envs.length === 1 ? envs[0]! : '<env>');
  return ['/' + name, ...fixed.map((a) => display(a, 40))].join(' ');
}

/** Up to five user-given names, each in inline code. */
function listed(names: readonly string[]): string {
  const shown = names.slice(0, 5).map((a) => code(display(a)));
  if (names.length > 5) shown.push('…');
  return shown.join(', ');
}

function envChoice(envs: readonly string[]): string {
  if (!envs.length) return "an environment (this repository's berth configuration defines none)";
  if (envs.length === 1) return code(envs[0]!);
  return `one of ${envs.map(code).join(', ')}`;
}

function lazyQuote(raw: string, inner: LineResult): LineResult {
  const suggestion = inner.kind === 'command' ? commandText(inner.command) : inner.suggestion;
  return {
    kind: 'invalid',
    problem: `${code(display(trimAscii(raw)))} comes right after a \`>\` quote line, so Markdown makes it part of the quote, and quoted commands are not run. Leave a blank line between the quote and the command.`,
    ...(suggestion ? { suggestion } : {}),
  };
}

// ── look-alikes ─────────────────────────────────────────────────────────────

function evaluateLookAlike(t: string, envs: readonly string[]): LineResult | null {
  const head = t.length > MAX_FOLD_CHARS ? t.slice(0, MAX_FOLD_CHARS) : t;
  const folded = fold(head).trim();
  if (!folded.startsWith('/')) return null;
  const tokens = folded.slice(1).split(/\s+/);
  const word = tokens[0]!;
  const near = COMMAND_SET.has(word) ? (word as CommandName) : nearestCommand(word);
  if (!near) return null;
  const asTyped = evaluateTokens(near, tokens.slice(1), envs);
  const suggestion = asTyped?.kind === 'command' ? commandText(asTyped.command) : asTyped?.suggestion;
  const odd = suspiciousChars(head);
  const list = odd.slice(0, 3).map((o) => `${o.name} at column ${o.column}`);
  if (odd.length > 3) list.push(`${odd.length - 3} more`);
  return {
    kind: 'invalid',
    problem: `${code(display(head, 80, true))} looks like a berth command but contains look-alike or invisible characters (${list.join(', ')}), so it was not run. Type the command in plain ASCII.`,
    ...(suggestion ? { suggestion } : {}),
  };
}

// Marks, format controls (zero-width space/joiners, bidi controls, soft hyphen,
// BOM) and fillers that render as nothing.
const INVISIBLE = /[\p{Mn}\p{Me}\p{Cf}\u034f\u115f\u1160\u3164\uffa0\u2800]/gu;
const SPACES = /[\p{Zs}\u2028\u2029\u0085\u000b\u000c]/gu;

// Characters that NFKC leaves alone but that render like ASCII letters or `/`
// (after Unicode's confusables.txt, the subset that can spell a command).
const CONFUSABLE: Record<string, string> = {};
for (const [to, from] of Object.entries({
  '/': '\u2044\u2215\u29f8\u2571\u27cb\u1735\u3033\u4e3f\u30ce\u2cc6\u2f03',
  a: 'аАαΑɑ',
  b: 'ВΒЬ',
  c: 'сСϲϹ',
  d: 'ԁ',
  e: 'еЕεΕ',
  g: 'ɡ',
  h: 'һНΗհ',
  i: 'іІιΙıɩӀ',
  j: 'јЈϳȷ',
  k: 'кКκΚ',
  l: 'ӏłƚ',
  m: 'МΜ',
  n: 'ΝՈո',
  o: 'оОοΟօ',
  p: 'рРρΡ',
  q: 'ԛԚ',
  s: 'ѕЅ',
  t: 'ТΤτ',
  u: 'υս',
  v: 'ν',
  w: 'ԝԜ',
  x: 'хХχΧ',
  y: 'уУΥҮ',
  z: 'Ζ',
})) {
  for (const ch of from) CONFUSABLE[ch] = to;
}

/** What a line reads as once look-alikes and invisibles are folded away: lowercase ASCII where possible. */
function fold(s: string): string {
  let out = '';
  for (const ch of s.normalize('NFKD').replace(INVISIBLE, '').replace(SPACES, ' ')) out += CONFUSABLE[ch] ?? ch;
  return out.normalize('NFKC').toLowerCase();
}

function suspiciousChars(s: string): { name: string; column: number }[] {
  const out: { name: string; column: number }[] = [];
  let column = 0;
  for (const ch of s) {
    column++;
    const cp = ch.codePointAt(0)!;
    if ((cp >= 0x20 && cp < 0x7f) || ch === '\t') continue;
    const hex = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
    out.push({ name: `${CHAR_NAMES[ch] ? `${hex} ${CHAR_NAMES[ch]}` : hex}${isInvisible(ch) ? ' (invisible)' : ''}`, column });
  }
  return out;
}

function isInvisible(ch: string): boolean {
  if (ch.charCodeAt(0) < 0x80) return false;
  INVISIBLE.lastIndex = 0;
  const r = INVISIBLE.test(ch) || /[\p{Zs}\u2028\u2029]/u.test(ch);
  INVISIBLE.lastIndex = 0;
  return r;
}

const CHAR_NAMES: Record<string, string> = {
  '\u00a0': 'no-break space',
  '\u200b': 'zero-width space',
  '\u200c': 'zero-width non-joiner',
  '\u200d': 'zero-width joiner',
  '\u2060': 'word joiner',
  '\ufeff': 'zero-width no-break space',
  '\u00ad': 'soft hyphen',
  '\u202e': 'right-to-left override',
  '\uff0f': 'fullwidth solidus',
  '\u2044': 'fraction slash',
  '\u2215': 'division slash',
  а: 'Cyrillic a',
  е: 'Cyrillic e',
  о: 'Cyrillic o',
  р: 'Cyrillic er',
  с: 'Cyrillic es',
  у: 'Cyrillic u',
  х: 'Cyrillic ha',
  і: 'Cyrillic i',
  ο: 'Greek omicron',
  α: 'Greek alpha',
};

// ── near misses ─────────────────────────────────────────────────────────────

/** The command a word is a plausible typo of, or undefined. */
function nearestCommand(word: string): CommandName | undefined {
  if (word.length === 0 || word.length > 12) return undefined;
  const w = word.toLowerCase();
  let best: CommandName | undefined;
  let bestD = Infinity;
  for (const c of COMMAND_NAMES) {
    const max = c.length <= 5 ? 1 : 2;
    if (Math.abs(w.length - c.length) > max) continue;
    const d = distance(w, c);
    if (d <= max && d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best;
}

/** The configured environment a mistyped name most likely means (case-insensitive), or undefined. */
export function suggestEnv(token: string, envs: readonly string[]): string | undefined {
  if (token.length > 80) return undefined;
  const t = token
    .replace(/^[`'"<([]+/, '')
    .replace(/[`'">)\].,;:!?]+$/, '')
    .toLowerCase();
  if (!t) return undefined;
  let best: string | undefined;
  let bestScore = Infinity;
  for (const env of envs) {
    const e = env.toLowerCase();
    let score: number;
    if (e === t) score = 0;
    else {
      const d = distance(t, e);
      if (d <= Math.max(1, Math.floor(e.length / 3))) score = 10 + d;
      else if (t.length >= 2 && e.startsWith(t)) score = 20;
      else if (e.length >= 2 && t.startsWith(e)) score = 25;
      else if (t.length >= 2 && t[0] === e[0] && isSubsequence(t, e)) score = 30;
      else continue;
    }
    if (score < bestScore) {
      best = env;
      bestScore = score;
    }
  }
  return best;
}

function isSubsequence(needle: string, hay: string): boolean {
  let j = 0;
  for (let i = 0; i < hay.length && j < needle.length; i++) if (hay[i] === needle[j]) j++;
  return j === needle.length;
}

/** Optimal string alignment distance (Levenshtein plus adjacent transpositions). */
export function distance(a: string, b: string): number {
  if (a === b) return 0;
  const n = a.length;
  const m = b.length;
  if (!n) return m;
  if (!m) return n;
  if (rows.length < 3 * (m + 1)) rows = new Int32Array(3 * (m + 1));
  // three rolling rows in one buffer: i-2, i-1, i
  let prev2 = 0;
  let prev = m + 1;
  let cur = 2 * (m + 1);
  for (let j = 0; j <= m; j++) rows[prev + j] = j;
  for (let i = 1; i <= n; i++) {
    rows[cur] = i;
    const ai = a.charCodeAt(i - 1);
    for (let j = 1; j <= m; j++) {
      const bj = b.charCodeAt(j - 1);
      let v = Math.min(rows[prev + j]! + 1, rows[cur + j - 1]! + 1, rows[prev + j - 1]! + (ai === bj ? 0 : 1));
      if (i > 1 && j > 1 && ai === b.charCodeAt(j - 2) && a.charCodeAt(i - 2) === bj) v = Math.min(v, rows[prev2 + j - 2]! + 1);
      rows[cur + j] = v;
    }
    const t = prev2;
    prev2 = prev;
    prev = cur;
    cur = t;
  }
  return rows[prev + m]!;
}

let rows = new Int32Array(64);

// ── Markdown block structure ────────────────────────────────────────────────

function splitLines(body: string): string[] {
  return body.split(/\r\n|\r|\n/);
}

interface ParaLine {
  /** index into the comment's lines */
  index: number;
  /** 'visible': the line itself carries `>`; 'lazy': it continues a quote without one */
  quoted: 'no' | 'visible' | 'lazy';
  /** the paragraph content of the line (container markers and indentation removed) */
  content: string;
}

interface Paragraph {
  lines: ParaLine[];
}

interface Container {
  quote: boolean;
  /** list items: columns of indentation their content needs, relative to the parent's content */
  width: number;
  emptyStart: boolean;
  hasContent: boolean;
}

type HtmlEnd = RegExp | 'blank';
type Leaf =
  | { t: 'none' }
  | { t: 'para' }
  | { t: 'fence'; ch: string; len: number }
  | { t: 'indented' }
  | { t: 'html'; end: HtmlEnd };

const LEAF_NONE: Leaf = { t: 'none' };

/**
 * The paragraphs of a comment, per CommonMark's block rules for the blocks
 * that matter here. Lines in code, HTML blocks, headings and breaks are not
 * paragraph lines and so are never commands.
 */
function scanBlocks(lines: string[]): Paragraph[] {
  const out: Paragraph[] = [];
  const stack: Container[] = [];
  let leaf: Leaf = LEAF_NONE;
  let para: Paragraph | undefined;
  const cur = new Cursor();

  const addPara = (index: number, quoted: ParaLine['quoted'], content: string) => {
    if (leaf.t !== 'para' || !para) {
      para = { lines: [] };
      out.push(para);
      leaf = { t: 'para' };
    }
    para.lines.push({ index, quoted, content });
  };

  for (let index = 0; index < lines.length; index++) {
    const line = expandTabs(lines[index]!);
    cur.reset(line);
    let pos = 0;

    // 1. Which open containers does this line continue?
    let matched = 0;
    let quotesMatched = 0;
    for (; matched < stack.length; matched++) {
      const c = stack[matched]!;
      const nns = cur.nonSpace(pos);
      const blank = nns === line.length;
      if (c.quote) {
        if (blank || nns - pos > 3 || line[nns] !== '>') break;
        pos = nns + 1;
        if (line[pos] === ' ') pos++;
        quotesMatched++;
      } else if (blank) {
        if (c.emptyStart && !c.hasContent) break;
      } else if (nns - pos >= c.width) {
        pos += c.width;
      } else break;
    }

    let nns = cur.nonSpace(pos);
    let blank = nns === line.length;

    // 2. Continue the open leaf block, or continue a paragraph lazily.
    if (matched === stack.length) {
      if (leaf.t === 'fence') {
        if (nns - pos <= 3 && closesFence(line, nns, leaf)) leaf = LEAF_NONE;
        continue;
      }
      if (leaf.t === 'html') {
        if (leaf.end === 'blank' ? blank : leaf.end.test(line.slice(pos))) leaf = LEAF_NONE;
        continue;
      }
      if (leaf.t === 'indented') {
        if (blank || nns - pos >= 4) continue;
        leaf = LEAF_NONE;
      }
    } else {
      if (leaf.t === 'para' && !blank && !interruptsParagraph(line, nns, nns - pos)) {
        const quotesOpen = stack.reduce((n, c) => n + (c.quote ? 1 : 0), 0);
        addPara(index, quotesMatched ? 'visible' : quotesOpen ? 'lazy' : 'no', line.slice(nns));
        continue;
      }
      stack.length = matched;
      leaf = LEAF_NONE;
    }

    // 3. New containers: block quotes and list items.
    for (;;) {
      nns = cur.nonSpace(pos);
      if (nns === line.length || nns - pos > 3) break;
      if (line[nns] === '>') {
        stack.push({ quote: true, width: 0, emptyStart: false, hasContent: true });
        pos = nns + 1;
        if (line[pos] === ' ') pos++;
        leaf = LEAF_NONE;
      } else {
        const m = listMarker(line, nns);
        if (!m || thematicBreak(line, nns)) break;
        if (leaf.t === 'para' && (m.empty || (m.ordered && m.start !== 1))) break;
        stack.push({ quote: false, width: nns - pos + m.width, emptyStart: m.empty, hasContent: false });
        pos = m.empty ? line.length : nns + m.width;
        leaf = LEAF_NONE;
      }
      if (stack.length > MAX_NESTING) return out; // deeper structure is not followed: nothing after this is a command
    }

    // 4. The leaf block this line belongs to.
    nns = cur.nonSpace(pos);
    blank = nns === line.length;
    if (blank) {
      if (leaf.t === 'para') leaf = LEAF_NONE;
      continue;
    }
    for (const c of stack) c.hasContent = true;
    const indent = nns - pos;
    const quoted = stack.some((c) => c.quote) ? 'visible' : 'no';
    if (indent >= 4) {
      if (leaf.t === 'para') addPara(index, quoted, line.slice(nns));
      else leaf = { t: 'indented' };
      continue;
    }
    const fence = opensFence(line, nns);
    if (fence) {
      leaf = fence;
      continue;
    }
    const html = htmlBlockStart(line, nns, leaf.t === 'para');
    if (html) {
      leaf = html !== 'blank' && html.test(line.slice(nns)) ? LEAF_NONE : { t: 'html', end: html };
      continue;
    }
    if (atxHeading(line, nns) || thematicBreak(line, nns) || (leaf.t === 'para' && setextUnderline(line, nns))) {
      leaf = LEAF_NONE;
      continue;
    }
    addPara(index, quoted, line.slice(nns));
  }
  return out;
}

/** Finds the next non-space column, remembering the run it last scanned so repeated queries stay linear. */
class Cursor {
  private line = '';
  private from = 0;
  private to = 0;
  reset(line: string) {
    this.line = line;
    this.from = 0;
    this.to = -1;
  }
  nonSpace(pos: number): number {
    if (pos >= this.from && pos <= this.to) return this.to;
    let i = pos;
    while (i < this.line.length && this.line.charCodeAt(i) === 0x20) i++;
    this.from = pos;
    this.to = i;
    return i;
  }
}

function expandTabs(line: string): string {
  if (!line.includes('\t')) return line;
  let out = '';
  for (const ch of line) {
    if (ch === '\t') out += ' '.repeat(4 - (out.length % 4));
    else out += ch;
  }
  return out;
}

function runLength(line: string, at: number, ch: string): number {
  let i = at;
  while (line[i] === ch) i++;
  return i - at;
}

function restIsBlank(line: string, from: number): boolean {
  for (let i = from; i < line.length; i++) if (line[i] !== ' ') return false;
  return true;
}

function opensFence(line: string, at: number): Leaf | undefined {
  const ch = line[at];
  if (ch !== '`' && ch !== '~') return undefined;
  const len = runLength(line, at, ch);
  if (len < 3) return undefined;
  if (ch === '`' && line.indexOf('`', at + len) !== -1) return undefined; // a backtick info string cannot hold backticks
  return { t: 'fence', ch, len };
}

function closesFence(line: string, at: number, fence: { ch: string; len: number }): boolean {
  const len = runLength(line, at, fence.ch);
  return len >= fence.len && restIsBlank(line, at + len);
}

function atxHeading(line: string, at: number): boolean {
  const n = runLength(line, at, '#');
  return n >= 1 && n <= 6 && (at + n === line.length || line[at + n] === ' ');
}

function thematicBreak(line: string, at: number): boolean {
  const ch = line[at];
  if (ch !== '*' && ch !== '-' && ch !== '_') return false;
  let count = 0;
  for (let i = at; i < line.length; i++) {
    if (line[i] === ch) count++;
    else if (line[i] !== ' ') return false;
  }
  return count >= 3;
}

function setextUnderline(line: string, at: number): boolean {
  const ch = line[at];
  if (ch !== '=' && ch !== '-') return false;
  return restIsBlank(line, at + runLength(line, at, ch));
}

interface ListMarker {
  width: number;
  empty: boolean;
  ordered: boolean;
  start: number;
}

function listMarker(line: string, at: number): ListMarker | undefined {
  let end = at;
  let ordered = false;
  let start = 0;
  const ch = line[at];
  if (ch === '-' || ch === '+' || ch === '*') end = at + 1;
  else {
    while (end - at < 10 && line.charCodeAt(end) >= 0x30 && line.charCodeAt(end) <= 0x39) end++;
    if (end === at || end - at > 9 || (line[end] !== '.' && line[end] !== ')')) return undefined;
    start = Number(line.slice(at, end));
    ordered = true;
    end++;
  }
  const markerLen = end - at;
  if (end === line.length) return { width: markerLen + 1, empty: true, ordered, start };
  if (line[end] !== ' ') return undefined;
  const spaces = runLength(line, end, ' ');
  if (end + spaces === line.length) return { width: markerLen + 1, empty: true, ordered, start };
  return { width: markerLen + (spaces >= 5 ? 1 : spaces), empty: false, ordered, start };
}

const HTML_BLOCK_6 =
  /^<\/?(?:address|article|aside|base|basefont|blockquote|body|caption|center|col|colgroup|dd|details|dialog|dir|div|dl|dt|fieldset|figcaption|figure|footer|form|frame|frameset|h[1-6]|head|header|hr|html|iframe|legend|li|link|main|menu|menuitem|nav|noframes|ol|optgroup|option|p|param|search|section|summary|table|tbody|td|tfoot|th|thead|title|tr|track|ul)(?:[ >]|\/>|$)/i;
const HTML_BLOCK_7 =
  /^(?:<[A-Za-z][A-Za-z0-9-]*(?: +[A-Za-z_:][\w.:-]*(?: *= *(?:[^ "'=<>`]+|'[^']*'|"[^"]*"))?)* *\/?>|<\/[A-Za-z][A-Za-z0-9-]* *>) *$/;

/** The end condition of the HTML block this line starts, if it starts one (CommonMark types 1–7). */
function htmlBlockStart(line: string, at: number, inParagraph: boolean): HtmlEnd | undefined {
  if (line[at] !== '<') return undefined;
  const head = line.slice(at, at + 16);
  if (/^<(?:pre|script|style|textarea)(?:[ >]|$)/i.test(head)) return /<\/(?:pre|script|style|textarea)>/i;
  if (head.startsWith('<!--')) return /-->/;
  if (head.startsWith('<?')) return /\?>/;
  if (head.startsWith('<![CDATA[')) return /\]\]>/;
  if (/^<![A-Za-z]/.test(head)) return />/;
  if (HTML_BLOCK_6.test(line.slice(at, at + 16))) return 'blank';
  if (!inParagraph && line.length - at <= 1000 && HTML_BLOCK_7.test(line.slice(at))) return 'blank';
  return undefined;
}

/**
 * Whether a line that does not continue the open containers starts a block of
 * its own. If not, it is a lazy continuation of the open paragraph (which may
 * sit in a block quote the line does not repeat). As in the reference
 * implementation, the paragraph-interruption limits on list items (empty, or
 * ordered from other than 1) do not apply here: the paragraph is not in the
 * line's container.
 */
function interruptsParagraph(line: string, at: number, indent: number): boolean {
  if (indent >= 4) return false;
  if (line[at] === '>') return true;
  if (opensFence(line, at) || atxHeading(line, at) || thematicBreak(line, at)) return true;
  if (htmlBlockStart(line, at, true)) return true; // type 7 never interrupts a paragraph, lazily or not
  return !!listMarker(line, at);
}

// ── inline: code spans and HTML comments ───────────────────────────────────

/** For each line of a paragraph, whether it starts inside a code span or an HTML comment (so it is not a line of its own). */
function hiddenLineStarts(para: Paragraph): boolean[] {
  const hidden = new Array<boolean>(para.lines.length).fill(false);
  if (para.lines.length < 2 || !para.lines.some((l, i) => i > 0 && mayBeCommand(l.content))) return hidden;
  const starts: number[] = [];
  let text = '';
  for (const l of para.lines) {
    if (starts.length) text += '\n';
    starts.push(text.length);
    text += l.content;
  }
  const spans = inlineHiddenSpans(text);
  let s = 0;
  for (let i = 0; i < starts.length; i++) {
    while (s < spans.length && spans[s]![1] <= starts[i]!) s++;
    if (s < spans.length && spans[s]![0] < starts[i]!) hidden[i] = true;
  }
  return hidden;
}

function mayBeCommand(content: string): boolean {
  const c = content.charCodeAt(0);
  return c === 0x2f || c >= 0x80;
}

/** [start, end) of every code span and HTML comment, left to right, in linear time. */
function inlineHiddenSpans(text: string): [number, number][] {
  // Every maximal backtick run, by length: closers are looked up with a forward-only pointer per length.
  const runsByLen = new Map<number, number[]>();
  for (let i = 0; i < text.length; ) {
    if (text[i] === '`') {
      const n = runLength(text, i, '`');
      let list = runsByLen.get(n);
      if (!list) runsByLen.set(n, (list = []));
      list.push(i);
      i += n;
    } else i++;
  }
  const pointer = new Map<number, number>();
  const nextRun = (len: number, after: number): number => {
    const list = runsByLen.get(len);
    if (!list) return -1;
    let p = pointer.get(len) ?? 0;
    while (p < list.length && list[p]! < after) p++;
    pointer.set(len, p);
    return p < list.length ? list[p]! : -1;
  };

  const spans: [number, number][] = [];
  let commentCloseMissing = false;
  for (let i = 0; i < text.length; ) {
    const ch = text[i];
    if (ch === '\\') {
      i += 2;
    } else if (ch === '`') {
      const n = runLength(text, i, '`');
      const close = nextRun(n, i + n);
      if (close === -1) i += n;
      else {
        spans.push([i, close + n]);
        i = close + n;
      }
    } else if (ch === '<' && !commentCloseMissing && text.startsWith('<!--', i)) {
      const end = text.startsWith('<!-->', i) ? i + 2 : text.startsWith('<!--->', i) ? i + 3 : text.indexOf('-->', i + 4);
      if (end === -1) {
        commentCloseMissing = true;
        i += 4;
      } else {
        spans.push([i, end + 3]);
        i = end + 3;
      }
    } else i++;
  }
  return spans;
}

// ── text helpers ────────────────────────────────────────────────────────────

function trimAscii(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s[a] === ' ' || s[a] === '\t')) a++;
  while (b > a && (s[b - 1] === ' ' || s[b - 1] === '\t')) b--;
  return s.slice(a, b);
}

/** User text shortened for a message; with `reveal`, characters outside printable ASCII are shown as ⟨U+XXXX⟩. */
function display(s: string, max = 60, reveal = false): string {
  let out = '';
  let n = 0;
  for (const ch of s) {
    if (n++ >= max) return out + '…';
    const cp = ch.codePointAt(0)!;
    if (reveal && !(cp >= 0x20 && cp < 0x7f)) out += `⟨U+${cp.toString(16).toUpperCase().padStart(4, '0')}⟩`;
    else if (cp < 0x20 || cp === 0x7f || isInvisible(ch) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
      out += `⟨U+${cp.toString(16).toUpperCase().padStart(4, '0')}⟩`;
    else out += ch;
  }
  return out;
}

/** Inline code that survives backticks in the value. */
function code(s: string): string {
  const clean = s.replace(/[\r\n]+/g, ' ');
  let run = 0;
  let longest = 0;
  for (const ch of clean) {
    run = ch === '`' ? run + 1 : 0;
    if (run > longest) longest = run;
  }
  const fence = '`'.repeat(longest + 1);
  const pad = clean.startsWith('`') || clean.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${clean}${pad}${fence}`;
}
