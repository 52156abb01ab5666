// The GitHub deployment each apply is reported as (issue 14): stored first
// (insert-if-absent), its GitHub id and last status filled in later.
import { insertOrKeep, type Ctx } from '../dialect.js';
import { toDeployment } from '../rows.js';
import type { DeploymentRow, NewDeployment } from '../store.js';

export async function saveDeployment(ctx: Ctx, row: NewDeployment): Promise<void> {
  await insertOrKeep(ctx, 'deployments', { apply_id: row.applyId, repo: row.repo, environment: row.environment, spec: row.spec, created_at: ctx.now() }, ['apply_id']);
}

export async function setDeployment(ctx: Ctx, applyId: string, patch: { deploymentId?: number; state?: string }): Promise<void> {
  const set = {
    ...(patch.deploymentId !== undefined ? { deployment_id: patch.deploymentId } : {}),
    ...(patch.state !== undefined ? { state: patch.state } : {}),
  };
  if (Object.keys(set).length === 0) return;
  await ctx.db.updateTable('deployments').set(set).where('apply_id', '=', applyId).execute();
}

export async function getDeployment(ctx: Ctx, applyId: string): Promise<DeploymentRow | undefined> {
  const r = await ctx.db.selectFrom('deployments').selectAll().where('apply_id', '=', applyId).executeTakeFirst();
  return r && toDeployment(r);
}

export async function listDeployments(ctx: Ctx, repo: string, environment: string, state?: string): Promise<DeploymentRow[]> {
  let q = ctx.db.selectFrom('deployments').selectAll().where('repo', '=', repo).where('environment', '=', environment);
  if (state !== undefined) q = q.where('state', '=', state);
  return (await q.orderBy('created_at', 'desc').orderBy('apply_id', 'desc').execute()).map(toDeployment);
}
