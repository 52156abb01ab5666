// Which real services a test may use. On a laptop without Docker or MySQL the
// tests that need them skip with a clear message; under CI=true a missing
// service is a failure, never a skip.
import { existsSync } from 'node:fs';
import { describe } from 'vitest';

export const IN_CI = process.env.CI === 'true' || process.env.CI === '1';
export const DOCKER_SOCKET = process.env.DOCKER_SOCKET ?? '/var/run/docker.sock';
export const MYSQL_URL = process.env.BERTH_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

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
