// What a commit holds, remembered across events. A commit is immutable: its
// tree and the bytes of a file at it are the same whenever they are read, so
// `/plan` after the PR's autoplan at the same head (or an apply after it)
// need not list the tree and read the compose files again. A blob (a file's
// bytes, named by their hash) is immutable too: at a new head, a file whose
// blob the tree lists and this process read before, at any commit of the
// repository, is not read again (a push rarely touches the compose files).
// A blob's text is kept only when it hashes to the name GitHub gave it.
// Per-event deduplication stays in read-once.ts; this cache sits under it,
// for the whole process, bounded by bytes (least recently used go first).
//
// What is never remembered:
// - a read without a commit SHA (`.github/berth.yml` from the default
//   branch, any branch or tag name): what it names moves;
// - "no such file" (a 404): GitHub answers 404 for a commit it does not know
//   yet as well; absence at a commit is told by the commit's cached tree,
//   which read-once consults before asking for a file;
// - failures (5xx, rate limits, "too large"): the next caller asks again.
// The key holds the repository as well as the commit and the path: a commit's
// bytes are the same whichever repository serves them, but an installation's
// reach is per repository, and a read through one must not answer another.
//
// Blob texts also go to a shared tier (the store's file_blobs, when given), so
// a restarted process or another replica that lists a commit's tree finds the
// compose files it names there instead of reading them again. What comes back
// from it is used only when it still hashes to its blob name; a failure of the
// shared tier costs a GitHub read, never a plan.
import { createHash } from 'node:crypto';
import type { GitHubPort, RepoRef } from './github.js';
import { PartialListing, repoName, TreeListing } from './github.js';

/** A full commit SHA (SHA-1 or SHA-256 object name), never a branch, tag or abbreviation. */
const COMMIT_SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

export const DEFAULT_COMMIT_CACHE_BYTES = 32 * 1024 * 1024;

/** Rough bytes an entry keeps alive (UTF-16 strings, plus per-entry overhead). */
const ENTRY_OVERHEAD = 64;
const sizeOfText = (key: string, text: string) => ENTRY_OVERHEAD + 2 * (key.length + text.length);
const sizeOfTree = (key: string, paths: readonly string[], blobs?: ReadonlyMap<string, string>, modes?: ReadonlyMap<string, string>, sizes?: ReadonlyMap<string, number>) =>
  paths.reduce((n, p) => n + ENTRY_OVERHEAD + 2 * (p.length + (blobs?.get(p)?.length ?? 0) + (modes?.get(p)?.length ?? 0)) + (sizes?.has(p) ? 16 : 0), ENTRY_OVERHEAD + 2 * key.length);

/** A file's text; a commit's listing; a file at a commit whose text is kept once, under its blob. */
type Entry =
  | { kind: 'file'; text: string; bytes: number }
  | { kind: 'tree'; paths: readonly string[]; blobs?: ReadonlyMap<string, string>; modes?: ReadonlyMap<string, string>; sizes?: ReadonlyMap<string, number>; bytes: number }
  | { kind: 'blob-of'; key: string; bytes: number }
  /** a file's exact bytes (copied into containers), by its blob when the listing named it */
  | { kind: 'raw'; data: Buffer; bytes: number };

/** Whether `text`'s UTF-8 bytes are the Git blob `name` (SHA-1, or SHA-256 in a SHA-256 repository). */
export function isBlobOf(text: string, name: string): boolean {
  return isBlobOfBytes(Buffer.from(text, 'utf8'), name);
}

/** Whether `bytes` are the blob Git names `name`. */
export function isBlobOfBytes(bytes: Uint8Array, name: string): boolean {
  const algorithm = name.length === 40 ? 'sha1' : name.length === 64 ? 'sha256' : undefined;
  if (!algorithm || !COMMIT_SHA.test(name)) return false;
  return createHash(algorithm).update(`blob ${bytes.length}\0`).update(bytes).digest('hex') === name;
}

export interface CommitCacheStats {
  entries: number;
  bytes: number;
  maxBytes: number;
  hits: number;
  misses: number;
  /** texts the shared tier answered (each a GitHub read saved) */
  sharedHits: number;
}

