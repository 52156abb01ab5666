// Merging compose files in order, by compose's rules
// (https://docs.docker.com/reference/compose-file/merge/):
//   - mappings merge key by key, scalars are overridden by the later file;
//   - command, entrypoint and healthcheck.test are replaced, never appended;
//   - ports are unique by {host ip, published, target, protocol}, volumes by
//     target, devices by their path in the container: a later entry with the
//     same key replaces the earlier one, others are appended; other sequences
//     (cap_add) append without duplicates;
//   - environment, labels, networks and depends_on merge as mappings;
//   - `!reset` removes an attribute (or a whole service), `!override` replaces
//     it instead of merging.
import { deviceTarget, type DeployResourcesFragment, type DeployRestartFragment, type FileFragment, type FileSourceFragment, type NetworkFragment, type RolloutFragment, type ServiceField, type ServiceFragment, type VolumeFragment } from './fragment.js';
import { portKey } from './normalize.js';
import { EXTRA_KEYS, mergeExtra } from './service-keys.js';

export interface Merged {
  services: Map<string, ServiceFragment>;
  networks: Map<string, NetworkFragment>;
  volumes: Map<string, VolumeFragment>;
  configs: Map<string, FileSourceFragment>;
  secrets: Map<string, FileSourceFragment>;
}

/** compose key → the fragment properties it sets (extras keys are looked up in EXTRA_KEYS) */
const FIELD_PROPS: Record<ServiceField, (keyof ServiceFragment)[]> = {
  image: ['image'],
  command: ['command'],
  entrypoint: ['entrypoint'],
  environment: ['environment', 'unsetEnvironment'],
  ports: ['ports'],
  volumes: ['volumes'],
  networks: ['networks'],
  depends_on: ['dependsOn'],
  healthcheck: ['healthcheck'],
  labels: ['labels'],
  restart: ['restart'],
  user: ['user'],
  working_dir: ['workingDir'],
  deploy: ['replicas', 'updateConfig', 'rollbackConfig', 'deployRestart', 'deployResources'],
  scale: ['replicas'],
  privileged: ['privileged'],
  network_mode: ['networkMode'],
  pid: ['pid'],
  cap_add: ['capAdd'],
  devices: ['devices'],
  volumes_from: ['volumesFrom'],
  links: ['links'],
  profiles: ['profiles'],
  build: ['build'],
  develop: ['develop'],
  attach: ['attach'],
  env_file: ['envFiles'],
  label_file: ['labelFiles'],
  extends: [],
  configs: ['configs'],
  secrets: ['secrets'],
};

export function mergeFragments(files: readonly FileFragment[]): Merged {
  const out: Merged = { services: new Map(), networks: new Map(), volumes: new Map(), configs: new Map(), secrets: new Map() };
  for (const f of files) {
    for (const [name, s] of f.services) {
      const prev = out.services.get(name);
      if (s.removed) out.services.delete(name);
      else if (!prev || s.replace) out.services.set(name, withoutReset(s));
      else out.services.set(name, mergeService(prev, s));
    }
    for (const [name, n] of f.networks) {
      const prev = out.networks.get(name);
      out.networks.set(name, prev ? mergeNetwork(prev, n) : n);
    }
    for (const [name, v] of f.volumes) {
      const prev = out.volumes.get(name);
      out.volumes.set(name, prev ? mergeVolume(prev, v) : v);
    }
    // A later file's config or secret replaces the earlier one (its source is one value).
    for (const [name, c] of f.configs) out.configs.set(name, c);
    for (const [name, c] of f.secrets) out.secrets.set(name, c);
  }
  return out;
}

function withoutReset(s: ServiceFragment): ServiceFragment {
  const out: ServiceFragment = { ...s, reset: new Set(), override: new Set() };
  return out;
}

const mapMerge = <K, V>(a: Map<K, V> | undefined, b: Map<K, V> | undefined): Map<K, V> | undefined => (a && b ? new Map([...a, ...b]) : (b ?? a));

function uniqueBy<T>(a: T[] | undefined, b: T[] | undefined, key: (t: T) => string): T[] | undefined {
  if (!a || !b) return b ?? a;
  const out = [...a];
  // each key's first place in out, found by lookup: a scan per item was |a| × |b| (an extends of a long list)
  const at = new Map<string, number>();
  out.forEach((x, i) => {
    const k = key(x);
    if (!at.has(k)) at.set(k, i);
  });
  for (const item of b) {
    const k = key(item);
    const i = at.get(k);
    if (i !== undefined) out[i] = item;
    else {
      at.set(k, out.length);
      out.push(item);
    }
  }
  return out;
}

