// Pure normalisers for single compose values. Two spellings of the same intent
// come out identical: `nginx` and `docker.io/library/nginx:latest`, `"8080:80"`
// and `{target: 80, published: 8080}`, `1m30s` and `90s`. A value that cannot be
// understood throws a FieldProblem; the caller adds file, line and path.
import { isIP } from 'node:net';
import { MAX_CONTAINERS } from './limits.js';
import { posix } from 'node:path';
import type { Mount, PortBinding, Protocol } from '../model/model.js';
import { PROTO_KEY_HINT, type PathSeg } from './yaml.js';

export class FieldProblem extends Error {
  constructor(
    readonly code: string,
    readonly problem: string,
    readonly hint?: string,
    /** relative to the value the normaliser was given */
    readonly subpath: PathSeg[] = [],
  ) {
    super(problem);
  }
}

const fail = (code: string, problem: string, hint?: string, subpath: PathSeg[] = []): never => {
  throw new FieldProblem(code, problem, hint, subpath);
};

export const describeValue = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : typeof v === 'string' ? `"${v}"` : String(v);

// ---------------------------------------------------------------- scalars

/** Scalars as compose stringifies them: numbers and booleans written out, strings as is. */
export function scalarString(v: unknown, what: string): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return fail('invalid_value', `${what} must be a string, not ${describeValue(v)}`);
}

/** A boolean: true/false, or the YAML 1.1 words compose-go casts too (y/yes/on, n/no/off, any case), which YAML 1.2 reads as strings. */
export function asBool(v: unknown, what: string): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string' && /^(true|y|yes|on)$/i.test(v)) return true;
  if (typeof v === 'string' && /^(false|n|no|off)$/i.test(v)) return false;
  return fail('invalid_value', `${what} must be true or false, not ${describeValue(v)}`);
}

export function asNonNegativeInt(v: unknown, what: string, code = 'invalid_value'): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && /^\d+$/.test(v.trim())) return Number(v.trim());
  return fail(code, `${what} must be a non-negative integer, not ${describeValue(v)}`);
}

/** A replica count (`deploy.replicas`, `scale`): a non-negative integer no larger than what berth runs in an environment. */
export function asReplicas(v: unknown, what: string): number {
  const n = asNonNegativeInt(v, what, 'bad_replicas');
  if (n > MAX_CONTAINERS) return fail('bad_replicas', `${what} ${n} is more than the ${MAX_CONTAINERS} containers berth runs in one environment`, 'run fewer replicas');
  return n;
}

// ---------------------------------------------------------------- images

const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const PATH_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const DOMAIN_RE = /^(?:localhost|\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::[0-9]+)?$/;
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const DIGEST_RE = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;

/** `nginx` → `docker.io/library/nginx:latest`; registry hosts and digests kept; the tag defaults to latest only without a digest. */
export function normalizeImage(ref: string): string {
  const bad = (why: string) => fail('bad_image', `invalid image reference "${ref}": ${why}`, 'write it as [registry/]name[:tag][@digest], e.g. nginx:1.27');
  if (!ref || ref !== ref.trim()) return bad('empty or surrounded by spaces');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST_RE.test(digest)) return bad(`bad digest "${digest}"`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG_RE.test(tag)) return bad(`bad tag "${tag}"`);
  }
  let domain = 'docker.io';
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    domain = first;
    rest = rest.slice(slash + 1);
    if (!DOMAIN_RE.test(domain)) return bad(`bad registry "${domain}"`);
  }
  if (domain === 'index.docker.io' || domain === 'registry-1.docker.io') domain = 'docker.io';
  if (!PATH_RE.test(rest)) return bad(rest !== rest.toLowerCase() ? 'repository names must be lowercase' : `bad repository name "${rest}"`);
  if (domain === 'docker.io' && !rest.includes('/')) rest = `library/${rest}`;
  if (!tag && !digest) tag = 'latest';
  return `${domain}/${rest}${tag ? `:${tag}` : ''}${digest ? `@${digest}` : ''}`;
}

// ---------------------------------------------------------------- durations

const UNIT_NS: Record<string, bigint> = { ns: 1n, us: 1000n, µs: 1000n, μs: 1000n, ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n };

