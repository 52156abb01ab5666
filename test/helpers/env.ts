// Which real services a test may use. On a laptop without Docker, MySQL or
// PostgreSQL the tests that need them skip with a clear message; under CI=true
// a missing service is a failure, never a skip.
import { existsSync } from 'node:fs';
import { describe } from 'vitest';

export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';
export const DOCKER_SOCKET = process.env.DOCKER_SOCKET ?? '/var/run/docker.sock';
export const MYSQL_URL = process.env.BERTH_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
export const POSTGRES_URL = process.env.BERTH_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export function dockerAvailable(): boolean {
  return existsSync(DOCKER_SOCKET);
}

let mysqlProbe: boolean | undefined;
export async function mysqlAvailable(): Promise<boolean> {
  if (mysqlProbe !== undefined) return mysqlProbe;
  const mysql = await import('mysql2/promise');
  try {
    const conn = await mysql.createConnection({ uri: MYSQL_URL, connectTimeout: 2000 });
    await conn.query('SELECT 1');
    await conn.end();
    mysqlProbe = true;
  } catch {
    mysqlProbe = false;
  }
  return mysqlProbe;
}

let postgresProbe: boolean | undefined;
export async function postgresAvailable(): Promise<boolean> {
  if (postgresProbe !== undefined) return postgresProbe;
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    postgresProbe = true;
  } catch {
    postgresProbe = false;
  } finally {
    await client.end().catch(() => undefined);
  }
  return postgresProbe;
}

function gated(what: string, available: boolean) {
  if (available) return describe;
  if (IN_CI) {
    // A skip in CI would hide a missing service: fail loudly instead.
    return ((name: string) =>
      describe(name, () => {
        throw new Error(`${what} is required under CI=true but is not available`);
      })) as unknown as typeof describe;
  }
  console.warn(`[berth tests] ${what} not available: skipping its tests (set CI=true to make this an error)`);
  return describe.skip;
}

/** describe() for tests that need the real Docker engine. */
export const describeDocker = gated(`Docker engine at ${DOCKER_SOCKET}`, dockerAvailable());

/** describe() for tests that need MariaDB/MySQL. Top-level await: the probe runs once per file. */
export const describeMysql = gated(`MySQL at ${MYSQL_URL}`, await mysqlAvailable());

/** describe() for tests that need PostgreSQL. Top-level await: the probe runs once per file. */
export const describePostgres = gated(`PostgreSQL at ${POSTGRES_URL}`, await postgresAvailable());

// ── remote engines (issue 12): what scripts/ci-services.sh starts ──────────
export const CI_SERVICES_DIR = process.env.BERTH_CI_DIR ?? '/tmp/berth-ci';
export const CI_SSH_PORT = Number(process.env.BERTH_CI_SSH_PORT ?? 22022);
export const CI_TLS_PORT = 2376;

async function listens(port: number): Promise<boolean> {
  const { connect } = await import('node:net');
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, timeout: 2000 }, () => (s.end(), resolve(true)));
    s.on('error', () => resolve(false)).on('timeout', () => (s.destroy(), resolve(false)));
  });
}

/** describe() for tests over SSH and mutual TLS to the local engine (scripts/ci-services.sh start). */
export const describeRemoteEngines = gated(
  `sshd on 127.0.0.1:${CI_SSH_PORT} and the mutual-TLS endpoint on 127.0.0.1:${CI_TLS_PORT} (scripts/ci-services.sh start, material in ${CI_SERVICES_DIR})`,
  dockerAvailable() && existsSync(`${CI_SERVICES_DIR}/ssh/known_hosts`) && existsSync(`${CI_SERVICES_DIR}/tls/client/cert.pem`) && (await listens(CI_SSH_PORT)) && (await listens(CI_TLS_PORT)),
);

export const CI_REGISTRY = '127.0.0.1:5000';

/** describe() for tests against the local TLS + htpasswd registry (scripts/ci-services.sh start). */
export const describeRegistry = gated(
  `docker-registry on ${CI_REGISTRY} (scripts/ci-services.sh start, password in ${CI_SERVICES_DIR}/registry/password)`,
  dockerAvailable() && existsSync(`${CI_SERVICES_DIR}/registry/password`) && (await listens(5000)),
);