/** The shared tier: file texts by repository and Git blob name (the store's file_blobs). */
export interface SharedBlobs {
  getFileBlob(repo: string, blob: string): Promise<string | undefined>;
  putFileBlob(repo: string, blob: string, text: string): Promise<void>;
}

/** Texts of at most this many bytes go to the shared tier (berth refuses compose files over 1 MiB anyway). */
const SHARED_MAX_BYTES = 1024 * 1024;

export class CommitCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;
  private sharedHits = 0;
  readonly maxBytes: number;

  /** `maxBytes` 0 turns the cache off (every read goes to GitHub); `shared`: the tier other processes see. */
  constructor(
    maxBytes = DEFAULT_COMMIT_CACHE_BYTES,
    private readonly shared?: SharedBlobs,
    private readonly onSharedError?: (err: unknown) => void,
  ) {
    this.maxBytes = Math.max(0, Math.floor(maxBytes));
  }

  /** From `BERTH_COMMIT_CACHE_BYTES` (default 32 MiB; 0 off). A value that is not a whole number ≥ 0 is refused. */
  static fromEnv(env: NodeJS.ProcessEnv, shared?: SharedBlobs, onSharedError?: (err: unknown) => void): CommitCache {
    const raw = env.BERTH_COMMIT_CACHE_BYTES;
    if (raw === undefined || raw.trim() === '') return new CommitCache(undefined, shared, onSharedError);
    if (!/^\d+$/.test(raw.trim())) throw new Error(`BERTH_COMMIT_CACHE_BYTES must be a whole number of bytes (0 turns the cache off), not "${raw}"`);
    return new CommitCache(Number(raw.trim()), shared, onSharedError);
  }

  stats(): CommitCacheStats {
    return { entries: this.entries.size, bytes: this.bytes, maxBytes: this.maxBytes, hits: this.hits, misses: this.misses, sharedHits: this.sharedHits };
  }

  /** `gh` with listFiles and readFile at a commit SHA answered from the cache when it can; every other call untouched. */
  wrap(gh: GitHubPort): GitHubPort {
    if (this.maxBytes === 0) return gh;
    return new Proxy(gh, {
      get: (target, prop, receiver) => {
        switch (prop) {
          case 'listFiles':
            return (repo: RepoRef, sha: string) => this.listFiles(target, repo, sha);
          case 'readFile':
            return (repo: RepoRef, path: string, ref?: string) => this.readFile(target, repo, path, ref);
          case 'readFileBytes':
            return (repo: RepoRef, path: string, ref?: string) => this.readFileBytes(target, repo, path, ref);
          default: {
            const v = Reflect.get(target, prop, receiver) as unknown;
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          }
        }
      },
    });
  }

  private async listFiles(gh: GitHubPort, repo: RepoRef, sha: string): Promise<Set<string>> {
    if (!COMMIT_SHA.test(sha)) return gh.listFiles(repo, sha);
    const key = `tree\0${repoName(repo)}\0${sha}`;
    const hit = this.get(key);
    // A Set of its own for each caller: nothing a caller does to it reaches the cache.
    if (hit?.kind === 'tree') return hit.blobs ? new TreeListing(hit.blobs, hit.modes, hit.sizes) : new Set(hit.paths);
    const files = await gh.listFiles(repo, sha);
    // A truncated listing cannot tell absence: it is never remembered as what the commit holds.
    if (files instanceof PartialListing) return files;
    const paths = [...files];
    const blobs = files instanceof TreeListing ? new Map(files.blobs) : undefined;
    const modes = files instanceof TreeListing && files.modes.size ? new Map(files.modes) : undefined;
    const sizes = files instanceof TreeListing && files.sizes.size ? new Map(files.sizes) : undefined;
    this.put(key, { kind: 'tree', paths, ...(blobs ? { blobs } : {}), ...(modes ? { modes } : {}), ...(sizes ? { sizes } : {}), bytes: sizeOfTree(key, paths, blobs, modes, sizes) });
    return files;
  }

  private async readFile(gh: GitHubPort, repo: RepoRef, path: string, ref?: string): Promise<string | undefined> {
    if (ref === undefined || !COMMIT_SHA.test(ref)) return gh.readFile(repo, path, ref);
    const key = `file\0${repoName(repo)}\0${ref}\0${path}`;
    const hit = this.get(key);
    if (hit?.kind === 'file') return hit.text;
    // The file's blob, from what this file at this commit was, or from the commit's listing (when remembered):
    // a blob read before, at any commit of the repository, is not read again.
    const tree = hit ? undefined : this.entries.get(`tree\0${repoName(repo)}\0${ref}`);
    const listed = tree?.kind === 'tree' ? tree.blobs?.get(path) : undefined;
    const blobKey = hit?.kind === 'blob-of' ? hit.key : listed !== undefined ? `blob\0${repoName(repo)}\0${listed}` : undefined;
    const known = blobKey === undefined ? undefined : this.get(blobKey);
    if (known?.kind === 'file') {
      if (!hit) this.put(key, { kind: 'blob-of', key: blobKey!, bytes: sizeOfText(key, blobKey!) });
      return known.text;
    }
    // Not in this process: the shared tier, by the blob the listing named (checked against its name).
    if (listed !== undefined && this.shared) {
      const text = await this.shared.getFileBlob(repoName(repo), listed).catch((err: unknown) => void this.onSharedError?.(err));
      if (text !== undefined && isBlobOf(text, listed)) {
        this.sharedHits++;
        this.remember(key, repo, listed, text);
        return text;
      }
    }
    const read = await gh.readFileBlob(repo, path, ref);
    if (read === undefined) return undefined;
    if (isBlobOf(read.text, read.blob)) {
      this.remember(key, repo, read.blob, read.text);
      if (this.shared && Buffer.byteLength(read.text, 'utf8') <= SHARED_MAX_BYTES)
        await this.shared.putFileBlob(repoName(repo), read.blob, read.text).catch((err: unknown) => void this.onSharedError?.(err));
    } else this.put(key, { kind: 'file', text: read.text, bytes: sizeOfText(key, read.text) });
    return read.text;
  }

  /** A file's bytes at a commit: by the blob the commit's remembered listing names (checked), else by commit and path. */
  private async readFileBytes(gh: GitHubPort, repo: RepoRef, path: string, ref?: string): Promise<Buffer | undefined> {
    if (ref === undefined || !COMMIT_SHA.test(ref)) return gh.readFileBytes(repo, path, ref);
    const tree = this.entries.get(`tree\0${repoName(repo)}\0${ref}`);
    const listed = tree?.kind === 'tree' ? tree.blobs?.get(path) : undefined;
    const key = listed !== undefined ? `raw\0${repoName(repo)}\0${listed}` : `raw\0${repoName(repo)}\0${ref}\0${path}`;
    const hit = this.get(key);
    // A copy of its own for each caller: nothing a caller does to it reaches the cache.
    if (hit?.kind === 'raw') return Buffer.from(hit.data);
    const data = await gh.readFileBytes(repo, path, ref);
    if (data === undefined) return undefined;
    if (listed === undefined || isBlobOfBytes(data, listed)) this.put(key, { kind: 'raw', data: Buffer.from(data), bytes: ENTRY_OVERHEAD + 2 * key.length + data.length });
    return data;
  }

  /** A verified blob's text, and this file at this commit as that blob. */
  private remember(key: string, repo: RepoRef, blob: string, text: string): void {
    const named = `blob\0${repoName(repo)}\0${blob}`;
    this.put(named, { kind: 'file', text, bytes: sizeOfText(named, text) });
    this.put(key, { kind: 'blob-of', key: named, bytes: sizeOfText(key, named) });
  }

  private get(key: string): Entry | undefined {
    const e = this.entries.get(key);
    if (!e) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    // Most recently used last.
    this.entries.delete(key);
    this.entries.set(key, e);
    return e;
  }

  private put(key: string, e: Entry): void {
    // One entry may take at most a quarter of the budget: a huge tree never flushes everything else.
    if (e.bytes > this.maxBytes / 4) return;
    const old = this.entries.get(key);
    if (old) {
      this.entries.delete(key);
      this.bytes -= old.bytes;
    }
    this.entries.set(key, e);
    this.bytes += e.bytes;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.bytes;
    }
  }
}