/** Go durations as compose reads them (`1m30s`, `500ms`, `1.5s`) → milliseconds (exact for whole ns multiples of a ms). */
export function parseDuration(v: unknown, what: string): number {
  if (v === 0 || v === '0') return 0;
  const bad = () => fail('bad_duration', `${what}: invalid duration ${describeValue(v)}`, 'use a number with a unit, e.g. 30s, 1m30s, 500ms');
  if (typeof v !== 'string' || !v) return bad();
  const re = /(\d+)(?:\.(\d+))?(ns|us|µs|μs|ms|s|m|h)/y;
  let ns = 0n;
  let i = 0;
  while (i < v.length) {
    re.lastIndex = i;
    const m = re.exec(v);
    if (!m) return bad();
    const unit = UNIT_NS[m[3]!]!;
    ns += BigInt(m[1]!) * unit;
    if (m[2]) ns += (BigInt(m[2]) * unit) / 10n ** BigInt(m[2].length);
    i = re.lastIndex;
  }
  // Go's time.Duration (what compose parses into) holds about 292 years; a longer one is an error there too.
  if (ns > 2n ** 63n - 1n) return fail('bad_duration', `${what}: duration ${describeValue(v)} is longer than docker compose can hold (about 292 years)`, 'use a shorter duration');
  return Number(ns) / 1e6;
}

// ---------------------------------------------------------------- commands

/**
 * A command given as a string is split into words as docker compose splits it (go-shellwords, which is close to
 * a POSIX shell but not the same): a backslash outside single quotes takes the next character as it is, inside
 * double quotes too (`"\d"` is `d`), `\t` and `\n` being a tab and a newline; a backquoted part is one piece of
 * its word, backquotes and spaces kept (no shell runs it); only space, tab, CR and LF separate words.
 * Shell syntax outside quotes is refused: at `&&`, `;`, `|` or `2>&1` go-shellwords stops and runs the words
 * before it (`kong migrations up && kong migrations finish` runs `kong migrations up` alone), and a `(` or
 * `)` it cannot split at all; neither is what the file says.
 */
export function splitCommand(cmd: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: "'" | '"' | '`' | undefined;
  for (let i = 0; i < cmd.length; i++) {
    const c = cmd[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else cur += c;
      continue;
    }
    if (c === '\\') {
      if (i + 1 >= cmd.length) return fail('invalid_value', `${JSON.stringify(cmd)} ends in a backslash that escapes nothing`, 'remove it, or write \\\\ for a backslash');
      const next = cmd[++i]!;
      // Inside backquotes the escape stays as written (the part is passed on unsplit); elsewhere \t and \n are a tab and a newline.
      cur += quote === '`' ? `\\${next}` : next === 't' ? '\t' : next === 'n' ? '\n' : next;
      inWord = true;
      continue;
    }
    if (quote === '"') {
      if (c === '"') quote = undefined;
      else cur += c;
      continue;
    }
    if (quote === '`') {
      cur += c;
      if (c === '`') quote = undefined;
      continue;
    }
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '`') {
      quote = c;
      cur += c;
      inWord = true;
    } else if (';&|<>()'.includes(c)) {
      const op = /^(&&|\|\||>>|[;&|<>()])/.exec(cmd.slice(i))![1]!;
      const split = op === '(' || op === ')' ? 'docker compose cannot split a command with it into words' : 'docker compose runs the words before it and drops the rest';
      return fail(
        'invalid_value',
        `${JSON.stringify(cmd)}: "${op}" outside quotes is shell syntax, and no shell runs this command: ${split}`,
        `to run it in a shell, write the command as a list: [sh, -c, ${JSON.stringify(cmd)}]; or quote the "${op}" if it is an argument`,
      );
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) return fail('invalid_value', `unterminated ${quote === "'" ? 'single quote' : quote === '"' ? 'double quote' : 'backquote'} in ${JSON.stringify(cmd)}`);
  if (inWord) words.push(cur);
  return words;
}

// ---------------------------------------------------------------- ports

// As Docker's port specs allow (nat.ParsePortSpecs): SCTP too (open5gs publishes 38412/sctp).
const PROTOCOLS: readonly string[] = ['tcp', 'udp', 'sctp'];

