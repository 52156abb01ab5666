// issue_comment.created on a PR: a berth command.
import type { Context, Probot } from 'probot';
import type { Services } from '../../services.js';
import type { Deliveries, Routes } from './delivery.js';
import { MARKER } from '../messages.js';

export function issueCommentRoutes({ bot, appId }: Services): Routes {
  return {
    'issue_comment.created': (payload) => {
      const { issue, comment } = payload;
      if (typeof issue?.number !== 'number' || typeof comment?.id !== 'number') return { malformed: 'issue or comment' };
      if (!issue.pull_request) return undefined;
      // berth's own comments are never commands, whatever user a GitHub shows them under: made through this
      // app (berth acts with installation tokens only), or opening with berth's hidden marker.
      if (appId !== undefined && comment.performed_via_github_app?.id === appId) return undefined;
      if (typeof comment.body === 'string' && comment.body.startsWith(MARKER)) return undefined;
      // A command is only ever taken from a named user: without one, authorisation would be asked about nobody.
      if (typeof comment.user?.login !== 'string' || !comment.user.login) return { malformed: 'comment.user.login' };
      return {
        pr: issue.number,
        run: (gh, repo) =>
          bot.handleComment(gh, repo, issue.number, {
            id: comment.id,
            body: comment.body ?? '',
            user: comment.user?.login ?? '',
            userType: comment.user?.type ?? 'User',
            createdAt: String(comment.created_at ?? ''),
            updatedAt: String(comment.updated_at ?? comment.created_at ?? ''),
          }),
      };
    },
  };
}

export function onIssueComment(app: Probot, d: Deliveries): void {
  app.on('issue_comment.created', async (context) => {
    await d.handle(context as unknown as Context, 'issue_comment.created');
  });
}
