// Which registries an image may come from (policy.allow_registries).
//
// Every image reference is resolved, and later pulled, by the target's Docker
// engine, which sits in the operator's network and sends the server's logins.
// A PR (a fork's too: plans run for anyone) chooses the reference, so without
// this check it could make the engine query a registry on the target's
// loopback, its LAN or a cloud metadata address, and read from the plan what
// exists there. The reference's registry host is classified the way Docker
// itself reads the reference (the first path component is a registry when it
// holds `.` or `:`, is `localhost`, or has upper-case letters, which a
// repository path cannot), after interpolation, extends, include and merges.
//
// Allowed without listing: Docker Hub, and registries named by a public DNS
// name. Refused unless listed: IP literals in loopback, private, link-local,
// shared, unique-local and other non-public ranges (in any spelling the
// resolver accepts: `127.1`, `2130706433`, `0x7f.1`, `[::ffff:127.0.0.1]`),
// `localhost` and `*.localhost`, names without a dot (looked up in the
// target's search domains), names under TLDs used only inside networks
// (`.local`, `.internal`, `.corp`, `.lan`, `.home.arpa`, …), and — where the
// caller gives a resolver — names that resolve, from the berth server, to any
// non-public address. A name whose lookup fails (no DNS, an air-gapped or
// offline server, a timeout) is judged by its form alone: berth sees no
// address to judge, and offline servers must still plan real compose files
// whose images live on ghcr.io, quay.io and the like.
import { BlockList, isIP } from 'node:net';

export interface ImageRegistry {
  /** lower case, trailing dot dropped; IP literals canonical (dotted quad, or the full IPv6 form without brackets) */
  host: string;
  port?: string;
  /** Docker Hub (no registry in the reference, docker.io, index.docker.io, registry-1.docker.io) */
  hub: boolean;
  /** how the registry is shown and listed: host[:port], IPv6 in brackets */
  display: string;
  /** 4 or 6 when the host is an IP literal */
  ip?: 4 | 6;
}

const HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);
const LABEL = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?';
const NAME_RE = new RegExp(`^${LABEL}(?:\\.${LABEL})*$`);
/** TLDs (and suffixes) that name hosts only inside a network (RFC 6761, 6762, 8375 and common private use). */
const INTERNAL_SUFFIXES = ['localhost', 'local', 'localdomain', 'internal', 'intranet', 'lan', 'home', 'corp', 'private', 'home.arpa', 'arpa'];

/** An inet_aton IPv4 spelling (`127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`) → dotted quad; undefined when it is not one. */
export function parseLooseIPv4(s: string): string | undefined {
  if (!/^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$/i.test(s)) return undefined;
  const parts = s.split('.').map((p) => {
    if (/^0x/i.test(p)) return p.length === 2 ? 0 : parseInt(p.slice(2), 16);
    if (/^0[0-7]+$/.test(p)) return parseInt(p, 8);
    if (/^0[0-9]+$/.test(p)) return NaN; // 08: not octal, not decimal to inet_aton
    return Number(p);
  });
  if (parts.some((n) => !Number.isFinite(n))) return undefined;
  const last = parts.pop()!;
  if (parts.some((n) => n > 255) || last >= 256 ** (4 - parts.length)) return undefined;
  let value = last;
  parts.forEach((n, i) => (value += n * 256 ** (3 - i)));
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** The eight 16-bit words of an IPv6 address (embedded IPv4 tail allowed); undefined when it is not one. */
function ipv6Words(s: string): number[] | undefined {
  if (isIP(s) !== 6) return undefined;
  const [head, tail] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const words = (x: string) =>
    (x ? x.split(':') : []).flatMap((w) => {
      if (!w.includes('.')) return [parseInt(w, 16)];
      const o = w.split('.').map(Number);
      return [(o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!];
    });
  const h = words(head);
  const t = tail === undefined ? [] : words(tail);
  return tail === undefined ? h : [...h, ...Array<number>(8 - h.length - t.length).fill(0), ...t];
}

const v4Of = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;

const NON_PUBLIC = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24],
  ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const)
  NON_PUBLIC.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [['::', 128], ['::1', 128], ['100::', 64], ['2001:db8::', 32], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8]] as const)
  NON_PUBLIC.addSubnet(net, prefix, 'ipv6');

