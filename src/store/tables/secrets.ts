// Server-side secrets (issue 18): rows only — encryption and the domain rules
// are src/secrets/. Only `ciphertext` depends on a secret's value.
import { incoming, upsert, type Ctx } from '../dialect.js';
import { num, str, unique } from '../rows.js';
import type { SecretInfo, SecretRow } from '../store.js';

function toSecret(r: Record<string, unknown>): SecretRow {
  return {
    repo: str(r.repo),
    environment: str(r.environment),
    name: str(r.name),
    keyId: str(r.key_id),
    nonce: str(r.nonce),
    ciphertext: str(r.ciphertext),
    valueHash: str(r.value_hash),
    setBy: str(r.set_by),
    setAt: num(r.set_at),
  };
}

export async function putSecret(ctx: Ctx, r: SecretRow, ifCiphertext?: string): Promise<boolean> {
  const value = { key_id: r.keyId, nonce: r.nonce, ciphertext: r.ciphertext, value_hash: r.valueHash, set_by: r.setBy, set_at: r.setAt };
  if (ifCiphertext !== undefined) {
    const u = await ctx.db
      .updateTable('secrets')
      .set(value)
      .where('repo', '=', r.repo)
      .where('environment', '=', r.environment)
      .where('name', '=', r.name)
      .where('ciphertext', '=', ifCiphertext)
      .executeTakeFirst();
    return Number(u.numUpdatedRows) === 1;
  }
  const set = Object.fromEntries(Object.keys(value).map((c) => [c, incoming(ctx.dialect, c)]));
  await upsert(ctx, 'secrets', { repo: r.repo, environment: r.environment, name: r.name, ...value }, ['repo', 'environment', 'name'], set);
  return true;
}

export async function getSecrets(ctx: Ctx, repo: string, environment: string, names: readonly string[]): Promise<SecretRow[]> {
  const list = unique(names);
  if (!list.length) return [];
  return (await ctx.db.selectFrom('secrets').selectAll().where('repo', '=', repo).where('environment', '=', environment).where('name', 'in', list).execute()).map(toSecret);
}

export async function listSecrets(ctx: Ctx, repo?: string, environment?: string): Promise<SecretInfo[]> {
  let q = ctx.db.selectFrom('secrets').select(['repo', 'environment', 'name', 'key_id', 'value_hash', 'set_by', 'set_at']);
  if (repo !== undefined) q = q.where('repo', '=', repo);
  if (environment !== undefined) q = q.where('environment', '=', environment);
  const rows = await q.orderBy('repo').orderBy('environment').orderBy('name').execute();
  return rows.map((r) => ({ repo: str(r.repo), environment: str(r.environment), name: str(r.name), keyId: str(r.key_id), valueHash: str(r.value_hash), setBy: str(r.set_by), setAt: num(r.set_at) }));
}

export async function deleteSecret(ctx: Ctx, repo: string, environment: string, name: string): Promise<boolean> {
  const r = await ctx.db.deleteFrom('secrets').where('repo', '=', repo).where('environment', '=', environment).where('name', '=', name).executeTakeFirst();
  return Number(r.numDeletedRows) === 1;
}

export async function allSecrets(ctx: Ctx): Promise<SecretRow[]> {
  return (await ctx.db.selectFrom('secrets').selectAll().orderBy('repo').orderBy('environment').orderBy('name').execute()).map(toSecret);
}
