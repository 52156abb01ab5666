// Namespace and volume joins: `network_mode`/`pid: container:NAME | service:NAME`
// and `volumes_from`. A join reaches into another container, so it is the
// policy's business: `service:` stays inside the project and environment (it
// names berth's container of that service, replica 1, and implies the
// dependency compose implies); `container:` reaches anything on the target and
// is allowed only by name. One place parses, links and maps them so the
// loader, the planner, the create options and the pre-create guard agree.
import { ComposeError } from '../errors.js';
import type { ServiceSpec } from '../model/model.js';
import { names } from '../model/model.js';
import type { At, DependsFragment, ServiceFragment } from './fragment.js';
import { FieldProblem } from './normalize.js';

export interface Join {
  kind: 'service' | 'container';
  name: string;
}

const NAME = '[a-zA-Z0-9][a-zA-Z0-9_.-]*';
const JOIN_RE = new RegExp(`^(service|container):(${NAME})$`);

/** `service:NAME` / `container:NAME` → a join; anything else undefined. */
export function parseJoin(value: string): Join | undefined {
  const m = JOIN_RE.exec(value);
  return m ? { kind: m[1] as Join['kind'], name: m[2]! } : undefined;
}

/** One `volumes_from` entry (`NAME`, `service:NAME`, `container:NAME`, each with `:ro`/`:rw`) → `service|container:NAME:ro|rw`. */
export function parseVolumesFrom(entry: unknown): string {
  const m = typeof entry === 'string' ? new RegExp(`^(?:(service|container):)?(${NAME})(?::(ro|rw))?$`).exec(entry) : null;
  if (!m) throw new FieldProblem('invalid_value', `invalid volumes_from entry ${JSON.stringify(entry)}`, 'use SERVICE, service:SERVICE or container:NAME, optionally followed by :ro or :rw');
  return `${m[1] ?? 'service'}:${m[2]}:${m[3] ?? 'rw'}`;
}

export interface LocatedJoin {
  key: 'network_mode' | 'pid' | 'volumes_from';
  join: Join;
  at: At<string>['at'];
}

/** Every join a service fragment asks for, with the line that asks. */
export function fragmentJoins(s: ServiceFragment): LocatedJoin[] {
  const out: LocatedJoin[] = [];
  const add = (key: LocatedJoin['key'], a: At<string> | undefined) => {
    const j = a && parseJoin(key === 'volumes_from' ? a.v.replace(/:(ro|rw)$/, '') : a.v);
    if (j) out.push({ key, join: j, at: a!.at });
  };
  add('network_mode', s.networkMode);
  add('pid', s.pid);
  for (const v of s.volumesFrom ?? []) add('volumes_from', v);
  return out;
}

/** Every join of a normalised spec (no locations: the executor's pre-create guard). */
export function specJoins(spec: ServiceSpec): { key: LocatedJoin['key']; join: Join }[] {
  const out: { key: LocatedJoin['key']; join: Join }[] = [];
  const add = (key: LocatedJoin['key'], v: string | undefined) => {
    const j = v === undefined ? undefined : parseJoin(v);
    if (j) out.push({ key, join: j });
  };
  add('network_mode', spec.networkMode);
  add('pid', spec.pid);
  for (const v of spec.volumesFrom ?? []) add('volumes_from', v.replace(/:(ro|rw)$/, ''));
  return out;
}

/** Services a spec joins with `service:` (its implicit dependencies). */
export const joinedServices = (spec: ServiceSpec): string[] => [...new Set(specJoins(spec).filter((j) => j.join.kind === 'service').map((j) => j.join.name))].sort();

/**
 * `container:NAME` where NAME is the `container_name` of a service of this file set is that service's
 * container: docker compose finds it by that name (gluetun's VPN sidecar, `container_name: gluetun`, joined
 * by `network_mode: container:gluetun`), and so does berth, which names the container so. It is written
 * back as `service:SERVICE`, so it is judged as a join inside the project (not by
 * policy.allow_container_namespaces), the joined service starts first and a recreate of it recreates the joiner.
 */
