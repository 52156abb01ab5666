// Target names (what `.github/berth.yml` lists) map to Docker endpoints that
// only the server knows: a repository can name a target, never point one at
// a host. BERTH_TARGETS="local=unix:///var/run/docker.sock;edge=tcp://10.0.0.5:2375".
// Remote engines are reached over SSH (host key checked against known_hosts)
// or mutual TLS (a DOCKER_CERT_PATH-style directory); see endpointOf.
import Dockerode from 'dockerode';
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import ssh2 from 'ssh2';
import { BerthError } from '../errors.js';
import type { Engine } from '../apply/engine.js';
import { DockerEngine } from './docker-engine.js';
import type { RegistryCredentials } from './registry-auth.js';
import { credentialsFor } from './registry-auth.js';

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
    endpointOf(url, name); // validates, reading the files it names
    out.set(name, url);
  }
  return out;
}

/** How berth reaches a target's engine (shown by /readyz and `berth status`). */
export type Transport = 'unix' | 'tcp' | 'tls' | 'mtls' | 'ssh';

export interface Endpoint {
  transport: Transport;
  options: Dockerode.DockerOptions;
  /** The endpoint without its query (file paths are server detail, not secrets, but noise). */
  address: string;
  /** What a refusal by the far end means, for this endpoint's settings. */
  explain(err: Error): Error;
}

const bad = (target: string | undefined, url: string, problem: string) =>
  new Error(`BERTH_TARGETS: target ${target ? `"${target}" ` : ''}(${url.split('?')[0]}): ${problem}`);

