// Version 6: server-side secrets per repository and environment, encrypted at rest (issue 18).
import { appliedBeforeKysely, createTable, kindOf, types, type Db } from './kit.js';

export async function up(db: Db): Promise<void> {
  if (await appliedBeforeKysely(db, 6)) return;
  const kind = kindOf(db);
  const t = types(kind);
  await createTable(db, kind, 'secrets')
    .addColumn('repo', t.varchar(255), (c) => c.notNull())
    .addColumn('environment', t.varchar(100), (c) => c.notNull())
    .addColumn('name', t.varchar(191), (c) => c.notNull())
    .addColumn('key_id', t.varchar(64), (c) => c.notNull())
    .addColumn('nonce', t.varchar(64), (c) => c.notNull())
    .addColumn('ciphertext', t.mediumtext, (c) => c.notNull())
    .addColumn('value_hash', t.varchar(128), (c) => c.notNull())
    .addColumn('set_by', t.varchar(255), (c) => c.notNull())
    .addColumn('set_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('secrets_pk', ['repo', 'environment', 'name'])
    .execute();
}
