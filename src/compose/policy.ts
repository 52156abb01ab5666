// The repository's policy (from `.github/berth.yml` on the default branch):
// everything that reaches out of the container is denied unless allowed there.
import { isIP } from 'node:net';
import { posix } from 'node:path';
import { ComposeError } from '../errors.js';
import type { NetworkFragment, ServiceFragment, VolumeFragment } from './fragment.js';
import { fragmentJoins, parseJoin } from './joins.js';
import { resolveBindSource, type PathContext } from './normalize.js';
import { allowRegistryHint, checkImageRegistry } from './registries.js';
import { isHardeningSecurityOpt, isNamespacedSysctl } from './service-keys.js';

export interface Policy {
  allow_privileged: boolean;
  allow_host_network: boolean;
  allow_host_pid: boolean;
  /** capabilities that may be added (upper case, without CAP_) */
  allow_cap_add: readonly string[];
  allow_devices: boolean;
  allow_docker_socket: boolean;
  /** host paths (absolute, or relative to the repository root) under which bind mounts are allowed; read-only unless `writable` */
  bind_mount_allowlist: readonly (string | { path: string; writable?: boolean })[];
  /** containers (Docker names) a service may join with `container:NAME` (network_mode, pid, volumes_from) */
  allow_container_namespaces: readonly string[];
  /** sysctls Docker does not namespace per container (they change the host): denied unless true */
  allow_host_sysctls?: boolean;
  /** security_opt other than no-new-privileges (seccomp, apparmor, label…): denied unless true */
  allow_security_opt?: boolean;
  /** `ipc: host` (the host's IPC namespace): denied unless true */
  allow_host_ipc?: boolean;
  /** `cgroup: host` (the host's cgroup namespace): denied unless true */
  allow_host_cgroupns?: boolean;
  /** `userns_mode: host` (out of the engine's user-namespace remapping): denied unless true */
  allow_host_userns?: boolean;
  /** networks and volumes (Docker names) berth made for another project, environment or repository that `external: true` may name */
  allow_shared_objects?: readonly string[];
  /** logging drivers besides those that keep logs on the host's disk (LOCAL_LOG_DRIVERS) */
  allow_logging_drivers?: readonly string[];
  /** CIDR ranges a declared network's explicit ipam subnet may lie in (each becomes a route on the host) */
  allow_network_subnets?: readonly string[];
  /** registries (host or host:port) images may come from besides Docker Hub and public names (registries.ts) */
  allow_registries?: readonly string[];
  /** volume drivers besides `local` (a plugin the host has: it may bind host paths or mount remote shares) */
  allow_volume_drivers?: readonly string[];
  /** network drivers besides `bridge` and `overlay` (a plugin the host has) */
  allow_network_drivers?: readonly string[];
}

/** `10.0.0.4/30`, `fd00::/64` → family, network bits and prefix; undefined when it is not a CIDR. */
export function parseCidr(s: string): { v6: boolean; bits: bigint; prefix: number } | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(s.trim());
  if (!m) return undefined;
  const kind = isIP(m[1]!);
  const prefix = Number(m[2]);
  if (kind === 0 || prefix > (kind === 4 ? 32 : 128)) return undefined;
  let bits = 0n;
  if (kind === 4) for (const o of m[1]!.split('.')) bits = (bits << 8n) | BigInt(Number(o));
  else {
    const [head, tail] = m[1]!.includes('::') ? m[1]!.split('::') as [string, string] : [m[1]!, undefined];
    const words = (x: string) => (x ? x.split(':') : []);
    const h = words(head);
    const t = tail === undefined ? [] : words(tail);
    // an embedded IPv4 tail (::ffff:10.0.0.1) is two words
    const expand = (ws: string[]) => ws.flatMap((w) => (w.includes('.') ? (() => { const o = w.split('.').map(Number); return [((o[0]! << 8) | o[1]!).toString(16), ((o[2]! << 8) | o[3]!).toString(16)]; })() : [w]));
    const hh = expand(h);
    const tt = expand(t);
    const all = tail === undefined ? hh : [...hh, ...Array(8 - hh.length - tt.length).fill('0'), ...tt];
    for (const w of all) bits = (bits << 16n) | BigInt(parseInt(w, 16));
  }
  return { v6: kind === 6, bits, prefix };
}

