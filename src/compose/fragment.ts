// One compose file → a typed, located fragment: every key checked, every value
// normalised, every piece remembering the file and line it came from so that
// errors found after merging (a missing image, an undeclared network, a policy
// refusal) still point at the right line.
import { ComposeError } from '../errors.js';
import type { DependsOnCondition, Mount, PortBinding, RestartPolicy } from '../model.js';
import { interpolateTree, InterpolationError, type Variables } from './interpolate.js';
import {
  asBool,
  asNonNegativeInt,
  describeValue,
  FieldProblem,
  mapOrList,
  normalizeImage,
  parseDuration,
  parsePort,
  parseVolume,
  portKey,
  scalarString,
  splitCommand,
  type PathContext,
} from './normalize.js';
import { parseFileRef, parseFileSource, type FileRef, type FileSource } from './files.js';
import { didYouMean } from './suggest.js';
import { formatPath, tagAt, type PathSeg, type YamlFile } from './yaml.js';

export interface Loc {
  file: string;
  line?: number;
  path: string;
}

export interface At<T> {
  v: T;
  at: Loc;
}

export interface HealthFragment {
  at: Loc;
  test?: At<string[]>;
  intervalMs?: At<number>;
  timeoutMs?: At<number>;
  retries?: At<number>;
  startPeriodMs?: At<number>;
  disable?: At<boolean>;
}

export interface DependsFragment {
  service: string;
  condition: DependsOnCondition;
  required: boolean;
  /** restart this service when the dependency is recreated */
  restart?: boolean;
  at: Loc;
}

/** The compose keys of a service that `!reset` / `!override` can apply to. */
export type ServiceField = (typeof SUPPORTED_SERVICE_KEYS)[number];

export interface ServiceFragment {
  name: string;
  at: Loc;
  /** `web: !reset` in an override file: the service is removed */
  removed?: boolean;
  /** `web: !override {…}`: the service replaces the earlier definition instead of merging into it */
  replace?: boolean;
  reset: Set<ServiceField>;
  override: Set<ServiceField>;
  image?: At<string>;
  command?: At<string[]>;
  entrypoint?: At<string[]>;
  environment?: Map<string, At<string>>;
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
  configs?: At<FileRef>[];
  secrets?: At<FileRef>[];
}

/** A top-level config or secret: its name and where its content comes from. */
export interface FileSourceFragment {
  name: string;
  at: Loc;
  source: FileSource;
}

export interface NetworkFragment {
  name: string;
  at: Loc;
  driver?: At<string>;
  internal?: At<boolean>;
  attachable?: At<boolean>;
  labels?: Map<string, At<string>>;
  external?: At<boolean>;
  /** `name:` — the object's name in Docker (for an external one, the object berth looks up) */
  dockerName?: At<string>;
}

export interface VolumeFragment {
  name: string;
  at: Loc;
  driver?: At<string>;
  labels?: Map<string, At<string>>;
  external?: At<boolean>;
  dockerName?: At<string>;
}

export interface FileFragment {
  file: string;
  services: Map<string, ServiceFragment>;
  networks: Map<string, NetworkFragment>;
  volumes: Map<string, VolumeFragment>;
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
  'configs',
  'secrets',
] as const;

/** Compose service keys berth knows but does not support, with what to do instead. */
const UNSUPPORTED_SERVICE_KEYS: Record<string, string> = {
  build: 'berth does not build images: build and push the image in CI, then reference it with image:',
  env_file: 'list the variables under environment: (values can come from the variables of the environment in .github/berth.yml)',
  container_name: 'berth names containers itself (project-environment-service-replica)',
  extends: 'use YAML anchors (x-common: &common … <<: *common) or a second compose file',
  profiles: 'list the files an environment uses in .github/berth.yml instead',
};

