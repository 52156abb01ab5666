// The repository's policy (from `.github/berth.yml` on the default branch):
// everything that reaches out of the container is denied unless allowed there.
import { posix } from 'node:path';
import { ComposeError } from '../errors.js';
import type { ServiceFragment } from './fragment.js';
import { resolveBindSource, type PathContext } from './normalize.js';
import { isHardeningSecurityOpt, isNamespacedSysctl } from './service-keys.js';

export interface Policy {
  allow_privileged: boolean;
  allow_host_network: boolean;
  allow_host_pid: boolean;
  /** capabilities that may be added (upper case, without CAP_) */
  allow_cap_add: readonly string[];
  allow_devices: boolean;
  allow_docker_socket: boolean;
  /** host paths (absolute, or relative to the repository root) under which bind mounts are allowed */
  bind_mount_allowlist: readonly string[];
  /** sysctls Docker does not namespace per container (they change the host): denied unless true */
  allow_host_sysctls?: boolean;
  /** security_opt other than no-new-privileges (seccomp, apparmor, label…): denied unless true */
  allow_security_opt?: boolean;
}

export const DENY_ALL: Policy = {
  allow_privileged: false,
  allow_host_network: false,
  allow_host_pid: false,
  allow_cap_add: [],
  allow_devices: false,
  allow_docker_socket: false,
  bind_mount_allowlist: [],
};

const SOCKETS = ['/var/run/docker.sock', '/run/docker.sock'];

const within = (path: string, dir: string) => {
  if (dir === '.') return !path.startsWith('/') && !path.startsWith('../') && path !== '..';
  return path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
};

/** Whether mounting `source` gives the container the Docker socket (the socket itself or a directory holding it). */
export function exposesDockerSocket(source: string): boolean {
  if (!source.startsWith('/')) return /(^|\/)docker\.sock$/.test(source);
  return SOCKETS.some((s) => within(s, source)) || /(^|\/)docker\.sock$/.test(source);
}

/** Throws a located ComposeError for the first thing the policy denies. */
export function checkPolicy(services: Iterable<ServiceFragment>, policy: Policy, paths: PathContext): void {
  const hint = (key: string, value = 'true') => `allow it with policy.${key}: ${value} in .github/berth.yml on the default branch`;
  const deny = (problem: string, at: { file: string; line?: number; path: string }, h: string) =>
    new ComposeError('policy_denied', `${problem} is not allowed by the repository's policy`, { ...at, hint: h });
  const allowed = policy.bind_mount_allowlist.map((p) => resolveBindSource(p, { baseDir: '', ...(paths.repoRoot ? { repoRoot: paths.repoRoot } : {}) }));
  const caps = new Set(policy.allow_cap_add.map((c) => c.toUpperCase().replace(/^CAP_/, '')));

  for (const s of services) {
    if (s.privileged?.v && !policy.allow_privileged) throw deny(`service ${s.name}: privileged mode`, s.privileged.at, hint('allow_privileged'));
    if (s.networkMode?.v === 'host' && !policy.allow_host_network) throw deny(`service ${s.name}: network_mode host`, s.networkMode.at, hint('allow_host_network'));
    if (s.pid?.v === 'host' && !policy.allow_host_pid) throw deny(`service ${s.name}: pid host`, s.pid.at, hint('allow_host_pid'));
    for (const c of s.capAdd ?? []) if (!caps.has(c.v) && !caps.has('ALL')) throw deny(`service ${s.name}: cap_add ${c.v}`, c.at, hint('allow_cap_add', `[${c.v}]`));
    for (const d of s.devices ?? []) if (!policy.allow_devices) throw deny(`service ${s.name}: device ${d.v.split(':')[0]}`, d.at, hint('allow_devices'));
    const sysctls = s.extras.sysctls;
    for (const k of Object.keys(sysctls?.v ?? {})) {
      if (isNamespacedSysctl(k) || policy.allow_host_sysctls) continue;
      throw deny(`service ${s.name}: sysctl ${k} (it changes the host, not only the container)`, sysctls!.at, hint('allow_host_sysctls'));
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
        throw deny(`service ${s.name}: mounting the Docker socket (${shown})`, m.at, hint('allow_docker_socket'));
      }
      if (!allowed.some((dir) => within(src, dir)))
        throw deny(`service ${s.name}: bind mount of ${shown}`, m.at, `add the path (or a parent) to policy.bind_mount_allowlist in .github/berth.yml on the default branch`);
    }
  }
}
