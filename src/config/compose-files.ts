// Which compose files an environment merges: the ones berth.yml lists, or,
// when it lists none, the ones docker compose finds by itself in the
// repository's root — COMPOSE_FILE (from the environment's variables or the
// root's .env), else the first of its file names that exists, then the first
// override file that exists — so a repository with compose.yaml (or a
// docker-compose.override.yml next to its docker-compose.yml) plans as
// `docker compose up` runs it.
import { DotenvError, parseDotenv } from '../compose/dotenv.js';
import { ComposeError } from '../errors.js';
import { CONFIG_PATH } from './config.js';
import type { EnvironmentConfig } from './config.js';

/** compose's own search order (compose-go's DefaultFileNames and DefaultOverrideFileNames). */
export const DEFAULT_COMPOSE_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yml', 'docker-compose.yaml'] as const;
export const DEFAULT_OVERRIDE_FILES = ['compose.override.yml', 'compose.override.yaml', 'docker-compose.override.yml', 'docker-compose.override.yaml'] as const;

/**
 * The environment's compose files, in merge order. `read` reads a file of the commit (undefined: none; asked in
 * order, only as far as needed). Listed files are returned as listed: a missing one is the caller's error, at
 * its line in berth.yml (or in the .env that names it).
 */
export async function composeFilesOf(env: Pick<EnvironmentConfig, 'name' | 'compose' | 'variables'>, read: (path: string) => Promise<string | undefined>): Promise<string[]> {
  if (env.compose) return env.compose;
  const named = await composeFileVariable(env, read);
  if (named) return named;
  const exists = async (path: string) => (await read(path)) !== undefined;
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

/**
 * COMPOSE_FILE, as docker compose reads it without -f: the environment's variable, else the root `.env`'s;
 * paths separated by COMPOSE_PATH_SEPARATOR (`:` on Linux), relative to the root.
 */
async function composeFileVariable(env: Pick<EnvironmentConfig, 'variables'>, read: (path: string) => Promise<string | undefined>): Promise<string[] | undefined> {
  const variables = Object.fromEntries(Object.entries(env.variables ?? {}).map(([k, v]) => [k, String(v)]));
  let value: string | undefined = variables.COMPOSE_FILE;
  let separator: string | undefined = variables.COMPOSE_PATH_SEPARATOR;
  if (value === undefined) {
    const text = await read('.env');
    if (text === undefined) return undefined;
    let dotenv: Map<string, { value: string }>;
    try {
      dotenv = parseDotenv(text, { variables });
    } catch (e) {
      // the loader reports a bad .env at its line
      if (e instanceof DotenvError) return undefined;
      throw e;
    }
    value = dotenv.get('COMPOSE_FILE')?.value;
    separator ??= dotenv.get('COMPOSE_PATH_SEPARATOR')?.value;
  }
  const paths = (value ?? '').split(separator || ':').map((p) => p.trim().replace(/^\.\//, '')).filter(Boolean);
  return paths.length ? paths : undefined;
}