function portNumber(s: string, what: string, raw: string): number {
  if (!/^\d+$/.test(s)) return fail('bad_port', `invalid port "${raw}": ${what} "${s}" is not a number`, PORT_HINT);
  const n = Number(s);
  if (n < 1 || n > 65535) return fail('bad_port', `invalid port "${raw}": ${what} ${n} is out of range 1-65535`, PORT_HINT);
  return n;
}

function portRange(s: string, what: string, raw: string): [number, number] {
  const m = /^([^-]+)(?:-([^-]+))?$/.exec(s);
  if (!m) return fail('bad_port', `invalid port "${raw}": bad ${what} range "${s}"`, PORT_HINT);
  const lo = portNumber(m[1]!, what, raw);
  const hi = m[2] === undefined ? lo : portNumber(m[2], what, raw);
  if (hi < lo) return fail('bad_port', `invalid port "${raw}": ${what} range ${lo}-${hi} is reversed`, PORT_HINT);
  return [lo, hi];
}

const PORT_HINT = 'use "[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]", e.g. "8080:80" or "127.0.0.1:53:53/udp"';

function protocolOf(p: string, raw: string): Protocol {
  const proto = p.toLowerCase();
  if (!PROTOCOLS.includes(proto)) return fail('bad_port', `invalid port "${raw}": protocol "${p}" is not tcp, udp or sctp`, PORT_HINT);
  return proto as Protocol;
}

function hostIpOf(ip: string, raw: string): string | undefined {
  const bare = ip.startsWith('[') && ip.endsWith(']') ? ip.slice(1, -1) : ip;
  if (bare === '') return undefined;
  if (!isIP(bare)) return fail('bad_port', `invalid port "${raw}": "${ip}" is not an IP address`, PORT_HINT);
  return bare;
}

function expand(raw: string, hostIp: string | undefined, published: string | undefined, target: string, protocol: Protocol): PortBinding[] {
  const [tLo, tHi] = portRange(target, 'container port', raw);
  const pub = published === undefined || published === '' ? undefined : portRange(published, 'host port', raw);
  const count = tHi - tLo + 1;
  if (pub && pub[1] - pub[0] + 1 !== count) {
    if (count === 1)
      return fail('bad_port', `invalid port "${raw}": a host port range for one container port is not supported`, 'publish one host port per container port');
    return fail('bad_port', `invalid port "${raw}": host and container ranges differ in length`, PORT_HINT);
  }
  const out: PortBinding[] = [];
  for (let i = 0; i < count; i++) {
    out.push({ target: tLo + i, ...(pub ? { published: pub[0] + i } : {}), ...(hostIp ? { hostIp } : {}), protocol });
  }
  return out;
}

/** How many bindings parsePort makes of an entry, without making them (1 when it cannot tell: parsePort then says what is wrong). */
export function portCount(entry: unknown): number {
  if (typeof entry !== 'string') return 1;
  const spec = entry.trim().replace(/\/[^/]*$/, '');
  const m = /^(\d+)-(\d+)$/.exec(spec.slice(spec.lastIndexOf(':') + 1));
  return m ? Math.max(1, Number(m[2]) - Number(m[1]) + 1) : 1;
}

