// The one module through which text a PR author can influence (service,
// network and volume names, YAML keys, image references, environment keys,
// compose and Docker error messages) reaches a comment or a check run. Three
// forms, each inert whatever the text holds — no block or inline Markdown,
// HTML, link, autolink, image, @mention, #reference or line break survives:
//   inert(s)     prose: every ASCII character but letters, digits, space and
//                `-,()` becomes a numeric entity;
//   code(s)      an inline code span (GitHub links nothing inside one) on one
//                line, with a fence no backtick run in the text can close;
//   block(s)     a fenced block whose fence no line can close.
// Control and invisible characters are written as escapes in all three.

/**
 * Characters that could break a line, reorder text or hide it: controls, line and paragraph separators,
 * lone surrogates, every bidi control (U+061C and U+200E/F too, not only the embeddings and isolates),
 * every format character and every default-ignorable code point — zero-width characters, fillers,
 * U+180E, U+206A–U+206F, U+FFF9–U+FFFB, and the tag characters U+E0000–U+E007F, which spell ASCII no
 * reader sees. A variation selector U+FE0E/U+FE0F is kept only right after an emoji (it picks the
 * glyph: ⚠️, ℹ️); any other, and every other selector, is an escape (runs of them carry hidden bytes).
 */
// eslint-disable-next-line no-control-regex
const UNSAFE_CHARS = /[\p{Cc}\p{Cs}\u2028\u2029\p{Bidi_Control}]|(?![\uFE0E\uFE0F])[\p{Cf}\p{Default_Ignorable_Code_Point}]|(?<!\p{Emoji})[\uFE0E\uFE0F]/gu;

/** `\u061c`, or `\u{e0061}` past U+FFFF. */
const codePointEscape = (c: string) => {
  const n = c.codePointAt(0)!;
  return n > 0xffff ? `\\u{${n.toString(16)}}` : `\\u${n.toString(16).padStart(4, '0')}`;
};

/** One visible line: control and invisible characters written as escapes. */
export function sanitizeLine(s: string): string {
  return s.replace(UNSAFE_CHARS, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return codePointEscape(c);
  });
}

/**
 * Text safe anywhere in Markdown or inline HTML: every ASCII character but
 * letters, digits, space and `-,()` becomes a numeric entity, so it can neither
 * open a tag, emphasis, link, table cell or code span, nor mention anyone.
 */
export function escapeMarkdown(s: string): string {
  return (
    sanitizeLine(s)
      .replace(/[^A-Za-z0-9 ,()\-\u0080-\uffff]/g, (c) => `&#${c.charCodeAt(0)};`)
      // GitHub decodes the entities before it looks for mentions, #references and autolinks (Dependabot and
      // Renovate write `@&#8203;user` for this reason): a zero-width space after `@`, `#`, a scheme's `:` and
      // `www.` leaves `@team`, `#1`, `me@evil.example`, `https://evil` and `www.evil.example` as plain text.
      .replace(/&#(64|35|58);|(www)&#46;/gi, (m) => `${m}&#8203;`)
  );
}

/** The prose form (see the header). */
export const inert = escapeMarkdown;

/** Inline code that survives backticks in the value; one line. */
export function code(s: string): string {
  const clean = sanitizeLine(s.replace(/\r?\n/g, ' '));
  const run = Math.max(0, ...[...clean.matchAll(/`+/g)].map((m) => m[0].length));
  const fence = '`'.repeat(run + 1);
  const pad = clean.startsWith('`') || clean.endsWith('`') ? ' ' : '';
  return `${fence}${pad}${clean}${pad}${fence}`;
}

/** A block's lines: lines and tabs stay; every other unsafe character is an escape, as in sanitizeLine. */
const blockBody = (s: string) => s.replace(UNSAFE_CHARS, (c) => (c === '\n' || c === '\t' ? c : codePointEscape(c)));

/** How `s` shows inside a code span or a block once its unsafe characters are escapes (the masker redacts these forms too). */
export function escapedForms(s: string): string[] {
  return [sanitizeLine(s), blockBody(s)];
}

const GO_NAMED: Record<string, string> = { '\x07': '\\a', '\b': '\\b', '\f': '\\f', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\v': '\\v', '"': '\\"', '\\': '\\\\' };

/**
 * `s` as Go's strconv.Quote writes it between its quotes (`ascii`: QuoteToASCII, `%+q`): Docker, containerd
 * and runc quote what they were given this way (`exec: %q: executable file not found`): a control character
 * as `\x01`, one Go does not print (a no-break space, a format character) as `\u00a0`, past U+FFFF as
 * `\U000e0041`. The masker redacts these forms too.
 */
export function goQuoted(s: string, ascii = false): string {
  let out = '';
  for (const c of s) {
    const named = GO_NAMED[c];
    if (named) {
      out += named;
      continue;
    }
    const n = c.codePointAt(0)!;
    if (n < 0x20 || n === 0x7f) out += `\\x${n.toString(16).padStart(2, '0')}`;
    else if (n < 0x80 || (!ascii && GO_PRINTS.test(c))) out += c;
    else out += n > 0xffff ? `\\U${n.toString(16).padStart(8, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
  }
  return out;
}

/**
 * `s` as Go's encoding/json writes it between its quotes: like JSON.stringify, but `<`, `>` and `&` as
 * `\u003c`, `\u003e`, `\u0026` and U+2028/U+2029 as escapes (Go's HTML-safe default). Docker's JSON carries
 * values this way, and a message that embeds a JSON document (an error quoting a request or a registry's
 * answer) shows them so once it is read. The masker redacts this form too.
 */
export function goJsonQuoted(s: string): string {
  return JSON.stringify(s)
    .slice(1, -1)
    .replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** What Go's unicode.IsPrint holds printable past ASCII: letters, marks, numbers, punctuation, symbols. */
const GO_PRINTS = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** A fenced block that survives fences (backtick or tilde) in the content. */
export function block(s: string, lang = ''): string {
  const run = Math.max(2, ...[...s.matchAll(/`{3,}/g)].map((m) => m[0].length));
  const fence = '`'.repeat(run + 1);
  const body = blockBody(s.replace(/\n$/, ''));
  return `${fence}${lang}\n${body}\n${fence}`;
}
