// Starting an apply: re-observe every target, re-plan, refuse if the world
// moved since the plan the user approved (the stale-plan guard), then record
// the apply with one operation per target and one task per plan node. The
// executor runs it; this module never touches Docker except to observe.
import type { Policy } from '../compose/policy.js';
import { BerthError } from '../errors.js';
import type { ApplyPayload, Handover, OnFailure } from './executor.js';
import { hashOf } from '../model/hash.js';
import { outText } from '../text/outbound.js';
import type { DesiredState, ObservedState, ObserveOptions } from '../model/model.js';
import type { Plan, PlanNode } from '../plan/plan.js';
import { planToString } from '../plan/plan.js';
import { secretMadeTexts } from '../plan/render.js';
import { reconcile, type ReconcileOptions } from '../plan/reconcile.js';
import { restrictPlan } from '../plan/restrict.js';
import type { ApplyKind, CreatedApply, Fence, LockRow, NewApply, StartApplyOptions, Store } from '../store/store.js';

/**
 * Reads one target's observed state for a project/environment. `opts.repository`
 * leaves out another repository's objects; given `opts.desired`, the external and
 * not-yet-labelled networks and volumes it names are looked up by name as well,
 * so the plan can check and adopt them.
 */
export type Observer = (target: string, project: string, environment: string, opts?: ObserveOptions) => Promise<ObservedState>;

export interface TargetPlan {
  target: string;
  plan: Plan;
}

/** What a user saw and approved for one target. */
export interface ExpectedPlan {
  target: string;
  fingerprint: string;
  /** canonical plan text, to name what changed when the guard refuses */
  text: string;
}

export async function planTargets(desired: DesiredState, targets: readonly string[], observe: Observer, opts: ReconcileOptions = {}): Promise<TargetPlan[]> {
  return Promise.all(
    [...targets].map(async (target) => ({ target, plan: reconcile(desired, await observe(target, desired.project, desired.environment, { ...(desired.repository ? { repository: desired.repository } : {}), desired }), opts) })),
  );
}

/** One fingerprint for an environment spread over several targets. */
export function environmentFingerprint(plans: readonly TargetPlan[]): string {
  return hashOf([...plans].sort((a, b) => (a.target < b.target ? -1 : 1)).map((p) => [p.target, p.plan.fingerprint])).slice(0, 32);
}

/** The plan as reviewed. Its text is stored and shown again when the plan goes stale, so it is masked (outbound.ts). */
export const expectedOf = (plans: readonly TargetPlan[]): ExpectedPlan[] =>
  plans.map((p) => ({ target: p.target, fingerprint: p.plan.fingerprint, text: outText(planToString(p.plan)) }));

export class StalePlanError extends BerthError {
  constructor(readonly changes: string[]) {
    super('stale_plan', `the plan is out of date: ${changes.join('; ')}`, {
      hint: 'review the new plan and apply again',
    });
  }
}

/** Lines only in a or only in b, as a small unified list (`- old`, `+ new`). */
export function lineDiff(before: string, after: string, max = 20): string[] {
  const a = before.split('\n').filter(Boolean);
  const b = after.split('\n').filter(Boolean);
  const inA = new Set(a);
  const inB = new Set(b);
  const out = [...a.filter((l) => !inB.has(l)).map((l) => `- ${l}`), ...b.filter((l) => !inA.has(l)).map((l) => `+ ${l}`)];
  return out.length > max ? [...out.slice(0, max), `… ${out.length - max} more`] : out;
}

/** Explains how fresh plans differ from the ones the user saw; empty when they match. */
export function staleness(expected: readonly ExpectedPlan[], fresh: readonly TargetPlan[]): string[] {
  const changes: string[] = [];
  const seen = new Set(expected.map((e) => e.target));
  for (const f of fresh) {
    const e = expected.find((x) => x.target === f.target);
    if (!e) {
      changes.push(`target \`${f.target}\` was not in the reviewed plan`);
      continue;
    }
    if (e.fingerprint === f.plan.fingerprint) continue;
    const diff = lineDiff(e.text, outText(planToString(f.plan)));
    changes.push(
      diff.length
        ? `target \`${f.target}\` changed since the plan was made:\n${diff.join('\n')}`
        : `target \`${f.target}\` changed since the plan was made (containers were created, removed, started or stopped outside this plan, though the resulting steps are the same)`,
    );
  }
  for (const t of seen) if (!fresh.some((f) => f.target === t)) changes.push(`target \`${t}\` is no longer part of the environment`);
  return changes;
}

/** The store refused to start the apply: the lock has another owner, or the environment has an apply in flight. */
export class ApplyRefusedError extends BerthError {
  constructor(readonly refusal: { reason: 'locked'; holder: LockRow } | { reason: 'in_flight'; applyId: string }) {
    super(
      'apply_refused',
      refusal.reason === 'locked' ? `the environment is locked by ${refusal.holder.owner}` : `an apply (${refusal.applyId}) is already in flight on this environment`,
      { hint: refusal.reason === 'locked' ? 'wait for the lock to be released' : 'wait for it to end, or stop it' },
    );
  }
}

