// Environment locks: one row per (repo, environment), owned by a PR (or the
// CLI). The primary key decides who holds it; a lock whose apply is still live
// is never released.
import { insertOrKeep, lockingRead, writeTransaction, type Ctx } from '../dialect.js';
import { toLock } from '../rows.js';
import type { AcquireLockResult, LockRow } from '../store.js';
import { isLive } from './applies.js';

export async function acquireLock(ctx: Ctx, repo: string, environment: string, owner: string, pr: number): Promise<AcquireLockResult> {
  // Insert-if-absent, then read who holds it. A release between the two
  // statements makes the read come back empty: try again.
  for (let attempt = 0; attempt < 10; attempt++) {
    await insertOrKeep(ctx, 'locks', { repo, environment, owner, pr, apply_id: null, created_at: ctx.now() }, ['repo', 'environment']);
    const lock = await getLock(ctx, repo, environment);
    if (!lock) continue;
    return lock.owner === owner ? { acquired: true, lock } : { acquired: false, holder: lock };
  }
  throw new Error(`could not acquire or read the lock on ${repo} ${environment}: it changed hands 10 times in a row`);
}

export async function releaseLock(ctx: Ctx, repo: string, environment: string, owner?: string): Promise<boolean> {
  // The lock row is read locked first: an apply being started under it (startApply holds the same row) has committed or not begun.
  return writeTransaction(ctx, async (trx) => {
    const r = await lockingRead(trx.dialect, trx.db.selectFrom('locks').selectAll().where('repo', '=', repo).where('environment', '=', environment)).executeTakeFirst();
    if (!r) return false;
    const lock = toLock(r);
    if (owner !== undefined && lock.owner !== owner) return false;
    if (lock.applyId && (await isLive(trx, lock.applyId))) return false;
    const d = await trx.db.deleteFrom('locks').where('repo', '=', repo).where('environment', '=', environment).executeTakeFirst();
    return Number(d.numDeletedRows) > 0;
  });
}

export async function getLock(ctx: Ctx, repo: string, environment: string): Promise<LockRow | undefined> {
  const r = await ctx.db.selectFrom('locks').selectAll().where('repo', '=', repo).where('environment', '=', environment).executeTakeFirst();
  return r && toLock(r);
}

export async function listLocks(ctx: Ctx, repo?: string): Promise<LockRow[]> {
  const rows =
    repo === undefined
      ? await ctx.db.selectFrom('locks').selectAll().orderBy('repo').orderBy('environment').execute()
      : await ctx.db.selectFrom('locks').selectAll().where('repo', '=', repo).orderBy('environment').execute();
  return rows.map(toLock);
}

export async function locksForPr(ctx: Ctx, repo: string, pr: number): Promise<LockRow[]> {
  return (await ctx.db.selectFrom('locks').selectAll().where('repo', '=', repo).where('pr', '=', pr).orderBy('environment').execute()).map(toLock);
}

export async function setLockApply(ctx: Ctx, repo: string, environment: string, applyId: string | null): Promise<boolean> {
  // MySQL counts matched rows (FOUND_ROWS): a lock that already carries this apply id still counts, as elsewhere.
  const r = await ctx.db.updateTable('locks').set({ apply_id: applyId }).where('repo', '=', repo).where('environment', '=', environment).executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}
