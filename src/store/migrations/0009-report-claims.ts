// Version 9: an apply's final report is claimed, sent, then marked reported.
// Before, the claim itself set reported_at, so a process that died between the
// claim and the sends lost the report for good. Now the claim records when and
// by whom it was taken (report_claimed_at, report_holder); reported_at is set
// once the sends are done, and recovery takes over a claim older than a lease
// and sends the report again (idempotently: the check run is updated by id, the
// outcome comment is found by its hidden marker, a deployment status already on
// GitHub is not repeated). Rows reported before this version stay reported.
// Also: PRs by head commit (a re-run of a check suite names the commit, and no
// PR when the head is in a fork).
import { createIndex, kindOf, tolerated, types, type Db } from './kit.js';

export async function up(db: Db): Promise<void> {
  const kind = kindOf(db);
  const t = types(kind);
  await tolerated(kind, db.schema.alterTable('applies').addColumn('report_claimed_at', t.bigint).execute());
  await tolerated(kind, db.schema.alterTable('applies').addColumn('report_holder', t.varchar(255)).execute());
  await createIndex(db, kind, 'pr_heads_by_head', 'pr_heads', ['repo', 'head_sha']);
}
