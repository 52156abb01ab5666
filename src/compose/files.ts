// Compose `configs` and `secrets`: the top-level sources (where the content
// comes from) and a service's references (where it lands in the container).
// Pure normalisers in compose's forms; the caller locates their FieldProblems.
// Secrets never come from the repository: a file there is readable by every
// reader of the repository, so a secret's `file:` is never read — the loader
// takes the environment's secret of the same name in its place, or refuses it.
import { posix } from 'node:path';
import { asNonNegativeInt, describeValue, FieldProblem, scalarString } from './normalize.js';

export type FileKind = 'config' | 'secret';

/** Where a top-level config or secret's content comes from. */
export type FileSource =
  /** `dir`: the repository directory `path` is relative to (the declaring file's, as docker compose resolves it) */
  | { from: 'file'; path: string; dir?: string }
  | { from: 'content'; content: string }
  | { from: 'environment'; variable: string };

/** A service's reference to a config or secret, normalised (compose's defaults applied). */
export interface FileRef {
  kind: FileKind;
  source: string;
  /** absolute path in the container */
  target: string;
  uid?: string;
  gid?: string;
  mode: number;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const fail = (code: string, problem: string, hint?: string, subpath: (string | number)[] = []): never => {
  throw new FieldProblem(code, problem, hint, subpath);
};

/** One top-level `configs.<name>` / `secrets.<name>` entry. */
export function parseFileSource(kind: FileKind, name: string, raw: unknown): FileSource {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return fail('invalid_value', `${kind} ${name} must be a mapping, not ${describeValue(raw)}`);
  const o = raw as Record<string, unknown>;
  const keys = Object.keys(o).filter((k) => !k.startsWith('x-'));
  const known = kind === 'secret' ? ['file', 'environment'] : ['file', 'content', 'environment'];
  for (const k of keys) {
    if (k === 'external') fail('unsupported', `${kind} ${name}: external ${kind}s exist only in Docker Swarm, which berth does not target`, `declare it with ${known.join(' or ')}`, [k]);
    if (!known.includes(k) && k !== 'name') fail(k === 'content' || k === 'template_driver' || k === 'driver' || k === 'labels' ? 'unsupported' : 'unknown_key', `${kind} option ${k} is not supported by berth`, `use one of: ${known.join(', ')}`, [k]);
  }
  const given = keys.filter((k) => known.includes(k));
  if (given.length !== 1) return fail('invalid_value', `${kind} ${name} needs exactly one of ${known.join(', ')}`, undefined);
  const k = given[0]!;
  const v = scalarString(o[k], k);
  if (k === 'file') return { from: 'file', path: v };
  if (k === 'content') return { from: 'content', content: v };
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(v)) return fail('invalid_value', `${kind} ${name}: environment must name a variable, not "${v}"`, undefined, [k]);
  return { from: 'environment', variable: v };
}

function parseMode(v: unknown): number {
  // As compose-go reads a file mode: a string is octal digits ("0440"); a number is the number YAML read, and
  // YAML reads 0440 and 0o440 as octal (yaml.ts), so `mode: 0440` is 0o440 — and `mode: 440`, decimal, is 0o670.
  if (typeof v === 'string') {
    if (!/^(0o)?[0-7]{1,5}$/.test(v)) return fail('invalid_value', `mode "${v}" is not an octal mode`, 'write it in octal, e.g. "0440"');
    v = parseInt(v.replace(/^0o/, ''), 8);
  }
  const n = asNonNegativeInt(v, 'mode');
  if (n > 0o7777) return fail('invalid_value', `mode ${n} is out of range`, 'write it in octal, e.g. "0440"');
  return n;
}

/** One entry of a service's `configs:` / `secrets:` (short name or long form). */
export function parseFileRef(kind: FileKind, entry: unknown): FileRef {
  const defaultTarget = (source: string) => (kind === 'secret' ? `/run/secrets/${source}` : `/${source}`);
  if (typeof entry === 'string') {
    if (!NAME_RE.test(entry)) return fail('invalid_value', `invalid ${kind} name "${entry}"`);
    return { kind, source: entry, target: defaultTarget(entry), mode: 0o444 };
  }
  if (!entry || typeof entry !== 'object' || Array.isArray(entry)) return fail('invalid_value', `${kind}s entries must be names or mappings, not ${describeValue(entry)}`);
  const o = entry as Record<string, unknown>;
  const known = ['source', 'target', 'uid', 'gid', 'mode'];
  for (const k of Object.keys(o)) if (!known.includes(k)) fail('unknown_key', `unknown key "${k}" in a ${kind} reference`, `known keys: ${known.join(', ')}`, [k]);
  if (o.source === undefined) return fail('invalid_value', `a ${kind} reference needs a source`, undefined);
  const source = scalarString(o.source, 'source');
  if (!NAME_RE.test(source)) return fail('invalid_value', `invalid ${kind} name "${source}"`, undefined, ['source']);
  let target = o.target === undefined ? defaultTarget(source) : scalarString(o.target, 'target');
  // compose: a relative secret target lands under /run/secrets; a config's under the root.
  if (!target.startsWith('/')) target = kind === 'secret' ? `/run/secrets/${target}` : `/${target}`;
  target = posix.normalize(target);
  if (target === '/' || target.endsWith('/')) fail('invalid_value', `${kind} target "${target}" is a directory`, 'name the file, e.g. /run/secrets/db_password', ['target']);
  const id = (k: 'uid' | 'gid') => {
    if (o[k] === undefined) return undefined;
    const s = scalarString(o[k], k);
    if (!/^\d+$/.test(s)) fail('invalid_value', `${k} must be a number, not "${s}"`, undefined, [k]);
    return s;
  };
  const uid = id('uid');
  const gid = id('gid');
  return { kind, source, target, ...(uid ? { uid } : {}), ...(gid ? { gid } : {}), mode: o.mode === undefined ? 0o444 : parseMode(o.mode) };
}
