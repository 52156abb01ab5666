// The Store: everything berth persists, behind one async interface. One
// implementation (kysely-store.ts) serves three databases — embedded SQLite,
// MySQL/MariaDB and PostgreSQL — selected by DATABASE_URL (open.ts).
//
// Conventions shared by every method and every database:
// - ids are strings (crypto.randomUUID()), timestamps are epoch milliseconds;
// - writes that race with other drivers are compare-and-set and say whether
//   they won (boolean), they never silently overwrite;
// - "atomic" means atomic across processes and replicas sharing the database,
//   not only within one process.

/** A part of berth's plan comment as stored: its id, and the SHA-256 of the body berth wrote (absent in rows written before it was kept). */
export interface PrCommentPart {
  id: number;
  sha256?: string;
}

/** A task is one plan node: one Docker call. */
export const TASK_STATES = ['pending', 'running', 'succeeded', 'failed', 'skipped', 'cancelled'] as const;
export type TaskState = (typeof TASK_STATES)[number];
export const TERMINAL_TASK_STATES: readonly TaskState[] = ['succeeded', 'failed', 'skipped', 'cancelled'];

/** Operation (per target) and apply states: derived from tasks, never set by hand. */
export const AGGREGATE_STATES = [
  'pending',
  'running',
  'running_degraded',
  'stopping',
  'completed',
  'failed',
  'stopped',
] as const;
export type AggregateState = (typeof AGGREGATE_STATES)[number];
export const TERMINAL_AGGREGATE_STATES: readonly AggregateState[] = ['completed', 'failed', 'stopped'];
/** States of an apply that is still in flight (holds its lock, may be stopped, is recovered on start). */
export const IN_FLIGHT_AGGREGATE_STATES: readonly AggregateState[] = ['pending', 'running', 'running_degraded', 'stopping'];

export type ApplyKind = 'apply' | 'rollback';

export interface ApplyRow {
  id: string;
  /** owner/name */
  repo: string;
  /** null for applies started from the CLI */
  pr: number | null;
  environment: string;
  kind: ApplyKind;
  actor: string;
  headSha: string | null;
  desiredDigest: string;
  planFingerprint: string | null;
  /** the desired state snapshot (JSON), what a rollback re-applies */
  desiredJson: string;
  state: AggregateState;
  /** bumped by every state CAS (and by requestStop) */
  version: number;
  stopRequested: boolean;
  checkRunId: number | null;
  /** the PR comment that reports this apply's outcome, when there is one */
  commentId: number | null;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  error: string | null;
}

/** An apply row without `desiredJson` (tens of kilobytes for a big stack). */
export type ApplyStatus = Omit<ApplyRow, 'desiredJson'>;

export interface OperationRow {
  id: string;
  applyId: string;
  /** named Docker endpoint */
  target: string;
  /** position in the apply (the order given to createApply) */
  ordinal: number;
  state: AggregateState;
  version: number;
  startedAt: number | null;
  finishedAt: number | null;
  error: string | null;
}

export interface TaskRow {
  id: string;
  operationId: string;
  applyId: string;
  /** the plan node id (unique within its operation) */
  nodeId: number;
  kind: string;
  resource: string;
  reason: string;
  /** node ids this task depends on */
  deps: number[];
  /** the whole plan node, JSON */
  nodeJson: string;
  state: TaskState;
  version: number;
  /** Docker's error text when failed */
  error: string | null;
  /** e.g. the id of the container a CreateContainer made */
  result: string | null;
  startedAt: number | null;
  finishedAt: number | null;
}

export interface LockRow {
  repo: string;
  environment: string;
  /** `owner/repo#PR` */
  owner: string;
  pr: number;
  /** the apply currently running under this lock, if any */
  applyId: string | null;
  createdAt: number;
}

export type AcquireLockResult = { acquired: true; lock: LockRow } | { acquired: false; holder: LockRow };

