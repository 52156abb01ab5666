// One behavioural suite for every Store backend: SQLite on a file, SQLite in
// memory, and MySQL/MariaDB and PostgreSQL on a scratch database created for
// the run and dropped after it. Timestamps come from a controlled clock (the
// `now` open option), never from sleeps. "Shared" backends (a file, a server)
// are also opened a second time — a second instance is what another replica
// is — and from child processes, so the compare-and-set and insert-if-absent
// paths are exercised across connections and processes, not only within one.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATION_NAMES, migrateToLatest } from '../src/store/migrations/index.js';
import { connect, DEFAULT_DATABASE_URL, mysqlConfigFromUrl, openStore, parseDatabaseUrl, postgresConfigFromUrl, redactUrl } from '../src/store/open.js';
import type { ContainerUpsert, NewApply, NewTask, Store } from '../src/store/store.js';
import { ApplyInFlightError } from '../src/store/store.js';
import { describeMysql, describePostgres, MYSQL_URL } from './helpers/env.js';
import { postgresScratchDatabase, scratchDatabaseName } from './helpers/stores.js';

// An in-memory SQLite database belongs to one connection: tests about a second
// instance or a later reopen do not apply to it, so they are not registered
// for it at all (rather than reported as skipped, which CI treats as a failure).
const itNotApplicable = (_name: string, _fn: () => unknown, _timeout?: number) => {};
const describeNotApplicable = (_name: string, _fn: () => void) => {};

const ALL_VERSIONS = MIGRATION_NAMES;
const T0 = 1_700_000_000_000;
const rand = () => randomBytes(4).toString('hex');

// ── backends ────────────────────────────────────────────────────────────────

interface Backend {
  name: string;
  /** what store.dialect answers */
  dialect: Store['dialect'];
  /** Other instances and processes can open the same database (false for :memory:). */
  shared: boolean;
  /** A new, empty database; its URL. */
  fresh(): Promise<string>;
  /** Drops everything fresh() made. */
  cleanup(): Promise<void>;
}

/** Runs the migrations again, directly, on an already migrated database: the migrations applied. */
async function migrateAgain(url: string): Promise<string[]> {
  const db = await connect(parseDatabaseUrl(url));
  try {
    return await migrateToLatest(db);
  } finally {
    await db.destroy();
  }
}

/** The migrations recorded as run, in order. */
async function schemaVersions(url: string): Promise<string[]> {
  const db = await connect(parseDatabaseUrl(url));
  try {
    const { rows } = await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(db);
    return rows.map((r) => r.name);
  } finally {
    await db.destroy();
  }
}

function sqliteFileBackend(): Backend {
  const dirs: string[] = [];
  return {
    name: 'SQLite file',
    dialect: 'sqlite',
    shared: true,
    async fresh() {
      const dir = mkdtempSync(join(tmpdir(), 'berth-conf-'));
      dirs.push(dir);
      return `sqlite:${join(dir, 'berth.sqlite')}`;
    },
    async cleanup() {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}

function sqliteMemoryBackend(): Backend {
  return {
    name: 'SQLite :memory:',
    dialect: 'sqlite',
    shared: false,
    fresh: async () => 'sqlite::memory:',
    cleanup: async () => undefined,
  };
}

function mysqlBackend(): Backend {
  const databases: string[] = [];
  let admin: mysql.Connection | undefined;
  return {
    name: 'MySQL/MariaDB',
    dialect: 'mysql',
    shared: true,
    async fresh() {
      admin ??= await mysql.createConnection({ uri: MYSQL_URL });
      const db = scratchDatabaseName();
      await admin.query(`CREATE DATABASE \`${db}\``);
      databases.push(db);
      const u = new URL(MYSQL_URL);
      u.pathname = `/${db}`;
      return u.toString();
    },
    async cleanup() {
      if (!admin) return;
      for (const db of databases.splice(0)) await admin.query(`DROP DATABASE IF EXISTS \`${db}\``);
      await admin.end();
      admin = undefined;
    },
  };
}

function postgresBackend(): Backend {
  const drops: (() => Promise<void>)[] = [];
  return {
    name: 'PostgreSQL',
    dialect: 'postgres',
    shared: true,
    async fresh() {
      const scratch = await postgresScratchDatabase();
      drops.push(scratch.drop);
      return scratch.url;
    },
    async cleanup() {
      for (const drop of drops.splice(0)) await drop();
    },
  };
}

// ── child processes (another replica, for real) ───────────────────────────

const TSX_LOADER = fileURLToPath(new URL('../node_modules/tsx/dist/loader.mjs', import.meta.url));
const OPEN_MODULE = new URL('../src/store/open.ts', import.meta.url).href;
const CHILD_SOURCE = `
import { existsSync } from 'node:fs';
const { openStore } = await import(process.env.BERTH_OPEN_MODULE);
const [mode, url, arg, goFile] = process.argv.slice(2);
// Barrier: say ready, then wait (1 ms naps) until the parent creates goFile.
const barrier = () => {
  if (!goFile) return;
  process.stdout.write('ready\\n');
  const nap = new Int32Array(new SharedArrayBuffer(4));
  while (!existsSync(goFile)) Atomics.wait(nap, 0, 0, 1);
};
if (mode === 'open') barrier();
const store = await openStore(url || undefined);
try {
  if (mode !== 'open') barrier();
  let out;
  if (mode === 'open') { await store.ping(); out = store.dialect; }
  else if (mode === 'cas') out = await store.casApplyState(arg, 0, { state: 'running', error: 'by ' + process.pid });
  else if (mode === 'lock') out = await store.acquireLock('o/procs', 'prod', arg, 1);
  else if (mode === 'delivery') out = await store.recordDelivery(arg, 'issue_comment');
  else throw new Error('unknown mode ' + mode);
  process.stdout.write('result:' + JSON.stringify(out) + '\\n');
} finally {
  await store.close();
}
`;
let childDir: string | undefined;
const scratchDirs: string[] = [];
afterAll(() => {
  for (const d of [childDir, ...scratchDirs.splice(0)]) if (d) rmSync(d, { recursive: true, force: true });
  childDir = undefined;
});

interface ChildSpec {
  mode: 'open' | 'cas' | 'lock' | 'delivery';
  url: string;
  arg?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a child process that opens a store and does one thing; `ready` resolves once it waits at the barrier. */
function startChild(spec: ChildSpec, goFile: string): { ready: Promise<void>; result: Promise<unknown> } {
  if (!childDir) {
    childDir = mkdtempSync(join(tmpdir(), 'berth-child-'));
    writeFileSync(join(childDir, 'child.mjs'), CHILD_SOURCE);
  }
  const child = spawn(process.execPath, ['--import', TSX_LOADER, join(childDir, 'child.mjs'), spec.mode, spec.url, spec.arg ?? '', goFile], {
    cwd: spec.cwd ?? process.cwd(),
    env: { ...(spec.env ?? process.env), BERTH_OPEN_MODULE: OPEN_MODULE },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  let stdout = '';
  let stderr = '';
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    if (stdout.includes('ready\n')) onReady();
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const result = new Promise<unknown>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('result:'));
      if (code !== 0 || !line) reject(new Error(`child ${spec.mode} exited ${code}: ${stderr || stdout}`));
      else resolve(JSON.parse(line.slice('result:'.length)) as unknown);
    });
  });
  // a child that dies before the barrier must not leave the race waiting forever
  return { ready: Promise.race([ready, result.then(() => undefined)]), result };
}

/** Starts every child, waits until all stand at the barrier, then releases them at once. */
async function raceChildren(specs: ChildSpec[]): Promise<unknown[]> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-go-'));
  scratchDirs.push(dir);
  const goFile = join(dir, 'go');
  const children = specs.map((s) => startChild(s, goFile));
  try {
    await Promise.all(children.map((c) => c.ready));
  } finally {
    writeFileSync(goFile, 'go');
  }
  return Promise.all(children.map((c) => c.result));
}

async function runChild(spec: ChildSpec): Promise<unknown> {
  return startChild(spec, '').result;
}

// ── fixtures ────────────────────────────────────────────────────────────────

function task(nodeId: number, deps: number[] = []): NewTask {
  return {
    nodeId,
    kind: 'CreateContainer',
    resource: `service:web:${nodeId}`,
    reason: 'not running',
    deps,
    nodeJson: JSON.stringify({ id: nodeId, kind: 'CreateContainer', deps }),
  };
}

function newApply(repo: string, over: Partial<NewApply> = {}): NewApply {
  return {
    repo,
    pr: 1,
    environment: 'staging',
    kind: 'apply',
    actor: 'alice',
    headSha: 'a'.repeat(40),
    desiredDigest: 'sha256:d1',
    planFingerprint: 'fp1',
    desiredJson: '{"services":{"web":{}}}',
    operations: [{ target: 'local', tasks: [task(1), task(2, [1])] }],
    ...over,
  };
}

function container(containerId: string, over: Partial<ContainerUpsert> = {}): ContainerUpsert {
  return {
    containerId,
    project: 'shop',
    environment: 'staging',
    service: 'web',
    replica: 1,
    name: `shop-staging-web-1-${containerId}`,
    state: 'running',
    configHash: 'h1',
    applyId: null,
    ...over,
  };
}

// ── the suite ───────────────────────────────────────────────────────────────

