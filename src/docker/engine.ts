// The Engine port on a real Docker host, through dockerode. Every Docker
// error surfaces as an EngineError carrying the engine's own message.
import { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import type { ContainerIdentity, ContainerProbe, CreateExtras, Engine, HealthProbe } from '../engine.js';
import { EngineError } from '../engine.js';
import type { NetworkSpec, ServiceSpec, VolumeSpec } from '../model.js';
import { containerCreateOptions } from './spec.js';
import { tarOf } from './tar.js';

interface DockerApiError {
  statusCode?: number;
  json?: { message?: string };
  reason?: string;
  message?: string;
}

/** A Docker error as berth reports it: what was being done, then the engine's own message. */
export function engineError(what: string, err: unknown): EngineError {
  const e = err as DockerApiError;
  const msg = e?.json?.message ?? e?.message ?? String(err);
  return new EngineError(`${what}: ${msg.replace(/^\(HTTP code \d+\) [^-]*- /, '').trim()}`, e?.statusCode);
}

export async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw engineError(what, err);
  }
}

const notFound = (err: unknown) => (err as DockerApiError)?.statusCode === 404;

export class DockerEngine implements Engine {
  constructor(private readonly docker: Dockerode) {}

  async ensureImage(image: string): Promise<void> {
    try {
      await this.docker.getImage(image).inspect();
      return;
    } catch (err) {
      if (!notFound(err)) throw engineError(`inspect image ${image}`, err);
    }
    // Not present locally: pull, and follow the stream so failures mid-pull are reported.
    await call(`pull image ${image}`, async () => {
      const stream = await this.docker.pull(image);
      await new Promise<void>((resolve, reject) =>
        this.docker.modem.followProgress(stream, (err: Error | null, out: { error?: string }[]) => {
          const failed = out?.find((o) => o.error);
          if (err) reject(err);
          else if (failed) reject(new Error(failed.error));
          else resolve();
        }),
      );
    });
  }

  async createNetwork(dockerName: string, spec: NetworkSpec, labels: Record<string, string>): Promise<string> {
    const net = await call(`create network ${dockerName}`, () =>
      this.docker.createNetwork({ Name: dockerName, Driver: spec.driver, Internal: spec.internal, Attachable: spec.attachable, Labels: { ...spec.labels, ...labels }, CheckDuplicate: true }),
    );
    return net.id;
  }

  async removeNetwork(idOrName: string): Promise<void> {
    await call(`remove network ${idOrName}`, () => this.docker.getNetwork(idOrName).remove());
  }

  async connectNetwork(networkDockerName: string, container: string, aliases: string[]): Promise<void> {
    await call(`connect ${container} to ${networkDockerName}`, () =>
      this.docker.getNetwork(networkDockerName).connect({ Container: container, EndpointConfig: { Aliases: aliases } }),
    );
  }

  async disconnectNetwork(networkDockerName: string, container: string): Promise<void> {
    await call(`disconnect ${container} from ${networkDockerName}`, () => this.docker.getNetwork(networkDockerName).disconnect({ Container: container, Force: true }));
  }

  async createVolume(dockerName: string, spec: VolumeSpec, labels: Record<string, string>): Promise<void> {
    await call(`create volume ${dockerName}`, () => this.docker.createVolume({ Name: dockerName, Driver: spec.driver, Labels: { ...spec.labels, ...labels } }));
  }

  async createContainer(name: string, spec: ServiceSpec, who: ContainerIdentity, firstNetwork?: string, extras?: CreateExtras): Promise<string> {
    const c = await call(`create container ${name}`, () => this.docker.createContainer(containerCreateOptions(name, spec, who, firstNetwork, extras)));
    return c.id;
  }

  async startContainer(idOrName: string): Promise<void> {
    try {
      await this.docker.getContainer(idOrName).start();
    } catch (err) {
      // 304: already started, which is the state we wanted.
      if ((err as DockerApiError)?.statusCode !== 304) throw engineError(`start container ${idOrName}`, err);
    }
  }

  async putFiles(idOrName: string, files: { path: string; content: string; mode: number; uid: number; gid: number }[]): Promise<void> {
    const tar = tarOf(files.map((f) => ({ ...f, content: Buffer.from(f.content, 'utf8') })));
    // Paths are named, never contents: the content may be a secret.
    await call(`put ${files.map((f) => f.path).join(', ')} into ${idOrName}`, () => this.docker.getContainer(idOrName).putArchive(Readable.from([tar]), { path: '/' }));
  }

  async unpauseContainer(idOrName: string): Promise<void> {
    await call(`unpause container ${idOrName}`, () => this.docker.getContainer(idOrName).unpause());
  }

  async stopContainer(idOrName: string, timeoutSeconds = 10): Promise<void> {
    try {
      await this.docker.getContainer(idOrName).stop({ t: timeoutSeconds });
    } catch (err) {
      if ((err as DockerApiError)?.statusCode !== 304) throw engineError(`stop container ${idOrName}`, err);
    }
  }

  async removeContainer(idOrName: string): Promise<void> {
    await call(`remove container ${idOrName}`, () => this.docker.getContainer(idOrName).remove({ force: true, v: false }));
  }

  async renameContainer(idOrName: string, newName: string): Promise<void> {
    await call(`rename container ${idOrName} to ${newName}`, () => this.docker.getContainer(idOrName).rename({ name: newName }));
  }

  async health(idOrName: string): Promise<HealthProbe> {
    const info = await call(`inspect container ${idOrName}`, () => this.docker.getContainer(idOrName).inspect());
    const h = (info.State as { Health?: { Status: string; Log?: { Output: string; ExitCode: number }[] } }).Health;
    const last = h?.Log?.[h.Log.length - 1];
    return {
      running: info.State.Running,
      status: (h?.Status as HealthProbe['status']) ?? 'none',
      ...(last ? { lastLog: last.Output.trim(), exitCode: last.ExitCode } : {}),
    };
  }

  async findContainer(idOrName: string): Promise<ContainerProbe | undefined> {
    try {
      const info = await this.docker.getContainer(idOrName).inspect();
      return {
        id: info.Id,
        name: info.Name.replace(/^\//, ''),
        running: info.State.Running,
        ...(info.State.Paused ? { paused: true } : {}),
        // Docker reports exit code 0 for a container that never ran: only a finished run has one.
        ...(!info.State.Running && info.State.FinishedAt && !info.State.FinishedAt.startsWith('0001-') ? { exitCode: info.State.ExitCode } : {}),
        labels: info.Config.Labels ?? {},
        networks: Object.keys(info.NetworkSettings.Networks ?? {}),
      };
    } catch (err) {
      if (notFound(err)) return undefined;
      throw engineError(`inspect container ${idOrName}`, err);
    }
  }

  async findNetwork(idOrName: string): Promise<{ id: string; name: string; labels: Record<string, string> } | undefined> {
    try {
      const info = await this.docker.getNetwork(idOrName).inspect();
      return { id: info.Id, name: info.Name, labels: info.Labels ?? {} };
    } catch (err) {
      if (notFound(err)) return undefined;
      throw engineError(`inspect network ${idOrName}`, err);
    }
  }

  async findVolume(name: string): Promise<{ name: string } | undefined> {
    try {
      const info = await this.docker.getVolume(name).inspect();
      return { name: info.Name };
    } catch (err) {
      if (notFound(err)) return undefined;
      throw engineError(`inspect volume ${name}`, err);
    }
  }
}
