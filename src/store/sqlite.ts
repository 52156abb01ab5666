// The embedded Store backend: one SQLite file (or :memory:) through
// better-sqlite3. The driver is synchronous; every method does its work in one
// synchronous stretch (a statement, or a transaction that never awaits), so
// calls from the same process cannot interleave inside a transaction, and
// other processes on the same file are serialised by SQLite's write lock
// (WAL, busy_timeout). Every compare-and-set is one UPDATE checked by
// `changes`.
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { migrateSqlite } from './migrations.js';
import {
  aggregatePatchSet,
  chunks,
  placeholders,
  taskPatchSet,
  toApply,
  toCommentIds,
  toContainer,
  toDeployment,
  toLease,
  toLock,
  toOperation,
  toPendingDelivery,
  toPlan,
  toTask,
  applyPatchSet,
  refusedAsResult,
  Refused,
  unique,
  type DbRow,
} from './rows.js';
import {
  IN_FLIGHT_AGGREGATE_STATES,
  ApplyInFlightError,
  type AcquireLockResult,
  type Fence,
  type PendingDelivery,
  type StartApplyOptions,
  type StartApplyResult,
  type AggregatePatch,
  type ApplyRow,
  type ContainerRow,
  type ContainerUpsert,
  type DeploymentRow,
  type NewDeployment,
  type CreatedApply,
  type LatestApplyOptions,
  type ListAppliesFilter,
  type LockRow,
  type NewApply,
  type OpenStoreOptions,
  type OperationRow,
  type PlanInput,
  type PlanRow,
  type SecretInfo,
  type SecretRow,
  type Store,
  type TaskPatch,
  type TaskUpdate,
  type TaskRow,
  type TaskState,
} from './store.js';

export interface SqliteStoreOptions extends OpenStoreOptions {
  /** How long a statement waits for another process's write lock, ms (default 5000). */
  busyTimeoutMs?: number;
}

/** Rows per multi-row statement, well under SQLite's bound-parameter limit (32766). */
const BATCH = 500;
const IN_FLIGHT_SQL = IN_FLIGHT_AGGREGATE_STATES.map((s) => `'${s}'`).join(', ');

export class SqliteStore implements Store {
  readonly dialect = 'sqlite' as const;
  private readonly db: Database.Database;
  private readonly now: () => number;
  private readonly statements = new Map<string, Database.Statement>();
  private closed = false;

