// Which compose files an environment merges: the ones berth.yml lists, or,
// when it lists none, the ones docker compose finds by itself in the
// repository's root — the first of its file names that exists, then the first
// override file that exists — so a repository with compose.yaml (or a
// docker-compose.override.yml next to its docker-compose.yml) plans as
// `docker compose up` runs it.
import { ComposeError } from '../errors.js';
import { CONFIG_PATH } from './config.js';
import type { EnvironmentConfig } from './config.js';

/** compose's own search order (compose-go's DefaultFileNames and DefaultOverrideFileNames). */
export const DEFAULT_COMPOSE_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yml', 'docker-compose.yaml'] as const;
export const DEFAULT_OVERRIDE_FILES = ['compose.override.yml', 'compose.override.yaml', 'docker-compose.override.yml', 'docker-compose.override.yaml'] as const;

/**
 * The environment's compose files, in merge order. `exists` answers whether the commit holds a file (asked
 * in order, only as far as needed). Listed files are returned as listed: a missing one is the caller's error,
 * at its line in berth.yml.
 */
export async function composeFilesOf(env: Pick<EnvironmentConfig, 'name' | 'compose'>, exists: (path: string) => Promise<boolean>): Promise<string[]> {
  if (env.compose) return env.compose;
  const first = await firstThatExists(DEFAULT_COMPOSE_FILES, exists);
  if (first === undefined)
    throw new ComposeError('missing_file', `environment ${env.name} lists no compose file, and the repository's root holds none of ${DEFAULT_COMPOSE_FILES.join(', ')}`, {
      file: CONFIG_PATH,
      path: `environments.${env.name}`,
      hint: `add one of them, or list the environment's files under compose: in ${CONFIG_PATH} on the default branch`,
    });
  const override = await firstThatExists(DEFAULT_OVERRIDE_FILES, exists);
  return override === undefined ? [first] : [first, override];
}

async function firstThatExists(names: readonly string[], exists: (path: string) => Promise<boolean>): Promise<string | undefined> {
  for (const name of names) if (await exists(name)) return name;
  return undefined;
}
