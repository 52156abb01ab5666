// The schema as berth's hand-written migrations made it before the store moved
// to Kysely (src/store/migrations.ts at that time), kept verbatim as a fixture:
// a database created by that code path must open and upgrade under the Kysely
// migrator. `applyLegacy` runs versions 1..upTo the way the old code did and
// records them in schema_migrations.
import Database from 'better-sqlite3';
import mysql from 'mysql2/promise';

const MYSQL_TABLE = 'ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin';
const IN_FLIGHT = "'pending', 'running', 'running_degraded', 'stopping'";

interface Migration {
  version: number;
  name: string;
  sqlite: string[];
  mysql: string[];
}


export const LEGACY_MIGRATIONS: Migration[] = [
  {
    version: 1,
    name: 'initial schema: applies, operations, tasks, locks, plans, deliveries, containers, comments, leases',
    sqlite: [
      `CREATE TABLE applies (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        repo TEXT NOT NULL,
        pr INTEGER,
        environment TEXT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        head_sha TEXT,
        desired_digest TEXT NOT NULL,
        plan_fingerprint TEXT,
        desired_json TEXT NOT NULL,
        state TEXT NOT NULL,
        version INTEGER NOT NULL DEFAULT 0,
        stop_requested INTEGER NOT NULL DEFAULT 0,
        check_run_id INTEGER,
        comment_id INTEGER,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        error TEXT
      )`,
      `CREATE INDEX applies_repo_env ON applies (repo, environment, seq)`,
      `CREATE INDEX applies_repo_pr ON applies (repo, pr)`,
      `CREATE INDEX applies_state ON applies (state)`,
      `CREATE TABLE apply_operations (
        id TEXT PRIMARY KEY,
        apply_id TEXT NOT NULL REFERENCES applies (id) ON DELETE CASCADE,
        target TEXT NOT NULL,
        ordinal INTEGER NOT NULL,
        state TEXT NOT NULL,
        version INTEGER NOT NULL DEFAULT 0,
        started_at INTEGER,
        finished_at INTEGER,
        error TEXT,
        UNIQUE (apply_id, ordinal)
      )`,
      `CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        operation_id TEXT NOT NULL REFERENCES apply_operations (id) ON DELETE CASCADE,
        apply_id TEXT NOT NULL REFERENCES applies (id) ON DELETE CASCADE,
        node_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        resource TEXT NOT NULL,
        reason TEXT NOT NULL,
        deps TEXT NOT NULL,
        node_json TEXT NOT NULL,
        state TEXT NOT NULL,
        version INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        result TEXT,
        started_at INTEGER,
        finished_at INTEGER,
        UNIQUE (operation_id, node_id)
      )`,
      `CREATE INDEX tasks_apply_state ON tasks (apply_id, state)`,
      `CREATE TABLE locks (
        repo TEXT NOT NULL,
        environment TEXT NOT NULL,
        owner TEXT NOT NULL,
        pr INTEGER NOT NULL,
        apply_id TEXT,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (repo, environment)
      )`,
      `CREATE INDEX locks_repo_pr ON locks (repo, pr)`,
      `CREATE TABLE plans (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        repo TEXT NOT NULL,
        pr INTEGER,
        environment TEXT NOT NULL,
        head_sha TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        desired_digest TEXT NOT NULL,
        observed_digest TEXT NOT NULL,
        plan_json TEXT NOT NULL,
        rendered TEXT NOT NULL,
        created_at INTEGER NOT NULL
      )`,
      `CREATE INDEX plans_repo_pr_env ON plans (repo, pr, environment, seq)`,
      `CREATE TABLE deliveries (
        delivery_id TEXT PRIMARY KEY,
        event TEXT NOT NULL,
        received_at INTEGER NOT NULL
      )`,
      `CREATE INDEX deliveries_received ON deliveries (received_at)`,
      `CREATE TABLE containers (
        target TEXT NOT NULL,
        container_id TEXT NOT NULL,
        project TEXT NOT NULL,
        environment TEXT NOT NULL,
        service TEXT NOT NULL,
        replica INTEGER NOT NULL,
        name TEXT NOT NULL,
        state TEXT NOT NULL,
        config_hash TEXT NOT NULL,
        apply_id TEXT,
        seen_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (target, container_id)
      )`,
      `CREATE TABLE comments (
        repo TEXT NOT NULL,
        pr INTEGER NOT NULL,
        comment_ids TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (repo, pr)
      )`,
      `CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      )`,
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS applies (
        seq BIGINT NOT NULL AUTO_INCREMENT,
        id VARCHAR(36) NOT NULL,
        repo VARCHAR(255) NOT NULL,
        pr INT NULL,
        environment VARCHAR(100) NOT NULL,
        kind VARCHAR(16) NOT NULL,
        actor VARCHAR(255) NOT NULL,
        head_sha VARCHAR(64) NULL,
        desired_digest VARCHAR(255) NOT NULL,
        plan_fingerprint VARCHAR(255) NULL,
        desired_json LONGTEXT NOT NULL,
        state VARCHAR(32) NOT NULL,
        version INT NOT NULL DEFAULT 0,
        stop_requested TINYINT(1) NOT NULL DEFAULT 0,
        check_run_id BIGINT NULL,
        comment_id BIGINT NULL,
        created_at BIGINT NOT NULL,
        started_at BIGINT NULL,
        finished_at BIGINT NULL,
        error MEDIUMTEXT NULL,
        PRIMARY KEY (seq),
        UNIQUE KEY applies_id (id),
        KEY applies_repo_env (repo, environment, seq),
        KEY applies_repo_pr (repo, pr),
        KEY applies_state (state)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS apply_operations (
        id VARCHAR(36) NOT NULL,
        apply_id VARCHAR(36) NOT NULL,
        target VARCHAR(100) NOT NULL,
        ordinal INT NOT NULL,
        state VARCHAR(32) NOT NULL,
        version INT NOT NULL DEFAULT 0,
        started_at BIGINT NULL,
        finished_at BIGINT NULL,
        error MEDIUMTEXT NULL,
        PRIMARY KEY (id),
        UNIQUE KEY operations_apply_ordinal (apply_id, ordinal),
        CONSTRAINT operations_apply_fk FOREIGN KEY (apply_id) REFERENCES applies (id) ON DELETE CASCADE
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS tasks (
        id VARCHAR(36) NOT NULL,
        operation_id VARCHAR(36) NOT NULL,
        apply_id VARCHAR(36) NOT NULL,
        node_id INT NOT NULL,
        kind VARCHAR(64) NOT NULL,
        resource VARCHAR(1024) NOT NULL,
        reason TEXT NOT NULL,
        deps LONGTEXT NOT NULL,
        node_json LONGTEXT NOT NULL,
        state VARCHAR(16) NOT NULL,
        version INT NOT NULL DEFAULT 0,
        error MEDIUMTEXT NULL,
        result TEXT NULL,
        started_at BIGINT NULL,
        finished_at BIGINT NULL,
        PRIMARY KEY (id),
        UNIQUE KEY tasks_operation_node (operation_id, node_id),
        KEY tasks_apply_state (apply_id, state),
        CONSTRAINT tasks_operation_fk FOREIGN KEY (operation_id) REFERENCES apply_operations (id) ON DELETE CASCADE,
        CONSTRAINT tasks_apply_fk FOREIGN KEY (apply_id) REFERENCES applies (id) ON DELETE CASCADE
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS locks (
        repo VARCHAR(255) NOT NULL,
        environment VARCHAR(100) NOT NULL,
        owner VARCHAR(300) NOT NULL,
        pr INT NOT NULL,
        apply_id VARCHAR(36) NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (repo, environment),
        KEY locks_repo_pr (repo, pr)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS plans (
        seq BIGINT NOT NULL AUTO_INCREMENT,
        id VARCHAR(36) NOT NULL,
        repo VARCHAR(255) NOT NULL,
        pr INT NULL,
        environment VARCHAR(100) NOT NULL,
        head_sha VARCHAR(64) NOT NULL,
        fingerprint VARCHAR(255) NOT NULL,
        desired_digest VARCHAR(255) NOT NULL,
        observed_digest VARCHAR(255) NOT NULL,
        plan_json LONGTEXT NOT NULL,
        rendered LONGTEXT NOT NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (seq),
        UNIQUE KEY plans_id (id),
        KEY plans_repo_pr_env (repo, pr, environment, seq)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS deliveries (
        delivery_id VARCHAR(100) NOT NULL,
        event VARCHAR(100) NOT NULL,
        received_at BIGINT NOT NULL,
        PRIMARY KEY (delivery_id),
        KEY deliveries_received (received_at)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS containers (
        target VARCHAR(100) NOT NULL,
        container_id VARCHAR(128) NOT NULL,
        project VARCHAR(100) NOT NULL,
        environment VARCHAR(100) NOT NULL,
        service VARCHAR(255) NOT NULL,
        replica INT NOT NULL,
        name VARCHAR(255) NOT NULL,
        state VARCHAR(16) NOT NULL,
        config_hash VARCHAR(128) NOT NULL,
        apply_id VARCHAR(36) NULL,
        seen_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (target, container_id)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS comments (
        repo VARCHAR(255) NOT NULL,
        pr INT NOT NULL,
        comment_ids TEXT NOT NULL,
        updated_at BIGINT NOT NULL,
        PRIMARY KEY (repo, pr)
      ) ${MYSQL_TABLE}`,
      `CREATE TABLE IF NOT EXISTS leases (
        name VARCHAR(191) NOT NULL,
        holder VARCHAR(255) NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (name)
      ) ${MYSQL_TABLE}`,
    ],
  },
  {
    version: 2,
    name: 'project owners: which repository owns a project on a target',
    sqlite: [
      `CREATE TABLE project_owners (
        target TEXT NOT NULL,
        project TEXT NOT NULL,
        repo TEXT NOT NULL,
        claimed_at INTEGER NOT NULL,
        PRIMARY KEY (target, project)
      )`,
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS project_owners (
        target VARCHAR(100) NOT NULL,
        project VARCHAR(100) NOT NULL,
        repo VARCHAR(255) NOT NULL,
        claimed_at BIGINT NOT NULL,
        PRIMARY KEY (target, project)
      ) ${MYSQL_TABLE}`,
    ],
  },
  {
    version: 3,
    name: 'pr_heads: when berth first saw each head of a PR (a command is only valid for a head seen before it was written)',
    sqlite: [
      `CREATE TABLE pr_heads (
        repo TEXT NOT NULL,
        pr INTEGER NOT NULL,
        head_sha TEXT NOT NULL,
        seen_at INTEGER NOT NULL,
        PRIMARY KEY (repo, pr, head_sha)
      )`,
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS pr_heads (
        repo VARCHAR(255) NOT NULL,
        pr INT NOT NULL,
        head_sha VARCHAR(64) NOT NULL,
        seen_at BIGINT NOT NULL,
        PRIMARY KEY (repo, pr, head_sha)
      ) ${MYSQL_TABLE}`,
    ],
  },
  {
    version: 4,
    name: 'one driver, durable work: one live apply per environment, report claim, lease tokens, delivery work items',
    sqlite: [
      // live = 1 while the apply is in flight, NULL once it ended: NULLs never collide,
      // so the unique index allows one in-flight apply per (repo, environment).
      `ALTER TABLE applies ADD COLUMN live INTEGER`,
      `ALTER TABLE applies ADD COLUMN reported_at INTEGER`,
      `UPDATE applies SET live = 1 WHERE state IN (${IN_FLIGHT}) AND seq = (
         SELECT MAX(b.seq) FROM applies b WHERE b.repo = applies.repo AND b.environment = applies.environment AND b.state IN (${IN_FLIGHT}))`,
      `UPDATE applies SET reported_at = COALESCE(finished_at, created_at) WHERE state NOT IN (${IN_FLIGHT})`,
      `CREATE UNIQUE INDEX applies_live ON applies (repo, environment, live)`,
      `ALTER TABLE leases ADD COLUMN token TEXT`,
      `ALTER TABLE deliveries ADD COLUMN payload TEXT`,
      `ALTER TABLE deliveries ADD COLUMN state TEXT NOT NULL DEFAULT 'done'`,
      `ALTER TABLE deliveries ADD COLUMN claimed_by TEXT`,
      `ALTER TABLE deliveries ADD COLUMN claimed_until INTEGER`,
      `CREATE INDEX deliveries_state ON deliveries (state, received_at)`,
    ],
    mysql: [
      `ALTER TABLE applies ADD COLUMN live TINYINT NULL`,
      `ALTER TABLE applies ADD COLUMN reported_at BIGINT NULL`,
      `UPDATE applies a JOIN (SELECT MAX(seq) AS seq FROM applies WHERE state IN (${IN_FLIGHT}) GROUP BY repo, environment) m ON a.seq = m.seq SET a.live = 1`,
      `UPDATE applies SET reported_at = COALESCE(finished_at, created_at) WHERE state NOT IN (${IN_FLIGHT}) AND reported_at IS NULL`,
      `CREATE UNIQUE INDEX applies_live ON applies (repo, environment, live)`,
      `ALTER TABLE leases ADD COLUMN token VARCHAR(64) NULL`,
      `ALTER TABLE deliveries ADD COLUMN payload LONGTEXT NULL`,
      `ALTER TABLE deliveries ADD COLUMN state VARCHAR(16) NOT NULL DEFAULT 'done'`,
      `ALTER TABLE deliveries ADD COLUMN claimed_by VARCHAR(255) NULL`,
      `ALTER TABLE deliveries ADD COLUMN claimed_until BIGINT NULL`,
      `CREATE INDEX deliveries_state ON deliveries (state, received_at)`,
    ],
  },
  // deployments (issue 14)
  {
    version: 5,
    name: 'deployments: the GitHub deployment each apply is reported as',
    sqlite: [
      `CREATE TABLE IF NOT EXISTS deployments (
        apply_id TEXT PRIMARY KEY,
        repo TEXT NOT NULL,
        environment TEXT NOT NULL,
        spec TEXT NOT NULL,
        deployment_id INTEGER,
        state TEXT,
        created_at INTEGER NOT NULL
      )`,
      `CREATE INDEX IF NOT EXISTS deployments_env ON deployments (repo, environment, created_at)`,
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS deployments (
        apply_id VARCHAR(64) NOT NULL,
        repo VARCHAR(255) NOT NULL,
        environment VARCHAR(100) NOT NULL,
        spec TEXT NOT NULL,
        deployment_id BIGINT NULL,
        state VARCHAR(16) NULL,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (apply_id),
        INDEX deployments_env (repo, environment, created_at)
      ) ${MYSQL_TABLE}`,
    ],
  },
  {
    version: 6,
    name: 'secrets (issue 18): server-side secrets per repository and environment, encrypted at rest',
    sqlite: [
      `CREATE TABLE secrets (
        repo TEXT NOT NULL,
        environment TEXT NOT NULL,
        name TEXT NOT NULL,
        key_id TEXT NOT NULL,
        nonce TEXT NOT NULL,
        ciphertext TEXT NOT NULL,
        value_hash TEXT NOT NULL,
        set_by TEXT NOT NULL,
        set_at INTEGER NOT NULL,
        PRIMARY KEY (repo, environment, name)
      )`,
    ],
    mysql: [
      `CREATE TABLE IF NOT EXISTS secrets (
        repo VARCHAR(255) NOT NULL,
        environment VARCHAR(100) NOT NULL,
        name VARCHAR(191) NOT NULL,
        key_id VARCHAR(64) NOT NULL,
        nonce VARCHAR(64) NOT NULL,
        ciphertext MEDIUMTEXT NOT NULL,
        value_hash VARCHAR(128) NOT NULL,
        set_by VARCHAR(255) NOT NULL,
        set_at BIGINT NOT NULL,
        PRIMARY KEY (repo, environment, name)
      ) ${MYSQL_TABLE}`,
    ],
  },
];


/** Creates the old schema (versions 1..upTo) in the SQLite file or MySQL database at `url`, as the old code did. */
export async function applyLegacy(url: string, upTo: number): Promise<void> {
  const todo = LEGACY_MIGRATIONS.filter((m) => m.version <= upTo);
  if (url.startsWith('sqlite:')) {
    const db = new Database(url.slice('sqlite:'.length));
    try {
      db.transaction(() => {
        db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
        for (const m of todo) {
          for (const s of m.sqlite) db.exec(s);
          db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, 1);
        }
      })();
    } finally {
      db.close();
    }
    return;
  }
  const conn = await mysql.createConnection({ uri: url });
  try {
    await conn.query(`CREATE TABLE schema_migrations (version INT NOT NULL, name VARCHAR(255) NOT NULL, applied_at BIGINT NOT NULL, PRIMARY KEY (version)) ${MYSQL_TABLE}`);
    for (const m of todo) {
      for (const s of m.mysql) await conn.query(s);
      await conn.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)', [m.version, m.name, 1]);
    }
  } finally {
    await conn.end();
  }
}
