// Target names (what `.github/berth.yml` lists) map to Docker endpoints that
// only the server knows: a repository can name a target, never point one at
// a host. BERTH_TARGETS="local=unix:///var/run/docker.sock;edge=tcp://10.0.0.5:2375".
import Dockerode from 'dockerode';
import { BerthError } from './errors.js';
import type { Engine } from './engine.js';
import { DockerEngine } from './docker/engine.js';

export const DEFAULT_TARGET = 'local';

export class UnknownTargetError extends BerthError {
  constructor(target: string, known: readonly string[]) {
    super('unknown_target', `target \`${target}\` is not configured on this berth server`, {
      hint: `known targets: ${known.map((k) => `\`${k}\``).join(', ') || '(none)'}; the server's BERTH_TARGETS maps target names to Docker endpoints`,
    });
  }
}

/** Parses BERTH_TARGETS. The default maps `local` to DOCKER_HOST or the local socket. */
export function parseTargets(spec: string | undefined, dockerHost = process.env.DOCKER_HOST): Map<string, string> {
  const out = new Map<string, string>();
  if (!spec?.trim()) {
    out.set(DEFAULT_TARGET, dockerHost || 'unix:///var/run/docker.sock');
    return out;
  }
  for (const part of spec.split(/[;,\n]/).map((p) => p.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`BERTH_TARGETS: "${part}" is not name=url (e.g. local=unix:///var/run/docker.sock)`);
    const name = part.slice(0, eq).trim();
    const url = part.slice(eq + 1).trim();
    if (!/^[a-z0-9][a-z0-9_.-]*$/i.test(name)) throw new Error(`BERTH_TARGETS: target name "${name}" must be letters, digits, '.', '_' or '-'`);
    if (out.has(name)) throw new Error(`BERTH_TARGETS: target "${name}" is listed twice`);
    dockerOptions(url); // validates
    out.set(name, url);
  }
  return out;
}

/** dockerode options for unix://, tcp://, http:// and https:// endpoints. */
export function dockerOptions(url: string): Dockerode.DockerOptions {
  if (url.startsWith('unix://')) return { socketPath: url.slice('unix://'.length) };
  if (url.startsWith('/')) return { socketPath: url };
  const m = /^(tcp|http|https):\/\/([^:/]+)(?::(\d+))?\/?$/.exec(url);
  if (!m) throw new Error(`Docker endpoint "${url}" is not unix:///path, tcp://host:port, http://host:port or https://host:port`);
  const protocol = m[1] === 'https' ? 'https' : 'http';
  return { protocol, host: m[2], port: Number(m[3] ?? (protocol === 'https' ? 2376 : 2375)) };
}

export class Targets {
  private readonly clients = new Map<string, Dockerode>();
  private readonly engines = new Map<string, Engine>();

  constructor(readonly endpoints: Map<string, string>) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): Targets {
    return new Targets(parseTargets(env.BERTH_TARGETS, env.DOCKER_HOST));
  }

  /** A single endpoint serving every target name (the CLI's --docker). */
  static single(url: string, names: readonly string[] = [DEFAULT_TARGET]): Targets {
    return new Targets(new Map(names.map((n) => [n, url])));
  }

  names(): string[] {
    return [...this.endpoints.keys()];
  }

  has(name: string): boolean {
    return this.endpoints.has(name);
  }

  docker(name: string): Dockerode {
    let c = this.clients.get(name);
    if (!c) {
      const url = this.endpoints.get(name);
      if (!url) throw new UnknownTargetError(name, this.names());
      c = new Dockerode(dockerOptions(url));
      this.clients.set(name, c);
    }
    return c;
  }

  engine(name: string): Engine {
    let e = this.engines.get(name);
    if (!e) {
      e = new DockerEngine(this.docker(name));
      this.engines.set(name, e);
    }
    return e;
  }
}
