// The service keys beyond the core (resources, logging, ulimits, hostnames,
// dns, tmpfs, sysctls…): one table saying, for each compose key, which
// ServiceExtras field it fills, how its value is normalised and how two files
// merge it. The fragment builder and the merger both read this table, so a
// key added here is parsed, merged and carried to the spec in one place.
import { isIP } from 'node:net';
import type { Logging, ServiceExtras, Ulimit } from '../model/model.js';
import { asBool, describeValue, FieldProblem, mapOrList, parseDuration, scalarString, sortRecord } from './normalize.js';
import { MAX_EXPOSED } from './limits.js';

const fail = (code: string, problem: string, hint?: string, subpath: (string | number)[] = []): never => {
  throw new FieldProblem(code, problem, hint, subpath);
};

/** How a later file combines with an earlier one (compose's merge rules). */
/** replace: the later file's value; map: keys merged; set: union, sorted; sequence: union in written order (first place kept); hosts: union, by host name (hostsOrder) */
export type MergeKind = 'replace' | 'map' | 'set' | 'sequence' | 'logging' | 'hosts';

export interface ExtraKey<K extends keyof ServiceExtras = keyof ServiceExtras> {
  field: K;
  merge: MergeKind;
  parse: (v: unknown) => ServiceExtras[K];
}

// ---------------------------------------------------------------- units

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, t: 1024 ** 4, tb: 1024 ** 4 };

/** `512m`, `1.5g`, `1024` → bytes, as compose (go-units RAMInBytes) reads them. */
export function parseBytes(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  const m = typeof v === 'string' ? /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v) : null;
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) return fail('invalid_value', `${what}: invalid size ${describeValue(v)}`, 'use a number of bytes or a size like 512m or 2g');
  return Math.round(Number(m[1]) * unit);
}

/** `1.5`, `"0.5"` → billionths of a CPU. */
export function parseCpus(v: unknown, what: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+(?:\.\d+)?\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isFinite(n) || n < 0) return fail('invalid_value', `${what}: invalid number of CPUs ${describeValue(v)}`, 'e.g. 0.5 or 2');
  return Math.round(n * 1e9);
}

function positiveOrMinusOne(v: unknown, what: string): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < -1) return fail('invalid_value', `${what} must be an integer (or -1 for unlimited), not ${describeValue(v)}`);
  return n;
}

const stringList = (v: unknown, what: string): string[] => {
  const items = typeof v === 'string' ? [v] : Array.isArray(v) ? v : fail('invalid_value', `${what} must be a string or a list, not ${describeValue(v)}`);
  return (items as unknown[]).map((x, i) => {
    try {
      return scalarString(x, `${what}[${i}]`);
    } catch (e) {
      if (e instanceof FieldProblem) throw new FieldProblem(e.code, e.problem, e.hint, [i]);
      throw e;
    }
  });
};

const uniqueSorted = (xs: string[]) => [...new Set(xs)].sort();

// ---------------------------------------------------------------- keys

function expose(v: unknown): string[] {
  const out = new Set<string>();
  let expanded = 0;
  (Array.isArray(v) ? v : fail('invalid_value', `expose must be a list, not ${describeValue(v)}`)).forEach((e: unknown, i: number) => {
    const s = scalarString(e, 'expose');
    const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(s.trim());
    if (!m) fail('invalid_value', `invalid expose entry "${s}"`, 'use PORT[-PORT][/PROTOCOL], e.g. 3000 or 53/udp', [i]);
    const lo = Number(m![1]);
    const hi = m![2] ? Number(m![2]) : lo;
    if (lo < 1 || hi > 65535 || hi < lo) fail('invalid_value', `invalid expose entry "${s}": port out of range`, undefined, [i]);
    // Counted before it is expanded: a range written a thousand times is refused, not built.
    expanded += hi - lo + 1;
    if (expanded > MAX_EXPOSED) fail('too_large', `expose: more than ${MAX_EXPOSED} ports in one service`, 'expose fewer ports (a range counts each of its ports)', [i]);
    for (let p = lo; p <= hi; p++) out.add(`${p}/${(m![3] ?? 'tcp').toLowerCase()}`);
  });
  return [...out].sort();
}

