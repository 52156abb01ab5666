// check_run.rerequested on a berth check: plan the PR again (one environment for `berth / <env>`).
// check_suite.rerequested ("Re-run all checks" on berth's suite): plan again every environment of
// every open PR whose head is the suite's commit.
import type { Context, Probot } from 'probot';
import type { Services } from '../../services.js';
import type { Deliveries, Payload, Routes } from './delivery.js';
import { planCheckPr, repoName } from '../github.js';

/** A check run or suite of another GitHub App (the payload names its app): not berth's to re-run. */
function otherApp(appId: number | undefined, owner: Payload | undefined): boolean {
  return appId !== undefined && typeof owner?.app?.id === 'number' && owner.app.id !== appId;
}

export function checkRunRoutes({ bot, store, appId, log }: Services): Routes {
  return {
    'check_run.rerequested': (payload) => {
      const run = payload.check_run;
      if (typeof run?.name !== 'string' || !Array.isArray(run.pull_requests)) return { malformed: 'check_run' };
      if (!run.name.startsWith('berth') || otherApp(appId, run)) return undefined;
      // GitHub leaves pull_requests empty when the head is in a fork: berth's plan checks name their PR in external_id.
      const pr: number | undefined = run.pull_requests[0]?.number ?? planCheckPr(run.external_id);
      if (typeof pr !== 'number') return undefined;
      return {
        pr,
        run: async (gh, repo) => {
          const pull = await gh.getPull(repo, pr);
          // A closed PR's checks stay as they were: nothing of it can be applied any more.
          if (pull.state !== 'open') return void log.info({ repo: repoName(repo), pr }, 'check re-run on a closed PR: not planned');
          const envName = run.name.startsWith('berth / ') ? run.name.slice('berth / '.length) : undefined;
          await bot.planPullRequest(gh, repo, pull, envName ? [envName] : undefined);
        },
      };
    },
    'check_suite.rerequested': (payload) => {
      const suite = payload.check_suite;
      if (typeof suite?.head_sha !== 'string' || !/^[0-9a-f]{40}$/.test(suite.head_sha) || !Array.isArray(suite.pull_requests)) return { malformed: 'check_suite' };
      if (otherApp(appId, suite)) return undefined;
      const sha: string = suite.head_sha;
      // GitHub lists the suite's PRs only when their head is in this repository: a fork PR's is found by the
      // heads berth recorded (pull_request events), then confirmed on GitHub (open, head still this commit).
      const listed = [...new Set<number>(suite.pull_requests.map((p: Payload) => p?.number).filter((n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n > 0))];
      return {
        // One PR: its queue (after its other events); several or unknown: the repository's.
        pr: listed.length === 1 ? listed[0] : undefined,
        run: async (gh, repo) => {
          const prs = listed.length ? listed : await store.pullsWithHead(repoName(repo), sha);
          for (const number of prs) {
            const pull = await gh.getPull(repo, number);
            if (pull.state !== 'open' || pull.headSha !== sha) {
              log.info({ repo: repoName(repo), pr: number, sha }, 'check suite re-run: the PR is closed or its head moved on; not planned');
              continue;
            }
            await bot.planPullRequest(gh, repo, pull);
          }
        },
      };
    },
  };
}

export function onCheckRun(app: Probot, d: Deliveries): void {
  app.on('check_run.rerequested', async (context) => {
    await d.handle(context as unknown as Context, 'check_run.rerequested');
  });
  app.on('check_suite.rerequested', async (context) => {
    await d.handle(context as unknown as Context, 'check_suite.rerequested');
  });
}
