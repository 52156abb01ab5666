// Compose files → DesiredState. Pure: the caller supplies the texts (from a
// checkout, or GitHub's contents API) and the variables (from the
// environment's config, never the process environment).
import { posix } from 'node:path';
import { desiredNetwork, desiredService, desiredVolume } from '../desired.js';
import { sha256 } from '../hash.js';
import { ComposeError } from '../errors.js';
import type { DeclaredAt, DependsOn, DesiredState, FileMount, Healthcheck, NetworkSpec, ServiceSpec, VolumeSpec } from '../model.js';
import { buildFragment, type Loc, type ServiceFragment } from './fragment.js';
import { mergeFragments, type Merged } from './merge.js';
import { comparePorts, sortRecord, type PathContext } from './normalize.js';
import { checkPolicy, type Policy } from './policy.js';
import { closest } from './suggest.js';
import { parseYaml, YamlFailure, type YamlLimits } from './yaml.js';

export interface ComposeFile {
  /** repository-relative path, e.g. `deploy/compose.yml` */
  path: string;
  text: string;
}

export interface LoadComposeOptions {
  project: string;
  environment: string;
  /** values for ${VAR} interpolation */
  variables?: Readonly<Record<string, string>>;
  /** absolute path of the checkout; relative bind sources become absolute under it (else they stay `./repo/relative`) */
  repoRoot?: string;
  /** when given, anything it does not allow is refused with the line that asks for it */
  policy?: Policy;
  limits?: YamlLimits;
  /** where `secrets: {x: {environment: NAME}}` values come from */
  secrets?: SecretSource;
  /** repository files a config reads (`file:`), by repository-relative path; undefined = does not exist. A path not in the map throws NeedRepoFiles. */
  repoFiles?: ReadonlyMap<string, string | undefined>;
}

/** Looks up a secret's value by name. Today the environment's variables in berth.yml; a server-side store can stand behind the same port. */
export interface SecretSource {
  value(name: string): string | undefined;
}

/** Thrown when configs read repository files not given yet: the caller reads them and loads again. */
export class NeedRepoFiles extends Error {
  constructor(readonly paths: string[]) {
    super(`compose needs repository files: ${paths.join(', ')}`);
  }
}

export const HEALTHCHECK_DEFAULTS = { intervalMs: 30_000, timeoutMs: 30_000, retries: 3, startPeriodMs: 0 } as const;

const error = (code: string, problem: string, at: Loc, hint?: string) => new ComposeError(code, problem, { ...at, ...(hint ? { hint } : {}) });

export function loadCompose(files: readonly ComposeFile[], opts: LoadComposeOptions): DesiredState {
  if (!files.length) throw new ComposeError('no_compose_files', 'no compose files given');
  // Relative paths in every file resolve against the first file's directory, as compose does.
  const baseDir = posix.dirname(posix.normalize(files[0]!.path.replace(/\\/g, '/')));
  const paths: PathContext = { baseDir: baseDir === '.' ? '' : baseDir, ...(opts.repoRoot ? { repoRoot: opts.repoRoot } : {}) };
  const fragments = files.map((f) => {
    let y;
    try {
      y = parseYaml(f.path, f.text, opts.limits);
    } catch (e) {
      if (e instanceof YamlFailure)
        throw new ComposeError(e.detail.code, e.detail.problem, { file: f.path, ...(e.detail.line !== undefined ? { line: e.detail.line } : {}), ...(e.detail.hint ? { hint: e.detail.hint } : {}) });
      throw e;
    }
    return buildFragment(y, { variables: opts.variables ?? {}, paths });
  });
  const merged = mergeFragments(fragments);
  validate(merged);
  if (opts.policy) checkPolicy(merged.services.values(), opts.policy, paths);
  return withFiles(toDesired(merged, opts.project, opts.environment), merged, opts, paths.baseDir);
}

/**
 * Resolves every config and secret a service uses to its content, puts the
 * content's digest into the service spec (a rotation recreates exactly its
 * users) and the content itself into the desired state for the executor.
 */
