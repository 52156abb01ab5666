// The checks every apply passes before anything touches Docker. Each gate
// returns the refusal to post, or ok. All of them fail closed: an unknown
// environment, a GitHub error or a missing record is a refusal.
import type { GitHubPort, PullRequest, RepoRef } from './github.js';
import { repoName } from './github.js';
import { code, msg } from './messages.js';
import type { Store } from './store/store.js';

export type Gate = { ok: true } | { ok: false; message: string };
const OK: Gate = { ok: true };

/** What the gates read of an environment's config (see config.ts). */
export interface GatedEnvironment {
  name: string;
  requires: readonly string[];
  appliers?: { users?: readonly string[]; teams?: readonly string[] };
  approvals?: number;
  require?: { approved?: boolean; mergeable?: boolean };
}

const WRITE = new Set(['admin', 'maintain', 'write']);

/** Write permission on the repository, or listed in the environment's appliers (users, or `team`/`org/team`). */
export async function authorise(gh: GitHubPort, repo: RepoRef, user: string, env: GatedEnvironment): Promise<Gate> {
  try {
    const perm = await gh.permission(repo, user);
    if (WRITE.has(perm)) return OK;
    if (env.appliers?.users?.some((u) => u.toLowerCase() === user.toLowerCase())) return OK;
    for (const t of env.appliers?.teams ?? []) {
      const [org, team] = t.includes('/') ? (t.split('/', 2) as [string, string]) : [repo.owner, t];
      if (await gh.isTeamMember(org, team, user)) return OK;
    }
    const via = env.appliers?.users?.length || env.appliers?.teams?.length ? `, and is not among the appliers of ${code(env.name)}` : '';
    return { ok: false, message: msg.unauthorised(user, env.name, `their permission on this repository is ${code(perm)} (write is needed)${via}.`) };
  } catch (err) {
    return { ok: false, message: msg.authCheckFailed(user, err) };
  }
}

export function forkGate(pull: PullRequest, allowForks: boolean): Gate {
  const fromFork = pull.headRepo === null || pull.headRepo !== pull.baseRepo;
  return fromFork && !allowForks ? { ok: false, message: msg.fork() } : OK;
}

/** Approvals and mergeability as the environment's config asks. */
export async function requirementsGate(gh: GitHubPort, repo: RepoRef, pull: PullRequest, env: GatedEnvironment): Promise<Gate> {
  const needed = Math.max(env.approvals ?? 0, env.require?.approved ? 1 : 0);
  try {
    if (needed > 0) {
      const latest = new Map<string, string>();
      // Reviews come oldest first: the last one of each reviewer counts, like GitHub's own rule.
      for (const r of await gh.listReviews(repo, pull.number)) {
        if (r.user === pull.author) continue;
        if (r.state === 'COMMENTED') continue;
        latest.set(r.user, r.state);
      }
      const approved = [...latest.values()].filter((s) => s === 'APPROVED').length;
      if (approved < needed)
        return {
          ok: false,
          message: msg.requirement(env.name, `${code(env.name)} needs ${needed} approving review${needed > 1 ? 's' : ''}; this PR has ${approved}.`, 'get the PR reviewed and approved, then apply again.'),
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
 * Staging-first: every environment in `requires` must have completed an apply
 * of exactly the desired state this PR head produces for it. `digestOf`
 * computes that digest (it loads the required environment's compose at the
 * head); an environment the config does not list fails closed.
 */
export async function requiresGate(
  store: Store,
  repo: RepoRef,
  env: GatedEnvironment,
  known: readonly string[],
  digestOf: (env: string) => Promise<string>,
): Promise<Gate> {
  const missing: { env: string; why: string }[] = [];
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
    const latest = await store.latestApply(repoName(repo), req, { desiredDigest: digest });
    if (!latest) missing.push({ env: req, why: 'these changes have not been applied there' });
    else if (latest.state !== 'completed') missing.push({ env: req, why: `the latest apply of these changes there is ${code(latest.state)}` });
  }
  return missing.length ? { ok: false, message: msg.requiresFirst(env.name, missing) } : OK;
}
