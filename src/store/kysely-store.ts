// The Store, once, on Kysely: one class over SQLite (better-sqlite3), MySQL/
// MariaDB (mysql2) and PostgreSQL (pg). It owns the connection and the clock;
// every query lives in tables/*.ts as a function of (db | transaction), and
// whatever the three databases do differently is named in dialect.ts.
// Opening runs the migrations (migrations/) unless told not to.
import type { Kysely } from 'kysely';
import { syncSqliteOf, type Ctx, type DialectName } from './dialect.js';
import { migrateToLatest } from './migrations/index.js';
import type { Database } from './schema.js';
import type {
  AcquireLockResult,
  PrCommentPart,
  AggregatePatch,
  ApplyRow,
  ApplyStatus,
  ContainerRow,
  ContainerUpsert,
  CreatedApply,
  DeploymentRow,
  Fence,
  LatestApplyOptions,
  ListAppliesFilter,
  LockRow,
  NewApply,
  NewDeployment,
  OpenStoreOptions,
  OperationRow,
  PendingDelivery,
  PlanInput,
  PlanRow,
  SecretInfo,
  SecretRow,
  StartApplyOptions,
  StartApplyResult,
  Store,
  TaskPatch,
  TaskRow,
  TaskState,
  TaskUpdate,
} from './store.js';
import * as applies from './tables/applies.js';
import * as containers from './tables/containers.js';
import * as deliveries from './tables/deliveries.js';
import * as deployments from './tables/deployments.js';
import * as leases from './tables/leases.js';
import * as locks from './tables/locks.js';
import * as prs from './tables/pull-requests.js';
import * as blobs from './tables/file-blobs.js';
import * as secrets from './tables/secrets.js';
import * as tasks from './tables/tasks.js';

export class KyselyStore implements Store {
  readonly dialect: DialectName;
  private readonly ctx: Ctx;
  private closed = false;

  /** Wraps an open Kysely instance; runs pending migrations unless `opts.migrate` is false (then only pings). */
  static async open(db: Kysely<Database>, dialect: DialectName, opts: OpenStoreOptions = {}): Promise<KyselyStore> {
    const store = new KyselyStore(db, dialect, opts.now ?? Date.now);
    try {
      if (opts.migrate ?? true) await migrateToLatest(db);
      else await store.ping();
    } catch (err) {
      await db.destroy().catch(() => undefined);
      throw err;
    }
    return store;
  }

  private constructor(db: Kysely<Database>, dialect: DialectName, now: () => number) {
    this.dialect = dialect;
    const sync = dialect === 'sqlite' ? syncSqliteOf(db) : undefined;
    this.ctx = { db, dialect, now, ...(sync ? { sync } : {}) };
  }

  async ping(): Promise<void> {
    await this.ctx.db.selectNoFrom((eb) => eb.lit(1).as('ok')).execute();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.ctx.db.destroy();
  }

  // ── applies, operations, tasks ──────────────────────────────────────────
  createApply(input: NewApply): Promise<CreatedApply> {
    return applies.createApply(this.ctx, input);
  }
  startApply(input: NewApply, opts: StartApplyOptions): Promise<StartApplyResult> {
    return applies.startApply(this.ctx, input, opts);
  }
  claimReport(applyId: string, claim?: { holder: string; ttlMs: number }): Promise<boolean> {
    return applies.claimReport(this.ctx, applyId, claim);
  }
  reportClaim(applyId: string): Promise<{ claimedAt: number; holder: string | null } | undefined> {
    return applies.reportClaim(this.ctx, applyId);
  }
  markReported(applyId: string): Promise<boolean> {
    return applies.markReported(this.ctx, applyId);
  }
  listUnreportedApplies(): Promise<ApplyRow[]> {
    return applies.listUnreportedApplies(this.ctx);
  }
  getApply(id: string): Promise<ApplyRow | undefined> {
    return applies.getApply(this.ctx, id);
  }

