// How a server-side secret stands in a desired state: planning never holds the
// value, so `${DB_PASSWORD}` interpolates to a placeholder that names the
// secret and carries (a prefix of) its keyed hash,
//
//   berth-secret.DB_PASSWORD.3f9a…(32 hex)
//
// Everything downstream sees the placeholder: the config hash and the desired
// digest (so a rotated value changes exactly the services that use it), the
// plan, the stored apply, the container's io.berth.config label. Only the
// executor swaps placeholders for values, in the options of the Docker call
// itself. Pure: no I/O, no crypto.

const NAME = '[A-Za-z_][A-Za-z0-9_]*';
const HASH_CHARS = 32;
const PATTERN = new RegExp(`berth-secret\\.(${NAME})\\.([0-9a-f]{${HASH_CHARS}})`, 'g');

export const placeholder = (name: string, hash: string): string => `berth-secret.${name}.${hash.slice(0, HASH_CHARS)}`;

/** Every secret a value names, with the hash prefix it was planned with. */
export function placeholdersIn(value: unknown): Map<string, string> {
  const out = new Map<string, string>();
  // Visited, not rebuilt: an apply's whole desired state is searched before its first Docker call.
  visitStrings(value, (s) => {
    if (s.includes('berth-secret.')) for (const m of s.matchAll(PATTERN)) out.set(m[1]!, m[2]!);
  });
  return out;
}

/**
 * False only when the JSON text `json` cannot hold a placeholder anywhere (in a
 * string or a key): it has no `berth-secret.` and no `\u` escape that could
 * spell one. A cheap test before searching a parsed payload.
 */
export const jsonMayHoldPlaceholders = (json: string): boolean => json.includes('berth-secret.') || json.includes('\\u');

/** `value` with each placeholder replaced by the secret's value (deeply, strings only; keys too). Unknown names are left as they are. */
export function revealIn<T>(value: T, values: ReadonlyMap<string, string>): T {
  return walkStrings(value, (s) => (s.includes('berth-secret.') ? s.replace(PATTERN, (whole, name: string) => values.get(name) ?? whole) : s)) as T;
}

/** The same placeholders with their hashes dropped: two specs equal under this differ only in secret values. */
export const withoutHashes = <T>(value: T): T => walkStrings(value, (s) => s.replace(PATTERN, (_w, name: string) => `berth-secret.${name}`)) as T;

function visitStrings(v: unknown, f: (s: string) => void): void {
  if (typeof v === 'string') f(v);
  else if (Array.isArray(v)) for (const x of v) visitStrings(x, f);
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) {
      f(k);
      visitStrings(x, f);
    }
}

function walkStrings(v: unknown, f: (s: string) => string): unknown {
  if (typeof v === 'string') return f(v);
  if (Array.isArray(v)) return v.map((x) => walkStrings(x, f));
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [f(k), walkStrings(x, f)]));
  return v;
}

/**
 * The 1-based line of the first placeholder-like text written in a file, if
 * any. Placeholders may only come from interpolating a listed secret (so what
 * they feed is tainted and the environment's berth.yml chose the name): one
 * written by hand in a compose or env file is refused.
 */
export function writtenPlaceholderLine(text: string): number | undefined {
  const i = text.search(/berth-secret\.[A-Za-z_]/);
  return i < 0 ? undefined : text.slice(0, i).split('\n').length;
}
