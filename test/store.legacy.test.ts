// A database created by berth's hand-written migrations (before the store moved
// to Kysely) opens under the Kysely migrator: the versions it recorded in
// schema_migrations are recognised (not run again), a database one version
// behind is upgraded by the Kysely migration of that version, the data stays
// usable, and the tables end with the same columns a fresh database gets.
// SQLite and MariaDB only: PostgreSQL never had the old code path.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { sql } from 'kysely';
import mysql from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { MIGRATION_NAMES } from '../src/store/migrations/index.js';
import { connect, openStore, parseDatabaseUrl } from '../src/store/open.js';
import type { NewApply } from '../src/store/store.js';
import { describeMysql, MYSQL_URL } from './helpers/env.js';
import { applyLegacy, LEGACY_MIGRATIONS } from './helpers/legacy-schema.js';

/** The last version the hand-written migrations reached. */
const LATEST = Math.max(...LEGACY_MIGRATIONS.map((m) => m.version));
const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
import { scratchDatabaseName } from './helpers/stores.js';

interface Backend {
  fresh(): Promise<string>;
  /** Runs one statement with `?` parameters, outside berth. */
  exec(url: string, statement: string, params: unknown[]): Promise<void>;
  cleanup(): Promise<void>;
}

function sqliteBackend(): Backend {
  const dirs: string[] = [];
  return {
    async fresh() {
      const dir = mkdtempSync(join(tmpdir(), 'berth-legacy-'));
      dirs.push(dir);
      return `sqlite:${join(dir, 'berth.sqlite')}`;
    },
    async exec(url, statement, params) {
      const db = new Database(url.slice('sqlite:'.length));
      try {
        db.prepare(statement).run(...params);
      } finally {
        db.close();
      }
    },
    async cleanup() {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    },
  };
}

function mysqlBackend(): Backend {
  const databases: string[] = [];
  return {
    async fresh() {
      const admin = await mysql.createConnection({ uri: MYSQL_URL });
      const db = scratchDatabaseName();
      await admin.query(`CREATE DATABASE \`${db}\``);
      await admin.end();
      databases.push(db);
      const u = new URL(MYSQL_URL);
      u.pathname = `/${db}`;
      return u.toString();
    },
    async exec(url, statement, params) {
      const conn = await mysql.createConnection({ uri: url });
      try {
        await conn.query(statement, params);
      } finally {
        await conn.end();
      }
    },
    async cleanup() {
      const admin = await mysql.createConnection({ uri: MYSQL_URL });
      for (const db of databases.splice(0)) await admin.query(`DROP DATABASE IF EXISTS \`${db}\``);
      await admin.end();
    },
  };
}

/** Every berth table with its columns (name, type, nullability), as the database describes them. */
async function describeSchema(url: string): Promise<Record<string, string[]>> {
  const db = await connect(parseDatabaseUrl(url));
  try {
    const out: Record<string, string[]> = {};
    for (const t of await db.introspection.getTables()) {
      if (t.name.startsWith('kysely_') || t.name === 'schema_migrations') continue;
      out[t.name] = t.columns.map((c) => `${c.name} ${c.dataType.toLowerCase()}${c.isNullable ? ' null' : ''}`).sort();
    }
    return out;
  } finally {
    await db.destroy();
  }
}

async function recorded(url: string): Promise<{ kysely: string[]; legacy: number[] }> {
  const db = await connect(parseDatabaseUrl(url));
  try {
    const kysely = (await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(db)).rows.map((r) => r.name);
    const legacy = (await sql<{ version: number }>`SELECT version FROM schema_migrations ORDER BY version`.execute(db)).rows.map((r) => Number(r.version));
    return { kysely, legacy };
  } finally {
    await db.destroy();
  }
}

const APPLY_COLUMNS = 'id, repo, pr, environment, kind, actor, head_sha, desired_digest, plan_fingerprint, desired_json, state, version, stop_requested, created_at, finished_at';

/** The desired state each old apply holds in its row: version 13 moves it to apply_payloads. */
const PAYLOADS = { 'old-done': '{"desired":"done"}', 'old-running': `{"desired":"${'x'.repeat(70_000)}"}` };

function newApply(environment: string): NewApply {
  return {
    repo: 'o/legacy',
    pr: 2,
    environment,
    kind: 'apply',
    actor: 'bob',
    headSha: 'b'.repeat(40),
    desiredDigest: 'sha256:new',
    planFingerprint: 'fp',
    desiredJson: '{}',
    operations: [{ target: 'local', tasks: [{ nodeId: 1, kind: 'CreateContainer', resource: 'service:web:1', reason: 'missing', deps: [], nodeJson: '{}' }] }],
  };
}

