// Observed state of one (project, environment) on one Docker host: exactly one
// list call per kind (containers, networks, volumes), filtered by berth's
// project and environment labels, parsed into the planner's plain data.
// Objects whose berth labels are missing or unreadable are left out and
// reported as warnings rather than guessed at; output is sorted so the same
// host always reads the same.
import type Dockerode from 'dockerode';
import { call } from './docker-engine.js';
import type { ContainerState, DesiredState, ObserveOptions, ObservedContainer, ObservedNetwork, ObservedState, ObservedVolume, ServiceSpec, UnmanagedNetwork, UnmanagedVolume } from '../model/model.js';
import { dockerNameOf, LABEL } from '../model/model.js';

export interface ObserveResult {
  observed: ObservedState;
  /** one line per object that carries berth's project label but could not be read, and Docker's own list warnings */
  warnings: string[];
}

const CONTAINER_STATES: ReadonlySet<string> = new Set<ContainerState>(['created', 'running', 'paused', 'restarting', 'removing', 'exited', 'dead']);


/** The label filter every list call uses: project AND environment. */
export function berthFilters(project: string, environment: string): { label: string[] } {
  return { label: [`${LABEL.project}=${project}`, `${LABEL.environment}=${environment}`] };
}

/**
 * An image reference in the planner's canonical form: registry, repository
 * path and tag always present (`nginx` → `docker.io/library/nginx:latest`).
 * Docker lists the reference a container was created with, as written.
 */
export function normalizeImageRef(ref: string): string {
  if (/^sha256:[0-9a-f]{64}$/i.test(ref) || /^[0-9a-f]{64}$/i.test(ref)) return ref;
  let rest = ref;
  let digest = '';
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at);
    rest = rest.slice(0, at);
  }
  const slash = rest.indexOf('/');
  const first = slash >= 0 ? rest.slice(0, slash) : '';
  const hasDomain = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost');
  let domain = hasDomain ? first : 'docker.io';
  let path = hasDomain ? rest.slice(slash + 1) : rest;
  if (domain === 'index.docker.io') domain = 'docker.io';
  if (domain === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  const lastSegment = path.slice(path.lastIndexOf('/') + 1);
  if (!lastSegment.includes(':') && !digest) path = `${path}:latest`;
  return `${domain}/${path}${digest}`;
}

/** The io.berth.config label, when it is JSON that looks like a ServiceSpec; anything else is ignored. */
export function parseConfigLabel(raw: string | undefined): ServiceSpec | undefined {
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) return undefined;
    const o = v as Record<string, unknown>;
    if (typeof o.name !== 'string' || typeof o.image !== 'string') return undefined;
    return o as unknown as ServiceSpec;
  } catch {
    return undefined;
  }
}

