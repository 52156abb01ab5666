// `${VAR}` interpolation the way docker compose does it, with variables from
// the environment's config only (never the process environment):
//   $VAR ${VAR}           value; an unset variable is an error (no silent "")
//   ${VAR:-def} ${VAR-def} default when unset or empty / when unset
//   ${VAR:?msg} ${VAR?msg} error when unset or empty / when unset
//   ${VAR:+alt} ${VAR+alt} alt when set and non-empty / when set, else ""
//   $$                    a literal $
// Defaults may themselves contain interpolations: ${A:-${B}}.
// Only string values are interpolated, never keys, like compose.
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

export function interpolateString(text: string, vars: Variables): string {
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
      out += braced(text.slice(i + 2, close), vars, text);
      i = close + 1;
      continue;
    }
    const m = NAME.exec(text.slice(i + 1));
    if (m) {
      out += lookup(m[0], vars);
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

function braced(inner: string, vars: Variables, whole: string): string {
  const m = NAME.exec(inner);
  if (!m) throw bad(whole, `"\${${inner}}" does not start with a variable name`);
  const name = m[0];
  const rest = inner.slice(name.length);
  if (rest === '') return lookup(name, vars);
  const op = /^(:?)([-?+])/.exec(rest);
  if (!op) throw bad(whole, `unexpected "${rest}" after \${${name}`);
  const colon = op[1] === ':';
  const arg = rest.slice(op[0].length);
  const value = Object.prototype.hasOwnProperty.call(vars, name) ? vars[name] : undefined;
  const unset = value === undefined || (colon && value === '');
  switch (op[2]) {
    case '-':
      return unset ? interpolateString(arg, vars) : value!;
    case '+':
      return unset ? '' : interpolateString(arg, vars);
    default: {
      if (!unset) return value!;
      const why = interpolateString(arg, vars);
      throw new InterpolationError({
        code: 'missing_variable',
        variable: name,
        problem: `variable ${name} is ${value === '' ? 'empty' : 'not set'}${why ? `: ${why}` : ''}`,
        hint: `set ${name} in the environment's variables in .github/berth.yml`,
      });
    }
  }
}

function lookup(name: string, vars: Variables): string {
  if (Object.prototype.hasOwnProperty.call(vars, name)) return vars[name]!;
  throw new InterpolationError({
    code: 'missing_variable',
    variable: name,
    problem: `variable ${name} is not set`,
    hint: `set ${name} in the environment's variables in .github/berth.yml, or give a default: \${${name}:-value}`,
  });
}

function bad(text: string, why: string): InterpolationError {
  return new InterpolationError({ code: 'bad_interpolation', problem: `invalid interpolation in ${JSON.stringify(text)}: ${why}`, hint: 'write $$ for a literal $' });
}

/** A copy of `value` with every string interpolated; errors carry the path of the offending string. */
export function interpolateTree(value: unknown, vars: Variables, path: PathSeg[] = []): unknown {
  if (typeof value === 'string') {
    try {
      return interpolateString(value, vars);
    } catch (err) {
      if (err instanceof InterpolationError) throw new InterpolationError(err.detail, path);
      throw err;
    }
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateTree(v, vars, [...path, i]));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolateTree(v, vars, [...path, k]);
    return out;
  }
  return value;
}
