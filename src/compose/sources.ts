// The files a set of compose files pulls in besides themselves (`include:` and
// its `env_file`, `extends.file`, `env_file:`, `label_file:` and the `.env` next to the first file), read
// ahead through the repository's FileReader so that loading stays pure: the
// loader looks them up in the map this returns. Problems in the YAML are left
// to the loader, which reports them with their line.
import { posix } from 'node:path';
import { repoDirectory, repoRelative } from './fragment.js';
import { parseDotenv, type DotenvValue } from './dotenv.js';
import { interpolateString, type Variables } from './interpolate.js';
import { parseYaml } from './yaml.js';
import { ComposeError } from '../errors.js';

export type ReadRepoFile = (path: string) => Promise<string | undefined>;

/** At most this many extra files are read for one environment (includes of includes…). */
const MAX_FILES = 200;

/** The repository directory of a compose file ('' at the root): where its relative paths start. */
export const composeDir = (path: string) => {
  const d = posix.dirname(posix.normalize(path.replace(/\\/g, '/')));
  return d === '.' ? '' : d;
};

export const dotenvPath = (firstComposeFile: string) => {
  const dir = composeDir(firstComposeFile);
  return dir ? `${dir}/.env` : '.env';
};

export async function readComposeSources(read: ReadRepoFile, files: readonly { path: string; text: string }[], variables: Variables): Promise<Map<string, string | undefined>> {
  const out = new Map<string, string | undefined>();
  for (const f of files) out.set(posix.normalize(f.path), f.text);
  const get = async (path: string) => {
    if (out.has(path) || out.size >= MAX_FILES) return out.get(path);
    let text: string | undefined;
    try {
      text = await read(path);
    } catch (e) {
      // A path the reader refuses (outside the repository) reads as missing, and the loader says why; any
      // other failure (GitHub's, a file over what berth reads) is the plan's error, never a missing file.
      if (!(e instanceof ComposeError && e.code === 'path_escapes_repo')) throw e;
      text = undefined;
    }
    out.set(path, text);
    return text;
  };
  // The paths a file names interpolate as its other values do (load.ts): with the variables over the
  // `.env` next to the first file (`env_file: ${ENV_VARS_DIRECTORY}/.env_db`, the directory set in the .env),
  // an included file's over the .env next to it.
  // Once per (env files, variables): a file may list the same include thousands of times.
  const dotenvDone = new WeakMap<Variables, Map<string, Promise<Variables>>>();
  const withDotenv = (envPaths: readonly string[], vars: Variables): Promise<Variables> => {
    let byPath = dotenvDone.get(vars);
    if (!byPath) dotenvDone.set(vars, (byPath = new Map()));
    const key = envPaths.join('\0');
    let done = byPath.get(key);
    if (!done) byPath.set(key, (done = readDotenv(envPaths, vars)));
    return done;
  };
  // a later file's keys over an earlier one's, the variables over them all (load.ts's dotenvDefaults)
  const readDotenv = async (envPaths: readonly string[], vars: Variables): Promise<Variables> => {
    const defaults: Record<string, string> = {};
    const inherited = new Map<string, DotenvValue>();
    for (const envPath of envPaths) {
      const text = await get(envPath);
      if (text === undefined) continue;
      try {
        for (const [k, v] of parseDotenv(text, { variables: vars, inherited })) {
          defaults[k] = v.value;
          inherited.set(k, v);
        }
      } catch {
        // the loader reports the file's problem at its line
      }
    }
    return { ...defaults, ...vars };
  };
  const first = files[0];
  const top = first ? await withDotenv([dotenvPath(first.path)], variables) : variables;
  // the directory a file's relative paths resolve from (load.ts): the first file's for every file listed, an
  // included file's project directory (its entry's project_directory, else its first file's), an extended file's own
  const projectDir = first ? composeDir(first.path) : '';
  const queue = files.map((f) => ({ path: posix.normalize(f.path), text: f.text as string | undefined, vars: top, dir: projectDir }));
  const seen = new Set<string>();
  const varsIds = new WeakMap<Variables, number>();
  let nextVarsId = 0;
  const idOf = (v: Variables) => {
    let id = varsIds.get(v);
    if (id === undefined) varsIds.set(v, (id = nextVarsId++));
    return id;
  };
  while (queue.length) {
    const { path, text, vars, dir } = queue.shift()!;
    // an included file is read with its own variables (load.ts caches it apart from the same file extended)
    const key = `${path}\0${dir}\0${idOf(vars)}`;
    if (seen.has(key) || text === undefined) continue;
    seen.add(key);
    let value: unknown;
    try {
      value = parseYaml(path, text).value;
    } catch {
      continue;
    }
    const str = (v: unknown) => {
      if (typeof v !== 'string') return undefined;
      try {
        return repoRelative(interpolateString(v, vars), dir);
      } catch {
        return undefined;
      }
    };
    const yamlFile = async (p: string | undefined, fileVars: Variables, fileDir = p === undefined ? '' : composeDir(p)) => {
      if (p === undefined) return;
      queue.push({ path: p, text: await get(p), vars: fileVars, dir: fileDir });
    };
    const interpolated = (v: unknown) => {
      if (typeof v !== 'string') return undefined;
      try {
        return interpolateString(v, vars);
      } catch {
        return undefined;
      }
    };
    const root = value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
    for (const inc of Array.isArray(root.include) ? root.include : []) {
      const o = inc && typeof inc === 'object' && !Array.isArray(inc) ? (inc as Record<string, unknown>) : undefined;
      const paths = typeof inc === 'string' ? [inc] : o ? [o.path].flat() : [];
      const resolved = paths.map(str);
      // the included project's directory: project_directory (from this file's), else its first file's
      const pd = interpolated(o?.project_directory);
      const incDir = pd !== undefined ? repoDirectory(pd, dir) : resolved[0] !== undefined ? composeDir(resolved[0]) : undefined;
      if (incDir === undefined) continue;
      // its interpolation defaults: the entry's env_file (from this file's directory), else the project directory's .env
      const listed = o?.env_file === undefined || o.env_file === null ? [] : [o.env_file].flat();
      const envPaths = listed.length
        ? listed.map(interpolated).filter((f): f is string => f !== undefined && f !== '/dev/null').map((f) => repoRelative(f, dir)).filter((f): f is string => f !== undefined)
        : [incDir ? `${incDir}/.env` : '.env'];
      const incVars = await withDotenv(envPaths, vars);
      for (const p of resolved) await yamlFile(p, incVars, incDir);
    }
    const services = root.services && typeof root.services === 'object' ? Object.values(root.services as object) : [];
    for (const s of services) {
      if (!s || typeof s !== 'object') continue;
      const svc = s as Record<string, unknown>;
      const ext = svc.extends;
      if (ext && typeof ext === 'object' && typeof (ext as Record<string, unknown>).file === 'string') await yamlFile(str((ext as Record<string, unknown>).file), top);
      const envFiles = typeof svc.env_file === 'string' ? [svc.env_file] : Array.isArray(svc.env_file) ? svc.env_file : [];
      for (const e of envFiles) {
        const p = str(typeof e === 'string' ? e : e && typeof e === 'object' ? (e as Record<string, unknown>).path : undefined);
        if (p !== undefined) await get(p);
      }
      // label_file entries are read the same way (a path or a list of paths)
      for (const e of typeof svc.label_file === 'string' ? [svc.label_file] : Array.isArray(svc.label_file) ? svc.label_file : []) {
        const p = str(e);
        if (p !== undefined) await get(p);
      }
    }
  }
  return out;
}
