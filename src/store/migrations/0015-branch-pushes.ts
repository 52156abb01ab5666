// Version 15: who pushed each commit that became a branch's head (the sender
// of its `push` webhook). A PR's head is not always pushed by whoever its PR
// events name: a branch pushed by one person and opened as a PR by another,
// or a push to a closed PR's branch (GitHub sends no `synchronize` then, only
// the `push`, and the PR takes the head when reopened). Every pusher of a
// commit is kept: their approval of it does not count.
import { createTable, kindOf, types, type Db } from './kit.js';

export async function up(db: Db): Promise<void> {
  const kind = kindOf(db);
  const t = types(kind);
  await createTable(db, kind, 'branch_pushes')
    .addColumn('repo', t.varchar(255), (c) => c.notNull())
    .addColumn('head_sha', t.varchar(64), (c) => c.notNull())
    .addColumn('pushed_by', t.varchar(255), (c) => c.notNull())
    .addColumn('seen_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('branch_pushes_pk', ['repo', 'head_sha', 'pushed_by'])
    .execute();
}
