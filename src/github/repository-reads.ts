// What loading one environment may read of a commit through GitHub. The PR
// author chooses what is read — compose files name env files, includes,
// extended files, configs' `file:` and bound paths — so the reads are
// bounded before they are made, by the sizes the commit's listing gives:
// nothing over the limits reaches the caches under this reader (read-once,
// the commit cache and its shared tier in the store), the desired state, or
// the memory of the process. A file the listing gave no size for (a listing
// GitHub cut short, a stand-in without sizes) is counted once it is read,
// and the next read is refused. The loader's own, located limits
// (repository-files.ts: what the desired state carries) come first when the
// listing has sizes; these are the backstop for everything the loader reads.
import { ComposeError } from '../errors.js';
import { MAX_FILE_BYTES } from '../compose/repository-files.js';
import type { GitHubPort, RepoRef } from './github.js';
import { PartialListing, TreeListing } from './github.js';

/** At most this many bytes of the repository are read to load one environment (its compose files and all they name). */
export const MAX_ENVIRONMENT_READ_BYTES = 24 * 1024 * 1024;
/** At most this many files (200 read-ahead sources, 128 configs and copies, the compose files, with room). */
export const MAX_ENVIRONMENT_READS = 400;

export interface RepositoryReads {
  /** a file's text at the commit; undefined when the commit does not hold it (no request made then) */
  text(path: string): Promise<string | undefined>;
  /** a file's exact bytes at the commit (a bound file copied into a container) */
  bytes(path: string): Promise<Uint8Array | undefined>;
}

const HINT = 'read fewer or smaller files: split what the compose files name, or build large files into the image';

/** Reads of `repo` at `sha` for one environment's load, each file read once and all of them bounded. */
export function repositoryReads(gh: GitHubPort, repo: RepoRef, sha: string, files: Set<string>): RepositoryReads {
  const sizes = files instanceof TreeListing || files instanceof PartialListing ? files.sizes : undefined;
  const reads = new Map<string, Promise<unknown>>();
  let bytes = 0;
  const over = (path: string, problem: string) => new ComposeError('too_large', problem, { file: path, hint: HINT });
  const take = (path: string, n: number) => {
    bytes += n;
    if (bytes > MAX_ENVIRONMENT_READ_BYTES)
      throw over(path, `reading ${path} takes what this environment reads of the repository over ${MAX_ENVIRONMENT_READ_BYTES} bytes (compose files, the files they name, configs and bound files together)`);
  };
  const read = <T extends string | Uint8Array>(kind: 'text' | 'bytes', path: string, get: () => Promise<T | undefined>): Promise<T | undefined> => {
    if (!files.has(path)) return Promise.resolve(undefined);
    const key = `${kind}\0${path}`;
    const had = reads.get(key) as Promise<T | undefined> | undefined;
    if (had) return had;
    const p = (async () => {
      if (reads.size >= MAX_ENVIRONMENT_READS) throw over(path, `the compose files of this environment name more than ${MAX_ENVIRONMENT_READS} repository files to read`);
      // Refused before the request when the listing says how large it is.
      const listed = sizes?.get(path);
      // The same refusal GitHub's reader gives once it has the file (octokit-github.ts), before the read.
      if (listed !== undefined && listed > MAX_FILE_BYTES)
        throw new ComposeError('too_large', `file is ${listed} bytes, more than the ${MAX_FILE_BYTES} bytes berth reads`, { file: path, hint: 'split it or remove what is not needed' });
      take(path, listed ?? 0);
      const got = await get();
      const actual = got === undefined ? 0 : typeof got === 'string' ? Buffer.byteLength(got, 'utf8') : got.length;
      // A size the listing did not give, or got wrong: counted now, and the next read is refused.
      if (actual !== (listed ?? 0)) take(path, actual - (listed ?? 0));
      return got;
    })();
    reads.set(key, p);
    return p;
  };
  return {
    text: (path) => read('text', path, () => gh.readFile(repo, path, sha)),
    bytes: (path) => read('bytes', path, () => gh.readFileBytes(repo, path, sha)),
  };
}