/**
 * Who an apply is started for: the lock owner (`owner/repo#PR`, or
 * `cli:<user>@<host>` for the CLI, whose lock carries pr 0) and the driver
 * that holds the apply's lease from the moment it is stored.
 */
export interface StartApplyOptions {
  lock: { owner: string; pr: number };
  lease: { holder: string; ttlMs: number };
}

/**
 * startApply's answer: the apply was stored (lock held, lease taken, all in
 * one transaction), or nothing was written because the lock has another
 * owner or the environment already has an apply in flight.
 */
export type StartApplyResult =
  | { started: true; apply: CreatedApply; lock: LockRow; fence: Fence }
  | { started: false; reason: 'locked'; holder: LockRow }
  | { started: false; reason: 'in_flight'; applyId: string };

/**
 * A lease as held by one driver: journal writes that carry it are applied only
 * while the lease still has this holder and token (fencing: a driver that lost
 * its lease cannot write over its successor's journal).
 */
export interface Fence {
  lease: string;
  holder: string;
  token: string;
}

/** A webhook delivery that was received but whose work has not been marked done. */
export interface PendingDelivery {
  deliveryId: string;
  event: string;
  payload: string;
  receivedAt: number;
  /** how many times its work was claimed so far (the first receipt included) */
  attempts: number;
}

export interface PlanRow {
  id: string;
  repo: string;
  pr: number | null;
  environment: string;
  headSha: string;
  fingerprint: string;
  desiredDigest: string;
  observedDigest: string;
  planJson: string;
  rendered: string;
  createdAt: number;
}

export type PlanInput = Omit<PlanRow, 'id' | 'createdAt'>;

export const INDEXED_CONTAINER_STATES = ['running', 'stopped', 'restarting', 'paused', 'created', 'missing'] as const;
export type IndexedContainerState = (typeof INDEXED_CONTAINER_STATES)[number];

/** One row of the drift index: a managed container as last seen on a target. */
export interface ContainerRow {
  target: string;
  containerId: string;
  project: string;
  environment: string;
  service: string;
  replica: number;
  name: string;
  state: IndexedContainerState;
  configHash: string;
  applyId: string | null;
  /** when the container was last seen in a listing (or written by the executor) */
  seenAt: number;
  /** when state, name, config hash or apply last changed */
  updatedAt: number;
}

/**
 * What upsertContainers writes. On conflict every field is replaced except
 * `applyId`, which a null never overwrites (the apply that created a container
 * is the executor's fact, not the reconciler's), and `updatedAt`, which only
 * moves when something other than `seenAt` changed.
 */
export type ContainerUpsert = Omit<ContainerRow, 'target' | 'updatedAt' | 'seenAt'> & { seenAt?: number };

export interface NewTask {
  nodeId: number;
  kind: string;
  resource: string;
  reason: string;
  deps: number[];
  nodeJson: string;
}

export interface NewOperation {
  target: string;
  tasks: NewTask[];
}

export interface NewApply {
  repo: string;
  pr: number | null;
  environment: string;
  kind: ApplyKind;
  actor: string;
  headSha: string | null;
  desiredDigest: string;
  planFingerprint: string | null;
  desiredJson: string;
  checkRunId?: number | null;
  commentId?: number | null;
  /** the PR comment whose command made the apply: a resumed delivery of it finds the apply (applyForCommand) */
  commandCommentId?: number | null;
  operations: NewOperation[];
}

export interface CreatedApply {
  id: string;
  operations: { id: string; target: string; tasks: { id: string; nodeId: number }[] }[];
}

export interface TaskPatch {
  state: TaskState;
  error?: string | null;
  result?: string | null;
  startedAt?: number | null;
  finishedAt?: number | null;
}

export interface TaskUpdate {
  id: string;
  expected: TaskState | readonly TaskState[];
  patch: TaskPatch;
}

export interface AggregatePatch {
  state: AggregateState;
  startedAt?: number | null;
  finishedAt?: number | null;
  error?: string | null;
}

