// Real berth processes for the security suite's replica, restart and crash
// tests: spawn a replica (test/helpers/app-child.ts, wired like production:
// recovery on unless BERTH_TEST_RECOVER=0, berth's own SIGTERM drain) on a database, send
// it signed webhooks, signal it; and a proxy in front of the fake GitHub that
// can hold chosen requests, to freeze a replica in the middle of its work.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer, request } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { webhookHeaders } from './fake-github.js';
import { until as waitUntil } from './wait.js';

export const WEBHOOK_SECRET = 'security-webhook-secret';
export const APP_ID = 4245;

let keys: { privateKey: string; publicKey: string } | undefined;
export function appKeys(): { privateKey: string; publicKey: string } {
  keys ??= generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
  return keys;
}

export interface Replica {
  url: string;
  child: ChildProcess;
  /** stdout and stderr so far */
  output(): string;
  deliver(event: string, payload: unknown, delivery?: string): Promise<number>;
  /** resolves once every detached webhook job of the replica ended */
  idle(): Promise<void>;
  /** resolves with the exit code (null when killed by a signal) */
  exited: Promise<number | null>;
}

export async function startReplica(opts: { databaseUrl: string; githubUrl: string; env?: Record<string, string> }): Promise<Replica> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/app-child.ts'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      DATABASE_URL: opts.databaseUrl,
      BERTH_TEST_GITHUB_URL: opts.githubUrl,
      BERTH_TEST_KEY: appKeys().privateKey,
      BERTH_TEST_SECRET: WEBHOOK_SECRET,
      BERTH_TEST_APP_ID: String(APP_ID),
      BERTH_TEST_RECOVER: '1',
      BERTH_TEST_DRAIN: '1',
      BERTH_TEST_PROGRESS_MS: '200',
      ...opts.env,
    },
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const check = () => {
      const m = /listening (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    };
    child.stdout!.on('data', check);
    void exited.then((code) => reject(new Error(`replica exited (${code}) before listening:\n${out}`)));
  });
  return {
    url,
    child,
    output: () => out,
    exited,
    async deliver(event, payload, delivery = randomUUID()) {
      const body = JSON.stringify(payload);
      const res = await fetch(`${url}/api/github/webhooks`, { method: 'POST', headers: webhookHeaders(event, body, WEBHOOK_SECRET, delivery), body });
      await res.text();
      return res.status;
    },
    async idle() {
      await (await fetch(`${url}/__idle`)).text();
    },
  };
}

/** wait.ts's `until`, with the positional timeout these suites pass; done when `fn` answers a truthy value. */
export function until<T>(what: string, fn: () => Promise<T> | T, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  return waitUntil(what, async () => (await fn()) || undefined, { timeoutMs, intervalMs: everyMs }) as Promise<T>;
}

export interface Hold {
  /** how many matching requests are being held */
  readonly held: number;
  release(): void;
}

/** An HTTP proxy to `target` that can hold (until released) or delay requests whose `METHOD path body` matches. */
export class HoldingProxy {
  private server!: Server;
  url!: string;
  private holds: { match: RegExp; hold: { held: number; released: boolean; waiters: (() => void)[] } }[] = [];
  private delays: { match: RegExp; ms: number }[] = [];

  constructor(private readonly target: string) {}

  async start(): Promise<this> {
    const t = new URL(this.target);
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', async () => {
        const line = `${req.method} ${req.url} ${Buffer.concat(chunks).toString('utf8')}`;
        const d = this.delays.find((x) => x.match.test(line));
        if (d) await new Promise((r) => setTimeout(r, d.ms));
        const h = this.holds.find((x) => !x.hold.released && x.match.test(line));
        if (h) {
          h.hold.held++;
          await new Promise<void>((r) => h.hold.waiters.push(r));
        }
        const fwd = request({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: { ...req.headers, host: t.host } }, (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        });
        fwd.on('error', () => res.destroyed || res.writeHead(502).end());
        fwd.end(Buffer.concat(chunks));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  /** Every matching request waits `ms` before it is forwarded (a slow GitHub). */
  delay(match: RegExp, ms: number): void {
    this.delays.push({ match, ms });
  }

  hold(match: RegExp): Hold {
    const hold = { held: 0, released: false, waiters: [] as (() => void)[] };
    this.holds.push({ match, hold });
    return {
      get held() {
        return hold.held;
      },
      release() {
        hold.released = true;
        for (const w of hold.waiters.splice(0)) w();
      },
    };
  }

  async close(): Promise<void> {
    for (const h of this.holds) {
      h.hold.released = true;
      for (const w of h.hold.waiters.splice(0)) w();
    }
    this.server.closeAllConnections?.();
    await new Promise((r) => this.server.close(r));
  }
}
