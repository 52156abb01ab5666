// check_run.rerequested on a berth check: plan the PR again (one environment for `berth / <env>`).
import type { Context, Probot } from 'probot';
import type { Services } from '../../services.js';
import type { Deliveries, Routes } from './delivery.js';
import { planCheckPr } from '../github.js';

export function checkRunRoutes({ bot }: Services): Routes {
  return {
    'check_run.rerequested': (payload) => {
      const run = payload.check_run;
      if (typeof run?.name !== 'string' || !Array.isArray(run.pull_requests)) return { malformed: 'check_run' };
      if (!run.name.startsWith('berth')) return undefined;
      // GitHub leaves pull_requests empty when the head is in a fork: berth's plan checks name their PR in external_id.
      const pr: number | undefined = run.pull_requests[0]?.number ?? planCheckPr(run.external_id);
      if (typeof pr !== 'number') return undefined;
      return {
        pr,
        run: async (gh, repo) => {
          const pull = await gh.getPull(repo, pr);
          const envName = run.name.startsWith('berth / ') ? run.name.slice('berth / '.length) : undefined;
          await bot.planPullRequest(gh, repo, pull, envName ? [envName] : undefined);
        },
      };
    },
  };
}

export function onCheckRun(app: Probot, d: Deliveries): void {
  app.on('check_run.rerequested', async (context) => {
    await d.handle(context as unknown as Context, 'check_run.rerequested');
  });
}
