// `.env` and `env_file:` files the way docker compose reads them: KEY=VALUE
// lines (or YAML's `KEY: VALUE`), `#` comments, an optional `export `, single
// quotes literal (but for `\'`), double quotes with escapes, unquoted values
// trimmed and cut at ` #`; values are
// interpolated unless the file is declared `format: raw`. A ${VAR} is looked
// up as compose-go does: the environment's variables first (they are
// compose's shell environment), then (for an env_file) the service's own
// environment:, then earlier keys of the same file, then the keys of files
// read before it. Pure: the caller reads the file.
import { interpolateString, InterpolationError, type Variables } from './interpolate.js';

export class DotenvError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly line: number,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export interface DotenvValue {
  value: string;
  line: number;
  /** the value used a secret variable (or an earlier key of the file that did): it is secret too */
  secret?: boolean;
}

export interface DotenvOptions {
  /** `format: raw`: values as written, no quotes processed, no interpolation */
  raw?: boolean;
  /** for ${VAR} in values (ahead of the file's own keys) and for bare `KEY` lines */
  variables?: Variables;
  /** the service's own `environment:`: looked up after the variables, ahead of the file's keys (compose-go since 2025) */
  environment?: ReadonlyMap<string, DotenvValue>;
  /** the keys of files read before this one (a service's earlier env_file entries): looked up after this file's own */
  inherited?: ReadonlyMap<string, DotenvValue>;
  /** gets the names a plain ${VAR} used without a value (each became "", as in compose) */
  unset?: Set<string>;
  /** which variables are secret: a value that uses one is marked secret, and so is a later value using that key */
  secret?: (name: string) => boolean;
}

const KEY_RE = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
/** compose-go's escapes in double quotes (as Go's rune literals, `\$` a literal dollar); any other `\x` stays as written. */
const ESCAPES: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '"': '"', '\\': '\\', $: '$$' };
const unescape = (quoted: string) =>
  quoted.replace(/\\(0[0-7]{3}|.)/gs, (m, c: string) => (c.length > 1 ? String.fromCharCode(parseInt(c.slice(1), 8) & 0xff) : (ESCAPES[c] ?? m)));

export function parseDotenv(text: string, opts: DotenvOptions = {}): Map<string, DotenvValue> {
  const out = new Map<string, DotenvValue>();
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const variables = opts.variables ?? {};
  // A name is secret as whatever supplies its value is: the variable, else the file's own key, else an earlier file's.
  const secret = (name: string) => {
    if (Object.hasOwn(variables, name)) return opts.secret?.(name) ?? false;
    const from = opts.environment?.get(name) ?? out.get(name) ?? opts.inherited?.get(name);
    return from ? from.secret === true : (opts.secret?.(name) ?? false);
  };
  // What a ${VAR} finds: the variables, then the service's environment:, then this file's keys so far, then
  // earlier files'. Kept up to date as keys are read (rebuilt for every line, 8,000 lines took a minute).
  const scope: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of opts.inherited ?? []) scope[k] = v.value;
  for (const [k, v] of opts.environment ?? []) scope[k] = v.value;
  Object.assign(scope, variables);
  const ranked = (k: string) => Object.hasOwn(variables, k) || (opts.environment?.has(k) ?? false);
  const keep = (k: string, v: DotenvValue) => {
    out.set(k, v);
    if (!ranked(k)) scope[k] = v.value;
  };
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i]!.trim();
    if (!line || line.startsWith('#')) continue;
    line = line.replace(/^export\s+/, '');
    // The key ends at the first `=`, or at a `:` before any `=` (compose's dotenv reads YAML-style `KEY: value` too).
    const eq = line.search(/[=:]/);
    const key = (eq < 0 ? line : line.slice(0, eq)).trim();
    if (!KEY_RE.test(key)) throw new DotenvError('bad_env_file', `invalid variable name ${JSON.stringify(key)}`, lineNo, 'lines are KEY=VALUE (or KEY: VALUE)');
    if (eq < 0) {
      // A bare KEY takes the variable of that name, else the service environment's; unset → not set (compose takes it from the shell).
      if (opts.variables && Object.hasOwn(opts.variables, key)) keep(key, { value: opts.variables[key]!, line: lineNo, ...(opts.secret?.(key) ? { secret: true } : {}) });
      else {
        const e = opts.environment?.get(key);
        if (e) keep(key, { value: e.value, line: lineNo, ...(e.secret || opts.secret?.(key) ? { secret: true } : {}) });
      }
      continue;
    }
    let rest = line.slice(eq + 1).trimStart();
    let value: string;
    let interpolate = !opts.raw;
    if (opts.raw) value = rest;
    else if (rest.startsWith("'")) {
      const end = findClose(lines, i, rest, "'");
      value = end.value.replace(/\\'/g, "'");
      i = end.lastLine;
      interpolate = false;
    } else if (rest.startsWith('"')) {
      const end = findClose(lines, i, rest, '"');
      value = unescape(end.value);
      i = end.lastLine;
    } else {
      // A comment starts at " #" (a tab before the # is part of the value, as in compose).
      const hash = rest.indexOf(' #');
      if (hash >= 0) rest = rest.slice(0, hash);
      value = rest.trim();
    }
    const taint = { secret, hit: false };
    if (interpolate && value.includes('$')) {
      try {
        value = interpolateString(value, scope, taint, opts.unset);
      } catch (e) {
        if (e instanceof InterpolationError) throw new DotenvError(e.detail.code, `${key}: ${e.detail.problem}`, lineNo, e.detail.hint);
        throw e;
      }
    }
    keep(key, { value, line: lineNo, ...(taint.hit || opts.secret?.(key) ? { secret: true } : {}) });
  }
  return out;
}

/** A quoted value may span lines; returns its text (without the quotes; escapes as written) and the line it ends on. A `\` before the quote keeps it open. */
function findClose(lines: string[], start: number, first: string, quote: string): { value: string; lastLine: number } {
  let text = first.slice(1);
  let lineIdx = start;
  // Each line added is scanned once: from where the last scan stopped (rescanning made a long value quadratic).
  let j = 0;
  for (;;) {
    for (; j < text.length; j++) {
      if (text[j] === '\\') {
        j++;
        continue;
      }
      if (text[j] === quote) return { value: text.slice(0, j), lastLine: lineIdx };
    }
    if (lineIdx + 1 >= lines.length) throw new DotenvError('bad_env_file', `unterminated ${quote === '"' ? 'double' : 'single'} quote`, start + 1);
    lineIdx++;
    text += `\n${lines[lineIdx]}`;
  }
}
