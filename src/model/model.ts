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
  /**
   * The fields of that config a secret fed (compose/taint.ts), as a JSON list: the plan masks them on the
   * deployed side of a diff even once the desired state no longer uses the secret there (or it rotated).
   */
  secretFields: 'io.berth.secret-fields',
  applyId: 'io.berth.apply',
  /** owner/name of the repository whose apply created the object: a project on a target belongs to one repository */
  repository: 'io.berth.repository',
  network: 'io.berth.network',
  volume: 'io.berth.volume',
} as const;

export type Protocol = 'tcp' | 'udp' | 'sctp';

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
  /** bind: create the host directory when missing (compose's short syntax does; the long syntax asks for it) */
  createHostPath?: boolean;
  /** bind or volume: SELinux relabel, shared (`z`) or private (`Z`) */
  selinux?: 'z' | 'Z';
  /** bind: mount propagation (rprivate is Docker's default and is not written) */
  propagation?: 'private' | 'rshared' | 'shared' | 'rslave' | 'slave';
  /** volume: do not copy the image's content into a new volume */
  noCopy?: boolean;
  /** volume: the directory inside the volume that is mounted (relative, normalised) instead of its root */
  subpath?: string;
  /** tmpfs: size in bytes and octal mode */
  tmpfsSize?: number;
  tmpfsMode?: number;
}

export interface Healthcheck {
  /** [] = the image's HEALTHCHECK test (then zero timings are the image's too); ["NONE"] = disabled */
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
  /** `start_interval`: how often the test runs during the start period (Docker Engine 25, API 1.44, and later); absent when not written */
  startIntervalMs?: number;
}

export type DependsOnCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

export interface DependsOn {
  service: string;
  condition: DependsOnCondition;
  /** `restart: true`: restart this service when the dependency is recreated (absent = false, so older hashes hold) */
  restart?: boolean;
}