/** What kind of non-public address this is (for the message); undefined for a public one. */
export function nonPublicAddress(address: string): string | undefined {
  const v4 = isIP(address) === 4 ? address : undefined;
  if (v4) {
    if (!NON_PUBLIC.check(v4, 'ipv4')) return undefined;
    const first = Number(v4.split('.')[0]);
    const second = Number(v4.split('.')[1]);
    if (first === 127) return 'a loopback address';
    if (first === 169 && second === 254) return 'a link-local address (cloud metadata services live there)';
    if (first === 10 || (first === 172 && second >= 16 && second < 32) || (first === 192 && second === 168)) return 'a private address';
    if (first === 0) return 'an address of "this host"';
    return 'a reserved, shared or multicast address';
  }
  const w = ipv6Words(address.replace(/%.*$/, ''));
  if (!w) return 'not an IP address';
  // IPv4 inside IPv6: mapped (::ffff:a.b.c.d), compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d), 6to4 (2002:AABB:CCDD::)
  const zero = (from: number, to: number) => w.slice(from, to).every((x) => x === 0);
  if (zero(0, 5) && w[5] === 0xffff) return nonPublicAddress(v4Of(w[6]!, w[7]!));
  if (zero(0, 6) && (w[6] !== 0 || w[7]! > 1)) return nonPublicAddress(v4Of(w[6]!, w[7]!));
  if (w[0] === 0x64 && w[1] === 0xff9b && zero(2, 6)) return nonPublicAddress(v4Of(w[6]!, w[7]!));
  if (w[0] === 0x2002) return nonPublicAddress(v4Of(w[1]!, w[2]!));
  const canonical = w.map((x) => x.toString(16)).join(':');
  if (!NON_PUBLIC.check(canonical, 'ipv6')) return undefined;
  if (zero(0, 7) && w[7] === 1) return 'a loopback address';
  if ((w[0]! & 0xffc0) === 0xfe80) return 'a link-local address';
  if ((w[0]! & 0xfe00) === 0xfc00) return 'a unique-local (private) address';
  return 'a reserved or multicast address';
}

/** `host[:port]` or `[v6]:port` → the normalised registry; a string when it is not a registry address. */
export function parseRegistryAddress(text: string): ImageRegistry | string {
  let hostPart: string;
  let port: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (v6) {
    hostPart = v6[1]!;
    port = v6[2];
  } else {
    const colon = text.lastIndexOf(':');
    hostPart = colon >= 0 ? text.slice(0, colon) : text;
    port = colon >= 0 ? text.slice(colon + 1) : undefined;
  }
  if (port !== undefined && !/^[0-9]{1,5}$/.test(port)) return `"${port}" is not a port number`;
  const portPart = port === undefined ? {} : { port: String(Number(port)) };
  const suffix = port === undefined ? '' : `:${Number(port)}`;
  if (v6) {
    const addr = hostPart.replace(/%.*$/, '').toLowerCase();
    if (!ipv6Words(addr)) return `"${hostPart}" is not an IPv6 address`;
    // the WHATWG form: compressed, lower case, an embedded IPv4 tail in hex (`::ffff:7f00:1`)
    const host = new URL(`http://[${addr}]/`).hostname.slice(1, -1);
    return { host, ...portPart, hub: false, display: `[${host}]${suffix}`, ip: 6 };
  }
  const name = hostPart.toLowerCase().replace(/\.+$/, '');
  const v4 = parseLooseIPv4(name);
  if (v4) return { host: v4, ...portPart, hub: false, display: `${v4}${suffix}`, ip: 4 };
  if (!NAME_RE.test(name)) return `"${hostPart}" is not a host name`;
  return { host: name, ...portPart, hub: HUB.has(name) && port === undefined, display: `${name}${suffix}` };
}

/**
 * The registry an image reference pulls from, read as Docker reads it; a
 * string (why) when the reference's registry part is malformed.
 */
export function registryOfImage(image: string): ImageRegistry | string {
  const slash = image.indexOf('/');
  const first = slash >= 0 ? image.slice(0, slash) : '';
  const isRegistry = slash >= 0 && (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase());
  if (!isRegistry) return { host: 'docker.io', hub: true, display: 'docker.io' };
  return parseRegistryAddress(first);
}

/** Whether an allow_registries entry names this registry: a host without a port allows every port of that host. */
function listed(r: ImageRegistry, allow: readonly string[]): boolean {
  return allow.some((entry) => {
    const e = parseRegistryAddress(entry.trim());
    return typeof e !== 'string' && e.host === r.host && (e.port === undefined || e.port === r.port);
  });
}

/** Why a registry host is refused by its form alone (no DNS); undefined when the form is fine. */
function lexicalRefusal(r: ImageRegistry): string | undefined {
  if (r.hub) return undefined;
  if (r.ip) return nonPublicAddress(r.host);
  if (r.host === 'localhost' || r.host.endsWith('.localhost')) return 'the target itself (localhost)';
  if (!r.host.includes('.')) return 'a name without a dot, which the target looks up in its own network';
  const internal = INTERNAL_SUFFIXES.find((s) => r.host === s || r.host.endsWith(`.${s}`));
  if (internal) return `a name under .${internal}, which exists only inside a network`;
  return undefined;
}

