// ServiceSpec → Docker Engine API create options. Pure, so the mapping is
// tested without an engine and the executor only moves data.
import type Dockerode from 'dockerode';
import { dockerJoin, dockerVolumesFrom } from '../compose/joins.js';
import type { ContainerIdentity, CreateExtras, EndpointSettings } from '../apply/engine.js';
import { LABEL, names } from '../model/model.js';
import type { Mount, ServiceSpec } from '../model/model.js';

export function containerLabels(spec: ServiceSpec, who: ContainerIdentity): Record<string, string> {
  return {
    ...spec.labels,
    [LABEL.project]: who.project,
    [LABEL.environment]: who.environment,
    [LABEL.service]: spec.name,
    [LABEL.replica]: String(who.replica),
    [LABEL.configHash]: who.configHash,
    [LABEL.config]: JSON.stringify(who.configSpec ?? spec),
    [LABEL.applyId]: who.applyId,
    ...(who.secretFields?.length ? { [LABEL.secretFields]: JSON.stringify(who.secretFields) } : {}),
    ...(who.repository ? { [LABEL.repository]: who.repository } : {}),
  };
}

const ns = (ms: number) => Math.round(ms * 1e6);

/** A service's endpoint on one network: its name (and link aliases) for DNS, a fixed address when it asks for one. */
export function endpointConfig(spec: ServiceSpec, network: string): EndpointSettings {
  const o = spec.networkOptions?.[network];
  const ipam =
    o?.ipv4Address || o?.ipv6Address || o?.linkLocalIps
      ? { IPAMConfig: { ...(o.ipv4Address ? { IPv4Address: o.ipv4Address } : {}), ...(o.ipv6Address ? { IPv6Address: o.ipv6Address } : {}), ...(o.linkLocalIps ? { LinkLocalIPs: o.linkLocalIps } : {}) } }
      : {};
  // The service-wide mac_address is the address on the network the container is created on (spec.networks[0]).
  const mac = o?.macAddress ?? (network === spec.networks[0] ? spec.macAddress : undefined);
  return { Aliases: [spec.name, ...(o?.aliases ?? [])], ...ipam, ...(o?.driverOpts ? { DriverOpts: o.driverOpts } : {}), ...(mac ? { MacAddress: mac } : {}) };
}

/** The MAC address on the network the container is created on (endpointConfig decides which it is). */
const primaryMac = (spec: ServiceSpec) => (spec.networkMode || spec.networks[0] === undefined ? spec.macAddress : endpointConfig(spec, spec.networks[0]).MacAddress);

/**
 * Binds that must go through the legacy `Binds` list: only it relabels for
 * SELinux (`:z`/`:Z`) and creates a missing host directory (compose's short
 * syntax); every other mount uses the Mounts API.
 */
const legacyBind = (m: Mount) => (m.type === 'bind' && m.createHostPath === true) || m.selinux !== undefined;

/** `inherited`: target → an anonymous volume of the replaced container, mounted again instead of a new empty one. */
function mountOptions(m: Mount, volumeName: (key: string) => string, inherited: ReadonlyMap<string, string>): Dockerode.MountSettings {
  return {
    Type: m.type,
    Target: m.target,
    ReadOnly: m.readOnly,
    ...(m.type === 'volume' && m.source ? { Source: volumeName(m.source) } : {}),
    ...(m.type === 'volume' && !m.source && inherited.has(m.target) ? { Source: inherited.get(m.target) } : {}),
    ...(m.type === 'bind' && m.source ? { Source: m.source } : {}),
    ...(m.noCopy || m.subpath ? { VolumeOptions: { ...(m.noCopy ? { NoCopy: true } : {}), ...(m.subpath ? { Subpath: m.subpath } : {}) } } : {}),
    ...(m.propagation ? { BindOptions: { Propagation: m.propagation } } : {}),
    ...(m.tmpfsSize !== undefined || m.tmpfsMode !== undefined ? { TmpfsOptions: { ...(m.tmpfsSize !== undefined ? { SizeBytes: m.tmpfsSize } : {}), ...(m.tmpfsMode !== undefined ? { Mode: m.tmpfsMode } : {}) } } : {}),
  } as Dockerode.MountSettings;
}

/** `security_opt: [systempaths=unconfined]`: a client-side option (compose and the docker CLI), no engine security option. */
const UNCONFINED_SYSTEM_PATHS = 'systempaths=unconfined';
const securityOpts = (spec: ServiceSpec) => (spec.securityOpt ?? []).filter((o) => o !== UNCONFINED_SYSTEM_PATHS);

