// Issue 10, item 14: a project on a target belongs to one repository. Two
// repositories declaring the same `project` on one target no longer plan and
// apply against each other's containers: the first apply records the owner,
// the second repository gets a config error naming the first (at plan and at
// apply), every managed object carries the repository label and observe
// filters by it. Through the app, two repositories, one target.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { observe } from '../../src/docker/observe.js';
import { LABEL } from '../../src/model/model.js';
import type { App } from '../chaos/app-harness.js';
import { docker, sha, startApp } from '../chaos/app-harness.js';
import { commentOnPullEvent, pullRequestEvent } from '../helpers/fake-github.js';
import { describeDocker } from '../helpers/env.js';

const PROJECT = 't-sec-14';
const OWNER = 'acme/sec14-owner';
const OTHER = 'evil/sec14-other';

const config = ['project: t-sec-14', 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', ''].join('\n');
const compose = (tag: string) => ['services:', '  web:', `    image: berth-test/app:${tag}`, ''].join('\n');

describeDocker('item 14: projects scoped per repository (two repositories, one target, through the app)', () => {
  let app: App;
  beforeAll(async () => {
    app = await startApp({ repo: OWNER, project: PROJECT });
    app.fake.setRepo(OTHER, { defaultBranch: 'main' });
    app.fake.setPermission(OTHER, 'mallory', 'write');
    for (const repo of [OWNER, OTHER]) app.fake.setFiles(repo, 'main', { '.github/berth.yml': config, 'compose.yml': compose('1') });
  }, 60_000);
  afterAll(async () => {
    await app?.close();
  });

  const containers = () => app.containers();

  it('the first repository applies; its containers, network carry its repository label', async () => {
    const head = sha('a');
    app.fake.setFiles(OWNER, head, { '.github/berth.yml': config, 'compose.yml': compose('1') });
    app.fake.setPull(OWNER, 1, { headSha: head, author: 'alice', mergeable: true });
    expect(await app.open(1, head)).toBe(200);
    await app.say(1, '/apply staging');
    await app.drain();
    expect((await app.ts.store.listApplies({})).map((a) => [a.repo, a.state])).toEqual([[OWNER, 'completed']]);
    const [web] = await containers();
    expect(web!.Labels[LABEL.repository]).toBe(OWNER);
    const nets = await docker.listNetworks({ filters: { label: [`${LABEL.project}=${PROJECT}`] } });
    expect(nets.length).toBeGreaterThan(0);
    for (const n of nets) expect(n.Labels?.[LABEL.repository]).toBe(OWNER);
    expect(await app.ts.store.projectOwner('local', PROJECT)).toBe(OWNER);
  }, 60_000);

  it('a second repository declaring the same project gets a config error naming the first, at plan and at apply; nothing of the first is touched', async () => {
    const before = (await containers()).map((c) => c.Id);
    const head = sha('b');
    app.fake.setFiles(OTHER, head, { '.github/berth.yml': config, 'compose.yml': compose('2') });
    app.fake.setPull(OTHER, 7, { headSha: head, author: 'mallory', mergeable: true });
    expect(await app.deliver('pull_request', pullRequestEvent({ repo: OTHER, pr: 7, action: 'opened', headSha: head }))).toBe(200);

    const refusal = `project ${PROJECT} on target local belongs to repository ${OWNER}`;
    const comments = () => app.fake.comments(OTHER, 7).filter((c) => c.user === 'berth[bot]');
    const planComment = comments()[0]!.body;
    expect(planComment).toContain(refusal);
    expect(planComment).toContain('.github/berth.yml, line 1');
    const check = app.fake.checkRuns(OTHER, head).filter((c) => c.name === 'berth / staging').at(-1)!;
    expect(check.conclusion).toBe('failure');
    expect(check.summary).toContain(refusal);
    // The plan did not read the first repository's containers as its own.
    expect(planComment).not.toContain('image changed');

    const id = app.fake.addComment(OTHER, 7, '/apply staging', { user: 'mallory' }).id;
    expect(await app.deliver('issue_comment', commentOnPullEvent({ repo: OTHER, pr: 7, comment: { id, body: '/apply staging', user: 'mallory' } }))).toBe(200);
    await app.drain();
    expect(comments().at(-1)!.body).toContain(refusal);
    expect((await app.ts.store.listApplies({ repo: OTHER })).length).toBe(0);
    expect(await app.ts.store.projectOwner('local', PROJECT)).toBe(OWNER);
    expect((await containers()).map((c) => c.Id)).toEqual(before);
  }, 60_000);

  it("observe filters by the repository label: another repository never sees the owner's containers", async () => {
    const mine = await observe(docker, PROJECT, 'staging', { repository: OWNER });
    expect(mine.observed.containers.map((c) => c.service)).toEqual(['web']);
    const theirs = await observe(docker, PROJECT, 'staging', { repository: OTHER });
    expect(theirs.observed.containers).toEqual([]);
    expect(theirs.observed.networks).toEqual([]);
  });
});
