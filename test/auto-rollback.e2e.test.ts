// failure_action: rollback returns the whole service (issue 13), end to end:
// signed webhooks into Probot, the fake GitHub that checks every request
// against GitHub's REST description, a real store and the real engine. A
// 3-replica service rolls out one replica at a time; the new version passes
// its gate on the first replica and fails on the second (its healthcheck only
// passes in the first container that runs it: a claim in a shared named
// volume). The failing replica is put back in place, the third is never
// started, the apply fails with a report that says what serves which
// version, and berth rolls the updated first replica back by itself in a
// follow-up apply: every replica ends on the old image.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LABEL } from '../src/model/model.js';
import { Targets } from '../src/docker/targets.js';
import { parsePayload } from '../src/apply/executor.js';
import { docker, removeProject } from './helpers/docker.js';
import { describeDocker } from './helpers/env.js';
import type { FakeCheckRun } from './helpers/fake-github.js';
import { commentOnPullEvent, nextGitHubSecond, pullRequestEvent } from './helpers/fake-github.js';
import { servedForBlock } from './helpers/app-server.js';
import { sqliteTestStore } from './helpers/stores.js';
import { berthYml } from './helpers/berth-yml.js';

const REPO = 'acme/rolling';
const SECRET = 'rollback-e2e-secret';
const PROJECT = `t-autorb-${process.pid}`;
const APP_ID = 4444;
const HEAD1 = '1'.repeat(40);
const HEAD2 = '2'.repeat(40);

const rollout = ['    deploy:', '      replicas: 3', '      update_config:', '        order: start-first', '        parallelism: 1', '        failure_action: rollback'];
/** v1: three replicas of app:1, healthy once /VERSION exists. */
const V1 = ['services:', '  web:', '    image: berth-test/app:1', ...rollout, '    healthcheck:', '      test: ["CMD-SHELL", "test -f /VERSION"]', '      interval: 1s', '      timeout: 5s', '      retries: 3', ''].join('\n');
/**
 * v2: app:2 whose healthcheck passes only in the first container that runs it (it claims /claim/first in a
 * volume every replica shares): the first replica passes its gate, the second fails it.
 */
const V2 = [
  'services:',
  '  web:',
  '    image: berth-test/app:2',
  ...rollout,
  '    volumes: ["claim:/claim"]',
  '    healthcheck:',
  '      test: ["CMD-SHELL", "mkdir /claim/first 2>/dev/null && hostname > /claim/first/who; hostname | cmp -s - /claim/first/who"]',
  '      interval: 1s',
  '      timeout: 5s',
  '      retries: 3',
  'volumes:',
  '  claim: {}',
  '',
].join('\n');
const CONFIG = berthYml(PROJECT, [{ name: 'prod', compose: ['compose.yml'] }]);

