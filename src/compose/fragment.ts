// One compose file → a typed, located fragment: every key checked, every value
// normalised, every piece remembering the file and line it came from so that
// errors found after merging (a missing image, an undeclared network, a policy
// refusal) still point at the right line.
import { isIP } from 'node:net';
import { posix } from 'node:path';
import { ComposeError } from '../errors.js';
import type { DependsOnCondition, DeviceRequest, FailureAction, Mount, PortBinding, RestartPolicy, RolloutConfig, RolloutOrder, ServiceExtras, ServiceNetwork } from '../model/model.js';
import { interpolateTree, InterpolationError, type TaintSink, type Variables } from './interpolate.js';
import {
  mapOrList,
  asBool,
  asNonNegativeInt,
  asReplicas,
  describeValue,
  FieldProblem,
  normalizeImage,
  parseDuration,
  parsePort,
  parseVolume,
  portCount,
  portKey,
  scalarString,
  sortRecord,
  splitCommand,
  type PathContext,
} from './normalize.js';
import { parseJoin, parseVolumesFrom } from './joins.js';
import { EXTRA_KEYS, macAddress, parseBytes, parseCpus } from './service-keys.js';
import { parseFileRef, parseFileSource, type FileRef, type FileSource } from './files.js';
import { didYouMean } from '../text/suggest.js';
import { MAX_PORTS } from './limits.js';
import type { TaintedInput } from './taint.js';
import { formatPath, tagAt, type PathSeg, type YamlFile } from './yaml.js';

export interface Loc {
  file: string;
  line?: number;
  path: string;
}

export interface At<T> {
  v: T;
  at: Loc;
  /** the value as written in the file, when normalising changed it (a bind source `./web`) */
  asWritten?: string;
  /** a bind source written with plain ${VAR}s left unset (each became ""): how it was written, and their names */
  unsetSource?: { raw: string; names: string[] };
}

export interface HealthFragment {
  at: Loc;
  test?: At<string[]>;
  intervalMs?: At<number>;
  timeoutMs?: At<number>;
  retries?: At<number>;
  startPeriodMs?: At<number>;
  startIntervalMs?: At<number>;
  disable?: At<boolean>;
}

/** `deploy.update_config` / `deploy.rollback_config` as written: later files override key by key. */
export interface RolloutFragment {
  at: Loc;
  keys: Partial<RolloutConfig>;
  /** where `order:` was written (a start-first refusal points there) */
  orderAt?: Loc;
}

export interface DependsFragment {
  service: string;
  condition: DependsOnCondition;
  required: boolean;
  /** `restart: true` */
  restart?: boolean;
  at: Loc;
}

/** One `env_file:` entry, resolved to a repository path. */
export interface EnvFileRef {
  path: string;
  required: boolean;
  format?: 'raw';
}

/** The compose keys of a service that `!reset` / `!override` can apply to. */
export type ServiceField = string;

export interface ServiceFragment {
  name: string;
  at: Loc;
  /** `web: !reset` in an override file: the service is removed */
  removed?: boolean;
  /** `web: !override {…}`: the service replaces the earlier definition instead of merging into it */
  replace?: boolean;
  reset: Set<ServiceField>;
  override: Set<ServiceField>;
  /**
   * The first key of the service berth cannot honour though docker compose accepts it (`reservations.cpus`, a
   * seccomp profile from a file, a lifecycle hook): raised once the service is known to be deployed. docker
   * compose never creates a service none of whose profiles is enabled, so such a key there refuses nothing.
   */
  refused?: ComposeError;
  image?: At<string>;
  command?: At<string[]>;
  entrypoint?: At<string[]>;
  environment?: Map<string, At<string>>;
  /** `environment:` names written without a value that no variable sets (compose sends them bare: unset in the container) */
  unsetEnvironment?: Map<string, Loc>;
  ports?: At<PortBinding>[];
  volumes?: At<Mount>[];
  networks?: Map<string, Loc>;
  dependsOn?: Map<string, DependsFragment>;
  healthcheck?: HealthFragment;
  labels?: Map<string, At<string>>;
  restart?: At<RestartPolicy>;
  user?: At<string>;
  workingDir?: At<string>;
  replicas?: At<number>;
  privileged?: At<boolean>;
  networkMode?: At<string>;
  pid?: At<string>;
  capAdd?: At<string>[];
  devices?: At<string>[];
  /** `service|container:NAME:ro|rw` */
  volumesFrom?: At<string>[];
  /** the optional settings (resources, logging, dns…), by ServiceExtras field */
  extras: { [K in keyof ServiceExtras]?: At<ServiceExtras[K]> };
  /** long-form `networks:` options, by network key */
  networkOptions?: Map<string, ServiceNetwork>;
  /** `links: [service[:alias]]` */
  links?: At<{ service: string; alias: string }>[];
  profiles?: At<string[]>;
  /** `build:` is present (berth deploys the image, it does not build) */
  build?: Loc;
  /** `develop:` is present (it drives `docker compose watch` on a laptop, nothing on a deployment) */
  develop?: Loc;
  /** `attach:` is present (which logs `docker compose up` shows in the foreground; nothing on a deployment) */
  attach?: Loc;
  /**
   * `env_file:` entries, read but not yet parsed: their `${VAR}`s find the service's own `environment:`
   * too (compose-go since 2025), which is known only once every file is merged (load.ts parses them then).
   */
  envFiles?: EnvFileText[];
  /** what the env_file entries set, parsed from `envFiles` once the service is merged (load.ts); environment: wins over it */
  envFromFiles?: Map<string, At<string>>;
  /** `label_file:` entries, read but not yet parsed (each required: a missing one refuses the service once it is deployed) */
  labelFiles?: EnvFileText[];
  /** what the label_file entries set, parsed once the service is merged (load.ts); labels: wins over it */
  labelsFromFiles?: Map<string, At<string>>;
  /** `extends:` — the service (of this file, or of `file`, a repository path) this one builds on */
  extendsRef?: At<{ service: string; file?: string }>;
  configs?: At<FileRef>[];
  secrets?: At<FileRef>[];
  updateConfig?: RolloutFragment;
  rollbackConfig?: RolloutFragment;
  /** `deploy.restart_policy` as written (docker compose applies it to the container, over `restart:`) */
  deployRestart?: DeployRestartFragment;
  /** `deploy.resources` limits and memory reservation as written: docker compose applies each that is not 0 over cpus, mem_limit, pids_limit and mem_reservation, wherever they are written */
  deployResources?: DeployResourcesFragment;
}

/** The ServiceExtras fields `deploy.resources` sets; later files override key by key. */
export type DeployResourcesFragment = { [K in 'nanoCpus' | 'memLimit' | 'pidsLimit' | 'memReservation']?: At<number> };

/** `deploy.restart_policy`: later files override key by key. */
export interface DeployRestartFragment {
  at: Loc;
  condition?: At<'none' | 'on-failure' | 'any' | 'unless-stopped'>;
  maxAttempts?: At<number>;
}

/** A top-level config or secret: its name and where its content comes from. */
export interface FileSourceFragment {
  name: string;
  at: Loc;
  source: FileSource;
  /** where `file:` is written (a secret's file is never read: the loader says so there) */
  fileAt?: Loc;
}

export interface NetworkFragment {
  name: string;
  at: Loc;
  driver?: At<string>;
  internal?: At<boolean>;
  attachable?: At<boolean>;
  labels?: Map<string, At<string>>;
  external?: At<boolean>;
  dockerName?: At<string>;
  enableIpv6?: At<boolean>;
  driverOpts?: At<Record<string, string>>;
  ipam?: At<import('../model/model.js').Ipam>;
}

export interface VolumeFragment {
  name: string;
  at: Loc;
  driver?: At<string>;
  labels?: Map<string, At<string>>;
  external?: At<boolean>;
  dockerName?: At<string>;
  driverOpts?: At<Record<string, string>>;
}

/** One `include:` entry, its paths resolved to repository paths (from the including file's directory, as compose does). */
export interface IncludeEntry {
  /** the file and its overrides, merged in order */
  paths: string[];
  /** `project_directory`: where the included files' relative paths resolve ('' the repository's root); default the first path's directory */
  projectDir?: string;
  /** `env_file`: the files interpolating the included files instead of the project directory's `.env` (each required); [] for `/dev/null` alone */
  envFiles?: At<string>[];
}

export interface FileFragment {
  file: string;
  services: Map<string, ServiceFragment>;
  networks: Map<string, NetworkFragment>;
  volumes: Map<string, VolumeFragment>;
  /** top-level `name:` */
  name?: At<string>;
  /** top-level `include:` entries, resolved to repository paths */
  include?: At<IncludeEntry>[];
  configs: Map<string, FileSourceFragment>;
  secrets: Map<string, FileSourceFragment>;
}