/** The optional settings of a service as Docker create options: [container config, host config]. */
function extrasOptions(spec: ServiceSpec): [Record<string, unknown>, Record<string, unknown>] {
  const config: Record<string, unknown> = {
    ...(spec.stopSignal ? { StopSignal: spec.stopSignal } : {}),
    ...(spec.stopGracePeriodMs !== undefined ? { StopTimeout: Math.floor(spec.stopGracePeriodMs / 1000) } : {}),
    ...(spec.tty ? { Tty: true } : {}),
    ...(spec.stdinOpen ? { OpenStdin: true } : {}),
    ...(spec.hostname ? { Hostname: spec.hostname } : {}),
    ...(spec.domainname ? { Domainname: spec.domainname } : {}),
    // Engines before API 1.44 read the MAC here (for the network the container is created on); later ones
    // from that network's endpoint (endpointConfig), and refuse the two only when they differ.
    ...(primaryMac(spec) ? { MacAddress: primaryMac(spec) } : {}),
  };
  const host: Record<string, unknown> = {
    ...(spec.init ? { Init: true } : {}),
    ...(spec.extraHosts?.length ? { ExtraHosts: spec.extraHosts } : {}),
    ...(spec.dns?.length ? { Dns: spec.dns } : {}),
    ...(spec.dnsSearch?.length ? { DnsSearch: spec.dnsSearch } : {}),
    ...(spec.dnsOpt?.length ? { DnsOptions: spec.dnsOpt } : {}),
    ...(spec.ulimits ? { Ulimits: Object.entries(spec.ulimits).map(([Name, u]) => ({ Name, Soft: u.soft, Hard: u.hard })) } : {}),
    ...(spec.logging ? { LogConfig: { Type: spec.logging.driver ?? '', Config: spec.logging.options } } : {}),
    ...(spec.nanoCpus !== undefined ? { NanoCpus: spec.nanoCpus } : {}),
    ...(spec.memLimit !== undefined ? { Memory: spec.memLimit } : {}),
    ...(spec.memReservation !== undefined ? { MemoryReservation: spec.memReservation } : {}),
    ...(spec.memswapLimit !== undefined ? { MemorySwap: spec.memswapLimit } : {}),
    ...(spec.pidsLimit !== undefined ? { PidsLimit: spec.pidsLimit } : {}),
    ...(spec.shmSize !== undefined ? { ShmSize: spec.shmSize } : {}),
    ...(spec.readOnly ? { ReadonlyRootfs: true } : {}),
    ...(spec.tmpfs ? { Tmpfs: spec.tmpfs } : {}),
    ...(spec.sysctls ? { Sysctls: spec.sysctls } : {}),
    ...(securityOpts(spec).length ? { SecurityOpt: securityOpts(spec) } : {}),
    // docker compose (as the docker CLI) turns it into no masked and no read-only /proc and /sys paths; the engine refuses it as a security option
    ...(spec.securityOpt?.includes(UNCONFINED_SYSTEM_PATHS) ? { MaskedPaths: [], ReadonlyPaths: [] } : {}),
    ...(spec.ipcMode ? { IpcMode: spec.ipcMode } : {}),
    ...(spec.cgroupnsMode ? { CgroupnsMode: spec.cgroupnsMode } : {}),
    ...(spec.usernsMode ? { UsernsMode: spec.usernsMode } : {}),
    ...(spec.capDrop?.length ? { CapDrop: spec.capDrop } : {}),
    ...(spec.deviceCgroupRules?.length ? { DeviceCgroupRules: spec.deviceCgroupRules } : {}),
    ...(spec.groupAdd?.length ? { GroupAdd: spec.groupAdd } : {}),
    ...(spec.cpuShares !== undefined ? { CpuShares: spec.cpuShares } : {}),
    ...(spec.cpuset !== undefined ? { CpusetCpus: spec.cpuset } : {}),
    ...(spec.deviceRequests?.length
      ? { DeviceRequests: spec.deviceRequests.map((r) => ({ Driver: r.driver ?? '', Count: r.count ?? (r.deviceIds ? 0 : -1), DeviceIDs: r.deviceIds ?? [], Capabilities: [r.capabilities], Options: r.options ?? {} })) }
      : {}),
  };
  return [config, host];
}

