// Version 10: file texts by their Git blob name, per repository — the shared
// tier of the GitHub commit cache (github/commit-cache.ts). A process keeps
// what it read in memory; this table lets a restarted process, or another
// replica, plan a head whose compose files it never read without reading them
// again. A row is written only for text that hashes to its blob name, and is
// dropped a while after it was stored (the next read stores it again).
import { createIndex, createTable, kindOf, types, type Db } from './kit.js';

export async function up(db: Db): Promise<void> {
  const kind = kindOf(db);
  const t = types(kind);
  await createTable(db, kind, 'file_blobs')
    .addColumn('repo', t.varchar(255), (c) => c.notNull())
    .addColumn('blob', t.varchar(64), (c) => c.notNull())
    .addColumn('text', t.mediumtext, (c) => c.notNull())
    .addColumn('stored_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('file_blobs_pk', ['repo', 'blob'])
    .execute();
  await createIndex(db, kind, 'file_blobs_stored', 'file_blobs', ['stored_at']);
}