export const SUPPORTED_SERVICE_KEYS = [
  'image',
  'command',
  'entrypoint',
  'environment',
  'ports',
  'volumes',
  'networks',
  'depends_on',
  'healthcheck',
  'labels',
  'restart',
  'user',
  'working_dir',
  'deploy',
  'scale',
  'privileged',
  'network_mode',
  'pid',
  'cap_add',
  'devices',
  'gpus',
  'volumes_from',
  'links',
  'profiles',
  'build',
  'develop',
  'attach',
  'env_file',
  'label_file',
  'extends',
  ...Object.keys(EXTRA_KEYS),
  'configs',
  'secrets',
] as const;

/** Compose service keys berth knows but does not support, with what to do instead. */
const UNSUPPORTED_SERVICE_KEYS: Record<string, string> = {
  runtime: 'it picks an OCI runtime installed on the host (wasmedge, nvidia, runsc); berth does not let a repository choose host runtimes: remove it, or deploy to a target whose default runtime is the one the service needs',
  cgroup_parent: 'it places the container in a cgroup of the host, outside what the policy governs: remove it',
  uts: 'uts: host shares the host\'s hostname namespace, outside what the policy governs: remove it, or set hostname:',
  annotations: 'berth does not pass OCI annotations to Docker: write them as labels:',
  blkio_config: 'block-I/O weights and throttles name block devices of the host: remove it',
  cpu_count: 'it is a Windows-only CPU setting: write the limit as cpus:',
  cpu_percent: 'it is a Windows-only CPU setting: write the limit as cpus:',
  cpu_period: 'write the CPU limit as cpus: (cpu_quota 50000 per cpu_period 100000 is cpus: 0.5)',
  cpu_quota: 'write the CPU limit as cpus: (cpu_quota 50000 per cpu_period 100000 is cpus: 0.5)',
  cpu_rt_period: 'real-time CPU scheduling draws on the host\'s real-time budget, outside what the policy governs: remove it',
  cpu_rt_runtime: 'real-time CPU scheduling draws on the host\'s real-time budget, outside what the policy governs: remove it',
  credential_spec: 'it applies to Windows containers only: remove it',
  isolation: 'it applies to Windows containers only: remove it',
  external_links: 'it links to containers outside the project: define both services in the environment and use links:, or join a network declared external: true',
  mem_swappiness: 'Docker discards it on cgroup v2 hosts: remove it (memswap_limit bounds swap)',
  oom_kill_disable: 'a container the OOM killer may not stop can exhaust the host\'s memory: remove it and set mem_limit',
  oom_score_adj: 'it ranks the container against the host\'s own processes for the OOM killer, outside what the policy governs: remove it',
  post_start: 'berth does not run lifecycle hooks: run the command from the image\'s entrypoint or command',
  pre_stop: 'berth does not run lifecycle hooks: run the command from the image\'s entrypoint, on the stop signal',
  provider: 'a provider service is run by a docker compose plugin, not by Docker: remove it',
  storage_opt: 'per-container storage options depend on the host\'s storage driver: remove it',
  use_api_socket: 'it hands the container the Docker API and the registry credentials; mount the socket under policy.allow_docker_socket if the service drives Docker',
  models: 'AI models are served by Docker Model Runner, not deployed by berth: remove it',
};

const OTHER_COMPOSE_SERVICE_KEYS = [
  'annotations', 'blkio_config', 'cpu_count', 'cpu_percent', 'cpu_period',
  'cpu_quota', 'cpu_rt_period', 'cpu_rt_runtime', 'cpus', 'credential_spec',
  'dns', 'dns_opt', 'dns_search', 'domainname', 'driver_opts', 'expose', 'external_links', 'extra_hosts',
  'hostname', 'init', 'isolation', 'label_file', 'links', 'logging', 'mem_limit', 'mem_reservation',
  'mem_swappiness', 'memswap_limit', 'models', 'oom_kill_disable', 'oom_score_adj', 'pids_limit', 'platform', 'post_start', 'pre_stop',
  'provider', 'pull_policy', 'read_only', 'shm_size', 'stdin_open', 'stop_grace_period', 'stop_signal',
  'storage_opt', 'sysctls', 'tmpfs', 'tty', 'ulimits', 'use_api_socket',
];

const TOP_LEVEL_KEYS = ['services', 'networks', 'volumes', 'configs', 'secrets', 'version', 'name', 'include'];
const UNSUPPORTED_TOP_LEVEL: Record<string, string> = {
  models: "AI models are pulled and served by Docker Model Runner, which docker compose drives and berth does not: remove models: (here and under the services) and give the services the model's endpoint and name as environment variables",
};

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const CONDITIONS: readonly DependsOnCondition[] = ['service_started', 'service_healthy', 'service_completed_successfully'];
const RESTARTS: readonly RestartPolicy[] = ['no', 'always', 'on-failure', 'unless-stopped'];

/** One env_file entry that exists: its text, where it is named, and the variables its interpolation starts from. */
export interface EnvFileText {
  file: string;
  text: string;
  raw: boolean;
  /** the variables of the compose file that names it (an included file has its own) */
  variables: Variables;
  /**
   * A required file the repository does not have: the refusal, raised only if the service is deployed (docker
   * compose reads env files once the profiles chose the services: a service whose profile is off may name one).
   */
  missing?: ComposeError;
}

export interface FragmentOptions {
  variables: Variables;
  paths: PathContext;
  /** repository-relative directory of this file (env_file, include and extends paths resolve against it) */
  fileDir?: string;
  /** reads another repository file already fetched (env files); undefined when it does not exist */
  readFile?: (path: string) => string | undefined;
  /** which variables are secret, and where to record the strings that used one (filled before any value is parsed) */
  taint?: { secret: (name: string) => boolean; found: TaintedInput[] };
  /** file → the variables a plain ${VAR} in it used without a value (each became "", as in docker compose): the plan warns */
  unset?: Map<string, Set<string>>;
  /**
   * A file another one extends a service of: only these services are built (the one extended and what it
   * extends in this file), and nothing else of the file is checked, as docker compose takes the service alone.
   */
  onlyServices?: ReadonlySet<string>;
}

/** The set collecting `file`'s unset variables, when the caller asked for them. */
export function unsetIn(unset: Map<string, Set<string>> | undefined, file: string): Set<string> | undefined {
  if (!unset) return undefined;
  let names = unset.get(file);
  if (!names) unset.set(file, (names = new Set()));
  return names;
}

/** The source part of a short volume entry as written (before the first `:` outside `${…}`). */
function rawSourceOf(raw: string): string {
  let depth = 0;
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '$' && raw[i + 1] === '{') {
      depth++;
      i++;
    } else if (raw[i] === '}' && depth > 0) depth--;
    else if (raw[i] === ':' && depth === 0) return raw.slice(0, i);
  }
  return raw;
}

