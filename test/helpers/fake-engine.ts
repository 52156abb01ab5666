// An in-memory Docker host behind the Engine port: keeps containers, networks
// and volumes like the engine would, records every call with start/end times
// (for parallelism assertions and the critical-path bench) and can be told to
// fail or slow down particular calls.
import type { ContainerIdentity, ContainerProbe, EndpointSettings, Engine, HealthProbe } from '../../src/apply/engine.js';
import { EngineError } from '../../src/apply/engine.js';
import { LABEL } from '../../src/model/model.js';
import type { NetworkSpec, ObservedState, ServiceSpec, VolumeSpec } from '../../src/model/model.js';

export interface CallRecord {
  method: string;
  subject: string;
  start: number;
  end: number;
}

interface FakeContainer {
  id: string;
  name: string;
  running: boolean;
  labels: Record<string, string>;
  networks: Set<string>;
  healthy: HealthProbe['status'];
  /** set by startContainer, like Docker's State.StartedAt */
  startedAt?: number;
}

export interface FakeEngineOptions {
  /** ms every call takes (default 0) */
  delayMs?: number;
  /** throw this message for calls whose `method subject` matches */
  failures?: { match: RegExp; message: string }[];
  /** the API version the engine reports (default 1.41, Debian's 20.10 engine) */
  apiVersion?: string;
  /** health status reported for containers whose name matches */
  health?: { match: RegExp; status: HealthProbe['status']; lastLog?: string }[];
}

export class FakeEngine implements Engine {
  readonly calls: CallRecord[] = [];
  readonly containers = new Map<string, FakeContainer>();
  readonly networks = new Map<string, { id: string; name: string; labels: Record<string, string> }>();
  readonly volumes = new Set<string>();
  private seq = 0;
  private readonly t0 = performance.now();
  /** highest number of calls in progress at once */
  maxConcurrent = 0;
  private current = 0;

  constructor(readonly opts: FakeEngineOptions = {}) {}

