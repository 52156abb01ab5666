// `${VAR}` interpolation the way docker compose does it, with variables from
// the environment's config only (never the process environment):
//   $VAR ${VAR}           value; an unset variable is "", as in compose, and is
//                         reported to the caller's `unset` set so the plan can warn
//   ${VAR:-def} ${VAR-def} default when unset or empty / when unset
//   ${VAR:?msg} ${VAR?msg} error when unset or empty / when unset
//   ${VAR:+alt} ${VAR+alt} alt when set and non-empty / when set, else ""
//   $$                    a literal $
// Defaults may themselves contain interpolations: ${A:-${B}}.
// Only string values are interpolated, never keys, like compose.
//
// Taint: when the caller names the secret variables, every string whose value
// used one is recorded (its path and the text before interpolation), so what
// later parsing makes of it (split, upper-cased, JSON-escaped) can be shown as
// a mask as a whole: see taint.ts.
import type { PathSeg } from './yaml.js';

export type Variables = Readonly<Record<string, string>>;

export interface InterpolationProblem {
  code: 'missing_variable' | 'bad_interpolation';
  problem: string;
  hint?: string;
  variable?: string;
}

export class InterpolationError extends Error {
  constructor(
    readonly detail: InterpolationProblem,
    readonly path: PathSeg[] = [],
  ) {
    super(detail.problem);
  }
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*/;

/** Which variables are secret, and whether the string being interpolated used one. */
export interface TaintContext {
  secret: (name: string) => boolean;
  /** set when a secret variable's value went into the current string */
  hit?: boolean;
}

/** A string whose interpolation used a secret variable. */
export interface TaintedString {
  path: PathSeg[];
  /** the text as written, before interpolation */
  raw: string;
  /** the text after interpolation */
  value: string;
}

/**
 * `text` interpolated. A plain `${NAME}` / `$NAME` whose variable is not set becomes "" (docker compose
 * warns "The NAME variable is not set. Defaulting to a blank string."): its name goes into `unset`.
 */
export function interpolateString(text: string, vars: Variables, taint?: TaintContext, unset?: Set<string>, depth = 0): string {
  if (!text.includes('$')) return text;
  let out = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch !== '$') {
      out += ch;
      i++;
      continue;
    }
    const next = text[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next === '{') {
      const close = matchingBrace(text, i + 2);
      if (close < 0) throw bad(text, 'unclosed "${"');
      out += braced(text.slice(i + 2, close), vars, text, taint, unset, depth);
      i = close + 1;
      continue;
    }
    const m = NAME.exec(text.slice(i + 1));
    if (m) {
      out += lookup(m[0], vars, taint, unset);
      i += 1 + m[0].length;
      continue;
    }
    // `$` followed by anything else stays literal, as in compose.
    out += '$';
    i++;
  }
  return out;
}

/**
 * Where the `${` opened just before `from` closes. Every brace counts, as in
 * compose-go since 2024 (a default may hold braces: `${X:-{"a":1}}`,
 * `${URL:-http://h/e/{id}}`); a default with a brace left open falls back to
 * the first `}` that no inner `${` holds, as compose's pattern does.
 */
function matchingBrace(text: string, from: number): number {
  const balanced = closing(text, from, (i) => text[i] === '{');
  return balanced >= 0 ? balanced : closing(text, from, (i) => text[i] === '$' && text[i + 1] === '{');
}