export interface ListAppliesFilter {
  states?: readonly string[];
  repo?: string;
  pr?: number;
  environment?: string;
  /** newest first; default: no limit */
  limit?: number;
}

export interface LatestApplyOptions {
  desiredDigest?: string;
  state?: string;
  kind?: ApplyKind;
}

// secrets (issue 18) ─ rows of the server-side secret store; crypto and domain logic are in src/secrets/.
/** One secret: only `ciphertext` depends on the value, and it is AES-256-GCM under key `keyId` (src/secrets/keyring.ts). */
export interface SecretRow {
  repo: string;
  environment: string;
  name: string;
  keyId: string;
  nonce: string;
  ciphertext: string;
  /** keyed hash of the value (HMAC): what planning uses, so it never decrypts */
  valueHash: string;
  /** who set it (OS user or --actor) and when */
  setBy: string;
  setAt: number;
}
/** A secret as listed: everything but the encrypted value. */
export type SecretInfo = Omit<SecretRow, 'nonce' | 'ciphertext'>;

export interface Store {
  /** which database: 'sqlite', 'mysql' (also MariaDB) or 'postgres' */
  readonly dialect: 'sqlite' | 'mysql' | 'postgres';

  /** Readiness: resolves when the database answers, rejects otherwise. */
  ping(): Promise<void>;
  /** Idempotent. */
  close(): Promise<void>;

  // ── applies, operations, tasks ──────────────────────────────────────────
  /**
   * Inserts the apply (state pending, version 0), its operations and tasks in
   * ONE transaction. The database allows one apply in flight per (repo,
   * environment): a second one is refused with ApplyInFlightError.
   */
  createApply(input: NewApply): Promise<CreatedApply>;
  /**
   * The only way the app and the CLI start an apply: in ONE transaction, take
   * (or confirm) the environment's lock for `lock.owner`, check that no apply
   * of the environment is in flight, insert the apply, point the lock at it,
   * and give its lease (`apply:<id>`) to `lease.holder`.
   */
  startApply(input: NewApply, opts: StartApplyOptions): Promise<StartApplyResult>;
  /**
   * Claims the sending of an ended apply's final report (check run, outcome
   * comment, deployment status) for `claim.holder`. False while the apply is
   * in flight, once it is reported (markReported), and while another
   * holder's claim is younger than `claim.ttlMs`; an older claim is taken
   * over (its holder died between the claim and the sends: the report is
   * sent again, idempotently). Compare-and-set: one caller at a time. Without
   * `claim`, a claim is never taken over.
   */
  claimReport(applyId: string, claim?: { holder: string; ttlMs: number }): Promise<boolean>;
  /** The report's claim while the report is not marked sent: undefined when never claimed (or reported). */
  reportClaim(applyId: string): Promise<{ claimedAt: number; holder: string | null } | undefined>;
  /** The final report is out: never claimed or listed again. True the first time (false in flight). */
  markReported(applyId: string): Promise<boolean>;
  /**
   * Ended applies whose report is not out yet, oldest first: never claimed,
   * or claimed by a sender that may have died before it finished (recovery
   * takes those whose claim has lapsed, through claimReport).
   */
  listUnreportedApplies(): Promise<ApplyRow[]>;
  getApply(id: string): Promise<ApplyRow | undefined>;
  /** An apply's row without its desired state: what a driver re-reads while it works (states, the stop flag). */
  getApplyStatus(id: string): Promise<ApplyStatus | undefined>;
  /** Ordered as given to createApply. */
  listOperations(applyId: string): Promise<OperationRow[]>;
  getOperation(id: string): Promise<OperationRow | undefined>;
  /** Ordered by node id. */
  listTasks(operationId: string): Promise<TaskRow[]>;
  /** Ordered by operation, then node id. */
  listTasksForApply(applyId: string): Promise<TaskRow[]>;
  getTask(id: string): Promise<TaskRow | undefined>;
  /**
   * The journal write: compare-and-set on the task's state. Fields absent from
   * the patch are left as they are. True when this call made the transition.
   */
  updateTask(id: string, expectedState: TaskState | readonly TaskState[], patch: TaskPatch, fence?: Fence): Promise<boolean>;
  /**
   * Several journal writes in ONE transaction (group commit): each is the
   * same compare-and-set as updateTask; result i says whether update i won.
   * With a fence, nothing is written (every result false) unless the lease is
   * still held by that holder with that token.
   */
  updateTasks(updates: readonly TaskUpdate[], fence?: Fence): Promise<boolean[]>;
  /** Every `pending` task of the apply becomes `cancelled` (one statement). Returns how many. */
  cancelPendingTasks(applyId: string, finishedAt?: number): Promise<number>;
  /** CAS on the version column; version+1 on success. */
  casApplyState(id: string, expectedVersion: number, patch: AggregatePatch): Promise<boolean>;
  casOperationState(id: string, expectedVersion: number, patch: AggregatePatch): Promise<boolean>;
  /**
   * Sets the stop flag (any replica may ask). Bumps the version the first time,
   * so a derivation racing with the request re-reads. True when the apply is in
   * flight and now marked for stop (also when it already was).
   */
  requestStop(applyId: string): Promise<boolean>;
  setApplyCheckRun(id: string, checkRunId: number | null): Promise<void>;
  setApplyComment(id: string, commentId: number | null): Promise<void>;
  /** The apply the command of PR comment `commentId` made (NewApply.commandCommentId), if any. */
  applyForCommand(repo: string, commentId: number): Promise<string | undefined>;
  /** The newest apply for (repo, environment), optionally with this desired digest and/or state. */
  latestApply(repo: string, environment: string, opts?: LatestApplyOptions): Promise<ApplyRow | undefined>;
  /** Newest first. */
  listApplies(filter?: ListAppliesFilter): Promise<ApplyRow[]>;
  /** The in-flight apply (pending/running/running_degraded/stopping) of this PR on this environment. */
  applyOf(repo: string, pr: number, environment: string): Promise<ApplyRow | undefined>;
  /** Which of these ids name an existing apply (one query). */
  knownApplyIds(ids: readonly string[]): Promise<Set<string>>;

