// Every sentence berth posts to a PR, in one place: refusals name the rule and
// how to satisfy it; errors carry file, line and what to do. Inputs that come
// from users (names, YAML keys, Docker and compose messages) go through
// escape.ts (inert prose, code spans or fences) so they cannot break the
// comment or forge one.
import { block, code, inert } from '../text/escape.js';
import type { BerthError } from '../errors.js';
import { isBerthError } from '../errors.js';
import type { AggregateState, LockRow } from '../store/store.js';

export const MARKER = '<!-- berth -->';

// Author-controlled text goes through escape.ts, re-exported here for the message builders.
export { block, code, inert } from '../text/escape.js';

export const shortSha = (sha: string) => sha.slice(0, 7);

/**
 * GitHub's web address: github.com, or the Enterprise Server Probot talks to (GHE_HOST, GHE_PROTOCOL),
 * so links in comments and deployments lead to the instance the PR lives on.
 */
export function githubWebUrl(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.GHE_HOST?.trim();
  return host ? `${env.GHE_PROTOCOL?.trim() || 'https'}://${host}` : 'https://github.com';
}

export function prLink(repo: string, pr: number): string {
  return `[${repo}#${pr}](${githubWebUrl()}/${repo}/pull/${pr})`;
}

export function errorMarkdown(err: BerthError): string {
  // The problem and hint quote what the author wrote (a service name, a key): prose, so made inert.
  const lines = [`**${inert(err.problem)}**`];
  const where = [err.file, err.line !== undefined ? `line ${err.line}` : undefined, err.path].filter(Boolean).join(', ');
  if (where) lines.push(`in ${code(where)}`);
  const issues = (err as { issues?: readonly string[] }).issues;
  if (issues && issues.length > 1) lines.push('', block(issues.join('\n')));
  else lines.push('', block(err.message));
  if (err.hint) lines.push('', `**What to do:** ${inert(err.hint)}`);
  return lines.join('\n');
}

