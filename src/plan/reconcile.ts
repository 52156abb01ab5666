// reconcile(desired, observed) → Plan. Pure and deterministic: inputs are
// sorted first, nodes are built with symbolic keys, then numbered in a
// topological order whose ties break by build order, so the same intent
// always yields the same text whatever order Docker listed things in.
import { joinedServices } from '../compose/joins.js';
import { hashOf } from '../model/hash.js';
import { placeholdersIn, withoutHashes } from '../secrets/placeholder.js';
import type {
  DesiredService,
  DesiredState,
  ObservedContainer,
  ObservedNetwork,
  ObservedState,
  ServiceSpec,
} from '../model/model.js';
import { dockerNameOf, LABEL, names } from '../model/model.js';
import type { DeclaredAt, NetworkSpec, UnmanagedNetwork, UnmanagedVolume, VolumeSpec } from '../model/model.js';
import { ComposeError } from '../errors.js';
import type { NodeKind, NodeTarget, Plan, PlanNode, ResourceChange } from './plan.js';
import { DRAIN_MS } from './plan.js';

interface Draft {
  key: string;
  kind: NodeKind;
  resource: string;
  reason: string;
  detail?: string;
  group?: string;
  deps: Set<string>;
  target: NodeTarget;
  seq: number;
}

/** Binary min-heap of drafts by `seq` (unique), so Kahn's algorithm always takes the earliest-built ready node. */
class SeqHeap {
  private readonly items: Draft[] = [];

  constructor(initial: Draft[]) {
    for (const d of initial) this.push(d);
  }

  get size(): number {
    return this.items.length;
  }

  push(d: Draft): void {
    const a = this.items;
    a.push(d);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent].seq <= d.seq) break;
      a[i] = a[parent];
      i = parent;
    }
    a[i] = d;
  }

  pop(): Draft {
    const a = this.items;
    const top = a[0];
    const last = a.pop()!;
    if (a.length) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r].seq < a[l].seq ? r : l;
        if (a[c].seq >= last.seq) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

class Builder {
  private drafts = new Map<string, Draft>();
  private seq = 0;

  add(d: Omit<Draft, 'deps' | 'seq'> & { deps?: Iterable<string | undefined> }): string {
    if (this.drafts.has(d.key)) throw new Error(`internal: duplicate plan node ${d.key}`);
    const deps = new Set<string>();
    for (const k of d.deps ?? []) if (k) deps.add(k);
    this.drafts.set(d.key, { ...d, deps, seq: this.seq++ });
    return d.key;
  }

  has(key: string): boolean {
    return this.drafts.has(key);
  }

  dependOn(key: string, ...deps: (string | undefined)[]): void {
    const d = this.drafts.get(key);
    if (!d) throw new Error(`internal: unknown plan node ${key}`);
    for (const k of deps) if (k && k !== key) d.deps.add(k);
  }

  /** Kahn's algorithm; among ready nodes the earliest built goes first. */
  finish(): PlanNode[] {
    const all = [...this.drafts.values()];
    for (const d of all) for (const dep of d.deps) if (!this.drafts.has(dep)) throw new Error(`internal: ${d.key} depends on unknown ${dep}`);
    const indegree = new Map(all.map((d) => [d.key, d.deps.size]));
    const dependants = new Map<string, Draft[]>();
    for (const d of all) for (const dep of d.deps) (dependants.get(dep) ?? dependants.set(dep, []).get(dep)!).push(d);
    // A min-heap on build order: re-sorting the ready list at every step was a fifth of a 2,000-service plan.
    const ready = new SeqHeap(all.filter((d) => d.deps.size === 0));
    const ids = new Map<string, number>();
    const ordered: Draft[] = [];
    while (ready.size) {
      const next = ready.pop();
      ids.set(next.key, ordered.length + 1);
      ordered.push(next);
      for (const dep of dependants.get(next.key) ?? []) {
        const left = indegree.get(dep.key)! - 1;
        indegree.set(dep.key, left);
        if (left === 0) ready.push(dep);
      }
    }
    if (ordered.length !== all.length) throw new Error('internal: plan graph has a cycle');
    return ordered.map((d) => ({
      id: ids.get(d.key)!,
      kind: d.kind,
      resource: d.resource,
      reason: d.reason,
      ...(d.detail ? { detail: d.detail } : {}),
      ...(d.group ? { group: d.group } : {}),
      deps: [...d.deps].map((k) => ids.get(k)!).sort((a, b) => a - b),
      target: d.target,
    }));
  }
}

export function desiredDigest(desired: DesiredState): string {
  return hashOf({
    project: desired.project,
    environment: desired.environment,
    // A rollout setting is not in the config hash (it never recreates) but changes what an apply does.
    // Records written in key order: hashOf then serialises them as they are, without a sorted copy.
    services: [...desired.services].sort(byName((s) => s.spec.name)).map((s) => ({ hash: s.configHash, name: s.spec.name, replicas: s.spec.replicas, ...(s.spec.rollout ? { rollout: s.spec.rollout } : {}) })),
    networks: [...desired.networks].sort(byName((n) => n.spec.name)).map((n) => n.configHash),
    volumes: [...desired.volumes].sort(byName((v) => v.spec.name)).map((v) => v.configHash),
  });
}

export function observedDigest(observed: ObservedState): string {
  return hashOf({
    // Records written in key order: hashOf then serialises them as they are, without a sorted copy.
    containers: sortContainers(observed.containers).map((c) => ({
      ...(c.anonymousVolumes?.length ? { anon: c.anonymousVolumes } : {}),
      ...(c.exitCode !== undefined ? { exit: c.exitCode } : {}),
      hash: c.configHash,
      id: c.id,
      image: c.image,
      name: c.name,
      networks: [...c.networks].sort(),
      state: c.state,
    })),
    networks: [...observed.networks].sort(byName((n) => n.name)).map((n) => [n.id, n.name, n.configHash]),
    volumes: [...observed.volumes].sort(byName((v) => v.name)).map((v) => [v.dockerName, v.configHash]),
    ...(observed.unmanaged?.networks.length || observed.unmanaged?.volumes.length
      ? { unmanaged: [observed.unmanaged.networks.map((n) => [n.id, n.dockerName, n.driver]).sort(), observed.unmanaged.volumes.map((v) => [v.dockerName, v.driver]).sort()] }
      : {}),
  });
}

export function planFingerprint(desired: string, observed: string): string {
  return hashOf({ desired, observed }).slice(0, 32);
}

const byName =
  <T>(f: (t: T) => string) =>
  (a: T, b: T) =>
    f(a) < f(b) ? -1 : f(a) > f(b) ? 1 : 0;