function conformance(b: Backend): void {
  const clock = { t: T0 };
  const now = () => clock.t;
  let url: string;
  let store: Store;
  /** A second instance on the same database (another replica); undefined for :memory:. */
  let other: Store | undefined;
  let seq = 0;
  const uid = (prefix: string) => `${prefix}-${++seq}-${rand()}`;
  /** Each concurrent caller alternates between the two instances when there are two. */
  const pick = (i: number): Store => (other && i % 2 === 1 ? other : store);

  beforeAll(async () => {
    url = await b.fresh();
    store = await openStore(url, { now });
    if (b.shared) other = await openStore(url, { now });
  });
  afterAll(async () => {
    await other?.close();
    await store?.close();
    await b.cleanup();
  });
  beforeEach(() => {
    clock.t = T0 + ++seq * 1_000_000;
  });

  it('answers ping and names its dialect', async () => {
    await expect(store.ping()).resolves.toBeUndefined();
    expect(store.dialect).toBe(b.dialect);
  });

  describe('applies, operations, tasks', () => {
    it('createApply round-trips: operations in the given order, tasks by node id', async () => {
      const repo = uid('o/r');
      const input = newApply(repo, {
        pr: 42,
        checkRunId: 9_007_199_254, // beyond 32 bits
        commentId: 77,
        operations: [
          { target: 'zeta', tasks: [task(3, [1, 2]), task(1), task(2, [1])] },
          { target: 'alpha', tasks: [task(10), task(5)] },
          { target: 'empty', tasks: [] },
        ],
      });
      const created = await store.createApply(input);
      expect(created.operations.map((o) => o.target)).toEqual(['zeta', 'alpha', 'empty']);
      expect(created.operations[0]!.tasks.map((t) => t.nodeId)).toEqual([3, 1, 2]);

      const apply = await store.getApply(created.id);
      expect(apply).toEqual({
        id: created.id,
        repo,
        pr: 42,
        environment: 'staging',
        kind: 'apply',
        actor: 'alice',
        headSha: 'a'.repeat(40),
        desiredDigest: 'sha256:d1',
        planFingerprint: 'fp1',
        desiredJson: '{"services":{"web":{}}}',
        state: 'pending',
        version: 0,
        stopRequested: false,
        checkRunId: 9_007_199_254,
        commentId: 77,
        createdAt: clock.t,
        startedAt: null,
        finishedAt: null,
        error: null,
      });
      // The same row without its desired state, for drivers that re-read states and the stop flag.
      const { desiredJson: _, ...status } = apply!;
      expect(await store.getApplyStatus(created.id)).toEqual(status);

      const ops = await store.listOperations(created.id);
      expect(ops.map((o) => [o.id, o.target, o.ordinal, o.state, o.version])).toEqual([
        [created.operations[0]!.id, 'zeta', 0, 'pending', 0],
        [created.operations[1]!.id, 'alpha', 1, 'pending', 0],
        [created.operations[2]!.id, 'empty', 2, 'pending', 0],
      ]);
      expect(await store.getOperation(created.operations[1]!.id)).toEqual(ops[1]);

      const zeta = await store.listTasks(created.operations[0]!.id);
      expect(zeta.map((t) => t.nodeId)).toEqual([1, 2, 3]);
      expect(zeta[2]).toEqual({
        id: created.operations[0]!.tasks[0]!.id,
        operationId: created.operations[0]!.id,
        applyId: created.id,
        nodeId: 3,
        kind: 'CreateContainer',
        resource: 'service:web:3',
        reason: 'not running',
        deps: [1, 2],
        nodeJson: JSON.stringify({ id: 3, kind: 'CreateContainer', deps: [1, 2] }),
        state: 'pending',
        version: 0,
        error: null,
        result: null,
        startedAt: null,
        finishedAt: null,
      });
      expect(await store.getTask(zeta[2]!.id)).toEqual(zeta[2]);
      expect(await store.listTasks(created.operations[2]!.id)).toEqual([]);

      const all = await store.listTasksForApply(created.id);
      expect(all.map((t) => `${t.operationId === created.operations[0]!.id ? 'zeta' : 'alpha'}:${t.nodeId}`)).toEqual([
        'zeta:1',
        'zeta:2',
        'zeta:3',
        'alpha:5',
        'alpha:10',
      ]);
    });

    it('an apply whose desired state is as large as berth makes it (8 MiB of copied repository files, as base64) is stored and read back', async () => {
      const big = JSON.stringify({ contents: { 'file:html/big.bin': Buffer.alloc(8 * 1024 * 1024, 7).toString('base64') }, services: [] });
      expect(big.length).toBeGreaterThan(11_000_000);
      const created = await store.createApply(newApply(uid('o/r'), { desiredJson: big }));
      expect((await store.getApply(created.id))!.desiredJson).toBe(big);
    });

    it('createApply keeps nulls (CLI apply) and defaults check run and comment to null', async () => {
      const created = await store.createApply(
        newApply(uid('o/r'), { pr: null, headSha: null, planFingerprint: null, kind: 'rollback', operations: [] }),
      );
      const apply = await store.getApply(created.id);
      expect(apply).toMatchObject({ pr: null, headSha: null, planFingerprint: null, kind: 'rollback', checkRunId: null, commentId: null });
      expect(await store.listOperations(created.id)).toEqual([]);
      expect(await store.listTasksForApply(created.id)).toEqual([]);
    });

    it('createApply is one transaction: a failing task insert leaves no apply and no operation behind', async () => {
      const repo = uid('o/r');
      await expect(
        store.createApply(
          newApply(repo, {
            operations: [
              { target: 'a', tasks: [task(1)] },
              { target: 'b', tasks: [task(1), task(1)] }, // duplicate node id within one operation
            ],
          }),
        ),
      ).rejects.toThrow();
      expect(await store.listApplies({ repo })).toEqual([]);
    });

    it('unknown ids read as undefined / empty', async () => {
      expect(await store.getApply('nope')).toBeUndefined();
      expect(await store.getApplyStatus('nope')).toBeUndefined();
      expect(await store.getOperation('nope')).toBeUndefined();
      expect(await store.getTask('nope')).toBeUndefined();
      expect(await store.listOperations('nope')).toEqual([]);
      expect(await store.listTasks('nope')).toEqual([]);
      expect(await store.listTasksForApply('nope')).toEqual([]);
    });

    it('updateTask is a CAS on the state: wrong expected state changes nothing', async () => {
      const created = await store.createApply(newApply(uid('o/r')));
      const id = created.operations[0]!.tasks[0]!.id;
      const before = (await store.getTask(id))!;

      expect(await store.updateTask(id, 'running', { state: 'succeeded', result: 'x', finishedAt: 1 })).toBe(false);
      expect(await store.getTask(id)).toEqual(before);

      expect(await store.updateTask(id, 'pending', { state: 'running', startedAt: 1000 })).toBe(true);
      expect(await store.getTask(id)).toEqual({ ...before, state: 'running', startedAt: 1000, version: 1 });

      // the same transition again loses: the state moved on
      expect(await store.updateTask(id, 'pending', { state: 'running', startedAt: 2000 })).toBe(false);
      expect((await store.getTask(id))!.startedAt).toBe(1000);

      // absent fields stay, present ones (null included) are written
      expect(await store.updateTask(id, 'running', { state: 'succeeded', result: 'container-id', finishedAt: 3000 })).toBe(true);
      expect(await store.getTask(id)).toEqual({
        ...before,
        state: 'succeeded',
        startedAt: 1000,
        finishedAt: 3000,
        result: 'container-id',
        version: 2,
      });
      expect(await store.updateTask(id, 'succeeded', { state: 'failed', result: null, error: 'boom' })).toBe(true);
      expect(await store.getTask(id)).toMatchObject({ state: 'failed', result: null, error: 'boom', startedAt: 1000, finishedAt: 3000 });

      expect(await store.updateTask('nope', 'pending', { state: 'running' })).toBe(false);
    });

    it('updateTask accepts an array of expected states', async () => {
      const created = await store.createApply(newApply(uid('o/r')));
      const [t1, t2] = created.operations[0]!.tasks.map((t) => t.id) as [string, string];
      expect(await store.updateTask(t1, ['running', 'succeeded'], { state: 'failed' })).toBe(false);
      expect((await store.getTask(t1))!.state).toBe('pending');
      expect(await store.updateTask(t1, ['running', 'pending'], { state: 'skipped' })).toBe(true);
      expect(await store.updateTask(t2, ['pending'], { state: 'running' })).toBe(true);
      expect(await store.updateTask(t2, ['pending', 'running'], { state: 'cancelled' })).toBe(true);
      expect((await store.getTask(t1))!.state).toBe('skipped');
      expect((await store.getTask(t2))!.state).toBe('cancelled');
      expect(await store.updateTask(t2, [], { state: 'pending' })).toBe(false);
    });

    it('concurrent updateTask with the same expected state: exactly one wins', async () => {
      const created = await store.createApply(newApply(uid('o/r')));
      const id = created.operations[0]!.tasks[0]!.id;
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => pick(i).updateTask(id, 'pending', { state: 'running', startedAt: i })),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.getTask(id)).toMatchObject({ state: 'running', version: 1, startedAt: results.indexOf(true) });
    });

    it('cancelPendingTasks cancels only pending tasks of that apply', async () => {
      const created = await store.createApply(
        newApply(uid('o/r'), {
          operations: [
            { target: 'a', tasks: [task(1), task(2), task(3)] },
            { target: 'b', tasks: [task(1), task(2)] },
          ],
        }),
      );
      const bystander = await store.createApply(newApply(uid('o/r')));
      const [a1, a2] = created.operations[0]!.tasks.map((t) => t.id) as [string, string];
      const [b1] = created.operations[1]!.tasks.map((t) => t.id) as [string];
      await store.updateTask(a1, 'pending', { state: 'running', startedAt: 5 });
      await store.updateTask(a2, 'pending', { state: 'succeeded', finishedAt: 6 });
      await store.updateTask(b1, 'pending', { state: 'failed', finishedAt: 7, error: 'x' });

      expect(await store.cancelPendingTasks(created.id, 999)).toBe(2);
      const byId = new Map((await store.listTasksForApply(created.id)).map((t) => [t.id, t]));
      expect(byId.get(a1)).toMatchObject({ state: 'running', finishedAt: null });
      expect(byId.get(a2)).toMatchObject({ state: 'succeeded', finishedAt: 6 });
      expect(byId.get(b1)).toMatchObject({ state: 'failed', finishedAt: 7 });
      const cancelled = [...byId.values()].filter((t) => t.state === 'cancelled');
      expect(cancelled).toHaveLength(2);
      for (const t of cancelled) expect(t).toMatchObject({ finishedAt: 999, version: 1 });
      expect((await store.listTasksForApply(bystander.id)).every((t) => t.state === 'pending')).toBe(true);

      // nothing pending any more; default finishedAt is the store clock
      expect(await store.cancelPendingTasks(created.id)).toBe(0);
      expect(await store.cancelPendingTasks(bystander.id)).toBe(2);
      expect((await store.listTasksForApply(bystander.id)).map((t) => t.finishedAt)).toEqual([clock.t, clock.t]);
    });

    it('casApplyState: version CAS, +1 on success, stale version refused, absent fields kept', async () => {
      const created = await store.createApply(newApply(uid('o/r')));
      expect(await store.casApplyState(created.id, 0, { state: 'running', startedAt: 100 })).toBe(true);
      expect(await store.getApply(created.id)).toMatchObject({ state: 'running', version: 1, startedAt: 100, finishedAt: null });

      expect(await store.casApplyState(created.id, 0, { state: 'failed', error: 'stale' })).toBe(false);
      expect(await store.getApply(created.id)).toMatchObject({ state: 'running', version: 1, error: null });

      expect(await store.casApplyState(created.id, 1, { state: 'running_degraded', error: 'web failed' })).toBe(true);
      expect(await store.casApplyState(created.id, 2, { state: 'failed', finishedAt: 300 })).toBe(true);
      expect(await store.getApply(created.id)).toMatchObject({
        state: 'failed',
        version: 3,
        startedAt: 100,
        finishedAt: 300,
        error: 'web failed',
      });
      expect(await store.casApplyState(created.id, 3, { state: 'failed', error: null })).toBe(true);
      expect((await store.getApply(created.id))!.error).toBeNull();
      expect(await store.casApplyState('nope', 0, { state: 'running' })).toBe(false);
    });

    it('casOperationState: same rules, per operation', async () => {
      const created = await store.createApply(
        newApply(uid('o/r'), { operations: [{ target: 'a', tasks: [] }, { target: 'b', tasks: [] }] }),
      );
      const [a, bId] = created.operations.map((o) => o.id) as [string, string];
      expect(await store.casOperationState(a, 0, { state: 'running', startedAt: 10 })).toBe(true);
      expect(await store.casOperationState(a, 0, { state: 'completed' })).toBe(false);
      expect(await store.casOperationState(a, 1, { state: 'completed', finishedAt: 20 })).toBe(true);
      expect(await store.getOperation(a)).toMatchObject({ state: 'completed', version: 2, startedAt: 10, finishedAt: 20, error: null });
      expect(await store.getOperation(bId)).toMatchObject({ state: 'pending', version: 0 });
      expect(await store.casOperationState(bId, 0, { state: 'failed', error: 'e', finishedAt: 30 })).toBe(true);
      expect(await store.getOperation(bId)).toMatchObject({ state: 'failed', version: 1, error: 'e', finishedAt: 30, startedAt: null });
      expect(await store.casOperationState('nope', 0, { state: 'running' })).toBe(false);
    });

    it('20 concurrent casApplyState with the same version: exactly one wins, and its write is the one kept', async () => {
      const created = await store.createApply(newApply(uid('o/r')));
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => pick(i).casApplyState(created.id, 0, { state: 'running', startedAt: i, error: `w${i}` })),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect(await store.getApply(created.id)).toMatchObject({ state: 'running', version: 1, startedAt: winner, error: `w${winner}` });
    });

    it('concurrent casOperationState with the same version: exactly one wins', async () => {
      const created = await store.createApply(newApply(uid('o/r')));
      const op = created.operations[0]!.id;
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => pick(i).casOperationState(op, 0, { state: 'running', startedAt: i })),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.getOperation(op)).toMatchObject({ version: 1, startedAt: results.indexOf(true) });
    });

    it('requestStop marks an in-flight apply once (one version bump) and refuses terminal or unknown applies', async () => {
      const created = await store.createApply(newApply(uid('o/r')));
      expect(await store.requestStop(created.id)).toBe(true);
      expect(await store.getApply(created.id)).toMatchObject({ stopRequested: true, version: 1, state: 'pending' });
      expect(await store.requestStop(created.id)).toBe(true);
      expect(await store.getApply(created.id)).toMatchObject({ stopRequested: true, version: 1 });

      // a derivation that read version 0 before the request now loses its CAS
      expect(await store.casApplyState(created.id, 0, { state: 'running' })).toBe(false);
      expect(await store.casApplyState(created.id, 1, { state: 'stopping' })).toBe(true);
      expect(await store.requestStop(created.id)).toBe(true); // stopping is still in flight
      expect(await store.casApplyState(created.id, 2, { state: 'stopped' })).toBe(true);
      expect(await store.requestStop(created.id)).toBe(false);
      expect((await store.getApply(created.id))!.version).toBe(3);

      const done = await store.createApply(newApply(uid('o/r')));
      expect(await store.casApplyState(done.id, 0, { state: 'completed' })).toBe(true);
      expect(await store.requestStop(done.id)).toBe(false);
      expect(await store.getApply(done.id)).toMatchObject({ stopRequested: false, version: 1, state: 'completed' });

      expect(await store.requestStop('nope')).toBe(false);
    });

    it('concurrent requestStop: all answer true, the version moves once', async () => {
      const created = await store.createApply(newApply(uid('o/r')));
      await store.casApplyState(created.id, 0, { state: 'running_degraded' });
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => pick(i).requestStop(created.id)));
      expect(results.every(Boolean)).toBe(true);
      expect(await store.getApply(created.id)).toMatchObject({ stopRequested: true, version: 2 });
    });

    it('setApplyCheckRun and setApplyComment set and clear without touching the version', async () => {
      const created = await store.createApply(newApply(uid('o/r')));
      await store.setApplyCheckRun(created.id, 123_456_789_012);
      await store.setApplyComment(created.id, 555);
      expect(await store.getApply(created.id)).toMatchObject({ checkRunId: 123_456_789_012, commentId: 555, version: 0 });
      await store.setApplyCheckRun(created.id, null);
      await store.setApplyComment(created.id, null);
      expect(await store.getApply(created.id)).toMatchObject({ checkRunId: null, commentId: null, version: 0 });
      await expect(store.setApplyCheckRun('nope', 1)).resolves.toBeUndefined();
    });

    it('applyForCommand finds the apply a PR comment\'s command made, in its repository only (ids beyond 2^31)', async () => {
      const repo = uid('o/r');
      const created = await store.createApply(newApply(repo, { commandCommentId: 3_000_000_001 }));
      await store.createApply(newApply(repo, { environment: 'production' }));
      expect(await store.applyForCommand(repo, 3_000_000_001)).toBe(created.id);
      expect(await store.applyForCommand(repo, 3_000_000_002)).toBeUndefined();
      expect(await store.applyForCommand(uid('o/other'), 3_000_000_001)).toBeUndefined();
    });

    it('latestApply: newest for (repo, environment), filtered by desired digest, state and/or kind', async () => {
      const repo = uid('o/r');
      // One apply in flight per environment: each ends before the next starts.
      const a1 = await store.createApply(newApply(repo, { desiredDigest: 'd1' }));
      await store.casApplyState(a1.id, 0, { state: 'completed' });
      const a2 = await store.createApply(newApply(repo, { desiredDigest: 'd2' }));
      await store.casApplyState(a2.id, 0, { state: 'failed' });
      const a3 = await store.createApply(newApply(repo, { desiredDigest: 'd1' }));
      await store.createApply(newApply(repo, { environment: 'production', desiredDigest: 'd1' }));
      await store.createApply(newApply(uid('o/other'), { desiredDigest: 'd1' }));

      expect((await store.latestApply(repo, 'staging'))!.id).toBe(a3.id);
      expect((await store.latestApply(repo, 'staging', { desiredDigest: 'd2' }))!.id).toBe(a2.id);
      expect((await store.latestApply(repo, 'staging', { desiredDigest: 'd1' }))!.id).toBe(a3.id);
      expect((await store.latestApply(repo, 'staging', { state: 'completed' }))!.id).toBe(a1.id);
      expect((await store.latestApply(repo, 'staging', { desiredDigest: 'd1', state: 'completed' }))!.id).toBe(a1.id);
      expect(await store.latestApply(repo, 'staging', { desiredDigest: 'd2', state: 'completed' })).toBeUndefined();
      expect(await store.latestApply(repo, 'staging', { desiredDigest: 'zzz' })).toBeUndefined();
      expect(await store.latestApply(repo, 'qa')).toBeUndefined();
      // A rollback is found by its kind, and an apply of the same state is not it (staging-first counts applies only).
      const r = await store.createApply(newApply(repo, { environment: 'dev', kind: 'rollback', desiredDigest: 'd1' }));
      expect((await store.latestApply(repo, 'dev', { desiredDigest: 'd1', kind: 'rollback' }))!.id).toBe(r.id);
      expect(await store.latestApply(repo, 'dev', { desiredDigest: 'd1', kind: 'apply' })).toBeUndefined();
      expect((await store.latestApply(repo, 'staging', { desiredDigest: 'd1', kind: 'apply' }))!.id).toBe(a3.id);
    });

    it('listApplies: newest first, filtered by states, repo, pr, environment, limited', async () => {
      const repo = uid('o/r');
      const a = await store.createApply(newApply(repo, { pr: 1 }));
      await store.casApplyState(a.id, 0, { state: 'completed' });
      const bb = await store.createApply(newApply(repo, { pr: 2 }));
      const c = await store.createApply(newApply(repo, { pr: 2, environment: 'production' }));
      await store.casApplyState(bb.id, 0, { state: 'running' });

      expect((await store.listApplies({ repo })).map((x) => x.id)).toEqual([c.id, bb.id, a.id]);
      expect((await store.listApplies({ repo, limit: 2 })).map((x) => x.id)).toEqual([c.id, bb.id]);
      expect((await store.listApplies({ repo, pr: 2 })).map((x) => x.id)).toEqual([c.id, bb.id]);
      expect((await store.listApplies({ repo, environment: 'staging' })).map((x) => x.id)).toEqual([bb.id, a.id]);
      expect((await store.listApplies({ repo, states: ['pending', 'running'] })).map((x) => x.id)).toEqual([c.id, bb.id]);
      expect((await store.listApplies({ repo, states: ['completed'], pr: 1 })).map((x) => x.id)).toEqual([a.id]);
      expect(await store.listApplies({ repo, states: [] })).toEqual([]);
      const everything = await store.listApplies();
      expect(everything.length).toBeGreaterThanOrEqual(3);
      expect(everything.findIndex((x) => x.id === c.id)).toBeLessThan(everything.findIndex((x) => x.id === a.id));
    });

    it('applyOf finds only the in-flight apply of that PR and environment', async () => {
      const repo = uid('o/r');
      const done = await store.createApply(newApply(repo, { pr: 7 }));
      await store.casApplyState(done.id, 0, { state: 'completed' });
      expect(await store.applyOf(repo, 7, 'staging')).toBeUndefined();

      for (const state of ['pending', 'running', 'running_degraded', 'stopping'] as const) {
        const live = await store.createApply(newApply(repo, { pr: 7 }));
        if (state !== 'pending') await store.casApplyState(live.id, 0, { state });
        expect((await store.applyOf(repo, 7, 'staging'))?.id).toBe(live.id);
        await store.casApplyState(live.id, state === 'pending' ? 0 : 1, { state: 'stopped' });
        expect(await store.applyOf(repo, 7, 'staging')).toBeUndefined();
      }
      await store.createApply(newApply(repo, { pr: 8 }));
      await store.createApply(newApply(repo, { pr: 7, environment: 'production' }));
      expect(await store.applyOf(repo, 7, 'staging')).toBeUndefined();
    });

    it('knownApplyIds says which ids exist', async () => {
      const a = await store.createApply(newApply(uid('o/r')));
      const c = await store.createApply(newApply(uid('o/r')));
      expect(await store.knownApplyIds([a.id, 'forged', c.id, a.id])).toEqual(new Set([a.id, c.id]));
      expect(await store.knownApplyIds([])).toEqual(new Set());
      expect(await store.knownApplyIds(['x', 'y'])).toEqual(new Set());
      const many = [...Array.from({ length: 1500 }, (_, i) => `ghost-${i}`), c.id];
      expect(await store.knownApplyIds(many)).toEqual(new Set([c.id]));
    });
  });

  describe('locks', () => {
    it('acquire, idempotent re-acquire by the owner, refusal naming the holder, release by owner only', async () => {
      const repo = uid('o/r');
      const first = await store.acquireLock(repo, 'production', `${repo}#1`, 1);
      const lock = { repo, environment: 'production', owner: `${repo}#1`, pr: 1, applyId: null, createdAt: clock.t };
      expect(first).toEqual({ acquired: true, lock });

      clock.t += 5000;
      expect(await store.setLockApply(repo, 'production', 'apply-1')).toBe(true);
      expect(await store.acquireLock(repo, 'production', `${repo}#1`, 1)).toEqual({
        acquired: true,
        lock: { ...lock, applyId: 'apply-1' },
      });
      expect(await store.acquireLock(repo, 'production', `${repo}#2`, 2)).toEqual({
        acquired: false,
        holder: { ...lock, applyId: 'apply-1' },
      });
      expect(await store.getLock(repo, 'production')).toEqual({ ...lock, applyId: 'apply-1' });

      expect(await store.releaseLock(repo, 'production', `${repo}#2`)).toBe(false);
      expect(await store.getLock(repo, 'production')).toBeDefined();
      expect(await store.releaseLock(repo, 'production', `${repo}#1`)).toBe(true);
      expect(await store.getLock(repo, 'production')).toBeUndefined();
      expect(await store.releaseLock(repo, 'production', `${repo}#1`)).toBe(false);

      // the next PR gets it, with a fresh row
      const second = await store.acquireLock(repo, 'production', `${repo}#2`, 2);
      expect(second).toEqual({ acquired: true, lock: { ...lock, owner: `${repo}#2`, pr: 2, createdAt: clock.t } });
      // release without an owner (/unlock by an admin, PR closed)
      expect(await store.releaseLock(repo, 'production')).toBe(true);
      expect(await store.releaseLock(repo, 'production')).toBe(false);
    });

    it('listLocks, locksForPr, setLockApply', async () => {
      const repo = uid('o/r');
      const elsewhere = uid('o/r');
      await store.acquireLock(repo, 'staging', `${repo}#1`, 1);
      await store.acquireLock(repo, 'production', `${repo}#1`, 1);
      await store.acquireLock(repo, 'qa', `${repo}#2`, 2);
      await store.acquireLock(elsewhere, 'staging', `${elsewhere}#1`, 1);

      expect((await store.listLocks(repo)).map((l) => l.environment)).toEqual(['production', 'qa', 'staging']);
      const all = await store.listLocks();
      expect(all.filter((l) => l.repo === repo || l.repo === elsewhere)).toHaveLength(4);
      expect((await store.locksForPr(repo, 1)).map((l) => l.environment)).toEqual(['production', 'staging']);
      expect((await store.locksForPr(repo, 2)).map((l) => l.owner)).toEqual([`${repo}#2`]);
      expect(await store.locksForPr(repo, 3)).toEqual([]);

      expect(await store.setLockApply(repo, 'qa', 'ap-9')).toBe(true);
      expect(await store.setLockApply(repo, 'qa', 'ap-9')).toBe(true); // same value: the lock still exists
      expect((await store.getLock(repo, 'qa'))!.applyId).toBe('ap-9');
      expect(await store.setLockApply(repo, 'qa', null)).toBe(true);
      expect((await store.getLock(repo, 'qa'))!.applyId).toBeNull();
      expect(await store.setLockApply(repo, 'nowhere', 'ap-9')).toBe(false);
    });

    it('10 concurrent acquireLock by different owners: exactly one acquires, the others see that holder', async () => {
      const repo = uid('o/r');
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => pick(i).acquireLock(repo, 'production', `${repo}#${i + 1}`, i + 1)),
      );
      const winners = results.filter((r) => r.acquired);
      expect(winners).toHaveLength(1);
      const held = (winners[0] as { lock: { owner: string } }).lock;
      for (const r of results) {
        if (!r.acquired) expect(r.holder.owner).toBe(held.owner);
      }
      expect((await store.getLock(repo, 'production'))!.owner).toBe(held.owner);
    });

    it('concurrent re-acquire by the same owner: all acquire, one row', async () => {
      const repo = uid('o/r');
      const results = await Promise.all(Array.from({ length: 8 }, (_, i) => pick(i).acquireLock(repo, 'staging', `${repo}#4`, 4)));
      expect(results.every((r) => r.acquired)).toBe(true);
      expect(await store.listLocks(repo)).toHaveLength(1);
    });
  });

  describe('plans', () => {
    it('savePlan returns the stored row; latestPlan is the newest for (repo, pr, environment), pr null apart', async () => {
      const repo = uid('o/r');
      const input = {
        repo,
        pr: 5,
        environment: 'staging',
        headSha: 'b'.repeat(40),
        fingerprint: 'fp',
        desiredDigest: 'dd',
        observedDigest: 'od',
        planJson: '{"nodes":[]}',
        rendered: '## Plan\n'.repeat(1000),
      };
      const p1 = await store.savePlan(input);
      expect(p1).toEqual({ ...input, id: p1.id, createdAt: clock.t });
      expect(await store.getPlan(p1.id)).toEqual(p1);

      const p2 = await store.savePlan({ ...input, fingerprint: 'fp2' });
      const cli = await store.savePlan({ ...input, pr: null, fingerprint: 'cli' });
      await store.savePlan({ ...input, environment: 'production', fingerprint: 'prod' });

      expect((await store.latestPlan(repo, 5, 'staging'))!.id).toBe(p2.id);
      expect((await store.latestPlan(repo, null, 'staging'))!.id).toBe(cli.id);
      expect((await store.latestPlan(repo, 5, 'production'))!.fingerprint).toBe('prod');
      expect(await store.latestPlan(repo, 6, 'staging')).toBeUndefined();
      expect(await store.latestPlan(repo, null, 'production')).toBeUndefined();
      expect(await store.getPlan('nope')).toBeUndefined();
      // Only the latest of a PR's environment is kept: a PR that plans a hundred times holds one rendered plan.
      expect(await store.getPlan(p1.id)).toBeUndefined();
      const many = await Promise.all(Array.from({ length: 5 }, (_, i) => pick(i).savePlan({ ...input, fingerprint: `again-${i}` })));
      const latest = (await store.latestPlan(repo, 5, 'staging'))!;
      expect(many.map((p) => p.id)).toContain(latest.id);
      for (const p of [p2, ...many.filter((m) => m.id !== latest.id)]) expect(await store.getPlan(p.id)).toBeUndefined();
      // the CLI's plan and another environment's are their own
      expect((await store.getPlan(cli.id))?.fingerprint).toBe('cli');
      expect((await store.latestPlan(repo, 5, 'production'))!.fingerprint).toBe('prod');
    });
  });

  describe('webhook deliveries', () => {
    it('recordDelivery is true only the first time', async () => {
      const id = uid('delivery');
      expect(await store.recordDelivery(id, 'issue_comment')).toBe(true);
      expect(await store.recordDelivery(id, 'issue_comment')).toBe(false);
      expect(await store.recordDelivery(id, 'pull_request')).toBe(false);
      expect(await store.recordDelivery(uid('delivery'), 'issue_comment')).toBe(true);
    });

    it('concurrent recordDelivery of one id: exactly one true', async () => {
      const id = uid('delivery');
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => pick(i).recordDelivery(id, 'issue_comment')));
      expect(results.filter(Boolean)).toHaveLength(1);
    });

    it('pruneDeliveries forgets deliveries received before the cut-off', async () => {
      // timestamps far below every other test's clock, so the count is exact
      const ids = [uid('old'), uid('old'), uid('new')];
      for (const [i, id] of ids.entries()) {
        clock.t = 100 + i * 100; // 100, 200, 300
        await store.recordDelivery(id, 'push');
      }
      expect(await store.pruneDeliveries(250)).toBe(2);
      expect(await store.pruneDeliveries(250)).toBe(0);
      expect(await store.recordDelivery(ids[0]!, 'push')).toBe(true); // forgotten, so new again
      expect(await store.recordDelivery(ids[2]!, 'push')).toBe(false); // kept
    });
  });

  describe('PR comments', () => {
    it('[] when none, then set, overwrite, per PR', async () => {
      const repo = uid('o/r');
      expect(await store.getPrComments(repo, 1)).toEqual([]);
      await store.setPrComments(repo, 1, [111, 222]);
      expect(await store.getPrComments(repo, 1)).toEqual([111, 222]);
      await store.setPrComments(repo, 1, [333_444_555_666]);
      expect(await store.getPrComments(repo, 1)).toEqual([333_444_555_666]);
      expect(await store.getPrComments(repo, 2)).toEqual([]);
      await store.setPrComments(repo, 1, []);
      expect(await store.getPrComments(repo, 1)).toEqual([]);
    });

    it('when the plan comment was last written: undefined before, then the store clock of each write', async () => {
      const repo = uid('o/r');
      expect(await store.prCommentsWrittenAt(repo, 1)).toBeUndefined();
      await store.setPrComments(repo, 1, [1]);
      expect(await store.prCommentsWrittenAt(repo, 1)).toBe(clock.t);
      clock.t += 7000;
      await store.setPrComments(repo, 1, [1]);
      expect(await store.prCommentsWrittenAt(repo, 1)).toBe(clock.t);
      expect(await store.prCommentsWrittenAt(repo, 2)).toBeUndefined();
    });
  });

  // deployments (issue 14)
  describe('deployments', () => {
    it('saved once, then its GitHub id and last status; listed per environment newest first, by status', async () => {
      const repo = uid('o/r');
      await store.saveDeployment({ applyId: 'a1', repo, environment: 'staging', spec: '{"ref":"x"}' });
      await (other ?? store).saveDeployment({ applyId: 'a1', repo, environment: 'staging', spec: '{"ref":"other"}' });
      expect(await store.getDeployment('a1')).toEqual({ applyId: 'a1', repo, environment: 'staging', spec: '{"ref":"x"}', deploymentId: null, state: null, createdAt: clock.t });
      await store.setDeployment('a1', { deploymentId: 9_007_199_254 });
      await store.setDeployment('a1', { state: 'success' });
      expect(await store.getDeployment('a1')).toMatchObject({ deploymentId: 9_007_199_254, state: 'success' });
      clock.t += 1000;
      await store.saveDeployment({ applyId: 'a2', repo, environment: 'staging', spec: '{}' });
      await store.saveDeployment({ applyId: 'a3', repo, environment: 'production', spec: '{}' });
      expect((await store.listDeployments(repo, 'staging')).map((d) => d.applyId)).toEqual(['a2', 'a1']);
      expect((await store.listDeployments(repo, 'staging', 'success')).map((d) => d.applyId)).toEqual(['a1']);
      expect(await store.getDeployment('nope')).toBeUndefined();
    });
  });

  describe('file texts by blob', () => {
    it('a stored text is found by its repository and blob alone; storing it again keeps the first; texts stored 30 days ago go when another is stored', async () => {
      const [repo, elsewhere] = [uid('o/r'), uid('o/other')];
      const [a, b, c] = ['a'.repeat(40), 'b'.repeat(40), 'c'.repeat(64)];
      const big = 'x'.repeat(200_000) + ' ünïcode ✓\n';
      expect(await store.getFileBlob(repo, a)).toBeUndefined();
      await store.putFileBlob(repo, a, 'services: {}\n');
      await store.putFileBlob(repo, c, big);
      await pick(1).putFileBlob(repo, a, 'services: {}\n');
      expect(await pick(1).getFileBlob(repo, a)).toBe('services: {}\n');
      expect(await store.getFileBlob(repo, c)).toBe(big);
      // Per repository: another repository's installation never reads this one's files.
      expect(await store.getFileBlob(elsewhere, a)).toBeUndefined();
      clock.t += 30 * 24 * 3600_000 + 1;
      await store.putFileBlob(elsewhere, b, 'x');
      expect(await store.getFileBlob(repo, a)).toBeUndefined();
      expect(await store.getFileBlob(repo, c)).toBeUndefined();
      expect(await store.getFileBlob(elsewhere, b)).toBe('x');
    });
  });

  describe('PR heads', () => {
    it('the first time a head was seen is kept: a later sighting does not move it; per PR, oldest first', async () => {
      const repo = uid('o/r');
      const [a, b] = ['a'.repeat(40), 'b'.repeat(40)];
      const first = clock.t;
      expect(await store.listHeads(repo, 1)).toEqual([]);
      expect(await store.recordHead(repo, 1, a)).toBe(first);
      clock.t += 5000;
      expect(await store.recordHead(repo, 1, a)).toBe(first);
      expect(await store.recordHead(repo, 1, b)).toBe(clock.t);
      expect(await store.listHeads(repo, 1)).toEqual([
        { headSha: a, seenAt: first },
        { headSha: b, seenAt: clock.t },
      ]);
      expect(await store.listHeads(repo, 2)).toEqual([]);
    });

    it('pullsWithHead: every PR berth saw with that head, by number, in that repository only', async () => {
      const repo = uid('o/r');
      const [a, b] = ['a'.repeat(40), 'b'.repeat(40)];
      await store.recordHead(repo, 9, a);
      await store.recordHead(repo, 3, a);
      await store.recordHead(repo, 3, b);
      await store.recordHead(uid('o/other'), 4, a);
      expect(await store.pullsWithHead(repo, a)).toEqual([3, 9]);
      expect(await store.pullsWithHead(repo, b)).toEqual([3]);
      expect(await store.pullsWithHead(repo, 'c'.repeat(40))).toEqual([]);
    });

    it('headPushers: the PR event\'s pusher and every push of the commit, in that repository only, sorted, no repeats', async () => {
      const repo = uid('o/r');
      const [a, b] = ['a'.repeat(40), 'b'.repeat(40)];
      expect(await store.headPushers(repo, 1, a)).toEqual([]);
      await store.recordHead(repo, 1, a, 'carol');
      expect(await store.headPushers(repo, 1, a)).toEqual(['carol']);
      await store.recordPush(repo, a, 'mallory');
      await store.recordPush(repo, a, 'mallory');
      await store.recordPush(repo, a, 'carol');
      await store.recordPush(uid('o/other'), b, 'eve');
      await store.recordPush(repo, b, 'dave');
      expect(await store.headPushers(repo, 1, a)).toEqual(['carol', 'mallory']);
      // a push alone names the pusher of a head no PR event named (and of a PR berth never saw)
      expect(await store.headPushers(repo, 2, b)).toEqual(['dave']);
      await store.recordHead(repo, 3, b, '?');
      expect(await store.headPushers(repo, 3, b)).toEqual(['?', 'dave']);
    });
  });

  describe('leases', () => {
    it('acquire, renew by the holder, refused to another until expiry, then taken over; release by holder only', async () => {
      const name = uid('lease');
      const t = clock.t;
      expect(await store.acquireLease(name, 'replica-a', 1000)).toBe(true);
      expect(await store.getLease(name)).toEqual({ name, holder: 'replica-a', expiresAt: t + 1000 });

      clock.t = t + 500;
      expect(await store.acquireLease(name, 'replica-b', 1000)).toBe(false);
      expect(await store.acquireLease(name, 'replica-a', 1000)).toBe(true); // renewed
      expect(await store.acquireLease(name, 'replica-a', 1000)).toBe(true); // renewed again, same instant
      expect(await store.getLease(name)).toEqual({ name, holder: 'replica-a', expiresAt: t + 1500 });

      clock.t = t + 1499;
      expect(await store.acquireLease(name, 'replica-b', 1000)).toBe(false);
      expect((await store.getLease(name))!.holder).toBe('replica-a');

      clock.t = t + 1600; // replica-a stopped renewing
      expect(await store.acquireLease(name, 'replica-b', 1000)).toBe(true);
      expect(await store.getLease(name)).toEqual({ name, holder: 'replica-b', expiresAt: t + 2600 });
      expect(await store.acquireLease(name, 'replica-a', 1000)).toBe(false);

      expect(await store.releaseLease(name, 'replica-a')).toBe(false);
      expect(await store.releaseLease(name, 'replica-b')).toBe(true);
      expect(await store.getLease(name)).toBeUndefined();
      expect(await store.releaseLease(name, 'replica-b')).toBe(false);
      expect(await store.acquireLease(name, 'replica-a', 1000)).toBe(true);
      expect(await store.getLease('nope')).toBeUndefined();
    });

    it('concurrent acquireLease of a free or an expired lease: exactly one holder', async () => {
      const name = uid('lease');
      const free = await Promise.all(Array.from({ length: 10 }, (_, i) => pick(i).acquireLease(name, `r${i}`, 1000)));
      expect(free.filter(Boolean)).toHaveLength(1);
      expect((await store.getLease(name))!.holder).toBe(`r${free.indexOf(true)}`);

      clock.t += 5000;
      const expired = await Promise.all(Array.from({ length: 10 }, (_, i) => pick(i).acquireLease(name, `s${i}`, 1000)));
      expect(expired.filter(Boolean)).toHaveLength(1);
      expect((await store.getLease(name))!.holder).toBe(`s${expired.indexOf(true)}`);
    });
  });

  describe('project owners', () => {
    it('the first repository to claim a project on a target owns it; others read the owner; other targets are separate', async () => {
      const project = uid('proj');
      expect(await store.projectOwner('local', project)).toBeUndefined();
      expect(await store.claimProject('local', project, 'acme/one')).toBe('acme/one');
      expect(await store.claimProject('local', project, 'acme/one')).toBe('acme/one');
      expect(await store.claimProject('local', project, 'evil/two')).toBe('acme/one');
      expect(await store.projectOwner('local', project)).toBe('acme/one');
      expect(await store.claimProject('remote', project, 'evil/two')).toBe('evil/two');
      expect(await store.projectOwner('remote', project)).toBe('evil/two');
    });

    it('concurrent claims by different repositories: exactly one owner, and every caller is told who', async () => {
      const project = uid('proj');
      const owners = await Promise.all(Array.from({ length: 10 }, (_, i) => pick(i).claimProject('local', project, `org/repo${i}`)));
      expect(new Set(owners).size).toBe(1);
      expect(await store.projectOwner('local', project)).toBe(owners[0]);
    });
  });

  describe('one driver, durable work (issue 10: items 9, 10, 12, 16)', () => {
    const lease = { holder: 'driver-a', ttlMs: 30_000 };
    const lockOf = (repo: string, pr = 1) => ({ owner: `${repo}#${pr}`, pr });

    it('startApply: lock, in-flight check, apply and lease in one step; refusals write nothing', async () => {
      const repo = uid('o/r');
      const first = await store.startApply(newApply(repo), { lock: lockOf(repo), lease });
      if (!first.started) throw new Error(`not started: ${JSON.stringify(first)}`);
      expect(first.lock).toMatchObject({ owner: `${repo}#1`, pr: 1, applyId: first.apply.id });
      expect(await store.getLock(repo, 'staging')).toMatchObject({ owner: `${repo}#1`, applyId: first.apply.id });
      expect(await store.getLease(`apply:${first.apply.id}`)).toEqual({ name: `apply:${first.apply.id}`, holder: 'driver-a', expiresAt: clock.t + 30_000 });
      expect(first.fence).toEqual({ lease: `apply:${first.apply.id}`, holder: 'driver-a', token: expect.any(String) });

      // The same PR again while the first is in flight, and another PR: refused, nothing written.
      expect(await store.startApply(newApply(repo), { lock: lockOf(repo), lease })).toEqual({ started: false, reason: 'in_flight', applyId: first.apply.id });
      const other = await store.startApply(newApply(repo, { pr: 2 }), { lock: lockOf(repo, 2), lease });
      expect(other).toMatchObject({ started: false, reason: 'locked', holder: { owner: `${repo}#1` } });
      expect(await store.listApplies({ repo })).toHaveLength(1);
      // Without a lock the database itself refuses a second live apply of the environment.
      await expect(store.createApply(newApply(repo, { pr: 3 }))).rejects.toBeInstanceOf(ApplyInFlightError);
      expect(await store.listApplies({ repo })).toHaveLength(1);

      // The lock cannot be released (unlock, PR closed) while its apply is in flight.
      expect(await store.releaseLock(repo, 'staging', `${repo}#1`)).toBe(false);
      expect(await store.releaseLock(repo, 'staging')).toBe(false);
      expect(await store.getLock(repo, 'staging')).toBeDefined();

      // Once it ended, the same PR may start again, and the lock may go.
      expect(await store.casApplyState(first.apply.id, 0, { state: 'completed' })).toBe(true);
      const again = await store.startApply(newApply(repo), { lock: lockOf(repo), lease });
      expect(again.started).toBe(true);
      if (again.started) expect(await store.casApplyState(again.apply.id, 0, { state: 'failed' })).toBe(true);
      expect(await store.releaseLock(repo, 'staging', `${repo}#1`)).toBe(true);
      expect(await store.getLock(repo, 'staging')).toBeUndefined();
    });

    it('startApply refused for an in-flight apply rolls back the lock it would have taken', async () => {
      const repo = uid('o/r');
      const live = await store.createApply(newApply(repo, { pr: null }));
      expect(await store.startApply(newApply(repo), { lock: lockOf(repo), lease })).toEqual({ started: false, reason: 'in_flight', applyId: live.id });
      expect(await store.getLock(repo, 'staging')).toBeUndefined();
    });

    it('concurrent startApply from both instances: exactly one apply, whoever asks', async () => {
      const repo = uid('o/r');
      const same = await Promise.all(Array.from({ length: 8 }, (_, i) => pick(i).startApply(newApply(repo), { lock: lockOf(repo), lease: { holder: `d${i}`, ttlMs: 30_000 } })));
      expect(same.filter((r) => r.started)).toHaveLength(1);
      expect(same.filter((r) => !r.started && r.reason === 'in_flight')).toHaveLength(7);
      const repo2 = uid('o/r');
      const owners = await Promise.all(Array.from({ length: 8 }, (_, i) => pick(i).startApply(newApply(repo2, { pr: i + 1 }), { lock: lockOf(repo2, i + 1), lease })));
      expect(owners.filter((r) => r.started)).toHaveLength(1);
      expect(owners.filter((r) => !r.started && r.reason === 'locked')).toHaveLength(7);
      expect(await store.listApplies({ repo: repo2 })).toHaveLength(1);
    });

    it('claimReport: never while in flight, then exactly once, even when asked concurrently', async () => {
      const repo = uid('o/r');
      const a = await store.createApply(newApply(repo));
      expect(await store.claimReport(a.id)).toBe(false);
      await store.casApplyState(a.id, 0, { state: 'failed' });
      const claims = await Promise.all(Array.from({ length: 10 }, (_, i) => pick(i).claimReport(a.id)));
      expect(claims.filter(Boolean)).toHaveLength(1);
      expect(await store.claimReport(a.id)).toBe(false);
      expect(await store.claimReport('nope')).toBe(false);
    });

    it('claimReport with a holder: one claim at a time; a claim older than the TTL is taken over once; markReported ends it for good', async () => {
      const repo = uid('o/r');
      const a = await store.createApply(newApply(repo));
      const claim = (holder: string) => ({ holder, ttlMs: 30_000 });
      expect(await store.claimReport(a.id, claim('h1'))).toBe(false);
      expect(await store.markReported(a.id)).toBe(false);
      await store.casApplyState(a.id, 0, { state: 'completed' });
      expect(await store.reportClaim(a.id)).toBeUndefined();
      const first = await Promise.all(Array.from({ length: 6 }, (_, i) => pick(i).claimReport(a.id, claim(`h${i}`))));
      expect(first.filter(Boolean)).toHaveLength(1);
      const winner = `h${first.indexOf(true)}`;
      expect(await store.reportClaim(a.id)).toEqual({ claimedAt: clock.t, holder: winner });
      // Claimed, not yet sent: still owed, but nobody else may send while the claim is young.
      expect((await store.listUnreportedApplies()).map((x) => x.id)).toContain(a.id);
      clock.t += 29_000;
      expect(await store.claimReport(a.id, claim('late'))).toBe(false);
      expect(await store.claimReport(a.id)).toBe(false);
      // Its holder died between the claim and the sends: after the TTL one replica takes it over.
      clock.t += 2_000;
      const again = await Promise.all(Array.from({ length: 6 }, (_, i) => pick(i).claimReport(a.id, claim(`r${i}`))));
      expect(again.filter(Boolean)).toHaveLength(1);
      expect(await store.reportClaim(a.id)).toEqual({ claimedAt: clock.t, holder: `r${again.indexOf(true)}` });
      // Sent: reported once, never claimed or listed again, however old.
      const marks = await Promise.all(Array.from({ length: 4 }, (_, i) => pick(i).markReported(a.id)));
      expect(marks.filter(Boolean)).toHaveLength(1);
      clock.t += 3_600_000;
      expect(await store.claimReport(a.id, claim('later'))).toBe(false);
      expect(await store.reportClaim(a.id)).toBeUndefined();
      expect((await store.listUnreportedApplies()).map((x) => x.id)).not.toContain(a.id);
    });

    it('claimLease: the token survives renewals, a takeover gets a new one, and fenced journal writes of the old tenure are refused', async () => {
      const repo = uid('o/r');
      const a = await store.createApply(newApply(repo));
      const [t1, t2] = a.operations[0]!.tasks;
      const name = `apply:${a.id}`;
      const tokenA = await store.claimLease(name, 'driver-a', 1000);
      expect(tokenA).toEqual(expect.any(String));
      clock.t += 500;
      expect(await store.claimLease(name, 'driver-a', 1000)).toBe(tokenA);
      expect(await store.claimLease(name, 'driver-b', 1000)).toBeNull();
      const fenceA = { lease: name, holder: 'driver-a', token: tokenA! };
      expect(await store.updateTasks([{ id: t1!.id, expected: 'pending', patch: { state: 'running' } }], fenceA)).toEqual([true]);

      clock.t += 2000; // driver-a stopped renewing: driver-b takes over
      const tokenB = await store.claimLease(name, 'driver-b', 1000);
      expect(tokenB).not.toBeNull();
      expect(tokenB).not.toBe(tokenA);
      // driver-a's late writes carry the old tenure: refused, nothing written.
      expect(await store.updateTasks([{ id: t1!.id, expected: 'running', patch: { state: 'succeeded' } }, { id: t2!.id, expected: 'pending', patch: { state: 'running' } }], fenceA)).toEqual([false, false]);
      expect(await store.updateTask(t2!.id, 'pending', { state: 'running' }, fenceA)).toBe(false);
      expect((await store.getTask(t1!.id))!.state).toBe('running');
      expect((await store.getTask(t2!.id))!.state).toBe('pending');
      // Even re-taking the lease after it lapsed again starts a new tenure: the old fence stays dead.
      clock.t += 5000;
      const tokenA2 = await store.claimLease(name, 'driver-a', 1000);
      expect(tokenA2).not.toBe(tokenA);
      expect(await store.updateTask(t2!.id, 'pending', { state: 'running' }, fenceA)).toBe(false);
      expect(await store.updateTask(t2!.id, 'pending', { state: 'running' }, { ...fenceA, token: tokenA2! })).toBe(true);
    });

    it('deliveries are work items: claimed, re-claimable once the claim lapses, a duplicate only when done', async () => {
      const id = uid('delivery');
      const payload = JSON.stringify({ action: 'created', n: 1 });
      expect(await store.claimDelivery(id, 'issue_comment', payload, 'p1', 1000)).toBe(true);
      // A redelivery while p1 works on it (claim live) is not run twice.
      expect(await store.claimDelivery(id, 'issue_comment', payload, 'p2', 1000)).toBe(false);
      expect((await store.pendingDeliveries()).map((d) => d.deliveryId)).not.toContain(id);
      clock.t += 800;
      expect(await store.renewDeliveries('p1', 1000)).toBeGreaterThanOrEqual(1);
      clock.t += 800;
      expect(await store.claimDelivery(id, 'issue_comment', payload, 'p2', 1000)).toBe(false);
      // p1 died: its claim lapses, the delivery is pending with its payload, and is claimable again.
      clock.t += 1000;
      expect((await store.pendingDeliveries()).find((d) => d.deliveryId === id)).toEqual({ deliveryId: id, event: 'issue_comment', payload, receivedAt: expect.any(Number), attempts: 1 });
      const claims = await Promise.all(Array.from({ length: 6 }, (_, i) => pick(i).claimDelivery(id, 'issue_comment', payload, `q${i}`, 1000)));
      expect(claims.filter(Boolean)).toHaveLength(1);
      // each claim that took the work is counted (a refused one is not): what recovery gives up after a few
      clock.t += 1000;
      expect((await store.pendingDeliveries()).find((d) => d.deliveryId === id)?.attempts).toBe(2);
      await store.finishDelivery(id);
      clock.t += 5000;
      expect(await store.claimDelivery(id, 'issue_comment', payload, 'p3', 1000)).toBe(false);
      expect((await store.pendingDeliveries()).map((d) => d.deliveryId)).not.toContain(id);

      // A graceful stop gives its unfinished claims back at once.
      const id2 = uid('delivery');
      expect(await store.claimDelivery(id2, 'pull_request', '{}', 'p4', 60_000)).toBe(true);
      expect(await store.releaseDeliveries('p4')).toBe(1);
      expect((await store.pendingDeliveries()).map((d) => d.deliveryId)).toContain(id2);
      expect(await store.claimDelivery(id2, 'pull_request', '{}', 'p5', 60_000)).toBe(true);

      // One claim given back (a resumed delivery with no GitHub client): the holder's others stay its own.
      const [id3, id4] = [uid('delivery'), uid('delivery')];
      for (const id of [id3, id4]) expect(await store.claimDelivery(id, 'pull_request', '{}', 'p6', 60_000)).toBe(true);
      expect(await store.releaseDeliveries('p6', id3)).toBe(1);
      const pending = (await store.pendingDeliveries()).map((d) => d.deliveryId);
      expect(pending).toContain(id3);
      expect(pending).not.toContain(id4);
    });
  });

  describe('containers (drift index)', () => {
    it('upsert inserts, lists per target in a stable order, seenAt defaults to the clock', async () => {
      const target = uid('host');
      const t = clock.t;
      await store.upsertContainers(target, [
        container('c2', { service: 'web', replica: 2 }),
        container('c1', { service: 'web', replica: 1, applyId: 'ap-1' }),
        container('c3', { service: 'db', replica: 1, seenAt: 42 }),
      ]);
      await store.upsertContainers(uid('host'), [container('c1')]);
      const rows = await store.listContainers(target);
      expect(rows.map((r) => r.containerId)).toEqual(['c3', 'c1', 'c2']);
      expect(rows[1]).toEqual({
        target,
        containerId: 'c1',
        project: 'shop',
        environment: 'staging',
        service: 'web',
        replica: 1,
        name: 'shop-staging-web-1-c1',
        state: 'running',
        configHash: 'h1',
        applyId: 'ap-1',
        seenAt: t,
        updatedAt: t,
      });
      expect(rows[0]).toMatchObject({ seenAt: 42, updatedAt: t });
      expect(await store.listContainers(uid('host'))).toEqual([]);
      await expect(store.upsertContainers(target, [])).resolves.toBeUndefined();
    });

    it('applyId is never overwritten by null; updatedAt moves only when state, name, config hash or apply changed', async () => {
      const target = uid('host');
      const t = clock.t;
      await store.upsertContainers(target, [container('c1', { applyId: 'ap-1' }), container('c2')]);
      const get = async (id: string) => (await store.listContainers(target)).find((r) => r.containerId === id)!;

      clock.t = t + 10; // seen again, nothing changed, the reconciler does not know the apply
      await store.upsertContainers(target, [container('c1', { applyId: null })]);
      expect(await get('c1')).toMatchObject({ applyId: 'ap-1', seenAt: t + 10, updatedAt: t });

      clock.t = t + 20; // state changed
      await store.upsertContainers(target, [container('c1', { state: 'stopped' })]);
      expect(await get('c1')).toMatchObject({ state: 'stopped', applyId: 'ap-1', seenAt: t + 20, updatedAt: t + 20 });

      clock.t = t + 30; // name changed (rename after recreate)
      await store.upsertContainers(target, [container('c1', { state: 'stopped', name: 'renamed' })]);
      expect(await get('c1')).toMatchObject({ name: 'renamed', updatedAt: t + 30 });

      clock.t = t + 40; // config hash changed
      await store.upsertContainers(target, [container('c1', { state: 'stopped', name: 'renamed', configHash: 'h2' })]);
      expect(await get('c1')).toMatchObject({ configHash: 'h2', updatedAt: t + 40 });

      clock.t = t + 50; // another apply claims it
      const same = { state: 'stopped' as const, name: 'renamed', configHash: 'h2' };
      await store.upsertContainers(target, [container('c1', { ...same, applyId: 'ap-2' })]);
      expect(await get('c1')).toMatchObject({ applyId: 'ap-2', updatedAt: t + 50 });

      clock.t = t + 60; // the same apply again, and other columns replaced: no move
      await store.upsertContainers(target, [container('c1', { ...same, applyId: 'ap-2', replica: 3, service: 'api', seenAt: 7 })]);
      expect(await get('c1')).toMatchObject({ applyId: 'ap-2', replica: 3, service: 'api', seenAt: 7, updatedAt: t + 50 });

      clock.t = t + 70; // null → an apply counts as a change
      await store.upsertContainers(target, [container('c2', { applyId: 'ap-3' })]);
      expect(await get('c2')).toMatchObject({ applyId: 'ap-3', updatedAt: t + 70, seenAt: t + 70 });
    });

    it('markContainersMissing changes only rows not already missing, on that target; deleteContainers counts deletions', async () => {
      const target = uid('host');
      const neighbour = uid('host');
      const t = clock.t;
      await store.upsertContainers(target, [container('c1'), container('c2'), container('c3', { state: 'paused' })]);
      await store.upsertContainers(neighbour, [container('c1')]);

      clock.t = t + 100;
      expect(await store.markContainersMissing(target, ['c1', 'c3', 'ghost', 'c1'])).toBe(2);
      expect(await store.markContainersMissing(target, ['c1', 'c3'])).toBe(0);
      expect(await store.markContainersMissing(target, [])).toBe(0);
      const rows = await store.listContainers(target);
      expect(rows.map((r) => [r.containerId, r.state, r.updatedAt])).toEqual([
        ['c1', 'missing', t + 100],
        ['c2', 'running', t],
        ['c3', 'missing', t + 100],
      ]);
      expect((await store.listContainers(neighbour))[0]!.state).toBe('running');

      clock.t = t + 200; // it came back
      await store.upsertContainers(target, [container('c1')]);
      expect((await store.listContainers(target))[0]).toMatchObject({ state: 'running', updatedAt: t + 200 });

      expect(await store.deleteContainers(target, ['c1', 'c3', 'ghost'])).toBe(2);
      expect(await store.deleteContainers(target, ['c1'])).toBe(0);
      expect(await store.deleteContainers(target, [])).toBe(0);
      expect((await store.listContainers(target)).map((r) => r.containerId)).toEqual(['c2']);
      expect((await store.listContainers(neighbour)).map((r) => r.containerId)).toEqual(['c1']);
    });

    it('large batches (more rows than one statement carries) upsert, mark and delete completely', async () => {
      const target = uid('host');
      const ids = Array.from({ length: 1234 }, (_, i) => `c${String(i).padStart(5, '0')}`);
      await store.upsertContainers(
        target,
        ids.map((id, i) => container(id, { replica: i })),
      );
      expect(await store.listContainers(target)).toHaveLength(1234);
      await store.upsertContainers(
        target,
        ids.map((id, i) => container(id, { replica: i, applyId: 'ap-big' })),
      );
      expect((await store.listContainers(target)).every((r) => r.applyId === 'ap-big')).toBe(true);
      expect(await store.markContainersMissing(target, ids)).toBe(1234);
      expect(await store.deleteContainers(target, ids)).toBe(1234);
      expect(await store.listContainers(target)).toEqual([]);
    });
  });

  describe('lifecycle and migrations', () => {
    it('close is idempotent', async () => {
      const s = await openStore(b.shared ? url : 'sqlite::memory:');
      await s.close();
      await expect(s.close()).resolves.toBeUndefined();
    });

    (b.shared ? it : itNotApplicable)('migrations re-run on a later open are no-ops and keep the data', async () => {
      const created = await store.createApply(newApply(uid('o/r')));
      expect(await migrateAgain(url)).toEqual([]);
      const again = await openStore(url);
      try {
        expect((await again.getApply(created.id))!.id).toBe(created.id);
      } finally {
        await again.close();
      }
      expect(await schemaVersions(url)).toEqual(ALL_VERSIONS);
    });

    (b.shared ? it : itNotApplicable)('an apply\'s desired state is kept apart from its row (version 13): state writes and status reads do not carry it', async () => {
      const big = JSON.stringify({ desired: 'y'.repeat(100_000) });
      const created = await store.createApply(newApply(uid('o/r'), { desiredJson: big }));
      const db = await connect(parseDatabaseUrl(url));
      try {
        const columns = (await db.introspection.getTables()).find((t) => t.name === 'applies')!.columns.map((c) => c.name);
        expect(columns).not.toContain('desired_json');
        const row = await db.selectFrom('apply_payloads').selectAll().where('apply_id', '=', created.id).executeTakeFirstOrThrow();
        expect(row.desired_json).toBe(big);
      } finally {
        await db.destroy();
      }
      expect(await store.casApplyState(created.id, 0, { state: 'running', startedAt: T0 })).toBe(true);
      expect((await store.getApply(created.id))!).toMatchObject({ state: 'running', desiredJson: big });
      expect((await store.listApplies({ repo: (await store.getApply(created.id))!.repo }))[0]!.desiredJson).toBe(big);
    });

    (b.dialect === 'mysql' ? it : itNotApplicable)('MySQL: version 13 interrupted after its copy (DDL commits by itself) runs again without losing a payload', async () => {
      const created = await store.createApply(newApply(uid('o/r'), { desiredJson: '{"kept":true}' }));
      const db = await connect(parseDatabaseUrl(url));
      try {
        // As if the run stopped before the column was dropped: the column back (blank), the migration (and
        // the ones after it, which Kysely keeps in order) not recorded.
        const FROM_13 = ALL_VERSIONS.filter((n) => n >= '0013-apply-payloads');
        await sql`ALTER TABLE applies ADD COLUMN desired_json longtext NOT NULL`.execute(db);
        await db.deleteFrom('kysely_migration' as never).where('name' as never, '>=', '0013-apply-payloads' as never).execute();
        expect(await migrateToLatest(db)).toEqual(FROM_13);
        // and as if it stopped after the drop: nothing left to do, and done
        await db.deleteFrom('kysely_migration' as never).where('name' as never, '>=', '0013-apply-payloads' as never).execute();
        expect(await migrateToLatest(db)).toEqual(FROM_13);
        const columns = (await db.introspection.getTables()).find((t) => t.name === 'applies')!.columns.map((c) => c.name);
        expect(columns).not.toContain('desired_json');
      } finally {
        await db.destroy();
      }
      expect((await store.getApply(created.id))!.desiredJson).toBe('{"kept":true}');
      expect(await schemaVersions(url)).toEqual(ALL_VERSIONS);
    });

    (b.shared ? it : itNotApplicable)('tasks are indexed by apply alone: no index holds the state a journal write changes', async () => {
      const db = await connect(parseDatabaseUrl(url));
      try {
        const q =
          b.dialect === 'sqlite'
            ? sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks' AND sql IS NOT NULL`
            : b.dialect === 'mysql'
              ? sql<{ name: string }>`SELECT DISTINCT index_name AS name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'tasks' AND index_name <> 'PRIMARY' AND non_unique = 1`
              : sql<{ name: string }>`SELECT indexname AS name FROM pg_indexes WHERE tablename = 'tasks' AND schemaname = current_schema() AND indexdef NOT LIKE '%UNIQUE%'`;
        expect((await q.execute(db)).rows.map((r) => r.name).sort()).toEqual(['tasks_apply']);
      } finally {
        await db.destroy();
      }
    });

    (b.shared ? it : itNotApplicable)('two concurrent opens of a fresh database both succeed and migrate once', async () => {
      const freshUrl = await b.fresh();
      const [s1, s2] = await Promise.all([openStore(freshUrl), openStore(freshUrl)]);
      try {
        await s1.ping();
        await s2.ping();
        const created = await s1.createApply(newApply(uid('o/r')));
        expect((await s2.getApply(created.id))!.id).toBe(created.id);
      } finally {
        await s1.close();
        await s2.close();
      }
      expect(await schemaVersions(freshUrl)).toEqual(ALL_VERSIONS);
    });

    it('migrate: false opens without touching the schema', async () => {
      if (!b.shared) {
        const bare = await openStore('sqlite::memory:', { migrate: false });
        try {
          await bare.ping();
          await expect(bare.getApply('x')).rejects.toThrow();
        } finally {
          await bare.close();
        }
        return;
      }
      const freshUrl = await b.fresh();
      const bare = await openStore(freshUrl, { migrate: false });
      try {
        await bare.ping();
        await expect(bare.getApply('x')).rejects.toThrow(/applies/);
      } finally {
        await bare.close();
      }
    });
  });

  (b.shared ? describe : describeNotApplicable)('across instances and processes (replicas)', () => {
    it("two instances on one database see each other's writes and CAS", async () => {
      const a = store;
      const bb = other!;
      const created = await a.createApply(newApply(uid('o/r')));
      expect((await bb.getApply(created.id))!.version).toBe(0);

      expect(await a.casApplyState(created.id, 0, { state: 'running' })).toBe(true);
      expect(await bb.casApplyState(created.id, 0, { state: 'failed' })).toBe(false);
      expect(await bb.getApply(created.id)).toMatchObject({ state: 'running', version: 1 });
      expect(await bb.casApplyState(created.id, 1, { state: 'running_degraded' })).toBe(true);
      expect(await a.getApply(created.id)).toMatchObject({ state: 'running_degraded', version: 2 });

      const taskId = created.operations[0]!.tasks[0]!.id;
      expect(await bb.updateTask(taskId, 'pending', { state: 'running' })).toBe(true);
      expect(await a.updateTask(taskId, 'pending', { state: 'running' })).toBe(false);

      expect(await bb.requestStop(created.id)).toBe(true);
      expect(await a.getApply(created.id)).toMatchObject({ stopRequested: true, version: 3 });

      const repo = uid('o/r');
      expect((await a.acquireLock(repo, 'prod', `${repo}#1`, 1)).acquired).toBe(true);
      expect(await bb.acquireLock(repo, 'prod', `${repo}#2`, 2)).toMatchObject({ acquired: false, holder: { owner: `${repo}#1` } });

      const lease = uid('lease');
      expect(await a.acquireLease(lease, 'a', 1000)).toBe(true);
      expect(await bb.acquireLease(lease, 'b', 1000)).toBe(false);
    });

    it('separate processes racing: one CAS winner, one lock holder, one delivery', async () => {
      const created = await store.createApply(newApply(uid('o/r')));
      await store.releaseLock('o/procs', 'prod');
      const delivery = uid('delivery');
      // all twelve children act at the same instant
      const four = [0, 1, 2, 3];
      const results = await raceChildren([
        ...four.map(() => ({ mode: 'cas' as const, url, arg: created.id })),
        ...four.map((i) => ({ mode: 'lock' as const, url, arg: `o/procs#${i + 1}` })),
        ...four.map(() => ({ mode: 'delivery' as const, url, arg: delivery })),
      ]);
      const cas = results.slice(0, 4);
      const locks = results.slice(4, 8) as { acquired: boolean; lock?: { owner: string }; holder?: { owner: string } }[];
      const deliveries = results.slice(8);

      expect(cas.filter((r) => r === true)).toHaveLength(1);
      expect(await store.getApply(created.id)).toMatchObject({ state: 'running', version: 1 });

      const winners = locks.filter((r) => r.acquired);
      expect(winners).toHaveLength(1);
      expect(locks.filter((r) => !r.acquired).every((r) => r.holder!.owner === winners[0]!.lock!.owner)).toBe(true);
      expect((await store.getLock('o/procs', 'prod'))!.owner).toBe(winners[0]!.lock!.owner);

      expect(deliveries.filter((r) => r === true)).toHaveLength(1);
    });

    it('separate processes opening one fresh database at once all migrate it safely', async () => {
      const freshUrl = await b.fresh();
      const opened = await raceChildren(Array.from({ length: 4 }, () => ({ mode: 'open' as const, url: freshUrl })));
      expect(opened).toEqual(Array.from({ length: 4 }, () => b.dialect));
      expect(await schemaVersions(freshUrl)).toEqual(ALL_VERSIONS);
    });
  });
}

