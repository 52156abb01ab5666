// Operations and tasks: reads in plan order, and the journal — every task
// transition a compare-and-set on its state, optionally fenced by the driver's
// lease (a driver that lost its lease writes nothing), several in one
// transaction (group commit).
import { sql } from 'kysely';
import { lockingRead, runQuery, writeTransaction, type Ctx, type SyncQuery, type SyncResult } from '../dialect.js';
import { prepared, preparedSql } from '../prepared.js';
import { toOperation, toTask, unique, type DbRow } from '../rows.js';
import type { AggregatePatch, Fence, OperationRow, TaskPatch, TaskRow, TaskUpdate } from '../store.js';
import { aggregateSet } from './applies.js';

export async function listOperations(ctx: Ctx, applyId: string): Promise<OperationRow[]> {
  return (await ctx.db.selectFrom('apply_operations').selectAll().where('apply_id', '=', applyId).orderBy('ordinal').execute()).map(toOperation);
}

export async function getOperation(ctx: Ctx, id: string): Promise<OperationRow | undefined> {
  // Read by its driver at every settle of its state: a prepared statement (runQuery).
  const { rows } = await runQuery(ctx, prepared(ctx.dialect, 'operation', (p) => ctx.db.selectFrom('apply_operations').selectAll().where('id', '=', p('id')), { id }));
  const r = rows[0] as DbRow | undefined;
  return r && toOperation(r);
}

export async function casOperationState(ctx: Ctx, id: string, expectedVersion: number, patch: AggregatePatch): Promise<boolean> {
  const set = aggregateSet(patch);
  const columns = Object.keys(set);
  const r = await runQuery(
    ctx,
    prepared(
      ctx.dialect,
      `operation-cas:${columns.join(',')}`,
      (p) =>
        ctx.db
          .updateTable('apply_operations')
          .set((eb) => ({ ...Object.fromEntries(columns.map((c) => [c, p(c)])), version: eb('version', '+', 1) }))
          .where('id', '=', p('id'))
          .where('version', '=', p('expectedVersion')),
      { ...set, id, expectedVersion },
    ),
  );
  return r.changes === 1;
}

export async function listTasks(ctx: Ctx, operationId: string): Promise<TaskRow[]> {
  return (await ctx.db.selectFrom('tasks').selectAll().where('operation_id', '=', operationId).orderBy('node_id').execute()).map(toTask);
}

export async function listTasksForApply(ctx: Ctx, applyId: string): Promise<TaskRow[]> {
  const rows = await ctx.db
    .selectFrom('tasks as t')
    .innerJoin('apply_operations as o', 'o.id', 't.operation_id')
    .selectAll('t')
    .where('t.apply_id', '=', applyId)
    .orderBy('o.ordinal')
    .orderBy('t.node_id')
    .execute();
  return rows.map(toTask);
}

export async function getTask(ctx: Ctx, id: string): Promise<TaskRow | undefined> {
  const r = await ctx.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirst();
  return r && toTask(r);
}

/** The SET of a journal write: state and version always, the rest only when present in the patch. */
function taskSet(patch: TaskPatch) {
  return {
    state: patch.state,
    ...(patch.error !== undefined ? { error: patch.error } : {}),
    ...(patch.result !== undefined ? { result: patch.result } : {}),
    ...(patch.startedAt !== undefined ? { started_at: patch.startedAt } : {}),
    ...(patch.finishedAt !== undefined ? { finished_at: patch.finishedAt } : {}),
  };
}

export async function updateTasks(ctx: Ctx, updates: readonly TaskUpdate[], fence?: Fence): Promise<boolean[]> {
  if (!updates.length) return [];
  // SQLite: one synchronous transaction, cached statements (dialect.ts, SyncSqlite). Identical writes go
  // together; when one of them loses its compare-and-set, the transaction is undone and each write made alone.
  if (ctx.sync) {
    const sync = ctx.sync;
    return sync.transaction(ctx.db, (run) => writeJournalSync(ctx, run, updates, fence, true)).catch((err: unknown) => {
      if (!(err instanceof NotEveryRow)) throw err;
      return sync.transaction(ctx.db, (run) => writeJournalSync(ctx, run, updates, fence, false));
    });
  }
  // Writes of distinct tasks that set the same columns from the same expected states (a wave of
  // tasks starting or finishing together) go as one statement per group: a column whose value differs
  // between them (a finish time, a container id) is set by a CASE on the task id. That statement is
  // the answer only when it changed every task it names, i.e. each task's own compare-and-set would
  // have won; otherwise the transaction is undone and every write made by itself, in order, as below.
  const groups = similarWrites(updates);
  if (groups) {
    try {
      return await writeTransaction(ctx, (trx) => writeJournal(trx, updates, fence, groups));
    } catch (err) {
      if (!(err instanceof NotEveryRow)) throw err;
    }
  }
  return writeTransaction(ctx, (trx) => writeJournal(trx, updates, fence));
}