function withFiles(d: DesiredState, m: Merged, opts: LoadComposeOptions, baseDir: string): DesiredState {
  const contents: Record<string, string> = {};
  const need: string[] = [];
  const resolve = (kind: 'config' | 'secret', name: string, refAt: Loc): string | undefined => {
    const key = `${kind}:${name}`;
    if (key in contents) return contents[key];
    const declared = (kind === 'config' ? m.configs : m.secrets).get(name);
    if (!declared) {
      const all = [...(kind === 'config' ? m.configs : m.secrets).keys()];
      const dym = closest(name, all);
      throw error('undeclared_' + kind, `${kind} "${name}" is not declared under the top-level ${kind}s`, refAt, dym ? `did you mean "${dym}"?` : `declare it: ${kind}s: { ${name}: { environment: VARIABLE } }`);
    }
    const src = declared.source;
    let value: string | undefined;
    if (src.from === 'content') value = src.content;
    else if (src.from === 'environment') {
      value = kind === 'secret' ? opts.secrets?.value(src.variable) : opts.variables?.[src.variable];
      if (value === undefined)
        throw error('missing_variable', `${kind} ${name} reads variable ${src.variable}, which the environment does not define`, declared.at, `add ${src.variable} to the environment's variables in .github/berth.yml${kind === 'secret' ? ' (and to its secret_keys unless its name looks secret)' : ''}`);
    } else {
      const path = posix.normalize(posix.join(baseDir || '.', src.path));
      if (src.path.startsWith('/') || path === '..' || path.startsWith('../'))
        throw error('invalid_value', `config ${name}: file ${src.path} is outside the repository`, declared.at, 'give a path relative to the compose file, inside the repository');
      if (!opts.repoFiles?.has(path)) {
        need.push(path);
        return undefined;
      }
      value = opts.repoFiles.get(path);
      if (value === undefined) throw error('missing_file', `config ${name}: file ${path} does not exist at this commit`, declared.at, 'add the file or fix the path (relative to the compose file)');
    }
    contents[key] = value;
    return value;
  };
  const services = d.services.map((ds) => {
    const frag = m.services.get(ds.spec.name)!;
    const refs = [...(frag.configs ?? []), ...(frag.secrets ?? [])];
    if (!refs.length) return ds;
    const files: FileMount[] = [];
    const seen = new Map<string, Loc>();
    for (const r of refs) {
      if (seen.has(r.v.target)) throw error('duplicate_target', `service ${ds.spec.name}: two configs or secrets land at ${r.v.target}`, r.at, 'give each a different target');
      seen.set(r.v.target, r.at);
      const content = resolve(r.v.kind, r.v.source, r.at);
      if (content !== undefined) files.push({ ...r.v, digest: sha256(content) });
    }
    files.sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0));
    return desiredService({ ...ds.spec, files });
  });
  if (need.length) throw new NeedRepoFiles([...new Set(need)].sort());
  return { ...d, services, ...(Object.keys(contents).length ? { contents } : {}) };
}

