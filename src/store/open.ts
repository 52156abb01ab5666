// DATABASE_URL → a Store. Embedded SQLite by default; MySQL/MariaDB when the
// URL says so (what several replicas share).
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { OpenStoreOptions, Store } from './store.js';

export const DEFAULT_DATABASE_URL = 'sqlite:./.berth/berth.sqlite';

export const ACCEPTED_DATABASE_URLS =
  'sqlite:PATH, sqlite://PATH, file:PATH, :memory:, sqlite::memory:, mysql://user:password@host:port/database (or mariadb://…)';

export type DatabaseTarget = { dialect: 'sqlite'; path: string } | { dialect: 'mysql'; url: string };

/** Which backend a database URL names, and where. Throws on anything it does not accept. */
export function parseDatabaseUrl(url: string): DatabaseTarget {
  const raw = url.trim();
  if (raw === ':memory:') return { dialect: 'sqlite', path: ':memory:' };
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(raw)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    throw new Error(
      `DATABASE_URL "${redactUrl(raw)}" has no scheme; accepted forms: ${ACCEPTED_DATABASE_URLS}` +
        (raw ? ` (for a SQLite file, write sqlite:${raw})` : ''),
    );
  }
  switch (scheme) {
    case 'sqlite':
    case 'file': {
      const rest = raw.slice(scheme.length + 1);
      const path = rest.startsWith('//') ? rest.slice(2) : rest;
      if (!path) throw new Error(`DATABASE_URL "${raw}" names no SQLite file; accepted forms: ${ACCEPTED_DATABASE_URLS}`);
      return { dialect: 'sqlite', path };
    }
    case 'mysql':
    case 'mariadb':
      return { dialect: 'mysql', url: raw };
    default:
      throw new Error(`unsupported DATABASE_URL scheme "${scheme}:" in "${redactUrl(raw)}"; accepted forms: ${ACCEPTED_DATABASE_URLS}`);
  }
}

/**
 * Opens the store `url` names: `url`, else DATABASE_URL, else
 * sqlite:./.berth/berth.sqlite. A SQLite file's directory is created when
 * missing. Pending migrations run unless `opts.migrate` is false.
 */
export async function openStore(url?: string, opts: OpenStoreOptions = {}): Promise<Store> {
  const chosen = url?.trim() || process.env.DATABASE_URL?.trim() || DEFAULT_DATABASE_URL;
  const target = parseDatabaseUrl(chosen);
  if (target.dialect === 'sqlite') {
    if (target.path !== ':memory:') mkdirSync(dirname(resolve(target.path)), { recursive: true });
    // Imported on demand: a MySQL deployment never loads the native SQLite module, and vice versa.
    const { SqliteStore } = await import('./sqlite.js');
    return SqliteStore.open(target.path, opts);
  }
  const { MysqlStore } = await import('./mysql.js');
  return MysqlStore.open(target.url, opts);
}

/** The URL with its password (userinfo and any password= parameter) masked, for logs and errors. */
export function redactUrl(url: string): string {
  let out = url;
  const authority = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.exec(out);
  if (authority) {
    const start = authority[0].length;
    // The last '@' ends the userinfo: a password may itself contain an unescaped '@' or '/'.
    const at = out.lastIndexOf('@');
    if (at > start) {
      const userinfo = out.slice(start, at);
      const colon = userinfo.indexOf(':');
      if (colon >= 0) out = `${out.slice(0, start)}${userinfo.slice(0, colon)}:***${out.slice(at)}`;
    }
  }
  return out.replace(/([?&](?:password|pass|pwd)=)[^&#]*/gi, '$1***');
}
