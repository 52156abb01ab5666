// A push to any branch: who pushed the commit it made the branch's head is recorded (their approval of that
// head does not count when it is a PR's, gates.ts: a branch pushed by one person and opened as a PR by
// another, or pushed while its PR was closed, has no PR event naming its pusher). A push to the default
// branch: the apply_on: push environments apply it (issue 14).
import type { Context, Probot } from 'probot';
import type { Services } from '../../services.js';
import type { Deliveries, Routes } from './delivery.js';
import { repoName } from '../github.js';

export function pushRoutes({ auto, store }: Services): Routes {
  return {
    push: (payload) => {
      if (typeof payload.ref !== 'string' || typeof payload.after !== 'string') return { malformed: 'ref or after' };
      if (payload.deleted || !/^[0-9a-f]{40}$/.test(payload.after) || !payload.ref.startsWith('refs/heads/')) return undefined;
      const actor = payload.sender?.login ?? payload.pusher?.name ?? '';
      const record = (repo: string) => (actor ? store.recordPush(repo, payload.after, actor) : Promise.resolve());
      const named = payload.repository?.default_branch;
      if (typeof named === 'string' && named) {
        if (payload.ref !== `refs/heads/${named}`) return { pr: undefined, run: (_gh, repo) => record(repoName(repo)) };
        if (typeof payload.repository?.full_name === 'string') auto.pushReceived(payload.repository.full_name, payload.after);
        return {
          pr: undefined,
          run: async (gh, repo) => {
            await record(repoName(repo));
            await auto.pushed(gh, repo, payload.after, actor);
          },
        };
      }
      // A payload that does not name the default branch (GitHub's always do; a stand-in's may not): asked,
      // rather than every push taken as one to another branch.
      return {
        pr: undefined,
        run: async (gh, repo) => {
          await record(repoName(repo));
          if (payload.ref !== `refs/heads/${await gh.defaultBranch(repo)}`) return;
          auto.pushReceived(repoName(repo), payload.after);
          await auto.pushed(gh, repo, payload.after, actor);
        },
      };
    },
  };
}

export function onPush(app: Probot, d: Deliveries): void {
  app.on('push', async (context) => {
    await d.handle(context as unknown as Context, 'push');
  });
}