  // ── locks ───────────────────────────────────────────────────────────────
  /** Atomic. Re-acquiring by the same owner succeeds and changes nothing. */
  acquireLock(repo: string, environment: string, owner: string, pr: number): Promise<AcquireLockResult>;
  /**
   * Deletes the lock (only if held by `owner`, when given). A lock whose apply
   * is still in flight is retained (false): it goes when the apply ends. True
   * when a lock was released.
   */
  releaseLock(repo: string, environment: string, owner?: string): Promise<boolean>;
  getLock(repo: string, environment: string): Promise<LockRow | undefined>;
  listLocks(repo?: string): Promise<LockRow[]>;
  locksForPr(repo: string, pr: number): Promise<LockRow[]>;
  /** True when the lock exists. */
  setLockApply(repo: string, environment: string, applyId: string | null): Promise<boolean>;

  // ── plans ───────────────────────────────────────────────────────────────
  savePlan(plan: PlanInput): Promise<PlanRow>;
  getPlan(id: string): Promise<PlanRow | undefined>;
  latestPlan(repo: string, pr: number | null, environment: string): Promise<PlanRow | undefined>;

  // ── webhook deliveries ──────────────────────────────────────────────────
  /** True only the first time this delivery id is recorded (atomic across replicas). */
  recordDelivery(deliveryId: string, event: string): Promise<boolean>;
  /**
   * Durable work items: claims a delivery for `holder` until now+ttl, storing
   * its payload on first sight. True when the caller now owns it: the first
   * time, or again when it is still unfinished and its last claim lapsed (its
   * process died). A done delivery, or one being worked on, answers false.
   */
  claimDelivery(deliveryId: string, event: string, payload: string, holder: string, ttlMs: number): Promise<boolean>;
  /** The delivery's work ended (handled or reported as failed): a redelivery is now a duplicate. */
  finishDelivery(deliveryId: string): Promise<void>;
  /** Extends every unfinished claim of `holder` to now+ttl (one statement; the holder's heartbeat). */
  renewDeliveries(holder: string, ttlMs: number): Promise<number>;
  /**
   * Gives up the holder's unfinished claims so another process (or the next start) runs them at once; with
   * `deliveryId`, that one claim only (the holder's others are being worked on).
   */
  releaseDeliveries(holder: string, deliveryId?: string): Promise<number>;
  /** Unfinished deliveries whose claim lapsed, oldest first: what a crash or a shutdown left undone. */
  pendingDeliveries(limit?: number): Promise<PendingDelivery[]>;
  /** Forget deliveries received before this time. Returns how many. */
  pruneDeliveries(receivedBefore: number): Promise<number>;