function suite(name: string, b: Backend, d: (name: string, fn: () => void) => void = describe) {
  d(`a database made by the hand-written migrations (${name})`, () => {
    afterAll(() => b.cleanup());

    /** An old database at `version`, holding one apply in flight and one that ended. */
    async function oldDatabase(version: number): Promise<string> {
      const url = await b.fresh();
      await applyLegacy(url, version);
      const insert = `INSERT INTO applies (${APPLY_COLUMNS}) VALUES (?, 'o/legacy', 1, ?, 'apply', 'alice', NULL, 'sha256:d', NULL, ?, ?, 3, 0, 1000, ?)`;
      await b.exec(url, insert, ['old-done', 'production', PAYLOADS['old-done'], 'completed', 2000]);
      await b.exec(url, insert, ['old-running', 'staging', PAYLOADS['old-running'], 'running', null]);
      if (version >= 4) await b.exec(url, `UPDATE applies SET live = 1 WHERE id = ?`, ['old-running']);
      await b.exec(url, `INSERT INTO locks (repo, environment, owner, pr, apply_id, created_at) VALUES ('o/legacy', 'staging', 'o/legacy#1', 1, 'old-running', 1000)`, []);
      return url;
    }

    it('at the latest old version: recognised, nothing re-run, data and invariants intact, same columns as a fresh database', async () => {
      const url = await oldDatabase(LATEST);
      const before = await describeSchema(url);
      const store = await openStore(url);
      try {
        expect(await recorded(url)).toEqual({ kysely: MIGRATION_NAMES, legacy: upTo(LATEST) });
        // Versions after the hand-written ones add only what they say: version 9 the report claim's two
        // columns, version 10 the file_blobs table, version 11 the deliveries' attempts, version 12 the command
        // comment of an apply; version 13 moves an apply's desired state out of its row (apply_payloads);
        // version 14 who pushed each head of a PR; version 15 the branch_pushes table.
        const { file_blobs: blobs, apply_payloads: payloads, branch_pushes: pushes, ...after } = await describeSchema(url);
        const added = /^(report_(claimed_at|holder)|command_comment_id) /;
        expect(after.applies!.filter((c) => !added.test(c))).toEqual(before.applies!.filter((c) => !c.startsWith('desired_json ')));
        expect(before.applies!.filter((c) => c.startsWith('desired_json '))).toHaveLength(1);
        expect(after.applies!.filter((c) => added.test(c))).toHaveLength(3);
        expect(after.pr_heads!.filter((c) => !/^pushed_by /.test(c))).toEqual(before.pr_heads);
        expect(after.pr_heads!.filter((c) => /^pushed_by /.test(c))).toHaveLength(1);
        expect(after.deliveries!.filter((c) => !/^attempts /.test(c))).toEqual(before.deliveries);
        expect(after.deliveries!.filter((c) => /^attempts /.test(c))).toHaveLength(1);
        expect({ ...after, applies: before.applies, deliveries: before.deliveries, pr_heads: before.pr_heads }).toEqual(before);
        expect(blobs?.map((c) => c.split(' ')[0])).toEqual(['blob', 'repo', 'stored_at', 'text']);
        expect(payloads?.map((c) => c.split(' ')[0])).toEqual(['apply_id', 'desired_json']);
        expect(pushes?.map((c) => c.split(' ')[0])).toEqual(['head_sha', 'pushed_by', 'repo', 'seen_at']);
        // each old apply's desired state came along
        expect((await store.getApply('old-done'))!.desiredJson).toBe(PAYLOADS['old-done']);
        expect((await store.getApply('old-running'))!.desiredJson).toBe(PAYLOADS['old-running']);
        expect(await store.getApply('old-running')).toMatchObject({ state: 'running', version: 3, environment: 'staging' });
        // the live index still holds: the old in-flight apply keeps its environment
        const refused = await store.startApply(newApply('staging'), { lock: { owner: 'o/legacy#1', pr: 1 }, lease: { holder: 'r1', ttlMs: 60_000 } });
        expect(refused).toEqual({ started: false, reason: 'in_flight', applyId: 'old-running' });
        expect(await store.releaseLock('o/legacy', 'staging')).toBe(false);
        // and the store works on the old tables
        const started = await store.startApply(newApply('production'), { lock: { owner: 'o/legacy#2', pr: 2 }, lease: { holder: 'r1', ttlMs: 60_000 } });
        expect(started.started).toBe(true);
      } finally {
        await store.close();
      }
      const freshUrl = await b.fresh();
      await (await openStore(freshUrl)).close();
      expect(await describeSchema(freshUrl)).toEqual(await describeSchema(url));
    });

    it('at version 3: the Kysely migrations from version 4 on run on the old data (the in-flight apply becomes the live one)', async () => {
      const url = await oldDatabase(3);
      const store = await openStore(url);
      try {
        expect(await recorded(url)).toEqual({ kysely: MIGRATION_NAMES, legacy: upTo(3) });
        const refused = await store.startApply(newApply('staging'), { lock: { owner: 'o/legacy#1', pr: 1 }, lease: { holder: 'r1', ttlMs: 60_000 } });
        expect(refused).toEqual({ started: false, reason: 'in_flight', applyId: 'old-running' });
        // an apply that had ended before the upgrade counts as reported
        expect(await store.claimReport('old-done')).toBe(false);
        expect(await store.claimLease('apply:old-running', 'r1', 1000)).not.toBeNull();
        expect(await store.claimDelivery('d-1', 'issue_comment', '{}', 'r1', 1000)).toBe(true);
        expect((await store.listApplies({ repo: 'o/legacy' })).map((a) => [a.id, a.desiredJson])).toEqual([
          ['old-running', PAYLOADS['old-running']],
          ['old-done', PAYLOADS['old-done']],
        ]);
      } finally {
        await store.close();
      }
      const fresh = await b.fresh();
      await (await openStore(fresh)).close();
      expect(await describeSchema(url)).toEqual(await describeSchema(fresh));
    });
  });
}

suite('SQLite', sqliteBackend());
suite('MariaDB', mysqlBackend(), describeMysql);
