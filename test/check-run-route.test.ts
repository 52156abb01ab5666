// check_run.rerequested ("Re-run" on a berth check) plans the PR again. GitHub
// leaves `check_run.pull_requests` empty when the PR's head is in a fork (or the
// fork is gone), so berth's plan check runs carry the PR in `external_id`.
import { expect, it } from 'vitest';
import { checkRunRoutes } from '../src/github/webhooks/check-run.js';
import type { Services } from '../src/services.js';

const routes = checkRunRoutes({ bot: {} } as unknown as Services);
const rerun = (check_run: Record<string, unknown>) => routes['check_run.rerequested']!({ action: 'rerequested', check_run, repository: { full_name: 'acme/shop' }, installation: { id: 1 } });

it('a rerun of a plan check on a fork PR (no pull_requests) finds the PR through external_id', () => {
  expect(rerun({ name: 'berth / staging', pull_requests: [], external_id: 'berth-plan:pr:42' })).toMatchObject({ pr: 42 });
});

it('pull_requests, when GitHub sends them, decide', () => {
  expect(rerun({ name: 'berth / staging', pull_requests: [{ number: 7 }], external_id: 'berth-plan:pr:42' })).toMatchObject({ pr: 7 });
});

it('other external ids and other apps checks are not berth plan checks', () => {
  expect(rerun({ name: 'berth / staging', pull_requests: [], external_id: '3f1c…-apply-id' })).toBeUndefined();
  expect(rerun({ name: 'berth / staging', pull_requests: [], external_id: 'berth-plan:pr:0x1' })).toBeUndefined();
  expect(rerun({ name: 'randscape', pull_requests: [], external_id: 'berth-plan:pr:42' })).toBeUndefined();
  expect(rerun({ name: 'berth / staging', pull_requests: [] })).toBeUndefined();
});

it('a check run of another GitHub App (its app.id is not berth\'s) is not berth\'s to re-run, whatever its name', () => {
  const ours = checkRunRoutes({ bot: {}, appId: 77 } as unknown as Services)['check_run.rerequested']!;
  const run = (app: unknown) => ours({ action: 'rerequested', check_run: { name: 'berth / staging', pull_requests: [{ number: 7 }], app }, repository: { full_name: 'acme/shop' }, installation: { id: 1 } });
  expect(run({ id: 78, slug: 'berth-lookalike' })).toBeUndefined();
  expect(run({ id: 77, slug: 'berth' })).toMatchObject({ pr: 7 });
  // A payload without the app (a stand-in that leaves it out) is judged by the name, as before.
  expect(run(undefined)).toMatchObject({ pr: 7 });
});