function extraHosts(v: unknown): string[] {
  const entries: [string, string][] = [];
  if (Array.isArray(v)) {
    v.forEach((e, i) => {
      const s = scalarString(e, 'extra_hosts');
      // `host:ip` or `host=ip` (compose accepts both; an IPv6 address has colons of its own)
      const eq = s.indexOf('=');
      const sep = eq >= 0 ? eq : s.indexOf(':');
      if (sep <= 0) fail('invalid_value', `invalid extra_hosts entry "${s}"`, 'use HOST:IP or HOST=IP', [i]);
      // `host=ip1,ip2`: one entry per address, in the order written (compose-go's host list)
      for (const ip of s.slice(sep + 1).split(',')) entries.push([s.slice(0, sep), ip]);
    });
  } else if (v && typeof v === 'object') {
    for (const [h, ip] of Object.entries(v)) {
      for (const one of Array.isArray(ip) ? ip : [ip]) entries.push([h, scalarString(one, `extra_hosts.${h}`)]);
    }
  } else fail('invalid_value', `extra_hosts must be a list or a mapping, not ${describeValue(v)}`);
  return hostsOrder(
    entries.map(([h, raw]) => {
      const ip = raw.startsWith('[') && raw.endsWith(']') ? raw.slice(1, -1) : raw;
      if (!isIP(ip) && ip !== 'host-gateway') fail('invalid_value', `extra_hosts: "${raw}" for ${h} is not an IP address`, 'use an IPv4/IPv6 address or host-gateway');
      return `${h}:${ip}`;
    }),
  );
}

/**
 * `host:ip` entries once each, sorted by host name, a host's addresses in the order written: /etc/hosts
 * answers a name with its first line, so `db:10.0.0.9` before `db:10.0.0.1` is what docker compose
 * writes and what the container resolves (a sort by the whole entry put 10.0.0.1 first).
 */
export function hostsOrder(entries: readonly string[]): string[] {
  const host = (e: string) => e.slice(0, e.indexOf(':') + 1);
  return [...new Set(entries)].sort((a, b) => (host(a) < host(b) ? -1 : host(a) > host(b) ? 1 : 0));
}

function ulimits(v: unknown): Record<string, Ulimit> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return fail('invalid_value', `ulimits must be a mapping, not ${describeValue(v)}`);
  const out: Record<string, Ulimit> = {};
  for (const k of Object.keys(v).sort()) {
    const u = (v as Record<string, unknown>)[k];
    if (!/^[a-z]+$/.test(k)) fail('invalid_value', `invalid ulimit name "${k}"`, 'e.g. nofile, nproc, memlock', [k]);
    // A real-time priority lets the container's processes schedule themselves ahead of every ordinary process of
    // the host (cgroup v2 has no real-time budget per container), as cpu_rt_runtime would: refused alike.
    if (k === 'rtprio') fail('unsupported', 'ulimits.rtprio lets the container take real-time CPU scheduling, which draws on the host\'s real-time budget, outside what the policy governs', 'remove it', [k]);
    const int = (x: unknown, sub: string[]) => {
      const n = typeof x === 'number' ? x : typeof x === 'string' && /^-?\d+$/.test(x) ? Number(x) : NaN;
      if (!Number.isInteger(n) || n < -1) fail('invalid_value', `ulimits.${k} must be an integer, not ${describeValue(x)}`, undefined, [k, ...sub]);
      return n;
    };
    if (u && typeof u === 'object' && !Array.isArray(u)) {
      const o = u as Record<string, unknown>;
      for (const key of Object.keys(o)) if (key !== 'soft' && key !== 'hard') fail('unknown_key', `unknown key "${key}" in ulimits.${k}`, 'known keys: soft, hard', [k, key]);
      if (o.soft === undefined || o.hard === undefined) fail('invalid_value', `ulimits.${k} needs both soft and hard`, undefined, [k]);
      out[k] = { soft: int(o.soft, ['soft']), hard: int(o.hard, ['hard']) };
    } else {
      const n = int(u, []);
      out[k] = { soft: n, hard: n };
    }
  }
  return out;
}

