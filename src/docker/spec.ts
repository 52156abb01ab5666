// ServiceSpec → Docker Engine API create options. Pure, so the mapping is
// tested without an engine and the executor only moves data.
import type Dockerode from 'dockerode';
import type { ContainerIdentity, CreateExtras } from '../engine.js';
import { LABEL, names } from '../model.js';
import type { ServiceSpec } from '../model.js';

export function containerLabels(spec: ServiceSpec, who: ContainerIdentity): Record<string, string> {
  return {
    ...spec.labels,
    [LABEL.project]: who.project,
    [LABEL.environment]: who.environment,
    [LABEL.service]: spec.name,
    [LABEL.replica]: String(who.replica),
    [LABEL.configHash]: who.configHash,
    [LABEL.config]: JSON.stringify(spec),
    [LABEL.applyId]: who.applyId,
  };
}

const ns = (ms: number) => Math.round(ms * 1e6);

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
  const inherited = new Map((extras.inheritVolumes ?? []).map((v) => [v.target, v.name]));
  const mounts = spec.volumes.map((m) => ({
    Type: m.type,
    Target: m.target,
    ReadOnly: m.readOnly,
    ...(m.type === 'volume' && m.source ? { Source: volumeName(m.source) } : {}),
    // An anonymous volume of the replaced container at this path is mounted again instead of a new empty one.
    ...(m.type === 'volume' && !m.source && inherited.has(m.target) ? { Source: inherited.get(m.target) } : {}),
    ...(m.type === 'bind' && m.source ? { Source: m.source } : {}),
  })) as Dockerode.MountSettings[];
  // Anonymous volumes the image declares (VOLUME) are not in the spec: they are carried over as mounts too.
  const declared = new Set(spec.volumes.map((m) => m.target));
  for (const [target, source] of inherited) if (!declared.has(target)) mounts.push({ Type: 'volume', Source: source, Target: target, ReadOnly: false } as Dockerode.MountSettings);
  const networkMode = spec.networkMode ?? (firstNetwork ? networkName(firstNetwork) : undefined);
  return {
    name,
    Image: spec.image,
    ...(spec.command ? { Cmd: spec.command } : {}),
    ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
    Env: Object.entries(spec.environment).map(([k, v]) => `${k}=${v}`),
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
          },
        }
      : {}),
    HostConfig: {
      PortBindings: bindings,
      Mounts: mounts,
      RestartPolicy: { Name: spec.restart === 'no' ? '' : spec.restart },
      ...(networkMode ? { NetworkMode: networkMode } : {}),
      ...(spec.privileged ? { Privileged: true } : {}),
      ...(spec.pid ? { PidMode: spec.pid } : {}),
      ...(spec.capAdd?.length ? { CapAdd: spec.capAdd } : {}),
      ...(spec.devices?.length
        ? { Devices: spec.devices.map((d) => { const [host, inContainer = host, perms = 'rwm'] = d.split(':'); return { PathOnHost: host, PathInContainer: inContainer, CgroupPermissions: perms }; }) }
        : {}),
    },
    ...(firstNetwork && !spec.networkMode
      ? { NetworkingConfig: { EndpointsConfig: { [networkName(firstNetwork)]: { Aliases: [spec.name] } } } }
      : {}),
  };
}
