// Secret taint: which parts of a desired state were derived from a secret
// variable. Masking the exact secret string in finished text is not enough —
// parsing transforms what a PR author interpolates (a command split into
// words, `X=${S}` split at `=`, a capability upper-cased, a port split at `:`)
// so the shown text no longer contains the secret as written. Instead the
// interpolation records every string that used a secret variable, this file
// maps it to the service field it feeds, and every renderer shows that whole
// field as a mask; an error located at (or quoting) a tainted input is replaced
// by one that quotes nothing.
import { ComposeError } from '../errors.js';
import { escapeRegExp, isSecretKey, MASK, secretPieces } from '../plan/mask.js';
import type { TaintedString } from './interpolate.js';
import { formatPath } from './yaml.js';

/** A tainted string and where it is written. */
export interface TaintedInput extends TaintedString {
  file: string;
  line?: number;
}

/** service name → tainted field ids (`command`, `ports`, `environment.DB_URL`, or `environment` when keys themselves are tainted) */
export type SecretFields = Record<string, string[]>;

/** The predicate interpolation uses: a variable is secret by its name or by being listed in secret_keys. */
export const secretVariable =
  (secretKeys: readonly string[] = []) =>
  (name: string): boolean =>
    isSecretKey(name, secretKeys);

/** compose service key → the field id renderers use (their diff label, or its first part) */
const FIELD_OF_KEY: Record<string, string> = { depends_on: 'depends_on', working_dir: 'working_dir', deploy: 'deploy', scale: 'replicas', gpus: 'deploy' };

/** What `deploy:` sets: a secret anywhere under it taints them all (replicas, resources, restart, rollouts). */
const DEPLOY_FIELDS: ReadonlySet<string> = new Set(['deploy', 'replicas', 'cpus', 'mem_limit', 'mem_reservation', 'pids_limit', 'restart']);

/** The field a tainted string feeds, or undefined when it is not a service field. */
export function fieldOf(t: TaintedString): { service: string; field: string } | undefined {
  const [top, service, key, sub] = t.path;
  if (top !== 'services' || typeof service !== 'string' || typeof key !== 'string') return undefined;
  if (key === 'environment' || key === 'labels') {
    if (typeof sub === 'string') return { service, field: `${key}.${sub}` };
    // List form `KEY=value`: the key is clean only when it is written before any interpolation.
    const eq = t.raw.indexOf('=');
    const dollar = t.raw.indexOf('$');
    if (eq > 0 && (dollar < 0 || eq < dollar)) return { service, field: `${key}.${t.raw.slice(0, eq)}` };
    return { service, field: key };
  }
  return { service, field: Object.hasOwn(FIELD_OF_KEY, key) ? FIELD_OF_KEY[key]! : key };
}

export function secretFieldsOf(found: readonly TaintedInput[]): SecretFields {
  // null prototype: a service named like an Object.prototype member (`constructor`) gets its own entry.
  const out: Record<string, Set<string>> = Object.create(null) as Record<string, Set<string>>;
  for (const t of found) {
    const f = fieldOf(t);
    if (f) (out[f.service] ??= new Set()).add(f.field);
  }
  return Object.fromEntries(Object.entries(out).map(([s, set]) => [s, [...set].sort()]));
}

/** Whether `field` (a diff label such as `environment.X` or `healthcheck.test`) of `service` is tainted. */
export function isTaintedField(fields: SecretFields | undefined, service: string, field: string): boolean {
  // Own entries only: a service named `constructor` must not read Object.prototype's member.
  const set = fields && Object.hasOwn(fields, service) ? fields[service] : undefined;
  if (!set?.length) return false;
  const head = field.split('.')[0]!;
  if (set.includes(head)) return true;
  if (set.includes('deploy') && DEPLOY_FIELDS.has(head)) return true;
  return (head === 'environment' || head === 'labels') && set.includes(field);
}

/** Whether one path is the other or lies under it (`a.b` and `a.b[0].c`, `a.b[1]` and `a.b`). */
function related(a: string, b: string): boolean {
  const under = (x: string, y: string) => x === y || x.startsWith(`${y}.`) || x.startsWith(`${y}[`);
  return under(a, b) || under(b, a);
}

/** Spellings of a secret that text may carry after escaping or case changes. */
/**
 * The pieces of secret values (and the values) as one pattern, longest first: cut at the characters paths,
 * URLs and lists are cut at, kept from four characters on (as Masker.withPieces keeps them); undefined
 * when there are none.
 */
