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

/** Characters that could reorder or hide text (bidi controls, zero-width, line separators) or break a line. */
// eslint-disable-next-line no-control-regex
const UNSAFE_CHARS = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/g;

/** One visible line: control and invisible characters written as escapes. */
export function sanitizeLine(s: string): string {
  return s.replace(UNSAFE_CHARS, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
}

/**
 * Text safe anywhere in Markdown or inline HTML: every ASCII character but
 * letters, digits, space and `-,()` becomes a numeric entity, so it can neither
 * open a tag, emphasis, link, table cell or code span, nor mention anyone.
 */
export function escapeMarkdown(s: string): string {
  return sanitizeLine(s).replace(/[^A-Za-z0-9 ,()\-\u0080-\uffff]/g, (c) => `&#${c.charCodeAt(0)};`);
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

/** A fenced block that survives fences (backtick or tilde) in the content. */
export function block(s: string, lang = ''): string {
  const run = Math.max(2, ...[...s.matchAll(/`{3,}/g)].map((m) => m[0].length));
  const fence = '`'.repeat(run + 1);
  // eslint-disable-next-line no-control-regex
  const body = s.replace(/\n$/, '').replace(/[\u0000-\u0008\u000b-\u001f\u007f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `${fence}${lang}\n${body}\n${fence}`;
}