/** One entry of `ports:` (short string, number or long mapping) → its bindings (ranges expand). */
export function parsePort(entry: unknown): PortBinding[] {
  if (typeof entry === 'number') entry = String(entry);
  if (typeof entry === 'string') {
    const raw = entry;
    let spec = raw.trim();
    let protocol: Protocol = 'tcp';
    const slash = spec.lastIndexOf('/');
    if (slash >= 0) {
      protocol = protocolOf(spec.slice(slash + 1), raw);
      spec = spec.slice(0, slash);
    }
    let ip: string | undefined;
    // A bracketed IPv6 host ip: "[::1]:8080:80"
    if (spec.startsWith('[')) {
      const close = spec.indexOf(']');
      if (close < 0 || spec[close + 1] !== ':') return fail('bad_port', `invalid port "${raw}": bad IPv6 address`, PORT_HINT);
      ip = spec.slice(0, close + 1);
      spec = spec.slice(close + 2);
    }
    const parts = spec.split(':');
    let published: string | undefined;
    let target: string;
    if (ip !== undefined) {
      if (parts.length !== 2) return fail('bad_port', `invalid port "${raw}": expected [IP]:HOST_PORT:CONTAINER_PORT`, PORT_HINT);
      [published, target] = parts as [string, string];
    } else if (parts.length === 1) target = parts[0]!;
    else if (parts.length === 2) [published, target] = parts as [string, string];
    else {
      target = parts[parts.length - 1]!;
      published = parts[parts.length - 2]!;
      ip = parts.slice(0, -2).join(':');
    }
    if (target === '') return fail('bad_port', `invalid port "${raw}": no container port`, PORT_HINT);
    return expand(raw, ip === undefined ? undefined : hostIpOf(ip, raw), published, target, protocol);
  }
  if (entry && typeof entry === 'object' && !Array.isArray(entry)) {
    const o = entry as Record<string, unknown>;
    const known = ['target', 'published', 'host_ip', 'protocol', 'mode', 'name', 'app_protocol'];
    for (const k of Object.keys(o)) if (!known.includes(k)) fail('unknown_key', `unknown port key "${k}"`, `known keys: ${known.join(', ')}`, [k]);
    if (o.mode !== undefined && o.mode !== 'host' && o.mode !== 'ingress') fail('bad_port', `port mode must be host or ingress, not ${describeValue(o.mode)}`, undefined, ['mode']);
    if (o.target === undefined) return fail('bad_port', 'port has no target (container port)', PORT_HINT);
    const raw = JSON.stringify(o);
    const target = scalarString(o.target, 'target');
    if (target.includes('-')) return fail('bad_port', `invalid port ${raw}: target must be a single port`, PORT_HINT, ['target']);
    const published = o.published === undefined || o.published === null ? undefined : scalarString(o.published, 'published');
    const protocol = o.protocol === undefined ? 'tcp' : protocolOf(scalarString(o.protocol, 'protocol'), raw);
    const ip = o.host_ip === undefined || o.host_ip === null ? undefined : hostIpOf(scalarString(o.host_ip, 'host_ip'), raw);
    return expand(raw, ip, published, target, protocol);
  }
  return fail('bad_port', `invalid port ${describeValue(entry)}`, PORT_HINT);
}

export const portKey = (p: PortBinding) => `${p.hostIp ?? ''}|${p.published ?? ''}|${p.target}|${p.protocol}`;

export function comparePorts(a: PortBinding, b: PortBinding): number {
  return (
    a.target - b.target ||
    (a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0) ||
    (a.published ?? 0) - (b.published ?? 0) ||
    ((a.hostIp ?? '') < (b.hostIp ?? '') ? -1 : (a.hostIp ?? '') > (b.hostIp ?? '') ? 1 : 0)
  );
}

// ---------------------------------------------------------------- volumes

export interface PathContext {
  /** repository-relative directory relative bind sources are resolved against (the first compose file's) */
  baseDir: string;
  /** absolute path of the checkout; when absent relative binds stay repository-relative (`./data`) */
  repoRoot?: string;
  /** what `~` stands for (the environment's `home:` in berth.yml); absent: a `~` source is refused */
  home?: string;
}

const PROPAGATIONS: readonly string[] = ['rprivate', 'private', 'rshared', 'shared', 'rslave', 'slave'];
const VOLUME_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const VOLUME_HINT = 'use "VOLUME:/container/path[:ro]" or "./host/path:/container/path[:ro]"';

export function resolveBindSource(src: string, ctx: PathContext): string {
  if (src.startsWith('~')) {
    // As docker compose: `~` and `~/…` only (`~user` names another user's home, which compose does not expand either).
    if (src !== '~' && !src.startsWith('~/')) return fail('bad_volume', `bind source "${src}": ~user is not supported`, 'use an absolute path, or ~/… with the environment\'s home: set');
    if (!ctx.home) return fail('bad_volume', `bind source "${src}": ~ names no directory here (docker compose takes the home of the user it runs as; berth runs as no user of the target)`, 'use an absolute path, or set home: (e.g. home: /home/deploy) for this environment in .github/berth.yml on the default branch');
    src = ctx.home + src.slice(1);
  }
  if (src.startsWith('/')) {
    const n = posix.normalize(src);
    return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
  }
  const rel = posix.normalize(posix.join(ctx.baseDir || '.', src));
  const clean = rel.length > 1 && rel.endsWith('/') ? rel.slice(0, -1) : rel;
  if (ctx.repoRoot) return posix.resolve(ctx.repoRoot, clean);
  return clean === '.' ? '.' : clean.startsWith('../') || clean === '..' ? clean : `./${clean}`;
}

