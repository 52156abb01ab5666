// failure_action: rollback for the whole service (issue 13). A rollout whose
// gate fails puts back the failing replicas in place (the executor), but the
// replicas of batches that had already passed run the new version. When an
// apply ends failed that way, berth starts by itself a follow-up apply of
// kind `rollback` that returns THOSE services — and only them — to the spec
// and image digests they had in the environment's last completed apply,
// rolling out with their rollback_config. Every other service stays exactly
// as it runs (the plan is cut down to the returned services, plan/restrict.ts).
//
// The decision and the state it returns to are pure (below); starting it is
// an ordinary journaled apply under the failed apply's lock (startAutoRollback).
import type { DesiredService, DesiredState, ObservedState } from '../model/model.js';
import type { PlanNode } from '../plan/plan.js';
import type { ApplyRow, Fence, Store, TaskRow } from '../store/store.js';
import { parsePayload, type ApplyPayload, type Handover } from './executor.js';
import { prepareApply, type Observer, type TargetPlan } from './prepare-apply.js';

/** One service whose rollout stopped under failure_action: rollback. */
export interface StoppedRollout {
  service: string;
  /** replicas whose new container failed a step (its gate) and was removed, the old one kept or restored: they serve the old version */
  restored: number[];
  /** replicas of later batches that were never started: they serve the old version */
  notStarted: number[];
  /** replicas whose new container passed its gate and took over (even if a later step of theirs failed): they run the new version */
  updated: number[];
  /** the image the replaced containers served (from the plan) */
  previousImage?: string;
}

export type AutoRollbackDecision =
  /** not a failed rollout under failure_action: rollback (or nothing runs the new version): nothing to start */
  | { kind: 'none'; stopped: StoppedRollout[] }
  /** some replicas run the new version, but there is no earlier completed apply holding these services */
  | { kind: 'no_earlier'; stopped: StoppedRollout[]; why: string }
  /** return `services` to the state of `earlier` */
  | { kind: 'rollback'; stopped: StoppedRollout[]; services: string[]; earlier: ApplyRow; desired: DesiredState; unreturnable: string[] };

/**
 * The services of a failed apply whose rollout stopped under failure_action:
 * rollback: more of their replicas failed than max_failure_ratio tolerates
 * (as the BatchGate judges). pause and continue are never rolled back.
 */
export function stoppedRollouts(payload: ApplyPayload, tasks: readonly TaskRow[]): StoppedRollout[] {
  const out: StoppedRollout[] = [];
  for (const s of payload.desired.services) {
    const ro = s.spec.rollout?.update;
    if (!ro || ro.failureAction !== 'rollback') continue;
    // Replica groups of this service, per target (a service may run on several).
    const groups = new Map<string, { replica: number; states: string[]; previousImage?: string; servesNew?: boolean }>();
    for (const t of tasks) {
      const node = JSON.parse(t.nodeJson) as PlanNode;
      const g = node.group;
      if (!g || !(g === `recreate:${s.spec.name}:${node.target.replica}` || g === `start-first:${s.spec.name}:${node.target.replica}`)) continue;
      const key = `${t.operationId}\n${g}`;
      const entry = groups.get(key) ?? groups.set(key, { replica: node.target.replica!, states: [] }).get(key)!;
      entry.states.push(t.state);
      if (node.kind === 'CreateContainer' && node.target.previousImage) entry.previousImage = node.target.previousImage;
      // A step that failed after the new container took over leaves it serving (as the executor's restore does):
      // start-first once the old container is touched (a step on it by id, or the final rename); recreate at its last step.
      if (t.state === 'failed') entry.servesNew = g.startsWith('start-first:') ? node.kind === 'RenameContainer' || node.target.containerId !== undefined : node.kind === 'RemoveContainer';
    }
    // Only rollouts (a CreateContainer that names the image it replaces) count; a plain recreate has no failure_action.
    const rolling = [...groups.values()].filter((g) => g.previousImage !== undefined);
    if (!rolling.length) continue;
    const failed = rolling.filter((g) => g.states.some((x) => x === 'failed' || x === 'skipped'));
    if (!failed.length || failed.length / rolling.length <= ro.maxFailureRatio) continue;
    const updated = rolling.filter((g) => g.states.every((x) => x === 'succeeded') || g.servesNew === true);
    const restored = rolling.filter((g) => !updated.includes(g) && g.states.includes('failed'));
    const notStarted = rolling.filter((g) => !updated.includes(g) && !restored.includes(g));
    const replicas = (gs: typeof rolling) => [...new Set(gs.map((g) => g.replica))].sort((a, b) => a - b);
    out.push({
      service: s.spec.name,
      updated: replicas(updated),
      restored: replicas(restored),
      notStarted: replicas(notStarted),
      ...(rolling[0]!.previousImage ? { previousImage: rolling[0]!.previousImage } : {}),
    });
  }
  return out;
}

