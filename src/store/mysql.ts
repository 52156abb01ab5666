// The shared Store backend: MySQL 8 / MariaDB 10.6+ through a mysql2/promise
// pool, for several berth replicas on one database. Every method is atomic
// across replicas: compare-and-set is one UPDATE … WHERE version = ? checked
// by affectedRows; "insert if absent" is a plain INSERT whose duplicate-key
// error (ER_DUP_ENTRY) means someone else got there first; multi-statement
// writes run in one transaction (retried on deadlock).
//
// The pool keeps mysql2's default FOUND_ROWS flag, so affectedRows counts the
// rows an UPDATE *matched* even when it wrote the same values; every method
// whose answer depends on "changed" says so in its WHERE clause instead.
import { randomUUID } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { Pool, PoolConnection, PoolOptions, ResultSetHeader } from 'mysql2/promise';
import { migrateMysql } from './migrations.js';
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
  str,
  strOrNull,
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

export interface MysqlStoreOptions extends OpenStoreOptions {
  /** Pool size when the URL does not say (default 10). */
  connectionLimit?: number;
}

const BATCH = 500;
const IN_FLIGHT_SQL = IN_FLIGHT_AGGREGATE_STATES.map((s) => `'${s}'`).join(', ');
const ER_DUP_ENTRY = 1062;
const ER_LOCK_DEADLOCK = 1213;

type Queryable = Pool | PoolConnection;

function errno(err: unknown): number | undefined {
  const n = (err as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' ? n : undefined;
}

/** Query parameters a `mysql://` URL may carry. */
const URL_PARAMS = ['connectionLimit', 'connectTimeout', 'ssl', 'socketPath'] as const;

/**
 * `mysql://user:pass@host:port/database?connectionLimit=10&ssl=true` (also
 * `mariadb://`) → mysql2 pool options. User and password are percent-decoded.
 */
export function mysqlConfigFromUrl(url: string): { database: string; pool: PoolOptions } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error('invalid MySQL URL: expected mysql://user:password@host:port/database');
  }
  if (u.protocol !== 'mysql:' && u.protocol !== 'mariadb:') {
    throw new Error(`not a MySQL URL (scheme ${u.protocol}): expected mysql://user:password@host:port/database`);
  }
  const database = decodeURIComponent(u.pathname.replace(/^\/+/, ''));
  if (!database || database.includes('/')) {
    throw new Error('the MySQL URL names no database: expected mysql://user:password@host:port/database');
  }
  const pool: PoolOptions = {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost',
    port: u.port ? Number(u.port) : 3306,
    user: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    database,
  };
  for (const [key, value] of u.searchParams) {
    switch (key as (typeof URL_PARAMS)[number]) {
      case 'connectionLimit':
      case 'connectTimeout': {
        const n = Number(value);
        if (!Number.isInteger(n) || n <= 0) throw new Error(`MySQL URL parameter ${key} must be a positive integer, got "${value}"`);
        pool[key as 'connectionLimit' | 'connectTimeout'] = n;
        break;
      }
      case 'ssl':
        if (value === 'true' || value === '1') pool.ssl = {};
        else if (value === 'false' || value === '0') pool.ssl = undefined;
        else throw new Error(`MySQL URL parameter ssl must be true or false, got "${value}"`);
        break;
      case 'socketPath':
        pool.socketPath = value;
        break;
      default:
        throw new Error(`unknown MySQL URL parameter "${key}" (accepted: ${URL_PARAMS.join(', ')})`);
    }
  }
  return { database, pool };
}

export class MysqlStore implements Store {
  readonly dialect = 'mysql' as const;
  private readonly pool: Pool;
  private readonly now: () => number;
  private closed = false;