export function buildFragment(y: YamlFile, opts: FragmentOptions): FileFragment {
  const file = y.file;
  const loc = (path: PathSeg[]): Loc => {
    const line = y.lineAt(path);
    return { file, ...(line !== undefined ? { line } : {}), path: formatPath(path) };
  };
  const err = (code: string, problem: string, path: PathSeg[], hint?: string): ComposeError => {
    return new ComposeError(code, problem, { ...loc(path), ...(hint ? { hint } : {}) });
  };
  /** runs a normaliser, turning its FieldProblem into a located ComposeError */
  const at = <T>(path: PathSeg[], f: () => T): At<T> => {
    try {
      return { v: f(), at: loc(path) };
    } catch (e) {
      if (e instanceof FieldProblem) throw err(e.code, e.problem, [...path, ...e.subpath], e.hint);
      throw e;
    }
  };
  const mapping = (v: unknown, path: PathSeg[], what: string): Record<string, unknown> => {
    if (v === null || v === undefined) return {};
    if (typeof v !== 'object' || Array.isArray(v)) throw err('invalid_value', `${what} must be a mapping, not ${describeValue(v)}`, path);
    return v as Record<string, unknown>;
  };
  const list = (v: unknown, path: PathSeg[], what: string): unknown[] => {
    if (v === null || v === undefined) return [];
    if (!Array.isArray(v)) throw err('invalid_value', `${what} must be a list, not ${describeValue(v)}`, path);
    return v;
  };
  const labelsOf = (v: unknown, path: PathSeg[]): Map<string, At<string>> => {
    const out = new Map<string, At<string>>();
    const entries = at(path, () => mapOrList(v, 'labels')).v;
    entries.forEach(([k, val], i) => {
      const where = [...path, Array.isArray(v) ? i : k];
      // berth's own labels say what it manages and what it deployed (which fields a secret fed): one a file set
      // would be overwritten on a container, and could forge the one berth leaves off
      if (k.toLowerCase().startsWith('io.berth.')) throw err('invalid_value', `label ${JSON.stringify(k)}: labels under io.berth. are berth's own`, where, 'rename the label');
      out.set(k, { v: val ?? '', at: loc(where) });
    });
    return out;
  };
  const consumed = new Set<string>();
  const tag = (path: PathSeg[]) => {
    const t = tagAt(y, path);
    if (t) consumed.add(path.map(String).join('\u0000'));
    return t;
  };

  const out: FileFragment = { file, services: new Map(), networks: new Map(), volumes: new Map(), configs: new Map(), secrets: new Map() };
  if (y.value === undefined || y.value === null) return out;
  const root = mapping(y.value, [], 'a compose file');

  const only = opts.onlyServices;
  for (const key of only ? [] : Object.keys(root)) {
    if (TOP_LEVEL_KEYS.includes(key) || key.startsWith('x-')) continue;
    if (Object.hasOwn(UNSUPPORTED_TOP_LEVEL, key)) throw err('unsupported', `top-level ${key} is not supported by berth`, [key], UNSUPPORTED_TOP_LEVEL[key]);
    const dym = didYouMean(key, TOP_LEVEL_KEYS);
    throw err('unknown_key', `unknown top-level key "${key}"`, [key], dym || `known keys: ${TOP_LEVEL_KEYS.join(', ')}`);
  }

  // Interpolate what berth reads (extension fields are only templates for anchors, already expanded).
  /** path → a string there that used plain ${VAR}s left unset, as written (a denial of what it became can say why) */
  const unsetStrings = new Map<string, { raw: string; names: string[] }>();
  const interpolated = (key: string): unknown => {
    const sink: TaintSink | undefined = opts.taint ? { secret: opts.taint.secret, tainted: [] } : undefined;
    const record = () => {
      for (const t of sink?.tainted ?? []) {
        const line = y.lineAt(t.path);
        opts.taint!.found.push({ ...t, file, ...(line !== undefined ? { line } : {}) });
      }
    };
    try {
      const out = interpolateTree(root[key], opts.variables, [key], sink, unsetIn(opts.unset, file), (p, raw, names) => unsetStrings.set(p.map(String).join('\u0000'), { raw, names }));
      record();
      return out;
    } catch (e) {
      record();
      if (e instanceof InterpolationError) throw err(e.detail.code, e.detail.problem, e.path, e.detail.hint);
      throw e;
    }
  };

  if (root.name !== undefined && !only) out.name = at(['name'], () => scalarString(interpolated('name'), 'name'));
  if (root.include !== undefined && !only) {
    out.include = list(interpolated('include'), ['include'], 'include').map((e, i) => {
      const p: PathSeg[] = ['include', i];
      let paths: unknown[];
      let projectDir: string | undefined;
      let envFiles: At<string>[] | undefined;
      if (typeof e === 'string') paths = [e];
      else {
        const o = mapping(e, p, 'include entry');
        for (const k of Object.keys(o))
          if (!['path', 'project_directory', 'env_file'].includes(k)) throw err('unknown_key', `unknown key "${k}" in include`, [...p, k], didYouMean(k, ['path', 'project_directory', 'env_file']) || 'known keys: path, project_directory, env_file');
        if (o.path === undefined || o.path === null) throw err('invalid_value', 'include entry has no path', p, 'name the compose file(s) to include under path:');
        paths = typeof o.path === 'string' ? [o.path] : list(o.path, [...p, 'path'], 'include.path');
        // project_directory: where the included files' relative paths resolve (and whose .env interpolates them),
        // relative to this file's directory as docker compose takes it from the including project's
        if (o.project_directory !== undefined && o.project_directory !== null)
          projectDir = at([...p, 'project_directory'], () => {
            const rel = scalarString(o.project_directory, 'include.project_directory');
            const dir = repoDirectory(rel, opts.fileDir ?? '');
            if (dir === undefined) throw new FieldProblem('path_escapes_repo', `include project_directory ${rel} is outside the repository`, 'use a directory inside the repository');
            return dir;
          }).v;
        // env_file: the files that interpolate the included files instead of the project directory's .env, relative
        // to this file's directory; `/dev/null` reads nothing (so neither is that .env)
        if (o.env_file !== undefined && o.env_file !== null) {
          const listed = typeof o.env_file === 'string' ? [o.env_file] : list(o.env_file, [...p, 'env_file'], 'include.env_file');
          const where = (j: number): PathSeg[] => (typeof o.env_file === 'string' ? [...p, 'env_file'] : [...p, 'env_file', j]);
          if (listed.length) {
            envFiles = [];
            listed.forEach((x, j) => {
              const f = at(where(j), () => scalarString(x, 'include env_file'));
              if (f.v === '/dev/null') return;
              const full = repoRelative(f.v, opts.fileDir ?? '');
              if (full === undefined) throw err('path_escapes_repo', `include env_file ${f.v} is outside the repository`, where(j), 'use a file inside the repository');
              envFiles!.push({ v: full, at: f.at, ...(full !== f.v ? { asWritten: f.v } : {}) });
            });
          }
        }
      }
      if (!paths.length) throw err('invalid_value', 'include entry has no path', p, 'name the compose file(s) to include under path:');
      const resolved = at(p, () =>
        paths.map((x) => {
          const rel = scalarString(x, 'include path');
          const full = repoRelative(rel, opts.fileDir ?? '');
          if (full === undefined) throw new FieldProblem('path_escapes_repo', `include ${rel} is outside the repository`, 'include files inside the repository');
          return full;
        }),
      );
      return { v: { paths: resolved.v, ...(projectDir !== undefined ? { projectDir } : {}), ...(envFiles ? { envFiles } : {}) }, at: resolved.at };
    });
  }

  // ------------------------------------------------------------ services
  const services = mapping(interpolated('services'), ['services'], 'services');
  for (const [name, raw] of Object.entries(services)) {
    if (only && !only.has(name)) continue;
    const base: PathSeg[] = ['services', name];
    if (!NAME_RE.test(name)) throw err('bad_name', `invalid service name "${name}"`, base, 'use letters, digits, "_", "." and "-", starting with a letter or digit');
    const svcTag = tag(base);
    const frag: ServiceFragment = { name, at: loc(base), reset: new Set(), override: new Set(), extras: {} };
    out.services.set(name, frag);
    if (svcTag === 'reset') {
      frag.removed = true;
      continue;
    }
    if (svcTag === 'override') frag.replace = true;
    const svc = mapping(raw, base, `service ${name}`);
    for (const [key, value] of Object.entries(svc)) {
      const path: PathSeg[] = [...base, key];
      if (key.startsWith('x-')) continue;
      try {
        if (!(SUPPORTED_SERVICE_KEYS as readonly string[]).includes(key)) {
          if (Object.hasOwn(UNSUPPORTED_SERVICE_KEYS, key)) throw err('unsupported', `${key} is not supported by berth`, path, UNSUPPORTED_SERVICE_KEYS[key]);
          if (OTHER_COMPOSE_SERVICE_KEYS.includes(key)) throw err('unsupported', `${key} is not supported by berth`, path, `supported service keys: ${SUPPORTED_SERVICE_KEYS.join(', ')}`);
          const dym = didYouMean(key, [...SUPPORTED_SERVICE_KEYS, ...Object.keys(UNSUPPORTED_SERVICE_KEYS), ...OTHER_COMPOSE_SERVICE_KEYS]);
          throw err('unknown_key', `unknown key "${key}" in service ${name}`, path, dym || `supported service keys: ${SUPPORTED_SERVICE_KEYS.join(', ')}`);
        }
        const field = key as ServiceField;
        const t = tag(path);
        if (t === 'reset') {
          frag.reset.add(field);
          continue;
        }
        if (t === 'override') frag.override.add(field);
        serviceField(frag, field, withoutExtensions(value, FREE_FORM_KEYS.has(key)), path);
      } catch (e) {
        // What compose accepts and berth cannot honour waits for the profiles (load.ts); anything else (an
        // unknown key, a malformed value) is an error whether the service is deployed or not, as in compose.
        if (!(e instanceof ComposeError) || e.code !== 'unsupported') throw e;
        frag.refused ??= e;
      }
    }
  }

  function serviceField(frag: ServiceFragment, key: ServiceField, value: unknown, path: PathSeg[]): void {
    switch (key) {
      case 'image':
        frag.image = at(path, () => normalizeImage(scalarString(value, 'image')));
        return;
      case 'command':
      case 'entrypoint': {
        if (value === null) return;
        const words = at(path, () => (typeof value === 'string' ? splitCommand(value) : list(value, path, key).map((w, i) => { try { return scalarString(w, `${key}[${i}]`); } catch (e) { if (e instanceof FieldProblem) throw new FieldProblem(e.code, e.problem, e.hint, [i]); throw e; } })));
        if (key === 'command') frag.command = words;
        else frag.entrypoint = words;
        return;
      }
      case 'environment': {
        const env = new Map<string, At<string>>();
        const unset = new Map<string, Loc>();
        const entries = at(path, () => mapOrList(value, 'environment')).v;
        entries.forEach(([k, v], i) => {
          const where = loc([...path, Array.isArray(value) ? i : k]);
          // KEY without a value takes the variable of that name (compose takes it from the shell); unset → sent
          // bare, as docker compose sends it: the container then has no such variable, not even the image's.
          const resolved = v ?? (Object.prototype.hasOwnProperty.call(opts.variables, k) ? opts.variables[k] : undefined);
          // a later entry of a key replaces an earlier one, a bare unset one too (compose-go's EnforceUnicity)
          if (resolved !== undefined) {
            env.set(k, { v: resolved, at: where });
            unset.delete(k);
          } else {
            env.delete(k);
            unset.set(k, where);
          }
        });
        frag.environment = env;
        if (unset.size) frag.unsetEnvironment = unset;
        return;
      }
      case 'ports': {
        const ports: At<PortBinding>[] = [];
        const seen = new Set<string>();
        let expanded = 0;
        list(value, path, 'ports').forEach((p, i) => {
          // A range is counted before it is expanded: "1-65535:1-65535" written a thousand times is refused, not built.
          expanded += portCount(p);
          if (expanded > MAX_PORTS) throw err('too_large', `ports: more than ${MAX_PORTS} port bindings in one service`, [...path, i], 'publish fewer ports (a range counts each of its ports)');
          for (const b of at([...path, i], () => parsePort(p)).v) {
            if (seen.has(portKey(b))) continue;
            seen.add(portKey(b));
            ports.push({ v: b, at: loc([...path, i]) });
          }
        });
        frag.ports = ports;
        return;
      }
      case 'volumes': {
        const mounts: At<Mount>[] = [];
        // target → its place in mounts: a scan per entry was the square of a long list (40,000 mounts, 6 s)
        const byTarget = new Map<string, number>();
        list(value, path, 'volumes').forEach((m, i) => {
          const mount: At<Mount> = at([...path, i], () => parseVolume(m, opts.paths));
          const written = typeof m === 'string' ? m.split(':')[0] : m && typeof m === 'object' ? (m as Record<string, unknown>).source : undefined;
          if (mount.v.type === 'bind' && typeof written === 'string') mount.asWritten = written;
          if (mount.v.type === 'bind') {
            const u = unsetStrings.get([...path, i, ...(typeof m === 'string' ? [] : ['source'])].map(String).join('\u0000'));
            if (u) mount.unsetSource = { raw: typeof m === 'string' ? rawSourceOf(u.raw) : u.raw, names: u.names };
          }
          // one mount per target: the later entry, in the earlier one's place, as docker compose keeps it
          // (compose-go's EnforceUnicity; garage's blueprint lists the same volume twice)
          const dup = byTarget.get(mount.v.target);
          if (dup !== undefined) mounts[dup] = mount;
          else {
            byTarget.set(mount.v.target, mounts.length);
            mounts.push(mount);
          }
        });
        frag.volumes = mounts;
        return;
      }
      case 'networks': {
        const nets = new Map<string, Loc>();
        if (Array.isArray(value)) {
          value.forEach((n, i) => {
            if (typeof n !== 'string' || !n) throw err('invalid_value', `networks entries must be network names, not ${describeValue(n)}`, [...path, i]);
            nets.set(n, loc([...path, i]));
          });
        } else {
          const options = new Map<string, ServiceNetwork>();
          for (const [n, opt] of Object.entries(mapping(value, path, 'networks'))) {
            const p = [...path, n];
            const o = mapping(opt, p, `networks.${n}`);
            const known = ['aliases', 'ipv4_address', 'ipv6_address', 'priority', 'link_local_ips', 'mac_address', 'driver_opts', 'gw_priority', 'interface_name'];
            const sn: ServiceNetwork = {};
            for (const [k, v] of Object.entries(o)) {
              if (k === 'aliases') {
                const aliases = list(v, [...p, k], 'aliases').map((a, i) => at([...p, k, i], () => scalarString(a, 'aliases')).v).filter((a) => a !== frag.name);
                if (aliases.length) sn.aliases = [...new Set(aliases)].sort();
              } else if (k === 'ipv4_address' || k === 'ipv6_address') {
                const ip = at([...p, k], () => scalarString(v, k)).v;
                if (isIP(ip) !== (k === 'ipv4_address' ? 4 : 6)) throw err('invalid_value', `${k} "${ip}" is not an IPv${k === 'ipv4_address' ? 4 : 6} address`, [...p, k]);
                if (k === 'ipv4_address') sn.ipv4Address = ip;
                else sn.ipv6Address = ip;
              } else if (k === 'link_local_ips') {
                const ips = list(v, [...p, k], 'link_local_ips').map((a, i) => at([...p, k, i], () => { const ip = scalarString(a, 'link_local_ips'); if (!isIP(ip)) throw new FieldProblem('invalid_value', `link_local_ips entry "${ip}" is not an IP address`); return ip; }).v);
                if (ips.length) sn.linkLocalIps = [...new Set(ips)].sort();
              } else if (k === 'driver_opts') {
                const o = at([...p, k], () => stringMap(v, 'driver_opts')).v;
                if (Object.keys(o).length) sn.driverOpts = Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
              } else if (k === 'mac_address') {
                const mac = at([...p, k], () => macAddress(v)).v;
                if (mac) sn.macAddress = mac;
              } else if (k === 'priority' || k === 'gw_priority') {
                if (k === 'gw_priority') throw err('unsupported', `network option ${k} is not supported by berth`, [...p, k], 'use priority: the network with the highest priority is the one the container is created on');
                const pr = at([...p, k], () => { const x = typeof v === 'string' ? Number(v) : v; if (typeof x !== 'number' || !Number.isInteger(x)) throw new FieldProblem('invalid_value', `priority must be an integer, not ${describeValue(v)}`); return x; }).v;
                if (pr !== 0) sn.priority = pr;
              } else if (known.includes(k)) throw err('unsupported', `network option ${k} is not supported by berth`, [...p, k], 'supported: aliases, ipv4_address, ipv6_address, link_local_ips, mac_address, driver_opts, priority');
              else throw err('unknown_key', `unknown key "${k}" in networks.${n}`, [...p, k], didYouMean(k, known) || `known keys: ${known.join(', ')}`);
            }
            if (Object.keys(sn).length) options.set(n, sn);
            nets.set(n, loc(p));
          }
          if (options.size) frag.networkOptions = options;
        }
        frag.networks = nets;
        return;
      }
      case 'depends_on': {
        const deps = new Map<string, DependsFragment>();
        if (Array.isArray(value)) {
          value.forEach((d, i) => {
            if (typeof d !== 'string' || !d) throw err('invalid_value', `depends_on entries must be service names, not ${describeValue(d)}`, [...path, i]);
            deps.set(d, { service: d, condition: 'service_started', required: true, at: loc([...path, i]) });
          });
        } else {
          for (const [d, opt] of Object.entries(mapping(value, path, 'depends_on'))) {
            const p = [...path, d];
            const o = mapping(opt, p, `depends_on.${d}`);
            const known = ['condition', 'required', 'restart'];
            for (const k of Object.keys(o)) if (!known.includes(k)) throw err('unknown_key', `unknown key "${k}" in depends_on.${d}`, [...p, k], didYouMean(k, known) || `known keys: ${known.join(', ')}`);
            const condition = o.condition === undefined ? 'service_started' : o.condition;
            if (!CONDITIONS.includes(condition as DependsOnCondition))
              throw err('invalid_value', `depends_on.${d}.condition must be one of ${CONDITIONS.join(', ')}, not ${describeValue(condition)}`, [...p, 'condition']);
            const required = o.required === undefined ? true : at([...p, 'required'], () => asBool(o.required, 'required')).v;
            const restart = o.restart === undefined ? false : at([...p, 'restart'], () => asBool(o.restart, 'restart')).v;
            deps.set(d, { service: d, condition: condition as DependsOnCondition, required, ...(restart ? { restart } : {}), at: loc(p) });
          }
        }
        frag.dependsOn = deps;
        return;
      }
      case 'healthcheck': {
        const o = mapping(value, path, 'healthcheck');
        const h: HealthFragment = { at: loc(path) };
        const known = ['test', 'interval', 'timeout', 'retries', 'start_period', 'start_interval', 'disable'];
        for (const [k, v] of Object.entries(o)) {
          const p = [...path, k];
          switch (k) {
            case 'test':
              h.test = at(p, () => healthTest(v));
              break;
            case 'interval':
              h.intervalMs = at(p, () => healthDuration(v, 'healthcheck.interval'));
              break;
            case 'timeout':
              h.timeoutMs = at(p, () => healthDuration(v, 'healthcheck.timeout'));
              break;
            case 'start_period':
              h.startPeriodMs = at(p, () => healthDuration(v, 'healthcheck.start_period'));
              break;
            case 'retries':
              h.retries = at(p, () => asNonNegativeInt(v, 'healthcheck.retries'));
              break;
            case 'disable':
              h.disable = at(p, () => asBool(v, 'healthcheck.disable'));
              break;
            case 'start_interval':
              // Older engines drop it without a word: the apply checks the target's API version before the create (executor.ts).
              h.startIntervalMs = at(p, () => healthDuration(v, 'healthcheck.start_interval'));
              break;
            default:
              throw err('unknown_key', `unknown key "${k}" in healthcheck`, p, didYouMean(k, known) || `known keys: ${known.join(', ')}`);
          }
        }
        frag.healthcheck = h;
        return;
      }
      case 'labels':
        frag.labels = labelsOf(value, path);
        return;
      case 'restart': {
        const r = at(path, () => scalarString(value, 'restart'));
        const retries = /^on-failure:(\d+)$/.exec(r.v);
        if (retries) {
          frag.restart = { v: 'on-failure', at: r.at };
          frag.extras.restartMaxRetries = { v: Number(retries[1]), at: r.at };
          return;
        }
        // deploy.restart_policy's words, which docker compose maps for restart: too
        const policy = r.v === 'none' ? 'no' : r.v === 'any' ? 'always' : r.v;
        if (!RESTARTS.includes(policy as RestartPolicy)) throw err('invalid_value', `restart must be one of ${RESTARTS.join(', ')} or on-failure:N, not "${r.v}"`, path);
        frag.restart = { v: policy as RestartPolicy, at: r.at };
        delete frag.extras.restartMaxRetries;
        return;
      }
      case 'user':
        frag.user = at(path, () => scalarString(value, 'user'));
        return;
      case 'working_dir': {
        const w = at(path, () => scalarString(value, 'working_dir'));
        if (!w.v.startsWith('/')) throw err('invalid_value', `working_dir "${w.v}" is not an absolute path`, path);
        frag.workingDir = w;
        return;
      }
      case 'deploy': {
        const o = mapping(value, path, 'deploy');
        for (const [k, v] of Object.entries(o)) {
          if (k === 'resources') {
            resources(frag, v, [...path, k]);
            continue;
          }
          if (k === 'mode') {
            // One engine is one node: global means one container, as docker compose runs it.
            const mode = at([...path, k], () => scalarString(v, 'deploy.mode')).v;
            if (mode !== 'replicated' && mode !== 'global') throw err('invalid_value', `deploy.mode must be replicated or global, not "${mode}"`, [...path, k]);
            continue;
          }
          if (k === 'update_config' || k === 'rollback_config') {
            const r = rollout(v, [...path, k], `deploy.${k}`);
            if (k === 'update_config') frag.updateConfig = r;
            else frag.rollbackConfig = r;
            continue;
          }
          if (k === 'restart_policy') {
            frag.deployRestart = restartPolicy(v, [...path, k]);
            continue;
          }
          if (k === 'placement' || k === 'labels' || k === 'endpoint_mode')
            throw err('unsupported', `deploy.${k} is not supported by berth`, [...path, k], 'berth deploys to plain Docker engines, not Swarm: only deploy.replicas, deploy.resources, deploy.restart_policy, deploy.update_config and deploy.rollback_config apply');
          if (k !== 'replicas') throw err('unknown_key', `unknown key "${k}" in deploy`, [...path, k], 'known keys: replicas, resources, mode, restart_policy, update_config, rollback_config');
          const r = at([...path, k], () => asReplicas(v, 'deploy.replicas'));
          if (frag.replicas && frag.replicas.v !== r.v) throw err('bad_replicas', `deploy.replicas (${r.v}) contradicts scale (${frag.replicas.v})`, [...path, k]);
          frag.replicas = r;
        }
        return;
      }
      case 'scale': {
        const r = at(path, () => asReplicas(value, 'scale'));
        if (frag.replicas && frag.replicas.v !== r.v) throw err('bad_replicas', `scale (${r.v}) contradicts deploy.replicas (${frag.replicas.v})`, path);
        frag.replicas = r;
        return;
      }
      case 'privileged':
        frag.privileged = at(path, () => asBool(value, 'privileged'));
        return;
      case 'network_mode': {
        const m = at(path, () => scalarString(value, 'network_mode'));
        // `default` is Docker's name for the default bridge on Linux (CasaOS's Twingate app writes it).
        if (!['host', 'none', 'bridge', 'default'].includes(m.v) && !parseJoin(m.v))
          throw err('invalid_value', `network_mode must be host, none, bridge, default, service:NAME or container:NAME, not "${m.v}"`, path);
        frag.networkMode = m;
        return;
      }
      case 'pid': {
        const m = at(path, () => scalarString(value, 'pid'));
        if (m.v !== 'host' && !parseJoin(m.v)) throw err('invalid_value', `pid must be host, service:NAME or container:NAME, not "${m.v}"`, path);
        frag.pid = m;
        return;
      }
      case 'cap_add':
        frag.capAdd = list(value, path, 'cap_add').map((c, i) =>
          at([...path, i], () => {
            const cap = scalarString(c, 'cap_add').toUpperCase().replace(/^CAP_/, '');
            if (!/^[A-Z_]+$/.test(cap)) throw new FieldProblem('invalid_value', `invalid capability "${c}"`);
            return cap;
          }),
        );
        return;
      case 'devices': {
        // One device per path in the container, as compose keeps it: a later entry for the same path replaces the earlier one in its place.
        const devices: At<string>[] = [];
        const place = new Map<string, number>();
        list(value, path, 'devices').forEach((d, i) => {
          const parsed = at([...path, i], () => device(d));
          const j = place.get(deviceTarget(parsed.v));
          if (j !== undefined) devices[j] = parsed;
          else place.set(deviceTarget(parsed.v), devices.push(parsed) - 1);
        });
        frag.devices = devices;
        return;
      }
      case 'gpus': {
        // compose's GPU request: the device requests of deploy.resources.reservations.devices, each with the gpu
        // capability added (`all`: every GPU); both keys' requests go to the engine
        const gpus = at(path, () => (value === 'all' ? [{ capabilities: ['gpu'], count: -1 }] : deviceRequests(value, 'gpus')));
        frag.extras.deviceRequests = frag.extras.deviceRequests ? { v: [...(frag.extras.deviceRequests.v ?? []), ...gpus.v], at: frag.extras.deviceRequests.at } : gpus;
        return;
      }
      case 'configs':
      case 'secrets': {
        const kind = key === 'configs' ? 'config' : 'secret';
        frag[key] = list(value, path, key).map((e, i) => at([...path, i], () => parseFileRef(kind, e)));
        return;
      }
      case 'volumes_from':
        frag.volumesFrom = list(value, path, 'volumes_from').map((v, i) => at([...path, i], () => parseVolumesFrom(v)));
        return;
      case 'links':
        frag.links = list(value, path, 'links').map((l, i) =>
          at([...path, i], () => {
            const [service, alias, more] = scalarString(l, 'links').split(':');
            if (!service || more !== undefined || alias === '' || !NAME_RE.test(service) || (alias !== undefined && !NAME_RE.test(alias)))
              throw new FieldProblem('invalid_value', `invalid link ${describeValue(l)}`, 'use SERVICE or SERVICE:ALIAS');
            return { service, alias: alias ?? service };
          }),
        );
        return;
      case 'profiles':
        frag.profiles = at(path, () => {
          const ps = (Array.isArray(value) ? value : [value]).map((p) => scalarString(p, 'profiles'));
          // "" is a name too: pixelfed writes `- ${DOCKER_PROXY_PROFILE:-}`, on unless the variable names another profile
          for (const p of ps) if (p !== '' && !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(p)) throw new FieldProblem('invalid_value', `invalid profile name "${p}"`);
          return ps;
        });
        return;
      case 'build':
        frag.build = loc(path);
        return;
      case 'develop':
        frag.develop = loc(path);
        return;
      case 'attach':
        at(path, () => asBool(value, 'attach'));
        frag.attach = loc(path);
        return;
      case 'extends':
        // resolved by the loader once every file is read (it may name a service of another file)
        frag.extendsRef = at(path, () => {
          if (typeof value === 'string') return { service: value };
          const o = mapping(value, path, 'extends');
          for (const k of Object.keys(o)) if (k !== 'service' && k !== 'file') throw new FieldProblem('unknown_key', `unknown key "${k}" in extends`, 'known keys: service, file', [k]);
          const service = scalarString(o.service, 'extends.service');
          if (o.file === undefined) return { service };
          const file = repoRelative(scalarString(o.file, 'extends.file'), opts.fileDir ?? '');
          if (file === undefined) throw new FieldProblem('path_escapes_repo', `extends.file ${String(o.file)} is outside the repository`, 'use a file inside the repository', ['file']);
          return { service, file };
        });
        return;
      case 'env_file':
        frag.envFiles = envFiles(value, path);
        return;
      case 'label_file':
        frag.labelFiles = labelFiles(value, path);
        return;
      default: {
        const spec = EXTRA_KEYS[key];
        if (!spec) return;
        const parsed = at(path, () => spec.parse(value));
        // v undefined: a value that means unset (an empty container_name); in an override file it unsets the base's
        (frag.extras as Record<string, At<unknown>>)[spec.field] = parsed;
      }
    }
  }

  /**
   * deploy.restart_policy, as docker compose applies it to a container: condition none → restart no,
   * on-failure → on-failure (max_attempts its retry count), any (the default) → always. delay and window
   * are Swarm's and have no container setting: refused rather than dropped.
   */
  function restartPolicy(value: unknown, path: PathSeg[]): DeployRestartFragment {
    const o = mapping(value, path, 'deploy.restart_policy');
    const out: DeployRestartFragment = { at: loc(path) };
    for (const [k, v] of Object.entries(o)) {
      const p = [...path, k];
      if (k === 'condition') {
        const c = at(p, () => scalarString(v, 'deploy.restart_policy.condition'));
        // docker compose maps restart:'s words here too (Dokploy's frappe blueprints write `condition: always`)
        const word = c.v === 'no' ? 'none' : c.v === 'always' ? 'any' : c.v;
        if (word !== 'none' && word !== 'on-failure' && word !== 'any' && word !== 'unless-stopped')
          throw err('invalid_value', `deploy.restart_policy.condition must be none, on-failure or any (or no, always, unless-stopped), not "${c.v}"`, p);
        out.condition = { v: word, at: c.at };
      } else if (k === 'max_attempts') out.maxAttempts = at(p, () => asNonNegativeInt(v, 'deploy.restart_policy.max_attempts'));
      else if (k === 'delay' || k === 'window')
        throw err('unsupported', `deploy.restart_policy.${k} is not supported by berth`, p, `it is a Swarm setting with no container equivalent (Docker restarts a container with its own back-off): remove it`);
      else throw err('unknown_key', `unknown key "${k}" in deploy.restart_policy`, p, didYouMean(k, ['condition', 'max_attempts', 'delay', 'window']) || 'known keys: condition, max_attempts');
    }
    return out;
  }

  /** deploy.update_config / rollback_config: each key checked where it is written, defaults applied by the loader. */
  function rollout(value: unknown, path: PathSeg[], what: string): RolloutFragment {
    const o = mapping(value, path, what);
    const out: RolloutFragment = { at: loc(path), keys: {} };
    const known = ['parallelism', 'delay', 'order', 'failure_action', 'monitor', 'max_failure_ratio'];
    for (const [k, v] of Object.entries(o)) {
      const p = [...path, k];
      switch (k) {
        case 'parallelism':
          out.keys.parallelism = at(p, () => asNonNegativeInt(v, `${what}.parallelism`)).v;
          break;
        case 'delay':
          out.keys.delayMs = at(p, () => parseDuration(v, `${what}.delay`)).v;
          break;
        case 'monitor':
          out.keys.monitorMs = at(p, () => parseDuration(v, `${what}.monitor`)).v;
          break;
        case 'order': {
          const order = at(p, () => scalarString(v, `${what}.order`));
          if (order.v !== 'stop-first' && order.v !== 'start-first') throw err('invalid_value', `${what}.order must be stop-first or start-first, not "${order.v}"`, p);
          out.keys.order = order.v as RolloutOrder;
          out.orderAt = order.at;
          break;
        }
        case 'failure_action': {
          const a = at(p, () => scalarString(v, `${what}.failure_action`)).v;
          if (a !== 'rollback' && a !== 'pause' && a !== 'continue') throw err('invalid_value', `${what}.failure_action must be rollback, pause or continue, not "${a}"`, p);
          out.keys.failureAction = a as FailureAction;
          break;
        }
        case 'max_failure_ratio': {
          const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(v) ? Number(v) : NaN;
          if (!Number.isFinite(n) || n < 0 || n > 1) throw err('invalid_value', `${what}.max_failure_ratio must be a number from 0 to 1, not ${describeValue(v)}`, p);
          out.keys.maxFailureRatio = n;
          break;
        }
        default:
          throw err('unknown_key', `unknown key "${k}" in ${what}`, p, didYouMean(k, known) || `known keys: ${known.join(', ')}`);
      }
    }
    return out;
  }

  /** deploy.resources.limits.pids: an integer; a negative one is held as -1, Docker's "unlimited" (compose sets none) */
  function deployPids(v: unknown): number {
    const n = typeof v === 'number' ? v : typeof v === 'string' && /^[-+]?\d+$/.test(v.trim()) ? Number(v.trim()) : NaN;
    if (!Number.isSafeInteger(n)) throw new FieldProblem('invalid_value', `deploy.resources.limits.pids must be an integer (-1 for no limit), not ${describeValue(v)}`);
    return n < 0 ? -1 : n;
  }

  /** deploy.resources limits/reservations → the same fields as cpus, mem_limit, mem_reservation and pids_limit */
  function resources(frag: ServiceFragment, value: unknown, path: PathSeg[]): void {
    const o = mapping(value, path, 'deploy.resources');
    for (const [kind, raw] of Object.entries(o)) {
      const p = [...path, kind];
      if (kind !== 'limits' && kind !== 'reservations') throw err('unknown_key', `unknown key "${kind}" in deploy.resources`, p, 'known keys: limits, reservations');
      for (const [k, v] of Object.entries(mapping(raw, p, `deploy.resources.${kind}`))) {
        const q = [...p, k];
        const deployed = (frag.deployResources ??= {});
        if (kind === 'limits' && k === 'cpus') deployed.nanoCpus = at(q, () => parseCpus(v, 'deploy.resources.limits.cpus'));
        else if (kind === 'limits' && k === 'memory') deployed.memLimit = at(q, () => parseBytes(v, 'deploy.resources.limits.memory'));
        // compose sets a pids limit only above 0: -1 (as Docker writes "unlimited"), or any negative, is no limit
        else if (kind === 'limits' && k === 'pids') deployed.pidsLimit = at(q, () => deployPids(v));
        else if (kind === 'reservations' && k === 'memory') deployed.memReservation = at(q, () => parseBytes(v, 'deploy.resources.reservations.memory'));
        else if (kind === 'reservations' && k === 'devices') {
          const devices = at(q, () => deviceRequests(v));
          frag.extras.deviceRequests = frag.extras.deviceRequests ? { v: [...devices.v, ...(frag.extras.deviceRequests.v ?? [])], at: devices.at } : devices;
        }
        else if (kind === 'reservations' && k === 'cpus')
          // docker compose drops it without a word (a Swarm scheduling option); berth says so instead.
          throw err('unsupported', 'deploy.resources.reservations.cpus cannot be honoured on a Docker engine', q, 'a CPU reservation is a Swarm scheduling option with no container setting (docker compose ignores it): remove it, or cap the service with deploy.resources.limits.cpus');
        else if (kind === 'reservations' && k === 'generic_resources')
          throw err('unsupported', 'deploy.resources.reservations.generic_resources cannot be honoured on a Docker engine', q, 'generic resources are advertised by Swarm nodes; on a Docker engine reserve a device with deploy.resources.reservations.devices');
        else throw err('unknown_key', `unknown key "${k}" in deploy.resources.${kind}`, q, kind === 'limits' ? 'known keys: cpus, memory, pids' : 'known keys: memory, devices');
      }
    }
  }

  /**
   * `reservations.devices`: compose's device requests (`capabilities` required; `driver`, `count` (a number or
   * all), `device_ids`, `options`). `gpus`: the same entries, the gpu capability added (capabilities optional).
   */
  function deviceRequests(v: unknown, key: 'deploy.resources.reservations.devices' | 'gpus' = 'deploy.resources.reservations.devices'): DeviceRequest[] {
    const fail = (code: string, problem: string, hint?: string): never => {
      throw new FieldProblem(code, problem, hint);
    };
    const gpu = key === 'gpus';
    if (!Array.isArray(v)) return fail('invalid_value', `${key} must be ${gpu ? 'all or a list' : 'a list'}`, gpu ? 'e.g. gpus: all, or a list of requests (driver, count, device_ids, capabilities, options)' : 'e.g. - capabilities: [gpu]');
    return v.map((entry, i) => {
      if (!entry || typeof entry !== 'object' || Array.isArray(entry)) return fail('invalid_value', `${key}[${i}] must be a mapping`);
      const o = entry as Record<string, unknown>;
      for (const k of Object.keys(o)) if (!['capabilities', 'driver', 'count', 'device_ids', 'options'].includes(k)) fail('unknown_key', `unknown key "${k}" in ${key}[${i}]`, 'known keys: capabilities, driver, count, device_ids, options');
      const strings = (x: unknown, what: string): string[] => (Array.isArray(x) && x.every((y) => typeof y === 'string' || typeof y === 'number') ? x.map(String) : fail('invalid_value', `${what} must be a list of strings`));
      const capabilities = o.capabilities === undefined ? (gpu ? ['gpu'] : fail('invalid_value', `${key}[${i}] needs capabilities`, 'e.g. capabilities: [gpu]')) : [...strings(o.capabilities, 'capabilities'), ...(gpu ? ['gpu'] : [])];
      if (o.count !== undefined && o.device_ids !== undefined) fail('invalid_value', `${key}[${i}]: count and device_ids cannot both be set`);
      const count = o.count === undefined ? undefined : o.count === 'all' ? -1 : asNonNegativeInt(o.count, 'count');
      const options: Record<string, string> = {};
      for (const [k, val] of Object.entries((o.options as Record<string, unknown> | undefined) ?? {})) options[k] = String(val);
      return {
        capabilities: [...new Set(capabilities)].sort(),
        ...(o.driver !== undefined ? { driver: String(o.driver) } : {}),
        ...(count !== undefined ? { count } : {}),
        ...(o.device_ids !== undefined ? { deviceIds: strings(o.device_ids, 'device_ids') } : {}),
        ...(Object.keys(options).length ? { options: sortRecord(options) } : {}),
      };
    });
  }

  /** `env_file:` entries read through the repository reader (parsed once the service is merged: load.ts). */
  function envFiles(value: unknown, path: PathSeg[]): EnvFileText[] {
    const entries = typeof value === 'string' ? [value] : list(value, path, 'env_file');
    const out: EnvFileText[] = [];
    entries.forEach((e, i) => {
      const p = typeof value === 'string' ? path : [...path, i];
      let ref: EnvFileRef;
      if (typeof e === 'string') ref = { path: e, required: true };
      else {
        const o = mapping(e, p, 'env_file entry');
        for (const k of Object.keys(o)) if (!['path', 'required', 'format'].includes(k)) throw err('unknown_key', `unknown key "${k}" in env_file`, [...p, k], 'known keys: path, required, format');
        const fmt = o.format === undefined ? undefined : at([...p, 'format'], () => scalarString(o.format, 'format')).v;
        if (fmt !== undefined && fmt !== 'raw') throw err('invalid_value', `env_file format must be raw, not "${fmt}"`, [...p, 'format']);
        ref = { path: at([...p, 'path'], () => scalarString(o.path, 'path')).v, required: o.required === undefined ? true : at([...p, 'required'], () => asBool(o.required, 'required')).v, ...(fmt ? { format: 'raw' as const } : {}) };
      }
      const full = repoRelative(ref.path, opts.fileDir ?? '');
      if (full === undefined) throw err('path_escapes_repo', `env_file ${ref.path} is outside the repository`, p, 'use a file inside the repository');
      const text = opts.readFile?.(full);
      if (text === undefined) {
        if (!ref.required) return;
        // a .env is what users keep out of git (it holds the passwords): say how berth supplies its values instead
        const dotenv = /(^|\/)\.env(\.[^/]*)?$|\.env$/.test(full);
        const hint = dotenv
          ? 'add the file to the repository, or mark it optional: env_file: [{path: …, required: false}]; a .env that holds secrets stays out of the repository: list its entries under environment: as ${VARIABLE}s that the environment\'s variables or server-side secrets in .github/berth.yml supply'
          : 'add the file to the repository, or mark it optional: env_file: [{path: …, required: false}]';
        out.push({ file: full, text: '', raw: false, variables: opts.variables, missing: err('missing_file', `env_file ${ref.path} not found (looked for ${full} in the repository)`, p, hint) });
        return;
      }
      out.push({ file: full, text, raw: ref.format === 'raw', variables: opts.variables });
    });
    return out;
  }

  /**
   * `label_file:` entries (a path or a list of paths, relative as env_file's are, each required) read through the
   * repository reader; parsed once the service is merged (load.ts), as compose-go reads them.
   */
  function labelFiles(value: unknown, path: PathSeg[]): EnvFileText[] {
    const entries = typeof value === 'string' ? [value] : list(value, path, 'label_file');
    return entries.map((e, i) => {
      const p = typeof value === 'string' ? path : [...path, i];
      const rel = at(p, () => scalarString(e, 'label_file')).v;
      const full = repoRelative(rel, opts.fileDir ?? '');
      if (full === undefined) throw err('path_escapes_repo', `label_file ${rel} is outside the repository`, p, 'use a file inside the repository');
      const text = opts.readFile?.(full);
      if (text === undefined) return { file: full, text: '', raw: false, variables: {}, missing: err('missing_file', `label_file ${rel} not found (looked for ${full} in the repository)`, p, 'add the file to the repository or fix the path (relative to the compose file), or write the labels under labels:') };
      return { file: full, text, raw: false, variables: {} };
    });
  }

  // ------------------------------------------------------------ networks and volumes
  /** the keys networks and volumes share: driver, labels, external, name, driver_opts; false for any other key */
  function sharedKey(o: VolumeFragment | NetworkFragment, k: string, v: unknown, p: PathSeg[]): boolean {
    if (k === 'driver') o.driver = at(p, () => scalarString(v, 'driver'));
    else if (k === 'labels') o.labels = labelsOf(v, p);
    else if (k === 'name') o.dockerName = at(p, () => dockerObjectName(v));
    else if (k === 'driver_opts') o.driverOpts = at(p, () => stringMap(v, 'driver_opts'));
    else if (k === 'external') {
      const ext = at(p, () => externalFlag(v));
      o.external = { v: ext.v.external, at: ext.at };
      if (ext.v.name) o.dockerName = { v: ext.v.name, at: ext.at };
    } else return false;
    return true;
  }
  // An extended file lends one service: its networks, volumes, configs and secrets are not the project's.
  if (only) return out;
  const networks = mapping(interpolated('networks'), ['networks'], 'networks');
  for (const [name, raw] of Object.entries(networks)) {
    const base: PathSeg[] = ['networks', name];
    if (!NAME_RE.test(name)) throw err('bad_name', `invalid network name "${name}"`, base, 'use letters, digits, "_", "." and "-"');
    const n: NetworkFragment = { name, at: loc(base) };
    const known = ['driver', 'internal', 'attachable', 'labels', 'external', 'name', 'driver_opts', 'ipam', 'enable_ipv6'];
    for (const [k, v] of Object.entries(mapping(raw, base, `network ${name}`))) {
      const p = [...base, k];
      if (k.startsWith('x-')) continue;
      if (sharedKey(n, k, v, p)) continue;
      if (k === 'internal') n.internal = at(p, () => asBool(v, 'internal'));
      else if (k === 'attachable') n.attachable = at(p, () => asBool(v, 'attachable'));
      else if (k === 'enable_ipv6') n.enableIpv6 = at(p, () => asBool(v, 'enable_ipv6'));
      else if (k === 'ipam') n.ipam = at(p, () => ipam(v));
      else if (k === 'enable_ipv4') throw err('unsupported', `network option ${k} is not supported by berth`, p, `supported: ${known.join(', ')}`);
      else throw err('unknown_key', `unknown key "${k}" in network ${name}`, p, didYouMean(k, known) || `known keys: ${known.join(', ')}`);
    }
    out.networks.set(name, n);
  }
  const volumes = mapping(interpolated('volumes'), ['volumes'], 'volumes');
  for (const [name, raw] of Object.entries(volumes)) {
    const base: PathSeg[] = ['volumes', name];
    if (!NAME_RE.test(name)) throw err('bad_name', `invalid volume name "${name}"`, base, 'use letters, digits, "_", "." and "-"');
    const v: VolumeFragment = { name, at: loc(base) };
    const known = ['driver', 'labels', 'external', 'name', 'driver_opts'];
    for (const [k, val] of Object.entries(mapping(raw, base, `volume ${name}`))) {
      const p = [...base, k];
      if (k.startsWith('x-')) continue;
      if (!sharedKey(v, k, val, p)) throw err('unknown_key', `unknown key "${k}" in volume ${name}`, p, didYouMean(k, known) || `known keys: ${known.join(', ')}`);
    }
    out.volumes.set(name, v);
  }

  for (const kind of ['config', 'secret'] as const) {
    const key = `${kind}s` as const;
    for (const [name, raw] of Object.entries(mapping(interpolated(key), [key], key))) {
      const base: PathSeg[] = [key, name];
      if (!NAME_RE.test(name)) throw err('bad_name', `invalid ${kind} name "${name}"`, base, 'use letters, digits, "_", "." and "-"');
      const source = at(base, () => parseFileSource(kind, name, raw)).v;
      // a config file: relative to where this file's paths resolve (an included file's own directory)
      out[key].set(name, { name, at: loc(base), source: source.from === 'file' ? { ...source, dir: opts.fileDir ?? '' } : source, ...(source.from === 'file' ? { fileAt: loc([...base, 'file']) } : {}) });
    }
  }

  for (const key of y.tags.keys()) {
    if (consumed.has(key)) continue;
    const path = key.split('\u0000');
    throw err('unsupported', `!${y.tags.get(key)} is only supported on a service or a service attribute`, path);
  }
  return out;
}

