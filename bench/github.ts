// GitHub-facing latency and API budget, through the real app: signed webhooks
// into Probot (its own throttling and retries ON, as in production: writes
// spaced ≥ 1 s apart), berth talking to the fake GitHub (test/helpers/
// fake-github.ts, every request recorded), the real store (SQLite) and the
// local engine for observed state. Applies run on an in-memory engine
// (test/helpers/fake-engine.ts, 20 ms a call) so that what is measured is
// berth's own path to Docker, not the engine.
//
//  apply_first_docker_call_ms  from the moment `/apply` is accepted (its gates passed, the apply
//                              stored and its driver started) to the apply's first engine call;
//                              detail: from the comment reaching the bot, and from the webhook POST
//  github_calls_per_command    one line per command: every request the command made to GitHub
//                              (the installation token is cached before), by operation; `plan` is
//                              `/plan` after the PR's autoplan at the same head (what the commit
//                              cache remembers is used), `plan_cold` at a head no event read (its compose
//                              files unchanged: known by their blobs), `plan_cold_changed` the same with one
//                              compose file changed, `plan_after_restart` on another server (a replica, or
//                              this one restarted) on the same store (the texts in the store, by blob),
//                              `plan_unread_repo` in a repository no server on this store ever read
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createNodeMiddleware, Probot } from 'probot';
import type { BerthServices } from '../src/index.js';
import { berth } from '../src/index.js';
import { openStore } from '../src/store/open.js';
import { Targets } from '../src/docker/targets.js';
import { FakeEngine } from '../test/helpers/fake-engine.js';
import type { FakeGitHub } from '../test/helpers/fake-github.js';
import { commentOnPullEvent, nextGitHubSecond, pullRequestEvent, startFakeGitHub, webhookHeaders } from '../test/helpers/fake-github.js';
import { hookedEngine } from '../test/helpers/hooked-engine.js';
import { figure } from './lib.js';

const SECRET = 'bench-webhook-secret';
const APP_ID = 4250;
const PROJECT = 't-bench-gh';
const FIRST_CALL_TARGET_MS = 100;
const APPLY_RUNS = Number(process.env.BENCH_GITHUB_APPLY_RUNS ?? 5);
const sha = (c: string) => c.repeat(40);

/** The example shop (2 environments, 3 compose files, production overlays staging's compose.yml). */
function shopFiles(): Record<string, string> {
  const shop = (p: string) => readFileSync(`fixtures/repos/shop/${p}`, 'utf8');
  return { '.github/berth.yml': shop('.github/berth.yml').replace('project: shop', `project: ${PROJECT}`), 'compose.yml': shop('compose.yml'), 'compose.production.yml': shop('compose.production.yml') };
}