  /** Opens a pool on `url` (see mysqlConfigFromUrl) and runs pending migrations. */
  static async open(url: string, opts: MysqlStoreOptions = {}): Promise<MysqlStore> {
    const { database, pool: config } = mysqlConfigFromUrl(url);
    const pool = mysql.createPool({
      connectionLimit: opts.connectionLimit ?? 10,
      ...config,
      waitForConnections: true,
      charset: 'UTF8MB4_UNICODE_CI',
      // BIGINT columns (timestamps, GitHub ids) as numbers; a value beyond
      // 2^53 would arrive as a string, which the row mappers convert.
      supportBigNumbers: true,
      bigNumberStrings: false,
      flags: ['FOUND_ROWS'],
    });
    const store = new MysqlStore(pool, opts);
    try {
      if (opts.migrate ?? true) await migrateMysql(pool, database, store.now);
      else await store.ping();
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
    return store;
  }

  private constructor(pool: Pool, opts: MysqlStoreOptions) {
    this.pool = pool;
    this.now = opts.now ?? Date.now;
  }

  private async all(sql: string, params: unknown[] = [], q: Queryable = this.pool): Promise<DbRow[]> {
    const [rows] = await q.query(sql, params);
    return rows as DbRow[];
  }

  private async one(sql: string, params: unknown[] = [], q: Queryable = this.pool): Promise<DbRow | undefined> {
    return (await this.all(sql, params, q))[0];
  }

  /** Runs a write; returns affectedRows. */
  private async exec(sql: string, params: unknown[] = [], q: Queryable = this.pool): Promise<number> {
    const [res] = await q.query<ResultSetHeader>(sql, params);
    return res.affectedRows;
  }

  /** One transaction on one pooled connection; retried (from the start) when InnoDB picks it as a deadlock victim. */
  private async tx<T>(fn: (conn: PoolConnection) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const conn = await this.pool.getConnection();
      try {
        await conn.beginTransaction();
        const result = await fn(conn);
        await conn.commit();
        return result;
      } catch (err) {
        await conn.rollback().catch(() => undefined);
        if (errno(err) === ER_LOCK_DEADLOCK && attempt < 5) continue;
        throw err;
      } finally {
        conn.release();
      }
    }
  }