function healthTest(v: unknown): string[] {
  if (typeof v === 'string') return ['CMD-SHELL', v];
  if (!Array.isArray(v) || v.length === 0) throw new FieldProblem('invalid_value', `healthcheck.test must be a string or a non-empty list, not ${describeValue(v)}`);
  const words = v.map((w) => scalarString(w, 'healthcheck.test'));
  if (!['NONE', 'CMD', 'CMD-SHELL'].includes(words[0]!))
    throw new FieldProblem('invalid_value', `healthcheck.test list must start with CMD, CMD-SHELL or NONE, not "${words[0]}"`, 'e.g. ["CMD", "pg_isready"] or ["CMD-SHELL", "curl -f http://localhost || exit 1"]');
  return words;
}

/** `external: true`, or the legacy `external: {name: …}` */
function externalFlag(v: unknown): { external: boolean; name?: string } {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (k !== 'name') throw new FieldProblem('unknown_key', `unknown key "${k}" in external`, 'known keys: name', [k]);
    return { external: true, ...(o.name !== undefined ? { name: dockerObjectName(o.name) } : {}) };
  }
  return { external: asBool(v, 'external') };
}

function dockerObjectName(v: unknown): string {
  const n = scalarString(v, 'name');
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(n)) throw new FieldProblem('invalid_value', `invalid name "${n}"`, 'use letters, digits, "_", "." and "-", starting with a letter or digit');
  return n;
}

