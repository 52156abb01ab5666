// The real app behind an HTTP server, as GitHub reaches it: Probot's node
// middleware over berth(), pointed at a GitHub stand-in (the fake, or a proxy
// in front of it), webhooks signed with the app's secret. The e2e suites share
// this wiring; each brings its own store, targets and options.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { createNodeMiddleware, Probot, ProbotOctokit } from 'probot';
import { afterAll, beforeAll } from 'vitest';
import { berth } from '../../src/index.js';
import type { BerthOptions, BerthServices } from '../../src/index.js';
import { startFakeGitHub, webhookHeaders, type FakeGitHub } from './fake-github.js';
import type { TestStore } from './stores.js';
import { appKeys } from './app-process.js';

export type Uuid = `${string}-${string}-${string}-${string}-${string}`;

// The app's RSA key pair (the fake GitHub checks its JWTs with the public half), shared with the app-process suites.
export { appKeys };

export interface ServedApp {
  url: string;
  /** the app's services, once Probot loaded it */
  readonly services: BerthServices;
  /** POSTs a signed webhook; resolves with the HTTP status once the body is read (detached work may still run) */
  post(event: string, payload: unknown, delivery?: Uuid): Promise<number>;
  /** drains the applies in flight, then closes the server */
  close(): Promise<void>;
}

export async function serveBerth(o: {
  githubUrl: string;
  appId: number;
  privateKey: string;
  secret: string;
  options: Omit<BerthOptions, 'onReady'>;
  log?: Logger;
  /** Probot's own throttling (writes ≥ 1 s apart, as in production); off by default: the fake has no quota */
  throttle?: boolean;
}): Promise<ServedApp> {
  const Octokit = o.throttle ? ProbotOctokit : ProbotOctokit.defaults((opts: Record<string, unknown>) => ({ ...opts, throttle: { ...(opts.throttle as object), enabled: false } }));
  const probot = new Probot({ appId: o.appId, privateKey: o.privateKey, secret: o.secret, baseUrl: o.githubUrl, Octokit, log: o.log ?? pino({ level: process.env.E2E_LOG ?? 'silent' }) });
  let services: BerthServices | undefined;
  const mw = await createNodeMiddleware(berth({ ...o.options, onReady: (s) => (services = s) }), { probot });
  const server = createServer((req, res) => void mw(req, res, () => res.writeHead(404).end()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    get services() {
      if (!services) throw new Error('berth has not loaded yet');
      return services;
    },
    async post(event, payload, delivery = randomUUID()) {
      const body = JSON.stringify(payload);
      const res = await fetch(`${url}/api/github/webhooks`, { method: 'POST', headers: webhookHeaders(event, body, o.secret, delivery), body });
      await res.text();
      return res.status;
    },
    async close() {
      await services?.runner.drain(30_000);
      await new Promise((r) => server.close(r));
    },
  };
}

/** What servedForBlock starts for a describe block: the fake GitHub, the store and the app on them. */
export interface BlockApp {
  readonly fake: FakeGitHub;
  readonly ts: TestStore;
  readonly app: ServedApp;
  readonly services: BerthServices;
}

/**
 * The app for a describe block: before its tests, a fake GitHub (`setUp` fills it), the store `store` opens and
 * the app served on them with `options` (store added); after them, all three closed, the app first (an after-hook
 * registered before this call runs after them: vitest runs after-hooks as a stack).
 */
export function servedForBlock(o: {
  appId: number;
  secret: string;
  store: () => Promise<TestStore>;
  options: Omit<BerthOptions, 'onReady' | 'store'>;
  setUp?: (fake: FakeGitHub) => void;
}): BlockApp {
  let fake: FakeGitHub | undefined;
  let ts: TestStore | undefined;
  let app: ServedApp | undefined;
  beforeAll(async () => {
    const { privateKey, publicKey } = appKeys();
    fake = await startFakeGitHub({ appKey: publicKey, appId: o.appId, appSlug: 'berth' });
    o.setUp?.(fake);
    ts = await o.store();
    app = await serveBerth({ githubUrl: fake.url, appId: o.appId, privateKey, secret: o.secret, options: { ...o.options, store: ts.store } });
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await fake?.close();
    await ts?.dispose();
  });
  const started = <T>(x: T | undefined, what: string): T => {
    if (x === undefined) throw new Error(`${what} is not started yet (servedForBlock starts it before the block's tests)`);
    return x;
  };
  return {
    get fake() {
      return started(fake, 'the fake GitHub');
    },
    get ts() {
      return started(ts, 'the store');
    },
    get app() {
      return started(app, 'the app');
    },
    get services() {
      return started(app, 'the app').services;
    },
  };
}