const OTHER_COMPOSE_SERVICE_KEYS = [
  'annotations', 'attach', 'blkio_config', 'cap_drop', 'cgroup', 'cgroup_parent', 'cpu_count', 'cpu_percent', 'cpu_period',
  'cpu_quota', 'cpu_rt_period', 'cpu_rt_runtime', 'cpu_shares', 'cpus', 'cpuset', 'credential_spec', 'develop', 'device_cgroup_rules',
  'dns', 'dns_opt', 'dns_search', 'domainname', 'driver_opts', 'expose', 'external_links', 'extra_hosts', 'gpus', 'group_add',
  'hostname', 'init', 'ipc', 'isolation', 'label_file', 'links', 'logging', 'mac_address', 'mem_limit', 'mem_reservation',
  'mem_swappiness', 'memswap_limit', 'models', 'oom_kill_disable', 'oom_score_adj', 'pids_limit', 'platform', 'post_start', 'pre_stop',
  'provider', 'pull_policy', 'read_only', 'runtime', 'security_opt', 'shm_size', 'stdin_open', 'stop_grace_period', 'stop_signal',
  'storage_opt', 'sysctls', 'tmpfs', 'tty', 'ulimits', 'use_api_socket', 'userns_mode', 'uts', 'volumes_from',
];

const TOP_LEVEL_KEYS = ['services', 'networks', 'volumes', 'configs', 'secrets', 'version', 'name'];
const UNSUPPORTED_TOP_LEVEL: Record<string, string> = {
  include: 'list every compose file of the environment in .github/berth.yml instead',
  models: 'not supported by berth',
};

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const CONDITIONS: readonly DependsOnCondition[] = ['service_started', 'service_healthy', 'service_completed_successfully'];
const RESTARTS: readonly RestartPolicy[] = ['no', 'always', 'on-failure', 'unless-stopped'];

export interface FragmentOptions {
  variables: Variables;
  paths: PathContext;
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
    entries.forEach(([k, val], i) => out.set(k, { v: val ?? '', at: loc([...path, Array.isArray(v) ? i : k]) }));
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

  for (const key of Object.keys(root)) {
    if (TOP_LEVEL_KEYS.includes(key) || key.startsWith('x-')) continue;
    if (UNSUPPORTED_TOP_LEVEL[key]) throw err('unsupported', `top-level ${key} is not supported by berth`, [key], UNSUPPORTED_TOP_LEVEL[key]);
    const dym = didYouMean(key, TOP_LEVEL_KEYS);
    throw err('unknown_key', `unknown top-level key "${key}"`, [key], dym || `known keys: ${TOP_LEVEL_KEYS.join(', ')}`);
  }

  // Interpolate what berth reads (extension fields are only templates for anchors, already expanded).
  const interpolated = (key: string): unknown => {
    try {
      return interpolateTree(root[key], opts.variables, [key]);
    } catch (e) {
      if (e instanceof InterpolationError) throw err(e.detail.code, e.detail.problem, e.path, e.detail.hint);
      throw e;
    }
  };

