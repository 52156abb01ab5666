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
}

export interface NetworkSpec {
  /** compose key */
  name: string;
  driver: string;
  internal: boolean;
  attachable: boolean;
  labels: Record<string, string>;
  external: boolean;
}

export interface VolumeSpec {
  /** compose key */
  name: string;
  driver: string;
  labels: Record<string, string>;
  external: boolean;
}

export interface DesiredService {
  spec: ServiceSpec;
  /** hash of everything in spec except replicas (scaling never recreates) */
  configHash: string;
}

export interface DesiredNetwork {
  spec: NetworkSpec;
  configHash: string;
}

export interface DesiredVolume {
  spec: VolumeSpec;
  configHash: string;
}

export interface DesiredState {
  project: string;
  environment: string;
  services: DesiredService[];
  networks: DesiredNetwork[];
  volumes: DesiredVolume[];
  /**
   * service → fields a secret variable fed (compose/taint.ts): shown only as a
   * mask, whatever parsing did to the value. Not part of any hash.
   */
  secretFields?: Record<string, string[]>;
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

export interface ObservedState {
  project: string;
  environment: string;
  containers: ObservedContainer[];
  networks: ObservedNetwork[];
  volumes: ObservedVolume[];
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