/** Whether CIDR `inner` lies inside CIDR `outer` (same family). */
export function cidrWithin(inner: string, outer: string): boolean {
  const a = parseCidr(inner);
  const b = parseCidr(outer);
  if (!a || !b || a.v6 !== b.v6 || a.prefix < b.prefix) return false;
  const shift = BigInt((a.v6 ? 128 : 32) - b.prefix);
  return a.bits >> shift === b.bits >> shift;
}

/**
 * Logging drivers keep to the host's disk or journal. Every other driver is run
 * by the daemon on the host, in its network namespace, and sends the logs to
 * an address the compose file chooses (the host's loopback, a unix socket, a
 * cloud API with the host's credentials).
 */
const LOCAL_LOG_DRIVERS = new Set(['json-file', 'local', 'journald', 'none']);
/** Options every driver takes that name no destination: the only ones given to the engine's default driver (unknown here). */
const GENERIC_LOG_OPTIONS = new Set(['max-size', 'max-file', 'compress', 'labels', 'labels-regex', 'env', 'env-regex', 'tag', 'mode', 'max-buffer-size']);

export const DENY_ALL: Policy = {
  allow_privileged: false,
  allow_host_network: false,
  allow_host_pid: false,
  allow_cap_add: [],
  allow_devices: false,
  allow_docker_socket: false,
  bind_mount_allowlist: [],
  allow_container_namespaces: [],
};

const SOCKETS = ['/var/run/docker.sock', '/run/docker.sock'];

export const within = (path: string, dir: string) => {
  if (dir === '.') return !path.startsWith('/') && !path.startsWith('../') && path !== '..';
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
};

/** Whether mounting `source` gives the container the Docker socket (the socket itself or a directory holding it). */
export function exposesDockerSocket(source: string): boolean {
  if (!source.startsWith('/')) return /(^|\/)docker\.sock$/.test(source);
  return SOCKETS.some((s) => within(s, source)) || /(^|\/)docker\.sock$/.test(source);
}

export interface AllowedDir {
  /** absolute (or repository-relative without a checkout) and normalised */
  dir: string;
  writable: boolean;
}

/** The allowlist with every entry resolved like a bind source, so the two compare. */
export function allowedDirs(policy: Policy, paths: Pick<PathContext, 'repoRoot'> = {}): AllowedDir[] {
  return policy.bind_mount_allowlist.map((e) => {
    const { path, writable = false } = typeof e === 'string' ? { path: e } : e;
    return { dir: resolveBindSource(path, { baseDir: '', ...(paths.repoRoot ? { repoRoot: paths.repoRoot } : {}) }), writable };
  });
}

/** The most specific allow-listed directory holding `source`, if any. */
export function allowedDirOf(source: string, dirs: readonly AllowedDir[]): AllowedDir | undefined {
  return dirs.filter((d) => within(source, d.dir)).sort((a, b) => b.dir.length - a.dir.length)[0];
}

/**
 * Bind mounts under an allow-listed directory the policy does not mark
 * writable become read-only (the plan shows it): a container that could write
 * there could plant a symlink that a later mount follows out of the allowlist.
 */
export function enforceBindModes(services: Iterable<ServiceFragment>, policy: Policy, paths: PathContext): void {
  const dirs = allowedDirs(policy, paths);
  for (const s of services) {
    s.volumes = s.volumes?.map((m) => {
      if (m.v.type !== 'bind' || !m.v.source || m.v.readOnly) return m;
      const entry = allowedDirOf(posix.normalize(m.v.source), dirs);
      return entry && !entry.writable ? { ...m, v: { ...m.v, readOnly: true } } : m;
    });
  }
}

/**
 * Why a bind source is not the path its author meant: it was written with plain ${VAR}s left unset,
 * each "" (docker compose takes them from the shell; berth runs none). `$PWD/x` is the commonest: in a
 * shell it is the directory docker compose was started in, almost always the compose file's, so ./x.
 */
function unsetSourceHint(u: { raw: string; names: string[] } | undefined): string {
  if (!u) return '';
  const names = u.names.join(', ');
  const one = u.names.length === 1;
  let h = `the source was written with ${u.raw}, and ${names} ${one ? 'is' : 'are'} not set (${one ? 'it' : 'each'} became ""): set ${one ? 'it' : 'them'} in the environment's variables in .github/berth.yml`;
  const pwd = /^\$(?:\{PWD\}|PWD(?![A-Za-z0-9_]))\/?/.exec(u.raw);
  if (pwd && u.names.includes('PWD')) h += `; berth runs no shell, so $PWD is not the directory docker compose was started in: write ./${u.raw.slice(pwd[0].length)} (relative to the compose file)`;
  return `${h}; or `;
}