function sortContainers(cs: ObservedContainer[]): ObservedContainer[] {
  return [...cs].sort(
    (a, b) =>
      (a.service < b.service ? -1 : a.service > b.service ? 1 : 0) ||
      a.replica - b.replica ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) ||
      (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
}

/** Services ordered so every dependency precedes its dependants; ties by name. Cycles were refused by the loader. */
function topoServices(services: DesiredService[]): DesiredService[] {
  const byKey = new Map(services.map((s) => [s.spec.name, s]));
  const done = new Set<string>();
  const out: DesiredService[] = [];
  const visit = (s: DesiredService, path: string[]) => {
    if (done.has(s.spec.name)) return;
    if (path.includes(s.spec.name)) throw new Error(`depends_on cycle: ${[...path, s.spec.name].join(' -> ')}`);
    for (const dep of [...s.spec.dependsOn].sort(byName((d) => d.service))) {
      const d = byKey.get(dep.service);
      if (d) visit(d, [...path, s.spec.name]);
    }
    done.add(s.spec.name);
    out.push(s);
  };
  for (const s of [...services].sort(byName((s) => s.spec.name))) visit(s, []);
  return out;
}

const RUNNING_STATES = new Set(['running', 'restarting']);

/** The same reference with another pinned digest: the tag moved in the registry (issue 12). */
const withoutDigest = (image: string) => image.replace(/@sha256:[0-9a-f]{64}$/, '');
const imageReason = (had: string, want: string) => (had !== want && withoutDigest(had) === withoutDigest(want) ? 'image digest changed' : 'image changed');
/** `secret db_password changed`, `config nginx added`: names only, never content (nor its digest). */
function changedFiles(before: ServiceSpec | undefined, after: ServiceSpec): string[] {
  if (!before) return [];
  const key = (f: { kind: string; source: string }) => `${f.kind} ${f.source}`;
  const was = new Map((before.files ?? []).map((f) => [key(f), f]));
  const now = new Map((after.files ?? []).map((f) => [key(f), f]));
  const out: string[] = [];
  for (const [k, f] of now) {
    const o = was.get(k);
    if (!o) out.push(`${k} added`);
    else if (o.digest !== f.digest) out.push(`${k} changed`);
    else if (o.target !== f.target || o.mode !== f.mode || o.uid !== f.uid || o.gid !== f.gid) out.push(`${k} moved`);
  }
  for (const k of was.keys()) if (!now.has(k)) out.push(`${k} removed`);
  return out.sort();
}

/** Server-side secrets (issue 18) whose value changed between two specs: names only. */
function changedServerSecrets(before: ServiceSpec | undefined, after: ServiceSpec): string[] {
  if (!before) return [];
  const was = placeholdersIn({ ...before, files: undefined });
  const now = placeholdersIn({ ...after, files: undefined });
  return [...now].filter(([n, h]) => was.has(n) && was.get(n) !== h).map(([n]) => `secret ${n} changed`).sort();
}

/**
 * A one-shot job that finished: it exited 0 and nothing asks Docker to run it
 * again (restart no or on-failure). Like compose, such a container is done,
 * not stopped, so planning never re-runs it while its config is unchanged.
 */
function finishedJob(c: ObservedContainer, d: DesiredService): boolean {
  return c.state === 'exited' && c.exitCode === 0 && (d.spec.restart === 'no' || d.spec.restart.startsWith('on-failure'));
}

function recreateReason(c: ObservedContainer, d: DesiredService, changedNetworks: Set<string>): string | undefined {
  if (c.state === 'dead' || c.state === 'removing') return `container ${c.state}`;
  if (c.configHash !== d.configHash) {
    if (c.config && c.config.image !== d.spec.image) return imageReason(c.config.image, d.spec.image);
    // Only configs or secrets differ: say which (a rotation reads "secret db_password changed").
    // A server-side secret's new value shows as its placeholder's hash (secrets/placeholder.ts): "secret DB_PASSWORD changed".
    const changed = [...changedFiles(c.config, d.spec), ...changedServerSecrets(c.config, d.spec)];
    if (changed.length && c.config && hashOf(withoutHashes({ ...c.config, files: undefined, replicas: 0, rollout: undefined })) === hashOf(withoutHashes({ ...d.spec, files: undefined, replicas: 0, rollout: undefined }))) return changed.join(', ');
    return 'config changed';
  }
  if (c.image !== d.spec.image) return imageReason(c.image, d.spec.image);
  const want = [...d.spec.networks].sort().join(',');
  const have = [...c.networks].sort().join(',');
  if (d.spec.networkMode === undefined && want !== have) return 'networks differ';
  if (d.spec.networks.some((n) => changedNetworks.has(n))) return 'network changed';
  return undefined;
}

/** A compose duration as written: `10s`, `1m`, `500ms`. */
function duration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

const locatedAt = (at: DeclaredAt | undefined) => (at ? { file: at.file, ...(at.line !== undefined ? { line: at.line } : {}), ...(at.path ? { path: at.path } : {}) } : {});

/** An external network or volume must exist on the target: berth never creates it (nor a stand-in that would hide the data). */
function missingExternal(kind: 'network' | 'volume', key: string, dockerName: string, at: DeclaredAt | undefined): ComposeError {
  return new ComposeError('external_missing', `${kind} ${key} is external, but the target has no ${kind} named "${dockerName}"`, {
    ...locatedAt(at),
    hint: `create it on the target (docker ${kind} create ${dockerName}), or remove external: true to let berth create and manage it`,
  });
}

const recordDiffs = (what: string, want: Record<string, string>, have: Record<string, string>): string[] =>
  [...new Set([...Object.keys(want), ...Object.keys(have)])].sort().filter((k) => want[k] !== have[k]).map((k) => `${what} ${k}: wants ${want[k] ?? '(unset)'}, has ${have[k] ?? '(unset)'}`);

/** How an existing unlabelled network differs from what berth would create under its name; empty = adoptable. */
function networkDiffs(want: NetworkSpec, have: UnmanagedNetwork): string[] {
  const out: string[] = [];
  if (want.driver !== have.driver) out.push(`driver: wants ${want.driver}, has ${have.driver}`);
  if (want.internal !== have.internal) out.push(`internal: wants ${want.internal}, has ${have.internal}`);
  if (want.attachable !== have.attachable) out.push(`attachable: wants ${want.attachable}, has ${have.attachable}`);
  if (have.enableIpv6 !== undefined && !!want.enableIpv6 !== have.enableIpv6) out.push(`enable_ipv6: wants ${!!want.enableIpv6}, has ${have.enableIpv6}`);
  return [...out, ...recordDiffs('driver option', want.driverOpts ?? {}, have.options), ...ipamDiffs(want, have)];
}

/**
 * Address pools: compared only when the declaration has `ipam:` (without one Docker picks a pool, and any
 * pool serves). The pools are compared as sets, each by subnet, ip_range, gateway and aux_addresses.
 */
function ipamDiffs(want: NetworkSpec, have: UnmanagedNetwork): string[] {
  if (!want.ipam || !have.ipam) return [];
  const out: string[] = [];
  const driver = want.ipam.driver ?? 'default';
  if (driver !== have.ipam.driver) out.push(`ipam driver: wants ${driver}, has ${have.ipam.driver}`);
  type Pool = { subnet?: string; ipRange?: string; gateway?: string; auxAddresses?: Record<string, string> };
  const pool = (c: Pool) =>
    [c.subnet && `subnet ${c.subnet}`, c.ipRange && `ip_range ${c.ipRange}`, c.gateway && `gateway ${c.gateway}`, ...Object.entries(c.auxAddresses ?? {}).sort().map(([k, v]) => `aux ${k}=${v}`)].filter(Boolean).join(' ');
  // What the declaration leaves out (a gateway, say) Docker fills in: only what it sets is compared.
  const fits = (w: Pool, h: Pool) =>
    (w.subnet === undefined || w.subnet === h.subnet) && (w.ipRange === undefined || w.ipRange === h.ipRange) && (w.gateway === undefined || w.gateway === h.gateway) && Object.entries(w.auxAddresses ?? {}).every(([k, v]) => h.auxAddresses?.[k] === v);
  const left = [...have.ipam.config];
  const unmatched = want.ipam.config.filter((w) => {
    const i = left.findIndex((h) => fits(w, h));
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
  if (unmatched.length || (want.ipam.config.length && left.length))
    out.push(`ipam config: wants ${want.ipam.config.map(pool).join('; ') || '(none)'}, has ${have.ipam.config.map(pool).join('; ') || '(none)'}`);
  return [...out, ...recordDiffs('ipam option', want.ipam.options ?? {}, have.ipam.options ?? {})];
}

function volumeDiffs(want: VolumeSpec, have: UnmanagedVolume): string[] {
  return [...(want.driver !== have.driver ? [`driver: wants ${want.driver}, has ${have.driver}`] : []), ...recordDiffs('driver option', want.driverOpts ?? {}, have.options)];
}

/** docker compose's label naming the compose project that made a network or volume. */
const COMPOSE_PROJECT = 'com.docker.compose.project';

/** `docker compose project X`, for an object another compose project made (no berth labels). */
const composeOwner = (labels: Record<string, string>) => (labels[LABEL.environment] === undefined && labels[COMPOSE_PROJECT] !== undefined ? `docker compose project ${labels[COMPOSE_PROJECT]}` : undefined);

/** An object named by `name:` that berth created for another project or environment: never shared, never adopted. */
function nameOfAnother(kind: 'network' | 'volume', key: string, dockerName: string, labels: Record<string, string>, at: DeclaredAt | undefined): ComposeError {
  const compose = composeOwner(labels);
  if (compose)
    return new ComposeError('name_taken', `${kind} ${key}: the name "${dockerName}" is already a ${kind} of ${compose} on this target`, {
      ...locatedAt(at),
      hint: `remove name: to let berth name it per environment, or, to share that ${kind} on purpose, declare it external: true and list it under policy.allow_shared_objects: [${dockerName}] in .github/berth.yml on the default branch`,
    });
  return new ComposeError('name_taken', `${kind} ${key}: the name "${dockerName}" is already berth's ${kind} ${labels[LABEL.network] ?? labels[LABEL.volume] ?? '?'} of project ${labels[LABEL.project]}, environment ${labels[LABEL.environment] ?? '?'}${labels[LABEL.repository] ? ` of repository ${labels[LABEL.repository]}` : ''} on this target`, {
    ...locatedAt(at),
    hint: `give each environment its own name (e.g. name: ${dockerName}-\${ENV_NAME} with ENV_NAME among the environment's variables in berth.yml), remove name: to let berth name it per environment, or declare it external: true to share it on purpose`,
  });
}

/** A berth-named object that exists without berth's labels and cannot be adopted as it is. */
function nameTaken(kind: 'network' | 'volume', key: string, dockerName: string, diffs: string[], at: DeclaredAt | undefined): ComposeError {
  return new ComposeError('name_taken', `${kind} ${key}: a ${kind} named "${dockerName}" already exists on the target, not created by berth, and differs (${diffs.join('; ')})`, {
    ...locatedAt(at),
    hint: `remove or rename that ${kind} on the target, make the compose declaration match it, or declare it external: true and list it under policy.allow_shared_objects: [${dockerName}] to use it as it is`,
  });
}

/** An external network or volume that berth made for another repository, project or environment: shared only when the policy names it. */
function foreignObject(kind: 'network' | 'volume', key: string, dockerName: string, labels: Record<string, string>, at: DeclaredAt | undefined): ComposeError {
  const compose = composeOwner(labels);
  if (compose)
    return new ComposeError('foreign_object', `${kind} ${key}: "${dockerName}" belongs to ${compose} on this target; external: true does not reach another deployment's ${kind}s`, {
      ...locatedAt(at),
      hint: `remove it from the compose files, or, to share it on purpose, list it under policy.allow_shared_objects: [${dockerName}] in .github/berth.yml on the default branch`,
    });
  const repo = labels[LABEL.repository] ? ` of repository ${labels[LABEL.repository]}` : '';
  return new ComposeError('foreign_object', `${kind} ${key}: "${dockerName}" is berth's ${kind} ${labels[LABEL.network] ?? labels[LABEL.volume] ?? '?'} of project ${labels[LABEL.project] ?? '?'}, environment ${labels[LABEL.environment] ?? '?'}${repo} on this target; external: true does not reach another environment's or repository's ${kind}s`, {
    ...locatedAt(at),
    hint: `remove it from the compose files, or, to share it on purpose, list it under policy.allow_shared_objects: [${dockerName}] in .github/berth.yml on the default branch`,
  });
}

/**
 * A network or volume on the target that this environment did not make (no berth or docker compose labels
 * of it: made by hand, by `docker run`, by another tool) and that the PR names: its data or its network
 * are someone else's, so the default branch's policy must name it.
 */
function notShared(kind: 'network' | 'volume', key: string, dockerName: string, at: DeclaredAt | undefined): ComposeError {
  return new ComposeError('not_shared', `${kind} ${key}: "${dockerName}" exists on this target but was not made by this environment, and the repository's policy does not share it`, {
    ...locatedAt(at),
    hint: `to use it on purpose, list it under policy.allow_shared_objects: [${dockerName}] in .github/berth.yml on the default branch; or remove external: and name: to let berth create this environment's own`,
  });
}

export interface ReconcileOptions {
  /** `rollback` (a /rollback apply): services roll out with deploy.rollback_config, or update_config without one */
  rollout?: 'update' | 'rollback';
}

export function reconcile(desired: DesiredState, observed: ObservedState, opts: ReconcileOptions = {}): Plan {
  const b = new Builder();
  const { project, environment: env } = desired;
  const services = topoServices(desired.services);
  const desiredByName = new Map(services.map((s) => [s.spec.name, s]));
  const containers = sortContainers(observed.containers);
  const obsNetworks = new Map<string, ObservedNetwork>([...observed.networks].sort(byName((n) => n.name)).map((n) => [n.name, n]));
  const obsVolumes = new Map([...observed.volumes].sort(byName((v) => v.name)).map((v) => [v.name, v]));
  const changes: ResourceChange[] = [];
  // Looked up by name (absent when the observer could not: then nothing can be checked, as before).
  const lookedUp = observed.unmanaged;
  const unmanagedNets = new Map((lookedUp?.networks ?? []).map((n) => [n.dockerName, n]));
  const unmanagedVols = new Map((lookedUp?.volumes ?? []).map((v) => [v.dockerName, v]));
  /** labelled by berth for another project or environment (a `name:` two environments share) */
  /** or by another repository (same project and environment): adopting it would hand this repository another's data */
  /** or made by another docker compose project (one run as `docker compose -p <project>-<env>` is this environment's, adopted as before) */
  const anothers = (labels: Record<string, string>) =>
    (labels[LABEL.environment] !== undefined &&
      (labels[LABEL.project] !== project || labels[LABEL.environment] !== env || (desired.repository !== undefined && labels[LABEL.repository] !== undefined && labels[LABEL.repository] !== desired.repository))) ||
    (labels[LABEL.environment] === undefined && labels[COMPOSE_PROJECT] !== undefined && labels[COMPOSE_PROJECT] !== `${project}-${env}`);
  /** made for this environment: berth's labels of it, or docker compose's of `<project>-<env>` (a stack berth took over) */
  const ownedHere = (labels: Record<string, string>) =>
    (labels[LABEL.environment] === env && labels[LABEL.project] === project && (desired.repository === undefined || labels[LABEL.repository] === undefined || labels[LABEL.repository] === desired.repository)) ||
    (labels[LABEL.environment] === undefined && labels[COMPOSE_PROJECT] === `${project}-${env}`);
  /** objects this environment did not make that the policy lets it use, by Docker name (allow_shared_objects) */
  const shared = new Set(desired.sharedObjects ?? []);

  // --- networks: decide which are created, replaced or removed
  const changedNetworks = new Set<string>();
  const createNet = new Map<string, string>(); // compose key → node key
  const removeNet = new Map<string, string>();
  for (const n of [...desired.networks].sort(byName((n) => n.spec.name))) {
    const dockerName = dockerNameOf(project, env, 'network', n.spec);
    if (n.spec.external) {
      const ext = unmanagedNets.get(dockerName);
      if (lookedUp && !ext) throw missingExternal('network', n.spec.name, dockerName, n.at);
      if (ext && !ownedHere(ext.labels) && !shared.has(dockerName)) throw anothers(ext.labels) ? foreignObject('network', n.spec.name, dockerName, ext.labels, n.at) : notShared('network', n.spec.name, dockerName, n.at);
      continue;
    }
    const o = obsNetworks.get(n.spec.name);
    const found = o ? undefined : unmanagedNets.get(dockerName);
    if (found) {
      if (anothers(found.labels)) throw nameOfAnother('network', n.spec.name, dockerName, found.labels, n.at);
      // A name of the PR's choosing that someone else's network holds: joined only when the policy names it.
      if (n.spec.dockerName !== undefined && !ownedHere(found.labels) && !shared.has(dockerName)) throw notShared('network', n.spec.name, dockerName, n.at);
      // Someone made it under berth's name: used as it is when it is what berth would have made, else the plan says why not.
      const diffs = networkDiffs(n.spec, found);
      if (diffs.length) throw nameTaken('network', n.spec.name, dockerName, diffs, n.at);
      changes.push({ kind: 'network', name: n.spec.name, action: 'unchanged', reasons: [`adopted existing ${dockerName}`] });
      continue;
    }
    if (o && o.configHash === n.configHash) {
      changes.push({ kind: 'network', name: n.spec.name, action: 'unchanged', reasons: [] });
      continue;
    }
    const resource = `network:${n.spec.name}`;
    let removeKey: string | undefined;
    if (o) {
      changedNetworks.add(n.spec.name);
      removeKey = b.add({ key: `rmnet:${n.spec.name}`, kind: 'RemoveNetwork', resource, reason: 'network changed', group: `replace:network:${n.spec.name}`, target: { network: n.spec.name, containerId: o.id } });
      removeNet.set(n.spec.name, removeKey);
    }
    createNet.set(
      n.spec.name,
      b.add({
        key: `mknet:${n.spec.name}`,
        kind: 'CreateNetwork',
        resource,
        reason: o ? 'network changed' : 'missing',
        detail: dockerName,
        ...(o ? { group: `replace:network:${n.spec.name}` } : {}),
        deps: [removeKey],
        target: { network: n.spec.name },
      }),
    );
    changes.push({ kind: 'network', name: n.spec.name, action: o ? 'change' : 'create', reasons: [o ? 'network config changed' : 'missing'] });
  }
  const desiredNetworkNames = new Set(desired.networks.map((n) => n.spec.name));
  for (const o of obsNetworks.values()) {
    if (desiredNetworkNames.has(o.name)) continue;
    removeNet.set(o.name, b.add({ key: `rmnet:${o.name}`, kind: 'RemoveNetwork', resource: `network:${o.name}`, reason: 'no longer declared', target: { network: o.name, containerId: o.id } }));
    changes.push({ kind: 'network', name: o.name, action: 'remove', reasons: ['no longer declared'] });
  }

  // --- volumes: created when missing, never removed or replaced implicitly
  const createVol = new Map<string, string>();
  for (const v of [...desired.volumes].sort(byName((v) => v.spec.name))) {
    const dockerName = dockerNameOf(project, env, 'volume', v.spec);
    if (v.spec.external) {
      const ext = unmanagedVols.get(dockerName);
      if (lookedUp && !ext) throw missingExternal('volume', v.spec.name, dockerName, v.at);
      if (ext && !ownedHere(ext.labels) && !shared.has(dockerName)) throw anothers(ext.labels) ? foreignObject('volume', v.spec.name, dockerName, ext.labels, v.at) : notShared('volume', v.spec.name, dockerName, v.at);
      continue;
    }
    const o = obsVolumes.get(v.spec.name);
    const found = o ? undefined : unmanagedVols.get(dockerName);
    if (found) {
      if (anothers(found.labels)) throw nameOfAnother('volume', v.spec.name, dockerName, found.labels, v.at);
      // A name of the PR's choosing that someone else's volume holds (`name: portainer_data`): mounted only when the policy names it.
      if (v.spec.dockerName !== undefined && !ownedHere(found.labels) && !shared.has(dockerName)) throw notShared('volume', v.spec.name, dockerName, v.at);
      const diffs = volumeDiffs(v.spec, found);
      if (diffs.length) throw nameTaken('volume', v.spec.name, dockerName, diffs, v.at);
      changes.push({ kind: 'volume', name: v.spec.name, action: 'unchanged', reasons: [`adopted existing ${dockerName}`] });
      continue;
    }
    if (o) {
      changes.push({
        kind: 'volume',
        name: v.spec.name,
        action: 'unchanged',
        reasons: o.configHash === v.configHash ? [] : ['volume options differ; volumes are never recreated implicitly'],
      });
      continue;
    }
    createVol.set(v.spec.name, b.add({ key: `mkvol:${v.spec.name}`, kind: 'CreateVolume', resource: `volume:${v.spec.name}`, reason: 'missing', detail: dockerName, target: { volume: v.spec.name } }));
    changes.push({ kind: 'volume', name: v.spec.name, action: 'create', reasons: ['missing'] });
  }

  // --- containers, grouped by service and replica
  const byService = new Map<string, ObservedContainer[]>();
  for (const c of containers) (byService.get(c.service) ?? byService.set(c.service, []).get(c.service)!).push(c);

  const images = new Map<string, string>(); // image → EnsureImage node key (created lazily)
  const ensureImage = (image: string): string => {
    let k = images.get(image);
    if (!k) {
      k = `img:${image}`;
      images.set(image, k);
    }
    return k;
  };
  // EnsureImage nodes must be built before their users for a stable order: collect first, add below.
  const imageUsers: { image: string; user: string }[] = [];

  /** per service: the nodes that mark it "up" for dependants */
  const serviceReady = new Map<string, string[]>();
  const serviceHealthy = new Map<string, string[]>();
  /** containers that leave a network: RemoveNetwork must wait for them */
  const leavesNetwork: { network: string; node: string }[] = [];
  const serviceCompleted = new Map<string, string[]>();
  /** services with a replica recreated by this plan (dependants with depends_on.restart follow) */
  const recreated = new Set<string>();
  /** per service: its replicas this plan keeps running as they are (a dependant started by the plan checks their health) */
  const keptRunning = new Map<string, { r: number; containerName: string }[]>();
  /** per service: the WaitHealthy nodes of its kept replicas, made once the first dependant that starts asks */
  const keptHealthy = new Map<string, string[]>();
  const needsHealthy = new Set<string>();
  const needsCompleted = new Set<string>();
  for (const s of services)
    for (const d of s.spec.dependsOn) {
      if (d.condition === 'service_healthy') needsHealthy.add(d.service);
      if (d.condition === 'service_completed_successfully') needsCompleted.add(d.service);
    }

  // Pre-create EnsureImage nodes for every image a create will need, in sorted order, so ids are stable.
  const imagesNeeded = new Set<string>();
  /** services whose replica 1 gets a new container: a service joining its namespaces (service:) must be recreated into the new one */
  const renewed = new Set<string>();
  const serviceWork = services.map((s) => {
    const observedOf = byService.get(s.spec.name) ?? [];
    const canonical = (r: number) => names.serviceContainer(project, env, s.spec, r);
    const primary = new Map<number, ObservedContainer>();
    const extras: ObservedContainer[] = [];
    for (const c of observedOf) {
      if (c.replica >= 1 && c.replica <= s.spec.replicas && c.name === canonical(c.replica) && !primary.has(c.replica)) primary.set(c.replica, c);
      else extras.push(c);
    }
    // A leftover of a replica we keep whose canonical name is free (e.g. an interrupted rename) is adopted rather than duplicated.
    for (const c of [...extras]) {
      if (c.replica >= 1 && c.replica <= s.spec.replicas && !primary.has(c.replica) && c.configHash === s.configHash && RUNNING_STATES.has(c.state)) {
        primary.set(c.replica, c);
        extras.splice(extras.indexOf(c), 1);
      }
    }
    // A container_name added, changed or dropped: the container under its previous name is this replica, recreated (not a duplicate).
    for (const c of [...extras]) {
      const previous = c.config ? names.serviceContainer(project, env, c.config, c.replica) : undefined;
      if (c.replica >= 1 && c.replica <= s.spec.replicas && !primary.has(c.replica) && previous === c.name && c.configHash !== s.configHash) {
        primary.set(c.replica, c);
        extras.splice(extras.indexOf(c), 1);
      }
    }
    const replicas: { r: number; c?: ObservedContainer; action: 'create' | 'recreate' | 'start' | 'unpause' | 'keep'; reason?: string }[] = [];
    for (let r = 1; r <= s.spec.replicas; r++) {
      const c = primary.get(r);
      if (!c) {
        replicas.push({ r, action: 'create', reason: 'missing' });
        imagesNeeded.add(s.spec.image);
        continue;
      }
      const why = recreateReason(c, s, changedNetworks) ?? (c.name !== canonical(r) ? 'name differs' : undefined);
      if (why) {
        replicas.push({ r, c, action: 'recreate', reason: why });
        imagesNeeded.add(s.spec.image);
      } else if (c.state === 'paused') replicas.push({ r, c, action: 'unpause', reason: 'paused' });
      else if (finishedJob(c, s)) replicas.push({ r, c, action: 'keep' });
      else if (!RUNNING_STATES.has(c.state)) replicas.push({ r, c, action: 'start', reason: c.state === 'created' ? 'not started' : 'stopped' });
      else replicas.push({ r, c, action: 'keep' });
    }
    // Services come in dependency order and a join is a dependency, so the joined service was decided already.
    const joined = joinedServices(s.spec).find((n) => renewed.has(n));
    if (joined)
      for (const rep of replicas)
        if (rep.action === 'keep' || rep.action === 'start' || rep.action === 'unpause') {
          rep.action = 'recreate';
          rep.reason = `joined service ${joined} recreated`;
          imagesNeeded.add(s.spec.image);
        }
    if (replicas[0] && replicas[0].r === 1 && (replicas[0].action === 'create' || replicas[0].action === 'recreate')) renewed.add(s.spec.name);
    return { s, replicas, extras, observedCount: observedOf.length };
  });
  for (const image of [...imagesNeeded].sort()) b.add({ key: ensureImage(image), kind: 'EnsureImage', resource: `image:${image}`, reason: 'needed', target: { image } });

  /** WaitHealthy nodes for a dependency's kept replicas (once per dependency, whichever dependant asks first) */
  const keptHealthyOf = (dep: string): string[] => {
    let nodes = keptHealthy.get(dep);
    if (!nodes) {
      const fromImage = desiredByName.get(dep)?.spec.healthcheck?.test.length ? {} : { detail: "the image's healthcheck" };
      nodes = (keptRunning.get(dep) ?? []).map(({ r, containerName }) =>
        b.add({ key: `wait:${dep}:${r}`, kind: 'WaitHealthy', resource: `service:${dep}:${r}`, reason: 'service_healthy (kept running)', ...fromImage, target: { service: dep, replica: r, containerName } }),
      );
      keptHealthy.set(dep, nodes);
    }
    return nodes;
  };

  for (const { s, replicas, extras, observedCount } of serviceWork) {
    const name = s.spec.name;
    // What a replica this plan starts waits for (made when the first one asks: a service the plan leaves as it is
    // adds no node). service_healthy: the dependency's replicas this plan starts, once healthy, and those it keeps
    // running, checked healthy too, as docker compose checks a running dependency before it starts a dependant.
    let depNodes: string[] | undefined;
    const depReady = (): string[] =>
      (depNodes ??= s.spec.dependsOn.flatMap((d) =>
        d.condition === 'service_healthy'
          ? [...(serviceHealthy.get(d.service) ?? serviceReady.get(d.service) ?? []), ...keptHealthyOf(d.service)]
          : d.condition === 'service_completed_successfully'
            ? serviceCompleted.get(d.service) ?? serviceReady.get(d.service) ?? []
            : serviceReady.get(d.service) ?? [],
      ));
    const infra = [
      ...s.spec.networks.map((n) => createNet.get(n)),
      ...s.spec.volumes.filter((m) => m.type === 'volume' && m.source).map((m) => createVol.get(m.source!)),
    ];
    const ready: string[] = [];
    const healthy: string[] = [];
    const completed: string[] = [];
    const reasons = new Set<string>();
    const [firstNet, ...extraNets] = s.spec.networkMode ? [] : s.spec.networks;
    // A container joining another's namespaces is created only once that container exists under its final name.
    const joinReady = joinedServices(s.spec).flatMap((n) => serviceReady.get(n) ?? []);

    // Extras first: they may hold the tmp name or a replica number we need.
    const extraRemovals: string[] = [];
    for (const c of extras) {
      const scaleDown = c.replica > s.spec.replicas;
      const reason = scaleDown ? 'scale down' : 'duplicate';
      const resource = `service:${name}:${c.replica}`;
      const group = `${scaleDown ? 'scale-down' : 'remove'}:${name}:${c.replica}`;
      const stop = RUNNING_STATES.has(c.state) || c.state === 'paused'
        ? b.add({ key: `stop:${c.id}`, kind: 'StopContainer', resource, reason, detail: c.name, group, target: { service: name, replica: c.replica, containerId: c.id, containerName: c.name } })
        : undefined;
      const rm = b.add({ key: `rm:${c.id}`, kind: 'RemoveContainer', resource, reason, detail: c.name, group, deps: [stop], target: { service: name, replica: c.replica, containerId: c.id, containerName: c.name } });
      extraRemovals.push(rm);
      for (const n of c.networks) leavesNetwork.push({ network: n, node: rm });
      reasons.add(reason);
    }

    const createChain = (r: number, containerName: string, group: string | undefined, reason: string, detail: string | undefined, extraDeps: string[], inheritVolumes: { name: string; target: string }[] = [], more: Partial<NodeTarget> = {}) => {
      const resource = `service:${name}:${r}`;
      const create = b.add({
        key: `create:${name}:${r}`,
        kind: 'CreateContainer',
        resource,
        reason,
        ...(detail ? { detail } : {}),
        ...(group ? { group } : {}),
        deps: [images.get(s.spec.image), ...infra, ...extraRemovals, ...joinReady, ...extraDeps],
        target: { service: name, replica: r, containerName, image: s.spec.image, configHash: s.configHash, ...(firstNet ? { network: firstNet } : {}), ...(inheritVolumes.length ? { inheritVolumes } : {}), ...more },
      });
      const connects = extraNets.map((n) =>
        b.add({ key: `connect:${name}:${r}:${n}`, kind: 'ConnectNetwork', resource, reason, detail: n, ...(group ? { group } : {}), deps: [create, createNet.get(n)], target: { service: name, replica: r, containerName, network: n, ...(more.outsideDns ? { outsideDns: true } : {}) } }),
      );
      return { create, connects };
    };

    const startChain = (r: number, after: string[], reason: string, group: string | undefined, containerName: string, containerId?: string, gated = false) => {
      const resource = `service:${name}:${r}`;
      const start = b.add({ key: `start:${name}:${r}`, kind: 'StartContainer', resource, reason, ...(group ? { group } : {}), deps: [...after, ...depReady()], target: { service: name, replica: r, containerName, ...(containerId ? { containerId } : {}) } });
      ready.push(start);
      if (gated) healthy.push(rolloutGate(r, start, group!, containerName));
      else if (needsHealthy.has(name)) {
        // no healthcheck in the compose files: the image's HEALTHCHECK is the one waited for
        const fromImage = s.spec.healthcheck?.test.length ? {} : { detail: "the image's healthcheck" };
        const wait = b.add({ key: `wait:${name}:${r}`, kind: 'WaitHealthy', resource, reason: 'service_healthy', ...fromImage, ...(group ? { group } : {}), deps: [start], target: { service: name, replica: r, containerName } });
        healthy.push(wait);
      } else healthy.push(start);
      // service_completed_successfully: dependants wait for this replica to exit 0 (a non-zero exit fails the node).
      if (needsCompleted.has(name)) {
        // Not part of a recreate group: the job's exit code is its outcome, not a failed step to undo (nor one a stop must wait out).
        completed.push(b.add({ key: `exit:${name}:${r}`, kind: 'WaitExited', resource, reason: 'service_completed_successfully', deps: [start], target: { service: name, replica: r, containerName } }));
      } else completed.push(start);
      // A recreate removes the parked old container once the new one is up (healthy when that is asked for).
      return healthy[healthy.length - 1]!;
    };

    // deploy.update_config: the replicas to replace roll in batches of `parallelism`, each batch
    // health-gated, the next one starting after a BatchGate (failure_action, max_failure_ratio, delay).
    // Without update_config every replica is replaced at once, stop-first, as compose does.
    const ro = opts.rollout === 'rollback' ? (s.spec.rollout?.rollback ?? s.spec.rollout?.update) : s.spec.rollout?.update;
    const rolling = ro ? replicas.filter((rep) => rep.action === 'recreate') : [];
    const perBatch = Math.max(1, ro?.parallelism || rolling.length);
    const batchOf = new Map(rolling.map((rep, i) => [rep.r, Math.floor(i / perBatch)]));
    const batchCount = Math.ceil(rolling.length / perBatch);
    const finals: string[][] = Array.from({ length: batchCount }, () => []);
    const batchGates: string[] = [];
    const gateDetail = s.spec.healthcheck && s.spec.healthcheck.test[0] !== 'NONE' ? 'healthcheck' : `running ${duration(ro?.monitorMs ?? 0)}`;
    /** the health gate of a rollout: the new container healthy (its healthcheck), or running through `monitor` */
    const rolloutGate = (r: number, start: string, group: string, containerName: string) =>
      b.add({
        key: `wait:${name}:${r}`,
        kind: 'WaitHealthy',
        resource: `service:${name}:${r}`,
        reason: 'rollout gate',
        detail: gateDetail,
        group,
        deps: [start],
        target: { service: name, replica: r, containerName, ...(gateDetail === 'healthcheck' ? {} : { monitorMs: ro?.monitorMs ?? 0 }) },
      });
    /** the batch a rollout replica belongs to waits for the gate after the previous batch */
    const batchAfter = (r: number): string[] => {
      const k = batchOf.get(r);
      if (!ro || !k) return [];
      batchGates[k - 1] ??= b.add({
        key: `batch:${name}:${k}`,
        kind: 'BatchGate',
        resource: `service:${name}`,
        reason: `rollout batch ${k}/${batchCount}`,
        detail: [ro.order, `failure_action ${ro.failureAction}`, ...(ro.maxFailureRatio ? [`max_failure_ratio ${ro.maxFailureRatio}`] : []), ...(ro.delayMs ? [`delay ${duration(ro.delayMs)}`] : [])].join('; '),
        deps: finals[k - 1]!,
        target: { service: name, rollout: { batch: k, batches: batchCount, replicas: rolling.length, delayMs: ro.delayMs, failureAction: ro.failureAction, maxFailureRatio: ro.maxFailureRatio } },
      });
      return [batchGates[k - 1]!];
    };

    // depends_on.restart: a running replica is restarted once a dependency that asked for it was recreated.
    const restartFor = s.spec.dependsOn.filter((d) => d.restart && recreated.has(d.service)).map((d) => d.service);
    for (const rep of replicas) {
      const canonical = names.serviceContainer(project, env, s.spec, rep.r);
      if (rep.action === 'keep') {
        if (!restartFor.length || !RUNNING_STATES.has(rep.c!.state)) continue;
        const reason = `dependency ${restartFor.join(', ')} recreated`;
        const group = `restart:${name}:${rep.r}`;
        const c = rep.c!;
        const stop = b.add({ key: `stop:${c.id}`, kind: 'StopContainer', resource: `service:${name}:${rep.r}`, reason, detail: c.name, group, deps: depReady(), target: { service: name, replica: rep.r, containerId: c.id, containerName: c.name } });
        startChain(rep.r, [stop], reason, group, canonical, c.id);
        reasons.add(reason);
        continue;
      }
      reasons.add(rep.reason!);
      if (rep.action === 'start') {
        startChain(rep.r, [], rep.reason!, undefined, canonical, rep.c!.id);
        continue;
      }
      if (rep.action === 'unpause') {
        // A paused container is running but frozen: Docker refuses to start it, so it is unpaused instead.
        const unpause = b.add({ key: `unpause:${name}:${rep.r}`, kind: 'UnpauseContainer', resource: `service:${name}:${rep.r}`, reason: 'paused', target: { service: name, replica: rep.r, containerName: canonical, containerId: rep.c!.id } });
        ready.push(unpause);
        healthy.push(unpause);
        completed.push(unpause);
        continue;
      }
      if (rep.action === 'create') {
        const { create, connects } = createChain(rep.r, canonical, undefined, 'missing', undefined, []);
        startChain(rep.r, [create, ...connects], 'missing', undefined, canonical);
        continue;
      }
      // recreate: create new (temporary name) → stop old → rename old aside → rename new → start new
      // [→ wait healthy] → remove old. The old container is only parked, never removed, until the new
      // one runs (and is healthy when a dependant waits for that): if any step fails, or a stop or a
      // crash lands in between, the executor can always put the old one back under its name.
      // The first destructive step (stop, or the rename aside) also waits for everything the new
      // container's start waits for, so once the group has touched the old container nothing outside
      // the group can still fail or be cancelled under it: a begun group runs to its end.
      const old = rep.c!;
      const tmp = names.tmpContainer(project, env, name, rep.r, s.configHash);
      const resource = `service:${name}:${rep.r}`;
      const after = batchAfter(rep.r);
      const more: Partial<NodeTarget> = ro ? { previousImage: old.image } : {};
      // Compose keeps a recreated container's anonymous volumes: the new one mounts them at the same paths (unless that path now has another mount).
      const mounted = new Set(s.spec.volumes.filter((m) => m.type !== 'volume' || m.source).map((m) => m.target));
      const inherit = (old.anonymousVolumes ?? []).filter((v) => !mounted.has(v.target));
      // start-first: the new container runs beside the old one (under its temporary name, with the service's
      // aliases) and must pass its gate before the old one leaves the service's DNS name (disconnected from
      // every network it is on), stops within its grace period and goes; then the new one takes the name.
      // Only for a running old container whose networks stay (a replaced network cannot hold both).
      const startFirst =
        ro?.order === 'start-first' && RUNNING_STATES.has(old.state) && !s.spec.networkMode && !needsCompleted.has(name) && ![...old.networks, ...s.spec.networks].some((n) => changedNetworks.has(n));
      if (startFirst) {
        const group = `start-first:${name}:${rep.r}`;
        // Outside the service's DNS name until healthy: clients never reach a replacement still starting.
        const { create, connects } = createChain(rep.r, tmp, group, rep.reason!, tmp, after, inherit, { ...more, outsideDns: true });
        const start = b.add({ key: `start:${name}:${rep.r}`, kind: 'StartContainer', resource, reason: rep.reason!, detail: tmp, group, deps: [create, ...connects, ...depReady()], target: { service: name, replica: rep.r, containerName: tmp } });
        const gate = rolloutGate(rep.r, start, group, tmp);
        // Healthy: it joins the service's DNS name on each network (Docker sets aliases only on connect), then the old one leaves it.
        const joins = s.spec.networks.map((n) => {
          const out = b.add({ key: `rejoin:${name}:${rep.r}:${n}`, kind: 'DisconnectNetwork', resource, reason: 'rejoins with the service aliases', detail: n, group, deps: [gate], target: { service: name, replica: rep.r, containerName: tmp, network: n } });
          return b.add({ key: `join:${name}:${rep.r}:${n}`, kind: 'ConnectNetwork', resource, reason: 'joins DNS', detail: n, group, deps: [out], target: { service: name, replica: rep.r, containerName: tmp, network: n } });
        });
        const oldTarget = { service: name, replica: rep.r, containerId: old.id, containerName: old.name };
        // Docker (libnetwork) takes a disconnected container's interface down before it drops its DNS
        // record, so a lookup in between names an address nobody answers. The old container therefore
        // connects again at once, outside the DNS name: Docker hands out the lowest free address, which
        // is the one it just released, so a connection attempt that fell into the gap is answered by the
        // old container when TCP retries it (1 s later). It drains for DRAIN_MS before it is stopped.
        const leave = [...old.networks].sort().map((n) => {
          const out = b.add({ key: `disconnect:${old.id}:${n}`, kind: 'DisconnectNetwork', resource, reason: 'leaves DNS', detail: n, group, deps: joins.length ? joins : [gate], target: { ...oldTarget, network: n } });
          return b.add({ key: `drain:${old.id}:${n}`, kind: 'ConnectNetwork', resource, reason: `rejoins outside DNS, drains ${DRAIN_MS / 1000} s`, detail: n, group, deps: [out], target: { ...oldTarget, network: n, outsideDns: true } });
        });
        const stop = b.add({ key: `stop:${old.id}`, kind: 'StopContainer', resource, reason: rep.reason!, detail: old.name, group, deps: leave.length ? leave : joins.length ? joins : [gate], target: { ...oldTarget, ...(leave.length ? { drainMs: DRAIN_MS } : {}) } });
        const rm = b.add({ key: `rm:${old.id}`, kind: 'RemoveContainer', resource, reason: rep.reason!, detail: old.name, group, deps: [stop], target: oldTarget });
        const rename = b.add({ key: `rename:${name}:${rep.r}`, kind: 'RenameContainer', resource, reason: rep.reason!, detail: `${tmp} → ${canonical}`, group, deps: [rm], target: { service: name, replica: rep.r, fromName: tmp, containerName: canonical } });
        ready.push(rename);
        healthy.push(rename);
        completed.push(rename);
        for (const n of old.networks) leavesNetwork.push({ network: n, node: rm });
        finals[batchOf.get(rep.r)!]!.push(rename);
        continue;
      }
      const group = `recreate:${name}:${rep.r}`;
      const backup = names.backupContainer(project, env, name, rep.r);
      // When the old container sits on a network being replaced it must leave it before the network goes.
      const disconnects: string[] = [];
      for (const n of old.networks) {
        if (!changedNetworks.has(n)) continue;
        const k = b.add({ key: `disconnect:${old.id}:${n}`, kind: 'DisconnectNetwork', resource, reason: 'network changed', detail: n, group, target: { service: name, replica: rep.r, containerId: old.id, containerName: old.name, network: n } });
        disconnects.push(k);
        leavesNetwork.push({ network: n, node: k });
      }
      const { create, connects } = createChain(rep.r, tmp, group, rep.reason!, tmp, after, inherit, more);
      const stop = RUNNING_STATES.has(old.state) || old.state === 'paused'
        ? b.add({ key: `stop:${old.id}`, kind: 'StopContainer', resource, reason: rep.reason!, detail: old.name, group, deps: [create, ...connects, ...disconnects, ...depReady()], target: { service: name, replica: rep.r, containerId: old.id, containerName: old.name } })
        : undefined;
      const aside = b.add({
        key: `park:${old.id}`,
        kind: 'RenameContainer',
        resource,
        reason: rep.reason!,
        detail: `${old.name} → ${backup}`,
        group,
        deps: stop ? [stop] : [create, ...connects, ...disconnects, ...depReady()],
        target: { service: name, replica: rep.r, containerId: old.id, fromName: old.name, containerName: backup },
      });
      const rename = b.add({ key: `rename:${name}:${rep.r}`, kind: 'RenameContainer', resource, reason: rep.reason!, detail: `${tmp} → ${canonical}`, group, deps: [aside], target: { service: name, replica: rep.r, fromName: tmp, containerName: canonical } });
      const up = startChain(rep.r, [rename], rep.reason!, group, canonical, undefined, !!ro);
      const rm = b.add({ key: `rm:${old.id}`, kind: 'RemoveContainer', resource, reason: rep.reason!, detail: backup, group, deps: [up], target: { service: name, replica: rep.r, containerId: old.id, containerName: backup } });
      for (const n of old.networks) if (!changedNetworks.has(n)) leavesNetwork.push({ network: n, node: rm });
      if (ro) finals[batchOf.get(rep.r)!]!.push(rm);
    }
    serviceReady.set(name, ready);
    serviceHealthy.set(name, healthy);
    serviceCompleted.set(name, completed);
    const kept = replicas.filter((rep) => rep.action === 'keep' && rep.c && RUNNING_STATES.has(rep.c.state)).map((rep) => ({ r: rep.r, containerName: rep.c!.name }));
    if (kept.length) keptRunning.set(name, kept);
    if (replicas.some((r) => r.action === 'recreate')) recreated.add(name);

    const before = observedCount ? pickBefore(replicas.map((r) => r.c).filter(Boolean) as ObservedContainer[], extras) : undefined;
    const touched = reasons.size > 0;
    const replicasBefore = replicas.filter((r) => r.c).length + extras.filter((c) => c.replica > s.spec.replicas).length;
    if (observedCount === 0) changes.push({ kind: 'service', name, action: 'create', reasons: ['missing'], after: s.spec, replicasBefore: 0, replicasAfter: s.spec.replicas });
    else {
      const reasonList = [...reasons].filter((r) => r !== 'scale down' && r !== 'missing');
      if (replicasBefore !== s.spec.replicas) reasonList.unshift(`scale ${replicasBefore} → ${s.spec.replicas}`);
      else if (reasons.has('missing')) reasonList.push('missing replicas');
      changes.push({
        kind: 'service',
        name,
        action: touched ? 'change' : 'unchanged',
        reasons: reasonList,
        ...beforeOf(before),
        after: s.spec,
        replicasBefore,
        replicasAfter: s.spec.replicas,
      });
    }
  }

  // --- orphans: managed containers of services no longer desired
  const orphanServices = new Map<string, ObservedContainer[]>();
  for (const c of containers) if (!desiredByName.has(c.service)) (orphanServices.get(c.service) ?? orphanServices.set(c.service, []).get(c.service)!).push(c);
  for (const [service, cs] of orphanServices) {
    for (const c of cs) {
      const resource = `service:${service}:${c.replica}`;
      const group = `orphan:${service}:${c.replica}`;
      const stop = RUNNING_STATES.has(c.state) || c.state === 'paused'
        ? b.add({ key: `stop:${c.id}`, kind: 'StopContainer', resource, reason: 'orphan', detail: c.name, group, target: { service, replica: c.replica, containerId: c.id, containerName: c.name } })
        : undefined;
      const rm = b.add({ key: `rm:${c.id}`, kind: 'RemoveContainer', resource, reason: 'orphan', detail: c.name, group, deps: [stop], target: { service, replica: c.replica, containerId: c.id, containerName: c.name } });
      for (const n of c.networks) leavesNetwork.push({ network: n, node: rm });
    }
    changes.push({ kind: 'service', name: service, action: 'remove', reasons: ['no longer declared'], ...beforeOf(cs.find((c) => c.config)), replicasBefore: cs.length, replicasAfter: 0 });
  }

  // A network is removed only once every container that leaves it has left.
  for (const { network, node } of leavesNetwork) {
    const rm = removeNet.get(network);
    if (rm) b.dependOn(rm, node);
  }
  // Containers that stay on a replaced network (nothing else recreates them) would block its removal;
  // recreateReason marked every such service 'network changed', so each was disconnected above.

  changes.sort((a, b2) => kindOrder(a.kind) - kindOrder(b2.kind) || (a.name < b2.name ? -1 : a.name > b2.name ? 1 : 0));
  const dd = desiredDigest(desired);
  const od = observedDigest(observed);
  return {
    project,
    environment: env,
    nodes: b.finish(),
    changes,
    desiredDigest: dd,
    observedDigest: od,
    fingerprint: planFingerprint(dd, od),
    desired,
    ...(opts.rollout === 'rollback' ? { rollout: 'rollback' as const } : {}),
  };
}

function kindOrder(k: ResourceChange['kind']): number {
  return k === 'service' ? 0 : k === 'network' ? 1 : 2;
}

/** The container whose recorded config (labels carry it) stands for the service as it was: the first replica's that has one. */
function pickBefore(kept: ObservedContainer[], extras: ObservedContainer[]): ObservedContainer | undefined {
  for (const c of [...kept, ...extras]) if (c.config) return c;
  return undefined;
}

/** A change's deployed side, with the fields of it a secret fed. */
function beforeOf(c: ObservedContainer | undefined): Pick<ResourceChange, 'before' | 'beforeSecretFields'> {
  if (!c?.config) return {};
  return { before: c.config, ...(c.configSecretFields?.length ? { beforeSecretFields: c.configSecretFields } : {}) };
}
