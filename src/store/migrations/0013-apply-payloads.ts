// Version 13: an apply's desired state (the payload its driver runs, tens of
// kilobytes for a large stack) in a table of its own. In the applies row it
// made every write of that row (each state compare-and-set, the stop flag,
// the report claim) rewrite the whole payload, and every read of a state past
// it walk the payload's overflow pages on SQLite: an apply's bookkeeping cost
// grew with the size of its stack. Existing payloads are moved, then the
// column is dropped.
//
// Re-runnable on MySQL (each DDL statement commits by itself): the copy takes
// only rows not yet copied, and a copy or drop that finds the column already
// gone (an interrupted earlier run dropped it) counts as done.
import { sql } from 'kysely';
import { createTable, kindOf, tolerated, types, type Db } from './kit.js';

/** ER_BAD_FIELD_ERROR, ER_CANT_DROP_FIELD_OR_KEY: the column is gone (an interrupted run dropped it). */
const COLUMN_GONE = [1054, 1091];

export async function up(db: Db): Promise<void> {
  const kind = kindOf(db);
  const t = types(kind);
  await createTable(db, kind, 'apply_payloads')
    .addColumn('apply_id', t.varchar(36), (c) => c.primaryKey())
    .addColumn('desired_json', t.longtext, (c) => c.notNull())
    .execute();
  await tolerated(
    kind,
    sql`INSERT INTO apply_payloads (apply_id, desired_json)
        SELECT a.id, a.desired_json FROM applies a
        WHERE NOT EXISTS (SELECT 1 FROM apply_payloads p WHERE p.apply_id = a.id)`.execute(db),
    COLUMN_GONE,
  );
  await tolerated(kind, db.schema.alterTable('applies').dropColumn('desired_json').execute(), COLUMN_GONE);
}