/** Throws a located ComposeError for the first thing the policy denies. */
export function checkPolicy(services: Iterable<ServiceFragment>, policy: Policy, paths: PathContext): void {
  const hint = (key: string, value = 'true') => `allow it with policy.${key}: ${value} in .github/berth.yml on the default branch`;
  const deny = (problem: string, at: { file: string; line?: number; path: string }, h: string) =>
    new ComposeError('policy_denied', `${problem} is not allowed by the repository's policy`, { ...at, hint: h });
  const allowed = allowedDirs(policy, paths).map((d) => d.dir);
  const containers = new Set(policy.allow_container_namespaces);
  const all = [...services];
  const byName = new Map(all.map((s) => [s.name, s]));
  /** a service's network_mode/pid after following service: joins (a cycle was refused with depends_on's) */
  const effective = (s: ServiceFragment, key: 'networkMode' | 'pid', seen = new Set<string>()): string | undefined => {
    const v = s[key]?.v;
    const j = v === undefined ? undefined : parseJoin(v);
    const next = j?.kind === 'service' ? byName.get(j.name) : undefined;
    if (!next || seen.has(next.name)) return v;
    return effective(next, key, seen.add(s.name));
  };
  const caps = new Set(policy.allow_cap_add.map((c) => c.toUpperCase().replace(/^CAP_/, '')));

  for (const s of all) {
    // The registry of the final reference (interpolated, extended, included, merged): the engine queries it at plan time.
    if (s.image) {
      const verdict = checkImageRegistry(s.image.v, policy.allow_registries);
      if (verdict.refusal) throw deny(`service ${s.name}: image ${s.image.v} (${verdict.refusal}; the target's Docker engine would query it from inside the operator's network)`, s.image.at, allowRegistryHint(verdict));
    }
    for (const { key, join, at } of fragmentJoins(s)) {
      if (join.kind === 'container' && !containers.has(join.name))
        throw deny(`service ${s.name}: ${key} container:${join.name} (joining a container outside the project)`, at, hint('allow_container_namespaces', `[${join.name}]`));
    }
    if (s.networkMode && s.networkMode.v !== 'host' && effective(s, 'networkMode') === 'host' && !policy.allow_host_network)
      throw deny(`service ${s.name}: network_mode ${s.networkMode.v} (which uses the host network)`, s.networkMode.at, hint('allow_host_network'));
    if (s.pid && s.pid.v !== 'host' && effective(s, 'pid') === 'host' && !policy.allow_host_pid)
      throw deny(`service ${s.name}: pid ${s.pid.v} (which uses the host pid namespace)`, s.pid.at, hint('allow_host_pid'));
    if (s.privileged?.v && !policy.allow_privileged) throw deny(`service ${s.name}: privileged mode`, s.privileged.at, hint('allow_privileged'));
    if (s.networkMode?.v === 'host' && !policy.allow_host_network) throw deny(`service ${s.name}: network_mode host`, s.networkMode.at, hint('allow_host_network'));
    // Docker's default bridge is shared with every container started without a network (`docker run`, other
    // stacks): a shared object, as `networks: {b: {external: true, name: bridge}}` is.
    if ((s.networkMode?.v === 'bridge' || s.networkMode?.v === 'default') && !(policy.allow_shared_objects ?? []).includes('bridge'))
      throw deny(
        `service ${s.name}: network_mode ${s.networkMode.v} (Docker's default bridge network, which every container started without a network of its own shares)`,
        s.networkMode.at,
        `allow it with policy.allow_shared_objects: [bridge] in .github/berth.yml on the default branch, or remove network_mode: the service then joins this environment's own network`,
      );
    if (s.pid?.v === 'host' && !policy.allow_host_pid) throw deny(`service ${s.name}: pid host`, s.pid.at, hint('allow_host_pid'));
    for (const c of s.capAdd ?? []) if (!caps.has(c.v) && !caps.has('ALL')) throw deny(`service ${s.name}: cap_add ${c.v}`, c.at, hint('allow_cap_add', `[${c.v}]`));
    for (const d of s.devices ?? []) if (!policy.allow_devices) throw deny(`service ${s.name}: device ${d.v.split(':')[0]}`, d.at, hint('allow_devices'));
    const rules = s.extras.deviceCgroupRules;
    if (rules?.v?.length && !policy.allow_devices) throw deny(`service ${s.name}: device_cgroup_rules ${rules.v.join(', ')} (host devices by number)`, rules.at, hint('allow_devices'));
    if (s.extras.ipcMode?.v === 'host' && !policy.allow_host_ipc) throw deny(`service ${s.name}: ipc host (the host's IPC namespace)`, s.extras.ipcMode.at, hint('allow_host_ipc'));
    if (s.extras.cgroupnsMode?.v === 'host' && !policy.allow_host_cgroupns) throw deny(`service ${s.name}: cgroup host (the host's cgroup namespace)`, s.extras.cgroupnsMode.at, hint('allow_host_cgroupns'));
    if (s.extras.usernsMode?.v === 'host' && !policy.allow_host_userns)
      throw deny(`service ${s.name}: userns_mode host (out of the engine's user-namespace remapping: root in the container is root on the host)`, s.extras.usernsMode.at, hint('allow_host_userns'));
    const requests = s.extras.deviceRequests;
    if (requests?.v && !policy.allow_devices) throw deny(`service ${s.name}: device reservation ${requests.v.map((r: { capabilities: string[] }) => r.capabilities.join('+')).join(', ')} (host devices such as GPUs)`, requests.at, hint('allow_devices'));
    const sysctls = s.extras.sysctls;
    for (const k of Object.keys(sysctls?.v ?? {})) {
      if (isNamespacedSysctl(k) || policy.allow_host_sysctls) continue;
      throw deny(`service ${s.name}: sysctl ${k} (it changes the host, not only the container)`, sysctls!.at, hint('allow_host_sysctls'));
    }
    const logging = s.extras.logging;
    if (logging?.v) {
      const driver = logging.v.driver;
      const allowedDrivers = new Set(policy.allow_logging_drivers ?? []);
      if (driver !== undefined && driver !== '' && !LOCAL_LOG_DRIVERS.has(driver) && !allowedDrivers.has(driver))
        throw deny(`service ${s.name}: logging driver ${driver} (the Docker daemon sends the logs from the host to where the options say)`, logging.at, hint('allow_logging_drivers', `[${driver}]`));
      const other = driver === undefined || driver === '' ? Object.keys(logging.v.options).find((k) => !GENERIC_LOG_OPTIONS.has(k)) : undefined;
      if (other !== undefined)
        throw deny(`service ${s.name}: logging option ${other} for the engine's default driver (it may name where the daemon sends the logs)`, logging.at, 'name the driver the option is for (json-file, local, journald, or one listed under policy.allow_logging_drivers in .github/berth.yml on the default branch)');
    }
    const secOpts = s.extras.securityOpt;
    for (const o of secOpts?.v ?? []) {
      if (isHardeningSecurityOpt(o) || policy.allow_security_opt) continue;
      throw deny(`service ${s.name}: security_opt ${o}`, secOpts!.at, hint('allow_security_opt'));
    }
    for (const m of s.volumes ?? []) {
      if (m.v.type !== 'bind' || !m.v.source) continue;
      const src = posix.normalize(m.v.source);
      // The path as the author wrote it (`./web`), not where a checkout happens to live.
      const shown = m.asWritten ?? m.v.source;
      if (exposesDockerSocket(src)) {
        if (policy.allow_docker_socket) continue;
        throw deny(`service ${s.name}: mounting the Docker socket (${shown})`, m.at, unsetSourceHint(m.unsetSource) + hint('allow_docker_socket'));
      }
      if (!allowed.some((dir) => within(src, dir)))
        throw deny(`service ${s.name}: bind mount of ${shown}`, m.at, unsetSourceHint(m.unsetSource) + 'add the path (or a parent) to policy.bind_mount_allowlist in .github/berth.yml on the default branch');
    }
  }
}

