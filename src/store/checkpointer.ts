// SQLite in WAL mode copies the log back into the database file (a
// checkpoint) and fsyncs it, by default inside whichever commit pushed the log
// past 1,000 pages. better-sqlite3 is synchronous, so that commit blocks the
// event loop for the fsync: about 5 ms on these machines, landing at random on
// the executor's journal writes and delaying every Docker call queued behind
// them. So a store's connection has its automatic checkpoints turned off, and
// one worker thread per process, with a connection of its own to each file,
// checkpoints every file `everyMs`: PASSIVE, so it never waits for a writer
// nor blocks one. If the worker fails, every connection checkpoints by itself
// again, as SQLite does by default.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** What the worker runs (CommonJS, evaluated: no loader or build step is involved). */
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const SQLite = require(workerData.driver);
const files = new Map();
const checkpoint = (path, entry) => {
  try {
    const [r] = entry.db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ path, checkpointed: r.checkpointed, log: r.log });
  } catch (err) {
    parentPort.postMessage({ path, error: String((err && err.message) || err) });
  }
};
setInterval(() => { for (const [path, entry] of files) checkpoint(path, entry); }, workerData.everyMs);
parentPort.on('message', (m) => {
  const entry = files.get(m.path);
  if (m.op === 'watch') {
    if (entry) entry.refs++;
    else {
      try {
        files.set(m.path, { db: new SQLite(m.path, { timeout: m.busyTimeoutMs }), refs: 1 });
      } catch (err) {
        parentPort.postMessage({ path: m.path, error: String((err && err.message) || err), unwatched: true });
      }
    }
  } else if (m.op === 'unwatch') {
    if (entry && --entry.refs === 0) {
      files.delete(m.path);
      try { entry.db.close(); } catch {}
    }
    parentPort.postMessage({ path: m.path, released: m.seq });
  } else if (m.op === 'now' && entry) checkpoint(m.path, entry);
});
`;

/** SQLite's own threshold, which a connection gets back when the worker is gone. */
export const SQLITE_DEFAULT_AUTOCHECKPOINT = 1000;

export interface CheckpointReport {
  path: string;
  /** pages copied back to the database file, and pages in the log */
  checkpointed?: number;
  log?: number;
  error?: string;
}

/** What the shared worker needs of a connection: turning its own checkpoints off or back on. */
interface Connection {
  pragma(source: string): unknown;
}

const EVERY_MS = 250;

let worker: Worker | undefined;
let failed = false;
const watched = new Map<string, Set<Connection>>();
const listeners = new Set<(r: CheckpointReport) => void>();
/** Hand-backs waiting for the worker to have closed its connection, by sequence number. */
const releases = new Map<number, () => void>();
let seq = 0;

function start(): Worker | undefined {
  if (failed) return undefined;
  if (worker) return worker;
  const w = new Worker(WORKER, { eval: true, workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), everyMs: EVERY_MS } });
  w.on('message', (r: CheckpointReport & { unwatched?: boolean; released?: number }) => {
    if (r.released !== undefined) return void releases.get(r.released)?.();
    // A file the worker cannot open is checkpointed by its own connections.
    if (r.unwatched) for (const c of watched.get(r.path) ?? []) restore(c);
    for (const l of listeners) l(r);
  });
  const fallBack = () => {
    if (worker !== w) return;
    worker = undefined;
    failed = true;
    for (const conns of watched.values()) for (const c of conns) restore(c);
    for (const done of releases.values()) done();
  };
  w.on('error', fallBack);
  w.on('exit', fallBack);
  // It holds nothing that needs an orderly end (a checkpoint cut short is redone later), so it never keeps
  // the process alive; unref'd after the listeners, since a 'message' listener refs the worker's port again.
  w.unref();
  return (worker = w);
}

function restore(c: Connection): void {
  try {
    c.pragma(`wal_autocheckpoint = ${SQLITE_DEFAULT_AUTOCHECKPOINT}`);
  } catch {
    // closed already: it has nothing left to checkpoint
  }
}

/**
 * Hands the checkpoints of `path` (a WAL-mode file `conn` has open) to the
 * worker. Returns the function that hands them back, called when `conn`
 * closes; its promise resolves once the worker's own connection to the file
 * is closed too (the last one to close folds the log into the file and
 * removes it), so whoever closed the store may remove the file. Files only in
 * memory have no log and are left alone.
 */
export function checkpointInWorker(conn: Connection, path: string, busyTimeoutMs = 5000): () => Promise<void> {
  if (path === ':memory:' || path === '' || path.startsWith('file::memory:')) return async () => undefined;
  const w = start();
  if (!w) return async () => undefined;
  conn.pragma('wal_autocheckpoint = 0');
  let conns = watched.get(path);
  if (!conns) watched.set(path, (conns = new Set()));
  conns.add(conn);
  w.postMessage({ op: 'watch', path, busyTimeoutMs });
  let done: Promise<void> | undefined;
  return () => {
    if (done) return done;
    conns.delete(conn);
    if (!conns.size) watched.delete(path);
    const current = worker;
    if (!current) return (done = Promise.resolve());
    const n = ++seq;
    done = new Promise<void>((resolve) => {
      // Ref'd on purpose: the worker and its port are not, and a closing process must wait for this answer.
      const timer = setTimeout(finish, 5000);
      function finish() {
        clearTimeout(timer);
        releases.delete(n);
        resolve();
      }
      releases.set(n, finish);
    });
    current.postMessage({ op: 'unwatch', path, seq: n });
    return done;
  };
}

/** Calls `fn` with every report of the worker (a checkpoint's page counts, or its error); returns the unsubscribe. */
export function onCheckpoint(fn: (r: CheckpointReport) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Asks the worker for a checkpoint of `path` now (tests; its timer does it otherwise). */
export function checkpointNow(path: string): void {
  worker?.postMessage({ op: 'now', path });
}
