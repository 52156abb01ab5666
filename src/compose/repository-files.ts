// A bind of a repository path (`./nginx.conf:/etc/nginx/nginx.conf`) when the
// app deploys: it reads the repository from GitHub and there is no checkout on
// the target to mount, so the file, or every file of the directory, byte for
// byte as the commit holds it, is copied into the container before it starts, as configs
// are (never written to the host's disk). A writable bind of a directory the
// commit does not hold (or holds only a .gitkeep of) is a host directory docker
// compose would create empty, for data, which a copy would lose at the next
// recreate: it is kept in a named volume of the environment instead, mounted
// empty as the new directory would be (nocopy). Symbolic links and submodules
// are refused (their bytes are not the repository's files), and so is a
// missing path that is read-only or looks like a file (a file not committed).
import { posix } from 'node:path';
import { ComposeError } from '../errors.js';
import { closest } from '../text/suggest.js';
import type { At, Loc, ServiceFragment, VolumeFragment } from './fragment.js';
import type { Mount } from '../model/model.js';

/** What the app knows of the commit's files: the listing GitHub gave (one tree read). */
export interface RepoTree {
  /** the file's git mode ('100644', '100755' executable, '120000' symbolic link), undefined when the commit has no such file */
  mode(path: string): string | undefined;
  /**
   * Every file under `dir` (repository paths), sorted; undefined when the listing cannot tell (GitHub cut it
   * short). `dir` '' is the repository's root.
   */
  under(dir: string): string[] | undefined;
  /** false when GitHub cut the listing short: `mode` then answers '100644' for any path, which may not exist */
  complete: boolean;
  /** the file's size in bytes, when the listing gave it: a file over what berth reads is refused before the read */
  size(path: string): number | undefined;
}

/** One repository file a service gets a copy of. */
export interface ShippedFile {
  /** repository path */
  path: string;
  /** absolute path in the container */
  target: string;
  mode: number;
  /** the bind mount that asks for it */
  at: Loc;
}

/**
 * At most this many repository files are copied, or read by configs' `file:`, for one environment (each is
 * one GitHub read, cached by its blob).
 */
export const MAX_SHIPPED_FILES = 128;
/**
 * At most this many bytes: the repository files an environment's desired state carries (copies and configs'
 * `file:` together), and all of one container's copies. They travel in the plan's and the apply's stored
 * desired state, copies as base64 (a third more): 8 MiB keeps that row well under MariaDB's default
 * max_allowed_packet (16 MiB); the store conformance suite stores one that size. Counted with the sizes the
 * commit's listing gives before anything is read, so a read over the limit is never made.
 */
export const MAX_SHIPPED_BYTES = 8 * 1024 * 1024;
/** At most this many bytes of one repository file are read: GitHub's contents API serves a file's content up to 1 MB. */
export const MAX_FILE_BYTES = 1024 * 1024;
/** At most this many copies into one container (one file may be bound at many targets). */
export const MAX_COPIES_PER_SERVICE = 256;
/** At most this many bytes uploaded for an environment: every container's copies (replicas too). */
export const MAX_UPLOADED_BYTES = 256 * 1024 * 1024;

/** Files git keeps only so that a directory exists: a directory holding nothing else is for data. */
const PLACEHOLDERS = /^(\.gitkeep|\.keep|\.gitignore|\.placeholder|\.empty)$/;

const fail = (problem: string, at: Loc, hint: string, code = 'repository_bind') => new ComposeError(code, problem, { ...at, hint });

const VOLUME_HINT = 'keep data in a named volume (volumes: [data:/path] under the service, and data: under the top-level volumes:)';

/** A copy, and the target of the bind that asked for it (a deeper bind's file wins a target, as its mount is on top). */
interface Copy extends ShippedFile {
  bindTarget: string;
  written: string;
}

const under = (path: string, dir: string) => path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
const cleanTarget = (t: string) => {
  const n = posix.normalize(t);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
};

/**
 * Takes each service's binds of repository paths out of its volumes and returns, per service, the files to
 * copy in their place; a note says per service what is copied (and that the copy is not a bind).
 * `tainted(mount)`: whether a secret variable fed that volume entry (a path built from one is refused: the
 * path would be quoted in the plan).
 */