  // ── PR comments ─────────────────────────────────────────────────────────
  /** berth's comment (possibly several parts) on a PR; [] when none yet. */
  getPrComments(repo: string, pr: number): Promise<number[]>;
  /** `digests`: the SHA-256 of each part's body as berth wrote it (same order), so an edit by anyone else is found. */
  setPrComments(repo: string, pr: number, commentIds: number[], digests?: readonly string[]): Promise<void>;
  /** berth's comment parts with the digest of the body berth wrote to each (none for parts stored before digests were kept). */
  getPrCommentParts(repo: string, pr: number): Promise<PrCommentPart[]>;
  /** When setPrComments last ran for the PR (after berth finished writing its plan comment); undefined when never. */
  prCommentsWrittenAt(repo: string, pr: number): Promise<number | undefined>;

  // ── file texts by blob (the commit cache's shared tier) ──────────────────
  /** The text stored under this repository's Git blob name, if any (the caller checks it hashes to the name). */
  getFileBlob(repo: string, blob: string): Promise<string | undefined>;
  /** Stores a text under its Git blob name (insert-if-absent); drops texts stored more than 30 days ago. */
  putFileBlob(repo: string, blob: string, text: string): Promise<void>;

  // ── PR heads ────────────────────────────────────────────────────────────
  /** Records the first time berth saw this head of the PR (insert-if-absent, atomic); returns that first time. */
  /**
   * `pushedBy`: who pushed it, as the head's `opened`/`synchronize` webhook says (its sender); kept once known (a
   * head first seen by planning learns it from its webhook).
   */
  recordHead(repo: string, pr: number, headSha: string, pushedBy?: string): Promise<number>;
  /**
   * Who pushed this head of the PR, as far as berth knows: recordHead's `pushedBy` (which may be
   * PUSHER_UNKNOWN, a head that came with a reopening) and every recordPush of the commit; sorted, no repeats.
   */
  headPushers(repo: string, pr: number, headSha: string): Promise<string[]>;
  /** Records that `pushedBy` pushed `headSha` as a branch's head (a `push` webhook; insert-if-absent). */
  recordPush(repo: string, headSha: string, pushedBy: string): Promise<void>;
  /** Every head of the PR berth has seen, with when it first saw each, oldest first. */
  listHeads(repo: string, pr: number): Promise<{ headSha: string; seenAt: number }[]>;
  /** The PRs of the repository berth saw with this head commit (any head they ever had), by number. */
  pullsWithHead(repo: string, headSha: string): Promise<number[]>;

  // ── leases (multi-replica coordination) ─────────────────────────────────
  /** Take the lease if free, expired or already ours (then it is renewed to now+ttl). Atomic. */
  acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean>;
  /**
   * acquireLease that says which tenure it got: the lease's token, unchanged
   * while the holder renews a live lease, new whenever the lease is taken
   * (free, expired, or from another holder). null when another holder has it.
   */
  claimLease(name: string, holder: string, ttlMs: number): Promise<string | null>;
  /** True when we held it. */
  releaseLease(name: string, holder: string): Promise<boolean>;
  getLease(name: string): Promise<{ name: string; holder: string; expiresAt: number } | undefined>;

