// The checks every apply passes before anything touches Docker. Each gate
// returns the refusal to post, or ok. All of them fail closed: an unknown
// environment, a GitHub error or a missing record is a refusal.
import type { GitHubPort, PullRequest, RepoRef, Review } from './github.js';
import { repoName } from './github.js';
import { code, msg, shortSha } from './messages.js';
import type { Store } from '../store/store.js';

export type Gate = { ok: true } | { ok: false; message: string };
const OK: Gate = { ok: true };

/**
 * Who pushed a head when berth cannot know: GitHub sends no `synchronize` for a push to a closed PR, and the
 * PR takes the branch's new head only when reopened, in a `reopened` event whose sender merely reopened it.
 * No GitHub login is `?`.
 */
export const PUSHER_UNKNOWN = '?';

/** What the gates read of an environment's config (see config.ts). */
export interface GatedEnvironment {
  name: string;
  requires: readonly string[];
  appliers?: { users?: readonly string[]; teams?: readonly string[] };
  approvals?: number;
  require?: { approved?: boolean; mergeable?: boolean };
}

const WRITE = new Set(['admin', 'maintain', 'write']);

/**
 * Whether `user` may apply to `env`: write permission on the repository, or
 * listed in the environment's appliers (users, or `team`/`org/team`). A GitHub
 * error is thrown, for the caller to deny.
 */
async function mayApply(gh: GitHubPort, repo: RepoRef, user: string, env: GatedEnvironment): Promise<{ ok: true } | { ok: false; perm: string }> {
  const perm = await gh.permission(repo, user);
  if (WRITE.has(perm)) return { ok: true };
  if (env.appliers?.users?.some((u) => u.toLowerCase() === user.toLowerCase())) return { ok: true };
  for (const t of env.appliers?.teams ?? []) {
    const [org, team] = t.includes('/') ? (t.split('/', 2) as [string, string]) : [repo.owner, t];
    if (await gh.isTeamMember(org, team, user)) return { ok: true };
  }
  return { ok: false, perm };
}

/** Write permission on the repository, or listed in the environment's appliers (users, or `team`/`org/team`). */
export async function authorise(gh: GitHubPort, repo: RepoRef, user: string, env: GatedEnvironment): Promise<Gate> {
  try {
    const may = await mayApply(gh, repo, user, env);
    if (may.ok) return OK;
    const via = env.appliers?.users?.length || env.appliers?.teams?.length ? `, and is not among the appliers of ${code(env.name)}` : '';
    return { ok: false, message: msg.unauthorised(user, env.name, `their permission on this repository is ${code(may.perm)} (write is needed)${via}.`) };
  } catch (err) {
    return { ok: false, message: msg.authCheckFailed(user, err) };
  }
}

export function forkGate(pull: PullRequest, allowForks: boolean): Gate {
  const fromFork = pull.headRepo === null || pull.headRepo !== pull.baseRepo;
  return fromFork && !allowForks ? { ok: false, message: msg.fork() } : OK;
}

/**
 * Approvals and mergeability as the environment's config asks. An approval
 * counts as GitHub's own rule does — the latest APPROVED / CHANGES_REQUESTED /
 * DISMISSED review of each reviewer (comments and pending reviews change
 * nothing) — and only when it is of the current head, by someone other than
 * the author who may apply to the environment (write access or appliers), and
 * not by whoever pushed the current head (`pushers`, GitHub's "approval of the
 * most recent reviewable push" rule: a writer who pushes onto someone else's PR,
 * or pushes a branch someone else opens as a PR, would otherwise approve their
 * own change).
 */