  getApplyStatus(id: string): Promise<ApplyStatus | undefined> {
    return applies.getApplyStatus(this.ctx, id);
  }
  listOperations(applyId: string): Promise<OperationRow[]> {
    return tasks.listOperations(this.ctx, applyId);
  }
  getOperation(id: string): Promise<OperationRow | undefined> {
    return tasks.getOperation(this.ctx, id);
  }
  listTasks(operationId: string): Promise<TaskRow[]> {
    return tasks.listTasks(this.ctx, operationId);
  }
  listTasksForApply(applyId: string): Promise<TaskRow[]> {
    return tasks.listTasksForApply(this.ctx, applyId);
  }
  getTask(id: string): Promise<TaskRow | undefined> {
    return tasks.getTask(this.ctx, id);
  }
  async updateTask(id: string, expectedState: TaskState | readonly TaskState[], patch: TaskPatch, fence?: Fence): Promise<boolean> {
    return (await tasks.updateTasks(this.ctx, [{ id, expected: expectedState, patch }], fence))[0]!;
  }
  updateTasks(updates: readonly TaskUpdate[], fence?: Fence): Promise<boolean[]> {
    return tasks.updateTasks(this.ctx, updates, fence);
  }
  cancelPendingTasks(applyId: string, finishedAt?: number): Promise<number> {
    return tasks.cancelPendingTasks(this.ctx, applyId, finishedAt);
  }
  casApplyState(id: string, expectedVersion: number, patch: AggregatePatch): Promise<boolean> {
    return applies.casApplyState(this.ctx, id, expectedVersion, patch);
  }
  casOperationState(id: string, expectedVersion: number, patch: AggregatePatch): Promise<boolean> {
    return tasks.casOperationState(this.ctx, id, expectedVersion, patch);
  }
  requestStop(applyId: string): Promise<boolean> {
    return applies.requestStop(this.ctx, applyId);
  }
  setApplyCheckRun(id: string, checkRunId: number | null): Promise<void> {
    return applies.setApplyCheckRun(this.ctx, id, checkRunId);
  }
  setApplyComment(id: string, commentId: number | null): Promise<void> {
    return applies.setApplyComment(this.ctx, id, commentId);
  }
  applyForCommand(repo: string, commentId: number): Promise<string | undefined> {
    return applies.applyForCommand(this.ctx, repo, commentId);
  }
  latestApply(repo: string, environment: string, opts?: LatestApplyOptions): Promise<ApplyRow | undefined> {
    return applies.latestApply(this.ctx, repo, environment, opts);
  }
  listApplies(filter?: ListAppliesFilter): Promise<ApplyRow[]> {
    return applies.listApplies(this.ctx, filter);
  }
  applyOf(repo: string, pr: number, environment: string): Promise<ApplyRow | undefined> {
    return applies.applyOf(this.ctx, repo, pr, environment);
  }
  knownApplyIds(ids: readonly string[]): Promise<Set<string>> {
    return applies.knownApplyIds(this.ctx, ids);
  }

  // ── locks ───────────────────────────────────────────────────────────────
  acquireLock(repo: string, environment: string, owner: string, pr: number): Promise<AcquireLockResult> {
    return locks.acquireLock(this.ctx, repo, environment, owner, pr);
  }
  releaseLock(repo: string, environment: string, owner?: string): Promise<boolean> {
    return locks.releaseLock(this.ctx, repo, environment, owner);
  }
  getLock(repo: string, environment: string): Promise<LockRow | undefined> {
    return locks.getLock(this.ctx, repo, environment);
  }
  listLocks(repo?: string): Promise<LockRow[]> {
    return locks.listLocks(this.ctx, repo);
  }
  locksForPr(repo: string, pr: number): Promise<LockRow[]> {
    return locks.locksForPr(this.ctx, repo, pr);
  }
  setLockApply(repo: string, environment: string, applyId: string | null): Promise<boolean> {
    return locks.setLockApply(this.ctx, repo, environment, applyId);
  }

  // ── plans, PR comments, PR heads ────────────────────────────────────────
  savePlan(plan: PlanInput): Promise<PlanRow> {
    return prs.savePlan(this.ctx, plan);
  }
  getPlan(id: string): Promise<PlanRow | undefined> {
    return prs.getPlan(this.ctx, id);
  }
  latestPlan(repo: string, pr: number | null, environment: string): Promise<PlanRow | undefined> {
    return prs.latestPlan(this.ctx, repo, pr, environment);
  }
  getPrComments(repo: string, pr: number): Promise<number[]> {
    return prs.getPrComments(this.ctx, repo, pr);
  }
  setPrComments(repo: string, pr: number, commentIds: number[], digests?: readonly string[]): Promise<void> {
    return prs.setPrComments(this.ctx, repo, pr, commentIds, digests);
  }
  getPrCommentParts(repo: string, pr: number): Promise<PrCommentPart[]> {
    return prs.getPrCommentParts(this.ctx, repo, pr);
  }
  prCommentsWrittenAt(repo: string, pr: number): Promise<number | undefined> {
    return prs.prCommentsWrittenAt(this.ctx, repo, pr);
  }
  getFileBlob(repo: string, blob: string): Promise<string | undefined> {
    return blobs.getFileBlob(this.ctx, repo, blob);
  }
  putFileBlob(repo: string, blob: string, text: string): Promise<void> {
    return blobs.putFileBlob(this.ctx, repo, blob, text);
  }
  recordHead(repo: string, pr: number, headSha: string, pushedBy?: string): Promise<number> {
    return prs.recordHead(this.ctx, repo, pr, headSha, pushedBy);
  }
  headPushers(repo: string, pr: number, headSha: string): Promise<string[]> {
    return prs.headPushers(this.ctx, repo, pr, headSha);
  }
  recordPush(repo: string, headSha: string, pushedBy: string): Promise<void> {
    return prs.recordPush(this.ctx, repo, headSha, pushedBy);
  }
  pullsWithHead(repo: string, headSha: string): Promise<number[]> {
    return prs.pullsWithHead(this.ctx, repo, headSha);
  }
  listHeads(repo: string, pr: number): Promise<{ headSha: string; seenAt: number }[]> {
    return prs.listHeads(this.ctx, repo, pr);
  }