function containerPath(t: string, raw: string): string {
  if (!t.startsWith('/')) return fail('bad_volume', `invalid volume "${raw}": container path "${t}" is not absolute`, VOLUME_HINT);
  const n = posix.normalize(t);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** One entry of a service's `volumes:` → a mount. Named volumes keep their compose key; binds become absolute (or repo-relative). */
export function parseVolume(entry: unknown, ctx: PathContext): Mount {
  if (typeof entry === 'string') {
    const raw = entry;
    const parts = raw.split(':');
    if (parts.length > 3 || parts.some((p) => p === '')) return fail('bad_volume', `invalid volume "${raw}"`, VOLUME_HINT);
    if (parts.length === 1) return { type: 'volume', target: containerPath(parts[0]!, raw), readOnly: false };
    const [source, target, mode] = parts as [string, string, string | undefined];
    let readOnly = false;
    let selinux: 'z' | 'Z' | undefined;
    let propagation: Mount['propagation'];
    let noCopy = false;
    for (const m of (mode ?? '').split(',').filter(Boolean)) {
      if (m === 'ro') readOnly = true;
      else if (m === 'rw') readOnly = false;
      else if (m === 'z' || m === 'Z') selinux = m;
      else if (m === 'nocopy') noCopy = true;
      else if (PROPAGATIONS.includes(m)) propagation = m === 'rprivate' ? undefined : (m as Mount['propagation']);
      // macOS file-sharing hints: meaningless to a Linux engine, as compose treats them
      else if (m === 'cached' || m === 'delegated' || m === 'consistent') continue;
      // zabbix-docker writes `:roz`; docker compose ignores a mode it does not know and mounts read-write, unlabelled
      else if (/^(ro|rw)[zZ]$/.test(m)) return fail('unsupported', `invalid volume "${raw}": mode "${m}" is not one mode`, `write the modes comma-separated, "${m.slice(0, 2)},${m[2]}" (docker compose ignores "${m}" and mounts the volume read-write, unlabelled)`);
      else return fail('unsupported', `invalid volume "${raw}": mode "${m}" is not supported by berth`, 'supported modes: ro, rw, z, Z, nocopy, (r)shared, (r)slave, (r)private, cached, delegated, consistent');
    }
    const isBind = source.startsWith('/') || source.startsWith('.') || source.startsWith('~');
    if (!isBind && !VOLUME_NAME_RE.test(source)) return fail('bad_volume', `invalid volume "${raw}": "${source}" is neither a volume name nor a path`, VOLUME_HINT);
    if (isBind && noCopy) return fail('bad_volume', `invalid volume "${raw}": nocopy applies to volumes, not bind mounts`, VOLUME_HINT);
    if (!isBind && propagation) return fail('bad_volume', `invalid volume "${raw}": propagation applies to bind mounts, not volumes`, VOLUME_HINT);
    // The short syntax creates a missing host directory, as compose (and docker run -v) does.
    return isBind
      ? { type: 'bind', source: resolveBindSource(source, ctx), target: containerPath(target, raw), readOnly, createHostPath: true, ...(selinux ? { selinux } : {}), ...(propagation ? { propagation } : {}) }
      : { type: 'volume', source, target: containerPath(target, raw), readOnly, ...(noCopy ? { noCopy } : {}), ...(selinux ? { selinux } : {}) };
  }
  if (entry && typeof entry === 'object' && !Array.isArray(entry)) {
    const o = entry as Record<string, unknown>;
    const raw = JSON.stringify(o);
    // image: is compose's option of a type: image mount: known, so that mount is refused for its type, with the reason
    const known = ['type', 'source', 'target', 'read_only', 'consistency', 'bind', 'volume', 'tmpfs', 'image'];
    for (const k of Object.keys(o)) if (!known.includes(k)) fail('unknown_key', `unknown volume key "${k}"`, `known keys: ${known.join(', ')}`, [k]);
    const type = o.type === undefined ? 'volume' : scalarString(o.type, 'type');
    if (type === 'image')
      return fail('unsupported', 'volume type "image" (an image\'s files mounted into the container) is not supported by berth', "copy the files into the service's own image in CI, or fill a named volume with them and mount it (volume, bind or tmpfs)", ['type']);
    if (type !== 'volume' && type !== 'bind' && type !== 'tmpfs') return fail('unsupported', `volume type "${type}" is not supported by berth`, 'use volume, bind or tmpfs', ['type']);
    if (o.image !== undefined && o.image !== null) return fail('invalid_value', `volume option image does not apply to a ${type} mount`, undefined, ['image']);
    if (o.target === undefined) return fail('bad_volume', `volume ${raw} has no target`, VOLUME_HINT);
    const target = containerPath(scalarString(o.target, 'target'), raw);
    const readOnly = o.read_only === undefined ? false : asBool(o.read_only, 'read_only');
    const sub = (key: string, allowed: string[]) => {
      const v = o[key];
      if (v === undefined || v === null) return;
      if (typeof v !== 'object' || Array.isArray(v)) fail('invalid_value', `${key} must be a mapping`, undefined, [key]);
      for (const k of Object.keys(v as object))
        if (!allowed.includes(k)) fail('unsupported', `volume option ${key}.${k} is not supported by berth`, allowed.length ? `supported: ${allowed.map((a) => `${key}.${a}`).join(', ')}` : undefined, [key, k]);
      if (key !== type) fail('invalid_value', `volume option ${key} does not apply to a ${type} mount`, undefined, [key]);
    };
    sub('bind', ['create_host_path', 'selinux', 'propagation']);
    sub('volume', ['nocopy', 'subpath']);
    sub('tmpfs', ['size', 'mode']);
    const opt = (key: string) => (o[key] ?? {}) as Record<string, unknown>;
    const source = o.source === undefined || o.source === null || o.source === '' ? undefined : scalarString(o.source, 'source');
    if (type === 'tmpfs') {
      if (source !== undefined) return fail('bad_volume', 'a tmpfs mount has no source', undefined, ['source']);
      const t = opt('tmpfs');
      const size = t.size === undefined ? undefined : tmpfsSize(t.size);
      const mode = t.mode === undefined ? undefined : tmpfsMode(t.mode);
      return { type, target, readOnly, ...(size !== undefined ? { tmpfsSize: size } : {}), ...(mode !== undefined ? { tmpfsMode: mode } : {}) };
    }
    if (type === 'bind') {
      if (source === undefined) return fail('bad_volume', `bind mount ${raw} has no source`, VOLUME_HINT);
      const b = opt('bind');
      const create = b.create_host_path === undefined ? false : asBool(b.create_host_path, 'bind.create_host_path');
      const selinux = b.selinux === undefined ? undefined : scalarString(b.selinux, 'bind.selinux');
      if (selinux !== undefined && selinux !== 'z' && selinux !== 'Z') return fail('invalid_value', `bind.selinux must be z or Z, not "${selinux}"`, undefined, ['bind', 'selinux']);
      const prop = b.propagation === undefined ? undefined : scalarString(b.propagation, 'bind.propagation');
      if (prop !== undefined && !PROPAGATIONS.includes(prop)) return fail('invalid_value', `bind.propagation must be one of ${PROPAGATIONS.join(', ')}, not "${prop}"`, undefined, ['bind', 'propagation']);
      const propagation = prop === undefined || prop === 'rprivate' ? {} : { propagation: prop as Mount['propagation'] };
      return { type, source: resolveBindSource(source, ctx), target, readOnly, ...(create ? { createHostPath: true } : {}), ...(selinux ? { selinux: selinux as 'z' | 'Z' } : {}), ...propagation };
    }
    if (source !== undefined && !VOLUME_NAME_RE.test(source)) return fail('bad_volume', `invalid volume name "${source}"`, VOLUME_HINT, ['source']);
    const noCopy = opt('volume').nocopy === undefined ? false : asBool(opt('volume').nocopy, 'volume.nocopy');
    const subpath = opt('volume').subpath === undefined ? undefined : volumeSubpath(opt('volume').subpath);
    if (subpath !== undefined && source === undefined) return fail('bad_volume', 'volume.subpath needs a named volume: an anonymous one starts empty', 'name the volume in source:', ['volume', 'subpath']);
    return { type, ...(source !== undefined ? { source } : {}), target, readOnly, ...(noCopy ? { noCopy } : {}), ...(subpath !== undefined ? { subpath } : {}) };
  }
  return fail('bad_volume', `invalid volume ${describeValue(entry)}`, VOLUME_HINT);
}

/**
 * A directory inside the volume to mount instead of its root (Docker Engine
 * 26, API 1.45; the apply checks the target's engine): relative, and never
 * climbing out of the volume. Empty is the root, as compose leaves it.
 */
function volumeSubpath(v: unknown): string | undefined {
  const raw = scalarString(v, 'volume.subpath');
  if (raw === '') return undefined;
  const n = posix.normalize(raw).replace(/\/$/, '');
  if (raw.startsWith('/') || n === '..' || n.startsWith('../') || raw.includes('\0'))
    return fail('bad_volume', `volume.subpath "${raw}" leaves the volume`, 'name a directory inside the volume, relative to its root (e.g. subpath: app/data)', ['volume', 'subpath']);
  return n === '.' ? undefined : n;
}

function tmpfsSize(v: unknown): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  const m = typeof v === 'string' ? /^(\d+)([kmg]?)b?$/i.exec(v.trim()) : null;
  if (!m) return fail('invalid_value', `tmpfs.size: invalid size ${describeValue(v)}`, 'e.g. 64m or 1000000', ['tmpfs', 'size']);
  return Number(m[1]) * ({ '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 } as Record<string, number>)[m[2]!.toLowerCase()]!;
}

/**
 * As compose-go reads tmpfs.mode (a number): the number YAML read — `01777` and `0o1777` are octal there
 * (yaml.ts) — or a string read the way Go reads a number with its base prefix (`"01777"` octal, `"1777"` decimal,
 * as docker compose takes it: 1777 is 0o3361, not the sticky 0o1777).
 */
function tmpfsMode(v: unknown): number {
  let n: number | undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) n = v;
  else if (typeof v === 'string') {
    const m = /^(?:0o?([0-7]+)|0x([0-9a-fA-F]+)|([1-9][0-9]*|0))$/.exec(v);
    if (m) n = m[1] !== undefined ? parseInt(m[1], 8) : m[2] !== undefined ? parseInt(m[2], 16) : Number(m[3]);
  }
  if (n === undefined || n > 0o7777) return fail('invalid_value', `tmpfs.mode: invalid mode ${describeValue(v)}`, 'an octal mode with its leading zero, such as 01777', ['tmpfs', 'mode']);
  return n;
}

// ---------------------------------------------------------------- map-or-list

/**
 * `environment` / `labels` as a mapping (`KEY: value`) or a list (`KEY=value`).
 * A key without a value is null: environment looks it up, labels make it "".
 */
export function mapOrList(v: unknown, what: string): [string, string | null][] {
  const out: [string, string | null][] = [];
  if (Array.isArray(v)) {
    v.forEach((item, i) => {
      if (typeof item !== 'string') fail('invalid_value', `${what} entries must be strings like KEY=value, not ${describeValue(item)}`, undefined, [i]);
      const s = item as string;
      const eq = s.indexOf('=');
      const key = eq < 0 ? s : s.slice(0, eq);
      if (!key) fail('invalid_value', `${what} entry ${JSON.stringify(s)} has no name`, undefined, [i]);
      if (key === '__proto__') fail('invalid_value', `${what} entry ${JSON.stringify(s)} is named __proto__, which berth does not accept`, PROTO_KEY_HINT, [i]);
      out.push([key, eq < 0 ? null : s.slice(eq + 1)]);
    });
    return out;
  }
  if (v && typeof v === 'object') {
    for (const [k, val] of Object.entries(v)) {
      if (val === null || val === undefined) out.push([k, null]);
      else if (typeof val === 'object') fail('invalid_value', `${what}.${k} must be a string, not ${describeValue(val)}`, undefined, [k]);
      else out.push([k, scalarString(val, `${what}.${k}`)]);
    }
    return out;
  }
  if (v === null || v === undefined) return out;
  return fail('invalid_value', `${what} must be a mapping or a list, not ${describeValue(v)}`);
}

export function sortRecord(r: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(r).sort()) out[k] = r[k]!;
  return out;
}