  // ------------------------------------------------------------ services
  const services = mapping(interpolated('services'), ['services'], 'services');
  for (const [name, raw] of Object.entries(services)) {
    const base: PathSeg[] = ['services', name];
    if (!NAME_RE.test(name)) throw err('bad_name', `invalid service name "${name}"`, base, 'use letters, digits, "_", "." and "-", starting with a letter or digit');
    const svcTag = tag(base);
    const frag: ServiceFragment = { name, at: loc(base), reset: new Set(), override: new Set() };
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
      if (!(SUPPORTED_SERVICE_KEYS as readonly string[]).includes(key)) {
        if (UNSUPPORTED_SERVICE_KEYS[key]) throw err('unsupported', `${key} is not supported by berth`, path, UNSUPPORTED_SERVICE_KEYS[key]);
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
      serviceField(frag, field, value, path);
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
        const entries = at(path, () => mapOrList(value, 'environment')).v;
        entries.forEach(([k, v], i) => {
          const where = loc([...path, Array.isArray(value) ? i : k]);
          // KEY without a value takes the variable of that name (compose takes it from the shell); unset → not set.
          const resolved = v ?? (Object.prototype.hasOwnProperty.call(opts.variables, k) ? opts.variables[k] : undefined);
          if (resolved !== undefined) env.set(k, { v: resolved, at: where });
        });
        frag.environment = env;
        return;
      }
      case 'ports': {
        const ports: At<PortBinding>[] = [];
        const seen = new Set<string>();
        list(value, path, 'ports').forEach((p, i) => {
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
        list(value, path, 'volumes').forEach((m, i) => {
          const mount = at([...path, i], () => parseVolume(m, opts.paths));
          const dup = mounts.find((x) => x.v.target === mount.v.target);
          if (dup) throw err('bad_volume', `duplicate mount point ${mount.v.target}`, [...path, i], `it is already mounted at line ${dup.at.line}`);
          mounts.push(mount);
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
          for (const [n, opt] of Object.entries(mapping(value, path, 'networks'))) {
            const o = mapping(opt, [...path, n], `networks.${n}`);
            const keys = Object.keys(o);
            if (keys.length) throw err('unsupported', `network option ${keys[0]} is not supported by berth`, [...path, n, keys[0]!], 'list the network by name only');
            nets.set(n, loc([...path, n]));
          }
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
              h.intervalMs = at(p, () => parseDuration(v, 'healthcheck.interval'));
              break;
            case 'timeout':
              h.timeoutMs = at(p, () => parseDuration(v, 'healthcheck.timeout'));
              break;
            case 'start_period':
              h.startPeriodMs = at(p, () => parseDuration(v, 'healthcheck.start_period'));
              break;
            case 'retries':
              h.retries = at(p, () => asNonNegativeInt(v, 'healthcheck.retries'));
              break;
            case 'disable':
              h.disable = at(p, () => asBool(v, 'healthcheck.disable'));
              break;
            case 'start_interval':
              throw err('unsupported', 'healthcheck.start_interval is not supported by berth', p, 'remove it; interval applies from the start');
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
        if (/^on-failure:\d+$/.test(r.v)) throw err('unsupported', `restart "${r.v}": a retry limit is not supported by berth`, path, 'use on-failure');
        if (!RESTARTS.includes(r.v as RestartPolicy)) throw err('invalid_value', `restart must be one of ${RESTARTS.join(', ')}, not "${r.v}"`, path);
        frag.restart = r as At<RestartPolicy>;
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
          if (k !== 'replicas') throw err('unsupported', `deploy.${k} is not supported by berth`, [...path, k], 'only deploy.replicas is');
          const r = at([...path, k], () => asNonNegativeInt(v, 'deploy.replicas', 'bad_replicas'));
          if (frag.replicas && frag.replicas.v !== r.v) throw err('bad_replicas', `deploy.replicas (${r.v}) contradicts scale (${frag.replicas.v})`, [...path, k]);
          frag.replicas = r;
        }
        return;
      }
      case 'scale': {
        const r = at(path, () => asNonNegativeInt(value, 'scale', 'bad_replicas'));
        if (frag.replicas && frag.replicas.v !== r.v) throw err('bad_replicas', `scale (${r.v}) contradicts deploy.replicas (${frag.replicas.v})`, path);
        frag.replicas = r;
        return;
      }
      case 'privileged':
        frag.privileged = at(path, () => asBool(value, 'privileged'));
        return;
      case 'network_mode': {
        const m = at(path, () => scalarString(value, 'network_mode'));
        if (m.v.startsWith('service:')) throw err('unsupported', 'network_mode service:… is not supported by berth', path, 'put both services on one network');
        if (!['host', 'none', 'bridge'].includes(m.v) && !/^container:[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(m.v))
          throw err('invalid_value', `network_mode must be host, none, bridge or container:NAME, not "${m.v}"`, path);
        frag.networkMode = m;
        return;
      }
      case 'pid': {
        const m = at(path, () => scalarString(value, 'pid'));
        if (m.v !== 'host' && !/^container:[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(m.v)) throw err('invalid_value', `pid must be host or container:NAME, not "${m.v}"`, path);
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
      case 'devices':
        frag.devices = list(value, path, 'devices').map((d, i) => at([...path, i], () => device(d)));
        return;
      case 'configs':
      case 'secrets': {
        const kind = key === 'configs' ? 'config' : 'secret';
        frag[key] = list(value, path, key).map((e, i) => at([...path, i], () => parseFileRef(kind, e)));
        return;
      }
    }
  }

  // ------------------------------------------------------------ networks and volumes
  const networks = mapping(interpolated('networks'), ['networks'], 'networks');
  for (const [name, raw] of Object.entries(networks)) {
    const base: PathSeg[] = ['networks', name];
    if (!NAME_RE.test(name)) throw err('bad_name', `invalid network name "${name}"`, base, 'use letters, digits, "_", "." and "-"');
    const n: NetworkFragment = { name, at: loc(base) };
    const known = ['driver', 'internal', 'attachable', 'labels', 'external', 'name'];
    for (const [k, v] of Object.entries(mapping(raw, base, `network ${name}`))) {
      const p = [...base, k];
      if (k.startsWith('x-')) continue;
      if (k === 'driver') n.driver = at(p, () => scalarString(v, 'driver'));
      else if (k === 'internal') n.internal = at(p, () => asBool(v, 'internal'));
      else if (k === 'attachable') n.attachable = at(p, () => asBool(v, 'attachable'));
      else if (k === 'labels') n.labels = labelsOf(v, p);
      else if (k === 'external') n.external = at(p, () => externalFlag(v));
      else if (k === 'name') n.dockerName = at(p, () => dockerObjectName(v));
      else if (['driver_opts', 'ipam', 'enable_ipv4', 'enable_ipv6'].includes(k)) throw err('unsupported', `network option ${k} is not supported by berth`, p, `supported: ${known.join(', ')}`);
      else throw err('unknown_key', `unknown key "${k}" in network ${name}`, p, didYouMean(k, known) || `known keys: ${known.join(', ')}`);
    }
    out.networks.set(name, n);
  }
  const volumes = mapping(interpolated('volumes'), ['volumes'], 'volumes');
  for (const [name, raw] of Object.entries(volumes)) {
    const base: PathSeg[] = ['volumes', name];
    if (!NAME_RE.test(name)) throw err('bad_name', `invalid volume name "${name}"`, base, 'use letters, digits, "_", "." and "-"');
    const v: VolumeFragment = { name, at: loc(base) };
    const known = ['driver', 'labels', 'external', 'name'];
    for (const [k, val] of Object.entries(mapping(raw, base, `volume ${name}`))) {
      const p = [...base, k];
      if (k.startsWith('x-')) continue;
      if (k === 'driver') v.driver = at(p, () => scalarString(val, 'driver'));
      else if (k === 'labels') v.labels = labelsOf(val, p);
      else if (k === 'external') v.external = at(p, () => externalFlag(val));
      else if (k === 'name') v.dockerName = at(p, () => dockerObjectName(val));
      else if (['driver_opts'].includes(k)) throw err('unsupported', `volume option ${k} is not supported by berth`, p, `supported: ${known.join(', ')}`);
      else throw err('unknown_key', `unknown key "${k}" in volume ${name}`, p, didYouMean(k, known) || `known keys: ${known.join(', ')}`);
    }
    out.volumes.set(name, v);
  }

  for (const kind of ['config', 'secret'] as const) {
    const key = `${kind}s` as const;
    for (const [name, raw] of Object.entries(mapping(interpolated(key), [key], key))) {
      const base: PathSeg[] = [key, name];
      if (!NAME_RE.test(name)) throw err('bad_name', `invalid ${kind} name "${name}"`, base, 'use letters, digits, "_", "." and "-"');
      out[key].set(name, { name, at: loc(base), source: at(base, () => parseFileSource(kind, name, raw)).v });
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

/** A Docker network or volume name as `name:` gives it. */
function dockerObjectName(v: unknown): string {
  const s = scalarString(v, 'name');
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(s)) throw new FieldProblem('invalid_value', `invalid Docker name "${s}"`, 'use letters, digits, "_", "." and "-", starting with a letter or digit');
  return s;
}

function externalFlag(v: unknown): boolean {
  if (v && typeof v === 'object' && !Array.isArray(v)) throw new FieldProblem('unsupported', 'external: {name: …} is not supported by berth', 'use external: true with the network or volume named as it is in Docker');
  return asBool(v, 'external');
}

/** `/dev/x[:/dev/y[:perms]]` or `{source, target, permissions}` → `host:container:perms`. */
function device(d: unknown): string {
  let host: string, inContainer: string | undefined, perms: string | undefined;
  if (typeof d === 'string') [host, inContainer, perms] = d.split(':') as [string, string | undefined, string | undefined];
  else if (d && typeof d === 'object' && !Array.isArray(d)) {
    const o = d as Record<string, unknown>;
    host = scalarString(o.source, 'source');
    inContainer = o.target === undefined ? undefined : scalarString(o.target, 'target');
    perms = o.permissions === undefined ? undefined : scalarString(o.permissions, 'permissions');
  } else throw new FieldProblem('invalid_value', `invalid device ${describeValue(d)}`);
  if (!host.startsWith('/') || (inContainer !== undefined && !inContainer.startsWith('/')) || (perms !== undefined && !/^[rwm]+$/.test(perms)))
    throw new FieldProblem('invalid_value', `invalid device ${describeValue(d)}`, 'use /dev/HOST[:/dev/CONTAINER[:rwm]]');
  return `${host}:${inContainer ?? host}:${perms ?? 'rwm'}`;
}
