// The Engine port on a real Docker host, through dockerode. Every Docker
// error surfaces as an EngineError carrying the engine's own message.
import { Readable } from 'node:stream';
import type Dockerode from 'dockerode';
import type { ContainerIdentity, ContainerProbe, CreateExtras, EndpointSettings, Engine, HealthProbe } from '../apply/engine.js';
import { EngineError } from '../apply/engine.js';
import type { NetworkSpec, ServiceSpec, VolumeSpec } from '../model/model.js';
import { containerCreateOptions } from './create-options.js';
import type { RegistryCredentials } from './registry-auth.js';
import { registryOf } from './registry-auth.js';
import { linkOfArchive, tarOf } from './tar.js';
import { resolveUnder } from './host-path.js';

/** Marks berth's throwaway probe containers (never started, removed at once; a crash may leave one behind). */
export const PROBE_LABEL = 'io.berth.probe';

/** Go's os.ModeSymlink, in the mode the engine's path stat reports. */
const GO_MODE_SYMLINK = 2 ** 27;
/** The most an archive of one symbolic link takes (its header, a PAX header with a long text, the end blocks). */
const MAX_LINK_ARCHIVE = 64 * 1024;

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

/** Architecture names as Docker normalises them (containerd's platforms package): x86_64 is amd64, aarch64 arm64. */
const ARCH: Record<string, string> = { x86_64: 'amd64', 'x86-64': 'amd64', aarch64: 'arm64', armhf: 'arm', armel: 'arm' };

/** Whether an image inspected on the engine is of `platform` (os/arch[/variant], as compose writes it; a variant left out matches any). */
function samePlatform(platform: string, image: { Os?: string; Architecture?: string; Variant?: string }): boolean {
  const [os, arch, variant] = platform.toLowerCase().split('/');
  const norm = (a: string | undefined) => (a ? (ARCH[a] ?? a) : a);
  return os === image.Os?.toLowerCase() && (arch === undefined || norm(arch) === norm(image.Architecture?.toLowerCase())) && (variant === undefined || variant === image.Variant?.toLowerCase());
}

/** Docker reports a container that never started with the zero time `0001-01-01T00:00:00Z`. */
function startedAt(raw: string | undefined): { startedAt?: number } {
  const ms = raw ? Date.parse(raw) : NaN;
  return Number.isFinite(ms) && ms > 0 ? { startedAt: ms } : {};
}

export class DockerEngine implements Engine {
  /** `credentials`: the server-side registry logins this target pulls with (registry-auth.ts). */
  constructor(
    private readonly docker: Dockerode,
    private readonly credentials?: RegistryCredentials,
  ) {}

  private api: Promise<string> | undefined;

  apiVersion(): Promise<string> {
    // Asked once per engine; a failed answer is asked again next time.
    this.api ??= call('read the engine version', async () => {
      const v = (await this.docker.version()) as { ApiVersion?: string };
      if (!v.ApiVersion) throw new Error('the engine did not say which API version it speaks');
      return v.ApiVersion;
    }).catch((err: unknown) => {
      this.api = undefined;
      throw err;
    });
    return this.api;
  }

