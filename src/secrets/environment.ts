// An environment's server-side secrets as compose loading takes them: the
// names berth.yml lists under `secrets:` become placeholders (placeholder.ts)
// carrying each value's keyed hash, for `${NAME}` interpolation and for
// compose secrets with `environment: NAME`. The app and the CLI both call
// this before loading compose files, so they plan alike. Reads hashes only:
// nothing is decrypted here.
import type { SecretSource } from '../compose/load.js';
import { parseYaml, type PathSeg } from '../compose/yaml.js';
import { CONFIG_PATH, type BerthConfig, type EnvironmentConfig } from '../config/config.js';
import { ConfigError } from '../errors.js';
import { NO_KEY_HINT } from './keyring.js';
import { placeholder } from './placeholder.js';
import type { SecretHashes } from './vault.js';

/** Where each loaded config's lines are, so a missing secret is located at its `secrets:` entry. */
const lineFinders = new WeakMap<BerthConfig, (path: PathSeg[]) => number | undefined>();

/** Remembers the text a config was parsed from (its lines locate secret errors). */
export function rememberConfigText(config: BerthConfig, text: string): void {
  lineFinders.set(config, (path) => {
    try {
      return parseYaml(CONFIG_PATH, text).lineAt(path);
    } catch {
      return undefined;
    }
  });
}

export interface EnvironmentSecretInputs {
  /** for `${VAR}`: berth.yml variables and a placeholder per server-side secret */
  variables: Record<string, string>;
  /** secret_keys and the server-side secrets' names: what they feed is tainted */
  secretKeys: string[];
  /** compose secrets' `environment: NAME`: a server-side secret's placeholder, else a berth.yml variable */
  secrets: SecretSource;
}

/** The secret names an environment declares, besides `secret_keys` (what maskers treat as secret keys). */
export const secretKeysOf = (env: Pick<EnvironmentConfig, 'secret_keys'> & { secrets?: readonly string[] }): string[] => [...env.secret_keys, ...(env.secrets ?? [])];

/**
 * `repo`: owner/name the secrets are stored under. `source` undefined: this
 * berth has no secret key, so an environment that lists secrets is refused.
 */
export async function environmentSecretInputs(config: BerthConfig, env: EnvironmentConfig, repo: string | undefined, source: SecretHashes | undefined): Promise<EnvironmentSecretInputs> {
  const variables = { ...env.variables };
  const names = env.secrets ?? [];
  const fromVariables: SecretSource = { value: (name) => (Object.hasOwn(env.variables, name) ? env.variables[name] : undefined) };
  if (!names.length) return { variables, secretKeys: [...env.secret_keys], secrets: fromVariables };
  const envIndex = config.environments.indexOf(env);
  const at = (j: number) => {
    const path: PathSeg[] = ['environments', envIndex, 'secrets', j];
    const line = lineFinders.get(config)?.(path);
    return { file: CONFIG_PATH, ...(line !== undefined ? { line } : {}), path: `environments[${envIndex}].secrets[${j}]` };
  };
  if (!source)
    throw new ConfigError('no_secret_key', `environment ${env.name} uses server-side secrets, but this berth server has no secret key configured`, { ...at(0), hint: NO_KEY_HINT });
  if (!repo) throw new ConfigError('no_secret_repository', `environment ${env.name} uses server-side secrets, which are stored per repository`, { ...at(0), hint: 'name the repository (berth plan/apply --repository OWNER/NAME)' });
  const hashes = await source.hashes(repo, env.name, names);
  const missing = names.map((n, j) => [n, j] as const).filter(([n]) => !hashes.has(n));
  if (missing.length) {
    const [first, j] = missing[0]!;
    const cmd = (n: string) => `berth secrets set --repo ${repo} --env ${env.name} ${n}`;
    throw new ConfigError('missing_secret', `secret ${first} of environment ${env.name} is not set on the berth server${missing.length > 1 ? ` (nor ${missing.slice(1).map(([n]) => n).join(', ')})` : ''}`, {
      ...at(j),
      hint: `set it with: ${missing.map(([n]) => cmd(n)).join('; ')} (the value is read from stdin)`,
    });
  }
  for (const n of names) variables[n] = placeholder(n, hashes.get(n)!);
  const secrets: SecretSource = { value: (name) => (names.includes(name) ? variables[name] : fromVariables.value(name)) };
  return { variables, secretKeys: secretKeysOf(env), secrets };
}
