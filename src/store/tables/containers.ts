// The drift index: managed containers as last seen per target, written in
// batches (one statement per batch) so a reconciler tick costs O(1) queries.
import { sql } from 'kysely';
import { differs, incoming, upsert, writeTransaction, type Ctx } from '../dialect.js';
import { chunks, toContainer, unique } from '../rows.js';
import type { ContainerRow, ContainerUpsert } from '../store.js';
import { BATCH } from './applies.js';

export async function listContainers(ctx: Ctx, target: string): Promise<ContainerRow[]> {
  const rows = await ctx.db
    .selectFrom('containers')
    .selectAll()
    .where('target', '=', target)
    .orderBy('project')
    .orderBy('environment')
    .orderBy('service')
    .orderBy('replica')
    .orderBy('container_id')
    .execute();
  return rows.map(toContainer);
}

/** More than one statement's worth runs in one transaction; one statement needs none. */
async function batched<T>(ctx: Ctx, items: readonly T[], fn: (ctx: Ctx, batch: T[]) => Promise<number>): Promise<number> {
  const batches = chunks(items, BATCH);
  const run = async (c: Ctx) => {
    let n = 0;
    for (const b of batches) n += await fn(c, b);
    return n;
  };
  return batches.length > 1 ? writeTransaction(ctx, run) : run(ctx);
}

export async function upsertContainers(ctx: Ctx, target: string, rows: readonly ContainerUpsert[]): Promise<void> {
  if (rows.length === 0) return;
  const now = ctx.now();
  const d = ctx.dialect;
  const old = (c: string) => sql.ref(`containers.${c}`);
  const neu = (c: string) => incoming(d, c);
  await batched(ctx, rows, async (c, batch) => {
    await upsert(
      c,
      'containers',
      batch.map((r) => ({
        target,
        container_id: r.containerId,
        project: r.project,
        environment: r.environment,
        service: r.service,
        replica: r.replica,
        name: r.name,
        state: r.state,
        config_hash: r.configHash,
        apply_id: r.applyId ?? null,
        seen_at: r.seenAt ?? now,
        updated_at: now,
      })),
      ['target', 'container_id'],
      {
        // First, while state, name, config hash and apply id still hold the old values (MySQL assigns in order).
        updated_at: sql`CASE WHEN ${differs(d, old('state'), neu('state'))} OR ${differs(d, old('name'), neu('name'))}
          OR ${differs(d, old('config_hash'), neu('config_hash'))}
          OR (${neu('apply_id')} IS NOT NULL AND ${differs(d, old('apply_id'), neu('apply_id'))})
          THEN ${neu('updated_at')} ELSE ${old('updated_at')} END`,
        project: neu('project'),
        environment: neu('environment'),
        service: neu('service'),
        replica: neu('replica'),
        name: neu('name'),
        state: neu('state'),
        config_hash: neu('config_hash'),
        apply_id: sql`COALESCE(${neu('apply_id')}, ${old('apply_id')})`,
        seen_at: neu('seen_at'),
      },
    );
    return batch.length;
  });
}

export async function markContainersMissing(ctx: Ctx, target: string, containerIds: readonly string[]): Promise<number> {
  const now = ctx.now();
  return batched(ctx, unique(containerIds), async (c, batch) => {
    const r = await c.db
      .updateTable('containers')
      .set({ state: 'missing', updated_at: now })
      .where('target', '=', target)
      .where('state', '<>', 'missing')
      .where('container_id', 'in', batch)
      .executeTakeFirst();
    return Number(r.numUpdatedRows);
  });
}

export async function deleteContainers(ctx: Ctx, target: string, containerIds: readonly string[]): Promise<number> {
  return batched(ctx, unique(containerIds), async (c, batch) => {
    const r = await c.db.deleteFrom('containers').where('target', '=', target).where('container_id', 'in', batch).executeTakeFirst();
    return Number(r.numDeletedRows);
  });
}
