// The PR comment command parser: pure, total and linear in the comment size.
//
// A command is a line of its own starting with `/` and a command word, in a
// comment that holds exactly one such line. What a reader of the rendered
// comment sees as code, a quote or hidden HTML is never a command: which lines
// render as visible text is decided by a CommonMark/GFM parser
// (src/github/comment-layout.ts); this file holds berth's own rules on top of it.
//
// Fail-safe by construction: anything that merely looks like a command (a
// near-miss word, look-alike or invisible Unicode, trailing text, a command
// that Markdown folds into a quote, a comment too large or too nested to
// read) is reported as `invalid` with the reason, and never executed.
// Ordinary prose — including `/usr/bin` mid-line or a path on a line of its
// own — is `none`, so berth stays quiet.

import { layoutOf, splitLines } from './comment-layout.js';

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
  // Only a line that reads like a command can matter; most comments have none and are never parsed.
  const candidates: number[] = [];
  for (let i = 0; i < lines.length; i++) if (isCommandLike(lines[i]!.text, knownEnvs)) candidates.push(i);
  if (!candidates.length) return NONE;
  const layout = layoutOf(body, lines, candidates);
  if (!layout.readable) {
    return {
      kind: 'invalid',
      problem: `berth cannot tell which lines of this comment are commands: ${layout.why}, so nothing was run. Post the command in a short comment of its own.`,
    };
  }
  const hits: { line: number; text: string; result: LineResult }[] = [];
  let total = 0;
  for (const i of candidates) {
    const shown = layout.lines.get(i);
    if (shown === 'hidden') continue;
    total++;
    if (hits.length >= 3) continue; // the answer is already "more than one command": only count the rest
    const raw = lines[i]!.text;
    let result = evaluateLine(raw, knownEnvs)!;
    if (shown === 'lazy-quote') result = lazyQuote(raw, result);
    hits.push({ line: i + 1, text: raw, result });
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