export function shipRepositoryBinds(services: Iterable<ServiceFragment>, tree: RepoTree, notes: string[], tainted: (mount: At<Mount>) => boolean, volumes: Map<string, VolumeFragment>): Map<string, ShippedFile[]> {
  const out = new Map<string, ShippedFile[]>();
  const all = [...services];
  keepDataInVolumes(all, tree, notes, tainted, volumes);
  // Distinct repository files of the environment: each is read once, whatever number of services copy it.
  const read = new Set<string>();
  const isRepositoryBind = (m: At<Mount>) => m.v.type === 'bind' && !!m.v.source && !m.v.source.startsWith('/');
  const byName = new Map(all.map((s) => [s.name, s]));
  /** What is mounted in a service's container besides its copies: its other mounts, `tmpfs:`, and what volumes_from gives it. */
  const mountsOf = (s: ServiceFragment, seen = new Set<string>()): At<Mount>[] => {
    seen.add(s.name);
    const own = (s.volumes ?? []).filter((m) => !isRepositoryBind(m));
    const tmpfs = s.extras.tmpfs?.v ? Object.keys(s.extras.tmpfs.v).map((target): At<Mount> => ({ v: { type: 'tmpfs', target: cleanTarget(target), readOnly: false }, at: s.extras.tmpfs!.at })) : [];
    const inherited = (s.volumesFrom ?? []).flatMap((f) => {
      const [kind, name] = f.v.split(':');
      const from = kind === 'service' && name !== undefined ? byName.get(name) : undefined;
      return from && !seen.has(from.name) ? mountsOf(from, seen) : [];
    });
    return [...own, ...tmpfs, ...inherited];
  };
  for (const s of all) {
    const binds = (s.volumes ?? []).filter(isRepositoryBind);
    if (!binds.length) continue;
    // Another container's mounts (volumes_from: container:…) are not known here: a copy could be written into one.
    const foreign = (s.volumesFrom ?? []).find((f) => f.v.startsWith('container:'));
    if (foreign)
      throw fail(`service ${s.name}: copies of repository files (its binds of ${binds.map((m) => m.asWritten ?? m.v.source).join(', ')}) cannot be combined with volumes_from: ${foreign.v}, whose mounts berth does not know when it plans`, foreign.at, 'ship the files with configs:, or take the mounts from a service of the project');
    const kept = (s.volumes ?? []).filter((m) => !isRepositoryBind(m));
    const around = mountsOf(s);
    const copies = new Map<string, Copy>();
    const told: string[] = [];
    for (const m of binds) {
      const written = m.asWritten ?? m.v.source!;
      if (tainted(m)) throw fail(`service ${s.name}: a bind mount of a repository path built from a secret variable cannot be copied from the repository`, m.at, 'name the path in the compose file itself (a variable whose name looks secret, such as KEY_PATH, counts as a secret)', 'repository_bind_secret');
      const source = m.v.source!;
      if (source === '..' || source.startsWith('../'))
        throw fail(`service ${s.name}: bind mount of ${written} leaves the repository, and the app has no checkout on the target`, m.at, `copy what it needs into the repository and bind that, ${VOLUME_HINT}, or bind an absolute host path that policy.bind_mount_allowlist allows`);
      const path = source === '.' ? '' : source.replace(/^\.\//, '');
      const target = m.v.target;
      const readOnly = m.v.readOnly;
      if (target === '/') throw fail(`service ${s.name}: bind mount of ${written} at /: nothing can be mounted or copied over the container's root`, m.at, 'give it a target below /');
      // Another mount of the service around this one, or at its very target (what volumes_from or tmpfs: put
      // there): docker compose mounts the bind on top of it; a copy would be written into it (a volume's data, a
      // host directory, a tmpfs not mounted yet) at every create, and a file over a mount point empties it.
      // The service's own writable volume around it is written into (grafana's dashboards under its data volume,
      // a common layout): what the container could write there itself, said in the plan. Anything else is refused
      // (once the path is known to exist: a missing file is the problem to name first).
      const outer = around.filter((k) => under(target, k.v.target)).sort((a, b) => b.v.target.length - a.v.target.length)[0];
      const intoVolume = outer && outer.v.type === 'volume' && !outer.v.readOnly && outer.v.target !== target && kept.includes(outer) ? outer : undefined;
      const refuseOuter = () => {
        if (!outer || intoVolume) return;
        const what = outer.v.type === 'volume' ? `${outer.v.readOnly ? 'read-only ' : ''}volume ${outer.v.source ?? '(anonymous)'}${kept.includes(outer) ? '' : ' that volumes_from gives it'}` : outer.v.type === 'tmpfs' ? 'tmpfs' : `bind mount of ${outer.v.source}`;
        throw fail(
          `service ${s.name}: bind mount of ${written} at ${target} lies ${outer.v.target === target ? 'at' : 'inside'} the ${what} mounted at ${outer.v.target}: docker compose mounts it on top, but the app copies repository files into the container, and the copy would be written into that mount${outer.v.type === 'tmpfs' ? ' (then hidden by it at the start)' : ''}`,
          m.at,
          `give the file a target outside ${outer.v.target}`,
        );
      };
      const intoNote = intoVolume ? `; written into volume ${intoVolume.v.source ?? '(anonymous)'} (mounted at ${intoVolume.v.target}) at each create, where docker compose would mount it on top` : '';
      const modeOf = (p: string, at: Loc) => {
        const gitMode = tree.mode(p);
        if (gitMode === '120000')
          throw fail(`service ${s.name}: ${p} (bound by ${written}) is a symbolic link; the app copies repository files into the container and a link's target may not be in the repository`, at, 'bind the file the link points to, or commit the file itself');
        if (gitMode === '160000') throw fail(`service ${s.name}: ${p} (bound by ${written}) is a git submodule: its files are another repository's, not this commit's`, at, 'commit the files it needs into this repository, or build them into the image');
        if (gitMode !== '100644' && gitMode !== '100755') throw fail(`service ${s.name}: ${p} (bound by ${written}) is not a regular file of the repository (git mode ${gitMode})`, at, 'bind a regular file or a directory of regular files');
        // A read-only bind: the copy is not writable either (root in the container can still write it).
        const mode = gitMode === '100755' ? 0o755 : 0o644;
        return readOnly ? mode & ~0o222 : mode;
      };
      const put = (p: string, to: string) => {
        const had = copies.get(to);
        // The deeper bind is mounted on top (Docker mounts by depth); at one depth compose kept the later entry.
        if (!had || target.length >= had.bindTarget.length) copies.set(to, { path: p, target: to, mode: modeOf(p, m.at), at: m.at, bindTarget: target, written });
      };
      const whole = tree.mode(path);
      if (path && whole !== undefined) {
        put(path, target);
        refuseOuter();
        told.push(`${written} → ${target}${intoNote}`);
      } else {
        const inside = tree.under(path);
        if (inside === undefined)
          throw fail(
            `service ${s.name}: bind mount of ${written}: ${path || 'the repository root'} is not a file at this commit, and GitHub listed the repository's files only in part, so a directory cannot be copied`,
            m.at,
            'bind single files, or ship them with configs:',
          );
        if (!inside.length && looksLikeFile(path))
          throw fail(
            `service ${s.name}: bind mount of ${written}: ${path} is not in the repository at this commit, and its name is a file's; docker compose would bind an empty directory of that name in its place`,
            m.at,
            `${similarFile(tree, path) ?? 'commit the file, or fix the path'}${readOnly ? '' : `; for data, ${VOLUME_HINT}`}`,
            'repository_bind_missing',
          );
        if (!inside.length)
          throw fail(
            `service ${s.name}: bind mount of ${written}: ${path} does not exist in the repository at this commit; docker compose would create an empty directory on the host, and the app has no checkout on the target to create it in`,
            m.at,
            `${VOLUME_HINT}, or commit the files it should hold`,
            'repository_bind_missing',
          );
        // Only placeholders, mounted writable: a directory kept for data. Read-only, it is what it holds (sentry's certificates/).
        if (!readOnly && inside.every((f) => PLACEHOLDERS.test(posix.basename(f))))
          throw fail(
            `service ${s.name}: bind mount of ${written}: ${path || 'the repository root'} holds only ${inside.map((f) => posix.basename(f)).join(', ')}, a directory kept for data; a copy in the container would lose what is written there at the next recreate`,
            m.at,
            VOLUME_HINT,
            'repository_bind_data',
          );
        for (const f of inside) {
          const rel = path ? f.slice(path.length + 1) : f;
          // A listing's path is GitHub's word: one that would climb out of the target is refused, never followed.
          if (!rel || rel.split('/').some((part) => part === '' || part === '.' || part === '..')) throw fail(`service ${s.name}: the repository listing names an unusable path under ${path || 'the root'}`, m.at, 'check the repository for unusual file names');
          put(f, posix.join(target, rel));
        }
        refuseOuter();
        told.push(`${written} → ${target} (${inside.length} ${inside.length === 1 ? 'file' : 'files'}, added to what the image has there${intoNote})`);
      }
      for (const c of copies.values()) read.add(c.path);
      if (read.size > MAX_SHIPPED_FILES)
        throw fail(`service ${s.name}: the binds of repository paths would copy more than ${MAX_SHIPPED_FILES} files of the repository for this environment`, m.at, 'bind fewer or smaller directories, or build the files into the image', 'too_large');
    }
    // A mount of the service inside a copied directory hides that part of it, as under docker compose: those files are not copied.
    const files = [...copies.values()]
      .filter((c) => !around.some((k) => k.v.target !== c.bindTarget && under(k.v.target, c.bindTarget) && under(c.target, k.v.target)))
      .map(({ path, target, mode, at }) => ({ path, target, mode, at }));
    s.volumes = kept;
    if (!files.length) continue;
    if (files.length > MAX_COPIES_PER_SERVICE)
      throw fail(`service ${s.name}: its binds of repository paths would copy ${files.length} files into its container, more than ${MAX_COPIES_PER_SERVICE}`, binds[0]!.at, 'bind fewer or smaller directories, or build the files into the image', 'too_large');
    out.set(s.name, files);
    notes.push(
      `service ${s.name}: copied from the repository at this commit into the container before it starts (the app has no checkout on the target to bind): ${told.join(', ')}; what the container writes there is not kept when it is recreated`,
    );
  }
  // volumes_from shares mounts, and a copy is none: the service taking them would not see the files.
  for (const s of all)
    for (const f of s.volumesFrom ?? []) {
      const [kind, name] = f.v.split(':');
      if (kind === 'service' && name !== undefined && out.has(name))
        throw fail(
          `service ${s.name}: volumes_from: ${f.v} shares ${name}'s mounts, but ${name}'s binds of repository paths are copies in its own container (the app has no checkout on the target), which ${s.name} would not see`,
          f.at,
          `bind the same repository paths in ${s.name} too (each gets its own copy), or share the files through a named volume`,
        );
    }
  return out;
}

/** Names of a directory's files compared with a missing one, at most (each comparison costs the product of two lengths). */
const SIMILAR_CANDIDATES = 256;

/** "did you mean" for a bound file the commit does not hold: a file of the same directory with a name a typo away. */
function similarFile(tree: RepoTree, path: string): string | undefined {
  const dir = posix.dirname(path) === '.' ? '' : posix.dirname(path);
  const here = (tree.under(dir) ?? []).filter((f) => posix.dirname(f) === (dir || '.') && f.length <= 256).slice(0, SIMILAR_CANDIDATES);
  const found = closest(posix.basename(path), here.map((f) => posix.basename(f)));
  return found === undefined ? undefined : `did you mean ${dir ? `${dir}/` : ''}${found}? commit the file, or fix the path`;
}

/** A file name with an extension (`nginx.conf`, `init.sql`, `.env`): a missing one is a file not committed, not a data directory. */
const looksLikeFile = (path: string) => /\.[A-Za-z][A-Za-z0-9]{0,7}$/.test(posix.basename(path));

/** The volume key a data directory gets: its repository path, `/` read as `_` (`data/db` → `data_db`). */
export const dataVolumeKey = (path: string) => path.replace(/[^A-Za-z0-9_.-]/g, '_');

/**
 * Writable binds of directories the commit does not hold, or holds only a placeholder of (`.gitkeep`): docker
 * compose creates them empty on the host and the service keeps data there. The app has no checkout on the
 * target to create them in, so each becomes a named volume of the environment (one per path: services binding
 * the same path share it, as they would share the directory), mounted without the image's content (nocopy),
 * as an empty new directory hides it. A path that is read-only, looks like a file, was built from a secret,
 * or cannot be told from a partial listing is left to the copy rules (which refuse it, saying why).
 */
function keepDataInVolumes(services: readonly ServiceFragment[], tree: RepoTree, notes: string[], tainted: (mount: At<Mount>) => boolean, volumes: Map<string, VolumeFragment>): void {
  /** the repository path of a relative bind that could be a data directory (before the writable/read-only question) */
  const dataPath = (m: At<Mount>): string | undefined => {
    if (m.v.type !== 'bind' || !m.v.source || m.v.source.startsWith('/') || tainted(m)) return undefined;
    const source = m.v.source;
    if (source === '.' || source === '..' || source.startsWith('../')) return undefined;
    const path = posix.normalize(source.replace(/^\.\//, '')).replace(/\/$/, '');
    if (!path || path === '.' || path.startsWith('..') || tree.mode(path) !== undefined || looksLikeFile(path)) return undefined;
    const inside = tree.under(path);
    if (inside === undefined || (inside.length && !inside.every((f) => PLACEHOLDERS.test(posix.basename(f))))) return undefined;
    return path;
  };
  // A data directory is one some service writes: a read-only bind of the same path reads that volume (mailcow's
  // certificates, written by one container and read by others); read-only everywhere, it stays refused.
  const written = new Map<string, Loc>();
  for (const s of services)
    for (const m of s.volumes ?? []) {
      const p = m.v.readOnly ? undefined : dataPath(m);
      if (p !== undefined && !written.has(p)) written.set(p, m.at);
    }
  // Paths one inside another, found once by walking each path's parents (a scan per bind would cost the square of
  // their number, and a PR's compose file can list tens of thousands)
  const nested = new Map<string, string>();
  for (const p of written.keys())
    for (let d = posix.dirname(p); d !== '.' && d !== '/'; d = posix.dirname(d))
      if (written.has(d)) {
        if (!nested.has(p)) nested.set(p, d);
        if (!nested.has(d)) nested.set(d, p);
      }
  const made = new Map<string, string>();
  for (const s of services) {
    const told: string[] = [];
    s.volumes = (s.volumes ?? []).map((m) => {
      const path = dataPath(m);
      if (path === undefined || !written.has(path)) return m;
      const source = m.asWritten ?? m.v.source!;
      const key = dataVolumeKey(path);
      const other = nested.get(path);
      if (other)
        throw fail(
          `service ${s.name}: bind mount of ${source}: ${path} and ${other} are both directories the repository does not hold, one inside the other; berth keeps each in a volume of its own, which would not nest as the host directories do`,
          m.at,
          'bind one of them, or name the volumes yourself (volumes: [data:/path] under the service, and data: under the top-level volumes:)',
          'repository_bind_missing',
        );
      if (made.get(key) !== path) {
        if (volumes.has(key) || made.has(key))
          throw fail(
            `service ${s.name}: bind mount of ${source}: ${path} is not in the repository, and the volume berth would keep it in, ${key}, is already declared under volumes:`,
            m.at,
            `bind the declared volume (${key}:${m.v.target}), or rename it`,
            'repository_bind_missing',
          );
        made.set(key, path);
        volumes.set(key, { name: key, at: written.get(path)! });
      }
      told.push(`${source} → volume ${key} at ${m.v.target}${m.v.readOnly ? ' (read-only)' : ''}`);
      const { createHostPath: _created, selinux: _selinux, propagation: _propagation, ...rest } = m.v;
      return { ...m, v: { ...rest, type: 'volume', source: key, noCopy: true } };
    });
    if (told.length)
      notes.push(
        `service ${s.name}: ${told.join(', ')}: ${told.length === 1 ? 'a directory' : 'directories'} the repository does not hold at this commit, which docker compose would create empty on the host for data; the app has no checkout on the target, so ${told.length === 1 ? 'it is' : 'they are'} kept in a volume of the environment, mounted empty at first (never removed by berth)`,
      );
  }
}

/** A RepoTree over a commit's file listing: paths, and the git modes other than 100644. */
export function repoTreeOf(paths: Iterable<string>, modes: ReadonlyMap<string, string>, complete: boolean, sizes: ReadonlyMap<string, number> = new Map()): RepoTree {
  const sorted = [...paths].sort();
  const has = new Set(sorted);
  return {
    complete,
    size: (p) => sizes.get(p),
    // a submodule (160000) is no file of the listing, but its mode says what it is
    mode: (p) => (has.has(p) ? (modes.get(p) ?? '100644') : (modes.get(p) ?? (complete ? undefined : '100644'))),
    under: (dir) => {
      if (!complete) return undefined;
      if (!dir) return sorted;
      // The paths under dir/ are one run of the sorted listing: found by binary search, not a scan per bind.
      const prefix = `${dir}/`;
      let lo = 0;
      let hi = sorted.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (sorted[mid]! < prefix) lo = mid + 1;
        else hi = mid;
      }
      const out: string[] = [];
      for (let i = lo; i < sorted.length && sorted[i]!.startsWith(prefix); i++) out.push(sorted[i]!);
      return out;
    },
  };
}