/**
 * The state the rollback records and runs: the failed apply's desired state
 * with `services` as the earlier state had them (spec, config hash, pinned
 * image), with the networks, volumes and file contents those specs need.
 * The rollback's plan touches only `services` (restrictPlan); the other
 * services' entries say what they run, so drift and a later `/rollback` read
 * the truth: given what the targets show (`observed`), a service whose
 * containers all run the earlier apply's entry (the failed apply never got to
 * it, or put it back) keeps that one, and a service the failed apply was to
 * remove but still runs stays in; otherwise the failed apply's entry.
 */
export function returnedState(failed: DesiredState, earlier: DesiredState, services: readonly string[], observed: readonly ObservedState[] = []): DesiredState {
  const before = new Map(earlier.services.map((s) => [s.spec.name, s]));
  const containers = (name: string) => observed.flatMap((o) => o.containers.filter((c) => c.service === name));
  const runs = (d: DesiredService | undefined) => {
    const cs = d ? containers(d.spec.name) : [];
    return cs.length > 0 && cs.every((c) => c.configHash === d!.configHash && c.image === d!.spec.image);
  };
  const fromEarlier = new Set(services.filter((n) => before.has(n)));
  for (const s of failed.services) if (!fromEarlier.has(s.spec.name) && !runs(s) && runs(before.get(s.spec.name))) fromEarlier.add(s.spec.name);
  const stillThere = earlier.services.filter((s) => !failed.services.some((x) => x.spec.name === s.spec.name) && runs(s));
  for (const s of stillThere) fromEarlier.add(s.spec.name);
  const specs = [...fromEarlier].map((n) => before.get(n)!.spec);
  const nets = new Set(specs.flatMap((s) => s.networks));
  const vols = new Set(specs.flatMap((s) => s.volumes.filter((m) => m.type === 'volume' && m.source).map((m) => m.source!)));
  const files = new Set(specs.flatMap((s) => (s.files ?? []).map((f) => `${f.kind}:${f.source}`)));
  const contents = { ...(failed.contents ?? {}) };
  for (const k of files) if (earlier.contents?.[k] !== undefined) contents[k] = earlier.contents[k]!;
  const secretFields = { ...(failed.secretFields ?? {}) };
  for (const name of fromEarlier) {
    const f = earlier.secretFields?.[name];
    if (f) secretFields[name] = f;
    else delete secretFields[name];
  }
  return {
    ...failed,
    services: [...failed.services.map((s) => (fromEarlier.has(s.spec.name) ? before.get(s.spec.name)! : s)), ...stillThere],
    networks: [...failed.networks, ...earlier.networks.filter((n) => nets.has(n.spec.name) && !failed.networks.some((x) => x.spec.name === n.spec.name))],
    volumes: [...failed.volumes, ...earlier.volumes.filter((v) => vols.has(v.spec.name) && !failed.volumes.some((x) => x.spec.name === v.spec.name))],
    ...(Object.keys(contents).length ? { contents } : {}),
    ...(Object.keys(secretFields).length ? { secretFields } : {}),
  };
}

/**
 * Whether (and to what) a failed apply is rolled back by itself. `earlier`:
 * the environment's last completed apply before it (undefined: none).
 * Pure: the caller reads the rows.
 */
