// The applies table and its children as one apply: creating an apply with its
// operations and tasks in one transaction, starting one under its lock and
// lease (startApply), the state CAS, the stop flag, the report claim, and the
// reads /status, recovery and the gates need.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { insertOrKeep, isUniqueViolation, lockingRead, runQuery, upsert, incoming, writeTransaction, type Ctx } from '../dialect.js';
import { prepared } from '../prepared.js';
import { chunks, num, Refused, refusedAsResult, strOrNull, toApply, toApplyStatus, toLock, unique, type DbRow } from '../rows.js';
import {
  ApplyInFlightError,
  IN_FLIGHT_AGGREGATE_STATES,
  TERMINAL_AGGREGATE_STATES,
  type AggregatePatch,
  type ApplyRow,
  type ApplyStatus,
  type CreatedApply,
  type Fence,
  type LatestApplyOptions,
  type ListAppliesFilter,
  type NewApply,
  type StartApplyOptions,
  type StartApplyResult,
} from '../store.js';

/** Rows per multi-row statement: well under SQLite's (32766) and PostgreSQL's (65535) bound-parameter limits. */
export const BATCH = 500;

const IN_FLIGHT = [...IN_FLIGHT_AGGREGATE_STATES];

export async function createApply(ctx: Ctx, input: NewApply): Promise<CreatedApply> {
  return writeTransaction(ctx, (trx) => insertApply(trx, input));
}

/** Inside a transaction: the apply (live), its operations and tasks. */
async function insertApply(ctx: Ctx, input: NewApply): Promise<CreatedApply> {
  const applyId = randomUUID();
  const created: CreatedApply = {
    id: applyId,
    operations: input.operations.map((op) => ({
      id: randomUUID(),
      target: op.target,
      tasks: op.tasks.map((t) => ({ id: randomUUID(), nodeId: t.nodeId })),
    })),
  };
  try {
    await ctx.db
      .insertInto('applies')
      .values({
        id: applyId,
        repo: input.repo,
        pr: input.pr,
        environment: input.environment,
        kind: input.kind,
        actor: input.actor,
        head_sha: input.headSha,
        desired_digest: input.desiredDigest,
        plan_fingerprint: input.planFingerprint,
        state: 'pending',
        version: 0,
        stop_requested: 0,
        check_run_id: input.checkRunId ?? null,
        comment_id: input.commentId ?? null,
        command_comment_id: input.commandCommentId ?? null,
        created_at: ctx.now(),
        live: 1,
      })
      .execute();
  } catch (err) {
    if (isUniqueViolation(ctx.dialect, err)) throw new ApplyInFlightError(input.repo, input.environment);
    throw err;
  }
  await ctx.db.insertInto('apply_payloads').values({ apply_id: applyId, desired_json: input.desiredJson }).execute();
  const operations = created.operations.map((op, ordinal) => ({ id: op.id, apply_id: applyId, target: op.target, ordinal, state: 'pending', version: 0 }));
  for (const batch of chunks(operations, BATCH)) await ctx.db.insertInto('apply_operations').values(batch).execute();
  const tasks = input.operations.flatMap((op, i) =>
    op.tasks.map((t, j) => ({
      id: created.operations[i]!.tasks[j]!.id,
      operation_id: created.operations[i]!.id,
      apply_id: applyId,
      node_id: t.nodeId,
      kind: t.kind,
      resource: t.resource,
      reason: t.reason,
      deps: JSON.stringify(t.deps),
      node_json: t.nodeJson,
      state: 'pending',
      version: 0,
    })),
  );
  for (const batch of chunks(tasks, BATCH)) await ctx.db.insertInto('tasks').values(batch).execute();
  return created;
}

/**
 * In ONE transaction: take (or confirm) the lock, check that nothing is in
 * flight, insert the apply, point the lock at it, give its lease to the driver.
 * The lock row is read with a locking read, so two starters queue on it.
 */
export async function startApply(ctx: Ctx, input: NewApply, opts: StartApplyOptions): Promise<StartApplyResult> {
  return refusedAsResult(() =>
    writeTransaction(ctx, async (trx): Promise<StartApplyResult> => {
      const now = trx.now();
      const where = { repo: input.repo, environment: input.environment };
      await insertOrKeep(trx, 'locks', { ...where, owner: opts.lock.owner, pr: opts.lock.pr, apply_id: null, created_at: now }, ['repo', 'environment']);
      const lockRow = await lockingRead(
        trx.dialect,
        trx.db.selectFrom('locks').selectAll().where('repo', '=', input.repo).where('environment', '=', input.environment),
      ).executeTakeFirstOrThrow();
      const lock = toLock(lockRow);
      if (lock.owner !== opts.lock.owner) return { started: false, reason: 'locked', holder: lock };
      const live = await lockingRead(
        trx.dialect,
        trx.db.selectFrom('applies').select('id').where('repo', '=', input.repo).where('environment', '=', input.environment).where('live', 'is not', null),
      ).executeTakeFirst();
      // Thrown, not returned: the lock this transaction may have inserted is rolled back with it.
      if (live) throw new Refused({ started: false, reason: 'in_flight', applyId: String(live.id) });
      const apply = await insertApply(trx, input);
      await trx.db.updateTable('locks').set({ apply_id: apply.id }).where('repo', '=', input.repo).where('environment', '=', input.environment).execute();
      const fence: Fence = { lease: `apply:${apply.id}`, holder: opts.lease.holder, token: randomUUID() };
      await upsert(trx, 'leases', { name: fence.lease, holder: fence.holder, expires_at: now + opts.lease.ttlMs, token: fence.token }, ['name'], {
        holder: incoming(trx.dialect, 'holder'),
        expires_at: incoming(trx.dialect, 'expires_at'),
        token: incoming(trx.dialect, 'token'),
      });
      return { started: true, apply, lock: { ...lock, applyId: apply.id }, fence };
    }),
  );
}

