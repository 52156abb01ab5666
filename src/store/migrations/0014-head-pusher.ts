// Version 14: who pushed each head of a PR (the sender of its `opened` or
// `synchronize` webhook). GitHub's "approval of the most recent reviewable
// push" rule: the person who pushed the current head cannot approve it for
// someone else's PR. Rows from before name nobody.
import { kindOf, tolerated, types, type Db } from './kit.js';

export async function up(db: Db): Promise<void> {
  const kind = kindOf(db);
  const t = types(kind);
  await tolerated(kind, db.schema.alterTable('pr_heads').addColumn('pushed_by', t.varchar(255)).execute());
}
