// Observed state of one (project, environment) on one Docker host: exactly one
// list call per kind (containers, networks, volumes), filtered by berth's
// project and environment labels, parsed into the planner's plain data.
// Objects whose berth labels are missing or unreadable are left out and
// reported as warnings rather than guessed at; output is sorted so the same
// host always reads the same.
import type Dockerode from 'dockerode';
import { call } from './engine.js';
import type { ContainerState, ObservedContainer, ObservedNetwork, ObservedState, ObservedVolume, ServiceSpec } from '../model.js';
import { LABEL } from '../model.js';

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
  const networks = new Set<string>();
  for (const [dockerName, info] of Object.entries(c.NetworkSettings?.Networks ?? {})) {
    const key = networkKey(dockerName, info?.NetworkID);
    if (key) networks.add(key);
  }
  const applyId = labels[LABEL.applyId];
  return {
    id: c.Id,
    name: name!,
    service: service!,
    replica: replica!,
    configHash: configHash!,
    ...(config ? { config } : {}),
    ...(applyId ? { applyId } : {}),
    image: normalizeImageRef(c.Image),
    state: state as ContainerState,
    networks: [...networks].sort(cmp),
  };
}

/**
 * Reads what berth manages for (project, environment) on one host: one
 * listContainers, one listNetworks and one listVolumes call, run together.
 * Docker failures throw an EngineError carrying Docker's message.
 */
export async function observe(docker: Dockerode, project: string, environment: string, repository?: string): Promise<ObserveResult> {
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

  return {
    observed: { project, environment, containers: obsContainers, networks: obsNetworks, volumes: obsVolumes },
    warnings: [...new Set(warnings)].sort(cmp),
  };
}