  /** Opens (creating when needed) the database at `path` (`:memory:` for a private in-memory one). */
  static open(path: string, opts: SqliteStoreOptions = {}): SqliteStore {
    const db = new Database(path, { timeout: opts.busyTimeoutMs ?? 5000 });
    try {
      return new SqliteStore(db, opts);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private constructor(db: Database.Database, opts: SqliteStoreOptions) {
    this.db = db;
    this.now = opts.now ?? Date.now;
    // busy_timeout first (the constructor's `timeout`), so the journal-mode
    // switch below waits for a concurrent opener instead of failing.
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
    db.pragma('journal_mode = WAL'); // ignored (stays 'memory') for :memory:
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    if (opts.migrate ?? true) migrateSqlite(db, this.now);
  }

  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      if (this.statements.size > 256) this.statements.clear();
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private get(sql: string, ...params: unknown[]): DbRow | undefined {
    return this.stmt(sql).get(...params) as DbRow | undefined;
  }

  private all(sql: string, ...params: unknown[]): DbRow[] {
    return this.stmt(sql).all(...params) as DbRow[];
  }

  private run(sql: string, ...params: unknown[]): number {
    return this.stmt(sql).run(...params).changes;
  }

  /** A write transaction that takes the write lock up front (no deferred-upgrade SQLITE_BUSY). */
  private tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  async ping(): Promise<void> {
    this.get('SELECT 1 AS ok');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.statements.clear();
    this.db.close();
  }

  // ── applies, operations, tasks ──────────────────────────────────────────

  async createApply(input: NewApply): Promise<CreatedApply> {
    return this.tx(() => this.insertApply(input));
  }

  /** Inside a transaction: the apply (live), its operations and tasks. */
  private insertApply(input: NewApply): CreatedApply {
    const applyId = randomUUID();
    const createdAt = this.now();
    const created: CreatedApply = { id: applyId, operations: [] };
    try {
      this.run(
        `INSERT INTO applies (id, repo, pr, environment, kind, actor, head_sha, desired_digest, plan_fingerprint,
           desired_json, state, version, stop_requested, check_run_id, comment_id, created_at, live)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, 0, ?, ?, ?, 1)`,
        applyId,
        input.repo,
        input.pr,
        input.environment,
        input.kind,
        input.actor,
        input.headSha,
        input.desiredDigest,
        input.planFingerprint,
        input.desiredJson,
        input.checkRunId ?? null,
        input.commentId ?? null,
        createdAt,
      );
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw new ApplyInFlightError(input.repo, input.environment);
      throw err;
    }
    input.operations.forEach((op, ordinal) => {
      const opId = randomUUID();
      this.run(
        `INSERT INTO apply_operations (id, apply_id, target, ordinal, state, version) VALUES (?, ?, ?, ?, 'pending', 0)`,
        opId,
        applyId,
        op.target,
        ordinal,
      );
      const tasks = op.tasks.map((t) => ({ id: randomUUID(), t }));
      for (const batch of chunks(tasks, BATCH)) {
        const params: unknown[] = [];
        for (const { id, t } of batch) {
          params.push(id, opId, applyId, t.nodeId, t.kind, t.resource, t.reason, JSON.stringify(t.deps), t.nodeJson);
        }
        this.run(
          `INSERT INTO tasks (id, operation_id, apply_id, node_id, kind, resource, reason, deps, node_json, state, version)
           VALUES ${batch.map(() => `(?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0)`).join(', ')}`,
          ...params,
        );
      }
      created.operations.push({ id: opId, target: op.target, tasks: tasks.map(({ id, t }) => ({ id, nodeId: t.nodeId })) });
    });
    return created;
  }

  async startApply(input: NewApply, opts: StartApplyOptions): Promise<StartApplyResult> {
    // BEGIN IMMEDIATE: the whole decision runs under the database's write lock, across processes.
    return refusedAsResult(() => this.tx((): StartApplyResult => {
      const now = this.now();
      this.run(
        `INSERT INTO locks (repo, environment, owner, pr, apply_id, created_at) VALUES (?, ?, ?, ?, NULL, ?)
         ON CONFLICT (repo, environment) DO NOTHING`,
        input.repo,
        input.environment,
        opts.lock.owner,
        opts.lock.pr,
        now,
      );
      const lock = toLock(this.get('SELECT * FROM locks WHERE repo = ? AND environment = ?', input.repo, input.environment)!);
      if (lock.owner !== opts.lock.owner) return { started: false, reason: 'locked', holder: lock };
      const live = this.get('SELECT id FROM applies WHERE repo = ? AND environment = ? AND live IS NOT NULL', input.repo, input.environment);
      if (live) throw new Refused({ started: false, reason: 'in_flight', applyId: String(live.id) });
      const apply = this.insertApply(input);
      this.run('UPDATE locks SET apply_id = ? WHERE repo = ? AND environment = ?', apply.id, input.repo, input.environment);
      const fence: Fence = { lease: `apply:${apply.id}`, holder: opts.lease.holder, token: randomUUID() };
      this.run(
        `INSERT INTO leases (name, holder, expires_at, token) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, token = excluded.token`,
        fence.lease,
        fence.holder,
        now + opts.lease.ttlMs,
        fence.token,
      );
      return { started: true, apply, lock: { ...lock, applyId: apply.id }, fence };
    }));
  }

  async claimReport(applyId: string): Promise<boolean> {
    return (
      this.run(
        `UPDATE applies SET reported_at = ? WHERE id = ? AND reported_at IS NULL AND live IS NULL AND state NOT IN (${IN_FLIGHT_SQL})`,
        this.now(),
        applyId,
      ) === 1
    );
  }

  async getApply(id: string): Promise<ApplyRow | undefined> {
    const r = this.get('SELECT * FROM applies WHERE id = ?', id);
    return r && toApply(r);
  }

  async listOperations(applyId: string): Promise<OperationRow[]> {
    return this.all('SELECT * FROM apply_operations WHERE apply_id = ? ORDER BY ordinal', applyId).map(toOperation);
  }

  async getOperation(id: string): Promise<OperationRow | undefined> {
    const r = this.get('SELECT * FROM apply_operations WHERE id = ?', id);
    return r && toOperation(r);
  }

  async listTasks(operationId: string): Promise<TaskRow[]> {
    return this.all('SELECT * FROM tasks WHERE operation_id = ? ORDER BY node_id', operationId).map(toTask);
  }

  async listTasksForApply(applyId: string): Promise<TaskRow[]> {
    return this.all(
      `SELECT t.* FROM tasks t JOIN apply_operations o ON o.id = t.operation_id
       WHERE t.apply_id = ? ORDER BY o.ordinal, t.node_id`,
      applyId,
    ).map(toTask);
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    const r = this.get('SELECT * FROM tasks WHERE id = ?', id);
    return r && toTask(r);
  }

  async updateTask(id: string, expectedState: TaskState | readonly TaskState[], patch: TaskPatch, fence?: Fence): Promise<boolean> {
    return (await this.updateTasks([{ id, expected: expectedState, patch }], fence))[0]!;
  }

  /** True when the fence's lease is still held with its token (inside the write transaction). */
  private fenceHolds(fence: Fence | undefined): boolean {
    return !fence || this.get('SELECT 1 AS ok FROM leases WHERE name = ? AND holder = ? AND token = ?', fence.lease, fence.holder, fence.token) !== undefined;
  }

  async updateTasks(updates: readonly TaskUpdate[], fence?: Fence): Promise<boolean[]> {
    if (!updates.length) return [];
    return this.tx(() => {
      if (!this.fenceHolds(fence)) return updates.map(() => false);
      return updates.map(({ id, expected: expectedState, patch }) => {
        const expected = unique(typeof expectedState === 'string' ? [expectedState] : [...expectedState]);
        if (expected.length === 0) return false;
        const { sets, params } = taskPatchSet(patch);
        return this.run(`UPDATE tasks SET ${sets.join(', ')} WHERE id = ? AND state IN (${placeholders(expected.length)})`, ...params, id, ...expected) === 1;
      });
    });
  }

  async cancelPendingTasks(applyId: string, finishedAt?: number): Promise<number> {
    return this.run(
      `UPDATE tasks SET state = 'cancelled', version = version + 1, finished_at = ? WHERE apply_id = ? AND state = 'pending'`,
      finishedAt ?? this.now(),
      applyId,
    );
  }

  async casApplyState(id: string, expectedVersion: number, patch: AggregatePatch): Promise<boolean> {
    const { sets, params } = applyPatchSet(patch);
    return this.run(`UPDATE applies SET ${sets.join(', ')} WHERE id = ? AND version = ?`, ...params, id, expectedVersion) === 1;
  }

  async casOperationState(id: string, expectedVersion: number, patch: AggregatePatch): Promise<boolean> {
    const { sets, params } = aggregatePatchSet(patch);
    return (
      this.run(`UPDATE apply_operations SET ${sets.join(', ')} WHERE id = ? AND version = ?`, ...params, id, expectedVersion) === 1
    );
  }

  async requestStop(applyId: string): Promise<boolean> {
    return this.tx(() => {
      const marked = this.run(
        `UPDATE applies SET stop_requested = 1, version = version + 1
         WHERE id = ? AND stop_requested = 0 AND state IN (${IN_FLIGHT_SQL})`,
        applyId,
      );
      if (marked === 1) return true;
      const r = this.get(
        `SELECT 1 AS yes FROM applies WHERE id = ? AND stop_requested = 1 AND state IN (${IN_FLIGHT_SQL})`,
        applyId,
      );
      return r !== undefined;
    });
  }

  async setApplyCheckRun(id: string, checkRunId: number | null): Promise<void> {
    this.run('UPDATE applies SET check_run_id = ? WHERE id = ?', checkRunId, id);
  }

  async setApplyComment(id: string, commentId: number | null): Promise<void> {
    this.run('UPDATE applies SET comment_id = ? WHERE id = ?', commentId, id);
  }

  async latestApply(repo: string, environment: string, opts: LatestApplyOptions = {}): Promise<ApplyRow | undefined> {
    const where = ['repo = ?', 'environment = ?'];
    const params: unknown[] = [repo, environment];
    if (opts.desiredDigest !== undefined) {
      where.push('desired_digest = ?');
      params.push(opts.desiredDigest);
    }
    if (opts.state !== undefined) {
      where.push('state = ?');
      params.push(opts.state);
    }
    const r = this.get(`SELECT * FROM applies WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT 1`, ...params);
    return r && toApply(r);
  }

  async listApplies(filter: ListAppliesFilter = {}): Promise<ApplyRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.states !== undefined) {
      const states = unique(filter.states);
      if (states.length === 0) return [];
      where.push(`state IN (${placeholders(states.length)})`);
      params.push(...states);
    }
    if (filter.repo !== undefined) {
      where.push('repo = ?');
      params.push(filter.repo);
    }
    if (filter.pr !== undefined) {
      where.push('pr = ?');
      params.push(filter.pr);
    }
    if (filter.environment !== undefined) {
      where.push('environment = ?');
      params.push(filter.environment);
    }
    let sql = `SELECT * FROM applies${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC`;
    if (filter.limit !== undefined) {
      sql += ' LIMIT ?';
      params.push(Math.max(0, Math.floor(filter.limit)));
    }
    return this.all(sql, ...params).map(toApply);
  }

