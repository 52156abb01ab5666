// The whole app for the hostile / policy / secrets chaos suites: signed
// webhooks over HTTP into Probot, the spec-validating fake GitHub, the real
// dockerd and a real (SQLite) store, and a pino logger at `trace` writing to
// memory so a test can read every log line. Same wiring as test/app.e2e.test.ts.
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createNodeMiddleware, Probot, ProbotOctokit } from 'probot';
import { afterAll, beforeAll, expect } from 'vitest';
import { berth } from '../../src/index.js';
import type { BerthServices } from '../../src/index.js';
import { LABEL } from '../../src/model/model.js';
import { Targets } from '../../src/docker/targets.js';
import type Dockerode from 'dockerode';
import { docker, removeProject } from '../helpers/docker.js';
import type { FakeCheckRun, FakeComment, FakeGitHub, RepoRole } from '../helpers/fake-github.js';
import { commentOnPullEvent, nextGitHubSecond, pullRequestEvent, startFakeGitHub, webhookHeaders } from '../helpers/fake-github.js';
import { HoldingProxy } from '../helpers/app-process.js';
import { sqliteTestStore } from '../helpers/stores.js';
import type { TestStore } from '../helpers/stores.js';

export { docker };
export const SECRET = 'chaos-webhook-secret';
export const APP_ID = 4243;
export const sha = (c: string) => c.repeat(40);

type Uuid = `${string}-${string}-${string}-${string}-${string}`;

