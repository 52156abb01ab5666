// The pre-create guard: the last look at a container's reach before Docker
// creates it, on the target itself. The loader's policy check is lexical and
// sees only the compose files; here bind sources are resolved on the target
// (a symlink planted in an allow-listed directory by an earlier container is
// followed the way Docker would follow it) and `container:`/`service:` joins
// are looked at as they are now (a joined container on the host network gives
// host network). What escapes is refused before anything is created.
import { specJoins, dockerJoin, type ContainerNames, type LocatedJoin } from '../compose/joins.js';
import { allowedDirOf, allowedDirs, exposesDockerSocket, within, type Policy } from '../compose/policy.js';
import type { ContainerProbe, Engine } from '../apply/engine.js';
import { LABEL, type ServiceSpec } from '../model/model.js';
import { allowRegistryHint, checkImageRegistry, checkImageRegistryResolved, type RegistryLookup } from '../compose/registries.js';

/**
 * The image's registry under policy.allow_registries, before the engine pulls
 * it: with the server's DNS when a resolver is given, else by its form.
 */
export async function guardImage(image: string, policy: Policy, lookup?: RegistryLookup): Promise<void> {
  const allow = policy.allow_registries ?? [];
  const v = lookup ? await checkImageRegistryResolved(image, allow, lookup) : checkImageRegistry(image, allow);
  if (v.refusal) throw new GuardRefusal(`image ${image}: ${v.refusal} — ${allowRegistryHint(v)}`);
}

/** A refusal by the guard: the task fails with this message and nothing is created. */
export class GuardRefusal extends Error {
  constructor(message: string) {
    super(`refused by the repository's policy: ${message} (nothing was created)`);
    this.name = 'GuardRefusal';
  }
}

export interface GuardContext {
  project: string;
  environment: string;
  /** services of the project that set container_name (a `service:` join names that container) */
  containerNames?: ContainerNames;
}

/** How far a join chain is followed (container:A on container:B on …) before giving up. */
const MAX_CHAIN = 8;

/**
 * Checks a service's mounts and joins on the target; returns the spec to
 * create (binds under read-only allowlist entries forced read-only) or throws
 * a GuardRefusal naming the service and what escapes.
 */
export async function guardContainer(engine: Engine, spec: ServiceSpec, policy: Policy, ctx: GuardContext): Promise<ServiceSpec> {
  let dirs: ReturnType<typeof allowedDirs> | undefined;
  const refuse = (what: string) => new GuardRefusal(`service ${spec.name}: ${what}`);
  const registry = checkImageRegistry(spec.image, policy.allow_registries ?? []);
  if (registry.refusal) throw refuse(`image ${spec.image}: ${registry.refusal} — ${allowRegistryHint(registry)}`);
  const volumes = [];
  for (const m of spec.volumes) {
    if (m.type !== 'bind' || !m.source) {
      volumes.push(m);
      continue;
    }
    const src = m.source;
    if (!src.startsWith('/')) throw refuse(`bind mount of ${src}: the source is not an absolute path on the target`);
    if (exposesDockerSocket(src)) {
      if (!policy.allow_docker_socket) throw refuse(`bind mount of ${src} reaches the Docker socket`);
      volumes.push(m);
      continue;
    }
    const entry = allowedDirOf(src, (dirs ??= allowedDirs(policy)));
    if (!entry) throw refuse(`bind mount of ${src} is outside policy.bind_mount_allowlist`);
    const resolved = await engine.resolveBindSource(spec.image, entry.dir, src);
    if (!within(resolved, entry.dir)) throw refuse(`bind mount of ${src} resolves to ${resolved} on the target (through a symlink), outside the allow-listed ${entry.dir}`);
    if (exposesDockerSocket(resolved) && !policy.allow_docker_socket) throw refuse(`bind mount of ${src} resolves to ${resolved} on the target, which reaches the Docker socket`);
    volumes.push(entry.writable ? m : { ...m, readOnly: true });
  }

  for (const { key, join } of specJoins(spec)) {
    if (join.kind === 'container' && !policy.allow_container_namespaces.includes(join.name))
      throw refuse(`${key} container:${join.name} is not in policy.allow_container_namespaces`);
    const name = dockerJoin(`${join.kind}:${join.name}`, ctx.project, ctx.environment, ctx.containerNames).slice('container:'.length);
    const target = await engine.findContainer(name);
    if (!target) continue; // Docker refuses the create with its own message
    if (join.kind === 'service' && (target.labels[LABEL.project] !== ctx.project || target.labels[LABEL.environment] !== ctx.environment))
      throw refuse(`${key} service:${join.name} names container ${name}, which is not this project and environment's`);
    await checkReach(engine, target, key, policy, refuse);
  }
  return { ...spec, volumes };
}

/** A joined container's own reach, following its joins: host network/pid and bind mounts the policy denies are refused. */
async function checkReach(engine: Engine, start: ContainerProbe, key: LocatedJoin['key'], policy: Policy, refuse: (what: string) => GuardRefusal): Promise<void> {
  let c: ContainerProbe | undefined = start;
  for (let depth = 0; c && depth < MAX_CHAIN; depth++) {
    const access = c.access;
    if (!access) throw refuse(`${key} joins ${c.name}, whose settings cannot be read`);
    if (key === 'volumes_from') {
      const dirs = allowedDirs(policy);
      for (const b of access.binds) {
        if (exposesDockerSocket(b.source) ? !policy.allow_docker_socket : !allowedDirOf(b.source, dirs))
          throw refuse(`volumes_from ${c.name} would inherit its bind mount of ${b.source}, which the policy does not allow`);
      }
      return;
    }
    const mode = key === 'network_mode' ? access.networkMode : access.pidMode;
    if (mode === 'host') {
      if (key === 'network_mode' && !policy.allow_host_network) throw refuse(`network_mode joins ${c.name}, which uses the host network`);
      if (key === 'pid' && !policy.allow_host_pid) throw refuse(`pid joins ${c.name}, which uses the host pid namespace`);
      return;
    }
    if (!mode.startsWith('container:')) return;
    c = await engine.findContainer(mode.slice('container:'.length));
  }
  if (c) throw refuse(`${key} join chain is longer than ${MAX_CHAIN}`);
}