/** A config or secret placed in the container before it starts. The content is not here (specs are shown and stored in labels): its digest is, so a rotation changes the config hash. */
export interface FileMount {
  /** `file`: a repository file a bind mount names, copied in because the app has no checkout on the target */
  kind: 'config' | 'secret' | 'file';
  /** the top-level config/secret name; for `file`, the repository path */
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

/** `pull_policy` as written: always, missing, never, build, daily, weekly or every_<duration> */
export type PullPolicy = string;

export interface Ulimit {
  soft: number;
  hard: number;
}

export interface Logging {
  driver?: string;
  /** keys sorted */
  options: Record<string, string>;
}

/** A service's settings on one of its networks (compose's long `networks:` form). */
export interface ServiceNetwork {
  /** sorted, unique; the service name is always an alias too and is not listed */
  aliases?: string[];
  ipv4Address?: string;
  ipv6Address?: string;
  /** the network with the highest priority is the one the container is created on */
  priority?: number;
  /** link-local addresses of the endpoint, sorted */
  linkLocalIps?: string[];
  /** the network driver's options for this endpoint, keys sorted */
  driverOpts?: Record<string, string>;
  /** the endpoint's MAC address (lower case, `:`); on a network joined after the create, Docker Engine 25 (API 1.44) */
  macAddress?: string;
}

export type RolloutOrder = 'stop-first' | 'start-first';
export type FailureAction = 'rollback' | 'pause' | 'continue';

/**
 * `deploy.update_config` / `deploy.rollback_config` after defaults (compose's, as Swarm reads them):
 * how the replicas of a changed service are replaced on a plain Docker host.
 */
export interface RolloutConfig {
  /** replicas replaced at once; 0 = all at once (default 1) */
  parallelism: number;
  /** wait between batches (default 0) */
  delayMs: number;
  /** stop-first (default): old stopped, then new started; start-first: new started and healthy, then old removed */
  order: RolloutOrder;
  /** what a failed health gate does to the rest of the rollout (default pause) */
  failureAction: FailureAction;
  /** a new container without a healthcheck must keep running this long to pass its gate (default 5s) */
  monitorMs: number;
  /** failed replicas tolerated, as a share of the service's replaced replicas, before failure_action applies (default 0) */
  maxFailureRatio: number;
}

/**
 * Service settings beyond the core: optional, and absent when not written, so
 * a file that does not use them hashes exactly as before they existed.
 */
export interface ServiceExtras {
  /** `container_name`: the container's name instead of project-environment-service-replica */
  containerName?: string;
  /** `expose`: `80/tcp`, sorted */
  expose?: string[];
  stopSignal?: string;
  stopGracePeriodMs?: number;
  init?: boolean;
  tty?: boolean;
  stdinOpen?: boolean;
  hostname?: string;
  domainname?: string;
  /** `mac_address`: the container's MAC address on the network it is created on (lower case, `:`) */
  macAddress?: string;
  /** `host:ip`, sorted */
  extraHosts?: string[];
  dns?: string[];
  dnsSearch?: string[];
  dnsOpt?: string[];
  /** keys sorted */
  ulimits?: Record<string, Ulimit>;
  logging?: Logging;
  platform?: string;
  /** `cpus` / deploy.resources.limits.cpus, in billionths of a CPU */
  nanoCpus?: number;
  /** bytes: mem_limit / deploy.resources.limits.memory */
  memLimit?: number;
  /** bytes: mem_reservation / deploy.resources.reservations.memory */
  memReservation?: number;
  /** bytes; -1 = unlimited swap */
  memswapLimit?: number;
  /** pids_limit / deploy.resources.limits.pids */
  pidsLimit?: number;
  shmSize?: number;
  readOnly?: boolean;
  /** mount point → tmpfs options (`size=16m,mode=1777`), keys sorted */
  tmpfs?: Record<string, string>;
  /** keys sorted */
  sysctls?: Record<string, string>;
  /** `security_opt` as written, sorted */
  securityOpt?: string[];
  /** on-failure:N */
  restartMaxRetries?: number;
  pullPolicy?: PullPolicy;
  /** `ipc`: private, shareable or host (host governed by the policy's allow_host_ipc) */
  ipcMode?: string;
  /** `cgroup`: private or host (host governed by the policy's allow_host_cgroupns) */
  cgroupnsMode?: string;
  /** `userns_mode`: host (governed by the policy's allow_host_userns) */
  usernsMode?: string;
  /** `cap_drop`, upper case without CAP_, sorted */
  capDrop?: string[];
  /** `device_cgroup_rules`, normalised (`c 189:* rmw`), sorted; governed by the policy's allow_devices */
  deviceCgroupRules?: string[];
  /** `group_add`: supplementary group names or ids, sorted */
  groupAdd?: string[];
  /** `cpu_shares`: relative CPU weight */
  cpuShares?: number;
  /** `cpuset`: the CPUs the container may run on, e.g. 0-3 */
  cpuset?: string;
  /** per network key, only for networks with options */
  networkOptions?: Record<string, ServiceNetwork>;
  /**
   * `deploy.update_config` (update) and `deploy.rollback_config` (rollback, used by `/rollback`).
   * Absent = compose's behaviour (every replica recreated at once, stop-first). Not part of the
   * config hash: changing how a service rolls out never recreates it.
   */
  rollout?: { update?: RolloutConfig; rollback?: RolloutConfig };
  /** deploy.resources.reservations.devices (GPUs and other devices through a device driver); governed by the policy's allow_devices */
  deviceRequests?: DeviceRequest[];
}

/** One `deploy.resources.reservations.devices` entry, as Docker's DeviceRequest takes it. */
export interface DeviceRequest {
  capabilities: string[];
  driver?: string;
  /** -1: all */
  count?: number;
  deviceIds?: string[];
  /** keys sorted */
  options?: Record<string, string>;
}

/**
 * A service after merge, interpolation and normalisation. Two compose files
 * that mean the same thing produce deep-equal ServiceSpecs (and so the same hash).
 */
export interface ServiceSpec extends ServiceExtras {
  name: string;
  /** fully qualified: docker.io/library/nginx:latest */
  image: string;
  command?: string[];
  entrypoint?: string[];
  /** keys sorted */
  environment: Record<string, string>;
  /**
   * Names written without a value (`environment: [DEBUG]`) that no variable sets, sorted: docker compose sends
   * them bare, which unsets the image's own value of that name (and an env_file's, an earlier file's).
   */
  unsetEnvironment?: string[];
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
  /** `service|container:NAME:ro|rw`, in compose order */
  volumesFrom?: string[];
  /** configs and secrets, sorted by target; absent when none (so older hashes hold) */
  files?: FileMount[];
}

export interface IpamPool {
  subnet?: string;
  ipRange?: string;
  gateway?: string;
  /** keys sorted */
  auxAddresses?: Record<string, string>;
}

export interface Ipam {
  driver?: string;
  config: IpamPool[];
  /** keys sorted */
  options?: Record<string, string>;
}

export interface NetworkSpec {
  /** compose key */
  name: string;
  driver: string;
  internal: boolean;
  attachable: boolean;
  labels: Record<string, string>;
  external: boolean;
  /** `name:` as written: the network's name in Docker, whether external (joined) or created by berth (dockerNameOf) */
  dockerName?: string;
  enableIpv6?: boolean;
  /** keys sorted */
  driverOpts?: Record<string, string>;
  ipam?: Ipam;
}

export interface VolumeSpec {
  /** compose key */
  name: string;
  driver: string;
  labels: Record<string, string>;
  external: boolean;
  /** `name:` as written: the volume's name in Docker, external or created by berth (see dockerNameOf) */
  dockerName?: string;
  /** keys sorted */
  driverOpts?: Record<string, string>;
}

/** Where a top-level network or volume was declared, so a plan-time refusal (external missing, name taken) is located. */
export interface DeclaredAt {
  file: string;
  line?: number;
  path?: string;
}

export interface DesiredService {
  spec: ServiceSpec;
  /** hash of everything in spec except replicas and pull_policy (neither recreates a container, as in compose) */
  configHash: string;
  /** where `image:` and `pull_policy:` were written, so a plan-time image refusal is located (not hashed) */
  at?: { image?: DeclaredAt; pullPolicy?: DeclaredAt };
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

export interface UnsetVariables {
  /** repository path of the compose, .env or env_file file */
  file: string;
  names: string[];
}

export interface DesiredState {
  project: string;
  environment: string;
  /** owner/name of the repository deploying it (the app); absent from the CLI, which manages the target directly */
  repository?: string;
  /** what the plan should tell the reader about the compose files (a build: berth skips, a project name it does not use) */
  notes?: string[];
  /**
   * Variables a plain `${VAR}` / `$VAR` used without a value, by file: each became "" (docker compose's rule,
   * with its warning); the plan warns so a value meant to be set is not silently blank. Not part of any hash.
   */
  unsetVariables?: UnsetVariables[];
  services: DesiredService[];
  networks: DesiredNetwork[];
  volumes: DesiredVolume[];
  /**
   * service → fields a secret variable fed (compose/taint.ts): shown only as a
   * mask, whatever parsing did to the value. Not part of any hash.
   */
  secretFields?: Record<string, string[]>;
  /** Docker names of berth objects of another project, environment or repository that `external: true` may use (policy.allow_shared_objects; absent = none) */
  sharedObjects?: string[];
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
  /** parsed io.berth.secret-fields label: the fields of `config` a secret fed */
  configSecretFields?: string[];
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
  /** its address pools as Docker reports them (absent: not read) */
  ipam?: Ipam;
  enableIpv6?: boolean;
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
  /** a service's container: its `container_name` when it has one (then it has one replica), else the canonical name */
  serviceContainer: (project: string, env: string, spec: { name: string; containerName?: string }, replica: number) =>
    spec.containerName ?? `${project}-${env}-${spec.name}-${replica}`,
  tmpContainer: (project: string, env: string, service: string, replica: number, hash: string) =>
    `${project}-${env}-${service}-${replica}_${hash.slice(0, 12)}`,
  /** where a recreate parks the old container until the new one runs under the canonical name */
  backupContainer: (project: string, env: string, service: string, replica: number) => `${project}-${env}-${service}-${replica}_old`,
  network: (project: string, env: string, network: string) => `${project}-${env}_${network}`,
  volume: (project: string, env: string, volume: string) => `${project}-${env}_${volume}`,
};

/** What an observer may be told besides (project, environment). */
export interface ObserveOptions {
  /** the repository planning: another repository's objects are left out */
  repository?: string;
  /** the desired state: its external and not-yet-labelled networks and volumes are looked up by name (to check and adopt them) */
  desired?: DesiredState;
}

/**
 * A desired network's or volume's name in Docker, compose's rule: `name:` when given, else for an external
 * object its key, for one berth creates `<project>-<env>_<key>` (so two environments of one project on one
 * engine never share one by accident; a `name:` that another environment already uses is refused at plan time).
 */
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
