// The executor's view of a Docker host: one method per plan-node kind plus the
// read-only probes crash recovery needs. Owned here so tests swap in a fake
// engine without mocking dockerode.
import type { NetworkSpec, ServiceSpec, VolumeSpec } from './model.js';

export interface ContainerIdentity {
  project: string;
  environment: string;
  replica: number;
  configHash: string;
  applyId: string;
}

/** What a create needs besides the service: where names differ from berth's defaults, and what a recreate carries over. */
export interface CreateExtras {
  /** compose key → Docker name, for networks and volumes not named `<project>-<env>_<key>` (external, `name:`) */
  networkNames?: Record<string, string>;
  volumeNames?: Record<string, string>;
  /** anonymous volumes of the container being replaced, mounted again at the same paths (compose keeps their data) */
  inheritVolumes?: { name: string; target: string }[];
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
}

export interface HealthProbe {
  running: boolean;
  status: 'healthy' | 'unhealthy' | 'starting' | 'none';
  /** the newest health-check output, for error messages */
  lastLog?: string;
  exitCode?: number;
}

export interface Engine {
  ensureImage(image: string): Promise<void>;
  createNetwork(dockerName: string, spec: NetworkSpec, labels: Record<string, string>): Promise<string>;
  removeNetwork(idOrName: string): Promise<void>;
  connectNetwork(networkDockerName: string, container: string, aliases: string[]): Promise<void>;
  disconnectNetwork(networkDockerName: string, container: string): Promise<void>;
  createVolume(dockerName: string, spec: VolumeSpec, labels: Record<string, string>): Promise<void>;
  /** returns the new container id */
  createContainer(name: string, spec: ServiceSpec, who: ContainerIdentity, firstNetwork?: string, extras?: CreateExtras): Promise<string>;
  /** puts files into a (created, not yet started) container; Docker creates missing directories */
  putFiles(idOrName: string, files: { path: string; content: string; mode: number; uid: number; gid: number }[]): Promise<void>;
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
