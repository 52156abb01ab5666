// Version 8: tasks are found by apply through an index on apply_id alone. The
// index on (apply_id, state) it replaces had an entry that moved on every
// journal write (each task's state changes at least twice), which doubled the
// cost of the executor's hottest statement on SQLite; no query needs state in
// the index (an apply's tasks are at most a few thousand rows, filtered after).
// The new index is made before the old one goes: MySQL's foreign key on
// apply_id needs one of them at every moment.
import { createIndex, kindOf, type Db } from './kit.js';

export async function up(db: Db): Promise<void> {
  const kind = kindOf(db);
  await createIndex(db, kind, 'tasks_apply', 'tasks', ['apply_id']);
  let drop = db.schema.dropIndex('tasks_apply_state');
  if (kind === 'mysql') drop = drop.on('tasks');
  else drop = drop.ifExists();
  try {
    await drop.execute();
  } catch (err) {
    // MySQL, re-run after an interruption: the old index is gone already (ER_CANT_DROP_FIELD_OR_KEY).
    if (kind === 'mysql' && (err as { errno?: number }).errno === 1091) return;
    throw err;
  }
}