describeDocker('failure_action: rollback returns the whole service, through the app', () => {
  const cleanup = () => removeProject(PROJECT);
  beforeAll(cleanup);
  // Registered before the block's app, so it runs after the app is closed (vitest runs after-hooks as a stack).
  afterAll(async () => {
    await cleanup();
    await docker.getVolume(`${PROJECT}-prod_claim`).remove().catch(() => {});
  });
  const block = servedForBlock({
    appId: APP_ID,
    secret: SECRET,
    store: sqliteTestStore,
    options: { targets: Targets.single('unix:///var/run/docker.sock'), recover: false, drift: false, progressIntervalMs: 200 },
    setUp: (gh) => {
      gh.setRepo(REPO, { defaultBranch: 'main' });
      gh.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': V1 });
      gh.setFiles(REPO, HEAD1, { '.github/berth.yml': CONFIG, 'compose.yml': V1 });
      gh.setFiles(REPO, HEAD2, { '.github/berth.yml': CONFIG, 'compose.yml': V2 });
      gh.setPull(REPO, 1, { headSha: HEAD1, author: 'alice', mergeable: true });
      gh.setPermission(REPO, 'alice', 'write');
    },
  });
  const fake = () => block.fake;
  const services = () => block.services;
  const ts = () => block.ts;

  async function deliver(event: string, payload: unknown): Promise<void> {
    expect(await block.app.post(event, payload)).toBe(200);
    await services().idle();
  }
  async function say(body: string): Promise<void> {
    await nextGitHubSecond();
    const c = fake().addComment(REPO, 1, body, { user: 'alice' });
    await deliver('issue_comment', commentOnPullEvent({ repo: REPO, pr: 1, comment: { id: c.id, body, user: 'alice', createdAt: c.createdAt, updatedAt: c.updatedAt } }));
  }
  /** Until no apply runs: a follow-up rollback starts while the failed apply is reported, so drain until quiet. */
  async function settled(): Promise<void> {
    while (services().runner.inFlight().length) await services().runner.drain(120_000);
  }
  const berthComments = () => fake().comments(REPO, 1).filter((c) => c.user === 'berth[bot]').map((c) => c.body);
  const checks = (head: string): FakeCheckRun[] => fake().checkRuns(REPO, head).filter((c) => c.name === 'berth / prod');
  async function replicas(): Promise<{ name: string; image: string; running: boolean }[]> {
    const cs = await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`] } });
    return cs.map((c) => ({ name: c.Names[0]!.slice(1), image: c.Image, running: c.State === 'running' })).sort((a, b) => (a.name < b.name ? -1 : 1));
  }

  it('the new version passes its gate on replica 1 and fails on replica 2: the apply fails saying so, and berth rolls replica 1 back by itself', async () => {
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'opened', headSha: HEAD1 }));
    await say('/apply prod');
    await settled();
    const v1 = (await ts().store.listApplies({ repo: REPO, environment: 'prod' }))[0]!;
    expect(v1.state).toBe('completed');
    const name = (r: number) => `${PROJECT}-prod-web-${r}`;
    expect(await replicas()).toEqual([1, 2, 3].map((r) => ({ name: name(r), image: 'docker.io/berth-test/app:1', running: true })));

    // The PR moves to v2; berth re-plans it, and /apply rolls it out.
    fake().setPull(REPO, 1, { headSha: HEAD2 });
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'synchronize', headSha: HEAD2 }));
    await say('/apply prod');
    await settled();

    const [rollback, failed] = await ts().store.listApplies({ repo: REPO, environment: 'prod' });
    // The apply failed: replica 1 passed, replica 2 failed its gate and was put back, replica 3 never started.
    expect(failed!.kind).toBe('apply');
    expect(failed!.state).toBe('failed');
    const tasks = await ts().store.listTasksForApply(failed!.id);
    const of = (resource: string) => new Set(tasks.filter((t) => t.resource === resource).map((t) => t.state));
    expect(of('service:web:1')).toEqual(new Set(['succeeded']));
    expect(of('service:web:3')).toEqual(new Set(['skipped']));
    const gate = tasks.find((t) => t.kind === 'BatchGate' && t.state === 'failed')!;
    expect(gate.error).toContain('rollout of web rolled back: 1 of 3 replicas failed their gate after batch 2/3');
    expect(gate.error).toContain('replica 1 already runs the new version');

    // The follow-up: a rollback apply started by berth, linked to the failed one, touching web alone, completed.
    expect(rollback!.kind).toBe('rollback');
    expect(rollback!.actor).toBe('berth');
    // What each of its tasks ended as, should it not complete: a failed run then says why.
    const rbEnded = (await ts().store.listTasksForApply(rollback!.id)).map((t) => `${t.kind} ${t.resource}: ${t.state}${t.error ? ` (${t.error})` : ''}`);
    expect(rollback!.state, rbEnded.join('\n')).toBe('completed');
    expect(rollback!.pr).toBe(1);
    expect(rollback!.headSha).toBe(HEAD1);
    const payload = parsePayload(rollback!.desiredJson);
    expect(payload.rollbackOf).toBe(failed!.id);
    expect(payload.services).toEqual(['web']);
    const rbTasks = await ts().store.listTasksForApply(rollback!.id);
    expect(rbTasks.length).toBeGreaterThan(0);
    // Only the replica that ran the new version is replaced (rollback_config falls back to update_config: start-first).
    expect(new Set(rbTasks.map((t) => t.resource).filter((r) => r.startsWith('service:')))).toEqual(new Set(['service:web:1']));
    expect(rbTasks.every((t) => t.state === 'succeeded')).toBe(true);

    // Every replica serves the old version again.
    expect(await replicas()).toEqual([1, 2, 3].map((r) => ({ name: name(r), image: 'docker.io/berth-test/app:1', running: true })));

    // The PR thread: the failed apply's outcome says what serves which version and names the rollback, then the rollback's start and end.
    const comments = berthComments();
    const outcome = comments.find((c) => c.includes('❌ Apply to `prod` failed'))!;
    expect(outcome).toContain('**Rollout stopped** (`failure_action: rollback`)');
    expect(outcome).toContain('- `web`: replica 2 failed its gate and was rolled back in place; replica 3 was not started: they serve the old version (`docker.io/berth-test/app:1`). replica 1 had already passed its gate and runs the new version.');
    expect(outcome).toContain(`⏪ berth started rollback apply \`${rollback!.id}\` by itself to return \`web\` to the state of apply \`${v1.id}\` (#1 at \`1111111\`)`);
    const start = comments.findIndex((c) => c.includes(`⏪ Rolling back \`web\` on \`prod\` by itself`));
    expect(start).toBeGreaterThan(comments.indexOf(outcome));
    expect(comments[start]).toContain(`the rollout of apply \`${failed!.id}\` stopped`);
    expect(comments.at(-1)).toContain('✅ Apply to `prod` completed');

    // The checks on the head: the failed apply's failure (with the same account), then the rollback's: not applied.
    const [failedCheck, rollbackCheck] = [checks(HEAD2).find((c) => c.externalId === failed!.id)!, checks(HEAD2).find((c) => c.externalId === rollback!.id)!];
    expect(failedCheck.conclusion).toBe('failure');
    expect(failedCheck.summary).toContain(`⏪ berth started rollback apply \`${rollback!.id}\``);
    expect(rollbackCheck.conclusion).toBe('action_required');
    expect(rollbackCheck.title).toBe('Rolled back prod: this head is not applied');
    expect(checks(HEAD2).at(-1)!.externalId).toBe(rollback!.id);

    // GitHub deployments: the failed apply's ends failure; the rollback is one of its own, at the commit it returns to.
    const deployments = fake().deployments(REPO, 'prod');
    const failedDeployment = deployments.find((d) => (d.payload as { apply_id: string }).apply_id === failed!.id)!;
    expect(failedDeployment.statuses.at(-1)!.state).toBe('failure');
    const rollbackDeployment = deployments.at(-1)!;
    expect(rollbackDeployment.payload).toMatchObject({ apply_id: rollback!.id, kind: 'rollback', actor: 'berth', trigger: 'failure_action' });
    expect(rollbackDeployment.ref).toBe(HEAD1);
    expect(rollbackDeployment.statuses.at(-1)!.state).toBe('success');

    // The lock stays with the PR, free of applies.
    expect(await ts().store.getLock(REPO, 'prod')).toMatchObject({ pr: 1, applyId: null });
    expect(fake().violations).toEqual([]);
    expect(fake().unhandled).toEqual([]);
  }, 240_000);
});
