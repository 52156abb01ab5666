// Version 1: applies, operations, tasks, locks, plans, deliveries, containers,
// comments, leases — as the first hand-written migration created them.
import { appliedBeforeKysely, createIndex, createTable, kindOf, types, withSeq, type Db } from './kit.js';

export async function up(db: Db): Promise<void> {
  if (await appliedBeforeKysely(db, 1)) return;
  const kind = kindOf(db);
  const t = types(kind);

  await withSeq(kind, createTable(db, kind, 'applies'))
    .addColumn('id', t.varchar(36), (c) => c.notNull())
    .addColumn('repo', t.varchar(255), (c) => c.notNull())
    .addColumn('pr', t.int)
    .addColumn('environment', t.varchar(100), (c) => c.notNull())
    .addColumn('kind', t.varchar(16), (c) => c.notNull())
    .addColumn('actor', t.varchar(255), (c) => c.notNull())
    .addColumn('head_sha', t.varchar(64))
    .addColumn('desired_digest', t.varchar(255), (c) => c.notNull())
    .addColumn('plan_fingerprint', t.varchar(255))
    .addColumn('desired_json', t.longtext, (c) => c.notNull())
    .addColumn('state', t.varchar(32), (c) => c.notNull())
    .addColumn('version', t.int, (c) => c.notNull().defaultTo(0))
    .addColumn('stop_requested', t.flag, (c) => c.notNull().defaultTo(0))
    .addColumn('check_run_id', t.bigint)
    .addColumn('comment_id', t.bigint)
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .addColumn('started_at', t.bigint)
    .addColumn('finished_at', t.bigint)
    .addColumn('error', t.mediumtext)
    .addUniqueConstraint('applies_id', ['id'])
    .execute();
  await createIndex(db, kind, 'applies_repo_env', 'applies', ['repo', 'environment', 'seq']);
  await createIndex(db, kind, 'applies_repo_pr', 'applies', ['repo', 'pr']);
  await createIndex(db, kind, 'applies_state', 'applies', ['state']);

  await createTable(db, kind, 'apply_operations')
    .addColumn('id', t.varchar(36), (c) => c.primaryKey())
    .addColumn('apply_id', t.varchar(36), (c) => c.notNull())
    .addColumn('target', t.varchar(100), (c) => c.notNull())
    .addColumn('ordinal', t.int, (c) => c.notNull())
    .addColumn('state', t.varchar(32), (c) => c.notNull())
    .addColumn('version', t.int, (c) => c.notNull().defaultTo(0))
    .addColumn('started_at', t.bigint)
    .addColumn('finished_at', t.bigint)
    .addColumn('error', t.mediumtext)
    .addUniqueConstraint('operations_apply_ordinal', ['apply_id', 'ordinal'])
    .addForeignKeyConstraint('operations_apply_fk', ['apply_id'], 'applies', ['id'], (f) => f.onDelete('cascade'))
    .execute();

  await createTable(db, kind, 'tasks')
    .addColumn('id', t.varchar(36), (c) => c.primaryKey())
    .addColumn('operation_id', t.varchar(36), (c) => c.notNull())
    .addColumn('apply_id', t.varchar(36), (c) => c.notNull())
    .addColumn('node_id', t.int, (c) => c.notNull())
    .addColumn('kind', t.varchar(64), (c) => c.notNull())
    .addColumn('resource', t.varchar(1024), (c) => c.notNull())
    .addColumn('reason', t.text, (c) => c.notNull())
    .addColumn('deps', t.longtext, (c) => c.notNull())
    .addColumn('node_json', t.longtext, (c) => c.notNull())
    .addColumn('state', t.varchar(16), (c) => c.notNull())
    .addColumn('version', t.int, (c) => c.notNull().defaultTo(0))
    .addColumn('error', t.mediumtext)
    .addColumn('result', t.text)
    .addColumn('started_at', t.bigint)
    .addColumn('finished_at', t.bigint)
    .addUniqueConstraint('tasks_operation_node', ['operation_id', 'node_id'])
    .addForeignKeyConstraint('tasks_operation_fk', ['operation_id'], 'apply_operations', ['id'], (f) => f.onDelete('cascade'))
    .addForeignKeyConstraint('tasks_apply_fk', ['apply_id'], 'applies', ['id'], (f) => f.onDelete('cascade'))
    .execute();
  await createIndex(db, kind, 'tasks_apply_state', 'tasks', ['apply_id', 'state']);

  await createTable(db, kind, 'locks')
    .addColumn('repo', t.varchar(255), (c) => c.notNull())
    .addColumn('environment', t.varchar(100), (c) => c.notNull())
    .addColumn('owner', t.varchar(300), (c) => c.notNull())
    .addColumn('pr', t.int, (c) => c.notNull())
    .addColumn('apply_id', t.varchar(36))
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('locks_pk', ['repo', 'environment'])
    .execute();
  await createIndex(db, kind, 'locks_repo_pr', 'locks', ['repo', 'pr']);

  await withSeq(kind, createTable(db, kind, 'plans'))
    .addColumn('id', t.varchar(36), (c) => c.notNull())
    .addColumn('repo', t.varchar(255), (c) => c.notNull())
    .addColumn('pr', t.int)
    .addColumn('environment', t.varchar(100), (c) => c.notNull())
    .addColumn('head_sha', t.varchar(64), (c) => c.notNull())
    .addColumn('fingerprint', t.varchar(255), (c) => c.notNull())
    .addColumn('desired_digest', t.varchar(255), (c) => c.notNull())
    .addColumn('observed_digest', t.varchar(255), (c) => c.notNull())
    .addColumn('plan_json', t.longtext, (c) => c.notNull())
    .addColumn('rendered', t.longtext, (c) => c.notNull())
    .addColumn('created_at', t.bigint, (c) => c.notNull())
    .addUniqueConstraint('plans_id', ['id'])
    .execute();
  await createIndex(db, kind, 'plans_repo_pr_env', 'plans', ['repo', 'pr', 'environment', 'seq']);

  await createTable(db, kind, 'deliveries')
    .addColumn('delivery_id', t.varchar(100), (c) => c.primaryKey())
    .addColumn('event', t.varchar(100), (c) => c.notNull())
    .addColumn('received_at', t.bigint, (c) => c.notNull())
    .execute();
  await createIndex(db, kind, 'deliveries_received', 'deliveries', ['received_at']);

  await createTable(db, kind, 'containers')
    .addColumn('target', t.varchar(100), (c) => c.notNull())
    .addColumn('container_id', t.varchar(128), (c) => c.notNull())
    .addColumn('project', t.varchar(100), (c) => c.notNull())
    .addColumn('environment', t.varchar(100), (c) => c.notNull())
    .addColumn('service', t.varchar(255), (c) => c.notNull())
    .addColumn('replica', t.int, (c) => c.notNull())
    .addColumn('name', t.varchar(255), (c) => c.notNull())
    .addColumn('state', t.varchar(16), (c) => c.notNull())
    .addColumn('config_hash', t.varchar(128), (c) => c.notNull())
    .addColumn('apply_id', t.varchar(36))
    .addColumn('seen_at', t.bigint, (c) => c.notNull())
    .addColumn('updated_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('containers_pk', ['target', 'container_id'])
    .execute();

  await createTable(db, kind, 'comments')
    .addColumn('repo', t.varchar(255), (c) => c.notNull())
    .addColumn('pr', t.int, (c) => c.notNull())
    .addColumn('comment_ids', t.text, (c) => c.notNull())
    .addColumn('updated_at', t.bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('comments_pk', ['repo', 'pr'])
    .execute();

  await createTable(db, kind, 'leases')
    .addColumn('name', t.varchar(191), (c) => c.primaryKey())
    .addColumn('holder', t.varchar(255), (c) => c.notNull())
    .addColumn('expires_at', t.bigint, (c) => c.notNull())
    .execute();
}