/** The io.berth.secret-fields label: a JSON list of field names; anything else is ignored (only berth writes it). */
export function parseSecretFieldsLabel(raw: string | undefined): string[] | undefined {
  if (raw === undefined) return undefined;
  try {
    const v = JSON.parse(raw) as unknown;
    return Array.isArray(v) && v.length && v.every((x) => typeof x === 'string') ? (v as string[]) : undefined;
  } catch {
    return undefined;
  }
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function containerName(c: Dockerode.ContainerInfo): string | undefined {
  // Legacy links add names like /other/alias; the container's own name has one slash.
  const names = (c.Names ?? []).map((n) => n.replace(/^\//, ''));
  return names.find((n) => !n.includes('/')) ?? names[0];
}

function parseNetwork(n: Dockerode.NetworkInspectInfo, warnings: string[]): ObservedNetwork | undefined {
  const labels = n.Labels ?? {};
  const name = labels[LABEL.network];
  if (!name) {
    warnings.push(`network ${n.Name} (${n.Id.slice(0, 12)}): no ${LABEL.network} label; ignored`);
    return undefined;
  }
  const configHash = labels[LABEL.configHash] ?? '';
  if (!configHash) warnings.push(`network ${n.Name} (${n.Id.slice(0, 12)}): no ${LABEL.configHash} label; it will read as changed`);
  return { id: n.Id, dockerName: n.Name, name, configHash };
}

function parseVolume(v: Dockerode.VolumeInspectInfo, warnings: string[]): ObservedVolume | undefined {
  const labels = v.Labels ?? {};
  const name = labels[LABEL.volume];
  if (!name) {
    warnings.push(`volume ${v.Name}: no ${LABEL.volume} label; ignored`);
    return undefined;
  }
  const configHash = labels[LABEL.configHash] ?? '';
  if (!configHash) warnings.push(`volume ${v.Name}: no ${LABEL.configHash} label`);
  return { dockerName: v.Name, name, configHash };
}

function parseContainer(c: Dockerode.ContainerInfo, networkKey: (dockerName: string, id: string | undefined) => string | undefined, warnings: string[]): ObservedContainer | undefined {
  const labels = c.Labels ?? {};
  const name = containerName(c);
  const who = `container ${name ?? '?'} (${c.Id.slice(0, 12)})`;
  const problems: string[] = [];
  const service = labels[LABEL.service];
  if (!service) problems.push(`no ${LABEL.service} label`);
  const replicaLabel = labels[LABEL.replica];
  const replica = replicaLabel !== undefined && /^[1-9]\d{0,8}$/.test(replicaLabel) ? Number(replicaLabel) : undefined;
  if (replica === undefined) problems.push(replicaLabel === undefined ? `no ${LABEL.replica} label` : `${LABEL.replica} ${JSON.stringify(replicaLabel)} is not a positive integer`);
  const configHash = labels[LABEL.configHash];
  if (!configHash) problems.push(`no ${LABEL.configHash} label`);
  if (!name) problems.push('no name');
  const state = (c.State ?? '').toLowerCase();
  if (!CONTAINER_STATES.has(state)) problems.push(`unknown state ${JSON.stringify(c.State)}`);
  if (problems.length) {
    warnings.push(`${who}: ${problems.join(', ')}; ignored`);
    return undefined;
  }
  const config = parseConfigLabel(labels[LABEL.config]);
  const configSecretFields = config ? parseSecretFieldsLabel(labels[LABEL.secretFields]) : undefined;
  const networks = new Set<string>();
  for (const [dockerName, info] of Object.entries(c.NetworkSettings?.Networks ?? {})) {
    const key = networkKey(dockerName, info?.NetworkID);
    if (key) networks.add(key);
  }
  const applyId = labels[LABEL.applyId];
  // The list call carries the exit code only in its status line: "Exited (0) 3 minutes ago".
  const exitMatch = state === 'exited' ? /^Exited \((-?\d+)\)/.exec(c.Status ?? '') : null;
  const exitCode = exitMatch ? Number(exitMatch[1]) : undefined;
  // Docker names an anonymous volume with a random 64-hex id; named ones carry the name they were given.
  const anonymous = (c.Mounts ?? [])
    .filter((m) => m.Type === 'volume' && /^[0-9a-f]{64}$/.test(m.Name ?? '') && m.Destination)
    .map((m) => ({ name: m.Name!, target: m.Destination }))
    .sort((a, b) => cmp(a.target, b.target));
  return {
    id: c.Id,
    name: name!,
    service: service!,
    replica: replica!,
    configHash: configHash!,
    ...(config ? { config } : {}),
    ...(configSecretFields ? { configSecretFields } : {}),
    ...(applyId ? { applyId } : {}),
    image: normalizeImageRef(c.Image),
    state: state as ContainerState,
    ...(exitCode !== undefined ? { exitCode } : {}),
    ...(anonymous.length ? { anonymousVolumes: anonymous } : {}),
    networks: [...networks].sort(cmp),
  };
}

const notFound = (err: unknown) => (err as { statusCode?: number })?.statusCode === 404;

/** Inspects a network by its exact name; undefined when there is none (an id-prefix match is not a name match). */
async function networkNamed(docker: Dockerode, name: string): Promise<UnmanagedNetwork | undefined> {
  try {
    const n = (await docker.getNetwork(name).inspect()) as Dockerode.NetworkInspectInfo & { Attachable?: boolean; Options?: Record<string, string> | null; EnableIPv6?: boolean };
    if (n.Name !== name) return undefined;
    const pools = (n.IPAM?.Config ?? []) as { Subnet?: string; IPRange?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> }[];
    const ipam = {
      driver: n.IPAM?.Driver || 'default',
      config: pools.map((c) => ({ ...(c.Subnet ? { subnet: c.Subnet } : {}), ...(c.IPRange ? { ipRange: c.IPRange } : {}), ...(c.Gateway ? { gateway: c.Gateway } : {}), ...(c.AuxiliaryAddresses && Object.keys(c.AuxiliaryAddresses).length ? { auxAddresses: c.AuxiliaryAddresses } : {}) })),
      ...(n.IPAM?.Options && Object.keys(n.IPAM.Options).length ? { options: n.IPAM.Options } : {}),
    };
    return { id: n.Id, dockerName: n.Name, driver: n.Driver, internal: !!n.Internal, attachable: !!n.Attachable, options: n.Options ?? {}, labels: n.Labels ?? {}, ipam, enableIpv6: !!n.EnableIPv6 };
  } catch (err) {
    if (notFound(err)) return undefined;
    throw err;
  }
}

async function volumeNamed(docker: Dockerode, name: string): Promise<UnmanagedVolume | undefined> {
  try {
    const v = (await docker.getVolume(name).inspect()) as Dockerode.VolumeInspectInfo & { Options?: Record<string, string> | null };
    return { dockerName: v.Name, driver: v.Driver, options: v.Options ?? {}, labels: v.Labels ?? {} };
  } catch (err) {
    if (notFound(err)) return undefined;
    throw err;
  }
}

/**
 * The desired networks and volumes berth does not see through its labels,
 * looked up by Docker name: external ones (which must exist) and berth-named
 * ones someone created by hand (adopted when they match). One inspect each,
 * only for those; a labelled object of ours is never looked up again.
 */
async function lookUpUnmanaged(docker: Dockerode, desired: DesiredState, labelled: { networks: ObservedNetwork[]; volumes: ObservedVolume[] }): Promise<NonNullable<ObservedState['unmanaged']>> {
  const { project, environment } = desired;
  const haveNet = new Set(labelled.networks.map((n) => n.name));
  const haveVol = new Set(labelled.volumes.map((v) => v.name));
  const netNames = desired.networks.filter((n) => n.spec.external || !haveNet.has(n.spec.name)).map((n) => dockerNameOf(project, environment, 'network', n.spec));
  const volNames = desired.volumes.filter((v) => v.spec.external || !haveVol.has(v.spec.name)).map((v) => dockerNameOf(project, environment, 'volume', v.spec));
  const [networks, volumes] = await Promise.all([
    Promise.all([...new Set(netNames)].sort().map((n) => call(`inspect network ${n}`, () => networkNamed(docker, n)))),
    Promise.all([...new Set(volNames)].sort().map((v) => call(`inspect volume ${v}`, () => volumeNamed(docker, v)))),
  ]);
  return { networks: networks.filter((n): n is UnmanagedNetwork => !!n), volumes: volumes.filter((v): v is UnmanagedVolume => !!v) };
}

/**
 * Reads what berth manages for (project, environment) on one host: one
 * listContainers, one listNetworks and one listVolumes call, run together.
 * Given the desired state, the external and not-yet-labelled networks and
 * volumes it names are looked up by name as well (see lookUpUnmanaged).
 * Docker failures throw an EngineError carrying Docker's message.
 */
export async function observe(docker: Dockerode, project: string, environment: string, opts: ObserveOptions = {}): Promise<ObserveResult> {
  const { repository, desired } = opts;
  const filters = berthFilters(project, environment);
  const [containers, networks, volumes] = await Promise.all([
    call(`list containers of ${project}/${environment}`, () => docker.listContainers({ all: true, filters })),
    call(`list networks of ${project}/${environment}`, () => docker.listNetworks({ filters })),
    call(`list volumes of ${project}/${environment}`, () => docker.listVolumes({ filters })),
  ]);
  const warnings: string[] = [];
  // The engine filters already; this guards against an engine (or proxy) that ignores filters.
  // Another repository's objects are never seen (and so never touched). Objects from before repositories were
  // labelled carry no repository label and stay visible; the project's owner is recorded in the store.
  const ours = (labels: Record<string, string> | undefined | null) =>
    labels?.[LABEL.project] === project &&
    labels?.[LABEL.environment] === environment &&
    (repository === undefined || labels[LABEL.repository] === undefined || labels[LABEL.repository] === repository);

  const obsNetworks = (networks ?? [])
    .filter((n) => ours(n.Labels))
    .map((n) => parseNetwork(n, warnings))
    .filter((n): n is ObservedNetwork => !!n)
    .sort((a, b) => cmp(a.name, b.name) || cmp(a.dockerName, b.dockerName) || cmp(a.id, b.id));
  const seen = new Set<string>();
  for (const n of obsNetworks) {
    if (seen.has(n.name)) warnings.push(`network ${n.name}: more than one Docker network carries this key (${obsNetworks.filter((x) => x.name === n.name).map((x) => x.dockerName).join(', ')})`);
    seen.add(n.name);
  }
  const byDockerName = new Map(obsNetworks.map((n) => [n.dockerName, n.name]));
  // Containers on an external (or adopted) network name it by its Docker name, which no berth label carries.
  if (desired) for (const n of desired.networks) { const dn = dockerNameOf(project, environment, 'network', n.spec); if (!byDockerName.has(dn)) byDockerName.set(dn, n.spec.name); }
  const byId = new Map(obsNetworks.map((n) => [n.id, n.name]));
  const networkKey = (dockerName: string, id: string | undefined) => (id ? byId.get(id) : undefined) ?? byDockerName.get(dockerName);

  const obsVolumes = (volumes?.Volumes ?? [])
    .filter((v) => ours(v.Labels))
    .map((v) => parseVolume(v, warnings))
    .filter((v): v is ObservedVolume => !!v)
    .sort((a, b) => cmp(a.name, b.name) || cmp(a.dockerName, b.dockerName));
  for (const w of volumes?.Warnings ?? []) warnings.push(`docker: ${w}`);

  const obsContainers = (containers ?? [])
    .filter((c) => ours(c.Labels))
    .map((c) => parseContainer(c, networkKey, warnings))
    .filter((c): c is ObservedContainer => !!c)
    .sort((a, b) => cmp(a.service, b.service) || a.replica - b.replica || cmp(a.name, b.name) || cmp(a.id, b.id));

  const unmanaged = desired ? await lookUpUnmanaged(docker, desired, { networks: obsNetworks, volumes: obsVolumes }) : undefined;
  return {
    observed: { project, environment, containers: obsContainers, networks: obsNetworks, volumes: obsVolumes, ...(unmanaged ? { unmanaged } : {}) },
    warnings: [...new Set(warnings)].sort(cmp),
  };
}