  async ensureImage(image: string, opts: { pull?: boolean; always?: boolean; platform?: string } = {}): Promise<void> {
    const platform = opts.platform ? ` for platform ${opts.platform}` : '';
    if (!opts.always || opts.pull === false) {
      try {
        const found = await this.docker.getImage(image).inspect();
        // A service's platform: the container is created for that platform, and Docker refuses an image of
        // another one ("does not match the specified platform"); docker compose pulls the service's platform.
        if (!opts.platform || samePlatform(opts.platform, found)) return;
        if (opts.pull === false) throw new EngineError(`image ${image} is on the engine for ${[found.Os, found.Architecture, found.Variant].filter(Boolean).join('/')}, not for platform ${opts.platform}, and pull_policy: never forbids pulling it: pull it for that platform on the host first, or change pull_policy`, 404);
      } catch (err) {
        if (err instanceof EngineError) throw err;
        if (!notFound(err)) throw engineError(`inspect image ${image}`, err);
      }
    }
    if (opts.pull === false) throw new EngineError(`image ${image} is not on the engine${platform} and pull_policy: never forbids pulling it: load or pull it on the host first, or change pull_policy`, 404);
    // Not present locally (or pull_policy: always): pull, and follow the stream so failures mid-pull are reported.
    const authconfig = this.credentials?.authFor(image);
    await call(`pull image ${image}${platform}`, async () => {
      const stream = await this.docker.pull(image, { ...(authconfig ? { authconfig } : {}), ...(opts.platform ? { platform: opts.platform } : {}) });
      await new Promise<void>((resolve, reject) =>
        this.docker.modem.followProgress(stream, (err: Error | null, out: { error?: string }[]) => {
          const failed = out?.find((o) => o.error);
          if (err) reject(err);
          else if (failed) reject(new Error(failed.error));
          else resolve();
        }),
      );
    }).catch((err: EngineError) => {
      // Which login was (or was not) sent, and where to fix it.
      // Always said: an engine can mask a 401 (e.g. its plain-HTTP fallback for 127.0.0.0/8 registries).
      if (!this.credentials) throw err;
      const registry = registryOf(image);
      const how = authconfig ? `with the login for ${registry} from ${this.credentials.source}` : `without credentials: ${this.credentials.source} has no login for ${registry}`;
      throw new EngineError(`${err.message} (registry ${registry}, image ${image}, pulled ${how}; set ${this.credentials.setting} to a config.json with a working login for ${registry})`, err.statusCode);
    });
  }

  async createNetwork(dockerName: string, spec: NetworkSpec, labels: Record<string, string>): Promise<string> {
    const net = await call(`create network ${dockerName}`, () =>
      this.docker.createNetwork({
        Name: dockerName,
        Driver: spec.driver,
        Internal: spec.internal,
        Attachable: spec.attachable,
        Labels: { ...spec.labels, ...labels },
        CheckDuplicate: true,
        ...(spec.enableIpv6 ? { EnableIPv6: true } : {}),
        ...(spec.driverOpts ? { Options: spec.driverOpts } : {}),
        ...(spec.ipam
          ? {
              IPAM: {
                Driver: spec.ipam.driver ?? 'default',
                Config: spec.ipam.config.map((c) => ({ ...(c.subnet ? { Subnet: c.subnet } : {}), ...(c.ipRange ? { IPRange: c.ipRange } : {}), ...(c.gateway ? { Gateway: c.gateway } : {}), ...(c.auxAddresses ? { AuxiliaryAddresses: c.auxAddresses } : {}) })),
                ...(spec.ipam.options ? { Options: spec.ipam.options } : {}),
              },
            }
          : {}),
      }),
    );
    return net.id;
  }

  async removeNetwork(idOrName: string): Promise<void> {
    await call(`remove network ${idOrName}`, () => this.docker.getNetwork(idOrName).remove());
  }

  async connectNetwork(networkDockerName: string, container: string, endpoint: EndpointSettings): Promise<void> {
    await call(`connect ${container} to ${networkDockerName}`, () => this.docker.getNetwork(networkDockerName).connect({ Container: container, EndpointConfig: endpoint }));
  }

  async disconnectNetwork(networkDockerName: string, container: string): Promise<void> {
    await call(`disconnect ${container} from ${networkDockerName}`, () => this.docker.getNetwork(networkDockerName).disconnect({ Container: container, Force: true }));
  }