export async function requirementsGate(gh: GitHubPort, repo: RepoRef, pull: PullRequest, env: GatedEnvironment, pushers: readonly string[] = []): Promise<Gate> {
  const needed = Math.max(env.approvals ?? 0, env.require?.approved ? 1 : 0);
  // Everyone berth knows pushed the head (its PR event's sender, the senders of the `push` webhooks that made it a branch's head).
  const pushedBy = new Set(pushers.filter((p) => p !== PUSHER_UNKNOWN).map((p) => p.toLowerCase()));
  try {
    // Whoever pushed the head may have approved it: with the pusher unknown, no approval can be told from theirs.
    if (needed > 0 && pushers.includes(PUSHER_UNKNOWN) && !pushedBy.size)
      return {
        ok: false,
        message: msg.requirement(
          env.name,
          `${code(env.name)} needs ${needed} approving review${needed > 1 ? 's' : ''} of the current head ${code(shortSha(pull.headSha))} by someone other than whoever pushed it, and berth does not know who pushed the current head: it came with the PR's reopening (GitHub sends no event for a push to a closed PR), so no approval of it counts.`,
          'push a commit to the PR while it is open (berth then knows who pushed it), get that head approved, then apply again.',
        ),
      };
    if (needed > 0) {
      const latest = new Map<string, Review>();
      // Reviews come oldest first: the last one of each reviewer counts.
      for (const r of await gh.listReviews(repo, pull.number)) {
        if (r.state !== 'APPROVED' && r.state !== 'CHANGES_REQUESTED' && r.state !== 'DISMISSED') continue;
        // A review whose account is gone (GitHub's user: null) is nobody's: it counts for no one, and asking
        // GitHub about an empty login would fail the whole gate for the approvals that do count.
        if (!r.user) continue;
        latest.set(r.user.toLowerCase(), r);
      }
      let approved = 0;
      const ignored: string[] = [];
      for (const r of latest.values()) {
        if (r.state !== 'APPROVED') continue;
        if (r.user.toLowerCase() === pull.author.toLowerCase()) ignored.push(`@${r.user} (the author)`);
        else if (pushedBy.has(r.user.toLowerCase())) ignored.push(`@${r.user} (pushed the current head)`);
        else if (r.commitId !== pull.headSha) ignored.push(`@${r.user} (approved ${r.commitId ? code(shortSha(r.commitId)) : 'an unknown commit'}, not the current head)`);
        else if (!(await mayApply(gh, repo, r.user, env)).ok) ignored.push(`@${r.user} (no write access, not among the appliers)`);
        else approved++;
      }
      if (approved < needed)
        return {
          ok: false,
          message: msg.requirement(
            env.name,
            `${code(env.name)} needs ${needed} approving review${needed > 1 ? 's' : ''} of the current head ${code(shortSha(pull.headSha))} by someone with write access other than the author and whoever pushed it; this PR has ${approved}.` +
              (ignored.length ? ` Not counted: ${ignored.join(', ')}.` : ''),
            'get the current head reviewed and approved, then apply again.',
          ),
        };
    }
    if (env.require?.mergeable) {
      if (pull.mergeable === null)
        return { ok: false, message: msg.requirement(env.name, 'GitHub has not finished checking whether this PR can be merged.', 'retry the command in a few seconds.') };
      if (!pull.mergeable) return { ok: false, message: msg.requirement(env.name, `${code(env.name)} requires the PR to be mergeable, and it has conflicts.`, 'resolve the conflicts with the base branch, then apply again.') };
    }
    return OK;
  } catch (err) {
    return { ok: false, message: msg.requirement(env.name, `checking the requirements failed: ${code(String((err as Error)?.message ?? err))}`, 'retry the command in a moment.') };
  }
}

/**
 * Staging-first: every environment in `requires` must have a completed apply
 * of THIS pull request whose desired state there is exactly the one its
 * current head produces (an earlier head of the PR with the same state
 * counts). Another PR's apply never does, even of an identical state: the
 * rule is that these changes were tried there. Nor does a rollback of this
 * PR (it ran some other state). `digestOf` computes the digest
 * (it loads the required environment's compose at the head); an environment
 * the config does not list fails closed.
 */
export async function requiresGate(
  store: Store,
  repo: RepoRef,
  pull: Pick<PullRequest, 'number' | 'headSha'>,
  env: GatedEnvironment,
  known: readonly string[],
  digestOf: (env: string) => Promise<string>,
): Promise<Gate> {
  const missing: { env: string; why: string }[] = [];
  const these = `#${pull.number} at ${code(shortSha(pull.headSha))}`;
  for (const req of env.requires) {
    if (!known.includes(req)) {
      missing.push({ env: req, why: 'is not an environment of the configuration, so this requirement can never be met' });
      continue;
    }
    let digest: string;
    try {
      digest = await digestOf(req);
    } catch (err) {
      missing.push({ env: req, why: `its desired state could not be computed: ${code(String((err as Error)?.message ?? err))}` });
      continue;
    }
    // Only an apply counts, never a rollback (automatic or `/rollback`), though it carries this PR's number: it
    // runs another state than the PR's — an earlier commit's, or, after a failed rollout, the failed apply's
    // state with some services returned, whose record keeps entries (a service the failed apply never created
    // or never got healthy) that did not run — so its digest says nothing about these changes having run there.
    const ours = (await store.listApplies({ repo: repoName(repo), pr: pull.number, environment: req })).find((a) => a.kind === 'apply' && a.desiredDigest === digest);
    if (!ours) missing.push({ env: req, why: `this pull request (${these}) has not applied its ${code(req)} state there (an apply of another PR does not count, nor does a rollback)` });
    else if (ours.state !== 'completed') missing.push({ env: req, why: `the latest apply of this pull request's ${code(req)} state (${these}) there is ${code(ours.state)}` });
  }
  return missing.length ? { ok: false, message: msg.requiresFirst(env.name, missing) } : OK;
}

/**
 * Staging-first for a push (`apply_on: push`, no pull request): every
 * environment in `requires` must have had the pushed commit's state applied
 * there, by any PR or push, and the latest apply of that state there must have
 * completed (a later failed one says it does not run there now). As for a PR,
 * only an apply counts, never a rollback: a rollback's record holds another
 * state, at worst one that never ran in full (requiresGate). An environment the
 * config does not list fails closed.
 */
export async function pushRequiresGate(store: Store, repo: RepoRef, env: GatedEnvironment, known: readonly string[], digestOf: (env: string) => Promise<string>): Promise<Gate> {
  for (const req of env.requires) {
    const done = known.includes(req) ? await store.latestApply(repoName(repo), req, { desiredDigest: await digestOf(req), kind: 'apply' }) : undefined;
    if (done?.state !== 'completed') return { ok: false, message: `${code(env.name)} requires ${code(req)} to have completed an apply of this commit's ${code(req)} state first; it has not.` };
  }
  return OK;
}