  // ── project ownership ───────────────────────────────────────────────────
  /** The repository (owner/name) that owns a project on a target, if any has claimed it. */
  projectOwner(target: string, project: string): Promise<string | undefined>;
  /** Claims the project on the target for `repo` unless another repository owns it; returns the owner after the call. Atomic. */
  claimProject(target: string, project: string, repo: string): Promise<string>;

  // ── containers (drift index) ────────────────────────────────────────────
  listContainers(target: string): Promise<ContainerRow[]>;
  /** One batched statement (multi-row insert … on conflict update). */
  upsertContainers(target: string, rows: readonly ContainerUpsert[]): Promise<void>;
  /** One statement. Returns how many rows changed to `missing`. */
  markContainersMissing(target: string, containerIds: readonly string[]): Promise<number>;
  /** One statement. Returns how many rows were deleted. */
  deleteContainers(target: string, containerIds: readonly string[]): Promise<number>;

  // deployments (issue 14)
  /** Records the GitHub deployment an apply is reported as (insert-if-absent; the GitHub id comes later). */
  saveDeployment(row: NewDeployment): Promise<void>;
  /** Sets the GitHub deployment id and/or the last status berth gave it. */
  setDeployment(applyId: string, patch: { deploymentId?: number; state?: string }): Promise<void>;
  getDeployment(applyId: string): Promise<DeploymentRow | undefined>;
  /** The environment's deployments, newest first, optionally only those whose last status is `state`. */
  listDeployments(repo: string, environment: string, state?: string): Promise<DeploymentRow[]>;

  // ── secrets (issue 18) ──────────────────────────────────────────────────
  /**
   * Inserts or replaces the secret (repo, environment, name). With
   * `ifCiphertext`, only replaces a row that still holds that ciphertext
   * (re-encryption must not overwrite a value set meanwhile). True when written.
   */
  putSecret(row: SecretRow, ifCiphertext?: string): Promise<boolean>;
  /** The named secrets of one environment that exist (any order). */
  getSecrets(repo: string, environment: string, names: readonly string[]): Promise<SecretRow[]>;
  /** Secrets without their encrypted values, by repo, environment, name; optionally of one repo / environment. */
  listSecrets(repo?: string, environment?: string): Promise<SecretInfo[]>;
  /** True when it existed. */
  deleteSecret(repo: string, environment: string, name: string): Promise<boolean>;
  /** Every secret row (rotate-key re-encrypts them all). */
  allSecrets(): Promise<SecretRow[]>;
}

// deployments (issue 14)
/** An apply's GitHub deployment: what to create (spec, JSON) and, once created, its id and last status. */
export interface DeploymentRow {
  applyId: string;
  repo: string;
  environment: string;
  /** JSON: ref, environment URL, production/transient flags, the log URL */
  spec: string;
  deploymentId: number | null;
  /** the last status berth set (in_progress, success, failure, error, inactive); null before the first */
  state: string | null;
  createdAt: number;
}
export type NewDeployment = Pick<DeploymentRow, 'applyId' | 'repo' | 'environment' | 'spec'>;

/** createApply refused: the environment already has an apply in flight (the database's uniqueness guarantee). */
export class ApplyInFlightError extends Error {
  constructor(
    readonly repo: string,
    readonly environment: string,
  ) {
    super(`${repo} ${environment} already has an apply in flight`);
    this.name = 'ApplyInFlightError';
  }
}

export interface OpenStoreOptions {
  /** Run pending migrations at open (default true). */
  migrate?: boolean;
  /** Clock for every timestamp the store writes itself (default Date.now). */
  now?: () => number;
}