  async ping(): Promise<void> {
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  // ── applies, operations, tasks ──────────────────────────────────────────

  async createApply(input: NewApply): Promise<CreatedApply> {
    return this.tx((conn) => this.insertApply(input, conn));
  }

  async startApply(input: NewApply, opts: StartApplyOptions): Promise<StartApplyResult> {
    return refusedAsResult(() =>
      this.tx(async (conn): Promise<StartApplyResult> => {
        const now = this.now();
        // Insert-if-absent that locks the row either way (an exclusive lock, so two
        // starters queue here instead of deadlocking on a shared-to-exclusive upgrade).
        await this.exec(
          `INSERT INTO locks (repo, environment, owner, pr, apply_id, created_at) VALUES (?, ?, ?, ?, NULL, ?)
           ON DUPLICATE KEY UPDATE repo = repo`,
          [input.repo, input.environment, opts.lock.owner, opts.lock.pr, now],
          conn,
        );
        const lock = toLock((await this.one('SELECT * FROM locks WHERE repo = ? AND environment = ? FOR UPDATE', [input.repo, input.environment], conn))!);
        if (lock.owner !== opts.lock.owner) return { started: false, reason: 'locked', holder: lock };
        const live = await this.one('SELECT id FROM applies WHERE repo = ? AND environment = ? AND live IS NOT NULL FOR UPDATE', [input.repo, input.environment], conn);
        if (live) throw new Refused({ started: false, reason: 'in_flight', applyId: String(live.id) });
        const apply = await this.insertApply(input, conn);
        await this.exec('UPDATE locks SET apply_id = ? WHERE repo = ? AND environment = ?', [apply.id, input.repo, input.environment], conn);
        const fence: Fence = { lease: `apply:${apply.id}`, holder: opts.lease.holder, token: randomUUID() };
        await this.exec(
          `INSERT INTO leases (name, holder, expires_at, token) VALUES (?, ?, ?, ?)
           ON DUPLICATE KEY UPDATE holder = VALUES(holder), expires_at = VALUES(expires_at), token = VALUES(token)`,
          [fence.lease, fence.holder, now + opts.lease.ttlMs, fence.token],
          conn,
        );
        return { started: true, apply, lock: { ...lock, applyId: apply.id }, fence };
      }),
    );
  }

  async claimReport(applyId: string): Promise<boolean> {
    return (
      (await this.exec(`UPDATE applies SET reported_at = ? WHERE id = ? AND reported_at IS NULL AND live IS NULL AND state NOT IN (${IN_FLIGHT_SQL})`, [
        this.now(),
        applyId,
      ])) === 1
    );
  }

  /** Inside a transaction: the apply (live), its operations and tasks. */
  private async insertApply(input: NewApply, conn: PoolConnection): Promise<CreatedApply> {
    const applyId = randomUUID();
    const createdAt = this.now();
    const created: CreatedApply = {
      id: applyId,
      operations: input.operations.map((op) => ({
        id: randomUUID(),
        target: op.target,
        tasks: op.tasks.map((t) => ({ id: randomUUID(), nodeId: t.nodeId })),
      })),
    };
    {
      await this.exec(
        `INSERT INTO applies (id, repo, pr, environment, kind, actor, head_sha, desired_digest, plan_fingerprint,
           desired_json, state, version, stop_requested, check_run_id, comment_id, created_at, live)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, 0, ?, ?, ?, 1)`,
        [
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
        ],
        conn,
      ).catch((err) => {
        if (errno(err) === ER_DUP_ENTRY) throw new ApplyInFlightError(input.repo, input.environment);
        throw err;
      });
      if (created.operations.length === 0) return created;
      for (const batch of chunks(
        created.operations.map((op, ordinal) => ({ op, ordinal })),
        BATCH,
      )) {
        await this.exec(
          `INSERT INTO apply_operations (id, apply_id, target, ordinal, state, version)
           VALUES ${batch.map(() => `(?, ?, ?, ?, 'pending', 0)`).join(', ')}`,
          batch.flatMap(({ op, ordinal }) => [op.id, applyId, op.target, ordinal]),
          conn,
        );
      }
      const tasks = input.operations.flatMap((op, i) =>
        op.tasks.map((t, j) => ({ t, id: created.operations[i]!.tasks[j]!.id, opId: created.operations[i]!.id })),
      );
      for (const batch of chunks(tasks, BATCH)) {
        await this.exec(
          `INSERT INTO tasks (id, operation_id, apply_id, node_id, kind, resource, reason, deps, node_json, state, version)
           VALUES ${batch.map(() => `(?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0)`).join(', ')}`,
          batch.flatMap(({ t, id, opId }) => [
            id,
            opId,
            applyId,
            t.nodeId,
            t.kind,
            t.resource,
            t.reason,
            JSON.stringify(t.deps),
            t.nodeJson,
          ]),
          conn,
        );
      }
    }
    return created;
  }

  async getApply(id: string): Promise<ApplyRow | undefined> {
    const r = await this.one('SELECT * FROM applies WHERE id = ?', [id]);
    return r && toApply(r);
  }

  async listOperations(applyId: string): Promise<OperationRow[]> {
    return (await this.all('SELECT * FROM apply_operations WHERE apply_id = ? ORDER BY ordinal', [applyId])).map(toOperation);
  }

  async getOperation(id: string): Promise<OperationRow | undefined> {
    const r = await this.one('SELECT * FROM apply_operations WHERE id = ?', [id]);
    return r && toOperation(r);
  }

  async listTasks(operationId: string): Promise<TaskRow[]> {
    return (await this.all('SELECT * FROM tasks WHERE operation_id = ? ORDER BY node_id', [operationId])).map(toTask);
  }

  async listTasksForApply(applyId: string): Promise<TaskRow[]> {
    return (
      await this.all(
        `SELECT t.* FROM tasks t JOIN apply_operations o ON o.id = t.operation_id
         WHERE t.apply_id = ? ORDER BY o.ordinal, t.node_id`,
        [applyId],
      )
    ).map(toTask);
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    const r = await this.one('SELECT * FROM tasks WHERE id = ?', [id]);
    return r && toTask(r);
  }

  async updateTask(id: string, expectedState: TaskState | readonly TaskState[], patch: TaskPatch, fence?: Fence): Promise<boolean> {
    return (await this.updateTasks([{ id, expected: expectedState, patch }], fence))[0]!;
  }

  async updateTasks(updates: readonly TaskUpdate[], fence?: Fence): Promise<boolean[]> {
    if (!updates.length) return [];
    return this.tx(async (conn) => {
      // A shared lock on the lease row: a takeover (an UPDATE of that row) waits for this batch, or this batch sees it.
      if (fence && !(await this.one('SELECT 1 AS ok FROM leases WHERE name = ? AND holder = ? AND token = ? LOCK IN SHARE MODE', [fence.lease, fence.holder, fence.token], conn))) {
        return updates.map(() => false);
      }
      const out: boolean[] = [];
      for (const { id, expected: expectedState, patch } of updates) {
        const expected = unique(typeof expectedState === 'string' ? [expectedState] : [...expectedState]);
        if (expected.length === 0) {
          out.push(false);
          continue;
        }
        const { sets, params } = taskPatchSet(patch);
        // version = version + 1 makes every matched row a changed row.
        out.push((await this.exec(`UPDATE tasks SET ${sets.join(', ')} WHERE id = ? AND state IN (${placeholders(expected.length)})`, [...params, id, ...expected], conn)) === 1);
      }
      return out;
    });
  }

  async cancelPendingTasks(applyId: string, finishedAt?: number): Promise<number> {
    return this.exec(
      `UPDATE tasks SET state = 'cancelled', version = version + 1, finished_at = ? WHERE apply_id = ? AND state = 'pending'`,
      [finishedAt ?? this.now(), applyId],
    );
  }

  async casApplyState(id: string, expectedVersion: number, patch: AggregatePatch): Promise<boolean> {
    const { sets, params } = applyPatchSet(patch);
    return (await this.exec(`UPDATE applies SET ${sets.join(', ')} WHERE id = ? AND version = ?`, [...params, id, expectedVersion])) === 1;
  }

  async casOperationState(id: string, expectedVersion: number, patch: AggregatePatch): Promise<boolean> {
    const { sets, params } = aggregatePatchSet(patch);
    return (
      (await this.exec(`UPDATE apply_operations SET ${sets.join(', ')} WHERE id = ? AND version = ?`, [...params, id, expectedVersion])) ===
      1
    );
  }

  async requestStop(applyId: string): Promise<boolean> {
    const marked = await this.exec(
      `UPDATE applies SET stop_requested = 1, version = version + 1
       WHERE id = ? AND stop_requested = 0 AND state IN (${IN_FLIGHT_SQL})`,
      [applyId],
    );
    if (marked === 1) return true;
    const r = await this.one(`SELECT 1 AS yes FROM applies WHERE id = ? AND stop_requested = 1 AND state IN (${IN_FLIGHT_SQL})`, [
      applyId,
    ]);
    return r !== undefined;
  }

  async setApplyCheckRun(id: string, checkRunId: number | null): Promise<void> {
    await this.exec('UPDATE applies SET check_run_id = ? WHERE id = ?', [checkRunId, id]);
  }

  async setApplyComment(id: string, commentId: number | null): Promise<void> {
    await this.exec('UPDATE applies SET comment_id = ? WHERE id = ?', [commentId, id]);
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
    const r = await this.one(`SELECT * FROM applies WHERE ${where.join(' AND ')} ORDER BY seq DESC LIMIT 1`, params);
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
    return (await this.all(sql, params)).map(toApply);
  }

  async applyOf(repo: string, pr: number, environment: string): Promise<ApplyRow | undefined> {
    const r = await this.one(
      `SELECT * FROM applies WHERE repo = ? AND pr = ? AND environment = ? AND state IN (${IN_FLIGHT_SQL})
       ORDER BY seq DESC LIMIT 1`,
      [repo, pr, environment],
    );
    return r && toApply(r);
  }

  async knownApplyIds(ids: readonly string[]): Promise<Set<string>> {
    const known = new Set<string>();
    for (const batch of chunks(unique(ids), 1000)) {
      for (const r of await this.all(`SELECT id FROM applies WHERE id IN (${placeholders(batch.length)})`, batch)) {
        known.add(String(r.id));
      }
    }
    return known;
  }

  // ── locks ───────────────────────────────────────────────────────────────

  async acquireLock(repo: string, environment: string, owner: string, pr: number): Promise<AcquireLockResult> {
    // The primary key (repo, environment) decides: the INSERT that succeeds
    // holds the lock; a duplicate-key error means someone does, read who. A
    // release between the two statements makes the read come back empty: try again.
    for (let attempt = 0; attempt < 10; attempt++) {
      const createdAt = this.now();
      try {
        await this.exec('INSERT INTO locks (repo, environment, owner, pr, apply_id, created_at) VALUES (?, ?, ?, ?, NULL, ?)', [
          repo,
          environment,
          owner,
          pr,
          createdAt,
        ]);
        return { acquired: true, lock: { repo, environment, owner, pr, applyId: null, createdAt } };
      } catch (err) {
        if (errno(err) !== ER_DUP_ENTRY) throw err;
      }
      const r = await this.one('SELECT * FROM locks WHERE repo = ? AND environment = ?', [repo, environment]);
      if (!r) continue;
      const lock = toLock(r);
      return lock.owner === owner ? { acquired: true, lock } : { acquired: false, holder: lock };
    }
    throw new Error(`could not acquire or read the lock on ${repo} ${environment}: it changed hands 10 times in a row`);
  }

  async releaseLock(repo: string, environment: string, owner?: string): Promise<boolean> {
    // The lock row is locked first: an apply being started under it (startApply holds the same row) has committed or not begun.
    return this.tx(async (conn) => {
      const r = await this.one('SELECT * FROM locks WHERE repo = ? AND environment = ? FOR UPDATE', [repo, environment], conn);
      if (!r || (owner !== undefined && str(r.owner) !== owner)) return false;
      const applyId = strOrNull(r.apply_id);
      if (applyId && (await this.one('SELECT 1 AS yes FROM applies WHERE id = ? AND live IS NOT NULL FOR UPDATE', [applyId], conn))) return false;
      return (await this.exec('DELETE FROM locks WHERE repo = ? AND environment = ?', [repo, environment], conn)) > 0;
    });
  }

  async getLock(repo: string, environment: string): Promise<LockRow | undefined> {
    const r = await this.one('SELECT * FROM locks WHERE repo = ? AND environment = ?', [repo, environment]);
    return r && toLock(r);
  }

  async listLocks(repo?: string): Promise<LockRow[]> {
    const rows =
      repo === undefined
        ? await this.all('SELECT * FROM locks ORDER BY repo, environment')
        : await this.all('SELECT * FROM locks WHERE repo = ? ORDER BY environment', [repo]);
    return rows.map(toLock);
  }

  async locksForPr(repo: string, pr: number): Promise<LockRow[]> {
    return (await this.all('SELECT * FROM locks WHERE repo = ? AND pr = ? ORDER BY environment', [repo, pr])).map(toLock);
  }

  async setLockApply(repo: string, environment: string, applyId: string | null): Promise<boolean> {
    // FOUND_ROWS: a lock that already carries this apply id still counts.
    return (await this.exec('UPDATE locks SET apply_id = ? WHERE repo = ? AND environment = ?', [applyId, repo, environment])) > 0;
  }

  // ── plans ───────────────────────────────────────────────────────────────

  async savePlan(plan: PlanInput): Promise<PlanRow> {
    const row: PlanRow = { ...plan, id: randomUUID(), createdAt: this.now() };
    await this.exec(
      `INSERT INTO plans (id, repo, pr, environment, head_sha, fingerprint, desired_digest, observed_digest, plan_json, rendered, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [
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
      ],
    );
    return row;
  }

  async getPlan(id: string): Promise<PlanRow | undefined> {
    const r = await this.one('SELECT * FROM plans WHERE id = ?', [id]);
    return r && toPlan(r);
  }

  async latestPlan(repo: string, pr: number | null, environment: string): Promise<PlanRow | undefined> {
    const r =
      pr === null
        ? await this.one('SELECT * FROM plans WHERE repo = ? AND pr IS NULL AND environment = ? ORDER BY seq DESC LIMIT 1', [
            repo,
            environment,
          ])
        : await this.one('SELECT * FROM plans WHERE repo = ? AND pr = ? AND environment = ? ORDER BY seq DESC LIMIT 1', [
            repo,
            pr,
            environment,
          ]);
    return r && toPlan(r);
  }

  // ── webhook deliveries ──────────────────────────────────────────────────

  async recordDelivery(deliveryId: string, event: string): Promise<boolean> {
    try {
      await this.exec('INSERT INTO deliveries (delivery_id, event, received_at) VALUES (?, ?, ?)', [deliveryId, event, this.now()]);
      return true;
    } catch (err) {
      if (errno(err) === ER_DUP_ENTRY) return false;
      throw err;
    }
  }

  async claimDelivery(deliveryId: string, event: string, payload: string, holder: string, ttlMs: number): Promise<boolean> {
    const now = this.now();
    try {
      await this.exec(
        `INSERT INTO deliveries (delivery_id, event, received_at, payload, state, claimed_by, claimed_until) VALUES (?, ?, ?, ?, 'received', ?, ?)`,
        [deliveryId, event, now, payload, holder, now + ttlMs],
      );
      return true;
    } catch (err) {
      if (errno(err) !== ER_DUP_ENTRY) throw err;
    }
    return (
      (await this.exec(
        `UPDATE deliveries SET claimed_by = ?, claimed_until = ?, payload = COALESCE(payload, ?)
         WHERE delivery_id = ? AND state = 'received' AND (claimed_until IS NULL OR claimed_until <= ?)`,
        [holder, now + ttlMs, payload, deliveryId, now],
      )) > 0
    );
  }

  async finishDelivery(deliveryId: string): Promise<void> {
    await this.exec(`UPDATE deliveries SET state = 'done', claimed_by = NULL, claimed_until = NULL, payload = NULL WHERE delivery_id = ?`, [deliveryId]);
  }

  async renewDeliveries(holder: string, ttlMs: number): Promise<number> {
    return this.exec(`UPDATE deliveries SET claimed_until = ? WHERE claimed_by = ? AND state = 'received'`, [this.now() + ttlMs, holder]);
  }

  async releaseDeliveries(holder: string): Promise<number> {
    return this.exec(`UPDATE deliveries SET claimed_until = 0 WHERE claimed_by = ? AND state = 'received'`, [holder]);
  }

  async pendingDeliveries(limit = 100): Promise<PendingDelivery[]> {
    return (
      await this.all(
        `SELECT * FROM deliveries WHERE state = 'received' AND payload IS NOT NULL AND (claimed_until IS NULL OR claimed_until <= ?)
         ORDER BY received_at, delivery_id LIMIT ?`,
        [this.now(), Math.max(0, Math.floor(limit))],
      )
    ).map(toPendingDelivery);
  }

  async pruneDeliveries(receivedBefore: number): Promise<number> {
    return this.exec('DELETE FROM deliveries WHERE received_at < ?', [receivedBefore]);
  }

  // ── PR comments ─────────────────────────────────────────────────────────

  async getPrComments(repo: string, pr: number): Promise<number[]> {
    const r = await this.one('SELECT comment_ids FROM comments WHERE repo = ? AND pr = ?', [repo, pr]);
    return r ? toCommentIds(r.comment_ids) : [];
  }

  async setPrComments(repo: string, pr: number, commentIds: number[]): Promise<void> {
    await this.exec(
      `INSERT INTO comments (repo, pr, comment_ids, updated_at) VALUES (?, ?, ?, ?)
       ON DUPLICATE KEY UPDATE comment_ids = VALUES(comment_ids), updated_at = VALUES(updated_at)`,
      [repo, pr, JSON.stringify(commentIds), this.now()],
    );
  }

  async prCommentsWrittenAt(repo: string, pr: number): Promise<number | undefined> {
    const r = await this.one('SELECT updated_at FROM comments WHERE repo = ? AND pr = ?', [repo, pr]);
    return r ? Number(r.updated_at) : undefined;
  }

  // ── PR heads ────────────────────────────────────────────────────────────

  async recordHead(repo: string, pr: number, headSha: string): Promise<number> {
    // INSERT IGNORE would also hide other errors: a no-op update keeps the first time.
    await this.exec('INSERT INTO pr_heads (repo, pr, head_sha, seen_at) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE seen_at = seen_at', [repo, pr, headSha, this.now()]);
    return Number((await this.one('SELECT seen_at FROM pr_heads WHERE repo = ? AND pr = ? AND head_sha = ?', [repo, pr, headSha]))!.seen_at);
  }

  async listHeads(repo: string, pr: number): Promise<{ headSha: string; seenAt: number }[]> {
    const rows = await this.all('SELECT head_sha, seen_at FROM pr_heads WHERE repo = ? AND pr = ? ORDER BY seen_at, head_sha', [repo, pr]);
    return rows.map((r) => ({ headSha: String(r.head_sha), seenAt: Number(r.seen_at) }));
  }

  // ── leases ──────────────────────────────────────────────────────────────

  async acquireLease(name: string, holder: string, ttlMs: number): Promise<boolean> {
    return (await this.claimLease(name, holder, ttlMs)) !== null;
  }

  async claimLease(name: string, holder: string, ttlMs: number): Promise<string | null> {
    // Two atomic statements, each decisive on its own: the UPDATE takes (or
    // renews) an existing lease that is ours or expired; otherwise the INSERT
    // takes a free one, and its duplicate-key error means another holder has
    // a live lease. (FOUND_ROWS: a renewal within the same millisecond counts.)
    // SET runs left to right: the token is decided on the old holder and expiry.
    const now = this.now();
    const token = randomUUID();
    const taken = await this.exec(
      `UPDATE leases SET token = IF(holder = ? AND expires_at > ? AND token IS NOT NULL, token, ?), holder = ?, expires_at = ?
       WHERE name = ? AND (holder = ? OR expires_at <= ?)`,
      [holder, now, token, holder, now + ttlMs, name, holder, now],
    );
    if (taken > 0) {
      const r = await this.one('SELECT holder, token FROM leases WHERE name = ?', [name]);
      return r && str(r.holder) === holder ? str(r.token) : null;
    }
    try {
      await this.exec('INSERT INTO leases (name, holder, expires_at, token) VALUES (?, ?, ?, ?)', [name, holder, now + ttlMs, token]);
      return token;
    } catch (err) {
      if (errno(err) === ER_DUP_ENTRY) return null;
      throw err;
    }
  }

  async releaseLease(name: string, holder: string): Promise<boolean> {
    return (await this.exec('DELETE FROM leases WHERE name = ? AND holder = ?', [name, holder])) > 0;
  }

  async getLease(name: string): Promise<{ name: string; holder: string; expiresAt: number } | undefined> {
    const r = await this.one('SELECT * FROM leases WHERE name = ?', [name]);
    return r && toLease(r);
  }

  // ── project ownership ───────────────────────────────────────────────────

  async projectOwner(target: string, project: string): Promise<string | undefined> {
    return (await this.one('SELECT repo FROM project_owners WHERE target = ? AND project = ?', [target, project]))?.repo as string | undefined;
  }

  async claimProject(target: string, project: string, repo: string): Promise<string> {
    // The primary key decides: the first claim inserts, every later one changes nothing and reads the owner.
    await this.exec('INSERT INTO project_owners (target, project, repo, claimed_at) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE repo = repo', [target, project, repo, this.now()]);
    return (await this.projectOwner(target, project))!;
  }

  // ── containers ──────────────────────────────────────────────────────────

  async listContainers(target: string): Promise<ContainerRow[]> {
    return (
      await this.all('SELECT * FROM containers WHERE target = ? ORDER BY project, environment, service, replica, container_id', [target])
    ).map(toContainer);
  }

  async upsertContainers(target: string, rows: readonly ContainerUpsert[]): Promise<void> {
    if (rows.length === 0) return;
    const now = this.now();
    // MySQL evaluates ON DUPLICATE KEY UPDATE assignments left to right, each
    // seeing the columns already assigned: updated_at must come first, while
    // state, name, config_hash and apply_id still hold the old values.
    const sql = (n: number) => `INSERT INTO containers (target, container_id, project, environment, service, replica, name, state,
        config_hash, apply_id, seen_at, updated_at)
      VALUES ${Array.from({ length: n }, () => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}
      ON DUPLICATE KEY UPDATE
        updated_at = IF(
          state <> VALUES(state)
            OR name <> VALUES(name)
            OR config_hash <> VALUES(config_hash)
            OR (VALUES(apply_id) IS NOT NULL AND NOT (apply_id <=> VALUES(apply_id))),
          VALUES(updated_at), updated_at),
        project = VALUES(project),
        environment = VALUES(environment),
        service = VALUES(service),
        replica = VALUES(replica),
        name = VALUES(name),
        state = VALUES(state),
        config_hash = VALUES(config_hash),
        apply_id = COALESCE(VALUES(apply_id), apply_id),
        seen_at = VALUES(seen_at)`;
    const params = (batch: readonly ContainerUpsert[]) =>
      batch.flatMap((c) => [
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
      ]);
    if (rows.length <= BATCH) {
      await this.exec(sql(rows.length), params(rows));
      return;
    }
    await this.tx(async (conn) => {
      for (const batch of chunks(rows, BATCH)) await this.exec(sql(batch.length), params(batch), conn);
    });
  }

  async markContainersMissing(target: string, containerIds: readonly string[]): Promise<number> {
    const ids = unique(containerIds);
    let n = 0;
    for (const batch of chunks(ids, 1000)) {
      n += await this.exec(
        `UPDATE containers SET state = 'missing', updated_at = ?
         WHERE target = ? AND state <> 'missing' AND container_id IN (${placeholders(batch.length)})`,
        [this.now(), target, ...batch],
      );
    }
    return n;
  }

  async deleteContainers(target: string, containerIds: readonly string[]): Promise<number> {
    const ids = unique(containerIds);
    let n = 0;
    for (const batch of chunks(ids, 1000)) {
      n += await this.exec(`DELETE FROM containers WHERE target = ? AND container_id IN (${placeholders(batch.length)})`, [
        target,
        ...batch,
      ]);
    }
    return n;
  }

  // deployments (issue 14)

  async saveDeployment(row: NewDeployment): Promise<void> {
    await this.exec(
      'INSERT INTO deployments (apply_id, repo, environment, spec, created_at) VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE apply_id = apply_id',
      [row.applyId, row.repo, row.environment, row.spec, this.now()],
    );
  }

  async setDeployment(applyId: string, patch: { deploymentId?: number; state?: string }): Promise<void> {
    await this.exec('UPDATE deployments SET deployment_id = COALESCE(?, deployment_id), state = COALESCE(?, state) WHERE apply_id = ?', [
      patch.deploymentId ?? null,
      patch.state ?? null,
      applyId,
    ]);
  }

  async getDeployment(applyId: string): Promise<DeploymentRow | undefined> {
    const r = await this.one('SELECT * FROM deployments WHERE apply_id = ?', [applyId]);
    return r ? toDeployment(r) : undefined;
  }

  async listDeployments(repo: string, environment: string, state?: string): Promise<DeploymentRow[]> {
    const rows = await this.all(
      'SELECT * FROM deployments WHERE repo = ? AND environment = ? AND (? IS NULL OR state = ?) ORDER BY created_at DESC, apply_id DESC',
      [repo, environment, state ?? null, state ?? null],
    );
    return rows.map(toDeployment);
  }

  // secrets (issue 18) ─ rows only; encryption is src/secrets/keyring.ts
  async putSecret(r: SecretRow, ifCiphertext?: string): Promise<boolean> {
    const v = [r.keyId, r.nonce, r.ciphertext, r.valueHash, r.setBy, r.setAt];
    if (ifCiphertext !== undefined)
      return (await this.exec('UPDATE secrets SET key_id = ?, nonce = ?, ciphertext = ?, value_hash = ?, set_by = ?, set_at = ? WHERE repo = ? AND environment = ? AND name = ? AND ciphertext = ?', [...v, r.repo, r.environment, r.name, ifCiphertext])) === 1;
    await this.exec(
      `INSERT INTO secrets (key_id, nonce, ciphertext, value_hash, set_by, set_at, repo, environment, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON DUPLICATE KEY UPDATE key_id = VALUES(key_id), nonce = VALUES(nonce), ciphertext = VALUES(ciphertext), value_hash = VALUES(value_hash), set_by = VALUES(set_by), set_at = VALUES(set_at)`,
      [...v, r.repo, r.environment, r.name],
    );
    return true;
  }

  async getSecrets(repo: string, environment: string, names: readonly string[]): Promise<SecretRow[]> {
    const list = unique(names);
    if (!list.length) return [];
    return (await this.all(`SELECT * FROM secrets WHERE repo = ? AND environment = ? AND name IN (${placeholders(list.length)})`, [repo, environment, ...list])).map(toSecret);
  }

  async listSecrets(repo?: string, environment?: string): Promise<SecretInfo[]> {
    const rows = await this.all(`SELECT ${SECRET_INFO_COLUMNS}, '' AS nonce, '' AS ciphertext FROM secrets WHERE (? IS NULL OR repo = ?) AND (? IS NULL OR environment = ?) ORDER BY repo, environment, name`, [repo ?? null, repo ?? null, environment ?? null, environment ?? null]);
    return rows.map((r) => { const { nonce: _n, ciphertext: _c, ...info } = toSecret(r); return info; });
  }

  async deleteSecret(repo: string, environment: string, name: string): Promise<boolean> {
    return (await this.exec('DELETE FROM secrets WHERE repo = ? AND environment = ? AND name = ?', [repo, environment, name])) === 1;
  }

  async allSecrets(): Promise<SecretRow[]> {
    return (await this.all('SELECT * FROM secrets ORDER BY repo, environment, name')).map(toSecret);
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
