// Drift: the reconciler that keeps the containers index in step with each
// Docker target, and the report that compares the index with the last
// completed apply of every environment.
//
// A tick of one target, whatever the number of containers:
//   lease `drift:<target>` (one replica per target at a time)
//   → store: index rows of the target + in-flight applies (2 reads, together)
//   → Docker: ONE label-filtered listContainers call
//   → store: which listed apply ids exist (1 read)
//   → store: one batched upsert, one mark-missing, one prune (3 writes)
// Nothing is ever read or written per container. A failed read (Docker or
// store) ends the tick before any write, so a broken engine connection can
// never flip live rows to `missing`.
import type Dockerode from 'dockerode';
import { parsePayload } from '../apply/executor.js';
import { parseSecretFieldsLabel } from '../docker/observe.js';
import { OUT } from '../text/outbound.js';
import type { Metrics } from '../server/metrics.js';
import { LABEL, names } from '../model/model.js';
import type { DesiredState } from '../model/model.js';
import type { ContainerRow, ContainerUpsert, IndexedContainerState, Store } from '../store/store.js';
import { INDEXED_CONTAINER_STATES, IN_FLIGHT_AGGREGATE_STATES } from '../store/store.js';

// ── configuration ─────────────────────────────────────────────────────────

export const DEFAULT_DRIFT_INTERVAL_MS = 60_000;
export const MIN_DRIFT_INTERVAL_MS = 10_000;
export const MAX_DRIFT_INTERVAL_MS = 10 * 60_000;
/** Rows `missing` for longer than this are pruned from the index. */
export const DEFAULT_MISSING_RETENTION_MS = 7 * 24 * 3600_000;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000 };

/**
 * DRIFT_INTERVAL: `30s`, `2m`, `1h`, `1500ms` or a plain number of
 * milliseconds; clamped to [10 s, 10 min]; default 60 s. Unreadable values
 * fall back to the default with a warning (the server still starts).
 */
export function parseDriftInterval(raw: string | undefined): { ms: number; warning?: string } {
  const text = raw?.trim().toLowerCase();
  if (!text) return { ms: DEFAULT_DRIFT_INTERVAL_MS };
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(text);
  if (!m) {
    return {
      ms: DEFAULT_DRIFT_INTERVAL_MS,
      warning: `DRIFT_INTERVAL "${raw}" is not a duration like 30s, 2m or 60000; using ${DEFAULT_DRIFT_INTERVAL_MS / 1000}s`,
    };
  }
  const ms = Math.round(Number(m[1]) * UNITS[m[2] ?? 'ms']!);
  const clamped = Math.min(MAX_DRIFT_INTERVAL_MS, Math.max(MIN_DRIFT_INTERVAL_MS, ms));
  if (clamped !== ms) {
    return { ms: clamped, warning: `DRIFT_INTERVAL "${raw}" is outside [10s, 10m]; using ${clamped / 1000}s` };
  }
  return { ms };
}

// ── reconciler ────────────────────────────────────────────────────────────

/** All the reconciler needs from a Docker client (tests pass fakes). */
export type DockerLister = Pick<Dockerode, 'listContainers'>;

export interface DriftLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface DriftReconcilerOptions {
  store: Store;
  /** target names to reconcile */
  targets: readonly string[];
  docker: (target: string) => DockerLister;
  log?: DriftLogger;
  /** time between passes (default 60 s); not clamped here, see parseDriftInterval */
  intervalMs?: number;
  /** this replica's id, the lease holder */
  holder: string;
  /** clock for seenAt and missing-row retention (the store's own clock runs lease expiry) */
  now?: () => number;
  metrics?: Metrics;
  /** lease time to live (default 2 × interval): a dead replica's targets are taken over after this */
  leaseTtlMs?: number;
  /** after each pass, compute the drift report for berth_drift_count (default: when metrics are given) */
  reportDrift?: boolean;
  /** prune rows `missing` for longer than this (default 7 days) */
  missingRetentionMs?: number;
  /** a list call that takes longer is aborted and the tick fails (default: the interval, at most 30 s) */
  listTimeoutMs?: number;
  /** the moved-tag check of the drift report (see DriftReportOptions.resolveTags) */
  resolveTags?: DriftReportOptions['resolveTags'];
}