  async applyOf(repo: string, pr: number, environment: string): Promise<ApplyRow | undefined> {
    const r = this.get(
      `SELECT * FROM applies WHERE repo = ? AND pr = ? AND environment = ? AND state IN (${IN_FLIGHT_SQL})
       ORDER BY seq DESC LIMIT 1`,
      repo,
      pr,
      environment,
    );
    return r && toApply(r);
  }

  async knownApplyIds(ids: readonly string[]): Promise<Set<string>> {
    const known = new Set<string>();
    for (const batch of chunks(unique(ids), BATCH)) {
      for (const r of this.all(`SELECT id FROM applies WHERE id IN (${placeholders(batch.length)})`, ...batch)) {
        known.add(String(r.id));
      }
    }
    return known;
  }

  // ── locks ───────────────────────────────────────────────────────────────

  async acquireLock(repo: string, environment: string, owner: string, pr: number): Promise<AcquireLockResult> {
    return this.tx(() => {
      this.run(
        `INSERT INTO locks (repo, environment, owner, pr, apply_id, created_at) VALUES (?, ?, ?, ?, NULL, ?)
         ON CONFLICT (repo, environment) DO NOTHING`,
        repo,
        environment,
        owner,
        pr,
        this.now(),
      );
      const lock = toLock(this.get('SELECT * FROM locks WHERE repo = ? AND environment = ?', repo, environment)!);
      return lock.owner === owner ? { acquired: true, lock } : { acquired: false, holder: lock };
    });
  }