export interface ApplyRequest {
  repo: string;
  pr: number | null;
  environment: string;
  kind: ApplyKind;
  actor: string;
  headSha: string | null;
  desired: DesiredState;
  targets: readonly string[];
  onFailure: OnFailure;
  parallelism?: number;
  /** what the user approved; without it (CLI --yes with nothing shown) the fresh plan is applied */
  expected?: readonly ExpectedPlan[];
  checkRunId?: number | null;
  /** the PR comment whose command this is: the apply is found by it when the command's delivery runs again */
  commandCommentId?: number;
  /** the environment's secret_keys and secret variable values: Docker messages that echo them are redacted */
  secretKeys?: readonly string[];
  secretValues?: readonly string[];
  /** the default branch's policy, enforced again on the target right before each container is created */
  policy?: Policy;
  /**
   * The lock to hold and the driver to lease the apply to, taken in the same
   * transaction as the apply (see Store.startApply). Without it the apply is
   * only recorded (tests, tools); the database still allows one in flight.
   */
  start?: StartApplyOptions;
  /** only these services are touched (an automatic rollback): the plan is cut down to them (plan/restrict.ts) */
  services?: readonly string[];
  /** the failed apply an automatic rollback follows (issue 13), recorded in the payload */
  rollbackOf?: string;
}

export interface PreparedApply {
  applyId: string;
  plans: TargetPlan[];
  /** the driver's lease on the new apply, when `start` was given */
  fence?: Fence;
  /** with the lease, the rows just written: what the executor starts from (Executor.run) */
  handover?: Handover;
}

/** Re-plans, guards and records an apply (state pending). The caller hands the id to the executor. */
export async function prepareApply(store: Store, observe: Observer, req: ApplyRequest): Promise<PreparedApply> {
  // A rollback rolls out with each service's rollback_config (update_config when it has none).
  let plans = await planTargets(req.desired, req.targets, observe, req.kind === 'rollback' ? { rollout: 'rollback' } : {});
  if (req.services) {
    const only = new Set(req.services);
    plans = plans.map((p) => {
      const cut = restrictPlan(p.plan, only);
      if (typeof cut === 'string') throw new BerthError('rollback_refused', `on target ${p.target}, returning ${[...only].join(', ')} alone is not possible: ${cut}`, { hint: 'apply a known good version' });
      return { target: p.target, plan: cut };
    });
  }
  if (req.expected) {
    const changes = staleness(req.expected, plans);
    if (changes.length) throw new StalePlanError(changes);
  }
  // What a secret made of the deployed containers (a name, the image a rollout keeps serving) is as secret as
  // its value was: a Docker message or a rollback's report quotes it, and the secret may have another value now.
  const secretValues = [...(req.secretValues ?? []), ...plans.flatMap((p) => secretMadeTexts(p.plan.changes))];
  const payload: ApplyPayload = {
    desired: req.desired,
    onFailure: req.onFailure,
    ...(req.parallelism ? { parallelism: req.parallelism } : {}),
    ...(req.secretKeys?.length ? { secretKeys: [...req.secretKeys] } : {}),
    ...(secretValues.length ? { secretValues: [...new Set(secretValues)] } : {}),
    ...(req.policy ? { policy: req.policy } : {}),
    ...(req.services ? { services: [...req.services] } : {}),
    ...(req.rollbackOf ? { rollbackOf: req.rollbackOf } : {}),
  };
  const input = {
    repo: req.repo,
    pr: req.pr,
    environment: req.environment,
    kind: req.kind,
    actor: req.actor,
    headSha: req.headSha,
    desiredDigest: plans[0]?.plan.desiredDigest ?? hashOf(req.desired),
    planFingerprint: environmentFingerprint(plans),
    desiredJson: JSON.stringify(payload),
    checkRunId: req.checkRunId ?? null,
    commandCommentId: req.commandCommentId ?? null,
    operations: plans.map((p) => ({
      target: p.target,
      tasks: p.plan.nodes.map((n) => ({
        nodeId: n.id,
        kind: n.kind,
        resource: n.resource,
        reason: n.reason,
        deps: n.deps,
        nodeJson: JSON.stringify(n),
      })),
    })),
  };
  if (!req.start) return { applyId: (await store.createApply(input)).id, plans };
  const started = await store.startApply(input, req.start);
  if (!started.started) throw new ApplyRefusedError(started);
  return { applyId: started.apply.id, plans, fence: started.fence, handover: handoverOf(input, started.apply, started.fence, payload, plans.map((p) => p.plan.nodes)) };
}

/** The rows startApply wrote, as the store would read them back (a new apply: everything pending, version 0). */
function handoverOf(input: NewApply, created: CreatedApply, fence: Fence, payload: ApplyPayload, nodesOf: readonly (readonly PlanNode[])[]): Handover {
  return {
    fence,
    repo: input.repo,
    environment: input.environment,
    desiredJson: input.desiredJson,
    payload,
    operations: created.operations.map((op, ordinal) => ({
      row: { id: op.id, applyId: created.id, target: op.target, ordinal, state: 'pending', version: 0, startedAt: null, finishedAt: null, error: null },
      nodes: nodesOf[ordinal],
      tasks: input.operations[ordinal]!.tasks.map((t, j) => ({
        id: op.tasks[j]!.id,
        operationId: op.id,
        applyId: created.id,
        nodeId: t.nodeId,
        kind: t.kind,
        resource: t.resource,
        reason: t.reason,
        deps: [...t.deps],
        nodeJson: t.nodeJson,
        state: 'pending',
        version: 0,
        error: null,
        result: null,
        startedAt: null,
        finishedAt: null,
      })),
    })),
  };
}
