// Version 7: recovery reports ended applies whose report was never claimed
// (a process died between an apply's end and its report). An index finds
// them (reported_at IS NULL) without a scan of every apply ever made. What
// ended before this version is settled: CLI applies (they report on the
// terminal and never claimed anything) and applies that ended more than a day
// ago are marked reported, so an upgrade posts no outcomes of the past; a
// PR's apply that ended within the day with its report lost is reported.
import { sql } from 'kysely';
import { createIndex, kindOf, type Db } from './kit.js';

const IN_FLIGHT = sql.raw("'pending', 'running', 'running_degraded', 'stopping'");

export async function up(db: Db): Promise<void> {
  const kind = kindOf(db);
  const dayAgo = Date.now() - 86_400_000;
  await sql`UPDATE applies SET reported_at = COALESCE(finished_at, created_at)
            WHERE reported_at IS NULL AND state NOT IN (${IN_FLIGHT}) AND (pr IS NULL OR COALESCE(finished_at, created_at) < ${dayAgo})`.execute(db);
  await createIndex(db, kind, 'applies_reported', 'applies', ['reported_at']);
}
