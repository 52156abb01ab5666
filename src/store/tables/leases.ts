// Leases: named, expiring, held by one process (multi-replica coordination),
// with a token per tenure for fencing. And project ownership, the other
// first-comer-wins row: which repository owns a project on a target.
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { insertIfAbsent, insertOrKeep, runQuery, type Ctx } from '../dialect.js';
import { prepared } from '../prepared.js';
import { str, toLease, type DbRow } from '../rows.js';

export async function claimLease(ctx: Ctx, name: string, holder: string, ttlMs: number): Promise<string | null> {
  // Two atomic statements, each decisive on its own: the UPDATE takes (or
  // renews) an existing lease that is ours or expired; otherwise the INSERT
  // takes a free one, and a conflict means another holder has a live lease.
  // The token survives only a renewal of a live lease by its holder. It is
  // assigned first: MySQL runs SET left to right, the others see old values.
  // Prepared statements (runQuery): every apply takes and gives back a lease per target it changes.
  const now = ctx.now();
  const token = randomUUID();
  const taken = await runQuery(
    ctx,
    prepared(
      ctx.dialect,
      'lease-claim',
      (p) =>
        ctx.db
          .updateTable('leases')
          .set({
            token: sql<string>`CASE WHEN holder = ${p('holder')} AND expires_at > ${p('now')} AND token IS NOT NULL THEN token ELSE ${p('token')} END`,
            holder: p('holder'),
            expires_at: p('expiresAt'),
          })
          .where('name', '=', p('name'))
          .where((eb) => eb.or([eb('holder', '=', p('holder')), eb('expires_at', '<=', p('now'))])),
      { holder, now, token, expiresAt: now + ttlMs, name },
    ),
  );
  if (taken.changes > 0) {
    const { rows } = await runQuery(ctx, prepared(ctx.dialect, 'lease-token', (p) => ctx.db.selectFrom('leases').select(['holder', 'token']).where('name', '=', p('name')), { name }));
    const r = rows[0] as DbRow | undefined;
    return r && str(r.holder) === holder && r.token !== null ? str(r.token) : null;
  }
  if (ctx.dialect === 'mysql') return (await insertIfAbsent(ctx, 'leases', { name, holder, expires_at: now + ttlMs, token }, ['name'])) ? token : null;
  const inserted = await runQuery(
    ctx,
    prepared(
      ctx.dialect,
      'lease-insert',
      (p) =>
        ctx.db
          .insertInto('leases')
          .values({ name: p('name'), holder: p('holder'), expires_at: p('expiresAt'), token: p('token') })
          .onConflict((oc) => oc.column('name').doNothing()),
      { name, holder, expiresAt: now + ttlMs, token },
    ),
  );
  return inserted.changes > 0 ? token : null;
}

export async function releaseLease(ctx: Ctx, name: string, holder: string): Promise<boolean> {
  const r = await runQuery(ctx, prepared(ctx.dialect, 'lease-release', (p) => ctx.db.deleteFrom('leases').where('name', '=', p('name')).where('holder', '=', p('holder')), { name, holder }));
  return r.changes > 0;
}

export async function getLease(ctx: Ctx, name: string): Promise<{ name: string; holder: string; expiresAt: number } | undefined> {
  const r = await ctx.db.selectFrom('leases').selectAll().where('name', '=', name).executeTakeFirst();
  return r && toLease(r);
}

export async function projectOwner(ctx: Ctx, target: string, project: string): Promise<string | undefined> {
  const r = await ctx.db.selectFrom('project_owners').select('repo').where('target', '=', target).where('project', '=', project).executeTakeFirst();
  return r && str(r.repo);
}

export async function claimProject(ctx: Ctx, target: string, project: string, repo: string): Promise<string> {
  // The primary key decides: the first claim inserts, every later one changes nothing and reads the owner.
  await insertOrKeep(ctx, 'project_owners', { target, project, repo, claimed_at: ctx.now() }, ['target', 'project']);
  return (await projectOwner(ctx, target, project))!;
}
