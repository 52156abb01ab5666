// Staging-first covers image digests, through the PR commands (issue 12): the
// whole app (signed webhooks into Probot, the fake GitHub that checks every
// request against GitHub's REST description, the real engine and the real
// TLS + htpasswd registry). A tag re-pushed after `/apply staging` moves the
// bits production would get, so `/apply production` is refused until staging
// ran those bits; both environments then run one digest, the one the PR showed.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { BerthServices } from '../src/index.js';
import { LABEL } from '../src/model/model.js';
import { Targets } from '../src/docker/targets.js';
import { docker, removeProject } from './helpers/docker.js';
import { CI_REGISTRY, CI_SERVICES_DIR, describeRegistry } from './helpers/env.js';
import type { FakeGitHub } from './helpers/fake-github.js';
import { commentOnPullEvent, nextGitHubSecond, pullRequestEvent, startFakeGitHub } from './helpers/fake-github.js';
import { appKeys, serveBerth, type ServedApp } from './helpers/app-server.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

const REPO = 'acme/pinned';
const SECRET = 'pin-e2e-secret';
const PROJECT = `t-pine2e-${process.pid}`;
const APP_ID = 4343;
const HEAD = 'e'.repeat(40);

describeRegistry('staging-first covers image digests, through /apply', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-docker-config-'));
  const repo = `${CI_REGISTRY}/t-pine2e-${process.pid}/app`;
  const ref = `${repo}:main`;
  const cli = (...args: string[]) => execFileSync('docker', ['--config', dir, ...args], { stdio: ['pipe', 'pipe', 'pipe'], input: args[0] === 'login' ? readFileSync(`${CI_SERVICES_DIR}/registry/password`) : undefined });
  /** Pushes `source` under the tag (moving it) and returns the registry's digest. */
  const push = (source: string) => {
    cli('tag', source, ref);
    const out = cli('push', ref).toString();
    cli('rmi', ref);
    return /digest: (sha256:[0-9a-f]{64})/.exec(out)![1]!;
  };
  const files = {
    '.github/berth.yml': [
      `project: ${PROJECT}`,
      'environments:',
      '  - name: staging',
      '    compose: [compose.yml]',
      '    targets: [local]',
      '  - name: production',
      '    compose: [compose.yml]',
      '    targets: [local]',
      '    requires: [staging]',
      // the local test registry is on loopback: listed, or berth refuses to query it
      'policy:',
      `  allow_registries: ["${CI_REGISTRY}"]`,
      '',
    ].join('\n'),
    'compose.yml': `services:\n  web:\n    image: ${ref}\n`,
  };

  let fake: FakeGitHub;
  let ts: TestStore;
  let app: ServedApp;
  let services!: BerthServices;
  const cleanup = async () => {
    await removeProject(PROJECT);
    for (const i of await docker.listImages({ filters: { reference: [repo] } }))
      for (const name of [...(i.RepoTags ?? []), ...(i.RepoDigests ?? [])].filter((n) => n.startsWith(`${repo}:`) || n.startsWith(`${repo}@`))) await docker.getImage(name).remove({ noprune: true }).catch(() => {});
  };

  beforeAll(async () => {
    cli('login', CI_REGISTRY, '-u', 'berth', '--password-stdin');
    await cleanup();
    const { privateKey, publicKey } = appKeys();
    fake = await startFakeGitHub({ appKey: publicKey, appId: APP_ID, appSlug: 'berth' });
    fake.setRepo(REPO, { defaultBranch: 'main' });
    fake.setFiles(REPO, 'main', files);
    fake.setFiles(REPO, HEAD, files);
    fake.setPull(REPO, 1, { headSha: HEAD, author: 'alice', mergeable: true });
    fake.setPermission(REPO, 'alice', 'write');
    ts = await sqliteTestStore();
    // Only server-side settings: the registry login is the server's config.json.
    const targets = new Targets(new Map([['local', 'unix:///var/run/docker.sock']]), { BERTH_DOCKER_CONFIG: join(dir, 'config.json') });
    app = await serveBerth({ githubUrl: fake.url, appId: APP_ID, privateKey, secret: SECRET, options: { store: ts.store, targets, recover: false, drift: false } });
    services = app.services;
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await fake?.close();
    await ts?.dispose();
    await cleanup();
  });

  async function deliver(event: string, payload: unknown): Promise<void> {
    expect(await app.post(event, payload)).toBe(200);
    await services.idle();
  }
  async function say(body: string): Promise<string> {
    await nextGitHubSecond();
    const c = fake.addComment(REPO, 1, body, { user: 'alice' });
    await deliver('issue_comment', commentOnPullEvent({ repo: REPO, pr: 1, comment: { id: c.id, body, user: 'alice', createdAt: c.createdAt, updatedAt: c.updatedAt } }));
    await services.runner.drain(60_000);
    return fake.comments(REPO, 1).filter((x) => x.user === 'berth[bot]').at(-1)!.body;
  }
  const planComment = () => fake.comments(REPO, 1).filter((x) => x.user === 'berth[bot]')[0]!.body;
  const runningImage = async (env: string) => (await docker.listContainers({ filters: { label: [`${LABEL.project}=${PROJECT}`, `${LABEL.environment}=${env}`] } })).map((c) => c.Image);

  it('a re-pushed tag after /apply staging: /apply production is refused, staging re-planned and re-applied with the new digest, production re-planned, then it runs the same digest; /rollback staging runs the old digest again', async () => {
    const first = push('berth-test/app:1');
    await deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'opened', headSha: HEAD }));
    expect(planComment()).toContain(first);

    expect(await say('/apply staging')).toMatch(/✅ Apply to `staging` completed/);
    expect(await runningImage('staging')).toEqual([`${ref}@${first}`]);

    // The tag moves in the registry; the compose file at the PR head does not change.
    const second = push('berth-test/app:2');
    expect(second).not.toBe(first);
    const refused = await say('/apply production');
    expect(refused).toContain('### 🚫 Staging first');
    expect(refused).toContain('has not applied its `staging` state there');
    expect(await ts.store.listApplies({ environment: 'production' })).toEqual([]);

    // Staging's shown plan is out of date (the digest moved): berth refuses it, re-plans, and the new plan shows the new digest.
    const stale = await say('/apply staging');
    expect(stale).toContain('### 🚫 The plan is out of date');
    expect(planComment()).toContain(second);
    expect(planComment()).toContain('image digest changed');
    expect(await say('/apply staging')).toMatch(/✅ Apply to `staging` completed/);
    expect(await runningImage('staging')).toEqual([`${ref}@${second}`]);

    // Production's shown plan still had the old digest: re-planned first (what runs is what the PR showed), then applied.
    expect(await say('/apply production')).toContain('### 🚫 The plan is out of date');
    expect(await say('/apply production')).toMatch(/✅ Apply to `production` completed/);
    expect(await runningImage('production')).toEqual([`${ref}@${second}`]);
    const applied = await ts.store.listApplies({ environment: 'production' });
    expect(applied.map((a) => a.state)).toEqual(['completed']);

    // /rollback staging goes back to the bits staging ran before, though the tag now names the new ones.
    const rollback = await say('/rollback staging');
    expect(rollback).toMatch(/✅ Rollback of `staging` completed|✅ .*`staging`.* completed/);
    expect(await runningImage('staging')).toEqual([`${ref}@${first}`]);
  }, 180_000);
});
