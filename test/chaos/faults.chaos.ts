// Faults, against the real dockerd, MariaDB and PostgreSQL: processes killed
// mid-apply, database connections killed mid-apply (on both servers), Docker
// refusing operations, GitHub failing its API calls, and a burst of webhooks.
// Each test asserts the end state, not merely that nothing crashed, and
// records its figures.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { planTargets, prepareApply } from '../../src/apply/prepare-apply.js';
import type { Observer } from '../../src/apply/prepare-apply.js';
import { loadCompose } from '../../src/compose/load.js';
import { DockerEngine } from '../../src/docker/docker-engine.js';
import { observe } from '../../src/docker/observe.js';
import { Executor } from '../../src/apply/executor.js';
import type { CheckRunUpdate, GitHubPort } from '../../src/github/github.js';
import { Lanes } from '../../src/apply/lanes.js';
import { LABEL } from '../../src/model/model.js';
import { ApplyRunner } from '../../src/apply/supervisor.js';
import { openStore } from '../../src/store/open.js';
import { TERMINAL_TASK_STATES } from '../../src/store/store.js';
import { crashStack } from '../helpers/crash-stack.js';
import { docker, removeProject, watchCreates } from '../helpers/docker.js';
import { MYSQL_URL, POSTGRES_URL } from '../helpers/env.js';
import { commentOnPullEvent, pullRequestEvent, webhookHeaders } from '../helpers/fake-github.js';
import { mysqlTestStore, postgresTestStore, sqliteTestStore } from '../helpers/stores.js';
import { until } from '../helpers/wait.js';
import type { TestStore } from '../helpers/stores.js';
import { recordFigure, SECRET, sha, startApp } from './app-harness.js';
import type { App } from './app-harness.js';

/** GitHub gives up on a webhook delivery that is not answered within 10 seconds. */
const GITHUB_DELIVERY_TIMEOUT_MS = 10_000;

const observer: Observer = async (_t, p, e) => (await observe(docker, p, e)).observed;
const silent = { info() {}, warn() {}, error() {} };

/** A GitHub port that only records what the runner reports (the outcome path the app runs after recovery). */
function recordingGitHub() {
  const checks = new Map<number, CheckRunUpdate[]>();
  const comments: string[] = [];
  const port = {
    async updateCheckRun(_r: unknown, id: number, u: CheckRunUpdate) {
      checks.set(id, [...(checks.get(id) ?? []), u]);
    },
    async createComment(_r: unknown, _pr: number, body: string) {
      comments.push(body);
      return comments.length;
    },
    async getPull() {
      return { state: 'open' };
    },
  } as unknown as GitHubPort;
  return { port, checks, comments };
}

// Seeded, so a failing kill point can be replayed.
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32);
}

/** A clean project on the engine and a fresh store for one describe block. */
function projectWithStore(project: string, open: () => Promise<TestStore>): () => TestStore {
  let ts: TestStore;
  beforeAll(async () => {
    await removeProject(project);
    ts = await open();
  });
  afterAll(async () => {
    await ts.dispose();
    await removeProject(project);
  });
  return () => ts;
}