/**
 * A `local` volume's driver_opts are mount(8) arguments: `o: bind` with a
 * `device` makes the volume a bind mount of that host path (never resolved on
 * the target nor forced read-only like a service's bind), and any type but
 * tmpfs mounts a host block device or a remote share. No policy key allows
 * either: a bind mount goes through bind_mount_allowlist, and a share or disk
 * the operator wants is created on the target and declared `external: true`.
 */
export function checkVolumeOptions(volumes: Iterable<VolumeFragment>, policy: Policy): void {
  for (const v of volumes) {
    // A plugin's volume is whatever the plugin makes of its options (local-persist's mountpoint: / is the host's root,
    // sshfs or rclone a remote share): none is read here, so the driver itself needs the policy.
    const driver = v.driver?.v ?? 'local';
    if (driver !== 'local' && !v.external?.v && !(policy.allow_volume_drivers ?? []).includes(driver))
      throw new ComposeError('policy_denied', `volume ${v.name}: driver ${driver} (a volume plugin of the host, which may bind host paths or mount remote shares) is not allowed by the repository's policy`, {
        ...v.driver!.at,
        hint: `allow it with policy.allow_volume_drivers: [${driver}] in .github/berth.yml on the default branch, or remove driver: to use a local volume`,
      });
    const opts = v.driverOpts?.v;
    if (!opts || (v.driver?.v ?? 'local') !== 'local') continue;
    // Docker's local driver mounts something only when type or device has a value: with both empty (the Frappe
    // templates' type: "${SITE_VOLUME_TYPE}", o: …, device: … left unset) the volume is a plain one. `o` with
    // neither key Docker refuses (it needs both), and so is it here.
    const given = (k: string) => (opts[k] ?? '') !== '';
    if (!given('type') && !given('device') && (!given('o') || (opts.type !== undefined && opts.device !== undefined))) continue;
    const bind = (opts.o ?? '').split(',').some((o) => ['bind', 'rbind'].includes(o.trim()));
    if (!bind && opts.type === 'tmpfs') continue;
    const what = bind ? `a bind mount of the host path ${given('device') ? opts.device : '(none given)'}` : `a mount of ${given('type') ? `type ${opts.type}` : 'an untyped device'}${given('device') ? ` from ${opts.device}` : ''} (a host device or a remote share)`;
    throw new ComposeError('policy_denied', `volume ${v.name}: driver_opts make it ${what}, which is not allowed by the repository's policy`, {
      ...v.driverOpts!.at,
      hint: bind
        ? 'mount the host path into the service as a bind mount (it must be under policy.bind_mount_allowlist), or remove driver_opts'
        : 'create the volume on the target (docker volume create …), declare it external: true and list it under policy.allow_shared_objects, or use type: tmpfs',
    });
  }
}

