// Mapping database rows (snake_case, numbers that may arrive as strings or
// bigints, booleans as 0/1) to the row types of store.ts: value coercion only.
// Nothing here knows which database it talks to, or builds SQL.
import type {
  DeploymentRow,
  AggregateState,
  ApplyKind,
  ApplyRow,
  ApplyStatus,
  ContainerRow,
  IndexedContainerState,
  LockRow,
  OperationRow,
  PendingDelivery,
  PlanRow,
  StartApplyResult,
  TaskRow,
  TaskState,
  PrCommentPart,
} from './store.js';

export type DbRow = Record<string, unknown>;

/** A required integer column (INTEGER / INT / BIGINT, possibly a string or bigint from the driver). */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (typeof v === 'string' && v.trim() !== '') return Number(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  throw new Error(`expected a number from the database, got ${v === null ? 'null' : typeof v}`);
}

export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
}

export function str(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (v === null || v === undefined) throw new Error('expected a string from the database, got null');
  return String(v);
}

export function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : str(v);
}

export function bool(v: unknown): boolean {
  return num(v) !== 0;
}

export function toApply(r: DbRow): ApplyRow {
  return { ...toApplyStatus(r), desiredJson: str(r.desired_json) };
}

export function toApplyStatus(r: DbRow): ApplyStatus {
  return {
    id: str(r.id),
    repo: str(r.repo),
    pr: numOrNull(r.pr),
    environment: str(r.environment),
    kind: str(r.kind) as ApplyKind,
    actor: str(r.actor),
    headSha: strOrNull(r.head_sha),
    desiredDigest: str(r.desired_digest),
    planFingerprint: strOrNull(r.plan_fingerprint),
    state: str(r.state) as AggregateState,
    version: num(r.version),
    stopRequested: bool(r.stop_requested),
    checkRunId: numOrNull(r.check_run_id),
    commentId: numOrNull(r.comment_id),
    createdAt: num(r.created_at),
    startedAt: numOrNull(r.started_at),
    finishedAt: numOrNull(r.finished_at),
    error: strOrNull(r.error),
  };
}

export function toOperation(r: DbRow): OperationRow {
  return {
    id: str(r.id),
    applyId: str(r.apply_id),
    target: str(r.target),
    ordinal: num(r.ordinal),
    state: str(r.state) as AggregateState,
    version: num(r.version),
    startedAt: numOrNull(r.started_at),
    finishedAt: numOrNull(r.finished_at),
    error: strOrNull(r.error),
  };
}

export function toTask(r: DbRow): TaskRow {
  const deps = JSON.parse(str(r.deps)) as unknown;
  return {
    id: str(r.id),
    operationId: str(r.operation_id),
    applyId: str(r.apply_id),
    nodeId: num(r.node_id),
    kind: str(r.kind),
    resource: str(r.resource),
    reason: str(r.reason),
    deps: Array.isArray(deps) ? deps.map(num) : [],
    nodeJson: str(r.node_json),
    state: str(r.state) as TaskState,
    version: num(r.version),
    error: strOrNull(r.error),
    result: strOrNull(r.result),
    startedAt: numOrNull(r.started_at),
    finishedAt: numOrNull(r.finished_at),
  };
}

export function toLock(r: DbRow): LockRow {
  return {
    repo: str(r.repo),
    environment: str(r.environment),
    owner: str(r.owner),
    pr: num(r.pr),
    applyId: strOrNull(r.apply_id),
    createdAt: num(r.created_at),
  };
}

export function toPlan(r: DbRow): PlanRow {
  return {
    id: str(r.id),
    repo: str(r.repo),
    pr: numOrNull(r.pr),
    environment: str(r.environment),
    headSha: str(r.head_sha),
    fingerprint: str(r.fingerprint),
    desiredDigest: str(r.desired_digest),
    observedDigest: str(r.observed_digest),
    planJson: str(r.plan_json),
    rendered: str(r.rendered),
    createdAt: num(r.created_at),
  };
}

export function toContainer(r: DbRow): ContainerRow {
  return {
    target: str(r.target),
    containerId: str(r.container_id),
    project: str(r.project),
    environment: str(r.environment),
    service: str(r.service),
    replica: num(r.replica),
    name: str(r.name),
    state: str(r.state) as IndexedContainerState,
    configHash: str(r.config_hash),
    applyId: strOrNull(r.apply_id),
    seenAt: num(r.seen_at),
    updatedAt: num(r.updated_at),
  };
}

export function toLease(r: DbRow): { name: string; holder: string; expiresAt: number } {
  return { name: str(r.name), holder: str(r.holder), expiresAt: num(r.expires_at) };
}

export function toPendingDelivery(r: DbRow): PendingDelivery {
  return { deliveryId: str(r.delivery_id), event: str(r.event), payload: str(r.payload), receivedAt: num(r.received_at), attempts: num(r.attempts) };
}

/** Thrown inside a transaction to roll it back and answer a refusal instead. */
export class Refused {
  constructor(readonly result: StartApplyResult) {}
}

export async function refusedAsResult(fn: () => StartApplyResult | Promise<StartApplyResult>): Promise<StartApplyResult> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Refused) return err.result;
    throw err;
  }
}

/** The stored parts: a list of ids (before berth kept each part's hash) or of `{id, sha256}`. */
export function toCommentParts(v: unknown): PrCommentPart[] {
  const parsed = JSON.parse(str(v)) as unknown;
  if (!Array.isArray(parsed)) return [];
  return parsed.map((p: unknown) =>
    p !== null && typeof p === 'object' ? { id: num((p as { id: unknown }).id), ...(typeof (p as { sha256?: unknown }).sha256 === 'string' ? { sha256: (p as { sha256: string }).sha256 } : {}) } : { id: num(p) },
  );
}

export function toCommentIds(v: unknown): number[] {
  return toCommentParts(v).map((p) => p.id);
}

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function unique<T>(items: readonly T[]): T[] {
  return [...new Set(items)];
}

// deployments (issue 14)
export function toDeployment(r: DbRow): DeploymentRow {
  return {
    applyId: str(r.apply_id),
    repo: str(r.repo),
    environment: str(r.environment),
    spec: str(r.spec),
    deploymentId: numOrNull(r.deployment_id),
    state: strOrNull(r.state),
    createdAt: num(r.created_at),
  };
}