describe('faults', () => {
  describe('SIGKILL at random points of 20 applies', () => {
    const PROJECT = 't-chaos-kill';
    const fixture = projectWithStore(PROJECT, sqliteTestStore);

    it('each is recovered to a terminal state: no duplicate or leaked container, no lock left on a dead apply, the check run concluded', async () => {
      const ts = fixture();
      const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 100_000);
      console.log(`[chaos] SIGKILL seed ${seed} (CHAOS_SEED=${seed} replays it)`);
      const random = rng(seed);
      const runs = Number(process.env.CHAOS_KILLS ?? 20);
      let survived = 0;
      for (let i = 0; i < runs; i++) {
        const env = `k${i}`;
        const total = crashStack(PROJECT, env);
        const stepsBeforeKill = Math.floor(random() * 20); // of 22 steps
        const watch = await watchCreates(PROJECT);
        const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/apply-child.ts', ts.url, PROJECT, env], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        const exited = new Promise((r) => child.on('exit', r));
        let applyId: string | undefined;
        for (;;) {
          if (child.exitCode !== null) break;
          applyId ??= /apply (\S+)/.exec(out)?.[1];
          if (applyId) {
            if (!(await ts.store.getLock('acme/crash', env))) {
              // The app takes the lock and opens the check run before the apply starts.
              await ts.store.acquireLock('acme/crash', env, 'acme/crash#7', 7);
              await ts.store.setLockApply('acme/crash', env, applyId);
              await ts.store.setApplyCheckRun(applyId, 1000 + i);
            }
            const done = (await ts.store.listTasksForApply(applyId)).filter((t) => t.state === 'succeeded').length;
            if (done >= stepsBeforeKill) break;
          }
          await new Promise((r) => setTimeout(r, 3));
        }
        child.kill('SIGKILL');
        await exited;
        expect(applyId).toBeDefined();

        // A new process (here: a fresh executor and runner on the same files) recovers it once the dead one's lease expires.
        const store = await openStore(ts.url);
        const executor = new Executor({ store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 50 });
        const gh = recordingGitHub();
        const runner = new ApplyRunner({ store, executor: () => executor, github: async () => gh.port, log: silent });
        let results: { applyId: string; state: string }[] = [];
        await until('recovery to take over the dead process\'s apply once its lease expired', async () => {
          const apply = await store.getApply(applyId!);
          if (apply && ['completed', 'failed', 'stopped'].includes(apply.state)) return true; // it finished before the kill landed
          results = await executor.recover();
          return results.length > 0;
        }, { timeoutMs: 60_000, intervalMs: 100 });
        for (const r of results) await runner.finish(r.applyId);
        const apply = (await store.getApply(applyId!))!;
        const bad = (await store.listTasksForApply(applyId!)).filter((t) => t.state !== 'succeeded').map((t) => `${t.kind} ${t.resource} ${t.state}: ${t.error}`);
        expect({ run: i, killedAfter: stepsBeforeKill, state: apply.state, bad }).toEqual({ run: i, killedAfter: stepsBeforeKill, state: 'completed', bad: [] });
        const tasks = await store.listTasksForApply(applyId!);
        expect(tasks.every((t) => TERMINAL_TASK_STATES.includes(t.state))).toBe(true);
        // The engine's own record: every container created exactly once, none left besides the stack.
        await watch.stop();
        const mine = watch.names.filter((n) => n.startsWith(`${PROJECT}-${env}-`)).sort();
        const present = (await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`, `${LABEL.environment}=${env}`] } })).map((c) => c.Names[0]!.slice(1)).sort();
        expect(present).toEqual(total.services.map((s) => `${PROJECT}-${env}-${s.spec.name}-1`).sort());
        expect(mine).toEqual(present);
        const [again] = await planTargets(total, ['local'], observer);
        expect(again!.plan.nodes).toEqual([]);
        // No lock left pointing at the dead apply; the check run got its conclusion.
        if (results.length) {
          expect((await store.getLock('acme/crash', env))?.applyId ?? null).toBeNull();
          expect(gh.checks.get(1000 + i)?.at(-1)).toMatchObject({ status: 'completed', conclusion: 'success' });
        }
        await store.close();
        survived++;
        // Keep the engine unloaded for the next run (this environment's healthchecks would otherwise keep
        // running), and free its network: 20 runs must not hold 20 of the engine's address pools.
        await removeProject(PROJECT, { environment: env });
      }
      recordFigure({ section: 'faults: SIGKILL mid-apply', injected: runs, survived, seed });
      expect(survived).toBe(runs);
    }, 600_000);
  });

  /** Kills every connection of the scratch database but the killer's own; how many it killed. */
  type Killer = { kill(): Promise<number>; end(): Promise<void> };
  const mariadbKiller = async (url: string): Promise<Killer> => {
    const mysql = await import('mysql2/promise');
    const admin = await mysql.createConnection({ uri: MYSQL_URL });
    const db = new URL(url).pathname.slice(1);
    return {
      async kill() {
        const [rows] = await admin.query<import('mysql2').RowDataPacket[]>('SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()', [db]);
        for (const r of rows) await admin.query(`KILL CONNECTION ${Number(r.ID)}`).catch(() => {});
        return rows.length;
      },
      end: () => admin.end(),
    };
  };
  const postgresKiller = async (url: string): Promise<Killer> => {
    const { default: pg } = await import('pg');
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    const db = decodeURIComponent(new URL(url).pathname.slice(1));
    return {
      async kill() {
        const { rows } = await admin.query('SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [db]);
        return rows.filter((r: { killed: boolean }) => r.killed).length;
      },
      end: () => admin.end(),
    };
  };

  for (const [name, open, killer, label] of [
    ['MariaDB', mysqlTestStore, mariadbKiller, ''],
    ['PostgreSQL', postgresTestStore, postgresKiller, ' (PostgreSQL)'],
  ] as const) {
    describe(`the database connection killed mid-apply (${name})`, () => {
      const PROJECT = 't-chaos-db';
      const fixture = projectWithStore(PROJECT, open);

      it('the apply retries through it and finishes; what it reports matches Docker', async () => {
        const ts = fixture();
        const admin = await killer(ts.url);
        const desired = crashStack(PROJECT, 'db');
        const store = await openStore(ts.url);
        const { applyId } = await prepareApply(store, observer, { repo: 'acme/db', pr: 1, environment: 'db', kind: 'apply', actor: 'x', headSha: null, desired, targets: ['local'], onFailure: 'halt' });
        const executor = new Executor({ store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 50 });
        const run = executor.run(applyId);
        let kills = 0;
        // Kill every connection of the scratch database a few times while the apply runs.
        for (let round = 0; round < 4; round++) {
          await new Promise((r) => setTimeout(r, 400));
          kills += await admin.kill();
        }
        const state = await run;
        await admin.end();
        expect(kills).toBeGreaterThan(0);
        const bad = (await ts.store.listTasksForApply(applyId)).filter((t) => t.state !== 'succeeded').map((t) => `${t.kind} ${t.resource} ${t.state}: ${t.error}`);
        expect({ state, bad }).toEqual({ state: 'completed', bad: [] });
        const tasks = await ts.store.listTasksForApply(applyId);
        expect(tasks.every((t) => t.state === 'succeeded')).toBe(true);
        // Nothing reported that did not happen: every container the journal says was made is there and running.
        const present = await docker.listContainers({ filters: { label: [`${LABEL.project}=${PROJECT}`] } });
        expect(present.map((c) => c.Names[0]!.slice(1)).sort()).toEqual(desired.services.map((s) => `${PROJECT}-db-${s.spec.name}-1`).sort());
        await store.close();
        recordFigure({ section: `faults: database connections killed mid-apply${label}`, injected: 1, survived: 1, connections_killed: kills });
      }, 120_000);
    });
  }

  describe('Docker refusing operations', () => {
    const PROJECT = 't-chaos-docker';
    const fixture = projectWithStore(PROJECT, sqliteTestStore);
    afterAll(async () => {
      await docker.getContainer('t-chaos-blocker').remove({ force: true }).catch(() => {});
      await docker.getContainer(`${PROJECT}-names-web-1`).remove({ force: true }).catch(() => {});
    });

    async function applyOnce(env: string, compose: string) {
      const ts = fixture();
      const desired = loadCompose([{ path: 'compose.yml', text: compose }], { project: PROJECT, environment: env });
      const { applyId } = await prepareApply(ts.store, observer, { repo: 'acme/d', pr: 1, environment: env, kind: 'apply', actor: 'x', headSha: null, desired, targets: ['local'], onFailure: 'halt' });
      const state = await new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes() }).run(applyId);
      return { state, tasks: await ts.store.listTasksForApply(applyId) };
    }

    it('missing image, port already allocated, name conflict: the task fails with Docker\'s message; the next apply recovers', async () => {
      let survived = 0;
      // Missing image.
      const missing = await applyOnce('img', 'services:\n  web:\n    image: berth-test/nope:1\n');
      expect(missing.state).toBe('failed');
      expect(missing.tasks.find((t) => t.state === 'failed')!.error).toMatch(/berth-test\/nope/);
      const fixedImage = await applyOnce('img', 'services:\n  web:\n    image: berth-test/app:1\n');
      expect(fixedImage.state).toBe('completed');
      await removeProject(PROJECT, { environment: 'img' });
      survived++;

      // Port already allocated by someone else's container.
      const blocker = await docker.createContainer({ name: 't-chaos-blocker', Image: 'berth-test/app:1', ExposedPorts: { '80/tcp': {} }, HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '28990' }] } } });
      await blocker.start();
      const port = await applyOnce('port', 'services:\n  web:\n    image: berth-test/app:1\n    ports: ["127.0.0.1:28990:80"]\n');
      expect(port.state).toBe('failed');
      expect(port.tasks.find((t) => t.state === 'failed')!.error).toMatch(/already allocated|address already in use/);
      await blocker.remove({ force: true });
      expect((await applyOnce('port', 'services:\n  web:\n    image: berth-test/app:1\n    ports: ["127.0.0.1:28990:80"]\n')).state).toBe('completed');
      await removeProject(PROJECT, { environment: 'port' });
      survived++;

      // A container nobody manages holds the name berth needs.
      const squatter = await docker.createContainer({ name: `${PROJECT}-names-web-1`, Image: 'berth-test/app:1' });
      const name = await applyOnce('names', 'services:\n  web:\n    image: berth-test/app:1\n');
      expect(name.state).toBe('failed');
      expect(name.tasks.find((t) => t.state === 'failed')!.error).toMatch(/already in use/);
      await squatter.remove({ force: true });
      expect((await applyOnce('names', 'services:\n  web:\n    image: berth-test/app:1\n')).state).toBe('completed');
      survived++;
      recordFigure({ section: 'faults: Docker errors (missing image, port taken, name taken)', injected: 3, survived });
    }, 120_000);
  });

  describe('through the whole app', () => {
    let app: App;
    const REPO = 'acme/chaos';
    const PROJECT = 't-chaos-app';
    const config = `project: ${PROJECT}\nenvironments:\n  - name: staging\n    compose: [compose.yml]\n`;
    const compose = 'services:\n  web:\n    image: berth-test/app:1\n  worker:\n    image: berth-test/app:1\n    depends_on: [web]\n';
    beforeAll(async () => {
      // Production log level: the burst measures the app, not trace logging into memory.
      app = await startApp({ repo: REPO, project: PROJECT, users: { alice: 'write' }, logLevel: 'info' });
      app.fake.setFiles(REPO, 'main', { '.github/berth.yml': config, 'compose.yml': compose });
    });
    afterAll(async () => app?.close());

    it('GitHub 5xx, 429 and secondary rate limits on comments and check runs: retried, the final state is right, the apply unaffected', async () => {
      app.fake.setFiles(REPO, sha('1'), { '.github/berth.yml': config, 'compose.yml': compose });
      app.fake.setPull(REPO, 1, { headSha: sha('1'), author: 'alice' });
      app.fake.fail('checks/create', 500, { times: 2 });
      app.fake.fail('issues/create-comment', 'secondary-rate-limit', { times: 1, retryAfter: 1 });
      expect(await app.open(1, sha('1'))).toBe(200);
      expect(app.check(sha('1'), 'berth / staging')?.conclusion).toBe('action_required');
      expect(app.berthComments(1)).toHaveLength(1);
      app.fake.fail('checks/update', 'rate-limit', { times: 1, retryAfter: 1 });
      app.fake.fail('checks/update', 502, { times: 3 });
      app.fake.fail('issues/create-comment', 503, { times: 1 });
      await app.say(1, '/apply staging');
      await app.drain();
      const apply = (await app.ts.store.latestApply(REPO, 'staging'))!;
      expect(apply.state).toBe('completed');
      expect(app.check(sha('1'), 'berth / staging')).toMatchObject({ status: 'completed', conclusion: 'success' });
      expect(app.lastReply(1)).toContain('✅ Apply to `staging` completed');
      expect(app.fake.violations).toEqual([]);
      recordFigure({ section: 'faults: GitHub 5xx / 429 / secondary rate limit', injected: 9, survived: 9 });
    }, 120_000);

    it('200 webhooks in a burst over 20 PRs: all answered before GitHub gives up, every command answered once', async () => {
      // The app runs in a process of its own (as in production), the load comes from a third:
      // neither the fake GitHub's spec validation nor the load generator shares its event loop.
      const { generateKeyPairSync } = await import('node:crypto');
      const { startFakeGitHub } = await import('../helpers/fake-github.js');
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
      const fake = await startFakeGitHub({ appKey: publicKey, appId: 4244, appSlug: 'berth' });
      fake.setRepo(REPO, { defaultBranch: 'main' });
      fake.setPermission(REPO, 'alice', 'write');
      fake.setFiles(REPO, 'main', { '.github/berth.yml': config, 'compose.yml': compose });
      for (let pr = 10; pr < 30; pr++) {
        fake.setFiles(REPO, `${pr.toString(16).padStart(2, '0')}`.repeat(20), { '.github/berth.yml': config, 'compose.yml': compose });
        fake.setPull(REPO, pr, { headSha: `${pr.toString(16).padStart(2, '0')}`.repeat(20), author: 'alice' });
      }
      const dir = mkdtempSync(join(tmpdir(), 'berth-burst-'));
      const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/app-child.ts'], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, BERTH_TEST_GITHUB_URL: fake.url, BERTH_TEST_KEY: privateKey, BERTH_TEST_SECRET: SECRET, DATABASE_URL: `sqlite:${join(dir, 'b.sqlite')}` },
      });
      try {
        const appUrl = await new Promise<string>((resolve, reject) => {
          let text = '';
          child.stdout!.on('data', (d) => {
            text += d;
            const m = /listening (\S+)/.exec(text);
            if (m) resolve(m[1]!);
          });
          child.on('exit', (code) => reject(new Error(`app exited ${code}`)));
        });
        const idle = async () => (await fetch(`${appUrl}/__idle`)).text();
        const post = (event: string, body: string) => fetch(`${appUrl}/api/github/webhooks`, { method: 'POST', headers: webhookHeaders(event, body, SECRET, randomUUID()), body }).then((r) => r.text());
        // Warm-up (not measured): the first deliveries compile the handlers' code paths.
        for (let i = 0; i < 10; i++) await post('issue_comment', JSON.stringify(commentOnPullEvent({ repo: REPO, pr: 99, comment: { id: 900_000 + i, body: 'warming up', user: 'alice' } })));
        await idle();

        const bodies: { event: string; body: string; pr: number; expectReply: boolean }[] = [];
        for (let i = 0; i < 200; i++) {
          const pr = 10 + (i % 20);
          const head = `${pr.toString(16).padStart(2, '0')}`.repeat(20);
          if (i < 20) bodies.push({ event: 'pull_request', body: JSON.stringify(pullRequestEvent({ repo: REPO, pr, action: 'opened', headSha: head })), pr, expectReply: false });
          else {
            const kind = i % 3;
            const text = kind === 0 ? '/help' : kind === 1 ? 'looks fine to me' : '/aply staging';
            const id = fake.addComment(REPO, pr, text, { user: 'alice' }).id;
            bodies.push({ event: 'issue_comment', body: JSON.stringify(commentOnPullEvent({ repo: REPO, pr, comment: { id, body: text, user: 'alice' } })), pr, expectReply: kind !== 1 });
          }
        }
        const file = join(dir, 'burst.json');
        writeFileSync(file, JSON.stringify(bodies.map((b) => ({ body: b.body, headers: webhookHeaders(b.event, b.body, SECRET, randomUUID()) }))));
        const out = await new Promise<string>((resolve, reject) => {
          // Four connections at once, each sending the next delivery as soon as one is answered (GitHub
          // delivers over a few connections, not 200 at once). On this 2-core machine 8 connections give
          // p99 ≈ 85–105 ms: the per-delivery cost is Probot's (verification, context, octokit) at ~3 ms.
          const c = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/burst-client.ts', `${appUrl}/api/github/webhooks`, file, '4'], { stdio: ['ignore', 'pipe', 'inherit'] });
          let text = '';
          c.stdout.on('data', (d) => (text += d));
          c.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`burst client exited ${code}`))));
        });
        const results = JSON.parse(out) as { status: number; ms: number }[];
        await idle();
        expect(results.every((r) => r.status === 200)).toBe(true);
        const sorted = results.map((r) => r.ms).sort((a, b) => a - b);
        const p50 = sorted[Math.floor(sorted.length * 0.5)]!;
        const p99 = sorted[Math.floor(sorted.length * 0.99)]!;
        console.log(`[chaos] 200 webhooks over 4 connections: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms`);
        // Every command got exactly one reply, plus the one plan comment per PR.
        let handled = 0;
        for (let pr = 10; pr < 30; pr++) {
          const expected = bodies.filter((b) => b.pr === pr && b.expectReply).length;
          expect(fake.comments(REPO, pr).filter((c) => c.user === 'berth[bot]').length).toBe(expected + 1);
          handled += bodies.filter((b) => b.pr === pr).length;
        }
        expect(fake.violations.map((v) => `${v.method} ${v.path}: ${v.problems.join('; ')}`).slice(0, 3)).toEqual([]);
        // Pass/fail is GitHub's own limit (it abandons a delivery after 10 s); the latency itself is a
        // figure in the table, not a threshold: a loaded 2-core machine must not fail the suite by chance.
        expect(sorted.at(-1)!).toBeLessThan(GITHUB_DELIVERY_TIMEOUT_MS);
        recordFigure({ section: 'webhooks in a burst (20 PRs)', sent: 200, handled, p50_ms: +p50.toFixed(1), p99_ms: +p99.toFixed(1) });
      } finally {
        child.kill('SIGTERM');
        await fake.close();
      }
    }, 180_000);
  });
});
