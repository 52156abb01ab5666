// Version 4: one driver, durable work — one live apply per environment (a
// unique index over a column that is NULL once the apply ended: NULLs never
// collide), the report claim, lease tokens (fencing), deliveries as work items.
import { sql } from 'kysely';
import { appliedBeforeKysely, createIndex, kindOf, tolerated, types, type Db } from './kit.js';

const IN_FLIGHT = sql.raw("'pending', 'running', 'running_degraded', 'stopping'");

export async function up(db: Db): Promise<void> {
  if (await appliedBeforeKysely(db, 4)) return;
  const kind = kindOf(db);
  const t = types(kind);
  const addColumn = (table: string, column: string, type: ReturnType<typeof types>['text'], notNullDefault?: string) =>
    tolerated(
      kind,
      db.schema
        .alterTable(table)
        .addColumn(column, type, (c) => (notNullDefault === undefined ? c : c.notNull().defaultTo(notNullDefault)))
        .execute(),
    );

  await addColumn('applies', 'live', kind === 'mysql' ? sql`tinyint` : t.int);
  await addColumn('applies', 'reported_at', t.bigint);
  // An apply in flight when this ran (the newest one per environment) is the live one.
  if (kind === 'mysql') {
    await sql`UPDATE applies a JOIN (SELECT MAX(seq) AS seq FROM applies WHERE state IN (${IN_FLIGHT}) GROUP BY repo, environment) m
              ON a.seq = m.seq SET a.live = 1`.execute(db);
  } else {
    await sql`UPDATE applies SET live = 1 WHERE state IN (${IN_FLIGHT}) AND seq = (
                SELECT MAX(b.seq) FROM applies b WHERE b.repo = applies.repo AND b.environment = applies.environment AND b.state IN (${IN_FLIGHT}))`.execute(db);
  }
  await sql`UPDATE applies SET reported_at = COALESCE(finished_at, created_at) WHERE state NOT IN (${IN_FLIGHT}) AND reported_at IS NULL`.execute(db);
  await createIndex(db, kind, 'applies_live', 'applies', ['repo', 'environment', 'live'], true);

  await addColumn('leases', 'token', t.varchar(64));
  await addColumn('deliveries', 'payload', t.longtext);
  await addColumn('deliveries', 'state', t.varchar(16), 'done');
  await addColumn('deliveries', 'claimed_by', t.varchar(255));
  await addColumn('deliveries', 'claimed_until', t.bigint);
  await createIndex(db, kind, 'deliveries_state', 'deliveries', ['state', 'received_at']);
}
