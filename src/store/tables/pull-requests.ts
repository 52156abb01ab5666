// What berth remembers per pull request: its plans, berth's comment on it, and
// every head it has seen (with when it first saw each).
import { randomUUID } from 'node:crypto';
import { incoming, insertOrKeep, upsert, type Ctx } from '../dialect.js';
import { num, str, toCommentIds, toCommentParts, toPlan } from '../rows.js';
import type { PlanInput, PlanRow, PrCommentPart } from '../store.js';

export async function savePlan(ctx: Ctx, plan: PlanInput): Promise<PlanRow> {
  const row: PlanRow = { ...plan, id: randomUUID(), createdAt: ctx.now() };
  await ctx.db
    .insertInto('plans')
    .values({
      id: row.id,
      repo: row.repo,
      pr: row.pr,
      environment: row.environment,
      head_sha: row.headSha,
      fingerprint: row.fingerprint,
      desired_digest: row.desiredDigest,
      observed_digest: row.observedDigest,
      plan_json: row.planJson,
      rendered: row.rendered,
      created_at: row.createdAt,
    })
    .execute();
  // Only the latest plan of a PR's environment is ever read: the ones before it go (each holds the rendered
  // plan, and a PR can /plan as often as it likes). By sequence, not by id: of two saved at once, the later stays.
  // Below the newest sequence visible now, not below this row's own: MariaDB hands out a sequence before the row
  // is visible, so a concurrent save with a later sequence can prune before this row shows, and this row, with
  // the lower sequence, must then prune itself.
  const newest = await ctx.db
    .selectFrom('plans')
    .select((eb) => eb.fn.max('seq').as('seq'))
    .where('repo', '=', row.repo)
    .where('pr', row.pr === null ? 'is' : '=', row.pr)
    .where('environment', '=', row.environment)
    .executeTakeFirst();
  if (newest?.seq != null)
    await ctx.db
      .deleteFrom('plans')
      .where('repo', '=', row.repo)
      .where('pr', row.pr === null ? 'is' : '=', row.pr)
      .where('environment', '=', row.environment)
      .where('seq', '<', Number(newest.seq))
      .execute();
  return row;
}

export async function getPlan(ctx: Ctx, id: string): Promise<PlanRow | undefined> {
  const r = await ctx.db.selectFrom('plans').selectAll().where('id', '=', id).executeTakeFirst();
  return r && toPlan(r);
}

export async function latestPlan(ctx: Ctx, repo: string, pr: number | null, environment: string): Promise<PlanRow | undefined> {
  const r = await ctx.db
    .selectFrom('plans')
    .selectAll()
    .where('repo', '=', repo)
    .where('pr', pr === null ? 'is' : '=', pr)
    .where('environment', '=', environment)
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  return r && toPlan(r);
}

export async function getPrComments(ctx: Ctx, repo: string, pr: number): Promise<number[]> {
  const r = await ctx.db.selectFrom('comments').select('comment_ids').where('repo', '=', repo).where('pr', '=', pr).executeTakeFirst();
  return r ? toCommentIds(r.comment_ids) : [];
}

export async function getPrCommentParts(ctx: Ctx, repo: string, pr: number): Promise<PrCommentPart[]> {
  const r = await ctx.db.selectFrom('comments').select('comment_ids').where('repo', '=', repo).where('pr', '=', pr).executeTakeFirst();
  return r ? toCommentParts(r.comment_ids) : [];
}

/** `digests`: the SHA-256 of each part's body as berth wrote it, in the order of `commentIds` (kept with the ids). */
export async function setPrComments(ctx: Ctx, repo: string, pr: number, commentIds: number[], digests?: readonly string[]): Promise<void> {
  const stored = digests ? commentIds.map((id, i) => (digests[i] !== undefined ? { id, sha256: digests[i] } : id)) : commentIds;
  await upsert(ctx, 'comments', { repo, pr, comment_ids: JSON.stringify(stored), updated_at: ctx.now() }, ['repo', 'pr'], {
    comment_ids: incoming(ctx.dialect, 'comment_ids'),
    updated_at: incoming(ctx.dialect, 'updated_at'),
  });
}

export async function prCommentsWrittenAt(ctx: Ctx, repo: string, pr: number): Promise<number | undefined> {
  const r = await ctx.db.selectFrom('comments').select('updated_at').where('repo', '=', repo).where('pr', '=', pr).executeTakeFirst();
  return r ? num(r.updated_at) : undefined;
}

export async function recordHead(ctx: Ctx, repo: string, pr: number, headSha: string, pushedBy?: string): Promise<number> {
  await insertOrKeep(ctx, 'pr_heads', { repo, pr, head_sha: headSha, seen_at: ctx.now(), pushed_by: pushedBy ?? null }, ['repo', 'pr', 'head_sha']);
  // A head first seen by planning (no webhook yet) learns its pusher from its webhook; a known pusher is kept.
  if (pushedBy)
    await ctx.db.updateTable('pr_heads').set({ pushed_by: pushedBy }).where('repo', '=', repo).where('pr', '=', pr).where('head_sha', '=', headSha).where('pushed_by', 'is', null).execute();
  const r = await ctx.db.selectFrom('pr_heads').select('seen_at').where('repo', '=', repo).where('pr', '=', pr).where('head_sha', '=', headSha).executeTakeFirstOrThrow();
  return num(r.seen_at);
}

/** The PRs berth saw with this head commit, in number order (by an index over (repo, head_sha), version 9). */
export async function pullsWithHead(ctx: Ctx, repo: string, headSha: string): Promise<number[]> {
  const rows = await ctx.db.selectFrom('pr_heads').select('pr').where('repo', '=', repo).where('head_sha', '=', headSha).orderBy('pr').execute();
  return rows.map((r) => num(r.pr));
}

export async function headPushers(ctx: Ctx, repo: string, pr: number, headSha: string): Promise<string[]> {
  const [head, pushes] = await Promise.all([
    ctx.db.selectFrom('pr_heads').select('pushed_by').where('repo', '=', repo).where('pr', '=', pr).where('head_sha', '=', headSha).executeTakeFirst(),
    ctx.db.selectFrom('branch_pushes').select('pushed_by').where('repo', '=', repo).where('head_sha', '=', headSha).execute(),
  ]);
  const all = new Set(pushes.map((r) => str(r.pushed_by)));
  if (head?.pushed_by) all.add(str(head.pushed_by));
  return [...all].sort();
}

export async function recordPush(ctx: Ctx, repo: string, headSha: string, pushedBy: string): Promise<void> {
  await insertOrKeep(ctx, 'branch_pushes', { repo, head_sha: headSha, pushed_by: pushedBy, seen_at: ctx.now() }, ['repo', 'head_sha', 'pushed_by']);
}

export async function listHeads(ctx: Ctx, repo: string, pr: number): Promise<{ headSha: string; seenAt: number }[]> {
  const rows = await ctx.db.selectFrom('pr_heads').select(['head_sha', 'seen_at']).where('repo', '=', repo).where('pr', '=', pr).orderBy('seen_at').orderBy('head_sha').execute();
  return rows.map((r) => ({ headSha: str(r.head_sha), seenAt: num(r.seen_at) }));
}