/** A grouped statement matched fewer tasks than it names: undo, and write one by one. */
class NotEveryRow extends Error {}

/** Most tasks one grouped statement names (its id list is padded to a power of two, so few statement shapes exist). */
const GROUP_MAX = 256;
/** … when some column differs between them (each CASE arm is compared per row: keep it short). */
const CASE_GROUP_MAX = 64;

/** Indexes of `updates` by similar write (same expected states, same columns), when the tasks are distinct and some group has two; undefined otherwise. */
function similarWrites(updates: readonly TaskUpdate[]): number[][] | undefined {
  if (updates.length < 2 || new Set(updates.map((u) => u.id)).size !== updates.length) return undefined;
  const by = new Map<string, { same: string; all: number[] }[]>();
  updates.forEach((u, i) => {
    const expected = unique(typeof u.expected === 'string' ? [u.expected] : [...u.expected]).sort();
    const set = taskSet(u.patch);
    const key = JSON.stringify([expected, Object.keys(set).sort()]);
    const same = JSON.stringify(set);
    const list = by.get(key);
    if (list) list.push({ same, all: [i] });
    else by.set(key, [{ same, all: [i] }]);
  });
  const groups: number[][] = [];
  for (const list of by.values()) {
    const indexes = list.flatMap((x) => x.all);
    const uniform = list.every((x) => x.same === list[0]!.same);
    const max = uniform ? GROUP_MAX : CASE_GROUP_MAX;
    for (let i = 0; i < indexes.length; i += max) groups.push(indexes.slice(i, i + max));
  }
  return groups.length < updates.length ? groups : undefined;
}

/** A journal column given per task: `CASE id WHEN … THEN … END`; integers are cast (PostgreSQL types a CASE of parameters as text). */
function perTask(trx: Ctx, column: string, arms: number, p: (name: string) => never) {
  const value = (k: number) => {
    const v = p(`${column}${k}`);
    if (!INTEGER_COLUMNS.has(column) || trx.dialect === 'sqlite') return sql`${v}`;
    return trx.dialect === 'mysql' ? sql`cast(${v} as signed)` : sql`cast(${v} as bigint)`;
  };
  const when = Array.from({ length: arms }, (_, k) => sql`when ${p(`w${k}`)} then ${value(k)}`);
  return sql`case ${sql.ref('id')} ${sql.join(when, sql` `)} end`;
}

const INTEGER_COLUMNS = new Set(['started_at', 'finished_at']);

/** Whether the driver still holds its lease: the lease row with its holder and token (locked shared where rows lock). */
function fenceQuery(ctx: Ctx, fence: Fence) {
  return prepared(
    ctx.dialect,
    'fence',
    (p) => lockingRead(ctx.dialect, ctx.db.selectFrom('leases').select('name').where('name', '=', p('lease')).where('holder', '=', p('holder')).where('token', '=', p('token')), 'share'),
    { lease: fence.lease, holder: fence.holder, token: fence.token },
  );
}

/** One task's compare-and-set: its patch, if its state is one of `expected` (non-empty). */
function taskQuery(ctx: Ctx, u: TaskUpdate, expected: readonly string[]) {
  const set = taskSet(u.patch);
  const columns = Object.keys(set);
  return prepared(ctx.dialect, taskShape(columns, expected.length), taskUpdate(ctx, columns, expected.length), {
    ...set,
    id: u.id,
    ...Object.fromEntries(expected.map((e, i) => [`expected${i}`, e])),
  });
}

/** The name of a task compare-and-set's statement: the columns it sets and how many expected states it allows. */
const taskShape = (columns: readonly string[], expected: number) => `task:${columns.join(',')}:${expected}`;

/** A task compare-and-set setting `columns` (values named after them), by `id`, if the state is one of `expected0…`. */
function taskUpdate(ctx: Ctx, columns: readonly string[], expected: number) {
  return (p: (name: string) => never) =>
    ctx.db
      .updateTable('tasks')
      .set((eb) => ({ ...Object.fromEntries(columns.map((c) => [c, p(c)])), version: eb('version', '+', 1) }))
      .where('id', '=', p('id'))
      .where('state', 'in', Array.from({ length: expected }, (_, i) => p(`expected${i}`)));
}

/**
 * The journal on SQLite: the same fence and compare-and-sets, run
 * synchronously inside one transaction. A statement costs a few microseconds
 * here, so only writes that are the same but for the task (a wave of tasks
 * starting in one millisecond, or finishing in one) share a statement: one
 * UPDATE … WHERE id IN (…) rewrites the rows for about two thirds of what as
 * many statements cost. Writes whose values differ (CASE arms, as
 * writeJournal has for a server across the network) are each made alone.
 * `grouped` false: every write alone (after a group lost a compare-and-set).
 */
