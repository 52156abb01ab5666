// The shapes every layer agrees on: desired state (from compose), observed
// state (from Docker) and the labels that tie a Docker object to berth.
// Everything here is plain data so the planner stays pure.

export const LABEL = {
  project: 'io.berth.project',
  environment: 'io.berth.environment',
  service: 'io.berth.service',
  replica: 'io.berth.replica',
  configHash: 'io.berth.config-hash',
  /** The normalised service config as JSON, so a plan can diff old vs new fields without the store. */
  config: 'io.berth.config',
  applyId: 'io.berth.apply',
  network: 'io.berth.network',
  volume: 'io.berth.volume',
} as const;

export type Protocol = 'tcp' | 'udp';

export interface PortBinding {
  /** container port */
  target: number;
  /** host port; undefined = ephemeral */
  published?: number;
  /** host ip; undefined = all interfaces */
  hostIp?: string;
  protocol: Protocol;
}

export interface Mount {
  type: 'volume' | 'bind' | 'tmpfs';
  /** volume key (compose name) for type volume, absolute host path for bind, undefined for tmpfs/anonymous */
  source?: string;
  target: string;
  readOnly: boolean;
}

export interface Healthcheck {
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export type DependsOnCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

export interface DependsOn {
  service: string;
  condition: DependsOnCondition;
  /** `restart: true`: this service is restarted when the dependency is recreated (absent = false, so older hashes hold) */
  restart?: true;
}

/** A config or secret placed in the container before it starts. The content is not here (specs are shown and stored in labels): its digest is, so a rotation changes the config hash. */
export interface FileMount {
  kind: 'config' | 'secret';
  /** the top-level config/secret name */
  source: string;
  /** absolute path in the container */
  target: string;
  uid?: string;
  gid?: string;
  mode: number;
  /** sha256 of the content */
  digest: string;
}

export type RestartPolicy = 'no' | 'always' | 'on-failure' | 'unless-stopped';

/**
 * A service after merge, interpolation and normalisation. Two compose files
 * that mean the same thing produce deep-equal ServiceSpecs (and so the same hash).
 */
export interface ServiceSpec {
  name: string;
  /** fully qualified: docker.io/library/nginx:latest */
  image: string;
  command?: string[];
  entrypoint?: string[];
  /** keys sorted */
  environment: Record<string, string>;
  /** sorted by target, protocol, published */
  ports: PortBinding[];
  /** sorted by target */
  volumes: Mount[];
  /** network keys (compose names), sorted; `default` when the service names none */
  networks: string[];
  /** sorted by service */
  dependsOn: DependsOn[];
  healthcheck?: Healthcheck;
  /** user labels only (berth labels are added at create time), keys sorted */
  labels: Record<string, string>;
  restart: RestartPolicy;
  user?: string;
  workingDir?: string;
  replicas: number;
  /** policy-relevant settings; absent = off */
  privileged?: boolean;
  networkMode?: string;
  pid?: string;
  capAdd?: string[];
  devices?: string[];
  /** configs and secrets, sorted by target; absent when none (so older hashes hold) */
  files?: FileMount[];
}

export interface NetworkSpec {
  /** compose key */
  name: string;
  driver: string;
  internal: boolean;
  attachable: boolean;
  labels: Record<string, string>;
  external: boolean;
  /** the name in Docker when it is not berth's `<project>-<env>_<key>`: compose's `name:` (an external object's real name) */
  dockerName?: string;
}

export interface VolumeSpec {
  /** compose key */
  name: string;
  driver: string;
  labels: Record<string, string>;
  external: boolean;
  dockerName?: string;
}

/** Where a top-level network or volume was declared, so a plan-time refusal (external missing, name taken) is located. */
export interface DeclaredAt {
  file: string;
  line?: number;
  path?: string;
}

export interface DesiredService {
  spec: ServiceSpec;
  /** hash of everything in spec except replicas (scaling never recreates) */
  configHash: string;
}

export interface DesiredNetwork {
  spec: NetworkSpec;
  configHash: string;
  at?: DeclaredAt;
}

export interface DesiredVolume {
  spec: VolumeSpec;
  configHash: string;
  at?: DeclaredAt;
}

export interface DesiredState {
  project: string;
  environment: string;
  services: DesiredService[];
  networks: DesiredNetwork[];
  volumes: DesiredVolume[];
  /** content of every config and secret a service uses, by `config:<name>` / `secret:<name>`; secret values are masked wherever shown */
  contents?: Record<string, string>;
}

export type ContainerState = 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface ObservedContainer {
  id: string;
  /** without the leading slash */
  name: string;
  service: string;
  replica: number;
  configHash: string;
  /** parsed io.berth.config label, when present and valid JSON */
  config?: ServiceSpec;
  applyId?: string;
  image: string;
  state: ContainerState;
  /** the exit code of a container that has exited (from Docker's status line) */
  exitCode?: number;
  /** anonymous volumes mounted in the container (random 64-hex names): a recreate mounts them again */
  anonymousVolumes?: { name: string; target: string }[];
  /** compose network keys the container is attached to (from labels of the networks it is on) */
  networks: string[];
}

export interface ObservedNetwork {
  id: string;
  /** docker name */
  dockerName: string;
  /** compose key */
  name: string;
  configHash: string;
}

export interface ObservedVolume {
  dockerName: string;
  name: string;
  configHash: string;
}

/** A network found by its Docker name without berth's labels: an external one, or one someone created under berth's name. */
export interface UnmanagedNetwork {
  id: string;
  dockerName: string;
  driver: string;
  internal: boolean;
  attachable: boolean;
  options: Record<string, string>;
  labels: Record<string, string>;
}

export interface UnmanagedVolume {
  dockerName: string;
  driver: string;
  options: Record<string, string>;
  labels: Record<string, string>;
}

export interface ObservedState {
  project: string;
  environment: string;
  containers: ObservedContainer[];
  networks: ObservedNetwork[];
  volumes: ObservedVolume[];
  /** looked up by name for the desired state: external objects and berth-named objects without berth's labels (absent = not found) */
  unmanaged?: { networks: UnmanagedNetwork[]; volumes: UnmanagedVolume[] };
}

/** Docker object names. Environment is part of every name so two environments can share a host. */
export const names = {
  container: (project: string, env: string, service: string, replica: number) =>
    `${project}-${env}-${service}-${replica}`,
  tmpContainer: (project: string, env: string, service: string, replica: number, hash: string) =>
    `${project}-${env}-${service}-${replica}_${hash.slice(0, 12)}`,
  network: (project: string, env: string, network: string) => `${project}-${env}_${network}`,
  volume: (project: string, env: string, volume: string) => `${project}-${env}_${volume}`,
};

/** A desired network's or volume's name in Docker: `name:` when given, the key itself when external, else berth's prefixed name. */
export function dockerNameOf(project: string, env: string, kind: 'network' | 'volume', spec: NetworkSpec | VolumeSpec): string {
  return spec.dockerName ?? (spec.external ? spec.name : names[kind](project, env, spec.name));
}

/** Compose key → Docker name for every network and volume of a desired state. */
export function dockerNames(d: DesiredState): { network(key: string): string; volume(key: string): string } {
  const nets = new Map(d.networks.map((n) => [n.spec.name, dockerNameOf(d.project, d.environment, 'network', n.spec)]));
  const vols = new Map(d.volumes.map((v) => [v.spec.name, dockerNameOf(d.project, d.environment, 'volume', v.spec)]));
  return {
    network: (key) => nets.get(key) ?? names.network(d.project, d.environment, key),
    volume: (key) => vols.get(key) ?? names.volume(d.project, d.environment, key),
  };
}
