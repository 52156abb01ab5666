// Reads of one webhook event, each made once. Handling an event reads the
// config, a commit's tree and its compose files from several places (every
// environment, the staging-first gate, a re-plan after a refusal); an
// installation has 5,000 requests an hour, so a repeated read is answered
// from this event's cache. Scoped to one event on purpose: the default
// branch's berth.yml and a PR's state may change between events, and a
// failed read is not remembered (the next caller asks GitHub again).
import type { GitHubPort, RepoRef } from './github.js';
import { repoName } from './github.js';

/** `gh` with readFile and readFileBytes (by repo, ref, path), listFiles (by repo, commit) and defaultBranch (by repo) memoised. */
export function readOnce(gh: GitHubPort): GitHubPort {
  const memo = new Map<string, Promise<unknown>>();
  const once = <T>(key: string, read: () => Promise<T>): Promise<T> => {
    let p = memo.get(key) as Promise<T> | undefined;
    if (!p) {
      p = read();
      memo.set(key, p);
      p.catch(() => memo.get(key) === p && memo.delete(key));
    }
    return p;
  };
  const trees = new Map<string, Promise<Set<string>>>();
  return new Proxy(gh, {
    get(target, prop, receiver) {
      switch (prop) {
        case 'defaultBranch':
          return (repo: RepoRef) => once(`branch\0${repoName(repo)}`, () => target.defaultBranch(repo));
        case 'listFiles':
          return (repo: RepoRef, sha: string) => {
            const key = `${repoName(repo)}\0${sha}`;
            const p = once(`tree\0${key}`, () => target.listFiles(repo, sha));
            trees.set(key, p);
            return p;
          };
        case 'readFile':
        case 'readFileBytes':
          return (repo: RepoRef, path: string, ref?: string) =>
            once(`${prop === 'readFile' ? 'file' : 'bytes'}\0${repoName(repo)}\0${ref ?? ''}\0${path}`, async () => {
              // A commit whose tree this event listed already says which files exist: no request for one that does not.
              const tree = ref !== undefined ? trees.get(`${repoName(repo)}\0${ref}`) : undefined;
              const listed = tree ? await tree.catch(() => undefined) : undefined;
              if (listed && !listed.has(path)) return undefined;
              return prop === 'readFile' ? target.readFile(repo, path, ref) : target.readFileBytes(repo, path, ref);
            });
        default: {
          const v = Reflect.get(target, prop, receiver) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        }
      }
    },
  });
}