export function containerCreateOptions(name: string, spec: ServiceSpec, who: ContainerIdentity, firstNetwork?: string, extras: CreateExtras = {}): Dockerode.ContainerCreateOptions {
  const volumeName = (key: string) => extras.volumeNames?.[key] ?? names.volume(who.project, who.environment, key);
  const networkName = (key: string) => extras.networkNames?.[key] ?? names.network(who.project, who.environment, key);
  const exposed: Record<string, object> = {};
  const bindings: Record<string, { HostIp?: string; HostPort?: string }[]> = {};
  for (const p of spec.ports) {
    const key = `${p.target}/${p.protocol}`;
    exposed[key] = {};
    (bindings[key] ??= []).push({ HostIp: p.hostIp ?? '', HostPort: p.published !== undefined ? String(p.published) : '' });
  }
  for (const e of spec.expose ?? []) exposed[e] = {};
  const inherited = new Map((extras.inheritVolumes ?? []).map((v) => [v.target, v.name]));
  const mounts = spec.volumes.filter((m) => !legacyBind(m)).map((m) => mountOptions(m, volumeName, inherited));
  // Anonymous volumes the image declares (VOLUME) are not in the spec: they are carried over as mounts too.
  const declared = new Set(spec.volumes.map((m) => m.target));
  for (const [target, source] of inherited) if (!declared.has(target)) mounts.push({ Type: 'volume', Source: source, Target: target, ReadOnly: false } as Dockerode.MountSettings);
  const binds = spec.volumes
    .filter(legacyBind)
    .map((m) => `${m.type === 'volume' ? volumeName(m.source!) : m.source}:${m.target}:${[m.readOnly ? 'ro' : 'rw', ...(m.selinux ? [m.selinux] : []), ...(m.propagation ? [m.propagation] : []), ...(m.noCopy ? ['nocopy'] : [])].join(',')}`);
  const networkMode = spec.networkMode ? dockerJoin(spec.networkMode, who.project, who.environment, extras.containerNames) : (firstNetwork ? networkName(firstNetwork) : undefined);
  const [extraConfig, extraHost] = extrasOptions(spec);
  const restart = { Name: spec.restart === 'no' ? '' : spec.restart, ...(spec.restart === 'on-failure' && spec.restartMaxRetries !== undefined ? { MaximumRetryCount: spec.restartMaxRetries } : {}) };
  return {
    name,
    ...(spec.platform ? { platform: spec.platform } : {}),
    ...extraConfig,
    Image: spec.image,
    ...(spec.command ? { Cmd: spec.command } : {}),
    ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
    // a bare name unsets it in the container, the image's value of it too (the engine keeps the create's entry for a name)
    Env: [...Object.entries(spec.environment).map(([k, v]) => `${k}=${v}`), ...(spec.unsetEnvironment ?? [])],
    Labels: containerLabels(spec, who),
    ...(spec.user ? { User: spec.user } : {}),
    ...(spec.workingDir ? { WorkingDir: spec.workingDir } : {}),
    ExposedPorts: exposed,
    ...(spec.healthcheck
      ? {
          Healthcheck: {
            Test: spec.healthcheck.test,
            Interval: ns(spec.healthcheck.intervalMs),
            Timeout: ns(spec.healthcheck.timeoutMs),
            Retries: spec.healthcheck.retries,
            StartPeriod: ns(spec.healthcheck.startPeriodMs),
            ...(spec.healthcheck.startIntervalMs ? { StartInterval: ns(spec.healthcheck.startIntervalMs) } : {}),
          },
        }
      : {}),
    HostConfig: {
      ...extraHost,
      PortBindings: bindings,
      Mounts: mounts,
      ...(binds.length ? { Binds: binds } : {}),
      RestartPolicy: restart,
      ...(networkMode ? { NetworkMode: networkMode } : {}),
      ...(spec.privileged ? { Privileged: true } : {}),
      ...(spec.pid ? { PidMode: dockerJoin(spec.pid, who.project, who.environment, extras.containerNames) } : {}),
      ...(spec.volumesFrom?.length ? { VolumesFrom: dockerVolumesFrom(spec.volumesFrom, who.project, who.environment, extras.containerNames) } : {}),
      ...(spec.capAdd?.length ? { CapAdd: spec.capAdd } : {}),
      ...(spec.devices?.length
        ? { Devices: spec.devices.map((d) => { const [host, inContainer = host, perms = 'rwm'] = d.split(':'); return { PathOnHost: host, PathInContainer: inContainer, CgroupPermissions: perms }; }) }
        : {}),
    },
    ...(firstNetwork && !spec.networkMode
      ? { NetworkingConfig: { EndpointsConfig: { [networkName(firstNetwork)]: extras.outsideDns ? { Aliases: [] } : endpointConfig(spec, firstNetwork) } } }
      : {}),
  };
}
