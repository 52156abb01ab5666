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
import { createTable, kindOf, types, type Db, type Kind } from './kit.js';

export async function up(db: Db): Promise<void> {
  const kind = kindOf(db);
  const t = types(kind);
  await createTable(db, kind, 'apply_payloads')
    .addColumn('apply_id', t.varchar(36), (c) => c.primaryKey())
    .addColumn('desired_json', t.longtext, (c) => c.notNull())
    .execute();
  await columnGone(
    kind,
    sql`INSERT INTO apply_payloads (apply_id, desired_json)
        SELECT a.id, a.desired_json FROM applies a
        WHERE NOT EXISTS (SELECT 1 FROM apply_payloads p WHERE p.apply_id = a.id)`.execute(db),
  );
  await columnGone(kind, db.schema.alterTable('applies').dropColumn('desired_json').execute());
}

/** MySQL: a statement that names the dropped column after an interrupted run dropped it (unknown column, can't drop) is done. */
async function columnGone(kind: Kind, run: Promise<unknown>): Promise<void> {
  try {
    await run;
  } catch (err) {
    const n = (err as { errno?: number }).errno;
    if (kind === 'mysql' && (n === 1054 || n === 1091)) return; // ER_BAD_FIELD_ERROR, ER_CANT_DROP_FIELD_OR_KEY
    throw err;
  }
}