function readSetting(target: string | undefined, url: string, what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw bad(target, url, `cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function queryOf(target: string | undefined, url: string, allowed: readonly string[]): URLSearchParams {
  const q = new URLSearchParams(url.includes('?') ? url.slice(url.indexOf('?') + 1) : '');
  for (const k of q.keys()) if (!allowed.includes(k)) throw bad(target, url, `unknown setting "${k}" (known: ${allowed.join(', ') || 'none'})`);
  return q;
}

/**
 * Host keys from an OpenSSH known_hosts file for `host` (port 22) or
 * `[host]:port`, plain or hashed (`|1|salt|hash`) entries; `@revoked` lines
 * are refusals, `@cert-authority` lines are not supported and ignored.
 */
export function knownHostKeys(text: string, host: string, port: number): { keys: Buffer[]; revoked: Buffer[] } {
  const name = port === 22 ? host : `[${host}]:${port}`;
  const keys: Buffer[] = [];
  const revoked: Buffer[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    let fields = line.split(/\s+/);
    let marker = '';
    if (fields[0]!.startsWith('@')) [marker, ...fields] = fields;
    if (marker === '@cert-authority' || fields.length < 3) continue;
    const matches = fields[0]!.split(',').some((pattern) => {
      const hashed = /^\|1\|([^|]+)\|(.+)$/.exec(pattern);
      if (hashed) return createHmac('sha1', Buffer.from(hashed[1]!, 'base64')).update(name).digest('base64') === hashed[2];
      return pattern === name;
    });
    if (matches) (marker === '@revoked' ? revoked : keys).push(Buffer.from(fields[2]!, 'base64'));
  }
  return { keys, revoked };
}

/**
 * Parses one endpoint and reads the server-side files it names, so a bad
 * setting fails at start naming the target:
 *   unix:///var/run/docker.sock
 *   tcp://host:2375 | http://host:2375              (plain, trusted network only)
 *   tcp://host:2376?cert_path=DIR | https://host:2376?cert_path=DIR
 *       mutual TLS: DIR holds ca.pem, cert.pem, key.pem (Docker's DOCKER_CERT_PATH layout)
 *   https://host:2376                                (TLS, server verified by the system CAs)
 *   ssh://user@host[:port]?identity=KEY&known_hosts=FILE
 *       defaults ~/.ssh/id_ed25519 and ~/.ssh/known_hosts; the host key must be listed there
 */
export function endpointOf(url: string, target?: string): Endpoint {
  const plain = url.split('?')[0]!;
  const none = (err: Error) => err;
  if (plain.startsWith('unix://') || plain.startsWith('/')) {
    queryOf(target, url, []);
    return { transport: 'unix', options: { socketPath: plain.startsWith('/') ? plain : plain.slice('unix://'.length) }, address: plain, explain: none };
  }
  const ssh = /^ssh:\/\/([^@/:]+)@([^:/?]+)(?::(\d+))?\/?$/.exec(plain);
  if (ssh) {
    const q = queryOf(target, url, ['identity', 'known_hosts']);
    const [, username, host, portText] = ssh;
    const port = Number(portText ?? 22);
    const identity = q.get('identity') ?? join(homedir(), '.ssh', 'id_ed25519');
    const knownHostsPath = q.get('known_hosts') ?? join(homedir(), '.ssh', 'known_hosts');
    const privateKey = readSetting(target, url, 'SSH private key (identity=)', identity);
    const parsed = ssh2.utils.parseKey(privateKey);
    if (parsed instanceof Error) throw bad(target, url, `the SSH private key ${identity} cannot be used: ${parsed.message}`);
    const known = knownHostKeys(readSetting(target, url, 'known_hosts file (known_hosts=)', knownHostsPath).toString('utf8'), host!, port);
    const hostName = port === 22 ? host! : `[${host}]:${port}`;
    // Why the last handshake was refused: ssh2 itself only says "verification failed".
    let refusal = '';
    const hostVerifier = (key: Buffer): boolean => {
      const fp = `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
      if (known.revoked.some((k) => k.equals(key))) refusal = `the host key ${fp} of ${hostName} is marked @revoked in ${knownHostsPath}`;
      else if (known.keys.some((k) => k.equals(key))) return true;
      else if (known.keys.length) refusal = `the host key of ${hostName} CHANGED: it offered ${fp}, which ${knownHostsPath} does not list for it (possible man-in-the-middle); verify the host and update known_hosts`;
      else refusal = `the host key ${fp} of ${hostName} is unknown: ${knownHostsPath} has no entry for ${hostName}; add it (ssh-keyscan -p ${port} ${host}, verified out of band)`;
      return false;
    };
    return {
      transport: 'ssh',
      address: plain,
      options: { protocol: 'ssh', host, port, username, sshOptions: { privateKey, hostVerifier, readyTimeout: 20_000 } } as Dockerode.DockerOptions,
      explain: (err) => (/verification failed|host denied/i.test(err.message) && refusal ? new Error(`${plain}: refused: ${refusal}`) : err),
    };
  }
  const m = /^(tcp|http|https):\/\/([^:/?]+)(?::(\d+))?\/?$/.exec(plain);
  if (!m) throw bad(target, url, 'not unix:///path, tcp://host:port, http://host:port, https://host:port or ssh://user@host[:port]');
  const q = queryOf(target, url, ['cert_path']);
  const certPath = q.get('cert_path');
  const protocol = m[1] === 'https' || certPath ? 'https' : 'http';
  const options: Dockerode.DockerOptions = { protocol, host: m[2], port: Number(m[3] ?? (protocol === 'https' ? 2376 : 2375)) };
  if (!certPath) return { transport: protocol === 'https' ? 'tls' : 'tcp', options, address: plain, explain: none };
  const ca = readSetting(target, url, 'CA certificate', join(certPath, 'ca.pem'));
  const cert = readSetting(target, url, 'client certificate', join(certPath, 'cert.pem'));
  const key = readSetting(target, url, 'client key', join(certPath, 'key.pem'));
  try {
    createSecureContext({ ca, cert, key });
  } catch (err) {
    throw bad(target, url, `the certificates in ${certPath} cannot be used (ca.pem, cert.pem, key.pem must be PEM and key.pem must match cert.pem): ${(err as Error).message}`);
  }
  return {
    transport: 'mtls',
    address: plain,
    options: { ...options, ca, cert, key },
    explain: (err) => {
      const e = err as NodeJS.ErrnoException;
      if (/certificate (required|unknown)|bad certificate|unknown ca|alert|ECONNRESET|socket hang up/i.test(`${e.code ?? ''} ${e.message}`))
        return new Error(`${plain}: the engine refused berth's client certificate ${join(certPath, 'cert.pem')} (is it signed by the CA the engine trusts?): ${e.message}`);
      if (/self[- ]signed|unable to verify|UNABLE_TO_VERIFY|CERT_|altnames/i.test(`${e.code ?? ''} ${e.message}`))
        return new Error(`${plain}: the engine's certificate is not trusted by ${join(certPath, 'ca.pem')}: ${e.message}`);
      return err;
    },
  };
}