/** A bridge network's gateway mode options (Docker 27+), and the modes that keep its containers behind NAT (isolated: no gateway at all). */
const GATEWAY_MODE_OPTS = new Set(['com.docker.network.bridge.gateway_mode_ipv4', 'com.docker.network.bridge.gateway_mode_ipv6']);
const SAFE_GATEWAY_MODES = new Set(['', 'nat', 'isolated']);
/** Host interfaces allowed to reach the network's container addresses directly (Docker 28). */
const TRUSTED_HOST_INTERFACES = 'com.docker.network.bridge.trusted_host_interfaces';
/** Network drivers that give containers an address on a host interface's own network. */
const HOST_LINK_DRIVERS = new Set(['macvlan', 'ipvlan']);
/** Docker's own drivers that keep a network inside Docker (host, macvlan and ipvlan are checked as host reach). */
const BUILTIN_NETWORK_DRIVERS = new Set(['bridge', 'overlay']);

/**
 * A declared network that puts containers on the host's own networks — the
 * Docker network named `host` (or of driver host), which is the host's network namespace;
 * macvlan/ipvlan (an address on the physical LAN, past the host's firewall and
 * Docker's NAT) or a bridge attached to an existing host bridge
 * (`com.docker.network.bridge.name`), or one whose gateway mode is not NAT or whose trusted host
 * interfaces reach its containers directly — is host-network reach: refused unless
 * policy.allow_host_network.
 */