function logging(v: unknown): Logging {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return fail('invalid_value', `logging must be a mapping, not ${describeValue(v)}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'driver' && k !== 'options') fail('unknown_key', `unknown key "${k}" in logging`, 'known keys: driver, options', [k]);
  const options: Record<string, string> = {};
  if (o.options !== undefined && o.options !== null) {
    if (typeof o.options !== 'object' || Array.isArray(o.options)) fail('invalid_value', 'logging.options must be a mapping', undefined, ['options']);
    for (const [k, val] of Object.entries(o.options as object)) if (val !== null && val !== undefined) options[k] = scalarString(val, `logging.options.${k}`);
  }
  return { ...(o.driver !== undefined && o.driver !== null ? { driver: scalarString(o.driver, 'logging.driver') } : {}), options: sortRecord(options) };
}

function tmpfs(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, e] of stringList(v, 'tmpfs').entries()) {
    const colon = e.indexOf(':');
    const path = colon < 0 ? e : e.slice(0, colon);
    if (!path.startsWith('/')) fail('invalid_value', `tmpfs "${e}": "${path}" is not an absolute path`, 'use /path[:options], e.g. /tmp:size=64m', [i]);
    out[path] = colon < 0 ? '' : e.slice(colon + 1);
  }
  return sortRecord(out);
}

/** Sysctls Docker namespaces per container; the rest change the host and are refused by the policy unless allowed. */
export const isNamespacedSysctl = (k: string) => /^net\./.test(k) || /^kernel\.(shm|msg)/.test(k) || k === 'kernel.sem' || /^fs\.mqueue\./.test(k);

function sysctls(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, val] of mapOrList(v, 'sysctls')) {
    if (val === null) fail('invalid_value', `sysctls: ${k} has no value`, 'write it as name=value');
    if (!/^[a-z0-9_.\-/]+$/i.test(k)) fail('invalid_value', `invalid sysctl name "${k}"`);
    out[k] = val!;
  }
  return sortRecord(out);
}

/**
 * security_opt as Docker takes it. `seccomp:<file>` names a profile file that docker compose reads (from the
 * project directory) and sends as JSON; the engine takes only the JSON, `unconfined` or (Docker Engine 23, API
 * 1.42, on) `builtin`, its own default profile, which docker compose passes as written too: a path as written
 * would fail the create, so it is refused, said where. `builtin` on an older engine is refused at the apply
 * (api-version.ts), before anything is created.
 */
function securityOpts(v: unknown): string[] {
  const opts = uniqueSorted(stringList(v, 'security_opt'));
  for (const o of opts) {
    const seccomp = /^seccomp[:=](.*)$/s.exec(o);
    if (seccomp && seccomp[1] !== 'unconfined' && seccomp[1] !== 'builtin' && !seccomp[1]!.trimStart().startsWith('{'))
      fail('unsupported', `security_opt ${o}: a seccomp profile read from a file is not supported by berth`, 'docker compose reads the file and sends its JSON, which berth does not do: remove it to keep the engine\'s default profile (or write seccomp=builtin to ask for Docker\'s own default by name, Docker Engine 23 or later), or write seccomp=unconfined (both under policy.allow_security_opt in .github/berth.yml)');
  }
  return opts;
}

/** `no-new-privileges` only takes privileges away; every other security option (seccomp, apparmor, label) can loosen confinement. */
export const isHardeningSecurityOpt = (o: string) => /^no-new-privileges([:=]true)?$/.test(o);

export const PULL_POLICIES = ['always', 'missing', 'never', 'build', 'daily', 'weekly', 'if_not_present'] as const;

function pullPolicy(v: unknown): string {
  const p = scalarString(v, 'pull_policy');
  if ((PULL_POLICIES as readonly string[]).includes(p)) return p === 'if_not_present' ? 'missing' : p;
  if (/^every_/.test(p)) {
    parseDuration(p.slice('every_'.length), 'pull_policy every_');
    return p;
  }
  return fail('invalid_value', `pull_policy must be always, missing, never, build, daily, weekly or every_<duration>, not "${p}"`);
}

/**
 * A container's host or domain name. Docker sets what it is given, so names
 * that are no DNS name but real stacks write (kimai's `hostname: kimai_db`)
 * are kept; empty (`${UNSET}`) is unset, as in docker compose.
 */
function hostname(v: unknown, what: string): string | undefined {
  const h = scalarString(v, what);
  if (h === '') return undefined;
  if (!/^[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,252})$/.test(h)) fail('invalid_value', `${what} "${h}" is not a valid host name`, 'use letters, digits, "_", "." and "-"');
  return h;
}

/**
 * A MAC address as Docker's parser takes it for a container (six octets,
 * `:` or `-` between them), written the way the engine reports it (lower
 * case, `:`), so `02-42-AC-11-00-02` and `02:42:ac:11:00:02` hash alike.
 * Empty is unset, as in docker compose.
 */
export function macAddress(v: unknown): string | undefined {
  const m = scalarString(v, 'mac_address');
  if (m === '') return undefined;
  if (!/^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$/.test(m)) fail('invalid_value', `mac_address "${m}" is not a MAC address`, 'six hexadecimal octets, e.g. 02:42:ac:11:00:02');
  // The engine takes it and the container then fails to start: a multicast (or broadcast) address is no interface's.
  if (parseInt(m.slice(0, 2), 16) & 1) fail('invalid_value', `mac_address "${m}" is a multicast address`, 'an interface needs a unicast address, its first octet even (e.g. 02:42:ac:11:00:02)');
  return m.toLowerCase().replace(/-/g, ':');
}

/** Empty is unset, as in docker compose (ToolJet's `container_name: ${REDIS_HOST}`, empty in its .env): the default name. */
function containerName(v: unknown): string | undefined {
  const n = scalarString(v, 'container_name');
  if (n === '') return undefined;
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(n)) fail('invalid_value', `invalid container_name "${n}"`, 'use letters, digits, "_", "." and "-", starting with a letter or digit');
  return n;
}

function signal(v: unknown): string {
  const s = scalarString(v, 'stop_signal');
  if (!/^(SIG)?[A-Z0-9+-]+$|^\d+$/.test(s)) fail('invalid_value', `invalid stop_signal "${s}"`, 'e.g. SIGTERM, SIGQUIT or 9');
  return s;
}

/** `cap_drop`: capability names as Docker takes them (upper case, without CAP_; ALL drops every one). */
function capabilities(v: unknown): string[] {
  return uniqueSorted(
    stringList(v, 'cap_drop').map((c, i) => {
      const cap = c.toUpperCase().replace(/^CAP_/, '');
      if (!/^[A-Z_]+$/.test(cap)) fail('invalid_value', `invalid capability "${c}"`, 'e.g. ALL, NET_RAW or SYS_CHROOT', [i]);
      return cap;
    }),
  );
}

/** `group_add`: supplementary groups by name or numeric id (they only open files the container can already see). */
function groups(v: unknown): string[] {
  return uniqueSorted(
    stringList(v, 'group_add').map((g, i) => {
      if (!/^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$/.test(g)) fail('invalid_value', `invalid group "${g}"`, 'a group name or a numeric group id', [i]);
      return g;
    }),
  );
}

function cpuShares(v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 2 || n > 262_144) return fail('invalid_value', `cpu_shares must be an integer from 2 to 262144, not ${describeValue(v)}`, 'the default weight is 1024');
  return n;
}

function cpuset(v: unknown): string {
  const s = scalarString(v, 'cpuset').replace(/\s+/g, '');
  if (!/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(s)) fail('invalid_value', `invalid cpuset "${s}"`, 'CPUs by number, e.g. 0-3 or 0,2');
  return s;
}

const bool = (what: string) => (v: unknown) => asBool(v, what);
const list = (what: string) => (v: unknown) => uniqueSorted(stringList(v, what));
/** Where order means something (the first dns server is asked first): unique, in the order written. */
const ordered = (what: string) => (v: unknown) => [...new Set(stringList(v, what))];

/** compose key → how it becomes a ServiceExtras field */
export const EXTRA_KEYS: Record<string, ExtraKey> = {
  container_name: { field: 'containerName', merge: 'replace', parse: containerName },
  expose: { field: 'expose', merge: 'set', parse: expose },
  stop_signal: { field: 'stopSignal', merge: 'replace', parse: signal },
  stop_grace_period: { field: 'stopGracePeriodMs', merge: 'replace', parse: (v) => parseDuration(v, 'stop_grace_period') },
  init: { field: 'init', merge: 'replace', parse: bool('init') },
  tty: { field: 'tty', merge: 'replace', parse: bool('tty') },
  stdin_open: { field: 'stdinOpen', merge: 'replace', parse: bool('stdin_open') },
  hostname: { field: 'hostname', merge: 'replace', parse: (v) => hostname(v, 'hostname') },
  domainname: { field: 'domainname', merge: 'replace', parse: (v) => hostname(v, 'domainname') },
  mac_address: { field: 'macAddress', merge: 'replace', parse: macAddress },
  extra_hosts: { field: 'extraHosts', merge: 'hosts', parse: extraHosts },
  // resolv.conf order: mailcow's override puts its own unbound first and a public resolver after it
  dns: { field: 'dns', merge: 'sequence', parse: ordered('dns') },
  dns_search: { field: 'dnsSearch', merge: 'sequence', parse: ordered('dns_search') },
  dns_opt: { field: 'dnsOpt', merge: 'sequence', parse: ordered('dns_opt') },
  ulimits: { field: 'ulimits', merge: 'map', parse: ulimits },
  logging: { field: 'logging', merge: 'logging', parse: logging },
  platform: { field: 'platform', merge: 'replace', parse: (v) => scalarString(v, 'platform') },
  cpus: { field: 'nanoCpus', merge: 'replace', parse: (v) => parseCpus(v, 'cpus') },
  mem_limit: { field: 'memLimit', merge: 'replace', parse: (v) => parseBytes(v, 'mem_limit') },
  mem_reservation: { field: 'memReservation', merge: 'replace', parse: (v) => parseBytes(v, 'mem_reservation') },
  memswap_limit: { field: 'memswapLimit', merge: 'replace', parse: (v) => (v === -1 || v === '-1' ? -1 : parseBytes(v, 'memswap_limit')) },
  pids_limit: { field: 'pidsLimit', merge: 'replace', parse: (v) => positiveOrMinusOne(v, 'pids_limit') },
  shm_size: { field: 'shmSize', merge: 'replace', parse: (v) => parseBytes(v, 'shm_size') },
  read_only: { field: 'readOnly', merge: 'replace', parse: bool('read_only') },
  tmpfs: { field: 'tmpfs', merge: 'map', parse: tmpfs },
  sysctls: { field: 'sysctls', merge: 'map', parse: sysctls },
  pull_policy: { field: 'pullPolicy', merge: 'replace', parse: pullPolicy },
  security_opt: { field: 'securityOpt', merge: 'set', parse: securityOpts },
  ipc: { field: 'ipcMode', merge: 'replace', parse: ipcMode },
  cgroup: { field: 'cgroupnsMode', merge: 'replace', parse: (v) => oneOf(v, 'cgroup', ['private', 'host']) },
  // Docker knows one value besides the default: host (outside the engine's userns-remap), governed by the policy.
  userns_mode: { field: 'usernsMode', merge: 'replace', parse: (v) => oneOf(v, 'userns_mode', ['host']) },
  // Only takes privileges away (with cap_add, which the policy governs, Docker drops first and adds after).
  cap_drop: { field: 'capDrop', merge: 'set', parse: capabilities },
  group_add: { field: 'groupAdd', merge: 'set', parse: groups },
  // Host devices by type and number (immich's openvino: `c 189:* rmw`); governed, as devices: are, by allow_devices.
  device_cgroup_rules: { field: 'deviceCgroupRules', merge: 'set', parse: deviceCgroupRules },
  cpu_shares: { field: 'cpuShares', merge: 'replace', parse: cpuShares },
  cpuset: { field: 'cpuset', merge: 'replace', parse: cpuset },
};

/** `device_cgroup_rules`: Docker's `TYPE MAJOR:MINOR ACCESS` (type a, b or c; a number or * each; access of r, w, m). */
function deviceCgroupRules(v: unknown): string[] {
  return [
    ...new Set(
      stringList(v, 'device_cgroup_rules').map((r, i) => {
        const rule = r.trim().replace(/\s+/g, ' ');
        if (!/^[abc] (\*|\d+):(\*|\d+) [rwm]{1,3}$/.test(rule)) return fail('invalid_value', `device_cgroup_rules[${i}]: invalid rule ${JSON.stringify(r)}`, 'write TYPE MAJOR:MINOR ACCESS, e.g. "c 189:* rmw"', [i]);
        return rule;
      }),
    ),
  ].sort();
}

function oneOf(v: unknown, what: string, allowed: readonly string[]): string {
  const s = scalarString(v, what);
  return allowed.includes(s) ? s : fail('invalid_value', `${what} must be ${allowed.join(' or ')}, not "${s}"`);
}

/** `ipc`: the container's own namespace (private, shareable) or the host's; joining another container's is not done by berth. */
function ipcMode(v: unknown): string {
  const s = scalarString(v, 'ipc');
  if (/^(service|container):/.test(s))
    return fail('unsupported', `ipc: ${s} (joining another container's IPC namespace) is not supported by berth`, 'use ipc: shareable on both services\' own namespaces, or share through a volume; ipc: host needs allow_host_ipc in the policy');
  return oneOf(s, 'ipc', ['private', 'shareable', 'host']);
}

/** Merges one extras field of a later file into an earlier one. */
export function mergeExtra(kind: MergeKind, a: unknown, b: unknown): unknown {
  if (a === undefined) return b;
  if (b === undefined) return a;
  if (kind === 'map') {
    const out = { ...(a as Record<string, unknown>), ...(b as Record<string, unknown>) };
    return Object.fromEntries(Object.keys(out).sort().map((k) => [k, out[k]]));
  }
  if (kind === 'set') return uniqueSorted([...(a as string[]), ...(b as string[])]);
  if (kind === 'sequence') return [...new Set([...(a as string[]), ...(b as string[])])];
  if (kind === 'hosts') return hostsOrder([...(a as string[]), ...(b as string[])]);
  if (kind === 'logging') {
    // As compose-go's mergeLogging: the same driver (or one left out) merges, options key by key; another driver replaces.
    const x = a as Logging;
    const y = b as Logging;
    if (x.driver !== undefined && y.driver !== undefined && x.driver !== y.driver) return y;
    const options = { ...x.options, ...y.options };
    const driver = y.driver ?? x.driver;
    return { ...(driver !== undefined ? { driver } : {}), options: Object.fromEntries(Object.keys(options).sort().map((k) => [k, options[k]!])) };
  }
  return b;
}
