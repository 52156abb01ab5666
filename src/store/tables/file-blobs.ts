// File texts by Git blob name, per repository: the commit cache's shared tier
// (github/commit-cache.ts checks each text against its name, on the way in and
// on the way out). Rows older than FILE_BLOB_DAYS go when a new one is stored.
import { insertOrKeep, type Ctx } from '../dialect.js';

/** How long a stored text is kept (a text still in use is read from GitHub again once, then kept again). */
export const FILE_BLOB_DAYS = 30;

export async function getFileBlob(ctx: Ctx, repo: string, blob: string): Promise<string | undefined> {
  const r = await ctx.db.selectFrom('file_blobs').select('text').where('repo', '=', repo).where('blob', '=', blob).executeTakeFirst();
  return r?.text;
}

export async function putFileBlob(ctx: Ctx, repo: string, blob: string, text: string): Promise<void> {
  const now = ctx.now();
  await ctx.db.deleteFrom('file_blobs').where('stored_at', '<', now - FILE_BLOB_DAYS * 24 * 3600_000).execute();
  await insertOrKeep(ctx, 'file_blobs', { repo, blob, text, stored_at: now }, ['repo', 'blob']);
}