/** dockerode options for an endpoint (see endpointOf). */
export function dockerOptions(url: string): Dockerode.DockerOptions {
  return endpointOf(url).options;
}

export class Targets {
  private readonly clients = new Map<string, Dockerode>();
  private readonly engines = new Map<string, Engine>();

  constructor(
    readonly endpoints: Map<string, string>,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): Targets {
    const t = new Targets(parseTargets(env.BERTH_TARGETS, env.DOCKER_HOST), env);
    // Registry credentials are read at start too: a bad path fails here, naming the setting.
    for (const name of t.names()) t.credentials(name);
    return t;
  }

  private readonly creds = new Map<string, RegistryCredentials>();

  /** The server-side registry logins a target pulls with (BERTH_DOCKER_CONFIG[_<TARGET>]). */
  credentials(name: string): RegistryCredentials {
    let c = this.creds.get(name);
    if (!c) {
      c = credentialsFor(name, this.env);
      this.creds.set(name, c);
    }
    return c;
  }

  /** A single endpoint serving every target name (the CLI's --docker). */
  static single(url: string, names: readonly string[] = [DEFAULT_TARGET]): Targets {
    return new Targets(new Map(names.map((n) => [n, url])));
  }

  private readonly parsed = new Map<string, Endpoint>();

  endpoint(name: string): Endpoint {
    let ep = this.parsed.get(name);
    if (!ep) {
      const url = this.endpoints.get(name);
      if (!url) throw new UnknownTargetError(name, this.names());
      ep = endpointOf(url, name);
      this.parsed.set(name, ep);
    }
    return ep;
  }

  /** Transport and engine version of a target (what /readyz and `berth status` show). */
  async describe(name: string): Promise<{ transport: Transport; address: string; version: string; api: string }> {
    const ep = this.endpoint(name);
    const v = (await this.docker(name).version()) as { Version?: string; ApiVersion?: string };
    return { transport: ep.transport, address: ep.address, version: v.Version ?? '?', api: v.ApiVersion ?? '?' };
  }

  /** Every target described, or the error that kept it from answering (never thrown). */
  async describeAll(): Promise<Record<string, { transport: Transport | '?'; address: string; version?: string; api?: string; error?: string }>> {
    const out: Record<string, { transport: Transport | '?'; address: string; version?: string; api?: string; error?: string }> = {};
    await Promise.all(
      this.names().map(async (t) => {
        try {
          out[t] = await this.describe(t);
        } catch (err) {
          let ep: Endpoint | undefined;
          try {
            ep = this.endpoint(t);
          } catch {
            ep = undefined;
          }
          out[t] = { transport: ep?.transport ?? '?', address: ep?.address ?? '?', error: String((err as Error)?.message ?? err) };
        }
      }),
    );
    return out;
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
      const ep = this.endpoint(name);
      c = new Dockerode(ep.options);
      // Every dockerode call goes through modem.dial: a refused handshake
      // becomes a message naming the target and the setting to check.
      const modem = c.modem as unknown as { dial(o: unknown, cb: (err: Error | null, data?: unknown) => void): void };
      const dial = modem.dial.bind(modem);
      modem.dial = (o, cb) => dial(o, (err, data) => cb(err ? Object.assign(ep.explain(err), { statusCode: (err as { statusCode?: number }).statusCode }) : null, data));
      this.clients.set(name, c);
    }
    return c;
  }

  engine(name: string): Engine {
    let e = this.engines.get(name);
    if (!e) {
      e = new DockerEngine(this.docker(name), this.credentials(name));
      this.engines.set(name, e);
    }
    return e;
  }
}
