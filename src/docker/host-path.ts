// Where a bind source under an allow-listed directory leads on the host: its
// symbolic links followed the way the host's kernel follows them when Docker
// mounts it, from each link's own text. The engine's path stat evaluates a
// link inside a container's root filesystem instead (an absolute link to
// /etc is the image's /etc, which the image may make a link back into the
// allowlist), so only the text of a link is taken from it, never where it
// leads. Pure but for `look`, which reads one path inside the directory.
import { posix } from 'node:path';
import { within } from '../compose/policy.js';

/** One path inside the directory: missing, a symbolic link and its text, or anything else. */
export type PathKind = { kind: 'absent' } | { kind: 'link'; text: string } | { kind: 'other' };

/** The kernel's own bound on links followed in one lookup (ELOOP beyond it). */
export const MAX_LINKS = 40;

const parts = (p: string) => p.split('/').filter((s) => s !== '' && s !== '.');

/**
 * The host path `source` (absolute, lexically under `dir`) resolves to, or the
 * first path outside `dir` the walk reaches (the caller refuses it): going up
 * out of `dir` (`..` there, or a link into one of its ancestors' other
 * entries) leaves it, since only `dir` itself was looked at. A missing
 * component ends the walk (Docker refuses a source that does not exist).
 */
export async function resolveUnder(dir: string, source: string, look: (path: string) => Promise<PathKind>): Promise<string> {
  let at = '/';
  let rest = parts(source);
  let links = 0;
  while (rest.length) {
    const name = rest.shift()!;
    const inside = within(at, dir);
    if (name === '..') {
      // The host's parent of `dir` is not something the allowlist names (and `dir` may itself be a link there).
      if (!inside || at === dir) return at === dir ? posix.dirname(dir) : at;
      at = posix.dirname(at);
      continue;
    }
    const next = posix.join(at, name);
    if (!inside) {
      // An ancestor of `dir` (the walk's start, or where an absolute link starts): only the way down into it is followed.
      if (!within(dir, next)) return next;
      at = next;
      continue;
    }
    const kind = await look(next);
    if (kind.kind === 'absent') return posix.join(next, ...rest);
    if (kind.kind === 'other') {
      at = next;
      continue;
    }
    if (++links > MAX_LINKS) throw new Error(`${source}: more than ${MAX_LINKS} symbolic links on the way (the host would refuse it too)`);
    // A link's text is read relative to the directory holding it, or from the host's root when absolute. One
    // that points outside `dir` as written is refused at once, named as written (it could only lead further out
    // through more links the walk cannot see).
    const written = posix.normalize(kind.text.startsWith('/') ? kind.text : posix.join(at, kind.text));
    if (!within(written, dir)) return written;
    if (kind.text.startsWith('/')) at = '/';
    rest = [...parts(kind.text), ...rest];
  }
  return at;
}