/** A healthcheck timing: 0 (the image's or Docker's default) or at least a millisecond, the least the engine takes. */
function healthDuration(v: unknown, what: string): number {
  const ms = parseDuration(v, what);
  if (ms > 0 && ms < 1) throw new FieldProblem('invalid_value', `${what} must be 0 or at least 1ms, not ${describeValue(v)} (Docker refuses shorter)`);
  return ms;
}

function stringMap(v: unknown, what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, val] of mapOrList(v, what)) out[k] = val ?? '';
  return Object.fromEntries(Object.keys(out).sort().map((k) => [k, out[k]!]));
}

function ipam(v: unknown): import('../model/model.js').Ipam {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new FieldProblem('invalid_value', `ipam must be a mapping, not ${describeValue(v)}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['driver', 'config', 'options'].includes(k)) throw new FieldProblem('unknown_key', `unknown key "${k}" in ipam`, 'known keys: driver, config, options', [k]);
  const config = (o.config === undefined || o.config === null ? [] : Array.isArray(o.config) ? o.config : [o.config]).map((c, i) => {
    if (!c || typeof c !== 'object' || Array.isArray(c)) throw new FieldProblem('invalid_value', 'ipam.config entries must be mappings', undefined, ['config', i]);
    const pool: import('../model/model.js').IpamPool = {};
    for (const [k, val] of Object.entries(c as Record<string, unknown>)) {
      if (k === 'subnet') pool.subnet = scalarString(val, 'subnet');
      else if (k === 'ip_range') pool.ipRange = scalarString(val, 'ip_range');
      else if (k === 'gateway') pool.gateway = scalarString(val, 'gateway');
      else if (k === 'aux_addresses') pool.auxAddresses = stringMap(val, 'aux_addresses');
      else throw new FieldProblem('unknown_key', `unknown key "${k}" in ipam.config`, 'known keys: subnet, ip_range, gateway, aux_addresses', ['config', i, k]);
    }
    return pool;
  });
  return {
    ...(o.driver !== undefined && o.driver !== null ? { driver: scalarString(o.driver, 'ipam.driver') } : {}),
    config,
    ...(o.options ? { options: stringMap(o.options, 'ipam.options') } : {}),
  };
}

/** `rel` (relative to repository directory `dir`) as a repository path; undefined when it leaves the repository. */
export function repoRelative(rel: string, dir: string): string | undefined {
  const p = rel.replace(/\\/g, '/');
  if (posix.isAbsolute(p) || p.includes('\0')) return undefined;
  const n = posix.normalize(posix.join(dir || '.', p));
  if (n === '..' || n.startsWith('../') || n === '.') return undefined;
  return n;
}

/** A directory `rel` (relative to repository directory `dir`) as a repository directory ('' the root); undefined when it leaves the repository. */
export function repoDirectory(rel: string, dir: string): string | undefined {
  const p = rel.replace(/\\/g, '/');
  if (posix.isAbsolute(p) || p.includes('\0')) return undefined;
  const n = posix.normalize(posix.join(dir || '.', p)).replace(/\/$/, '');
  if (n === '..' || n.startsWith('../')) return undefined;
  return n === '.' ? '' : n;
}

/** `/dev/x[:/dev/y[:perms]]` or `{source, target, permissions}` → `host:container:perms`. */
/** A device's path in the container (`/dev/sda:/dev/xvda:r` → `/dev/xvda`): compose keeps one device per path. */
export const deviceTarget = (d: string): string => d.split(':')[1]!;

function device(d: unknown): string {
  let host: string, inContainer: string | undefined, perms: string | undefined;
  if (typeof d === 'string') [host, inContainer, perms] = d.split(':') as [string, string | undefined, string | undefined];
  else if (d && typeof d === 'object' && !Array.isArray(d)) {
    const o = d as Record<string, unknown>;
    host = scalarString(o.source, 'source');
    inContainer = o.target === undefined ? undefined : scalarString(o.target, 'target');
    perms = o.permissions === undefined ? undefined : scalarString(o.permissions, 'permissions');
  } else throw new FieldProblem('invalid_value', `invalid device ${describeValue(d)}`);
  // A CDI name (vendor/class=name, e.g. nvidia.com/gpu=all): compose asks the engine's CDI support for it.
  if (typeof d === 'string' && /^[a-z0-9.-]+\/[a-z0-9._-]+=\S+$/i.test(d))
    throw new FieldProblem(
      'unsupported',
      `device ${describeValue(d)} is a CDI device name, which berth does not pass to the engine`,
      'request the device as deploy.resources.reservations.devices (e.g. driver: nvidia, capabilities: [gpu], device_ids: ["0"]), which berth passes to Docker under policy.allow_devices',
    );
  if (!host.startsWith('/') || (inContainer !== undefined && !inContainer.startsWith('/')) || (perms !== undefined && !/^[rwm]+$/.test(perms)))
    throw new FieldProblem('invalid_value', `invalid device ${describeValue(d)}`, 'use /dev/HOST[:/dev/CONTAINER[:rwm]]');
  return `${host}:${inContainer ?? host}:${perms ?? 'rwm'}`;
}

/** Maps whose keys are data (a variable, a label, a driver's option), where an `x-` key is one like any other. */
const FREE_FORM_KEYS = new Set(['environment', 'labels', 'annotations', 'sysctls', 'driver_opts', 'options', 'args', 'extra_hosts', 'storage_opt']);

/**
 * A service key's value without the `x-` extension keys the Compose specification allows in every object
 * within it (a healthcheck, deploy and its parts, logging, a depends_on entry, a long-form port or volume, a
 * network attachment…): compose ignores them, and so does berth. Maps whose keys are data keep theirs.
 */
function withoutExtensions(value: unknown, freeForm = false): unknown {
  if (Array.isArray(value)) return value.some((v) => v !== null && typeof v === 'object') ? value.map((v) => withoutExtensions(v)) : value;
  if (value === null || typeof value !== 'object' || freeForm) return value;
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(value)) {
    const kept = k.startsWith('x-') ? undefined : withoutExtensions(v, FREE_FORM_KEYS.has(k));
    if (out === undefined && (k.startsWith('x-') || kept !== v)) {
      out = {};
      for (const [k2, v2] of Object.entries(value)) {
        if (k2 === k) break;
        out[k2] = v2;
      }
    }
    if (out !== undefined && !k.startsWith('x-')) out[k] = kept;
  }
  return out ?? value;
}