export function checkNetworkReach(declared: Iterable<NetworkFragment>, policy: Policy): void {
  const networks = [...declared];
  for (const n of networks) {
    // A plugin's network is whatever the plugin makes of it (a VPN, the host's interfaces): the driver needs the policy.
    const d = n.driver?.v;
    if (d === undefined || n.external?.v || BUILTIN_NETWORK_DRIVERS.has(d) || HOST_LINK_DRIVERS.has(d) || d === 'host' || (policy.allow_network_drivers ?? []).includes(d)) continue;
    throw new ComposeError('policy_denied', `network ${n.name}: driver ${d} (a network plugin of the host) is not allowed by the repository's policy`, {
      ...n.driver!.at,
      hint: `allow it with policy.allow_network_drivers: [${d}] in .github/berth.yml on the default branch, or remove driver: to use a private bridge network`,
    });
  }
  // An IPAM plugin is a plugin of the host too: it gets the PR's options and picks the subnet (past allow_network_subnets).
  for (const n of networks) {
    const d = n.ipam?.v.driver;
    if (d === undefined || d === 'default' || n.external?.v || (policy.allow_network_drivers ?? []).includes(d)) continue;
    throw new ComposeError('policy_denied', `network ${n.name}: ipam driver ${d} (an IPAM plugin of the host: it is handed the network's options and picks its subnet) is not allowed by the repository's policy`, {
      ...n.ipam!.at,
      hint: `allow it with policy.allow_network_drivers: [${d}] in .github/berth.yml on the default branch, or remove ipam.driver to use Docker's own address management`,
    });
  }
  if (policy.allow_host_network) return;
  const hint = 'allow it with policy.allow_host_network: true in .github/berth.yml on the default branch, or remove it to use a private bridge network';
  for (const n of networks) {
    // Docker's network named host is the host's namespace: a container created on it gets NetworkMode host.
    const dockerName = n.dockerName ?? (n.external?.v ? { v: n.name, at: n.external.at } : undefined);
    if (dockerName?.v === 'host' || n.driver?.v === 'host') {
      const at = dockerName?.v === 'host' ? dockerName.at : n.driver!.at;
      throw new ComposeError('policy_denied', `network ${n.name}: Docker's host network (the host's network namespace, as network_mode: host) is not allowed by the repository's policy`, { ...at, hint });
    }
    if (n.external?.v) continue;
    // An explicit subnet is a route on the host, checked by Docker against its own networks only: on the
    // host's LAN (or around one of its addresses) it takes the host's and other projects' traffic there.
    const subnets = policy.allow_network_subnets ?? [];
    for (const pool of n.ipam?.v.config ?? []) {
      for (const range of [pool.subnet, pool.ipRange]) {
        if (range === undefined || subnets.some((allowed) => cidrWithin(range, allowed))) continue;
        throw new ComposeError('policy_denied', `network ${n.name}: subnet ${range} (a route on the host, which can take the host's traffic to those addresses) is not allowed by the repository's policy`, {
          ...n.ipam!.at,
          hint: `list a range holding it under policy.allow_network_subnets (e.g. [${range}]) in .github/berth.yml on the default branch, or remove ipam to let Docker pick a subnet clear of the host's routes`,
        });
      }
    }
    if (n.driver && HOST_LINK_DRIVERS.has(n.driver.v))
      throw new ComposeError('policy_denied', `network ${n.name}: driver ${n.driver.v} (an address on a host interface's network) is not allowed by the repository's policy`, { ...n.driver.at, hint });

    const bridge = n.driverOpts?.v['com.docker.network.bridge.name'];
    if (bridge !== undefined)
      throw new ComposeError('policy_denied', `network ${n.name}: com.docker.network.bridge.name ${bridge} (attaching to a bridge on the host) is not allowed by the repository's policy`, { ...n.driverOpts!.at, hint });
    // The bridge's gateway modes other than NAT (and isolated, which has no gateway on the host) take the
    // containers out from behind Docker's NAT: `routed` makes every port of every container reachable from
    // whatever routes to the host, `nat-unprotected` drops the filter that limits direct access to published
    // ports; trusted_host_interfaces lets the named host interfaces reach container addresses directly.
    for (const [key, value] of Object.entries(n.driverOpts?.v ?? {})) {
      const reach = GATEWAY_MODE_OPTS.has(key) ? !SAFE_GATEWAY_MODES.has(value) : key === TRUSTED_HOST_INTERFACES && value.trim() !== '';
      if (reach)
        throw new ComposeError('policy_denied', `network ${n.name}: ${key} ${value} (container addresses reachable from the host's networks, past Docker's NAT) is not allowed by the repository's policy`, { ...n.driverOpts!.at, hint });
    }
  }
}