function pieceMatcher(values: readonly string[]): RegExp | undefined {
  const pieces = new Set<string>();
  for (const v of values) for (const p of [v, ...secretPieces(v)]) if (p.length >= 4) for (const s of spellings(p)) pieces.add(s);
  if (!pieces.size) return undefined;
  const sorted = [...pieces].sort((a, b) => b.length - a.length);
  return new RegExp(sorted.map(escapeRegExp).join('|'), 'gi');
}

function spellings(v: string): string[] {
  const json = JSON.stringify(v).slice(1, -1);
  return [...new Set([v, json, v.toUpperCase(), v.toLowerCase(), json.toUpperCase(), json.toLowerCase()])];
}

/**
 * Refusals whose text is built from keys and never from the value at their
 * line: a secret read from a file (`file: ${DB_PASSWORD_FILE}`, frappe_docker)
 * is refused whatever the path, and the refusal names only the secret's key;
 * `build:` without `image:` names the service (calcom's build args use the
 * database password); a bind path built from a secret says only that.
 */
const VALUE_FREE_CODES = new Set(['secret_in_repository', 'missing_image', 'repository_bind_secret']);

/** Whether what is written at `at` (a list item, a key) used a secret variable, or holds something that did. */
export function isTaintedAt(found: readonly TaintedInput[], at: { file: string; path: string }): boolean {
  return found.some((t) => t.file === at.file && related(formatPath(t.path), at.path));
}

/**
 * An error that would quote a tainted input (it is located on a tainted line,
 * or its text contains a secret value in any spelling) is replaced by one that
 * keeps the code and the location and quotes nothing. A refusal that never
 * quotes the value at its line (VALUE_FREE_CODES) is kept when no secret
 * value appears in it.
 */
export function maskTaintedError(err: unknown, found: readonly TaintedInput[], secretValues: readonly string[]): unknown {
  if (!(err instanceof ComposeError)) return err;
  // Tainted where it stands, or about a node that holds a tainted one or is held by one: an error is often
  // located at a list's key (`sysctls:`, `include[0]`) while the secret is an item a line below, and its text
  // quotes the item split or cleaned up (`a=b` cut at `=`, `S/..` normalised), which no value search finds.
  // So is one that quotes a value written elsewhere (err.quotes) which a secret built.
  const onTaintedLine =
    (err.line !== undefined && found.some((t) => t.file === err.file && (t.line === err.line || (err.path !== undefined && related(formatPath(t.path), err.path))))) ||
    (err.quotes ?? []).some((q) => isTaintedAt(found, q));
  const text = `${err.problem}\n${err.hint ?? ''}\n${err.message}`;
  const quotes = secretValues.some((v) => v.length >= 3 && spellings(v).some((s) => text.includes(s)));
  const where = {
    ...(err.file !== undefined ? { file: err.file } : {}),
    ...(err.line !== undefined ? { line: err.line } : {}),
    ...(err.path !== undefined ? { path: err.path } : {}),
  };
  if ((!onTaintedLine || VALUE_FREE_CODES.has(err.code)) && !quotes) {
    // Located elsewhere, an error may still quote another line's value built from a secret, cleaned up on the way
    // (`/srv/${URL}/..` normalised: `//` made `/`, the last segment dropped) so that no search for the whole value
    // finds it. Its pieces, cut where such parsers cut, are masked where they appear (as Docker's messages are).
    const cut = pieceMatcher(secretValues);
    if (!cut || text.search(cut) < 0) return err;
    const mask = (t: string) => t.replace(cut, MASK);
    return new ComposeError(err.code, mask(err.problem), { ...where, ...(err.hint ? { hint: mask(err.hint) } : {}) });
  }
  if (onTaintedLine) return new ComposeError(err.code, `a value derived from a secret variable is invalid (${err.code})`, { ...where, hint: 'the message is not shown because it would reveal the secret: check the value of the variable and where the compose file uses it' });
  // Not a secret's line, but its text holds a secret's value: a short secret that is also a word of the
  // file (zabbix-docker's password "zabbix" in /var/lib/zabbix/…). Still not shown; said as it is.
  return new ComposeError(err.code, `this value is invalid (${err.code}); the message is not shown because its text contains the value of a secret variable`, {
    ...where,
    hint: 'the value of a secret variable also appears in this line: check the line for the problem named, and choose a secret that is no word of the compose file',
  });
}