export const msg = {
  refused(rule: string, why: string, fix: string): string {
    return `${MARKER}\n### 🚫 ${rule}\n\n${why}\n\n**To proceed:** ${fix}`;
  },

  lockHeld(env: string, holder: LockRow, repo: string): string {
    const byPr = holder.pr > 0 && !holder.owner.startsWith('cli:');
    return msg.refused(
      `${code(env)} is locked`,
      `The environment ${code(env)} is locked by ${lockHolder(repo, holder)} (since ${new Date(holder.createdAt).toISOString()}).`,
      byPr
        ? `wait for that PR to be merged or closed, or ask someone with write access to comment \`/unlock ${env}\` there.`
        : `wait for that apply to end, or ask someone with write access to comment \`/unlock ${env}\`.`,
    );
  },

  unauthorised(user: string, env: string, detail: string): string {
    return msg.refused(
      'Not authorised',
      `@${user} may not run this on ${code(env)}: ${detail}`,
      `ask someone with write permission on this repository (or in the environment's \`appliers\`) to run it.`,
    );
  },

  authCheckFailed(user: string, err: unknown): string {
    return msg.refused(
      'Not authorised',
      `Checking @${user}'s permissions failed, so the command is denied: ${code(String((err as Error)?.message ?? err))}`,
      'retry the command in a moment.',
    );
  },

  fork(): string {
    return msg.refused(
      'PRs from forks cannot apply',
      'This pull request comes from a fork. This berth server does not allow applies from forks.',
      'push the branch to this repository and open the PR from there.',
    );
  },

  closedPr(): string {
    return msg.refused('The PR is closed', 'Applies run only from open pull requests.', 'reopen the pull request.');
  },

  unknownEnv(env: string, known: readonly string[]): string {
    return msg.refused(
      `Unknown environment ${code(env)}`,
      `${code(env)} is not an environment of \`.github/berth.yml\` on the default branch.`,
      `use one of ${known.map(code).join(', ')}.`,
    );
  },

  /** `/apply` of a head whose plan fails: the plan's error is the answer, not "plan again and apply again". */
  planFailed(env: string, head: string, plan: string): string {
    return `${msg.refused('The plan failed', `${code(env)} cannot be applied at ${code(shortSha(head))}: planning it failed, as the plan comment shows.`, `fix what the plan names, push, then comment \`/apply ${env}\`.`)}\n\n${plan}`;
  },

  staleHead(env: string, planned: string | undefined, head: string): string {
    return msg.refused(
      'The plan is out of date',
      planned
        ? `The plan for ${code(env)} was made for ${code(shortSha(planned))}, but the PR head is now ${code(shortSha(head))}. berth has planned again; the new plan is in the plan comment.`
        : `There is no plan for ${code(env)} at ${code(shortSha(head))} yet. berth has planned it now; see the plan comment.`,
      `review the new plan, then comment \`/apply ${env}\` again.`,
    );
  },

  staleWorld(env: string, changes: readonly string[], command: 'apply' | 'rollback' = 'apply'): string {
    return msg.refused(
      'The plan is out of date',
      `The Docker host of ${code(env)} changed since the plan was made:\n\n${block(changes.join('\n'), 'diff')}\n\nberth has planned again; the new plan is in the plan comment.`,
      `review the new plan, then comment \`/${command} ${env}\` again.`,
    );
  },

  requiresFirst(env: string, missing: { env: string; why: string }[]): string {
    return msg.refused(
      'Staging first',
      `${code(env)} can only be applied after ${missing.map((m) => code(m.env)).join(', ')} ${missing.length > 1 ? 'have' : 'has'} completed an apply of this pull request's changes:\n\n${missing.map((m) => `- ${code(m.env)}: ${m.why}`).join('\n')}`,
      `comment ${missing.map((m) => `\`/apply ${m.env}\``).join(', then ')} first, and wait for it to complete.`,
    );
  },

  requirement(env: string, what: string, fix: string): string {
    return msg.refused(`Apply requirement not met for ${code(env)}`, what, fix);
  },

  alreadyApplying(env: string, applyId: string): string {
    return `${MARKER}\nAn apply to ${code(env)} is already in progress (${code(applyId)}). Comment \`/stop ${env}\` to halt it.`;
  },

  started(env: string, applyId: string, sha: string, steps: number): string {
    return `${MARKER}\n🚀 Applying ${code(env)} at ${code(shortSha(sha))}: ${steps} step${steps === 1 ? '' : 's'} (apply ${code(applyId)}). Progress is on the \`berth / ${env}\` check. Comment \`/stop ${env}\` to halt it.`;
  },

  nothingToApply(env: string): string {
    return `${MARKER}\n✅ ${code(env)} already matches this PR: nothing to apply.`;
  },

  finished(env: string, state: AggregateState, durationMs: number, failure?: { step: string; error: string }): string {
    const d = formatDuration(durationMs);
    const head =
      state === 'completed'
        ? `✅ Apply to ${code(env)} completed in ${d}.`
        : state === 'stopped'
          ? `⏹️ Apply to ${code(env)} was stopped after ${d}.`
          : `❌ Apply to ${code(env)} failed after ${d}.`;
    const fail = failure ? `\n\nFailed step: ${code(failure.step)}\n\n${block(failure.error)}` : '';
    return `${MARKER}\n${head}${fail}`;
  },

  /**
   * The part of a failed apply's outcome that says what its stopped rollouts left (issue 13): which replicas
   * serve the old version again, which had already been updated, and what berth does about those.
   */
  rolloutOutcome(
    env: string,
    stopped: readonly { service: string; restored: number[]; notStarted: number[]; updated: number[]; previousImage?: string }[],
    next: { kind: 'started'; applyId: string; services: string[]; earlier: { id: string; pr: number | null; headSha: string | null } } | { kind: 'none'; why: string } | { kind: 'failed'; why: string },
  ): string {
    const list = (rs: number[]) => `replica${rs.length === 1 ? '' : 's'} ${rs.join(', ')}`;
    const lines = stopped.map((s) => {
      const old = s.previousImage ? ` (${code(s.previousImage)})` : '';
      const parts = [
        ...(s.restored.length ? [`${list(s.restored)} failed ${s.restored.length === 1 ? 'its' : 'their'} gate and ${s.restored.length === 1 ? 'was' : 'were'} rolled back in place`] : []),
        ...(s.notStarted.length ? [`${list(s.notStarted)} ${s.notStarted.length === 1 ? 'was' : 'were'} not started`] : []),
      ];
      const oldCount = s.restored.length + s.notStarted.length;
      const kept = parts.length ? `${parts.join('; ')}: ${oldCount === 1 ? 'it serves' : 'they serve'} the old version${old}.` : '';
      const updated = s.updated.length ? ` ${list(s.updated)} had already passed ${s.updated.length === 1 ? 'its' : 'their'} gate and ${s.updated.length === 1 ? 'runs' : 'run'} the new version.` : '';
      return `- ${code(s.service)}: ${kept}${updated}`;
    });
    const mixedServices = stopped.filter((s) => s.updated.length);
    const mixed = `${mixedServices.map((s) => code(s.service)).join(', ')} ${mixedServices.length === 1 ? 'runs' : 'run'}`;
    let after: string;
    if (next.kind === 'started') {
      const from = next.earlier.headSha ? ` (${next.earlier.pr !== null ? `#${next.earlier.pr} at ` : ''}${code(shortSha(next.earlier.headSha))})` : '';
      after = `⏪ berth started rollback apply ${code(next.applyId)} by itself to return ${next.services.map(code).join(', ')} to the state of apply ${code(next.earlier.id)}${from}, rolling out with \`rollback_config\`; every other service stays as it runs. Its outcome follows here and on the \`berth / ${env}\` check.`;
    } else if (next.kind === 'none') after = `⚠️ Not rolled back: ${inert(next.why)}. ${mixed} mixed versions until a known good version is applied.`;
    else after = `⚠️ berth could not start the rollback: ${code(next.why)}. ${mixed} mixed versions until a known good version is applied (or comment \`/rollback ${env}\`).`;
    return `**Rollout stopped** (\`failure_action: rollback\`):\n\n${lines.join('\n')}\n\n${after}`;
  },

  autoRollbackStarted(env: string, applyId: string, failedId: string, services: string[], earlier: { id: string; pr: number | null; headSha: string | null }, steps: number): string {
    const from = earlier.headSha ? ` (${earlier.pr !== null ? `#${earlier.pr} at ` : ''}${code(shortSha(earlier.headSha))})` : '';
    return `${MARKER}\n⏪ Rolling back ${services.map(code).join(', ')} on ${code(env)} by itself: the rollout of apply ${code(failedId)} stopped under \`failure_action: rollback\` after some replicas had already been updated. Back to the state of apply ${code(earlier.id)}${from}: ${steps} step${steps === 1 ? '' : 's'} (apply ${code(applyId)}). Progress is on the \`berth / ${env}\` check. Comment \`/stop ${env}\` to halt it.`;
  },

  stopRequested(envs: string[]): string {
    return `${MARKER}\n⏹️ Stop requested for ${envs.map(code).join(', ')}: running steps finish, nothing new starts.`;
  },

  nothingToStop(env?: string): string {
    return `${MARKER}\nThere is no apply in progress${env ? ` on ${code(env)}` : ''} for this PR.`;
  },

  unlocked(envs: string[]): string {
    return envs.length ? `${MARKER}\n🔓 Unlocked ${envs.map(code).join(', ')}.` : `${MARKER}\nThis PR holds no lock${''}.`;
  },

  unlockInFlight(env: string): string {
    return msg.refused('Cannot unlock during an apply', `An apply to ${code(env)} is in progress under this lock.`, `comment \`/stop ${env}\` and wait for it to end, then \`/unlock ${env}\`.`);
  },

  commandStale(env: string, command: 'apply' | 'rollback', reasons: readonly string[]): string {
    return msg.refused(
      'The PR changed after the command was written',
      `berth applies what the person who commented saw. This \`/${command} ${env}\` was not acted on:\n\n${reasons.map((r) => `- ${r}`).join('\n')}\n\nGitHub gives a comment's creation time to the second: a change within that same second counts as after it.`,
      `review the plan comment as it is now, then comment \`/${command} ${env}\` again.`,
    );
  },

  planCommentEdited(env: string, reasons: readonly string[]): string {
    return msg.refused(
      "berth's plan comment is not what berth wrote",
      `berth applies what the person who commented saw, and what berth's plan comment shows is no longer what berth wrote there: anyone with write access can edit it. This \`/apply ${env}\` was not acted on:\n\n${reasons.map((r) => `- ${r}`).join('\n')}`,
      `comment \`/plan ${env}\` to have berth write its plan again, review it, then comment \`/apply ${env}\`.`,
    );
  },

  editedCommand(): string {
    return msg.refused(
      'Edited comments are not commands',
      'This comment was edited after it was written, so berth cannot tell what it said when it was written, nor what its author saw then.',
      'write the command in a new comment.',
    );
  },

  rollbackPlan(env: string, target: { id: string; pr: number | null; headSha: string }, plan: string): string {
    const from = `${target.pr !== null ? `#${target.pr} at ` : ''}${code(shortSha(target.headSha))}`;
    return `${MARKER}\n### ⏪ Rollback plan for ${code(env)}\n\nBack to the state of apply ${code(target.id)} (${from}), rebuilt from that commit under today's configuration and policy (\`.github/berth.yml\` on the default branch). It starts now; comment \`/stop ${env}\` to halt it.\n\n${plan}`;
  },

  rollbackRefused(env: string, target: { id: string; pr: number | null; headSha: string }, why: string): string {
    const from = `${target.pr !== null ? `#${target.pr} at ` : ''}${code(shortSha(target.headSha))}`;
    return msg.refused(
      `Cannot roll back ${code(env)}`,
      `The state of apply ${code(target.id)} (${from}), rebuilt from that commit under today's configuration and policy, is refused:\n\n${why}`,
      'fix the default branch configuration, or apply a known good PR instead.',
    );
  },

  rollbackUnsourced(env: string, applyId: string): string {
    return msg.refused(
      'Cannot roll back to that state',
      `The last different state of ${code(env)} (apply ${code(applyId)}) was not applied from a commit, so it cannot be checked against today's policy.`,
      'apply a known good PR instead.',
    );
  },

  noRollback(env: string): string {
    return msg.refused('Nothing to roll back to', `${code(env)} has no earlier completed apply with a different state.`, 'apply a known good PR instead.');
  },

  /** A GitHub request the command needed failed (after the client's retries): GitHub's failure, said as such. */
  githubFailed(ref: string, status: number, request: string): string {
    return `${MARKER}\n⚠️ GitHub failed a request berth needed to handle this (${code(request)} answered ${status}), so berth did not act on it (reference ${code(ref)}). Nothing was applied by the failed step; retry the command in a moment.`;
  },

  internalError(ref: string): string {
    return `${MARKER}\n⚠️ berth hit an internal error while handling this (reference ${code(ref)}). Nothing was applied by the failed step. The error is in the server log; retry the command, and report it if it persists.`;
  },

  configMissing(): string {
    return `${MARKER}\nberth is not configured for this repository: there is no \`.github/berth.yml\` on the default branch.`;
  },

  configError(err: unknown): string {
    return `${MARKER}\n### ❌ berth configuration error\n\n${isBerthError(err) ? errorMarkdown(err) : block(String((err as Error)?.message ?? err))}`;
  },
};

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

/** Who holds a lock, as the PR thread shows it: the PR, a `berth apply` from the command line, or (an apply on merge or push, no PR) its owner. */
export function lockHolder(repo: string, lock: LockRow): string {
  if (lock.owner.startsWith('cli:')) return `a \`berth apply\` from the command line (${code(lock.owner)})`;
  if (lock.pr > 0) return prLink(repo, lock.pr);
  return code(lock.owner);
}