/** A listed container refused because its berth labels name an apply the store does not know. */
export interface RefusedContainer {
  id: string;
  name: string;
  project: string;
  environment?: string;
  service?: string;
  applyId: string;
}

export type TickResult =
  | {
      target: string;
      status: 'ok';
      durationMs: number;
      /** containers in the one list call */
      listed: number;
      /** rows upserted */
      indexed: number;
      /** rows newly marked missing */
      missing: number;
      /** rows pruned after being missing longer than the retention */
      pruned: number;
      /** listed containers left alone because an apply in flight owns them */
      inFlight: number;
      /** containers naming unknown applies: refused, never adopted */
      forged: RefusedContainer[];
      /** containers with a project label but no apply label (made by hand): not adopted */
      unadopted: number;
      /** containers whose berth labels could not be read, one line each */
      invalid: string[];
      /** the target's index after this tick, by state */
      states: Record<IndexedContainerState, number>;
    }
  | { target: string; status: 'lease-held'; durationMs: number; holder?: string }
  | { target: string; status: 'error'; stage: 'lease' | 'store-read' | 'docker' | 'store-write'; error: string; durationMs: number };

const silent: DriftLogger = { info() {}, warn() {}, error() {} };

/** Docker's container state → the index's. Undefined for a state berth does not know. */
export function normalizeContainerState(state: string | undefined): IndexedContainerState | undefined {
  switch ((state ?? '').toLowerCase()) {
    case 'running':
      return 'running';
    case 'exited':
    case 'dead':
    case 'removing':
      return 'stopped';
    case 'restarting':
      return 'restarting';
    case 'paused':
      return 'paused';
    case 'created':
      return 'created';
    default:
      return undefined;
  }
}

