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
