// Registry credentials live on the berth server only: a Docker `config.json`
// (what `docker login` writes) named by a server setting, optionally one per
// target — never anything from a repository. Every pull and registry query
// sends the entry matching the image's registry as X-Registry-Auth.
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** What dockerode sends as X-Registry-Auth (base64 JSON). */
export interface AuthConfig {
  serveraddress: string;
  username?: string;
  password?: string;
  identitytoken?: string;
}

export interface RegistryCredentials {
  /** The config.json they came from and the setting that names it (for error messages). */
  source: string;
  setting: string;
  authFor(image: string): AuthConfig | undefined;
}

/** The registry host of an image reference (`nginx` → docker.io, `127.0.0.1:5000/a/b:t` → 127.0.0.1:5000). */
export function registryOf(image: string): string {
  const slash = image.indexOf('/');
  const first = slash >= 0 ? image.slice(0, slash) : '';
  const has = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (!has || first === 'index.docker.io' || first === 'registry-1.docker.io') return 'docker.io';
  return first;
}

/** config.json `auths` keys are hosts or URLs (`https://index.docker.io/v1/`). */
function hostOfKey(key: string): string {
  const h = key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
  return h === 'index.docker.io' || h === 'registry-1.docker.io' ? 'docker.io' : h;
}

/** Parses config.json text; a malformed file or entry is an error naming the file and the setting. */
export function parseDockerConfig(text: string, source: string, setting: string): RegistryCredentials {
  const fail = (what: string) => new Error(`${setting}: ${source}: ${what}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw fail(`not JSON (${(err as Error).message})`);
  }
  const auths = ((json as { auths?: unknown })?.auths ?? {}) as Record<string, { auth?: string; identitytoken?: string; username?: string; password?: string }>;
  if (typeof auths !== 'object' || Array.isArray(auths)) throw fail('"auths" must be an object');
  const byHost = new Map<string, AuthConfig>();
  for (const [key, entry] of Object.entries(auths)) {
    const serveraddress = hostOfKey(key);
    if (entry?.identitytoken) {
      byHost.set(serveraddress, { serveraddress, identitytoken: entry.identitytoken });
    } else if (entry?.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon <= 0) throw fail(`auths["${key}"].auth is not base64 of user:password`);
      byHost.set(serveraddress, { serveraddress, username: decoded.slice(0, colon), password: decoded.slice(colon + 1) });
    } else if (entry?.username && entry.password) {
      byHost.set(serveraddress, { serveraddress, username: entry.username, password: entry.password });
    }
    // An entry without secrets (credential helpers) leaves the registry anonymous.
  }
  return { source, setting, authFor: (image) => byHost.get(registryOf(image)) };
}

const envName = (target: string) => `BERTH_DOCKER_CONFIG_${target.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;

/**
 * The credentials a target uses: BERTH_DOCKER_CONFIG_<TARGET> (a config.json
 * path), else BERTH_DOCKER_CONFIG, else $DOCKER_CONFIG/config.json, else
 * ~/.docker/config.json. A missing default file means "no credentials"; a
 * missing file a setting names is an error at start.
 */
export function credentialsFor(target: string, env: NodeJS.ProcessEnv = process.env): RegistryCredentials {
  const perTarget = env[envName(target)];
  const explicit = perTarget ?? env.BERTH_DOCKER_CONFIG;
  const setting = perTarget ? envName(target) : env.BERTH_DOCKER_CONFIG ? 'BERTH_DOCKER_CONFIG' : env.DOCKER_CONFIG ? 'DOCKER_CONFIG' : 'BERTH_DOCKER_CONFIG';
  const path = explicit ?? join(env.DOCKER_CONFIG ?? join(homedir(), '.docker'), 'config.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (!explicit && (err as NodeJS.ErrnoException).code === 'ENOENT') return { source: path, setting, authFor: () => undefined };
    throw new Error(`${setting}: cannot read ${path} for target "${target}": ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseDockerConfig(text, path, setting);
}