export function decideAutoRollback(failed: ApplyRow, tasks: readonly TaskRow[], earlier: ApplyRow | undefined): AutoRollbackDecision {
  // A rollback never rolls itself back (its own rollout follows rollback_config, and a loop must be impossible).
  if (failed.state !== 'failed' || failed.kind !== 'apply') return { kind: 'none', stopped: [] };
  let payload: ApplyPayload;
  try {
    payload = parsePayload(failed.desiredJson);
  } catch {
    return { kind: 'none', stopped: [] };
  }
  const stopped = stoppedRollouts(payload, tasks);
  const mixed = stopped.filter((s) => s.updated.length);
  if (!mixed.length) return { kind: 'none', stopped };
  if (!earlier) return { kind: 'no_earlier', stopped, why: `${failed.environment} has no completed apply before this one` };
  let before: DesiredState;
  try {
    before = parsePayload(earlier.desiredJson).desired;
  } catch (err) {
    return { kind: 'no_earlier', stopped, why: `the state of apply ${earlier.id} cannot be read (${(err as Error).message})` };
  }
  const services = mixed.map((s) => s.service).filter((n) => before.services.some((s) => s.spec.name === n));
  const unreturnable = mixed.map((s) => s.service).filter((n) => !services.includes(n));
  if (!services.length) return { kind: 'no_earlier', stopped, why: `the last completed apply (${earlier.id}) did not deploy ${unreturnable.join(', ')}` };
  return { kind: 'rollback', stopped, services, earlier, desired: returnedState(payload.desired, before, services), unreturnable };
}

/** The environment's last completed apply created before `failed` (newest first from the store). */
export async function earlierCompleted(store: Store, failed: ApplyRow): Promise<ApplyRow | undefined> {
  const done = await store.listApplies({ repo: failed.repo, environment: failed.environment, states: ['completed'] });
  return done.find((a) => a.id !== failed.id && a.createdAt <= failed.createdAt);
}

export interface StartedRollback {
  applyId: string;
  plans: TargetPlan[];
  fence?: Fence;
  handover?: Handover;
}

/**
 * Starts the rollback a decision asks for: an apply of kind `rollback`, by
 * berth, on the failed apply's PR, lock and targets, with its policy, secrets
 * and on_failure, touching only the returned services. Lock, in-flight check,
 * apply and lease are one transaction (Store.startApply), like any apply.
 */
export async function startAutoRollback(
  store: Store,
  observe: Observer,
  failed: ApplyRow,
  d: Extract<AutoRollbackDecision, { kind: 'rollback' }>,
  lease: { holder: string; ttlMs: number },
): Promise<StartedRollback> {
  const payload = parsePayload(failed.desiredJson);
  const earlierPayload = parsePayload(d.earlier.desiredJson);
  const lock = await store.getLock(failed.repo, failed.environment);
  // The lock the failed apply ran under (still pointing at it until its report is done); the PR's own when it is gone.
  const owner = lock && (lock.applyId === failed.id || lock.applyId === null) ? { owner: lock.owner, pr: lock.pr } : { owner: `${failed.repo}#${failed.pr ?? 0}`, pr: failed.pr ?? 0 };
  const targets = (await store.listOperations(failed.id)).map((o) => o.target);
  // What runs now decides which entry the services it does not return keep (returnedState).
  const base = payload.desired;
  const observed = await Promise.all(targets.map((t) => observe(t, base.project, base.environment, { ...(base.repository ? { repository: base.repository } : {}), desired: base })));
  const desired = returnedState(base, earlierPayload.desired, d.services, observed);
  const prepared = await prepareApply(store, observe, {
    repo: failed.repo,
    pr: failed.pr,
    environment: failed.environment,
    kind: 'rollback',
    actor: 'berth',
    // The commit the returned state was first applied from (as /rollback records it).
    headSha: d.earlier.headSha,
    desired,
    targets,
    onFailure: payload.onFailure,
    ...(payload.parallelism ? { parallelism: payload.parallelism } : {}),
    secretKeys: [...new Set([...(payload.secretKeys ?? []), ...(earlierPayload.secretKeys ?? [])])],
    secretValues: [...new Set([...(payload.secretValues ?? []), ...(earlierPayload.secretValues ?? [])])],
    // Today's policy (the failed apply's), not the earlier one: the guard enforces it again before each create.
    ...(payload.policy ? { policy: payload.policy } : {}),
    services: d.services,
    rollbackOf: failed.id,
    start: { lock: owner, lease },
  });
  return prepared;
}