/** deploy.update_config merges as a mapping: a later file's keys win, the rest are kept. */
function mergeRollout(a: RolloutFragment | undefined, b: RolloutFragment | undefined): RolloutFragment | undefined {
  if (!a || !b) return b ?? a;
  const orderAt = b.orderAt ?? a.orderAt;
  return { at: b.at, keys: { ...a.keys, ...b.keys }, ...(orderAt ? { orderAt } : {}) };
}

/** deploy.restart_policy merges as a mapping: a later file's keys win, the rest are kept. */
function mergeDeployRestart(a: DeployRestartFragment | undefined, b: DeployRestartFragment | undefined): DeployRestartFragment | undefined {
  if (!a || !b) return b ?? a;
  const condition = b.condition ?? a.condition;
  const maxAttempts = b.maxAttempts ?? a.maxAttempts;
  return { at: b.at, ...(condition ? { condition } : {}), ...(maxAttempts ? { maxAttempts } : {}) };
}

/** deploy.resources merges as a mapping: a later file's keys win, the rest are kept. */
function mergeDeployResources(a: DeployResourcesFragment | undefined, b: DeployResourcesFragment | undefined): DeployResourcesFragment | undefined {
  return a && b ? { ...a, ...b } : (b ?? a);
}

export function mergeService(a: ServiceFragment, b: ServiceFragment): ServiceFragment {
  const out: ServiceFragment = {
    name: a.name,
    at: a.at,
    reset: new Set(),
    override: new Set(),
    extras: { ...a.extras },
    ...(a.refused || b.refused ? { refused: (a.refused ?? b.refused)! } : {}),
  };
  for (const spec of Object.values(EXTRA_KEYS)) {
    const x = a.extras[spec.field];
    const y = b.extras[spec.field];
    // an override's empty (unset) value replaces, as docker compose replaces a scalar with the override's
    if (y) (out.extras as Record<string, unknown>)[spec.field] = x && y.v !== undefined ? { v: mergeExtra(spec.merge, x.v, y.v), at: y.at } : y;
  }
  // deploy.resources.reservations.devices: the later file's list replaces the earlier one (compose merges deploy by key)
  if (b.extras.deviceRequests) out.extras.deviceRequests = b.extras.deviceRequests;
  if (b.extras.restartMaxRetries || b.restart) {
    if (b.extras.restartMaxRetries) out.extras.restartMaxRetries = b.extras.restartMaxRetries;
    else delete out.extras.restartMaxRetries;
  }
  const set = <K extends keyof ServiceFragment>(k: K, v: ServiceFragment[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  set('image', b.image ?? a.image);
  set('command', b.command ?? a.command);
  set('entrypoint', b.entrypoint ?? a.entrypoint);
  set('restart', b.restart ?? a.restart);
  set('user', b.user ?? a.user);
  set('workingDir', b.workingDir ?? a.workingDir);
  set('replicas', b.replicas ?? a.replicas);
  set('updateConfig', mergeRollout(a.updateConfig, b.updateConfig));
  set('rollbackConfig', mergeRollout(a.rollbackConfig, b.rollbackConfig));
  set('deployRestart', mergeDeployRestart(a.deployRestart, b.deployRestart));
  set('deployResources', mergeDeployResources(a.deployResources, b.deployResources));
  set('privileged', b.privileged ?? a.privileged);
  set('networkMode', b.networkMode ?? a.networkMode);
  set('pid', b.pid ?? a.pid);
  // a later file's bare unset name unsets the earlier file's value, a later value sets an earlier unset name (compose's last entry wins)
  const copied = <V>(x: Map<string, V> | undefined, y: Map<string, V> | undefined) => (x || y ? new Map([...(x ?? []), ...(y ?? [])]) : undefined);
  const environment = copied(a.environment, b.environment);
  const unsetEnvironment = copied(a.unsetEnvironment, b.unsetEnvironment);
  for (const k of b.unsetEnvironment?.keys() ?? []) environment?.delete(k);
  for (const k of b.environment?.keys() ?? []) unsetEnvironment?.delete(k);
  set('environment', environment);
  set('unsetEnvironment', unsetEnvironment?.size ? unsetEnvironment : undefined);
  set('labels', mapMerge(a.labels, b.labels));
  set('networks', mapMerge(a.networks, b.networks));
  set('dependsOn', mapMerge(a.dependsOn, b.dependsOn));
  set('ports', uniqueBy(a.ports, b.ports, (p) => portKey(p.v)));
  set('volumes', uniqueBy(a.volumes, b.volumes, (m) => m.v.target));
  set('capAdd', uniqueBy(a.capAdd, b.capAdd, (c) => c.v));
  // one device per path in the container (compose's unicity rule): a later file's device for a path replaces the earlier one
  set('devices', uniqueBy(a.devices, b.devices, (d) => deviceTarget(d.v)));
  set('volumesFrom', uniqueBy(a.volumesFrom, b.volumesFrom, (v) => v.v.slice(0, v.v.lastIndexOf(':'))));
  set('links', uniqueBy(a.links, b.links, (l) => `${l.v.service}:${l.v.alias}`));
  // a list: an override's profiles are added to the base's (compose appends, then keeps each once)
  set('profiles', a.profiles && b.profiles ? { v: [...new Set([...a.profiles.v, ...b.profiles.v])], at: b.profiles.at } : (b.profiles ?? a.profiles));
  set('build', b.build ?? a.build);
  set('develop', b.develop ?? a.develop);
  set('attach', b.attach ?? a.attach);
  // compose appends an override's env_file entries; read in order, a later file's keys win
  set('envFiles', a.envFiles && b.envFiles ? [...a.envFiles, ...b.envFiles] : (b.envFiles ?? a.envFiles));
  // and its label_file entries the same way
  set('labelFiles', a.labelFiles && b.labelFiles ? [...a.labelFiles, ...b.labelFiles] : (b.labelFiles ?? a.labelFiles));
  if (a.networkOptions || b.networkOptions) {
    const opts = new Map(a.networkOptions ?? []);
    for (const [n, o] of b.networkOptions ?? []) opts.set(n, { ...opts.get(n), ...o, ...(opts.get(n)?.aliases && o.aliases ? { aliases: [...new Set([...opts.get(n)!.aliases!, ...o.aliases])].sort() } : {}) });
    out.networkOptions = opts;
  }
  set('configs', uniqueBy(a.configs, b.configs, (f) => f.v.source));
  set('secrets', uniqueBy(a.secrets, b.secrets, (f) => f.v.source));
  if (a.healthcheck && b.healthcheck) {
    const h = { ...a.healthcheck };
    for (const k of ['test', 'intervalMs', 'timeoutMs', 'retries', 'startPeriodMs', 'startIntervalMs', 'disable'] as const) if (b.healthcheck[k]) (h as Record<string, unknown>)[k] = b.healthcheck[k];
    h.at = b.healthcheck.at;
    out.healthcheck = h;
  } else set('healthcheck', b.healthcheck ?? a.healthcheck);

  for (const field of b.override) {
    for (const p of FIELD_PROPS[field] ?? []) (out as unknown as Record<string, unknown>)[p] = b[p];
    const extra = EXTRA_KEYS[field];
    if (extra) (out.extras as Record<string, unknown>)[extra.field] = b.extras[extra.field];
    if (field === 'networks') out.networkOptions = b.networkOptions;
  }
  for (const field of b.reset) {
    for (const p of FIELD_PROPS[field] ?? []) delete (out as unknown as Record<string, unknown>)[p];
    const extra = EXTRA_KEYS[field];
    if (extra) delete out.extras[extra.field];
    if (field === 'networks') delete out.networkOptions;
  }
  return out;
}

function mergeNetwork(a: NetworkFragment, b: NetworkFragment): NetworkFragment {
  const labels = mapMerge(a.labels, b.labels);
  const out: NetworkFragment = { ...a, ...b, at: a.at };
  for (const k of ['driver', 'internal', 'attachable', 'external', 'dockerName', 'enableIpv6', 'driverOpts', 'ipam'] as const) {
    const v = b[k] ?? a[k];
    if (v) (out as unknown as Record<string, unknown>)[k] = v;
  }
  if (labels) out.labels = labels;
  return out;
}

function mergeVolume(a: VolumeFragment, b: VolumeFragment): VolumeFragment {
  const labels = mapMerge(a.labels, b.labels);
  const out: VolumeFragment = { ...a, ...b, at: a.at };
  for (const k of ['driver', 'external', 'dockerName', 'driverOpts'] as const) {
    const v = b[k] ?? a[k];
    if (v) (out as unknown as Record<string, unknown>)[k] = v;
  }
  if (labels) out.labels = labels;
  return out;
}
