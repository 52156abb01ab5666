// The executor's view of a Docker host: one method per plan-node kind plus the
// read-only probes crash recovery needs. Owned here so tests swap in a fake
// engine without mocking dockerode.
import type { NetworkSpec, ServiceSpec, VolumeSpec } from '../model/model.js';
import type { ContainerNames } from '../compose/joins.js';

export interface ContainerIdentity {
  project: string;
  environment: string;
  replica: number;
  configHash: string;
  applyId: string;
  /** owner/name, labelled on the container when known */
  repository?: string;
  /** the spec for the io.berth.config label when it differs from the one created: as planned, with secret placeholders, never values (issue 18) */
  configSpec?: ServiceSpec;
  /** the fields of the spec a secret fed, for the io.berth.secret-fields label (absent or empty: none) */
  secretFields?: readonly string[];
}

/** What a create needs besides the service: where names differ from berth's defaults, and what a recreate carries over. */
export interface CreateExtras {
  /** compose key → Docker name, for networks and volumes not named `<project>-<env>_<key>` (external, `name:`) */
  networkNames?: Record<string, string>;
  volumeNames?: Record<string, string>;
  /** services of the project that set container_name: a `service:` join of theirs names that container */
  containerNames?: ContainerNames;
  /** anonymous volumes of the container being replaced, mounted again at the same paths (compose keeps their data) */
  inheritVolumes?: { name: string; target: string }[];
  /** start-first: joined without the service's aliases (out of its DNS name) until it passed its gate */
  outsideDns?: boolean;
}

/** What Docker calls an endpoint's settings: the part of them a compose file sets. */
export interface EndpointSettings {
  Aliases: string[];
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] };
  DriverOpts?: Record<string, string>;
  MacAddress?: string;
}

export interface ContainerProbe {
  id: string;
  name: string;
  running: boolean;
  paused?: boolean;
  /** set once the container has run and exited */
  exitCode?: number;
  labels: Record<string, string>;
  /** docker network names */
  networks: string[];
  /** what the container reaches on the host (for the pre-create guard of a container joining it) */
  access?: {
    networkMode: string;
    pidMode: string;
    binds: { source: string; readOnly: boolean }[];
  };
  /**
   * When the container last started (ms since the epoch, engine clock);
   * undefined when it never started (Docker's zero time). Tells a one-shot
   * container that started and exited from one that never started.
   */
  startedAt?: number;
}

export interface HealthProbe {
  running: boolean;
  status: 'healthy' | 'unhealthy' | 'starting' | 'none';
  /** the newest health-check output, for error messages */
  lastLog?: string;
  exitCode?: number;
}

export interface Engine {
  /**
   * makes the image present; with `pull: false` (pull_policy: never) a missing image is an error instead of a pull;
   * with `always` (pull_policy: always) it is pulled even when present; with `platform` (a service's `platform:`)
   * the image of that platform is pulled, and one present for another platform does not count as present
   */
  ensureImage(image: string, opts?: { pull?: boolean; always?: boolean; platform?: string }): Promise<void>;
  createNetwork(dockerName: string, spec: NetworkSpec, labels: Record<string, string>): Promise<string>;
  removeNetwork(idOrName: string): Promise<void>;
  /** joins the network with these endpoint settings (aliases, addresses, driver options, MAC address) */
  connectNetwork(networkDockerName: string, container: string, endpoint: EndpointSettings): Promise<void>;
  disconnectNetwork(networkDockerName: string, container: string): Promise<void>;
  createVolume(dockerName: string, spec: VolumeSpec, labels: Record<string, string>): Promise<void>;
  /** returns the new container id */
  createContainer(name: string, spec: ServiceSpec, who: ContainerIdentity, firstNetwork?: string, extras?: CreateExtras): Promise<string>;
  /** puts files into a (created, not yet started) container; Docker creates missing directories */
  putFiles(idOrName: string, files: { path: string; content: string | Uint8Array; mode: number; uid: number; gid: number }[]): Promise<void>;
  startContainer(idOrName: string): Promise<void>;
  unpauseContainer(idOrName: string): Promise<void>;
  stopContainer(idOrName: string, timeoutSeconds?: number): Promise<void>;
  removeContainer(idOrName: string): Promise<void>;
  renameContainer(idOrName: string, newName: string): Promise<void>;
  health(idOrName: string): Promise<HealthProbe>;
  // Probes for crash recovery: undefined means "does not exist".
  findContainer(idOrName: string): Promise<ContainerProbe | undefined>;
  findNetwork(idOrName: string): Promise<{ id: string; name: string; labels: Record<string, string> } | undefined>;
  findVolume(name: string): Promise<{ name: string } | undefined>;
  /**
   * Where a bind source under an allow-listed directory leads on the target,
   * symlinks followed as Docker would follow them; stops at the first step
   * that leaves `dir`. `image` is present on the target (EnsureImage ran).
   */
  resolveBindSource(image: string, dir: string, source: string): Promise<string>;
  /** the engine's API version (`1.41`): what a setting newer engines alone honour is checked against */
  apiVersion(): Promise<string>;
}

/** A Docker error as berth reports it: the engine's own message, not a stack trace. */
export class EngineError extends Error {
  constructor(
    message: string,
    readonly statusCode?: number,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}
