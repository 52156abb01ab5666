// The executor's journal writes (task transitions, state compare-and-set) are
// the store's hot path. Building and compiling a Kysely query costs about as
// much as SQLite running it, so these few statements are compiled once per
// dialect and shape, with named placeholders, and afterwards only their
// parameters change. Nothing here knows any table; callers name the shape.
import { CompiledQuery } from 'kysely';
import type { Compilable } from 'kysely';
import type { DialectName } from './dialect.js';

const PLACEHOLDER = '\u0000berth-param:';

interface Template {
  sql: string;
  /** per parameter position: the name of the value to bind, or a constant of the query */
  slots: ({ name: string } | { constant: unknown })[];
}

const templates = new Map<string, Template>();

/**
 * The query `build` makes, compiled once per (dialect, shape) and bound to
 * `values`. `param(name)` stands for `values[name]` wherever a value goes.
 * `shape` must change whenever the SQL would (e.g. which columns a patch sets).
 */
export function prepared(
  dialect: DialectName,
  shape: string,
  build: (param: (name: string) => never) => Compilable,
  values: Record<string, unknown>,
): CompiledQuery {
  const q = preparedSql(dialect, shape, build, (name) => {
    if (!(name in values)) throw new Error(`prepared ${shape}: no value for ${name}`);
    return values[name];
  });
  return CompiledQuery.raw(q.sql, q.parameters);
}

/**
 * The same statement as plain SQL and positional values, each value asked of
 * `value(name)`: no query node, no object of values. For the synchronous
 * SQLite journal, which binds hundreds of these on an apply's critical path.
 */
export function preparedSql(
  dialect: DialectName,
  shape: string,
  build: (param: (name: string) => never) => Compilable,
  value: (name: string) => unknown,
): { sql: string; parameters: unknown[] } {
  const key = `${dialect}\u0000${shape}`;
  let t = templates.get(key);
  if (!t) {
    const compiled = build((name) => `${PLACEHOLDER}${name}` as never).compile();
    t = {
      sql: compiled.sql,
      slots: compiled.parameters.map((v) => (typeof v === 'string' && v.startsWith(PLACEHOLDER) ? { name: v.slice(PLACEHOLDER.length) } : { constant: v })),
    };
    templates.set(key, t);
  }
  return { sql: t.sql, parameters: t.slots.map((s) => ('constant' in s ? s.constant : value(s.name))) };
}