function containerName(c: Dockerode.ContainerInfo): string | undefined {
  const all = (c.Names ?? []).map((n) => n.replace(/^\//, ''));
  return all.find((n) => !n.includes('/')) ?? all[0];
}

interface Parsed {
  id: string;
  name: string;
  project: string;
  environment: string;
  service: string;
  replica: number;
  configHash: string;
  state: IndexedContainerState;
  applyId: string;
}

type Classified =
  | { kind: 'ok'; c: Parsed }
  | { kind: 'unadopted'; id: string }
  | { kind: 'invalid'; applyId: string; why: string; refused: RefusedContainer }
  | { kind: 'foreign' };

function classify(c: Dockerode.ContainerInfo): Classified {
  const labels = c.Labels ?? {};
  const project = labels[LABEL.project];
  if (!project) return { kind: 'foreign' }; // an engine (or proxy) that ignored the filter
  const applyId = labels[LABEL.applyId];
  if (!applyId) return { kind: 'unadopted', id: c.Id };
  const name = containerName(c);
  const environment = labels[LABEL.environment];
  const service = labels[LABEL.service];
  const replicaLabel = labels[LABEL.replica];
  const replica = replicaLabel !== undefined && /^[1-9]\d{0,8}$/.test(replicaLabel) ? Number(replicaLabel) : undefined;
  const configHash = labels[LABEL.configHash];
  const state = normalizeContainerState(c.State);
  const problems: string[] = [];
  if (!environment) problems.push(`no ${LABEL.environment} label`);
  if (!service) problems.push(`no ${LABEL.service} label`);
  if (replica === undefined) problems.push(replicaLabel === undefined ? `no ${LABEL.replica} label` : `${LABEL.replica} ${JSON.stringify(replicaLabel)} is not a positive integer`);
  if (!configHash) problems.push(`no ${LABEL.configHash} label`);
  if (!name) problems.push('no name');
  if (!state) problems.push(`unknown state ${JSON.stringify(c.State)}`);
  const refused: RefusedContainer = {
    id: c.Id,
    name: name ?? '?',
    project,
    ...(environment ? { environment } : {}),
    ...(service ? { service } : {}),
    applyId,
  };
  // A name a secret made (container_name, says the label the create wrote): every line that names the container
  // (a vanished row, a forged one) leaves through the masked channels, which now know it, whatever value the secret has now.
  if (name && parseSecretFieldsLabel(labels[LABEL.secretFields])?.includes('container_name')) OUT.taint(name);
  if (problems.length) return { kind: 'invalid', applyId, why: `container ${name ?? '?'} (${c.Id.slice(0, 12)}): ${problems.join(', ')}; not indexed`, refused };
  return { kind: 'ok', c: { id: c.Id, name: name!, project, environment: environment!, service: service!, replica: replica!, configHash: configHash!, state: state!, applyId } };
}

const errText = (err: unknown) => String((err as Error)?.message ?? err);
const MAX_LOGGED = 20;

export class DriftReconciler {
  private readonly log: DriftLogger;
  private readonly now: () => number;
  readonly intervalMs: number;
  readonly leaseTtlMs: number;
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<unknown> | undefined;
  private started = false;
  /** targets whose lease this replica took (released on stop) */
  private readonly held = new Set<string>();
  /** per target: container ids already warned about, so a forged container is logged once, not every tick */
  private readonly warned = new Map<string, Set<string>>();

  constructor(private readonly o: DriftReconcilerOptions) {
    this.log = o.log ?? silent;
    this.now = o.now ?? Date.now;
    this.intervalMs = o.intervalMs ?? DEFAULT_DRIFT_INTERVAL_MS;
    this.leaseTtlMs = o.leaseTtlMs ?? 2 * this.intervalMs;
  }

  static leaseName(target: string): string {
    return `drift:${target}`;
  }

  /** One pass now, then one every interval (a pass never overlaps the previous one). */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.run();
  }

  /** No new pass starts; waits for the running one; gives up this replica's leases so another takes over at once. */
  async stop(): Promise<void> {
    this.started = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.current?.catch(() => undefined);
    await Promise.all(
      [...this.held].map(async (t) => {
        try {
          await this.o.store.releaseLease(DriftReconciler.leaseName(t), this.o.holder);
        } catch (err) {
          this.log.warn({ target: t, err: errText(err) }, 'drift: could not release lease (it expires by itself)');
        }
      }),
    );
    this.held.clear();
  }

  private run(): void {
    const p = this.pass()
      .catch((err) => this.log.error({ err: errText(err) }, 'drift: pass failed'))
      .finally(() => {
        if (this.current === p) this.current = undefined;
        if (!this.started) return;
        this.timer = setTimeout(() => {
          this.timer = undefined;
          if (this.started) this.run();
        }, this.intervalMs);
        this.timer.unref?.();
      });
    this.current = p;
  }

  /** Ticks every target (in parallel: each is its own engine), then refreshes the drift count. */
  async pass(): Promise<TickResult[]> {
    const results = await Promise.all(this.o.targets.map((t) => this.tick(t)));
    if (this.o.metrics && (this.o.reportDrift ?? true) && results.some((r) => r.status === 'ok')) {
      try {
        const report = await driftReport(this.o.store, { targets: this.o.targets, ...(this.o.resolveTags ? { resolveTags: this.o.resolveTags } : {}) });
        this.o.metrics.driftCount(report.count);
      } catch (err) {
        this.log.warn({ err: errText(err) }, 'drift: report failed; berth_drift_count keeps its last value');
      }
    }
    return results;
  }

  /** One reconciliation of one target. Never throws: failures come back as `status: 'error'`. */
  async tick(target: string): Promise<TickResult> {
    const t0 = performance.now();
    const elapsed = () => Math.round((performance.now() - t0) * 1000) / 1000;
    const result = await this.tickInner(target, elapsed);
    this.o.metrics?.driftTick(target, result.durationMs / 1000, result.status === 'ok' ? 'ok' : result.status === 'lease-held' ? 'lease_held' : 'error');
    if (result.status === 'ok') this.o.metrics?.driftContainers(target, result.states);
    return result;
  }

  private fail(target: string, stage: 'lease' | 'store-read' | 'docker' | 'store-write', err: unknown, durationMs: () => number): TickResult {
    const error = errText(err);
    this.log.error({ target, stage, err: error }, `drift: tick of ${target} failed (${stage}); no row changed`);
    return { target, status: 'error', stage, error, durationMs: durationMs() };
  }

  private async tickInner(target: string, elapsed: () => number): Promise<TickResult> {
    const { store } = this.o;
    const lease = DriftReconciler.leaseName(target);
    try {
      if (!(await store.acquireLease(lease, this.o.holder, this.leaseTtlMs))) {
        this.held.delete(target);
        const holder = await store.getLease(lease).then((l) => l?.holder, () => undefined);
        return { target, status: 'lease-held', durationMs: elapsed(), ...(holder ? { holder } : {}) };
      }
      this.held.add(target);
    } catch (err) {
      return this.fail(target, 'lease', err, elapsed);
    }

    // Reads. The index is read before Docker is listed: a row written after
    // this read cannot be marked missing by this tick, and a container made
    // after it is in the listing.
    let rows: ContainerRow[];
    let inFlight: Set<string>;
    try {
      const [r, applies] = await Promise.all([store.listContainers(target), store.listApplies({ states: IN_FLIGHT_AGGREGATE_STATES })]);
      rows = r;
      inFlight = new Set(applies.map((a) => a.id));
    } catch (err) {
      return this.fail(target, 'store-read', err, elapsed);
    }
    let listed: Dockerode.ContainerInfo[];
    try {
      // A hung engine must not hang the reconciler: the list call is aborted after listTimeoutMs.
      const timeout = this.o.listTimeoutMs ?? Math.min(30_000, this.intervalMs);
      listed = (await this.o.docker(target).listContainers({ all: true, filters: { label: [LABEL.project] }, abortSignal: AbortSignal.timeout(timeout) })) ?? [];
    } catch (err) {
      return this.fail(target, 'docker', err, elapsed);
    }
    const classified = listed.map(classify);
    const labelled = new Set<string>();
    for (const c of classified) {
      if (c.kind === 'ok') labelled.add(c.c.applyId);
      else if (c.kind === 'invalid') labelled.add(c.applyId);
    }
    let known: Set<string>;
    try {
      known = await store.knownApplyIds([...labelled]);
    } catch (err) {
      return this.fail(target, 'store-read', err, elapsed);
    }

    // Decide, in memory.
    const now = this.now();
    const byId = new Map(rows.map((r) => [r.containerId, r]));
    const listedIds = new Set(listed.map((c) => c.Id));
    const upserts: ContainerUpsert[] = [];
    const forged: RefusedContainer[] = [];
    const invalid: string[] = [];
    const unadoptedIds: string[] = [];
    let skipped = 0;
    for (const c of classified) {
      if (c.kind === 'foreign') continue;
      if (c.kind === 'unadopted') {
        unadoptedIds.push(c.id);
        continue;
      }
      const applyId = c.kind === 'ok' ? c.c.applyId : c.applyId;
      if (!known.has(applyId)) {
        forged.push(c.kind === 'ok' ? { id: c.c.id, name: c.c.name, project: c.c.project, environment: c.c.environment, service: c.c.service, applyId } : c.refused);
        continue;
      }
      if (c.kind === 'invalid') {
        invalid.push(c.why);
        continue;
      }
      const p = c.c;
      const existing = byId.get(p.id);
      // An apply in flight owns its containers and their rows until it ends.
      if (inFlight.has(p.applyId) || (existing?.applyId && inFlight.has(existing.applyId))) {
        skipped++;
        continue;
      }
      upserts.push({
        containerId: p.id,
        project: p.project,
        environment: p.environment,
        service: p.service,
        replica: p.replica,
        name: p.name,
        state: p.state,
        configHash: p.configHash,
        // The executor's applyId wins: null keeps what the row already has.
        applyId: existing?.applyId ? null : p.applyId,
        seenAt: now,
      });
    }
    const vanished = rows.filter((r) => r.state !== 'missing' && !listedIds.has(r.containerId) && !(r.applyId && inFlight.has(r.applyId)));
    const retention = this.o.missingRetentionMs ?? DEFAULT_MISSING_RETENTION_MS;
    const stale = rows.filter((r) => r.state === 'missing' && !listedIds.has(r.containerId) && now - r.updatedAt > retention && !(r.applyId && inFlight.has(r.applyId)));

    // Writes: one batched call each, always made (so the count never depends on the data).
    let missing: number;
    let pruned: number;
    try {
      await store.upsertContainers(target, upserts);
      missing = await store.markContainersMissing(target, vanished.map((r) => r.containerId));
      pruned = await store.deleteContainers(target, stale.map((r) => r.containerId));
    } catch (err) {
      return this.fail(target, 'store-write', err, elapsed);
    }

    this.warnOnce(target, listedIds, forged, unadoptedIds, invalid);

    // The index after this tick, without reading it back.
    const after = new Map<string, IndexedContainerState>(rows.map((r) => [r.containerId, r.state]));
    for (const u of upserts) after.set(u.containerId, u.state);
    for (const r of vanished) after.set(r.containerId, 'missing');
    for (const r of stale) after.delete(r.containerId);
    const states = Object.fromEntries(INDEXED_CONTAINER_STATES.map((s) => [s, 0])) as Record<IndexedContainerState, number>;
    for (const s of after.values()) states[s]++;

    if (missing) this.log.info({ target, containers: vanished.slice(0, MAX_LOGGED).map((r) => `${r.name} (${r.containerId.slice(0, 12)})`), count: missing }, 'drift: containers vanished; marked missing');
    return {
      target,
      status: 'ok',
      durationMs: elapsed(),
      listed: listed.length,
      indexed: upserts.length,
      missing,
      pruned,
      inFlight: skipped,
      forged,
      unadopted: unadoptedIds.length,
      invalid,
      states,
    };
  }

  /** Refused containers are logged the first tick they are seen, not every tick. */
  private warnOnce(target: string, listedIds: Set<string>, forged: RefusedContainer[], unadopted: string[], invalid: string[]) {
    const prev = this.warned.get(target) ?? new Set<string>();
    const next = new Set<string>();
    for (const id of prev) if (listedIds.has(id)) next.add(id); // forget what is gone
    const newForged = forged.filter((f) => !next.has(f.id));
    const newUnadopted = unadopted.filter((id) => !next.has(id));
    for (const f of forged) next.add(f.id);
    for (const id of unadopted) next.add(id);
    this.warned.set(target, next);
    if (newForged.length) {
      this.log.warn(
        {
          target,
          count: newForged.length,
          containers: newForged.slice(0, MAX_LOGGED).map((f) => ({ id: f.id.slice(0, 12), name: f.name, project: f.project, environment: f.environment, service: f.service, apply: f.applyId })),
        },
        `drift: refused ${newForged.length} container(s) on ${target} whose ${LABEL.applyId} label names an apply not in this berth's store — made by another berth server (another database) on the same engine, or labels written by hand; not adopted`,
      );
    }
    if (newUnadopted.length) {
      this.log.info({ target, count: newUnadopted.length, containers: newUnadopted.slice(0, MAX_LOGGED).map((id) => id.slice(0, 12)) }, `drift: containers on ${target} carry ${LABEL.project} but no ${LABEL.applyId} label (made by hand?); not adopted`);
    }
    // Invalid labels are rare and always worth a line; they are not deduplicated.
    if (invalid.length) this.log.warn({ target, count: invalid.length, containers: invalid.slice(0, MAX_LOGGED) }, 'drift: containers with unreadable berth labels; not indexed');
  }
}

// ── drift report ──────────────────────────────────────────────────────────

export type DriftKind = 'missing' | 'stopped' | 'config-changed' | 'image-moved' | 'unexpected';

export interface DriftItem {
  service: string;
  /** null for a whole service */
  replica: number | null;
  kind: DriftKind;
  containerId?: string;
  /** the container's name, when there is one */
  name?: string;
  state?: IndexedContainerState;
  expected?: string;
  observed?: string;
  detail: string;
}

const KIND_ORDER: Record<DriftKind, number> = { missing: 0, 'config-changed': 1, 'image-moved': 2, stopped: 3, unexpected: 4 };
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const short = (s: string) => s.slice(0, 12);

/**
 * What differs between the desired state of one environment and the index
 * rows of one target. Pure. Rows of other projects or environments are
 * ignored; `missing` rows only explain an absence.
 */
export function computeDrift(desired: DesiredState, rows: readonly ContainerRow[]): DriftItem[] {
  const mine = rows.filter((r) => r.project === desired.project && r.environment === desired.environment);
  const live = new Map<string, ContainerRow[]>();
  const gone = new Map<string, ContainerRow>();
  const key = (service: string, replica: number) => `${service}\u0000${replica}`;
  for (const r of mine) {
    const k = key(r.service, r.replica);
    if (r.state === 'missing') {
      const g = gone.get(k);
      if (!g || r.updatedAt > g.updatedAt) gone.set(k, r);
    } else {
      (live.get(k) ?? live.set(k, []).get(k)!).push(r);
    }
  }
  // Services others wait on with service_completed_successfully are one-shot: exited is their goal.
  const oneShot = new Set(desired.services.flatMap((s) => s.spec.dependsOn.filter((d) => d.condition === 'service_completed_successfully').map((d) => d.service)));
  const items: DriftItem[] = [];
  const expected = new Set<string>();
  for (const s of desired.services) {
    const service = s.spec.name;
    for (let replica = 1; replica <= s.spec.replicas; replica++) {
      const k = key(service, replica);
      expected.add(k);
      const canonical = names.serviceContainer(desired.project, desired.environment, s.spec, replica);
      const found = [...(live.get(k) ?? [])].sort((a, b) => Number(b.name === canonical) - Number(a.name === canonical) || b.seenAt - a.seenAt || cmp(a.containerId, b.containerId));
      const [c, ...extra] = found;
      if (!c) {
        const g = gone.get(k);
        items.push({
          service,
          replica,
          kind: 'missing',
          name: g?.name ?? canonical,
          ...(g ? { containerId: g.containerId, state: 'missing' as const } : {}),
          detail: g ? `container ${g.name} (${short(g.containerId)}) is gone` : `no container for ${service} replica ${replica}`,
        });
        continue;
      }
      const ident = { containerId: c.containerId, name: c.name, state: c.state };
      if (c.configHash !== s.configHash) {
        items.push({ service, replica, kind: 'config-changed', ...ident, expected: s.configHash, observed: c.configHash, detail: `config hash ${short(c.configHash)}, applied ${short(s.configHash)}` });
      }
      if (c.state !== 'running' && !(c.state === 'stopped' && oneShot.has(service))) {
        items.push({ service, replica, kind: 'stopped', ...ident, expected: 'running', observed: c.state, detail: `${c.name} is ${c.state}` });
      }
      for (const x of extra) {
        items.push({ service, replica, kind: 'unexpected', containerId: x.containerId, name: x.name, state: x.state, detail: `second container ${x.name} for ${service} replica ${replica}` });
      }
    }
  }
  const desiredServices = new Set(desired.services.map((s) => s.spec.name));
  for (const [k, list] of live) {
    if (expected.has(k)) continue;
    for (const x of list) {
      items.push({
        service: x.service,
        replica: x.replica,
        kind: 'unexpected',
        containerId: x.containerId,
        name: x.name,
        state: x.state,
        detail: desiredServices.has(x.service) ? `${x.name}: replica ${x.replica} is beyond the applied replica count` : `${x.name}: service ${x.service} is not in the applied state`,
      });
    }
  }
  return items.sort((a, b) => cmp(a.service, b.service) || (a.replica ?? 0) - (b.replica ?? 0) || KIND_ORDER[a.kind] - KIND_ORDER[b.kind] || cmp(a.containerId ?? '', b.containerId ?? ''));
}

export interface EnvironmentDrift {
  repo: string;
  project: string;
  environment: string;
  target: string;
  /** the last completed apply: its desired state is what "no drift" means */
  applyId: string;
  appliedAt: number | null;
  /** newest seenAt of the environment's rows on this target: when the reconciler last saw them */
  syncedAt: number | null;
  items: DriftItem[];
  /** the apply's desired state could not be read */
  error?: string;
}

export interface DriftReport {
  environments: EnvironmentDrift[];
  /** total drift items */
  count: number;
}

export interface DriftReportOptions {
  /** only this repository (owner/name) */
  repo?: string;
  /** only these targets */
  targets?: readonly string[];
  /**
   * Asks a target's registry what each tag resolves to now (`repo:tag` → digest), for
   * the tag-moved check; absent: not checked. A tag that cannot be resolved is not drift.
   */
  resolveTags?: (target: string, tags: readonly string[]) => Promise<ReadonlyMap<string, string | undefined>>;
}

/** `repo:tag@sha256:…` (pinned from a tag by the plan) → `repo:tag`; undefined for a reference written by digest or not pinned. */
export function tagOf(image: string): string | undefined {
  const m = /^(.+)@(sha256:[0-9a-f]{64})$/.exec(image);
  if (!m) return undefined;
  const name = m[1]!;
  return name.lastIndexOf(':') > name.lastIndexOf('/') ? name : undefined;
}

/**
 * Pure: the services whose applied digest is no longer what their tag resolves to.
 * Services under pull_policy never follow the engine, not the registry: not compared.
 */
export function movedTags(desired: DesiredState, now: ReadonlyMap<string, string | undefined>): DriftItem[] {
  const items: DriftItem[] = [];
  for (const s of desired.services) {
    const tag = tagOf(s.spec.image);
    if (!tag || s.spec.pullPolicy === 'never') continue;
    const applied = s.spec.image.slice(tag.length + 1);
    const current = now.get(tag);
    if (!current || current === applied) continue;
    items.push({ service: s.spec.name, replica: null, kind: 'image-moved', expected: applied, observed: current, detail: `${tag} now resolves to ${current.slice(0, 19)}…, the applied digest is ${applied.slice(0, 19)}… (plan to deploy it)` });
  }
  return items;
}

/**
 * For each environment (newest completed apply per repository and
 * environment, one per project/environment), compares the apply's desired
 * state with the index rows on each target the apply ran on. Reads: the
 * completed applies, their operations, and each target's index once.
 */
export async function driftReport(store: Store, opts: DriftReportOptions = {}): Promise<DriftReport> {
  const applies = await store.listApplies({ states: ['completed'], ...(opts.repo ? { repo: opts.repo } : {}) });
  applies.sort((a, b) => (b.finishedAt ?? b.createdAt) - (a.finishedAt ?? a.createdAt));
  const latest = new Map<string, (typeof applies)[number]>();
  for (const a of applies) {
    const k = `${a.repo}\u0000${a.environment}`;
    if (!latest.has(k)) latest.set(k, a);
  }
  const onlyTargets = opts.targets ? new Set(opts.targets) : undefined;
  const rowCache = new Map<string, Promise<ContainerRow[]>>();
  const rowsOf = (t: string) => rowCache.get(t) ?? rowCache.set(t, store.listContainers(t)).get(t)!;
  const seenProjects = new Set<string>();
  const environments: EnvironmentDrift[] = [];
  for (const a of latest.values()) {
    let desired: DesiredState | undefined;
    let error: string | undefined;
    try {
      desired = parsePayload(a.desiredJson).desired;
    } catch (err) {
      error = `the desired state of apply ${a.id} cannot be read: ${errText(err)}`;
    }
    const project = desired?.project ?? '?';
    // Two repositories deploying one project/environment: the newest apply is the truth.
    const pk = `${project}\u0000${a.environment}`;
    if (desired && seenProjects.has(pk)) continue;
    seenProjects.add(pk);
    const targets = [...new Set((await store.listOperations(a.id)).map((o) => o.target))].filter((t) => !onlyTargets || onlyTargets.has(t)).sort(cmp);
    for (const target of targets) {
      const base = { repo: a.repo, project, environment: a.environment, target, applyId: a.id, appliedAt: a.finishedAt };
      if (!desired) {
        environments.push({ ...base, syncedAt: null, items: [], error: error! });
        continue;
      }
      const rows = (await rowsOf(target)).filter((r) => r.project === desired.project && r.environment === desired.environment);
      const syncedAt = rows.length ? Math.max(...rows.map((r) => r.seenAt)) : null;
      const tags = [...new Set(desired.services.map((s) => tagOf(s.spec.image)).filter((t): t is string => !!t))];
      const moved = opts.resolveTags && tags.length ? movedTags(desired, await opts.resolveTags(target, tags).catch(() => new Map<string, string | undefined>())) : [];
      const items = [...computeDrift(desired, rows), ...moved].sort((a, b) => cmp(a.service, b.service) || (a.replica ?? 0) - (b.replica ?? 0) || KIND_ORDER[a.kind] - KIND_ORDER[b.kind] || cmp(a.containerId ?? '', b.containerId ?? ''));
      environments.push({ ...base, syncedAt, items });
    }
  }
  environments.sort((a, b) => cmp(a.repo, b.repo) || cmp(a.environment, b.environment) || cmp(a.target, b.target));
  return { environments, count: environments.reduce((n, e) => n + e.items.length, 0) };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

const iso = (ms: number | null) => (ms === null ? 'never' : new Date(ms).toISOString());

/** `berth status --drift`: one table per environment and target with drift, or "No drift." */
export function renderDriftText(report: DriftReport): string {
  if (!report.environments.length) return 'No completed applies recorded: nothing to compare with.';
  const out: string[] = [];
  for (const e of report.environments) {
    if (!e.items.length && !e.error) continue;
    if (out.length) out.push('');
    out.push(`${e.repo}  ${e.environment}  target ${e.target}  (applied by ${e.applyId} at ${iso(e.appliedAt)}; index synced ${iso(e.syncedAt)})`);
    if (e.syncedAt === null && !e.error) out.push('  the containers index has no rows for this environment on this target: is the drift reconciler running?');
    if (e.error) {
      out.push(`  error: ${e.error}`);
      continue;
    }
    out.push(
      table([
        ['SERVICE', 'REPLICA', 'DRIFT', 'CONTAINER', 'STATE', 'DETAIL'],
        ...e.items.map((i) => [i.service, i.replica === null ? '' : String(i.replica), i.kind, i.name ?? '', i.state ?? '', i.detail]),
      ]),
    );
  }
  if (!out.length) return 'No drift.';
  out.push('', `${report.count} drifted item${report.count === 1 ? '' : 's'}.`);
  return out.join('\n');
}