function ownContainerJoins(services: Map<string, ServiceFragment>, notes?: string[]): void {
  const byContainerName = new Map<string, string>();
  for (const s of services.values()) if (s.extras.containerName?.v) byContainerName.set(s.extras.containerName.v, s.name);
  if (!byContainerName.size) return;
  const own = (s: ServiceFragment, key: LocatedJoin['key'], a: At<string>): At<string> => {
    const suffix = key === 'volumes_from' ? (/:(ro|rw)$/.exec(a.v)?.[0] ?? '') : '';
    const j = parseJoin(suffix ? a.v.slice(0, -suffix.length) : a.v);
    const service = j?.kind === 'container' ? byContainerName.get(j.name) : undefined;
    if (service === undefined || service === s.name) return a;
    notes?.push(`service ${s.name}: ${key} container:${j!.name} (${a.at.file}:${a.at.line}) is the container of service ${service} (its container_name), joined as service:${service}`);
    return { ...a, v: `service:${service}${suffix}` };
  };
  for (const s of services.values()) {
    if (s.networkMode) s.networkMode = own(s, 'network_mode', s.networkMode);
    if (s.pid) s.pid = own(s, 'pid', s.pid);
    if (s.volumesFrom) s.volumesFrom = s.volumesFrom.map((v) => own(s, 'volumes_from', v));
  }
}

/**
 * Checks every `service:` join names another service of the file set and adds
 * the dependency compose implies (the joined service is started first), so
 * cycles through joins are found with depends_on's. A `container:` join of a
 * service's own container_name is taken as that service first (ownContainerJoins).
 */
export function linkJoins(services: Map<string, ServiceFragment>, notes?: string[]): void {
  ownContainerJoins(services, notes);
  for (const s of services.values()) {
    for (const { key, join, at } of fragmentJoins(s)) {
      if (join.kind !== 'service') continue;
      if (join.name === s.name) throw new ComposeError('invalid_value', `service ${s.name}: ${key} cannot join the service itself`, { ...at, hint: `name another service of this project` });
      if (!services.has(join.name))
        throw new ComposeError('unknown_service', `service ${s.name}: ${key} joins "${join.name}", which is not a service of this project and environment`, {
          ...at,
          hint: 'service: joins only reach services of the same project and environment; to join another container use container:NAME (it must be allowed by policy.allow_container_namespaces)',
        });
      // docker compose joins the joined service's first container when it creates the joiner's, and fails when that
      // service is scaled to 0 ("container missing"): refused here, at the join, rather than at the apply's create
      const joined = services.get(join.name)!;
      if (joined.replicas?.v === 0 && (s.replicas?.v ?? 1) > 0)
        throw new ComposeError('invalid_value', `service ${s.name}: ${key} joins service ${join.name}, which has 0 replicas: there is no container to join`, {
          ...at,
          hint: `scale ${join.name} to at least 1 (${joined.replicas.at.file}${joined.replicas.at.line !== undefined ? `:${joined.replicas.at.line}` : ''}), scale ${s.name} to 0 too, or remove the join`,
          quotes: [joined.replicas.at],
        });
      if (!s.dependsOn?.has(join.name)) {
        const dep: DependsFragment = { service: join.name, condition: 'service_started', required: true, at };
        s.dependsOn = new Map([...(s.dependsOn ?? []), [join.name, dep]]);
      }
    }
  }
}

/** Services of the project that set `container_name`, by service: their container is known by that name. */
export type ContainerNames = Readonly<Record<string, string>>;

/**
 * What Docker is given for a join value: `service:NAME` becomes berth's container of that service
 * (replica 1), or the name the service sets with `container_name` (gluetun's VPN container, joined by
 * `network_mode: service:gluetun`, is known as `gluetun`).
 */
export function dockerJoin(value: string, project: string, environment: string, containerNames: ContainerNames = {}): string {
  const j = parseJoin(value);
  if (j?.kind !== 'service') return value;
  return `container:${Object.hasOwn(containerNames, j.name) ? containerNames[j.name] : names.container(project, environment, j.name, 1)}`;
}

/** `volumes_from` entries as Docker's HostConfig.VolumesFrom wants them (`NAME:ro|rw`). */
export const dockerVolumesFrom = (entries: readonly string[], project: string, environment: string, containerNames: ContainerNames = {}): string[] =>
  entries.map((e) => {
    const mode = e.slice(e.lastIndexOf(':') + 1);
    return `${dockerJoin(e.slice(0, e.lastIndexOf(':')), project, environment, containerNames).replace(/^container:/, '')}:${mode}`;
  });

/** The container names a desired state's services set (what their `service:` joins are given). */
export function containerNamesOf(services: readonly { spec: Pick<ServiceSpec, 'name' | 'containerName'> }[]): ContainerNames {
  const out: Record<string, string> = {};
  for (const s of services) if (s.spec.containerName !== undefined && !Object.hasOwn(out, s.spec.name)) out[s.spec.name] = s.spec.containerName;
  return out;
}