function validate(m: Merged): void {
  const names = [...m.services.keys()];
  // Container names are case-sensitive but a service's name is also its DNS alias on its networks, and DNS is not:
  // `web` and `WEB` would answer for each other.
  const folded = new Map<string, string>();
  for (const s of m.services.values()) {
    const other = folded.get(s.name.toLowerCase());
    if (other !== undefined)
      throw error('duplicate_service', `services ${other} and ${s.name} differ only in case`, s.at, 'a service name is also its hostname on the network, and hostnames ignore case: rename one of them');
    folded.set(s.name.toLowerCase(), s.name);
  }
  for (const s of m.services.values()) {
    if (!s.image) throw error('missing_image', `service ${s.name} has no image`, s.at, 'berth does not build images: add image: with a pushed image reference');
    if (s.networkMode && s.networks?.size)
      throw error('invalid_value', `service ${s.name}: network_mode and networks cannot be combined`, s.networkMode.at, 'remove one of them');
    for (const [net, at] of s.networks ?? []) {
      if (net === 'default' || m.networks.has(net)) continue;
      const dym = closest(net, [...m.networks.keys()]);
      throw error('undeclared_network', `service ${s.name} uses network "${net}", which is not declared under the top-level networks`, at, dym ? `did you mean "${dym}"?` : `declare it: networks: { ${net}: {} }`);
    }
    for (const mount of s.volumes ?? []) {
      if (mount.v.type !== 'volume' || !mount.v.source || m.volumes.has(mount.v.source)) continue;
      const dym = closest(mount.v.source, [...m.volumes.keys()]);
      throw error('undeclared_volume', `service ${s.name} uses volume "${mount.v.source}", which is not declared under the top-level volumes`, mount.at, dym ? `did you mean "${dym}"?` : `declare it: volumes: { ${mount.v.source}: {} }`);
    }
    for (const d of s.dependsOn?.values() ?? []) {
      const target = m.services.get(d.service);
      if (!target) {
        if (!d.required) continue;
        const dym = closest(d.service, names.filter((n) => n !== s.name));
        throw error('unknown_service', `service ${s.name} depends on "${d.service}", which is not a service`, d.at, dym ? `did you mean "${dym}"?` : `services: ${names.join(', ')}`);
      }
      if (d.condition === 'service_healthy' && (!target.healthcheck || target.healthcheck.disable?.v || target.healthcheck.test?.v[0] === 'NONE'))
        throw error('no_healthcheck', `service ${s.name} waits for ${d.service} to be healthy, but ${d.service} has no healthcheck`, d.at, `add a healthcheck to ${d.service} or use condition: service_started`);
    }
    const h = s.healthcheck;
    if (h && !h.disable?.v && !h.test) throw error('invalid_value', `service ${s.name}: healthcheck has no test`, h.at, 'berth does not read healthchecks from images: give test:');
  }
  for (const n of m.networks.values()) {
    if (n.external?.v && (n.driver || n.internal || n.attachable || n.labels?.size))
      throw error('invalid_value', `network ${n.name} is external: it takes no other options`, n.at);
  }
  for (const v of m.volumes.values()) {
    if (v.external?.v && (v.driver || v.labels?.size)) throw error('invalid_value', `volume ${v.name} is external: it takes no other options`, v.at);
  }
  findCycle(m);
}

/** Depth-first search over depends_on; the first cycle found (in name order) is named in full. */
function findCycle(m: Merged): void {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): void => {
    state.set(name, 'visiting');
    stack.push(name);
    const s = m.services.get(name)!;
    for (const d of [...(s.dependsOn?.values() ?? [])].sort((a, b) => (a.service < b.service ? -1 : 1))) {
      if (!m.services.has(d.service)) continue;
      const st = state.get(d.service);
      if (st === 'visiting') {
        const cycle = [...stack.slice(stack.indexOf(d.service)), d.service];
        throw error('depends_on_cycle', `depends_on cycle: ${cycle.join(' -> ')}`, d.at, 'remove one of these dependencies');
      }
      if (!st) visit(d.service);
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const name of [...m.services.keys()].sort()) if (!state.has(name)) visit(name);
}

const fromMap = (m: Map<string, { v: string }> | undefined): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [k, a] of m ?? []) out[k] = a.v;
  return sortRecord(out);
};

