// Version 12: the PR comment whose command made an apply. A delivery whose
// process ended while it was handled is run again by the next start; its
// `/apply` must find the apply it already made, not make another (or answer
// that the host it is changing moved). Rows from before name none.
import { createIndex, kindOf, tolerated, types, type Db } from './kit.js';

export async function up(db: Db): Promise<void> {
  const kind = kindOf(db);
  const t = types(kind);
  await tolerated(kind, db.schema.alterTable('applies').addColumn('command_comment_id', t.bigint).execute());
  await createIndex(db, kind, 'applies_command_comment', 'applies', ['repo', 'command_comment_id']);
}