/** One environment whose plan has 1 network + 1 image + `services` × (create, start) steps. */
function stackFiles(project: string, services: number): Record<string, string> {
  const config = ['project: ' + project, 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', 'policy:', '  allow_privileged: false', ''].join('\n');
  const lines = ['services:'];
  for (let i = 0; i < services; i++) lines.push(`  s${i}:`, '    image: berth-test/app:1');
  lines.push('');
  return { '.github/berth.yml': config, 'compose.yml': lines.join('\n') };
}

interface Counted {
  total: number;
  by_operation: Record<string, number>;
}

function countSince(fake: FakeGitHub, from: number): Counted {
  const by: Record<string, number> = {};
  let total = 0;
  for (const r of fake.requests.slice(from)) {
    // The installation token is Probot's (cached for an hour), not the command's.
    if (r.path.endsWith('/access_tokens')) continue;
    total++;
    const k = r.operationId ?? `${r.method} ${r.path}`;
    by[k] = (by[k] ?? 0) + 1;
  }
  return { total, by_operation: by };
}

export async function bench(log: (line: string) => void) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  const fake = await startFakeGitHub({ appKey: publicKey, appId: APP_ID, appSlug: 'berth' });
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-gh-'));
  const store = await openStore(`sqlite:${join(dir, 'b.sqlite')}`);
  // The engine calls of applies: in memory, each timed from the moment berth handled the command.
  let engine = new FakeEngine({ delayMs: 20 });
  let firstCall: number | undefined;
  const targets = Targets.single('unix:///var/run/docker.sock');
  targets.engine = () => hookedEngine(engine, { before: () => void (firstCall ??= performance.now()) });
  /** A berth server on the store (another one is another replica, or the same server after a restart). */
  const serve = async () => {
    let services!: BerthServices;
    // Probot's own Octokit: throttling and retries as in production.
    const probot = new Probot({ appId: APP_ID, privateKey, secret: SECRET, baseUrl: fake.url, log: pino({ level: 'silent' }) });
    const mw = await createNodeMiddleware(berth({ store, targets, recover: false, drift: false, onReady: (s) => (services = s) }), { probot });
    const server = createServer((req, res) => void mw(req, res, () => res.writeHead(404).end()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { services, server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  };
  const served = await serve();
  const { services, server } = served;
  let url = served.url;
  let current = services;
  // When the comment reaches the bot, and when its apply is accepted (every gate passed, the apply stored, its driver started).
  let handledAt: number | undefined;
  let acceptedAt: number | undefined;
  const handle = services.bot.handleComment.bind(services.bot);
  services.bot.handleComment = (...args) => {
    handledAt = performance.now();
    return handle(...args);
  };
  const startRun = services.runner.start.bind(services.runner);
  services.runner.start = (...args) => {
    acceptedAt = performance.now();
    return startRun(...args);
  };

  const deliver = async (event: string, payload: unknown) => {
    const body = JSON.stringify(payload);
    const res = await fetch(`${url}/api/github/webhooks`, { method: 'POST', headers: webhookHeaders(event, body, SECRET, randomUUID()), body });
    await res.text();
    if (res.status !== 200) throw new Error(`webhook ${event} answered ${res.status}`);
    await current.idle();
    await current.runner.drain(120_000);
  };
  const opened = (repo: string, pr: number, head: string) => deliver('pull_request', pullRequestEvent({ repo, pr, action: 'opened', headSha: head }));
  const say = async (repo: string, pr: number, body: string) => {
    // A command must be written after the plan it acts on (GitHub's times are whole seconds).
    await nextGitHubSecond();
    const c = fake.addComment(repo, pr, body, { user: 'alice' });
    const t0 = performance.now();
    await deliver('issue_comment', commentOnPullEvent({ repo, pr, comment: { id: c.id, body, user: 'alice', createdAt: c.createdAt, updatedAt: c.updatedAt } }));
    return t0;
  };
  const setUp = (repo: string, files: Record<string, string>, head: string) => {
    fake.setRepo(repo, { defaultBranch: 'main' });
    fake.setFiles(repo, 'main', files);
    fake.setFiles(repo, head, files);
    fake.setPull(repo, 1, { headSha: head, author: 'alice', mergeable: true });
    fake.setPermission(repo, 'alice', 'write');
  };

  const lines: Record<string, unknown>[] = [];
  const calls = (command: string, what: string, c: Counted, extra: Record<string, unknown> = {}) => {
    log(`${command}: ${c.total} GitHub calls ${JSON.stringify(c.by_operation)}`);
    return { name: 'github_calls_per_command', command, value: c.total, unit: 'calls', what, ...extra, by_operation: c.by_operation };
  };
  try {
    // Warm-up on a repository of its own: Probot's installation token is then cached, as in a running server.
    setUp('acme/warm', shopFiles(), sha('0'));
    await opened('acme/warm', 1, sha('0'));

    setUp('acme/shop', shopFiles(), sha('a'));
    let from = fake.requests.length;
    await opened('acme/shop', 1, sha('a'));
    lines.push(calls('pr_opened', 'pull_request.opened on the example shop (2 environments, 3 compose files): plan both, 2 check runs, 1 comment', countSince(fake, from), { target: 7 }));
    // `/plan` on a PR whose head is `head` (set there first when given), counted as `command`.
    const plan = async (repo: string, command: string, cache: string, what: string, head?: { sha: string; files: Record<string, string> }, bound: Record<string, unknown> = { target: 8 }) => {
      if (head) {
        fake.setFiles(repo, head.sha, head.files);
        fake.setPull(repo, 1, { headSha: head.sha });
      }
      const since = fake.requests.length;
      await say(repo, 1, '/plan');
      lines.push(calls(command, what, countSince(fake, since), { ...bound, cache }));
    };
    await plan('acme/shop', 'plan', 'warm', '`/plan` on the example shop at the head its autoplan read (warm: the tree and compose files from the commit cache): 👀, both environments planned again, 2 check runs, the comment edited');
    // At a head no event of this process read yet (pushed without a synchronize delivery): the push left the
    // compose files as they were; then, at the next head, it changed one of them.
    await plan('acme/shop', 'plan_cold', 'cold', '`/plan` on the example shop at a head no event read before, its compose files unchanged (the tree read; each file known by its blob)', { sha: sha('c'), files: shopFiles() });
    const changed = shopFiles();
    changed['compose.yml'] += '\n# a change\n';
    await plan('acme/shop', 'plan_cold_changed', 'cold', '`/plan` on the example shop at a head no event read before where compose.yml changed (the tree and that file read)', { sha: sha('d'), files: changed });
    // Another replica, or this server restarted: nothing in its memory, the compose files' texts in the store.
    const replica = await serve();
    [url, current] = [replica.url, replica.services];
    // Its installation token first (Probot's, cached for an hour: not a command's request).
    await opened('acme/warm', 1, sha('0'));
    await plan('acme/shop', 'plan_after_restart', 'store', '`/plan` on another replica (or after a restart) at the head the last /plan read: config and tree read, each compose file found in the store by its blob');
    // Its server closed, not its services: they would close the store the first server still uses.
    await replica.services.runner.drain(30_000);
    await new Promise((r) => replica.server.close(r));
    [url, current] = [served.url, services];
    // A repository no server on this store ever read (a first /plan without an autoplan before it).
    setUp('acme/shop-unread', shopFiles(), sha('e'));
    // Not the issue's `/plan` (that one re-plans a PR berth planned: `plan` above, and the cold heads): here
    // nothing of the repository is known, and 9 requests is the least GitHub's REST API allows — the pull (its
    // head), 👀, the config, the listing (or, without it, a request for the absent `.env`: the shop interpolates),
    // each of the two compose files (no batch read), a check run per environment and the comment.
    await plan('acme/shop-unread', 'plan_unread_repo', 'none', '`/plan` in a repository no server on this store ever read: config, tree and both compose files read; no batch read exists in the REST API', undefined, {
      target: null,
      floor: 9,
      floor_requests: ['pulls/get', 'reactions/create-for-issue-comment', 'repos/get-content (.github/berth.yml)', 'git/get-tree (or a read of the absent .env)', 'repos/get-content (compose.yml)', 'repos/get-content (compose.production.yml)', 'checks/create (staging)', 'checks/create (production)', 'issues/create-comment'],
    });

    const firstMs: number[] = [];
    const fromHandled: number[] = [];
    const fromPost: number[] = [];
    for (const [repo, services_, command] of [
      ['acme/stack8', 3, 'apply_8_steps'],
      ['acme/stack200', 99, 'apply_200_steps'],
    ] as const) {
      setUp(repo, stackFiles(`${PROJECT}-${services_}`, services_), sha('b'));
      await opened(repo, 1, sha('b'));
      const runs = command === 'apply_8_steps' ? APPLY_RUNS : 1;
      for (let i = 0; i < runs; i++) {
        // A fresh host each time: observed state (the local engine) shows none of the stack either.
        engine = new FakeEngine({ delayMs: 20 });
        firstCall = undefined;
        handledAt = undefined;
        acceptedAt = undefined;
        from = fake.requests.length;
        const posted = await say(repo, 1, '/apply staging');
        const a = await store.latestApply(repo, 'staging');
        if (a?.state !== 'completed') throw new Error(`${command}: the apply ended ${a?.state}`);
        const steps = (await store.listTasksForApply(a.id)).length;
        if (firstCall === undefined || handledAt === undefined || acceptedAt === undefined) throw new Error(`${command}: no engine call or the command was not handled`);
        if (command === 'apply_8_steps') {
          firstMs.push(firstCall - acceptedAt);
          fromHandled.push(firstCall - handledAt);
          fromPost.push(firstCall - posted);
        }
        if (i === 0) lines.push(calls(command, `\`/apply staging\` of ${steps} steps, until its outcome is reported`, countSince(fake, from), { steps, engine_calls: engine.calls.length }));
      }
    }
    const med = (xs: number[]) => +[...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(1);
    lines.push(
      figure('apply_first_docker_call_ms', firstMs, FIRST_CALL_TARGET_MS, {
        what: '`/apply` accepted (gates passed, apply stored) → its first engine call, Probot throttling on; the gates before it read GitHub (config, permission, PR, tree, compose files)',
        from_comment_handled_median_ms: med(fromHandled),
        from_webhook_post_median_ms: med(fromPost),
      }),
    );
    if (fake.violations.length) throw new Error(`requests GitHub would refuse: ${JSON.stringify(fake.violations).slice(0, 2000)}`);
  } finally {
    await services.close().catch(() => undefined);
    await new Promise((r) => server.close(r));
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return lines as ({ name: string } & Record<string, unknown>)[];
}