/**
 * Claims the sending of an ended apply's report for `holder`: free (never claimed), or claimed by a
 * sender that has not finished within `ttlMs` (it died between the claim and the sends). Compare-and-set:
 * one caller at a time holds the claim. Without a claim given, the caller is anonymous and a claim is
 * never taken over (ttl: forever), as before version 9.
 */
export async function claimReport(ctx: Ctx, applyId: string, claim?: { holder: string; ttlMs: number }): Promise<boolean> {
  const now = ctx.now();
  let q = ctx.db
    .updateTable('applies')
    .set({ report_claimed_at: now, report_holder: claim?.holder ?? null })
    .where('id', '=', applyId)
    .where('reported_at', 'is', null)
    .where('live', 'is', null)
    .where('state', 'not in', IN_FLIGHT);
  q = claim ? q.where((eb) => eb.or([eb('report_claimed_at', 'is', null), eb('report_claimed_at', '<', now - claim.ttlMs)])) : q.where('report_claimed_at', 'is', null);
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

/** The report's claim, if someone took it and the report is not yet sent in full. */
export async function reportClaim(ctx: Ctx, applyId: string): Promise<{ claimedAt: number; holder: string | null } | undefined> {
  const r = await ctx.db.selectFrom('applies').select(['report_claimed_at', 'report_holder']).where('id', '=', applyId).where('reported_at', 'is', null).executeTakeFirst();
  return r && r.report_claimed_at !== null ? { claimedAt: num(r.report_claimed_at), holder: strOrNull(r.report_holder) } : undefined;
}

/** The report is out (every send succeeded, or failed for good): nobody owes it any more. True the first time. */
export async function markReported(ctx: Ctx, applyId: string): Promise<boolean> {
  const r = await ctx.db
    .updateTable('applies')
    .set({ reported_at: ctx.now() })
    .where('id', '=', applyId)
    .where('reported_at', 'is', null)
    .where('live', 'is', null)
    .where('state', 'not in', IN_FLIGHT)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
}

export async function listUnreportedApplies(ctx: Ctx): Promise<ApplyRow[]> {
  // reported_at is indexed (migration 7): the owed ones are few, whatever the history.
  const rows = await withPayload(ctx)
    .where('reported_at', 'is', null)
    .where('live', 'is', null)
    .where('state', 'not in', IN_FLIGHT)
    .orderBy('seq', 'asc')
    .execute();
  return rows.map(toApply);
}

/** Applies with their desired state (kept in apply_payloads, migration 0013). */
function withPayload(ctx: Ctx) {
  return ctx.db.selectFrom('applies').innerJoin('apply_payloads', 'apply_payloads.apply_id', 'applies.id').selectAll('applies').select('apply_payloads.desired_json');
}

export async function getApply(ctx: Ctx, id: string): Promise<ApplyRow | undefined> {
  const r = await withPayload(ctx).where('id', '=', id).executeTakeFirst();
  return r && toApply(r);
}

export async function getApplyStatus(ctx: Ctx, id: string): Promise<ApplyStatus | undefined> {
  // Read by a driver every stop poll and every settle of an apply's state: a prepared statement (runQuery).
  const { rows } = await runQuery(ctx, prepared(ctx.dialect, 'apply-status', (p) => ctx.db.selectFrom('applies').select(STATUS_COLUMNS).where('id', '=', p('id')), { id }));
  const r = rows[0] as DbRow | undefined;
  return r && toApplyStatus(r);
}

/** Every column of an apply but its desired state. */
const STATUS_COLUMNS = ['id', 'repo', 'pr', 'environment', 'kind', 'actor', 'head_sha', 'desired_digest', 'plan_fingerprint', 'state', 'version', 'stop_requested', 'check_run_id', 'comment_id', 'created_at', 'started_at', 'finished_at', 'error'] as const;

/** CAS on the version; an apply that ends is no longer live (frees its environment's slot). */
export async function casApplyState(ctx: Ctx, id: string, expectedVersion: number, patch: AggregatePatch): Promise<boolean> {
  const set = { ...aggregateSet(patch), ...(TERMINAL_AGGREGATE_STATES.includes(patch.state) ? { live: null } : {}) };
  const columns = Object.keys(set);
  const r = await runQuery(
    ctx,
    prepared(
      ctx.dialect,
      `apply-cas:${columns.join(',')}`,
      (p) =>
        ctx.db
          .updateTable('applies')
          .set((eb) => ({ ...Object.fromEntries(columns.map((c) => [c, p(c)])), version: eb('version', '+', 1) }))
          .where('id', '=', p('id'))
          .where('version', '=', p('expectedVersion')),
      { ...set, id, expectedVersion },
    ),
  );
  return r.changes === 1;
}

/** The SET of an operation/apply state CAS, without the version bump: state always, the rest only when present. */
export function aggregateSet(patch: AggregatePatch) {
  return {
    state: patch.state,
    ...(patch.startedAt !== undefined ? { started_at: patch.startedAt } : {}),
    ...(patch.finishedAt !== undefined ? { finished_at: patch.finishedAt } : {}),
    ...(patch.error !== undefined ? { error: patch.error } : {}),
  };
}

export async function requestStop(ctx: Ctx, applyId: string): Promise<boolean> {
  const marked = await ctx.db
    .updateTable('applies')
    .set((eb) => ({ stop_requested: 1, version: eb('version', '+', 1) }))
    .where('id', '=', applyId)
    .where('stop_requested', '=', 0)
    .where('state', 'in', IN_FLIGHT)
    .executeTakeFirst();
  if (Number(marked.numUpdatedRows) === 1) return true;
  const r = await ctx.db.selectFrom('applies').select('id').where('id', '=', applyId).where('stop_requested', '=', 1).where('state', 'in', IN_FLIGHT).executeTakeFirst();
  return r !== undefined;
}

export async function setApplyCheckRun(ctx: Ctx, id: string, checkRunId: number | null): Promise<void> {
  await ctx.db.updateTable('applies').set({ check_run_id: checkRunId }).where('id', '=', id).execute();
}

export async function setApplyComment(ctx: Ctx, id: string, commentId: number | null): Promise<void> {
  await ctx.db.updateTable('applies').set({ comment_id: commentId }).where('id', '=', id).execute();
}

export async function latestApply(ctx: Ctx, repo: string, environment: string, opts: LatestApplyOptions = {}): Promise<ApplyRow | undefined> {
  let q = withPayload(ctx).where('repo', '=', repo).where('environment', '=', environment);
  if (opts.desiredDigest !== undefined) q = q.where('desired_digest', '=', opts.desiredDigest);
  if (opts.state !== undefined) q = q.where('state', '=', opts.state);
  if (opts.kind !== undefined) q = q.where('kind', '=', opts.kind);
  const r = await q.orderBy('seq', 'desc').limit(1).executeTakeFirst();
  return r && toApply(r);
}

export async function listApplies(ctx: Ctx, filter: ListAppliesFilter = {}): Promise<ApplyRow[]> {
  let q = withPayload(ctx);
  if (filter.states !== undefined) {
    const states = unique(filter.states);
    if (states.length === 0) return [];
    q = q.where('state', 'in', states);
  }
  if (filter.repo !== undefined) q = q.where('repo', '=', filter.repo);
  if (filter.pr !== undefined) q = q.where('pr', '=', filter.pr);
  if (filter.environment !== undefined) q = q.where('environment', '=', filter.environment);
  q = q.orderBy('seq', 'desc');
  if (filter.limit !== undefined) q = q.limit(Math.max(0, Math.floor(filter.limit)));
  return (await q.execute()).map(toApply);
}

export async function applyOf(ctx: Ctx, repo: string, pr: number, environment: string): Promise<ApplyRow | undefined> {
  const r = await withPayload(ctx)
    .where('repo', '=', repo)
    .where('pr', '=', pr)
    .where('environment', '=', environment)
    .where('state', 'in', IN_FLIGHT)
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  return r && toApply(r);
}

export async function knownApplyIds(ctx: Ctx, ids: readonly string[]): Promise<Set<string>> {
  const known = new Set<string>();
  for (const batch of chunks(unique(ids), BATCH)) {
    for (const r of await ctx.db.selectFrom('applies').select('id').where('id', 'in', batch).execute()) known.add(String(r.id));
  }
  return known;
}

/** Used by releaseLock: is this apply still live? (a locking read inside the caller's transaction) */
export async function isLive(ctx: Ctx, applyId: string): Promise<boolean> {
  const r = await lockingRead(ctx.dialect, ctx.db.selectFrom('applies').select(sql<number>`1`.as('yes')).where('id', '=', applyId).where('live', 'is not', null)).executeTakeFirst();
  return r !== undefined;
}

/** The apply the command of PR comment `commentId` made, if any (its id). */
export async function applyForCommand(ctx: Ctx, repo: string, commentId: number): Promise<string | undefined> {
  const row = await ctx.db.selectFrom('applies').select('id').where('repo', '=', repo).where('command_comment_id', '=', commentId).limit(1).executeTakeFirst();
  return row?.id;
}