export interface App {
  fake: FakeGitHub;
  ts: TestStore;
  url: string;
  services: BerthServices;
  /** every log line the app wrote (JSON, level trace and up) */
  logs: string[];
  repo: string;
  project: string;
  /** between the app and the fake GitHub, when started with proxy: true */
  proxy?: HoldingProxy;
  /** POSTs a signed webhook and waits for the detached work; returns the HTTP status */
  deliver(event: string, payload: unknown, opts?: { delivery?: Uuid; secret?: string; rawBody?: string; signature?: string | null }): Promise<number>;
  /** adds a comment to the fake (an /apply or /rollback in the next GitHub second, see nextGitHubSecond) and delivers its issue_comment webhook; returns the comment id */
  say(pr: number, body: string, user?: string): Promise<number>;
  open(pr: number, headSha: string, action?: 'opened' | 'synchronize'): Promise<number>;
  berthComments(pr: number): FakeComment[];
  lastReply(pr: number): string;
  check(headSha: string, name: string): FakeCheckRun | undefined;
  /** waits for every detached apply */
  drain(): Promise<void>;
  containers(): Promise<Dockerode.ContainerInfo[]>;
  cleanup(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The app for a describe block of one repository: started before its tests with `mainFiles` on the default
 * branch (its `.github/berth.yml` and compose files), closed after them. Call it in the block; `app()` is the app.
 */
export function appForBlock(opts: Parameters<typeof startApp>[0], mainFiles: Record<string, string>): () => App {
  let app: App | undefined;
  beforeAll(async () => {
    app = await startApp(opts);
    app.fake.setFiles(opts.repo, 'main', mainFiles);
  }, 60_000);
  afterAll(async () => app?.close());
  return () => app!;
}

export async function startApp(opts: { repo: string; project: string; users?: Record<string, RepoRole>; logLevel?: string; env?: NodeJS.ProcessEnv; /** GitHub reached through a HoldingProxy (app.proxy) */ proxy?: boolean }): Promise<App> {
  const { repo, project } = opts;
  await removeProject(project);
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  const fake = await startFakeGitHub({ appKey: publicKey, appId: APP_ID, appSlug: 'berth' });
  fake.setRepo(repo, { defaultBranch: 'main' });
  for (const [u, role] of Object.entries(opts.users ?? { alice: 'write' })) fake.setPermission(repo, u, role as RepoRole);
  const ts = await sqliteTestStore();
  const logs: string[] = [];
  const logger = pino({ level: opts.logLevel ?? 'trace' }, { write: (s: string) => void logs.push(s) });
  const Octokit = ProbotOctokit.defaults((o: Record<string, unknown>) => ({ ...o, throttle: { ...(o.throttle as object), enabled: false } }));
  const proxy = opts.proxy ? await new HoldingProxy(fake.url).start() : undefined;
  const probot = new Probot({ appId: APP_ID, privateKey, secret: SECRET, baseUrl: proxy?.url ?? fake.url, Octokit, log: logger, logLevel: (opts.logLevel ?? 'trace') as 'trace' } as ConstructorParameters<typeof Probot>[0]);
  let services!: BerthServices;
  const mw = await createNodeMiddleware(
    berth({ ...(opts.env ? { env: opts.env } : {}), store: ts.store, targets: Targets.single('unix:///var/run/docker.sock'), recover: false, drift: false, progressIntervalMs: 100, onReady: (s) => (services = s) }),
    { probot },
  );
  const server: Server = createServer((req, res) => void mw(req, res, () => res.writeHead(404).end()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const deliver: App['deliver'] = async (event, payload, o = {}) => {
    const body = o.rawBody ?? JSON.stringify(payload);
    const headers = webhookHeaders(event, body, o.secret ?? SECRET, o.delivery ?? randomUUID());
    if (o.signature === null) delete headers['x-hub-signature-256'];
    else if (o.signature !== undefined) headers['x-hub-signature-256'] = o.signature;
    const res = await fetch(`${url}/api/github/webhooks`, { method: 'POST', headers, body });
    await res.text();
    await services.idle();
    return res.status;
  };
  const berthComments = (pr: number) => fake.comments(repo, pr).filter((c) => c.user === 'berth[bot]');
  const app: App = {
    fake,
    ts,
    url,
    get services() {
      return services;
    },
    logs,
    repo,
    project,
    ...(proxy ? { proxy } : {}),
    deliver,
    async say(pr, body, user = 'alice') {
      if (/\/(apply|rollback)\b/.test(body)) await nextGitHubSecond();
      const c = fake.addComment(repo, pr, body, { user });
      expect(await deliver('issue_comment', commentOnPullEvent({ repo, pr, comment: { id: c.id, body, user, createdAt: c.createdAt, updatedAt: c.updatedAt } }))).toBe(200);
      return c.id;
    },
    async open(pr, headSha, action = 'opened') {
      return deliver('pull_request', pullRequestEvent({ repo, pr, action, headSha }));
    },
    berthComments,
    lastReply: (pr) => berthComments(pr).at(-1)?.body ?? '',
    check: (headSha, name) => fake.checkRuns(repo, headSha).filter((c) => c.name === name).at(-1),
    drain: async () => {
      await services.runner.drain(60_000);
    },
    containers: () => docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${project}`] } }),
    cleanup: () => removeProject(project),
    async close() {
      await services?.runner.drain(30_000);
      await new Promise((r) => server.close(r));
      await proxy?.close();
      await fake.close();
      await ts.dispose();
      await removeProject(project);
    },
  };
  return app;
}

/** Text a reader sees as Markdown/HTML, i.e. outside fenced blocks and inline code spans. */
export function outsideCode(md: string): string {
  const lines = md.split('\n');
  const out: string[] = [];
  let fence: string | undefined;
  for (const line of lines) {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (m && m[1]!.startsWith(fence[0]!) && m[1]!.length >= fence.length && line.trim() === m[1]) fence = undefined;
      continue;
    }
    if (m) {
      fence = m[1]!;
      continue;
    }
    out.push(line.replace(/(`+)(?:(?!\1)[\s\S])*?\1/g, ''));
  }
  return out.join('\n');
}

/** Appends one line to .chaos/figures.jsonl (read by the figures table of `npm run test:chaos`). */
export function recordFigure(line: Record<string, unknown>): void {
  mkdirSync('.chaos', { recursive: true });
  appendFileSync('.chaos/figures.jsonl', JSON.stringify(line) + '\n');
}