describe('Store conformance: SQLite file', () => conformance(sqliteFileBackend()));
describe('Store conformance: SQLite :memory:', () => conformance(sqliteMemoryBackend()));
describeMysql('Store conformance: MySQL/MariaDB', () => conformance(mysqlBackend()));
describePostgres('Store conformance: PostgreSQL', () => conformance(postgresBackend()));

// ── openStore and its URLs ──────────────────────────────────────────────────

describe('openStore on a SQLite file another connection is writing', () => {
  it('waits for a write lock held in the rollback journal\'s mode, where SQLite answers the switch to WAL busy at once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-wal-'));
    const file = join(dir, 'berth.sqlite');
    const { default: SQLite } = await import('better-sqlite3');
    // What a second process opening the fresh file first leaves for a moment: its write lock, before any WAL.
    const first = new SQLite(file);
    first.exec('BEGIN IMMEDIATE; CREATE TABLE first_writer (x INTEGER)');
    const started = Date.now();
    const done = setTimeout(() => {
      first.exec('COMMIT');
      first.close();
    }, 300);
    try {
      const store = await openStore(`sqlite:${file}`, { busyTimeoutMs: 5000 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      await store.ping();
      expect(await store.latestApply('o/r', 'staging')).toBeUndefined();
      await store.close();
      const check = new SQLite(file, { readonly: true });
      expect(check.pragma('journal_mode', { simple: true })).toBe('wal');
      check.close();
    } finally {
      clearTimeout(done);
      if (first.open) first.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('openStore URLs', () => {
  it('accepts the SQLite forms', () => {
    expect(parseDatabaseUrl('sqlite:./data/berth.sqlite')).toEqual({ dialect: 'sqlite', path: './data/berth.sqlite' });
    expect(parseDatabaseUrl('sqlite:///var/lib/berth.db')).toEqual({ dialect: 'sqlite', path: '/var/lib/berth.db' });
    expect(parseDatabaseUrl('sqlite://rel/berth.db')).toEqual({ dialect: 'sqlite', path: 'rel/berth.db' });
    expect(parseDatabaseUrl('file:/tmp/b.db')).toEqual({ dialect: 'sqlite', path: '/tmp/b.db' });
    expect(parseDatabaseUrl('file:///tmp/b.db')).toEqual({ dialect: 'sqlite', path: '/tmp/b.db' });
    expect(parseDatabaseUrl(':memory:')).toEqual({ dialect: 'sqlite', path: ':memory:' });
    expect(parseDatabaseUrl('sqlite::memory:')).toEqual({ dialect: 'sqlite', path: ':memory:' });
    expect(parseDatabaseUrl(DEFAULT_DATABASE_URL)).toEqual({ dialect: 'sqlite', path: './.berth/berth.sqlite' });
  });

  it('accepts mysql:// (and mariadb://) and parses it into pool options', () => {
    expect(parseDatabaseUrl('mysql://u:p@db:3307/berth')).toEqual({ dialect: 'mysql', url: 'mysql://u:p@db:3307/berth' });
    expect(parseDatabaseUrl('mariadb://u@db/berth').dialect).toBe('mysql');
    const { database, pool } = mysqlConfigFromUrl('mysql://berth%40app:p%40ss%2Fw@db.internal/berth_prod?connectionLimit=4');
    expect(database).toBe('berth_prod');
    expect(pool).toMatchObject({ host: 'db.internal', port: 3306, user: 'berth@app', password: 'p@ss/w', database, connectionLimit: 4 });
    expect(mysqlConfigFromUrl('mysql://root@[::1]:3308/x').pool).toMatchObject({ host: '::1', port: 3308, password: undefined });
    expect(() => mysqlConfigFromUrl('mysql://root@db:3306/')).toThrow(/names no database/);
    expect(() => mysqlConfigFromUrl('mysql://root@db/x?pool=3')).toThrow(/unknown MySQL URL parameter "pool"/);
  });

  it('accepts postgres:// (and postgresql://) and parses it into pool options', () => {
    expect(parseDatabaseUrl('postgres://u:p@db:5433/berth')).toEqual({ dialect: 'postgres', url: 'postgres://u:p@db:5433/berth' });
    expect(parseDatabaseUrl('postgresql://u@db/berth').dialect).toBe('postgres');
    expect(postgresConfigFromUrl('postgresql://berth%40app:p%40ss%2Fw@db.internal/berth_prod?max=4&sslmode=require')).toEqual({
      host: 'db.internal',
      port: 5432,
      user: 'berth@app',
      password: 'p@ss/w',
      database: 'berth_prod',
      max: 4,
      ssl: { rejectUnauthorized: false },
    });
    expect(postgresConfigFromUrl('postgres://postgres@[::1]:5434/x')).toMatchObject({ host: '::1', port: 5434, password: undefined });
    expect(postgresConfigFromUrl('postgres://u@%2Frun%2Fpostgresql/x').host).toBe('/run/postgresql');
    expect(() => postgresConfigFromUrl('postgres://root@db:5432/')).toThrow(/names no database/);
    expect(() => postgresConfigFromUrl('postgres://root@db/x?pool=3')).toThrow(/unknown PostgreSQL URL parameter "pool"/);
    expect(() => postgresConfigFromUrl('postgres://root@db/x?sslmode=sometimes')).toThrow(/sslmode must be/);
  });

  it('rejects an unknown scheme with a message naming it and the accepted forms, without the password', async () => {
    const attempt = openStore('mongodb://admin:hunter2@db:27017/berth');
    await expect(attempt).rejects.toThrow(/"mongodb:"/);
    await expect(attempt).rejects.toThrow(/sqlite:PATH.*mysql:\/\/user:password@host:port\/database.*postgres:\/\/user:password@host:port\/database/);
    await expect(attempt).rejects.not.toThrow(/hunter2/);
    expect(() => parseDatabaseUrl('./berth.sqlite')).toThrow(/no scheme.*sqlite:\.\/berth\.sqlite/);
    expect(() => parseDatabaseUrl('sqlite:')).toThrow(/names no SQLite file/);
  });

  it('redactUrl hides passwords only', () => {
    expect(redactUrl('mysql://root:s3cret@db:3306/berth')).toBe('mysql://root:***@db:3306/berth');
    expect(redactUrl('mysql://u:p@ss/w@db/berth')).toBe('mysql://u:***@db/berth');
    expect(redactUrl('mysql://root@db:3306/berth')).toBe('mysql://root@db:3306/berth');
    expect(redactUrl('mysql://db/berth?user=u&password=x&ssl=true')).toBe('mysql://db/berth?user=u&password=***&ssl=true');
    expect(redactUrl('postgres://berth:s3cret@db:5432/berth')).toBe('postgres://berth:***@db:5432/berth');
    expect(redactUrl('sqlite:./.berth/berth.sqlite')).toBe('sqlite:./.berth/berth.sqlite');
    expect(redactUrl(':memory:')).toBe(':memory:');
  });

  it('each :memory: open is its own database', async () => {
    const a = await openStore(':memory:');
    const c = await openStore('sqlite::memory:');
    try {
      const created = await a.createApply(newApply('o/mem'));
      expect(await a.getApply(created.id)).toBeDefined();
      expect(await c.getApply(created.id)).toBeUndefined();
    } finally {
      await a.close();
      await c.close();
    }
  });

  it('falls back to DATABASE_URL and creates the SQLite directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-env-'));
    const saved = process.env.DATABASE_URL;
    process.env.DATABASE_URL = `sqlite:${join(dir, 'deep', 'er', 'x.sqlite')}`;
    try {
      const s = await openStore();
      await s.close();
      expect(existsSync(join(dir, 'deep', 'er', 'x.sqlite'))).toBe(true);
      // an explicit URL wins over the environment
      const m = await openStore('sqlite::memory:');
      await m.close();
      expect(m.dialect).toBe('sqlite');
    } finally {
      if (saved === undefined) delete process.env.DATABASE_URL;
      else process.env.DATABASE_URL = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('without a URL or DATABASE_URL, uses ./.berth/berth.sqlite under the working directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-cwd-'));
    try {
      const env = { ...process.env };
      delete env.DATABASE_URL;
      const dialect = await runChild({ mode: 'open', url: '', cwd: dir, env });
      expect(dialect).toBe('sqlite');
      expect(existsSync(join(dir, '.berth', 'berth.sqlite'))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
