// push to the default branch: the apply_on: push environments apply it (issue 14).
import type { Context, Probot } from 'probot';
import type { Services } from '../../services.js';
import type { Deliveries, Routes } from './delivery.js';

export function pushRoutes({ auto }: Services): Routes {
  return {
    push: (payload) => {
      if (typeof payload.ref !== 'string' || typeof payload.after !== 'string') return { malformed: 'ref or after' };
      const branch = payload.repository?.default_branch;
      if (payload.deleted || !/^[0-9a-f]{40}$/.test(payload.after) || payload.ref !== `refs/heads/${branch}`) return undefined;
      if (typeof payload.repository?.full_name === 'string') auto.pushReceived(payload.repository.full_name, payload.after);
      return { pr: undefined, run: (gh, repo) => auto.pushed(gh, repo, payload.after, payload.sender?.login ?? payload.pusher?.name ?? '') };
    },
  };
}

export function onPush(app: Probot, d: Deliveries): void {
  app.on('push', async (context) => {
    await d.handle(context as unknown as Context, 'push');
  });
}