function writeJournalSync(ctx: Ctx, run: (q: SyncQuery) => SyncResult, updates: readonly TaskUpdate[], fence: Fence | undefined, grouped: boolean): boolean[] {
  if (fence && run(fenceQuery(ctx, fence)).rows.length === 0) return updates.map(() => false);
  const alone = (u: TaskUpdate) => {
    if (typeof u.expected === 'string') return run(syncTaskQuery(ctx, u.patch, u.id, [u.expected])).changes === 1;
    const expected = unique([...u.expected]);
    return expected.length > 0 && run(syncTaskQuery(ctx, u.patch, u.id, expected)).changes === 1;
  };
  const groups = grouped ? identicalWrites(updates) : undefined;
  if (!groups) return updates.map(alone);
  const out = new Array<boolean>(updates.length);
  for (const indexes of groups) {
    if (indexes.length === 1) {
      out[indexes[0]!] = alone(updates[indexes[0]!]!);
      continue;
    }
    const u = updates[indexes[0]!]!;
    if (run(syncGroupQuery(ctx, u, indexes.map((i) => updates[i]!.id))).changes !== indexes.length) throw new NotEveryRow();
    for (const i of indexes) out[i] = true;
  }
  return out;
}

/** Most tasks one synchronous grouped statement names (its id list is padded to a power of two). */
const SYNC_GROUP_MAX = 64;

/**
 * Indexes of `updates` by identical write (one expected state, the same patch
 * values; no error or result text, which differ from task to task), when the
 * tasks are distinct and some write has a twin; undefined otherwise.
 */
function identicalWrites(updates: readonly TaskUpdate[]): number[][] | undefined {
  if (updates.length < 2) return undefined;
  const ids = new Set<string>();
  const groups: number[][] = [];
  // Open groups of plain writes, each by its first write: a batch holds a few shapes, so a write is
  // compared with each (no key is built per write: a wave writes hundreds).
  const open: number[][] = [];
  for (let i = 0; i < updates.length; i++) {
    const u = updates[i]!;
    if (ids.has(u.id)) return undefined;
    ids.add(u.id);
    const p = u.patch;
    const plain = typeof u.expected === 'string' && (p.error === undefined || p.error === null) && (p.result === undefined || p.result === null);
    if (!plain) {
      groups.push([i]);
      continue;
    }
    let list = open.find((g) => g.length < SYNC_GROUP_MAX && sameWrite(updates[g[0]!]!, u));
    if (!list) open.push((list = [])), groups.push(list);
    list.push(i);
  }
  return groups.length < updates.length ? groups : undefined;
}

/** Two plain writes the same but for their task: expected state, new state, times; undefined (not set) and null (cleared) differ. */
function sameWrite(a: TaskUpdate, b: TaskUpdate): boolean {
  const p = a.patch;
  const q = b.patch;
  return a.expected === b.expected && p.state === q.state && p.error === q.error && p.result === q.result && p.startedAt === q.startedAt && p.finishedAt === q.finishedAt;
}

/** groupUpdate's statement name. */
const groupShape = (columns: readonly string[], varying: readonly string[], expected: number, width: number) => `tasks:${columns.join(',')}:${varying.join(',')}:${expected}:${width}`;

/**
 * One statement for a group of writes: `columns` set on every task of
 * `id0…id<width-1>` whose state is one of `expected0…`; those in `varying`
 * per task, by a CASE on the id (arms `w<k>`, values `<column><k>`), the rest
 * to the one value named after the column.
 */
function groupUpdate(ctx: Ctx, columns: readonly string[], varying: readonly string[], expected: number, width: number) {
  return (p: (name: string) => never) =>
    ctx.db
      .updateTable('tasks')
      .set((eb) => ({
        ...Object.fromEntries(columns.map((c) => [c, varying.includes(c) ? perTask(ctx, c, width, p) : p(c)])),
        version: eb('version', '+', 1),
      }))
      .where(
        'id',
        'in',
        Array.from({ length: width }, (_, k) => p(`id${k}`)),
      )
      .where('state', 'in', Array.from({ length: expected }, (_, i) => p(`expected${i}`)));
}

/** One statement for writes identical but for the task: the patch, on every id listed whose state is the one expected. */
function syncGroupQuery(ctx: Ctx, u: TaskUpdate, ids: readonly string[]): SyncQuery {
  const set = taskSet(u.patch);
  const columns = Object.keys(set);
  let width = 2;
  while (width < ids.length) width *= 2;
  return preparedSql(
    ctx.dialect,
    groupShape(columns, [], 1, width),
    groupUpdate(ctx, columns, [], 1, width),
    (name) => {
      // Padded with the last task again: a repeated id matches nothing more.
      if (name.startsWith('id')) return ids[Math.min(Number(name.slice(2)), ids.length - 1)];
      if (name === 'expected0') return u.expected;
      return set[name as keyof typeof set];
    },
  );
}

