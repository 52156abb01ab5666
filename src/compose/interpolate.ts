// `${VAR}` interpolation the way docker compose does it, with variables from
// the environment's config only (never the process environment):
//   $VAR ${VAR}           value; an unset variable is an error (no silent "")
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
  /** a plain `${NAME}` or `$NAME` whose variable is not set (not a `${NAME:?…}` demand) */
  plainUnset?: boolean;
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

export function interpolateString(text: string, vars: Variables, taint?: TaintContext): string {
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
      out += braced(text.slice(i + 2, close), vars, text, taint);
      i = close + 1;
      continue;
    }
    const m = NAME.exec(text.slice(i + 1));
    if (m) {
      out += lookup(m[0], vars, taint);
      i += 1 + m[0].length;
      continue;
    }
    // `$` followed by anything else stays literal, as in compose.
    out += '$';
    i++;
  }
  return out;
}

function matchingBrace(text: string, from: number): number {
  let depth = 1;
  for (let i = from; i < text.length; i++) {
    if (text[i] === '$' && text[i + 1] === '$') {
      i++;
      continue;
    }
    if (text[i] === '$' && text[i + 1] === '{') {
      depth++;
      i++;
    } else if (text[i] === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

function braced(inner: string, vars: Variables, whole: string, taint?: TaintContext): string {
  const m = NAME.exec(inner);
  if (!m) throw bad(whole, `"\${${inner}}" does not start with a variable name`);
  const name = m[0];
  const rest = inner.slice(name.length);
  if (rest === '') return lookup(name, vars, taint);
  const op = /^(:?)([-?+])/.exec(rest);
  if (!op) throw bad(whole, `unexpected "${rest}" after \${${name}`);
  const colon = op[1] === ':';
  const arg = rest.slice(op[0].length);
  const value = Object.prototype.hasOwnProperty.call(vars, name) ? vars[name] : undefined;
  const unset = value === undefined || (colon && value === '');
  const used = () => {
    if (taint?.secret(name)) taint.hit = true;
    return value!;
  };
  switch (op[2]) {
    case '-':
      return unset ? interpolateString(arg, vars, taint) : used();
    case '+':
      return unset ? '' : interpolateString(arg, vars, taint);
    default: {
      if (!unset) return used();
      const why = interpolateString(arg, vars, taint);
      throw new InterpolationError({
        code: 'missing_variable',
        variable: name,
        problem: `variable ${name} is ${value === '' ? 'empty' : 'not set'}${why ? `: ${why}` : ''}`,
        hint: `set ${name} in the environment's variables in .github/berth.yml`,
      });
    }
  }
}

function lookup(name: string, vars: Variables, taint?: TaintContext): string {
  if (Object.prototype.hasOwnProperty.call(vars, name)) {
    if (taint?.secret(name)) taint.hit = true;
    return vars[name]!;
  }
  throw new InterpolationError({
    code: 'missing_variable',
    variable: name,
    problem: `variable ${name} is not set`,
    hint: `set ${name} in the environment's variables in .github/berth.yml, or give a default: \${${name}:-value}`,
    plainUnset: true,
  });
}

function bad(text: string, why: string): InterpolationError {
  return new InterpolationError({ code: 'bad_interpolation', problem: `invalid interpolation in ${JSON.stringify(text)}: ${why}`, hint: 'write $$ for a literal $' });
}

/** Where interpolateTree reports the strings that used a secret variable. */
export interface TaintSink {
  secret: (name: string) => boolean;
  tainted: TaintedString[];
}

/**
 * A copy of `value` with every string interpolated; errors carry the path of
 * the offending string. With a sink, strings that used a secret variable are
 * recorded in it.
 */
export function interpolateTree(value: unknown, vars: Variables, path: PathSeg[] = [], sink?: TaintSink): unknown {
  if (typeof value === 'string') {
    const taint: TaintContext | undefined = sink ? { secret: sink.secret } : undefined;
    try {
      const out = interpolateString(value, vars, taint);
      if (taint?.hit) sink!.tainted.push({ path, raw: value, value: out });
      return out;
    } catch (err) {
      // `${A:?${SECRET}}`: the message quotes what was interpolated.
      if (taint?.hit) sink!.tainted.push({ path, raw: value, value });
      if (err instanceof InterpolationError) throw new InterpolationError(err.detail, path);
      throw err;
    }
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateTree(v, vars, [...path, i], sink));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolateTree(v, vars, [...path, k], sink);
    return out;
  }
  return value;
}

/**
 * Every variable `value` uses plainly (`${NAME}`, `$NAME`) that `vars` does not set, in order of first
 * use: interpolated again with each one found set to "" until none is left, so a file that leaves a
 * hundred variables unset is refused once, naming them all. `${NAME:?…}` demands are looked past (they
 * carry their own message); any other problem stops the search.
 */
export function unsetVariables(value: unknown, vars: Variables, limit = 500): string[] {
  const found: string[] = [];
  const filled: Record<string, string> = { ...vars };
  for (let round = 0; round < 2 * limit && found.length < limit; round++) {
    try {
      interpolateTree(value, filled);
      break;
    } catch (e) {
      const name = e instanceof InterpolationError ? e.detail.variable : undefined;
      if (name === undefined || (Object.hasOwn(filled, name) && filled[name] !== '')) break;
      if ((e as InterpolationError).detail.plainUnset) {
        found.push(name);
        filled[name] = '';
      } else filled[name] = '-'; // a ${NAME:?…} demand says so itself when its turn comes: look past it
    }
  }
  return found;
}