function serviceSpec(s: ServiceFragment, hasDependency: (name: string) => boolean): ServiceSpec {
  const networks = s.networkMode ? [] : s.networks?.size ? [...s.networks.keys()].sort() : ['default'];
  const dependsOn: DependsOn[] = [...(s.dependsOn?.values() ?? [])]
    .filter((d) => hasDependency(d.service))
    .map((d): DependsOn => ({ service: d.service, condition: d.condition, ...(d.restart ? { restart: true as const } : {}) }))
    .sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
  let healthcheck: Healthcheck | undefined;
  if (s.healthcheck) {
    const h = s.healthcheck;
    healthcheck = {
      test: h.disable?.v ? ['NONE'] : h.test!.v,
      intervalMs: h.intervalMs?.v ?? HEALTHCHECK_DEFAULTS.intervalMs,
      timeoutMs: h.timeoutMs?.v ?? HEALTHCHECK_DEFAULTS.timeoutMs,
      retries: h.retries?.v ?? HEALTHCHECK_DEFAULTS.retries,
      startPeriodMs: h.startPeriodMs?.v ?? HEALTHCHECK_DEFAULTS.startPeriodMs,
    };
  }
  const capAdd = [...new Set((s.capAdd ?? []).map((c) => c.v))].sort();
  const devices = [...new Set((s.devices ?? []).map((d) => d.v))].sort();
  const spec: ServiceSpec = {
    name: s.name,
    image: s.image!.v,
    ...(s.command ? { command: s.command.v } : {}),
    ...(s.entrypoint ? { entrypoint: s.entrypoint.v } : {}),
    environment: fromMap(s.environment),
    ports: (s.ports ?? []).map((p) => p.v).sort(comparePorts),
    volumes: (s.volumes ?? []).map((m) => m.v).sort((a, b) => (a.target < b.target ? -1 : a.target > b.target ? 1 : 0)),
    networks,
    dependsOn,
    ...(healthcheck ? { healthcheck } : {}),
    labels: fromMap(s.labels),
    restart: s.restart?.v ?? 'no',
    ...(s.user ? { user: s.user.v } : {}),
    ...(s.workingDir ? { workingDir: s.workingDir.v } : {}),
    replicas: s.replicas?.v ?? 1,
    ...(s.privileged?.v ? { privileged: true } : {}),
    ...(s.networkMode ? { networkMode: s.networkMode.v } : {}),
    ...(s.pid ? { pid: s.pid.v } : {}),
    ...(capAdd.length ? { capAdd } : {}),
    ...(devices.length ? { devices } : {}),
  };
  return spec;
}

/** Remembers where a network or volume was declared (outside its spec, so the hash does not depend on line numbers). */
const located = <T extends { at?: DeclaredAt }>(d: T, at: Loc | undefined): T => (at ? { ...d, at: { file: at.file, ...(at.line !== undefined ? { line: at.line } : {}), path: at.path } } : d);

function toDesired(m: Merged, project: string, environment: string): DesiredState {
  const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const services = [...m.services.values()].map((s) => serviceSpec(s, (n) => m.services.has(n))).sort(byName);

  // Like `docker compose up`, only networks and volumes some service uses are part of the deployment.
  const usedNetworks = new Set(services.flatMap((s) => s.networks));
  const usedVolumes = new Set(services.flatMap((s) => s.volumes.filter((v) => v.type === 'volume' && v.source).map((v) => v.source!)));
  const networks: NetworkSpec[] = [...m.networks.values()].filter((n) => usedNetworks.has(n.name)).map((n) => ({
    ...(n.external?.v
      ? { name: n.name, driver: 'bridge', internal: false, attachable: false, labels: {}, external: true }
      : {
          name: n.name,
          driver: n.driver?.v ?? 'bridge',
          internal: n.internal?.v ?? false,
          attachable: n.attachable?.v ?? false,
          labels: fromMap(n.labels),
          external: false,
        }),
    ...(n.dockerName ? { dockerName: n.dockerName.v } : {}),
  }));
  // The implicit default network exists only when a service is on it.
  if (!m.networks.has('default') && usedNetworks.has('default'))
    networks.push({ name: 'default', driver: 'bridge', internal: false, attachable: false, labels: {}, external: false });
  networks.sort(byName);

  const volumes: VolumeSpec[] = [...m.volumes.values()]
    .filter((v) => usedVolumes.has(v.name))
    .map((v) => ({
      ...(v.external?.v ? { name: v.name, driver: 'local', labels: {}, external: true } : { name: v.name, driver: v.driver?.v ?? 'local', labels: fromMap(v.labels), external: false }),
      ...(v.dockerName ? { dockerName: v.dockerName.v } : {}),
    }))
    .sort(byName);

  return {
    project,
    environment,
    services: services.map(desiredService),
    networks: networks.map((n) => located(desiredNetwork(n), m.networks.get(n.name)?.at)),
    volumes: volumes.map((v) => located(desiredVolume(v), m.volumes.get(v.name)?.at)),
  };
}