function closing(text: string, from: number, opens: (i: number) => boolean): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '$' && text[i + 1] === '$') {
      i++;
      continue;
    }
    if (opens(i)) depth++;
    else if (text[i] === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/** How deep `${A:-${B:-…}}` may nest: real files nest two or three; a file of 20,000 ran the stack out. */
export const MAX_INTERPOLATION_DEPTH = 32;

function braced(inner: string, vars: Variables, whole: string, taint?: TaintContext, unset?: Set<string>, depth = 0): string {
  if (depth >= MAX_INTERPOLATION_DEPTH) throw bad(whole, `defaults nested more than ${MAX_INTERPOLATION_DEPTH} deep`);
  const m = NAME.exec(inner);
  if (!m) throw bad(whole, `"\${${inner}}" does not start with a variable name`);
  const name = m[0];
  const rest = inner.slice(name.length);
  if (rest === '') return lookup(name, vars, taint, unset);
  const op = /^(:?)([-?+])/.exec(rest);
  if (!op) throw bad(whole, `unexpected "${rest}" after \${${name}`);
  const colon = op[1] === ':';
  const arg = rest.slice(op[0].length);
  const value = Object.prototype.hasOwnProperty.call(vars, name) ? vars[name] : undefined;
  const missing = value === undefined || (colon && value === '');
  const used = () => {
    if (taint?.secret(name)) taint.hit = true;
    return value!;
  };
  switch (op[2]) {
    case '-':
      return missing ? interpolateString(arg, vars, taint, unset, depth + 1) : used();
    case '+':
      return missing ? '' : interpolateString(arg, vars, taint, unset, depth + 1);
    default: {
      if (!missing) return used();
      const why = interpolateString(arg, vars, taint, unset, depth + 1);
      throw new InterpolationError({
        code: 'missing_variable',
        variable: name,
        problem: `variable ${name} is ${value === '' ? 'empty' : 'not set'}${why ? `: ${why}` : ''}`,
        hint: `set ${name} in the environment's variables in .github/berth.yml`,
      });
    }
  }
}

function lookup(name: string, vars: Variables, taint?: TaintContext, unset?: Set<string>): string {
  if (Object.prototype.hasOwnProperty.call(vars, name)) {
    if (taint?.secret(name)) taint.hit = true;
    return vars[name]!;
  }
  unset?.add(name);
  return '';
}

function bad(text: string, why: string): InterpolationError {
  // The text as written, cut short: a refusal quotes where it went wrong, not a whole hostile line.
  const shown = text.length > 200 ? `${text.slice(0, 200)}…` : text;
  return new InterpolationError({ code: 'bad_interpolation', problem: `invalid interpolation in ${JSON.stringify(shown)}: ${why}`, hint: 'write $$ for a literal $' });
}

/** Where interpolateTree reports the strings that used a secret variable. */
export interface TaintSink {
  secret: (name: string) => boolean;
  tainted: TaintedString[];
}

/** Told, for each string that used plain references left unset, where it is, how it was written and which names. */
export type UnsetAt = (path: PathSeg[], raw: string, names: string[]) => void;

/**
 * A copy of `value` with every string interpolated; errors carry the path of
 * the offending string. With a sink, strings that used a secret variable are
 * recorded in it; with `unset`, the plain references left unset (each became "").
 */
export function interpolateTree(value: unknown, vars: Variables, path: PathSeg[] = [], sink?: TaintSink, unset?: Set<string>, unsetAt?: UnsetAt): unknown {
  if (typeof value === 'string') {
    const taint: TaintContext | undefined = sink ? { secret: sink.secret } : undefined;
    try {
      const here = unsetAt ? new Set<string>() : unset;
      const out = interpolateString(value, vars, taint, here);
      if (unsetAt && here!.size) {
        for (const n of here!) unset?.add(n);
        unsetAt(path, value, [...here!]);
      }
      if (taint?.hit) sink!.tainted.push({ path, raw: value, value: out });
      return out;
    } catch (err) {
      // `${A:?${SECRET}}`: the message quotes what was interpolated.
      if (taint?.hit) sink!.tainted.push({ path, raw: value, value });
      if (err instanceof InterpolationError) throw new InterpolationError(err.detail, path);
      throw err;
    }
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateTree(v, vars, [...path, i], sink, unset, unsetAt));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolateTree(v, vars, [...path, k], sink, unset, unsetAt);
    return out;
  }
  return value;
}
