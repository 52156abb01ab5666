// What the migrations share: which database they run on, the column types per
// database (the same types the hand-written migrations used before Kysely,
// so a database made by either looks the same), and the tolerance MySQL needs.
// Migrations import nothing from the rest of src/: a migration is history and
// must not change when the store's code does.
//
// Re-runnable: MySQL commits every DDL statement on its own, so a migration
// interrupted half-way is run again from its start on the next open: tables
// are created IF NOT EXISTS, and an index or column that already exists
// (errno 1060/1061) counts as done. SQLite and PostgreSQL run each migration
// in one transaction.
import { MysqlAdapter, PostgresAdapter, sql } from 'kysely';
import type { ColumnDataType, CreateTableBuilder, Expression, Kysely } from 'kysely';

export type Db = Kysely<any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- migrations see the schema as it was then
export type Kind = 'sqlite' | 'mysql' | 'postgres';

export function kindOf(db: Db): Kind {
  const adapter = db.getExecutor().adapter;
  if (adapter instanceof MysqlAdapter) return 'mysql';
  if (adapter instanceof PostgresAdapter) return 'postgres';
  return 'sqlite';
}

type Type = ColumnDataType | Expression<unknown>;

/** Column types: SQLite's affinities, MySQL's sized types, PostgreSQL's text and bigint. */
export function types(kind: Kind) {
  const my = kind === 'mysql';
  const pg = kind === 'postgres';
  return {
    /** a short string, at most n characters on MySQL (where it is indexable) */
    varchar: (n: number): Type => (my ? (`varchar(${n})` as ColumnDataType) : 'text'),
    text: 'text' as Type,
    mediumtext: (my ? sql`mediumtext` : 'text') as Type,
    longtext: (my ? sql`longtext` : 'text') as Type,
    int: 'integer' as Type,
    /** epoch milliseconds, GitHub ids */
    bigint: (kind === 'sqlite' ? 'integer' : 'bigint') as Type,
    /** 0/1 */
    flag: (my ? sql`tinyint(1)` : pg ? 'smallint' : 'integer') as Type,
  };
}

/** An auto-increment primary key `seq` (insertion order). */
export function withSeq<T extends string>(kind: Kind, t: CreateTableBuilder<T, never>): CreateTableBuilder<T, 'seq'> {
  if (kind === 'sqlite') return t.addColumn('seq', 'integer', (c) => c.primaryKey().autoIncrement());
  if (kind === 'postgres') return t.addColumn('seq', 'bigserial', (c) => c.primaryKey());
  return t.addColumn('seq', 'bigint', (c) => c.notNull().autoIncrement().primaryKey());
}

/** CREATE TABLE IF NOT EXISTS, with MySQL's engine and a binary (case-sensitive) collation. */
export function createTable(db: Db, kind: Kind, name: string): CreateTableBuilder<string, never> {
  const t = db.schema.createTable(name).ifNotExists();
  return kind === 'mysql' ? t.modifyEnd(sql`ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`) : t;
}

/** CREATE [UNIQUE] INDEX, IF NOT EXISTS where the database says so, "already exists" tolerated on MySQL. */
export async function createIndex(db: Db, kind: Kind, name: string, table: string, columns: string[], unique = false): Promise<void> {
  let b = db.schema.createIndex(name).on(table).columns(columns);
  if (unique) b = b.unique();
  if (kind !== 'mysql') b = b.ifNotExists();
  await tolerated(kind, b.execute());
}

/** ER_DUP_FIELDNAME, ER_DUP_KEYNAME: the column or index a statement adds is there already. */
const ALREADY_THERE = [1060, 1061];

/**
 * A MySQL statement that an earlier, interrupted run of its migration already
 * made counts as done: by default one whose object already exists; `done`
 * names other MySQL error numbers that mean the same for it.
 */
export async function tolerated(kind: Kind, run: Promise<unknown>, done: readonly number[] = ALREADY_THERE): Promise<void> {
  try {
    await run;
  } catch (err) {
    const n = (err as { errno?: number }).errno;
    if (kind === 'mysql' && n !== undefined && done.includes(n)) return;
    throw err;
  }
}

/**
 * True when the hand-written migrations berth used before Kysely already
 * applied version `n` to this database (they recorded it in
 * schema_migrations): the Kysely migration of the same number then has
 * nothing to do, and is only recorded.
 */
export async function appliedBeforeKysely(db: Db, n: number): Promise<boolean> {
  const tables = await db.introspection.getTables();
  if (!tables.some((t) => t.name === 'schema_migrations')) return false;
  const row = await db.selectFrom('schema_migrations').select('version').where('version', '=', n).executeTakeFirst();
  return row !== undefined;
}