  async createVolume(dockerName: string, spec: VolumeSpec, labels: Record<string, string>): Promise<void> {
    await call(`create volume ${dockerName}`, () => this.docker.createVolume({ Name: dockerName, Driver: spec.driver, Labels: { ...spec.labels, ...labels }, ...(spec.driverOpts ? { DriverOpts: spec.driverOpts } : {}) }));
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

  async putFiles(idOrName: string, files: { path: string; content: string | Uint8Array; mode: number; uid: number; gid: number }[]): Promise<void> {
    const tar = tarOf(files.map((f) => ({ ...f, content: typeof f.content === 'string' ? Buffer.from(f.content, 'utf8') : Buffer.from(f.content) })));
    // Paths are named, never contents: the content may be a secret.
    await call(`put ${files.map((f) => f.path).join(', ')} into ${idOrName}`, () => this.docker.getContainer(idOrName).putArchive(Readable.from([tar]), { path: '/' }));
  }

  async unpauseContainer(idOrName: string): Promise<void> {
    await call(`unpause container ${idOrName}`, () => this.docker.getContainer(idOrName).unpause());
  }

  /** Without `timeoutSeconds` the container's own grace period applies (its StopTimeout, from stop_grace_period; Docker's 10 s otherwise). */
  async stopContainer(idOrName: string, timeoutSeconds?: number): Promise<void> {
    try {
      await this.docker.getContainer(idOrName).stop(timeoutSeconds !== undefined ? { t: timeoutSeconds } : {});
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
        access: {
          networkMode: info.HostConfig?.NetworkMode ?? '',
          pidMode: info.HostConfig?.PidMode ?? '',
          binds: (info.Mounts ?? []).filter((m) => m.Type === 'bind').map((m) => ({ source: m.Source, readOnly: !m.RW })),
        },
        ...startedAt(info.State.StartedAt),
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

  /**
   * Walks `source` one component at a time inside a throwaway container that
   * is never started: `dir` bind-mounted read-only at the same path, so a
   * path inside it names there what it names on the host. Each link is
   * followed from its own text as the host follows it (host-path.ts); the
   * first path outside `dir` is returned (beyond it the container's view is
   * its image, not the host).
   */
  async resolveBindSource(image: string, dir: string, source: string): Promise<string> {
    if (dir === '/') return source; // everything is inside; nothing to follow out of
    const probe = await call(`create probe container for ${dir}`, () =>
      this.docker.createContainer({
        Image: image,
        Entrypoint: ['/berth-probe-never-started'],
        Cmd: [],
        Labels: { [PROBE_LABEL]: 'bind-source' },
        HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'bind', Source: dir, Target: dir, ReadOnly: true }] },
      }),
    );
    try {
      return await resolveUnder(dir, source, async (path) => {
        const stat = await this.statPath(probe.id, path);
        if (!stat) return { kind: 'absent' };
        if (!(stat.mode & GO_MODE_SYMLINK) && !stat.linkTarget) return { kind: 'other' };
        return { kind: 'link', text: await this.readLink(probe.id, path) };
      });
    } catch (err) {
      if (err instanceof EngineError) throw err;
      throw new EngineError(`resolve bind source ${source} on the target: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      await probe.remove({ force: true }).catch(() => {});
    }
  }

  /**
   * HEAD /containers/{id}/archive: the path's stat (mode, fully evaluated link target); undefined when absent.
   * The link target is evaluated inside the container's root filesystem, so it says only that the path is a link.
   */
  private async statPath(id: string, path: string): Promise<{ mode: number; linkTarget: string } | undefined> {
    try {
      const res = await new Promise<{ headers: Record<string, string | undefined>; resume?: () => void }>((resolve, reject) =>
        this.docker.modem.dial(
          { path: `/containers/${id}/archive?`, method: 'HEAD', options: { path }, isStream: true, statusCodes: { 200: true, 400: 'bad parameter', 404: 'no such file or container', 500: 'server error' } },
          (err: unknown, r: unknown) => (err ? reject(err) : resolve(r as { headers: Record<string, string | undefined> })),
        ),
      );
      res.resume?.();
      const header = res.headers['x-docker-container-path-stat'];
      if (!header) throw new EngineError(`stat ${path}: the engine sent no path stat`);
      const stat = JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as { mode: number; linkTarget?: string };
      return { mode: stat.mode, linkTarget: stat.linkTarget ?? '' };
    } catch (err) {
      if (notFound(err)) return undefined;
      if (err instanceof EngineError) throw err;
      throw engineError(`stat ${path} on the target`, err);
    }
  }

  /** GET /containers/{id}/archive of a symbolic link: the engine archives the link itself, whose header holds its text. */
  private async readLink(id: string, path: string): Promise<string> {
    const stream = await call(`read link ${path} on the target`, () => this.docker.getContainer(id).getArchive({ path }));
    const chunks: Buffer[] = [];
    let size = 0;
    // A link's archive is a header or two (a PAX one for a long text); more means it is not one.
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size > MAX_LINK_ARCHIVE) break;
    }
    (stream as { destroy?: () => void }).destroy?.();
    const text = size > MAX_LINK_ARCHIVE ? undefined : linkOfArchive(Buffer.concat(chunks));
    if (text === undefined) throw new EngineError(`read link ${path} on the target: the engine sent no symbolic link (did it change?)`);
    return text;
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