  // ── webhook deliveries ──────────────────────────────────────────────────
  recordDelivery(deliveryId: string, event: string): Promise<boolean> {
    return deliveries.recordDelivery(this.ctx, deliveryId, event);
  }
  claimDelivery(deliveryId: string, event: string, payload: string, holder: string, ttlMs: number): Promise<boolean> {
    return deliveries.claimDelivery(this.ctx, deliveryId, event, payload, holder, ttlMs);
  }
  finishDelivery(deliveryId: string): Promise<void> {
    return deliveries.finishDelivery(this.ctx, deliveryId);
  }
  renewDeliveries(holder: string, ttlMs: number): Promise<number> {
    return deliveries.renewDeliveries(this.ctx, holder, ttlMs);
  }
  releaseDeliveries(holder: string, deliveryId?: string): Promise<number> {
    return deliveries.releaseDeliveries(this.ctx, holder, deliveryId);
  }
  pendingDeliveries(limit?: number): Promise<PendingDelivery[]> {
    return deliveries.pendingDeliveries(this.ctx, limit);
  }
  pruneDeliveries(receivedBefore: number): Promise<number> {
    return deliveries.pruneDeliveries(this.ctx, receivedBefore);
  }

  // ── leases, project ownership ───────────────────────────────────────────
  async acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return (await leases.claimLease(this.ctx, name, holder, ttlMs)) !== null;
  }
  claimLease(name: string, holder: string, ttlMs: number): Promise<string | null> {
    return leases.claimLease(this.ctx, name, holder, ttlMs);
  }
  releaseLease(name: string, holder: string): Promise<boolean> {
    return leases.releaseLease(this.ctx, name, holder);
  }
  getLease(name: string): Promise<{ name: string; holder: string; expiresAt: number } | undefined> {
    return leases.getLease(this.ctx, name);
  }
  projectOwner(target: string, project: string): Promise<string | undefined> {
    return leases.projectOwner(this.ctx, target, project);
  }
  claimProject(target: string, project: string, repo: string): Promise<string> {
    return leases.claimProject(this.ctx, target, project, repo);
  }

  // ── containers (drift index) ────────────────────────────────────────────
  listContainers(target: string): Promise<ContainerRow[]> {
    return containers.listContainers(this.ctx, target);
  }
  upsertContainers(target: string, rows: readonly ContainerUpsert[]): Promise<void> {
    return containers.upsertContainers(this.ctx, target, rows);
  }
  markContainersMissing(target: string, containerIds: readonly string[]): Promise<number> {
    return containers.markContainersMissing(this.ctx, target, containerIds);
  }
  deleteContainers(target: string, containerIds: readonly string[]): Promise<number> {
    return containers.deleteContainers(this.ctx, target, containerIds);
  }

  // ── deployments (issue 14) ──────────────────────────────────────────────
  saveDeployment(row: NewDeployment): Promise<void> {
    return deployments.saveDeployment(this.ctx, row);
  }
  setDeployment(applyId: string, patch: { deploymentId?: number; state?: string }): Promise<void> {
    return deployments.setDeployment(this.ctx, applyId, patch);
  }
  getDeployment(applyId: string): Promise<DeploymentRow | undefined> {
    return deployments.getDeployment(this.ctx, applyId);
  }
  listDeployments(repo: string, environment: string, state?: string): Promise<DeploymentRow[]> {
    return deployments.listDeployments(this.ctx, repo, environment, state);
  }

  // ── secrets (issue 18): rows only; encryption is src/secrets/ ───────────
  putSecret(row: SecretRow, ifCiphertext?: string): Promise<boolean> {
    return secrets.putSecret(this.ctx, row, ifCiphertext);
  }
  getSecrets(repo: string, environment: string, names: readonly string[]): Promise<SecretRow[]> {
    return secrets.getSecrets(this.ctx, repo, environment, names);
  }
  listSecrets(repo?: string, environment?: string): Promise<SecretInfo[]> {
    return secrets.listSecrets(this.ctx, repo, environment);
  }
  deleteSecret(repo: string, environment: string, name: string): Promise<boolean> {
    return secrets.deleteSecret(this.ctx, repo, environment, name);
  }
  allSecrets(): Promise<SecretRow[]> {
    return secrets.allSecrets(this.ctx);
  }
}
