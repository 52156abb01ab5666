// pull_request: opened/synchronize/reopened/ready_for_review plan the PR; closed applies a merge
// (apply_on: merge) and lets the PR's locks go.
import type { Context, Probot } from 'probot';
import type { Services } from '../../services.js';
import type { Deliveries, Routes } from './delivery.js';
import { PUSHER_UNKNOWN } from '../gates.js';

export function pullRequestRoutes({ store, bot, auto }: Services): Routes {
  const plan: Routes[string] = (payload) => {
    const pr = payload.pull_request;
    if (typeof pr?.number !== 'number' || typeof pr.head?.sha !== 'string' || typeof pr.base?.repo?.full_name !== 'string') return { malformed: 'pull_request' };
    return {
      pr: pr.number,
      run: async (gh, repo) => {
        // When berth first saw this head: a command written before it cannot have been about it (drafts included).
        // Who pushed it: the sender of `opened` (the author) and `synchronize` (the push); their approval of it does not count.
        // A head new to berth at `reopened` was pushed while the PR was closed, by someone no event names (not the
        // reopener, necessarily): unknown, so no approval of it counts (gates.ts). A head berth knew keeps its pusher.
        const sender = typeof payload.sender?.login === 'string' ? payload.sender.login : undefined;
        const pusher = payload.action === 'opened' || payload.action === 'synchronize' ? sender : payload.action === 'reopened' ? PUSHER_UNKNOWN : undefined;
        await store.recordHead(payload.repository.full_name, pr.number, pr.head.sha, pusher);
        if (pr.draft) return;
        await bot.planPullRequest(gh, repo, {
          number: pr.number,
          state: pr.state as 'open' | 'closed',
          merged: !!pr.merged,
          draft: !!pr.draft,
          headSha: pr.head.sha,
          headRepo: pr.head.repo?.full_name ?? null,
          baseRepo: pr.base.repo.full_name,
          mergeable: pr.mergeable ?? null,
          author: pr.user?.login ?? '',
          htmlUrl: pr.html_url,
        });
      },
    };
  };
  return {
    'pull_request.opened': plan,
    'pull_request.synchronize': plan,
    'pull_request.reopened': plan,
    'pull_request.ready_for_review': plan,
    'pull_request.closed': (payload) => {
      const pr = payload.pull_request;
      if (typeof pr?.number !== 'number') return { malformed: 'pull_request.number' };
      return {
        pr: pr.number,
        run: async (gh, repo) => {
          // Merged: the apply_on: merge environments apply the merge commit under the PR's lock first.
          // Only a merge into the default branch: branch protection (reviews, required checks) guards that
          // branch alone, so a merge into any other branch would be a way around review.
          try {
            if (pr.merged === true && typeof pr.base?.ref === 'string' && typeof pr.merge_commit_sha === 'string') {
              // A payload without the repository's default branch (a GitHub that leaves it out) is not a reason to skip the apply: asked.
              const named = payload.repository?.default_branch;
              const defaultBranch = typeof named === 'string' && named ? named : await gh.defaultBranch(repo);
              if (pr.base.ref === defaultBranch) await auto.merged(gh, repo, pr.number, pr.merge_commit_sha, pr.merged_by?.login ?? payload.sender?.login ?? '');
            }
          } finally {
            // Whatever happened to the merge apply, the PR's other locks go (those with an apply in flight when it ends).
            await bot.pullClosed(repo, pr.number);
          }
        },
      };
    },
  };
}

export function onPullRequest(app: Probot, d: Deliveries): void {
  app.on(['pull_request.opened', 'pull_request.synchronize', 'pull_request.reopened', 'pull_request.ready_for_review', 'pull_request.closed'], async (context) => {
    await d.handle(context as unknown as Context, `pull_request.${context.payload.action}`);
  });
}