export interface RegistryVerdict {
  registry?: ImageRegistry;
  /** why the image is refused; undefined: allowed */
  refusal?: string;
}

/** The policy's verdict on an image's registry by the reference alone (sync; no DNS). */
export function checkImageRegistry(image: string, allow: readonly string[] = []): RegistryVerdict {
  // A pure function of its arguments, asked once per container an apply creates (200 times for one image):
  // answered from a small cache keyed by both, unambiguously (JSON), verdicts frozen and shared.
  const key = JSON.stringify([image, allow]);
  let v = verdicts.get(key);
  if (!v) {
    if (verdicts.size >= 4096) verdicts.clear();
    verdicts.set(key, (v = Object.freeze(judgeImageRegistry(image, allow))));
  }
  return v;
}

const verdicts = new Map<string, RegistryVerdict>();

function judgeImageRegistry(image: string, allow: readonly string[]): RegistryVerdict {
  const r = registryOfImage(image);
  if (typeof r === 'string') return { refusal: `its registry part is not a registry address (${r})` };
  if (listed(r, allow)) return { registry: r };
  const why = lexicalRefusal(r);
  return why ? { registry: r, refusal: `registry ${r.display} is ${why}` } : { registry: r };
}

/** Resolves a host name on the berth server: its addresses, or throws (ENOTFOUND, a timeout…). */
export type RegistryLookup = (host: string) => Promise<readonly string[]>;

/**
 * The verdict with DNS: a public-looking name that resolves, from the berth
 * server, to any non-public address is refused (an internal name, or a public
 * name pointed at 127.0.0.1). A lookup that fails, or answers nothing, leaves
 * the verdict by form: there is no address to judge. Docker Hub, IP literals
 * and listed registries are not looked up. Lookups are shared through `cache`
 * (one per plan or apply).
 */
export async function checkImageRegistryResolved(image: string, allow: readonly string[], lookup: RegistryLookup, cache = new Map<string, Promise<string | undefined>>()): Promise<RegistryVerdict> {
  const v = checkImageRegistry(image, allow);
  const r = v.registry;
  if (v.refusal || !r || r.hub || r.ip || listed(r, allow)) return v;
  let pending = cache.get(r.host);
  if (!pending) {
    pending = lookup(r.host).then(
      (addresses) => {
        for (const a of addresses) {
          const why = nonPublicAddress(a);
          if (why) return `resolves to ${why} (${a})`;
        }
        return undefined;
      },
      () => undefined,
    );
    cache.set(r.host, pending);
  }
  const why = await pending;
  return why ? { registry: r, refusal: `registry ${r.display} ${why}` } : v;
}

/** The hint every refusal carries: the one setting that allows the registry. */
export function allowRegistryHint(v: RegistryVerdict): string {
  return v.registry
    ? `if ${v.registry.display} is a registry you trust, list it under policy.allow_registries (e.g. [${v.registry.display}]) in .github/berth.yml on the default branch; otherwise use an image from a public registry`
    : 'write the image as [registry[:port]/]repository[:tag][@digest]';
}

export interface ResolverOptions {
  /** a lookup still unanswered after this fails with ETIMEOUT (default 2 s) */
  timeoutMs?: number;
  /** how long an answer, or a failure, is kept per host (default 60 s) */
  ttlMs?: number;
  now?: () => number;
}

/**
 * A registry resolver around `resolve`: bounded by a timeout, and its answers
 * (failures too) kept per host for a short time, so an offline server pays a
 * failed lookup once per host and minute, not on every plan.
 */
export function registryResolver(resolve: (host: string) => Promise<readonly string[]>, o: ResolverOptions = {}): RegistryLookup {
  const timeoutMs = o.timeoutMs ?? 2000;
  const ttlMs = o.ttlMs ?? 60_000;
  const now = o.now ?? Date.now;
  const kept = new Map<string, { at: number; answer: Promise<readonly string[]> }>();
  return (host) => {
    const k = kept.get(host);
    if (k && now() - k.at < ttlMs) return k.answer;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error('lookup timed out'), { code: 'ETIMEOUT' })), timeoutMs);
      timer.unref();
    });
    const answer = Promise.race([resolve(host), timeout]).finally(() => clearTimeout(timer));
    answer.catch(() => {}); // a kept failure is no unhandled rejection while nobody asks
    for (const [h, e] of kept) if (now() - e.at >= ttlMs) kept.delete(h);
    kept.set(host, { at: now(), answer });
    return answer;
  };
}

/** The berth server's resolver (the system's, as `getaddrinfo` answers), bounded to 2 s, answers kept 60 s per host. */
export const systemLookup: RegistryLookup = registryResolver(async (host) => {
  const { lookup } = await import('node:dns/promises');
  return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);
});
