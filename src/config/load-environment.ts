// Reading an environment from a repository through a file reader, so the same
// code serves a local checkout (CLI) and GitHub's contents API (the app: the
// config from the default branch, passed as `configText`, the compose files at
// the PR head).
import { execFileSync } from 'node:child_process';
import { realpath, readFile } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { loadCompose, NeedRepoFiles, type ComposeFile, type LoadComposeOptions, type SecretSource } from '../compose/load.js';
import { readComposeSources } from '../compose/sources.js';
import { composeFilesOf } from './compose-files.js';
import { formatPath, parseYaml, type PathSeg } from '../compose/yaml.js';
import { CONFIG_PATH, findEnvironment, parseConfig, type BerthConfig, type EnvironmentConfig } from './config.js';
import { ComposeError, ConfigError } from '../errors.js';
import { environmentSecretInputs, rememberConfigText, type EnvironmentSecretInputs } from '../secrets/environment.js';
import type { SecretHashes } from '../secrets/vault.js';
import type { DesiredState } from '../model/model.js';

/** Reads a repository-relative file; undefined when it does not exist. */
export type FileReader = ((path: string) => Promise<string | undefined>) & {
  /** absolute directory of a local checkout, when there is one (relative bind mounts resolve under it) */
  root?: string;
};

export interface LoadedEnvironment {
  config: BerthConfig;
  environment: EnvironmentConfig;
  desired: DesiredState;
}

/** Server-side secrets for loading: the repository they are stored under and where their hashes come from (absent: no key, refused if used). */
export interface SecretLookup {
  repo?: string;
  source?: SecretHashes;
}

export async function loadEnvironment(readFile: FileReader, envName: string, configText?: string, secretLookup: SecretLookup = {}): Promise<LoadedEnvironment> {
  const text = configText ?? (await readFile(CONFIG_PATH));
  if (text === undefined) throw new ConfigError('missing_config', `${CONFIG_PATH} not found`, { file: CONFIG_PATH, hint: 'add it on the default branch: project, environments and their compose files' });
  const config = parseConfig(text, CONFIG_PATH);
  rememberConfigText(config, text);
  const environment = findEnvironment(config, envName);
  const inputs = await environmentSecretInputs(config, environment, secretLookup.repo ?? `local/${config.project}`, secretLookup.source);
  const envIndex = config.environments.indexOf(environment);
  const listed = await composeFilesOf(environment, readFile);
  const files = await Promise.all(
    listed.map(async (path, i) => {
      const content = await readFile(path);
      if (content === undefined) {
        const where: PathSeg[] = ['environments', envIndex, 'compose', i];
        const line = parseYaml(CONFIG_PATH, text).lineAt(where);
        throw new ComposeError('missing_file', `compose file ${path} not found`, {
          file: CONFIG_PATH,
          ...(line !== undefined ? { line } : {}),
          path: formatPath(where),
          hint: `environment ${environment.name} lists it; add the file or remove it from the list`,
        });
      }
      return { path, text: content };
    }),
  );
  const options = environmentLoadOptions(config, environment, inputs);
  const sources = await readComposeSources(readFile, files, options.variables);
  const commit = options.buildImage?.includes('{sha}') && readFile.root ? checkoutCommit(readFile.root) : undefined;
  const desired = await loadComposeReading(files, { ...options, sources, ...(readFile.root ? { repoRoot: readFile.root } : {}), ...(commit ? { commit } : {}) }, readFile);
  return { config, environment, desired };
}

/**
 * What an environment's entry in berth.yml gives every load of its compose
 * files — the CLI's from a checkout and the app's from GitHub alike, so the
 * two never read one file differently.
 */