  private async op<T>(method: string, subject: string, fn: () => T): Promise<T> {
    const start = performance.now() - this.t0;
    this.current++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.current);
    try {
      if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
      const fail = this.opts.failures?.find((f) => f.match.test(`${method} ${subject}`));
      if (fail) throw new EngineError(`${method} ${subject}: ${fail.message}`);
      return fn();
    } finally {
      this.current--;
      this.calls.push({ method, subject, start, end: performance.now() - this.t0 });
    }
  }

  /** Containers by name, kept with `containers` by every call that adds, renames or removes one (Docker finds a name without a scan; a 200-service bench would otherwise charge this fake's 200 × 200 lookups a wave to the executor it measures). */
  private readonly byName = new Map<string, FakeContainer>();

  private find(idOrName: string): FakeContainer | undefined {
    return this.containers.get(idOrName) ?? this.byName.get(idOrName);
  }

  private must(idOrName: string): FakeContainer {
    const c = this.find(idOrName);
    if (!c) throw new EngineError(`No such container: ${idOrName}`, 404);
    return c;
  }

  ensureImage(image: string) {
    return this.op('ensureImage', image, () => undefined);
  }

  createNetwork(dockerName: string, _spec: NetworkSpec, labels: Record<string, string>) {
    return this.op('createNetwork', dockerName, () => {
      if (this.networks.has(dockerName)) throw new EngineError(`network with name ${dockerName} already exists`, 409);
      const id = `net${++this.seq}`;
      this.networks.set(dockerName, { id, name: dockerName, labels });
      return id;
    });
  }

  removeNetwork(idOrName: string) {
    return this.op('removeNetwork', idOrName, () => {
      for (const [k, n] of this.networks) if (n.id === idOrName || n.name === idOrName) return void this.networks.delete(k);
      throw new EngineError(`network ${idOrName} not found`, 404);
    });
  }

  connectNetwork(net: string, container: string, _endpoint: EndpointSettings) {
    return this.op('connectNetwork', `${container} ${net}`, () => void this.must(container).networks.add(net));
  }

  disconnectNetwork(net: string, container: string) {
    return this.op('disconnectNetwork', `${container} ${net}`, () => void this.must(container).networks.delete(net));
  }

  createVolume(dockerName: string, _spec: VolumeSpec, _labels: Record<string, string>) {
    return this.op('createVolume', dockerName, () => void this.volumes.add(dockerName));
  }

  createContainer(name: string, spec: ServiceSpec, who: ContainerIdentity, firstNetwork?: string) {
    return this.op('createContainer', name, () => {
      if (this.find(name)) throw new EngineError(`Conflict. The container name "/${name}" is already in use`, 409);
      const id = `ctr${++this.seq}`;
      const health = this.opts.health?.find((h) => h.match.test(name));
      const c: FakeContainer = {
        id,
        name,
        running: false,
        labels: {
          ...spec.labels,
          [LABEL.project]: who.project,
          [LABEL.environment]: who.environment,
          [LABEL.service]: spec.name,
          [LABEL.replica]: String(who.replica),
          [LABEL.configHash]: who.configHash,
          [LABEL.applyId]: who.applyId,
        },
        networks: new Set(firstNetwork ? [`${who.project}-${who.environment}_${firstNetwork}`] : []),
        healthy: health?.status ?? (spec.healthcheck ? 'healthy' : 'none'),
      };
      this.containers.set(id, c);
      this.byName.set(name, c);
      return id;
    });
  }

  startContainer(idOrName: string) {
    return this.op('startContainer', idOrName, () => {
      const c = this.must(idOrName);
      c.running = true;
      c.startedAt = Date.now();
    });
  }

  /** files put into containers, by container id */
  readonly files = new Map<string, { path: string; content: string | Uint8Array; mode: number; uid: number; gid: number }[]>();

  putFiles(idOrName: string, files: { path: string; content: string | Uint8Array; mode: number; uid: number; gid: number }[]) {
    return this.op('putFiles', idOrName, () => void this.files.set(this.must(idOrName).id, files));
  }

  unpauseContainer(idOrName: string) {
    return this.op('unpauseContainer', idOrName, () => void (this.must(idOrName).running = true));
  }

  stopContainer(idOrName: string) {
    return this.op('stopContainer', idOrName, () => void (this.must(idOrName).running = false));
  }

  removeContainer(idOrName: string) {
    return this.op('removeContainer', idOrName, () => {
      const c = this.must(idOrName);
      this.containers.delete(c.id);
      this.byName.delete(c.name);
    });
  }

  renameContainer(idOrName: string, newName: string) {
    return this.op('renameContainer', `${idOrName} ${newName}`, () => {
      if (this.find(newName)) throw new EngineError(`Conflict. The container name "/${newName}" is already in use`, 409);
      const c = this.must(idOrName);
      this.byName.delete(c.name);
      c.name = newName;
      this.byName.set(newName, c);
    });
  }

  health(idOrName: string) {
    return this.op('health', idOrName, (): HealthProbe => {
      const c = this.must(idOrName);
      const h = this.opts.health?.find((x) => x.match.test(c.name));
      return { running: c.running, status: c.healthy, ...(h?.lastLog ? { lastLog: h.lastLog } : {}) };
    });
  }

  async findContainer(idOrName: string): Promise<ContainerProbe | undefined> {
    const c = this.find(idOrName);
    return c && { id: c.id, name: c.name, running: c.running, labels: c.labels, networks: [...c.networks], ...(c.startedAt !== undefined ? { startedAt: c.startedAt } : {}) };
  }

  async findNetwork(idOrName: string) {
    return [...this.networks.values()].find((n) => n.id === idOrName || n.name === idOrName);
  }

  async findVolume(name: string) {
    return this.volumes.has(name) ? { name } : undefined;
  }

  /** Mutating calls only (what must never happen twice). */
  mutations(): CallRecord[] {
    return this.calls.filter((c) => c.method !== 'health' && c.method !== 'ensureImage');
  }

  /** The fake has no filesystem: a bind source leads where it says. */
  apiVersion(): Promise<string> {
    return this.op('apiVersion', '', () => this.opts.apiVersion ?? '1.41');
  }

  async resolveBindSource(_image: string, _dir: string, source: string): Promise<string> {
    return this.op('resolveBindSource', source, () => source);
  }
}

/**
 * What observe() would read of a project on this in-memory host (only what the planner needs). The fake
 * keeps no image reference per container nor network/volume config hashes: the caller says what they are.
 */
export function observeFake(e: FakeEngine, project: string, environment: string, o: { imageOf: (configHash: string) => string; hashOf?: (dockerName: string) => string }): ObservedState {
  const prefix = `${project}-${environment}_`;
  return {
    project,
    environment,
    containers: [...e.containers.values()]
      .filter((c) => c.labels[LABEL.project] === project && c.labels[LABEL.environment] === environment)
      .map((c) => ({
        id: c.id,
        name: c.name,
        service: c.labels[LABEL.service]!,
        replica: Number(c.labels[LABEL.replica]),
        configHash: c.labels[LABEL.configHash]!,
        image: o.imageOf(c.labels[LABEL.configHash]!),
        state: c.running ? ('running' as const) : ('exited' as const),
        networks: [...c.networks].map((n) => n.slice(prefix.length)),
        ...(c.labels[LABEL.applyId] ? { applyId: c.labels[LABEL.applyId] } : {}),
      })),
    networks: [...e.networks.values()].filter((n) => n.name.startsWith(prefix)).map((n) => ({ id: n.id, dockerName: n.name, name: n.name.slice(prefix.length), configHash: o.hashOf?.(n.name) ?? '' })),
    volumes: [...e.volumes].filter((v) => v.startsWith(prefix)).map((v) => ({ dockerName: v, name: v.slice(prefix.length), configHash: o.hashOf?.(v) ?? '' })),
  };
}