  async releaseLock(repo: string, environment: string, owner?: string): Promise<boolean> {
    // One statement under the write lock: a lock whose apply is still live stays.
    return (
      this.run(
        `DELETE FROM locks WHERE repo = ? AND environment = ? AND (? IS NULL OR owner = ?)
           AND NOT EXISTS (SELECT 1 FROM applies a WHERE a.id = locks.apply_id AND a.live IS NOT NULL)`,
        repo,
        environment,
        owner ?? null,
        owner ?? null,
      ) > 0
    );
  }

  async getLock(repo: string, environment: string): Promise<LockRow | undefined> {
    const r = this.get('SELECT * FROM locks WHERE repo = ? AND environment = ?', repo, environment);
    return r && toLock(r);
  }

  async listLocks(repo?: string): Promise<LockRow[]> {
    const rows =
      repo === undefined
        ? this.all('SELECT * FROM locks ORDER BY repo, environment')
        : this.all('SELECT * FROM locks WHERE repo = ? ORDER BY environment', repo);
    return rows.map(toLock);
  }

  async locksForPr(repo: string, pr: number): Promise<LockRow[]> {
    return this.all('SELECT * FROM locks WHERE repo = ? AND pr = ? ORDER BY environment', repo, pr).map(toLock);
  }

  async setLockApply(repo: string, environment: string, applyId: string | null): Promise<boolean> {
    return this.run('UPDATE locks SET apply_id = ? WHERE repo = ? AND environment = ?', applyId, repo, environment) > 0;
  }