export function environmentLoadOptions(config: BerthConfig, environment: EnvironmentConfig, inputs: EnvironmentSecretInputs): LoadComposeOptions & { variables: Readonly<Record<string, string>> } {
  // ${HOME} is the same directory as ~ (compose reads both from the user it runs as), unless the environment sets HOME
  // itself; a PR's .env does not decide it (variables override .env, as compose's shell environment does).
  const variables = environment.home && !Object.hasOwn(inputs.variables, 'HOME') ? { ...inputs.variables, HOME: environment.home } : inputs.variables;
  return {
    project: config.project,
    environment: environment.name,
    variables,
    secretKeys: inputs.secretKeys,
    secrets: inputs.secrets,
    policy: config.policy,
    profiles: environment.profiles,
    ...(environment.home ? { home: environment.home } : {}),
    ...(environment.build_image ? { buildImage: environment.build_image } : {}),
  };
}

/** The commit a checkout has out (for build_image's {sha}); undefined when it is no git checkout. */
function checkoutCommit(root: string): string | undefined {
  try {
    const out = execFileSync('git', ['-C', root, 'rev-parse', '--verify', 'HEAD^{commit}'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).trim();
    return /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(out) ? out : undefined;
  } catch {
    return undefined;
  }
}

/** Repository files read at once for a load (configs' `file:`, copies). */
const READ_CONCURRENCY = 8;

/**
 * loadCompose, reading the repository files its configs name (`file:`) through
 * `read` — the same reader, at the same commit, as the compose files — and
 * loading again with them.
 */
export async function loadComposeReading(
  files: readonly ComposeFile[],
  opts: LoadComposeOptions,
  read: (path: string) => Promise<string | undefined>,
  /** the exact bytes of a file a bind copies (the app); without it, the text `read` gives */
  readBytes: (path: string) => Promise<Uint8Array | undefined> = async (p) => {
    const text = await read(p);
    return text === undefined ? undefined : Buffer.from(text, 'utf8');
  },
): Promise<DesiredState> {
  try {
    return loadCompose(files, opts);
  } catch (e) {
    if (!(e instanceof NeedRepoFiles)) throw e;
    const texts = new Map<string, string | undefined>();
    const bytes = new Map<string, Uint8Array | undefined>();
    // A few at a time, not all at once: a reader that counts what it read (repository-reads.ts) then refuses
    // the read after the one that went over its limit, instead of every read being under way already.
    const work = [...e.paths.map((p) => async () => void texts.set(p, await read(p))), ...e.bytes.map((p) => async () => void bytes.set(p, await readBytes(p)))];
    await Promise.all(
      Array.from({ length: Math.min(READ_CONCURRENCY, work.length) }, async () => {
        for (let job = work.shift(); job; job = work.shift())
          await job().catch((err: unknown) => {
            work.length = 0; // the first failure is the error: nothing more is read
            throw err;
          });
      }),
    );
    return loadCompose(files, { ...opts, repoFiles: texts, repoBytes: bytes });
  }
}

export function variableSecrets(variables: Readonly<Record<string, string>>): SecretSource {
  return { value: (name) => (Object.hasOwn(variables, name) ? variables[name] : undefined) };
}

/**
 * A reader for a local checkout. Paths are repository-relative; a path that
 * leaves the directory (`..`, absolute, or through a symlink) is refused.
 */
export function readFromDir(dir: string): FileReader {
  const root = resolve(dir);
  const inside = (p: string, base: string) => {
    const rel = relative(base, p);
    return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
  };
  const reader: FileReader = async (path: string) => {
    const refuse = () => new ComposeError('path_escapes_repo', `${path} is outside the repository`, { file: path, hint: 'use a path inside the repository' });
    if (isAbsolute(path) || path.includes('\0')) throw refuse();
    const full = resolve(root, path);
    if (!inside(full, root)) throw refuse();
    let real: string;
    try {
      real = await realpath(full);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw e;
    }
    if (!inside(real, await realpath(root))) throw refuse();
    try {
      return await readFile(real, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'EISDIR') return undefined;
      throw e;
    }
  };
  reader.root = root;
  return reader;
}
