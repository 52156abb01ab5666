// Version 5: the GitHub deployment each apply is reported as (issue 14).
import { appliedBeforeKysely, createIndex, createTable, kindOf, types, type Db } from './kit.js';

export async function up(db: Db): Promise<void> {
  if (await appliedBeforeKysely(db, 5)) return;
  const kind = kindOf(db);
  const t = types(kind);
  await createTable(db, kind, 'deployments')
    .addColumn('apply_id', t.varchar(64), (c) => c.primaryKey())
    .addColumn('repo', t.varchar(255), (c) => c.notNull())
    .addColumn('environment', t.varchar(100), (c) => c.notNull())
    .addColumn('spec', t.text, (c) => c.notNull())
    .addColumn('deployment_id', t.bigint)
    .addColumn('state', t.varchar(16))
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .execute();
  await createIndex(db, kind, 'deployments_env', 'deployments', ['repo', 'environment', 'created_at']);
}