/** The patch field behind each journal column, in the order taskSet lists them (state first, always set). */
const PATCH_FIELDS = [
  ['state', 'state'],
  ['error', 'error'],
  ['result', 'result'],
  ['started_at', 'startedAt'],
  ['finished_at', 'finishedAt'],
] as const;
const FIELD_OF = new Map<string, keyof TaskPatch>(PATCH_FIELDS);

/** Per shape (the columns a patch sets, the number of expected states): its columns and statement name, worked out once. */
const syncShapes = new Map<number, { columns: string[]; shape: string }>();

/**
 * taskQuery's statement (the same template) as SQL and positional values,
 * each value taken from the patch as the statement asks for it: no Kysely
 * node, no object of values, no shape name built per write.
 */
function syncTaskQuery(ctx: Ctx, patch: TaskPatch, id: string, expected: readonly string[]): SyncQuery {
  let mask = expected.length << PATCH_FIELDS.length;
  for (let i = 0; i < PATCH_FIELDS.length; i++) if (patch[PATCH_FIELDS[i]![1]] !== undefined) mask |= 1 << i;
  let s = syncShapes.get(mask);
  if (!s) {
    const columns = PATCH_FIELDS.filter((_, i) => mask & (1 << i)).map(([c]) => c);
    syncShapes.set(mask, (s = { columns, shape: taskShape(columns, expected.length) }));
  }
  return preparedSql(ctx.dialect, s.shape, taskUpdate(ctx, s.columns, expected.length), (name) => {
    if (name === 'id') return id;
    if (name.startsWith('expected')) return expected[Number(name.slice(8))];
    return patch[FIELD_OF.get(name)!];
  });
}

async function writeJournal(trx: Ctx, updates: readonly TaskUpdate[], fence: Fence | undefined, groups?: number[][]): Promise<boolean[]> {
  // A shared lock on the lease row: a takeover (an UPDATE of that row) waits for this batch, or this batch sees it.
  if (fence && (await trx.db.executeQuery(fenceQuery(trx, fence))).rows.length === 0) return updates.map(() => false);
  const out: boolean[] = [];
  for (const indexes of groups ?? updates.map((_, i) => [i])) {
    const { expected: expectedState, patch } = updates[indexes[0]!]!;
    const expected = unique(typeof expectedState === 'string' ? [expectedState] : [...expectedState]);
    if (expected.length === 0) {
      for (const i of indexes) out[i] = false;
      continue;
    }
    // version = version + 1 makes every matched row a changed row (MySQL's FOUND_ROWS agrees).
    const set = taskSet(patch);
    const columns = Object.keys(set) as (keyof typeof set)[];
    const states = Object.fromEntries(expected.map((e, i) => [`expected${i}`, e]));
    if (indexes.length === 1) {
      const r = await trx.db.executeQuery(taskQuery(trx, updates[indexes[0]!]!, expected));
      out[indexes[0]!] = Number(r.numAffectedRows ?? 0) === 1;
      continue;
    }
    let width = 2;
    while (width < indexes.length) width *= 2;
    // Padded with the last task again: a repeated id matches nothing more, a repeated CASE arm never wins.
    const at = (k: number) => updates[indexes[Math.min(k, indexes.length - 1)]!]!;
    const ids = Object.fromEntries(Array.from({ length: width }, (_, k) => [`id${k}`, at(k).id]));
    // Columns whose value differs between the group's writes are set per task, by a CASE on the id.
    const varying = columns.filter((c) => indexes.some((i) => taskSet(updates[i]!.patch)[c] !== set[c]));
    const arms: Record<string, unknown> = {};
    if (varying.length)
      for (let k = 0; k < width; k++) {
        arms[`w${k}`] = at(k).id;
        const own = taskSet(at(k).patch);
        for (const c of varying) arms[`${c}${k}`] = own[c];
      }
    const r = await trx.db.executeQuery(prepared(trx.dialect, groupShape(columns, varying, expected.length, width), groupUpdate(trx, columns, varying, expected.length, width), { ...set, ...ids, ...states, ...arms }));
    if (Number(r.numAffectedRows ?? 0) !== indexes.length) throw new NotEveryRow();
    for (const i of indexes) out[i] = true;
  }
  return out;
}

export async function cancelPendingTasks(ctx: Ctx, applyId: string, finishedAt?: number): Promise<number> {
  const r = await ctx.db
    .updateTable('tasks')
    .set((eb) => ({ state: 'cancelled', version: eb('version', '+', 1), finished_at: finishedAt ?? ctx.now() }))
    .where('apply_id', '=', applyId)
    .where('state', '=', 'pending')
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}
