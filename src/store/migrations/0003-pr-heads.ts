// Version 3: when berth first saw each head of a PR (a command is only valid
// for a head seen before it was written).
import { appliedBeforeKysely, createTable, kindOf, types, type Db } from './kit.js';

export async function up(db: Db): Promise<void> {
  if (await appliedBeforeKysely(db, 3)) return;
  const kind = kindOf(db);
  const t = types(kind);
  await createTable(db, kind, 'pr_heads')
    .addColumn('repo', t.varchar(255), (c) => c.notNull())
    .addColumn('pr', t.int, (c) => c.notNull())
    .addColumn('head_sha', t.varchar(64), (c) => c.notNull())
    .addColumn('seen_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('pr_heads_pk', ['repo', 'pr', 'head_sha'])
    .execute();
}
