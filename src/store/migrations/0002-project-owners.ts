// Version 2: which repository owns a project on a target.
import { appliedBeforeKysely, createTable, kindOf, types, type Db } from './kit.js';

export async function up(db: Db): Promise<void> {
  if (await appliedBeforeKysely(db, 2)) return;
  const kind = kindOf(db);
  const t = types(kind);
  await createTable(db, kind, 'project_owners')
    .addColumn('target', t.varchar(100), (c) => c.notNull())
    .addColumn('project', t.varchar(100), (c) => c.notNull())
    .addColumn('repo', t.varchar(255), (c) => c.notNull())
    .addColumn('claimed_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('project_owners_pk', ['target', 'project'])
    .execute();
}
