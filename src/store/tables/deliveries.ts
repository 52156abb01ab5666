// Webhook deliveries as durable work items: recorded once per delivery id
// (atomic across replicas), claimed by one process at a time until its claim
// lapses, finished when handled; what a crash left undone is found again.
import { insertIfAbsent, type Ctx } from '../dialect.js';
import { toPendingDelivery } from '../rows.js';
import type { PendingDelivery } from '../store.js';

export async function recordDelivery(ctx: Ctx, deliveryId: string, event: string): Promise<boolean> {
  return insertIfAbsent(ctx, 'deliveries', { delivery_id: deliveryId, event, received_at: ctx.now() }, ['delivery_id']);
}

export async function claimDelivery(ctx: Ctx, deliveryId: string, event: string, payload: string, holder: string, ttlMs: number): Promise<boolean> {
  const now = ctx.now();
  // Two statements, each decisive on its own: the first sight inserts the
  // claimed item; otherwise an unfinished item whose claim lapsed is taken over.
  const inserted = await insertIfAbsent(
    ctx,
    'deliveries',
    { delivery_id: deliveryId, event, received_at: now, payload, state: 'received', claimed_by: holder, claimed_until: now + ttlMs, attempts: 1 },
    ['delivery_id'],
  );
  if (inserted) return true;
  const r = await ctx.db
    .updateTable('deliveries')
    .set((eb) => ({ claimed_by: holder, claimed_until: now + ttlMs, payload: eb.fn.coalesce('payload', eb.val(payload)), attempts: eb('attempts', '+', 1) }))
    .where('delivery_id', '=', deliveryId)
    .where('state', '=', 'received')
    .where((eb) => eb.or([eb('claimed_until', 'is', null), eb('claimed_until', '<=', now)]))
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

export async function finishDelivery(ctx: Ctx, deliveryId: string): Promise<void> {
  await ctx.db.updateTable('deliveries').set({ state: 'done', claimed_by: null, claimed_until: null, payload: null }).where('delivery_id', '=', deliveryId).execute();
}

export async function renewDeliveries(ctx: Ctx, holder: string, ttlMs: number): Promise<number> {
  const r = await ctx.db.updateTable('deliveries').set({ claimed_until: ctx.now() + ttlMs }).where('claimed_by', '=', holder).where('state', '=', 'received').executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function releaseDeliveries(ctx: Ctx, holder: string, deliveryId?: string): Promise<number> {
  let q = ctx.db.updateTable('deliveries').set({ claimed_until: 0 }).where('claimed_by', '=', holder).where('state', '=', 'received');
  if (deliveryId !== undefined) q = q.where('delivery_id', '=', deliveryId);
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows);
}

export async function pendingDeliveries(ctx: Ctx, limit = 100): Promise<PendingDelivery[]> {
  const now = ctx.now();
  const rows = await ctx.db
    .selectFrom('deliveries')
    .selectAll()
    .where('state', '=', 'received')
    .where('payload', 'is not', null)
    .where((eb) => eb.or([eb('claimed_until', 'is', null), eb('claimed_until', '<=', now)]))
    .orderBy('received_at')
    .orderBy('delivery_id')
    .limit(Math.max(0, Math.floor(limit)))
    .execute();
  return rows.map(toPendingDelivery);
}

export async function pruneDeliveries(ctx: Ctx, receivedBefore: number): Promise<number> {
  const r = await ctx.db.deleteFrom('deliveries').where('received_at', '<', receivedBefore).executeTakeFirst();
  return Number(r.numDeletedRows);
}
