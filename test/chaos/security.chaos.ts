// The security promises of issue 10, tried repeatedly as chaos: the same
// /apply racing on two real replicas (MariaDB), applies whose recovery pass
// runs every second, approvals that must not count, and namespace joins and
// symlinked bind sources. test/security/ proves each promise once; this file
// repeats the racing and attack cases and records how many held, as rows of
// the chaos figures table. Every counted case passed its assertions.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { LABEL } from '../../src/model/model.js';
import type { Replica } from '../helpers/app-process.js';
import { appKeys, APP_ID, HoldingProxy, startReplica, until } from '../helpers/app-process.js';
import { berthYml } from '../helpers/berth-yml.js';
import { docker, removeProject } from '../helpers/docker.js';
import { describeDocker, describeMysql } from '../helpers/env.js';
import type { FakeGitHub } from '../helpers/fake-github.js';
import { commentOnPullEvent, nextGitHubSecond, pullRequestEvent, startFakeGitHub } from '../helpers/fake-github.js';
import { mysqlTestStore, sqliteTestStore } from '../helpers/stores.js';
import type { TestStore } from '../helpers/stores.js';
import type { App } from './app-harness.js';
import { recordFigure, sha, startApp } from './app-harness.js';

/** Environments of one compose file each on the local target (the rig's compose: nothing to run unless given). */
const environments = (project: string, envs: string[]) => berthYml(project, envs.map((name) => ({ name, compose: ['compose.yml'] })));

/** The fake GitHub behind a holding proxy, a store and `n` real berth processes on it. */
interface Rig {
  fake: FakeGitHub;
  proxy: HoldingProxy;
  ts: TestStore;
  replicas: Replica[];
  say(r: Replica, pr: number, body: string, user?: string): Promise<void>;
  close(): Promise<void>;
}

async function startRig(o: { repo: string; head: string; config: string; compose?: string; store: () => Promise<TestStore>; replicas: number; env: Record<string, string>; slowCheckRun: boolean }): Promise<Rig> {
  const fake = await startFakeGitHub({ appKey: appKeys().publicKey, appId: APP_ID, appSlug: 'berth' });
  fake.setRepo(o.repo, { defaultBranch: 'main' });
  const files = { '.github/berth.yml': o.config, 'compose.yml': o.compose ?? 'services: {}\n' };
  for (const ref of ['main', o.head]) fake.setFiles(o.repo, ref, files);
  fake.setPermission(o.repo, 'alice', 'write');
  fake.setPull(o.repo, 1, { headSha: o.head, author: 'alice', mergeable: true });
  const proxy = await new HoldingProxy(fake.url).start();
  // The apply's in-progress check run is slow to create: the apply stays stored-but-not-started
  // (lock held) for longer than a recovery interval and than the racing replica needs.
  if (o.slowCheckRun) proxy.delay(new RegExp(`^POST /repos/${o.repo}/check-runs .*"in_progress"`), 1500);
  const ts = await o.store();
  const replicas: Replica[] = [];
  for (let i = 0; i < o.replicas; i++) replicas.push(await startReplica({ databaseUrl: ts.url, githubUrl: proxy.url, env: o.env }));
  return {
    fake,
    proxy,
    ts,
    replicas,
    async say(r, pr, body, user = 'alice') {
      const c = fake.addComment(o.repo, pr, body, { user });
      expect(await r.deliver('issue_comment', commentOnPullEvent({ repo: o.repo, pr, comment: { id: c.id, body, user } }))).toBe(200);
    },
    async close() {
      for (const r of replicas) if (r.child.exitCode === null) r.child.kill('SIGTERM');
      await Promise.all(replicas.map((r) => r.exited));
      await proxy.close();
      await fake.close();
      await ts.dispose();
    },
  };
}