  // ── plans ───────────────────────────────────────────────────────────────

  async savePlan(plan: PlanInput): Promise<PlanRow> {
    const row: PlanRow = { ...plan, id: randomUUID(), createdAt: this.now() };
    this.run(
      `INSERT INTO plans (id, repo, pr, environment, head_sha, fingerprint, desired_digest, observed_digest, plan_json, rendered, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      row.id,
      row.repo,
      row.pr,
      row.environment,
      row.headSha,
      row.fingerprint,
      row.desiredDigest,
      row.observedDigest,
      row.planJson,
      row.rendered,
      row.createdAt,
    );
    return row;
  }

  async getPlan(id: string): Promise<PlanRow | undefined> {
    const r = this.get('SELECT * FROM plans WHERE id = ?', id);
    return r && toPlan(r);
  }

  async latestPlan(repo: string, pr: number | null, environment: string): Promise<PlanRow | undefined> {
    const r =
      pr === null
        ? this.get('SELECT * FROM plans WHERE repo = ? AND pr IS NULL AND environment = ? ORDER BY seq DESC LIMIT 1', repo, environment)
        : this.get('SELECT * FROM plans WHERE repo = ? AND pr = ? AND environment = ? ORDER BY seq DESC LIMIT 1', repo, pr, environment);
    return r && toPlan(r);
  }

  // ── webhook deliveries ──────────────────────────────────────────────────

  async recordDelivery(deliveryId: string, event: string): Promise<boolean> {
    return (
      this.run(
        'INSERT INTO deliveries (delivery_id, event, received_at) VALUES (?, ?, ?) ON CONFLICT (delivery_id) DO NOTHING',
        deliveryId,
        event,
        this.now(),
      ) === 1
    );
  }

  async claimDelivery(deliveryId: string, event: string, payload: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    return (
      this.run(
        `INSERT INTO deliveries (delivery_id, event, received_at, payload, state, claimed_by, claimed_until) VALUES (?, ?, ?, ?, 'received', ?, ?)
         ON CONFLICT (delivery_id) DO UPDATE SET claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until,
           payload = COALESCE(deliveries.payload, excluded.payload)
         WHERE deliveries.state = 'received' AND (deliveries.claimed_until IS NULL OR deliveries.claimed_until <= ?)`,
        deliveryId,
        event,
        now,
        payload,
        holder,
        now + ttlMs,
        now,
      ) === 1
    );
  }

  async finishDelivery(deliveryId: string): Promise<void> {
    this.run(`UPDATE deliveries SET state = 'done', claimed_by = NULL, claimed_until = NULL, payload = NULL WHERE delivery_id = ?`, deliveryId);
  }

  async renewDeliveries(holder: string, ttlMs: number): Promise<number> {
    return this.run(`UPDATE deliveries SET claimed_until = ? WHERE claimed_by = ? AND state = 'received'`, this.now() + ttlMs, holder);
  }

  async releaseDeliveries(holder: string): Promise<number> {
    return this.run(`UPDATE deliveries SET claimed_until = 0 WHERE claimed_by = ? AND state = 'received'`, holder);
  }

  async pendingDeliveries(limit = 100): Promise<PendingDelivery[]> {
    return this.all(
      `SELECT * FROM deliveries WHERE state = 'received' AND payload IS NOT NULL AND (claimed_until IS NULL OR claimed_until <= ?)
       ORDER BY received_at, delivery_id LIMIT ?`,
      this.now(),
      Math.max(0, Math.floor(limit)),
    ).map(toPendingDelivery);
  }

  async pruneDeliveries(receivedBefore: number): Promise<number> {
    return this.run('DELETE FROM deliveries WHERE received_at < ?', receivedBefore);
  }

  // ── PR comments ─────────────────────────────────────────────────────────

  async getPrComments(repo: string, pr: number): Promise<number[]> {
    const r = this.get('SELECT comment_ids FROM comments WHERE repo = ? AND pr = ?', repo, pr);
    return r ? toCommentIds(r.comment_ids) : [];
  }

  async setPrComments(repo: string, pr: number, commentIds: number[]): Promise<void> {
    this.run(
      `INSERT INTO comments (repo, pr, comment_ids, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (repo, pr) DO UPDATE SET comment_ids = excluded.comment_ids, updated_at = excluded.updated_at`,
      repo,
      pr,
      JSON.stringify(commentIds),
      this.now(),
    );
  }

  async prCommentsWrittenAt(repo: string, pr: number): Promise<number | undefined> {
    const r = this.get('SELECT updated_at FROM comments WHERE repo = ? AND pr = ?', repo, pr);
    return r ? Number(r.updated_at) : undefined;
  }

  // ── PR heads ────────────────────────────────────────────────────────────

  async recordHead(repo: string, pr: number, headSha: string): Promise<number> {
    this.run('INSERT INTO pr_heads (repo, pr, head_sha, seen_at) VALUES (?, ?, ?, ?) ON CONFLICT (repo, pr, head_sha) DO NOTHING', repo, pr, headSha, this.now());
    return Number(this.get('SELECT seen_at FROM pr_heads WHERE repo = ? AND pr = ? AND head_sha = ?', repo, pr, headSha)!.seen_at);
  }

  async listHeads(repo: string, pr: number): Promise<{ headSha: string; seenAt: number }[]> {
    return this.all('SELECT head_sha, seen_at FROM pr_heads WHERE repo = ? AND pr = ? ORDER BY seen_at, head_sha', repo, pr).map((r) => ({ headSha: String(r.head_sha), seenAt: Number(r.seen_at) }));
  }

  // ── leases ──────────────────────────────────────────────────────────────

  async acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return (await this.claimLease(name, holder, ttlMs)) !== null;
  }

  async claimLease(name: string, holder: string, ttlMs: number): Promise<string | null> {
    const now = this.now();
    // The token survives only a renewal of a live lease by its holder; any other taking starts a new tenure.
    const r = this.get(
      `INSERT INTO leases (name, holder, expires_at, token) VALUES (?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET
         token = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > ? AND leases.token IS NOT NULL THEN leases.token ELSE excluded.token END,
         holder = excluded.holder, expires_at = excluded.expires_at
       WHERE leases.holder = excluded.holder OR leases.expires_at <= ?
       RETURNING token`,
      name,
      holder,
      now + ttlMs,
      randomUUID(),
      now,
      now,
    );
    return r ? String(r.token) : null;
  }

  async releaseLease(name: string, holder: string): Promise<boolean> {
    return this.run('DELETE FROM leases WHERE name = ? AND holder = ?', name, holder) > 0;
  }

  async getLease(name: string): Promise<{ name: string; holder: string; expiresAt: number } | undefined> {
    const r = this.get('SELECT * FROM leases WHERE name = ?', name);
    return r && toLease(r);
  }

  // ── project ownership ───────────────────────────────────────────────────

  async projectOwner(target: string, project: string): Promise<string | undefined> {
    return this.get('SELECT repo FROM project_owners WHERE target = ? AND project = ?', target, project)?.repo as string | undefined;
  }

  async claimProject(target: string, project: string, repo: string): Promise<string> {
    // The primary key decides: the first claim inserts, every later one is ignored and reads the owner.
    this.run('INSERT INTO project_owners (target, project, repo, claimed_at) VALUES (?, ?, ?, ?) ON CONFLICT (target, project) DO NOTHING', target, project, repo, this.now());
    return (await this.projectOwner(target, project))!;
  }

  // ── containers ──────────────────────────────────────────────────────────

  async listContainers(target: string): Promise<ContainerRow[]> {
    return this.all(
      'SELECT * FROM containers WHERE target = ? ORDER BY project, environment, service, replica, container_id',
      target,
    ).map(toContainer);
  }

  async upsertContainers(target: string, rows: readonly ContainerUpsert[]): Promise<void> {
    if (rows.length === 0) return;
    const now = this.now();
    this.tx(() => {
      for (const batch of chunks(rows, BATCH)) {
        const params: unknown[] = [];
        for (const c of batch) {
          params.push(
            target,
            c.containerId,
            c.project,
            c.environment,
            c.service,
            c.replica,
            c.name,
            c.state,
            c.configHash,
            c.applyId ?? null,
            c.seenAt ?? now,
            now,
          );
        }
        this.run(
          `INSERT INTO containers (target, container_id, project, environment, service, replica, name, state,
             config_hash, apply_id, seen_at, updated_at)
           VALUES ${batch.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}
           ON CONFLICT (target, container_id) DO UPDATE SET
             project = excluded.project,
             environment = excluded.environment,
             service = excluded.service,
             replica = excluded.replica,
             name = excluded.name,
             state = excluded.state,
             config_hash = excluded.config_hash,
             apply_id = COALESCE(excluded.apply_id, containers.apply_id),
             seen_at = excluded.seen_at,
             updated_at = CASE
               WHEN containers.state IS NOT excluded.state
                 OR containers.name IS NOT excluded.name
                 OR containers.config_hash IS NOT excluded.config_hash
                 OR (excluded.apply_id IS NOT NULL AND containers.apply_id IS NOT excluded.apply_id)
               THEN excluded.updated_at ELSE containers.updated_at END`,
          ...params,
        );
      }
    });
  }

  async markContainersMissing(target: string, containerIds: readonly string[]): Promise<number> {
    const ids = unique(containerIds);
    if (ids.length === 0) return 0;
    const now = this.now();
    return this.tx(() => {
      let n = 0;
      for (const batch of chunks(ids, BATCH)) {
        n += this.run(
          `UPDATE containers SET state = 'missing', updated_at = ?
           WHERE target = ? AND state <> 'missing' AND container_id IN (${placeholders(batch.length)})`,
          now,
          target,
          ...batch,
        );
      }
      return n;
    });
  }

  async deleteContainers(target: string, containerIds: readonly string[]): Promise<number> {
    const ids = unique(containerIds);
    if (ids.length === 0) return 0;
    return this.tx(() => {
      let n = 0;
      for (const batch of chunks(ids, BATCH)) {
        n += this.run(`DELETE FROM containers WHERE target = ? AND container_id IN (${placeholders(batch.length)})`, target, ...batch);
      }
      return n;
    });
  }

  // deployments (issue 14)

  async saveDeployment(row: NewDeployment): Promise<void> {
    this.run(
      'INSERT INTO deployments (apply_id, repo, environment, spec, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (apply_id) DO NOTHING',
      row.applyId,
      row.repo,
      row.environment,
      row.spec,
      this.now(),
    );
  }

  async setDeployment(applyId: string, patch: { deploymentId?: number; state?: string }): Promise<void> {
    this.run(
      'UPDATE deployments SET deployment_id = COALESCE(?, deployment_id), state = COALESCE(?, state) WHERE apply_id = ?',
      patch.deploymentId ?? null,
      patch.state ?? null,
      applyId,
    );
  }

  async getDeployment(applyId: string): Promise<DeploymentRow | undefined> {
    const r = this.get('SELECT * FROM deployments WHERE apply_id = ?', applyId);
    return r ? toDeployment(r) : undefined;
  }

  async listDeployments(repo: string, environment: string, state?: string): Promise<DeploymentRow[]> {
    return this.all(
      'SELECT * FROM deployments WHERE repo = ? AND environment = ? AND (? IS NULL OR state = ?) ORDER BY created_at DESC, apply_id DESC',
      repo,
      environment,
      state ?? null,
      state ?? null,
    ).map(toDeployment);
  }

  // secrets (issue 18) ─ rows only; encryption is src/secrets/keyring.ts
  async putSecret(r: SecretRow, ifCiphertext?: string): Promise<boolean> {
    const v = [r.keyId, r.nonce, r.ciphertext, r.valueHash, r.setBy, r.setAt];
    if (ifCiphertext !== undefined)
      return this.run('UPDATE secrets SET key_id = ?, nonce = ?, ciphertext = ?, value_hash = ?, set_by = ?, set_at = ? WHERE repo = ? AND environment = ? AND name = ? AND ciphertext = ?', ...v, r.repo, r.environment, r.name, ifCiphertext) === 1;
    this.run(
      `INSERT INTO secrets (key_id, nonce, ciphertext, value_hash, set_by, set_at, repo, environment, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (repo, environment, name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, value_hash = excluded.value_hash, set_by = excluded.set_by, set_at = excluded.set_at`,
      ...v, r.repo, r.environment, r.name,
    );
    return true;
  }

  async getSecrets(repo: string, environment: string, names: readonly string[]): Promise<SecretRow[]> {
    const list = unique(names);
    if (!list.length) return [];
    return this.all(`SELECT * FROM secrets WHERE repo = ? AND environment = ? AND name IN (${placeholders(list.length)})`, repo, environment, ...list).map(toSecret);
  }

  async listSecrets(repo?: string, environment?: string): Promise<SecretInfo[]> {
    const rows = this.all(`SELECT ${SECRET_INFO_COLUMNS}, '' AS nonce, '' AS ciphertext FROM secrets WHERE (? IS NULL OR repo = ?) AND (? IS NULL OR environment = ?) ORDER BY repo, environment, name`, repo ?? null, repo ?? null, environment ?? null, environment ?? null);
    return rows.map((r) => { const { nonce: _n, ciphertext: _c, ...info } = toSecret(r); return info; });
  }

  async deleteSecret(repo: string, environment: string, name: string): Promise<boolean> {
    return this.run('DELETE FROM secrets WHERE repo = ? AND environment = ? AND name = ?', repo, environment, name) === 1;
  }

  async allSecrets(): Promise<SecretRow[]> {
    return this.all('SELECT * FROM secrets ORDER BY repo, environment, name').map(toSecret);
  }
}

const toSecret = (r: Record<string, unknown>): SecretRow => ({
  repo: String(r.repo),
  environment: String(r.environment),
  name: String(r.name),
  keyId: String(r.key_id),
  nonce: String(r.nonce),
  ciphertext: String(r.ciphertext),
  valueHash: String(r.value_hash),
  setBy: String(r.set_by),
  setAt: Number(r.set_at),
});
const SECRET_INFO_COLUMNS = 'repo, environment, name, key_id, value_hash, set_by, set_at';
