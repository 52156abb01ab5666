// Kysely's migrator over berth's one set of migrations (a file per version,
// named in order). Every backend runs the same migrations; what differs (column
// types, MySQL's non-transactional DDL) is decided inside them (kit.ts).
// Kysely records what ran in kysely_migration and serialises concurrent
// migrators (an advisory lock on MySQL/PostgreSQL; on SQLite the migration's
// transaction begins IMMEDIATE, see ../dialect.ts). A database migrated by the
// hand-written migrations before Kysely (schema_migrations) is recognised:
// the versions it recorded are not run again, only recorded.
import { Migrator } from 'kysely';
import type { Kysely, Migration, MigrationProvider } from 'kysely';
import * as m0001 from './0001-initial.js';
import * as m0002 from './0002-project-owners.js';
import * as m0003 from './0003-pr-heads.js';
import * as m0004 from './0004-one-driver.js';
import * as m0005 from './0005-deployments.js';
import * as m0006 from './0006-secrets.js';
import * as m0007 from './0007-owed-reports.js';
import * as m0008 from './0008-task-apply-index.js';
import * as m0009 from './0009-report-claims.js';
import * as m0010 from './0010-file-blobs.js';
import * as m0011 from './0011-delivery-attempts.js';
import * as m0012 from './0012-apply-command.js';
import * as m0013 from './0013-apply-payloads.js';
import * as m0014 from './0014-head-pusher.js';
import * as m0015 from './0015-branch-pushes.js';

export const MIGRATIONS: Record<string, Migration> = {
  '0001-initial': m0001,
  '0002-project-owners': m0002,
  '0003-pr-heads': m0003,
  '0004-one-driver': m0004,
  '0005-deployments': m0005,
  '0006-secrets': m0006,
  '0007-owed-reports': m0007,
  '0008-task-apply-index': m0008,
  '0009-report-claims': m0009,
  '0010-file-blobs': m0010,
  '0011-delivery-attempts': m0011,
  '0012-apply-command': m0012,
  '0013-apply-payloads': m0013,
  '0014-head-pusher': m0014,
  '0015-branch-pushes': m0015,
};

export const MIGRATION_NAMES = Object.keys(MIGRATIONS).sort();

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

/** Runs every pending migration; the names it ran (empty when up to date). Throws the first failure. */
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName;
    if (failed && error instanceof Error) error.message = `migration ${failed} failed: ${error.message}`;
    throw error;
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