describeDocker('security chaos', () => {
  describeMysql('the same /apply on two replicas at once (MariaDB)', () => {
    const REPO = 'acme/chaos-sec-race';
    const PROJECT = 't-chaos-sec-race';
    const HEAD = sha('7');
    const ENVS = Array.from({ length: 5 }, (_, i) => `race${i}`);
    let rig: Rig;
    let tried = 0;
    let handled = 0;

    beforeAll(async () => {
      await removeProject(PROJECT);
      // One container per environment: a real apply (an empty one would answer "nothing to apply").
      const compose = ['services:', '  web:', '    image: berth-test/app:1', ''].join('\n');
      // No commit cache: each race holds both replicas on their read of the head's tree, which a replica that
      // already read it would answer from memory (src/github/commit-cache.ts).
      rig = await startRig({ repo: REPO, head: HEAD, config: environments(PROJECT, ENVS), compose, store: mysqlTestStore, replicas: 2, env: { BERTH_TEST_RECOVER: '0', BERTH_COMMIT_CACHE_BYTES: '0' }, slowCheckRun: true });
    }, 90_000);
    afterAll(async () => {
      recordFigure({ section: 'security: the same /apply on two replicas at once (MariaDB)', tried, handled });
      await rig?.close();
      await removeProject(PROJECT);
    });

    it(`${ENVS.length} races: exactly one apply and one refusal each`, async () => {
      const [a, b] = rig.replicas as [Replica, Replica];
      expect(await a.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'opened', headSha: HEAD }))).toBe(200);
      await a.idle();
      const replies = () => rig.fake.comments(REPO, 1).filter((c) => c.user.endsWith('[bot]') && !c.body.includes('## berth plan'));
      for (const env of ENVS) {
        tried++;
        // Both replicas are held after their in-flight check (listing the head's files), then let go together.
        const hold = rig.proxy.hold(new RegExp(`^GET /repos/${REPO}/git/trees/${HEAD}`));
        await nextGitHubSecond();
        await rig.say(a, 1, `/apply ${env}`);
        await rig.say(b, 1, `/apply ${env}`);
        await until(`both replicas past their in-flight check (${env})`, () => hold.held === 2);
        hold.release();
        await Promise.all([a.idle(), b.idle()]);
        expect(await rig.ts.store.listApplies({ repo: REPO, environment: env })).toHaveLength(1);
        await until(`the refusal (${env})`, () => replies().some((c) => c.body.includes(`\`${env}\``) && /already in progress|is locked/.test(c.body)));
        await until(`the apply to end (${env})`, async () => (await rig.ts.store.listApplies({ repo: REPO, environment: env }))[0]!.state === 'completed', 60_000);
        await Promise.all([a.idle(), b.idle()]);
        // One "Applying" reply: the loser never started a second one.
        expect(replies().filter((c) => c.body.includes(`Applying \`${env}\``))).toHaveLength(1);
        handled++;
      }
      expect(await rig.ts.store.listApplies({ repo: REPO })).toHaveLength(ENVS.length);
    }, 120_000);
  });

  describe('applies reported exactly once under a 1 s recovery pass', () => {
    const REPO = 'acme/chaos-sec-once';
    const PROJECT = 't-chaos-sec-once';
    const HEAD = sha('6');
    const ENVS = Array.from({ length: 10 }, (_, i) => `once${i}`);
    let rig: Rig;
    let tried = 0;
    let handled = 0;

    beforeAll(async () => {
      await removeProject(PROJECT);
      rig = await startRig({ repo: REPO, head: HEAD, config: environments(PROJECT, ENVS), store: sqliteTestStore, replicas: 1, env: { BERTH_RECOVER_INTERVAL_MS: '1000' }, slowCheckRun: true });
    }, 60_000);
    afterAll(async () => {
      recordFigure({ section: 'security: applies reported exactly once under a 1 s recovery pass', tried, handled });
      await rig?.close();
      await removeProject(PROJECT);
    });

    it(`${ENVS.length} applies: one final check-run update and one outcome comment each`, async () => {
      const app = rig.replicas[0]!;
      const { fake, ts } = rig;
      expect(await app.deliver('pull_request', pullRequestEvent({ repo: REPO, pr: 1, action: 'opened', headSha: HEAD }))).toBe(200);
      await app.idle();
      await nextGitHubSecond();
      for (const env of ENVS) await rig.say(app, 1, `/apply ${env}`);
      await app.idle();
      tried = ENVS.length;
      const ended = async () => (await ts.store.listApplies({ repo: REPO })).filter((x) => x.state === 'completed');
      await until('every apply to complete', async () => (await ended()).length === ENVS.length, 90_000);
      const applies = await ended();
      const outcomes = (env: string) => fake.comments(REPO, 1).filter((c) => c.user.endsWith('[bot]') && c.body.includes(`Apply to \`${env}\``));
      const finals = (applyId: string) => fake.checkRuns(REPO, HEAD).filter((r) => r.externalId === applyId).flatMap((r) => r.writes.slice(1).filter((w) => w.status === 'completed'));
      await until('every outcome to be reported', () => applies.every((x) => outcomes(x.environment).length >= 1 && finals(x.id).length >= 1), 60_000);
      await new Promise((r) => setTimeout(r, 2500)); // two more recovery passes: a late duplicate would show now
      await app.idle();
      const counts = applies.map((x) => ({ env: x.environment, checkRuns: fake.checkRuns(REPO, HEAD).filter((r) => r.externalId === x.id).length, finalUpdates: finals(x.id).length, outcomeComments: outcomes(x.environment).length }));
      handled = counts.filter((c) => c.checkRuns === 1 && c.finalUpdates === 1 && c.outcomeComments === 1).length;
      expect(counts).toEqual(applies.map((x) => ({ env: x.environment, checkRuns: 1, finalUpdates: 1, outcomeComments: 1 })));
    }, 120_000);
  });

  describe('approvals that must not count (no access, author, older head)', () => {
    const REPO = 'acme/chaos-sec-approvals';
    const PROJECT = 't-chaos-sec-approvals';
    const PRS = [1, 2, 3];
    const CONFIG = berthYml(PROJECT, [{ name: 'staging', compose: ['compose.yml'], extra: ['approvals: 1'] }]);
    const COMPOSE = ['services:', '  web:', '    image: berth-test/app:1', ''].join('\n');
    const headOf = (pr: number, push: number) => createHash('sha1').update(`chaos-sec-approvals:${pr}:${push}`).digest('hex');
    let app: App;
    let tried = 0;
    let handled = 0;

    beforeAll(async () => {
      app = await startApp({ repo: REPO, project: PROJECT, users: { alice: 'write', bob: 'write', mallory: 'read' }, logLevel: 'warn' });
      app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE });
    }, 60_000);
    afterAll(async () => {
      recordFigure({ section: 'security: approvals that must not count (no access, author, older head)', tried, handled });
      await app?.close();
    });

    const refusals = (pr: number) => app.berthComments(pr).filter((c) => c.body.includes('Apply requirement not met'));
    async function refused(pr: number) {
      tried++;
      const before = refusals(pr).length;
      await app.say(pr, '/apply staging');
      expect(refusals(pr)).toHaveLength(before + 1);
      expect(app.lastReply(pr)).toContain('has 0');
      expect(await app.ts.store.listApplies({ repo: REPO })).toEqual([]);
      handled++;
    }

    for (const pr of PRS) {
      it(`PR ${pr}: a reader's, the author's and an older head's approvals are refused`, async () => {
        const [first, second] = [headOf(pr, 1), headOf(pr, 2)];
        for (const h of [first, second]) app.fake.setFiles(REPO, h, { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE });
        app.fake.setPull(REPO, pr, { headSha: first, author: 'alice' });
        expect(await app.open(pr, first)).toBe(200);
        app.fake.addReview(REPO, pr, { user: 'mallory', state: 'APPROVED' });
        await refused(pr);
        app.fake.addReview(REPO, pr, { user: 'alice', state: 'APPROVED' });
        await refused(pr);
        app.fake.addReview(REPO, pr, { user: 'bob', state: 'APPROVED' }); // of the first head
        app.fake.setPull(REPO, pr, { headSha: second });
        expect(await app.open(pr, second, 'synchronize')).toBe(200);
        await refused(pr);
      }, 60_000);
    }
  });

  describe('namespace joins and symlinked binds', () => {
    const PROJECT = 't-chaos-sec-binds';
    const HOSTILE = 'fixtures/hostile';
    const JOINS = (JSON.parse(readFileSync(`${HOSTILE}/index.json`, 'utf8')).cases as { id: string; file?: string; mentions?: string[] }[]).filter((c) => c.id.startsWith('join-') && c.file);
    let dir: string;
    let repo: string;
    let db: string;
    let allowed: string;
    let tried = 0;
    let handled = 0;

    beforeAll(async () => {
      await removeProject(PROJECT);
      dir = mkdtempSync(join(tmpdir(), 't-chaos-sec-binds-'));
      repo = join(dir, 'repo');
      mkdirSync(join(repo, '.github'), { recursive: true });
      db = `sqlite:${join(dir, 'berth.sqlite')}`;
      allowed = mkdtempSync('/tmp/t-chaos-sec-allowed-');
      mkdirSync(join(allowed, 'sub'));
      // What an earlier container could have planted in a writable allow-listed directory.
      symlinkSync('/', join(allowed, 'root'));
      symlinkSync('../../..', join(allowed, 'sub', 'up'));
      symlinkSync('/var/run/docker.sock', join(allowed, 'engine'));
      symlinkSync('/etc', join(allowed, 'etc'));
      symlinkSync(join(allowed, 'root'), join(allowed, 'chain'));
      symlinkSync('/var/run', join(allowed, 'run'));
    });
    afterAll(async () => {
      recordFigure({ section: 'security: namespace joins and symlinked binds', tried, handled });
      await removeProject(PROJECT);
      if (dir) rmSync(dir, { recursive: true, force: true });
      if (allowed) rmSync(allowed, { recursive: true, force: true });
    });

    async function cli(compose: string, ...args: string[]) {
      writeFileSync(join(repo, '.github/berth.yml'), berthYml(PROJECT, [{ name: 'staging', compose: ['compose.yml'] }], [`bind_mount_allowlist: [${allowed}]`]));
      writeFileSync(join(repo, 'compose.yml'), compose);
      let said = '';
      const code = await main([args[0]!, '--repo', repo, '--env', 'staging', ...args.slice(1)], { out: (s) => void (said += `${s}\n`), err: (s) => void (said += `${s}\n`) });
      return { code, said };
    }
    const created = () => docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`] } });

    it('hostile namespace joins are refused at plan and at apply, each naming file, line and problem', async () => {
      expect(JOINS.length).toBeGreaterThanOrEqual(4);
      for (const c of JOINS) {
        tried++;
        const text = readFileSync(`${HOSTILE}/${c.file}`, 'utf8');
        for (const verb of [['plan'], ['apply', '--yes', '--database', db]]) {
          const r = await cli(text, ...verb);
          expect(r.code, `${c.id} ${verb[0]}:\n${r.said}`).toBe(1);
          // The CLI locates an error as `file:line:` where a comment says "line N".
          for (const m of c.mentions ?? []) expect(r.said, `${c.id} ${verb[0]}`).toContain(m.replace(/^line (\d+)$/, 'compose.yml:$1:'));
        }
        expect(await created()).toEqual([]);
        handled++;
      }
    }, 60_000);

    it('bind sources whose links leave the allowlist or reach the Docker socket are refused on the target, nothing created', async () => {
      const hostileFixture = readFileSync(`${HOSTILE}/symlink-bind-escape.compose.yml`, 'utf8').replaceAll('/tmp/t-hostile-allowed', allowed);
      const mount = (source: string) => ['services:', '  web:', '    image: berth-test/app:1', '    volumes:', `      - ${source}:/host`, ''].join('\n');
      const onTarget = (resolved: string) => [`resolves to ${resolved} on the target`, 'nothing was created'];
      const cases: [string, string, string[]][] = [
        ['fixture symlink-bind-escape', hostileFixture, onTarget('/')],
        ['link to /', mount(`${allowed}/root`), onTarget('/')],
        ['path through a link to /', mount(`${allowed}/root/var/run`), onTarget('/')],
        ['relative link climbing out', mount(`${allowed}/sub/up/etc`), onTarget('/')],
        ['link to /etc', mount(`${allowed}/etc`), onTarget('/etc')],
        ['link to a link to /', mount(`${allowed}/chain`), onTarget('/')],
        ['link to the Docker socket', mount(`${allowed}/engine`), onTarget('/var/run/docker.sock')],
        // Named like the socket: the policy refuses it before any apply.
        ['socket through a linked directory', mount(`${allowed}/run/docker.sock`), ['compose.yml:5:', 'mounting the Docker socket', 'policy.allow_docker_socket']],
      ];
      for (const [what, compose, needles] of cases) {
        tried++;
        const r = await cli(compose, 'apply', '--yes', '--database', db);
        expect(r.code, `${what}:\n${r.said}`).toBe(1);
        for (const n of needles) expect(r.said, what).toContain(n);
        expect(await created(), what).toEqual([]);
        handled++;
      }
    }, 90_000);
  });
});
