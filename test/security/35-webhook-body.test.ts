// The webhook endpoint reads a request's body before its signature can be checked: the body is bounded
// (GitHub never sends more than 25 MB), a larger one is answered 413 without being read to its end; so are
// the bytes held for all bodies being read at once (503) and the time a body may take (408); what is not a
// delivery is answered without a byte read; a delivery within the bounds is handled as before. A body whose
// signature does not match is answered 400 and logged in one short line, never with its payload.
import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer, request } from 'node:http';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createNodeMiddleware, Probot } from 'probot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { berth } from '../../src/index.js';
import { limitWebhookBodies, MAX_WEBHOOK_BODY_BYTES } from '../../src/server/webhook-intake.js';
import { Targets } from '../../src/docker/targets.js';
import { sqliteTestStore, type TestStore } from '../helpers/stores.js';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
const SECRET = 's3cret';

/** POSTs `size` bytes in 1 MiB chunks (declaring Content-Length or chunked); stops writing once answered. */
/** `status` 'reset': the server closed the connection before its answer was read (the sender was still sending). */
function post(port: number, size: number, opts: { declare: boolean; declared?: number; headers?: Record<string, string>; end?: boolean }): Promise<{ status: number | 'reset'; body: string; written: number }> {
  return new Promise((resolve, reject) => {
    let written = 0;
    let answered = false;
    const headers: Record<string, string | number> = opts.headers ?? { 'content-type': 'application/json', 'x-github-event': 'ping', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': 'sha256=00' };
    if (opts.declare) headers['content-length'] = opts.declared ?? size;
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/api/github/webhooks', headers }, (res) => {
      answered = true;
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, body, written }));
      res.on('error', () => resolve({ status: res.statusCode!, body, written }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => (answered ? undefined : e.code === 'ECONNRESET' || e.code === 'EPIPE' ? resolve({ status: 'reset', body: '', written }) : reject(e)));
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const pump = () => {
      while (!answered && written < size) {
        const n = Math.min(chunk.length, size - written);
        written += n;
        if (!req.write(chunk.subarray(0, n))) return void req.once('drain', pump);
      }
      if (!answered && opts.end !== false) req.end();
    };
    pump();
  });
}

describe('the webhook endpoint bounds what it reads', () => {
  let ts: TestStore;
  let port: number;
  let close: () => Promise<unknown>;

  beforeAll(async () => {
    ts = await sqliteTestStore();
    const probot = new Probot({ appId: 1, privateKey, secret: SECRET, log: pino({ level: 'silent' }) });
    const mw = await createNodeMiddleware(berth({ store: ts.store, targets: Targets.single('unix:///var/run/docker.sock'), recover: false, drift: false }), { probot });
    const server = createServer((req, res) => void mw(req, res, () => res.writeHead(404).end()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    close = () => new Promise((r) => server.close(r));
  });
  afterAll(async () => {
    await close?.();
    await ts?.dispose();
  });

  it('a body declared larger than 25 MiB is answered 413 before it is read', async () => {
    const r = await post(port, 2 * 1024 * 1024, { declare: true, declared: 100 * 1024 * 1024 });
    expect(r.status).toBe(413);
    expect(r.body).toContain(`at most ${MAX_WEBHOOK_BODY_BYTES} bytes`);
  });

  it('a chunked body is answered 413 once it passes 25 MiB, while the sender is still sending', async () => {
    const r = await post(port, 64 * 1024 * 1024, { declare: false });
    // the 413 is sent and the connection closed; a sender still writing may see the close before the answer
    expect([413, 'reset']).toContain(r.status);
    // answered long before the 64 MiB were sent: the rest was never read
    expect(r.written).toBeLessThan(48 * 1024 * 1024);
  });

  it('a body within the bound reaches the signature check; a signed delivery is handled', async () => {
    const bad = await post(port, 1024, { declare: true });
    expect(bad.status).toBe(400);
    const body = JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 });
    const res = await fetch(`http://127.0.0.1:${port}/api/github/webhooks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-github-event': 'ping', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(body).digest('hex')}` },
      body,
    });
    expect(res.status).toBe(200);
    // and the app's other routes still answer
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
  });
});

describe('what is not a delivery, and many bodies at once', () => {
  /** A Probot with the intake's limits made small, and no app behind it. */
  async function small(limits: { maxBodyBytes: number; maxPendingBytes: number; readTimeoutMs: number }) {
    const probot = new Probot({ appId: 1, privateKey, secret: SECRET, log: pino({ level: 'silent' }) });
    limitWebhookBodies(probot, limits);
    const mw = await createNodeMiddleware(() => {}, { probot });
    const server = createServer((req, res) => void mw(req, res, () => res.writeHead(404).end()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { port: (server.address() as AddressInfo).port, close: () => new Promise((r) => (server.close(r), server.closeAllConnections())) };
  }

  it('a POST without GitHub\'s headers is answered without its body being read', async () => {
    const s = await small({ maxBodyBytes: 1000, maxPendingBytes: 1500, readTimeoutMs: 10_000 });
    try {
      // 2 MiB sent of a body that says it is 100 MiB, and never ended: answered (400, headers missing) all the same
      const r = await post(s.port, 2 * 1024 * 1024, { declare: true, declared: 100 * 1024 * 1024, end: false, headers: { 'content-type': 'application/json', 'x-github-event': 'ping' } });
      expect([400, 'reset']).toContain(r.status);
    } finally {
      await s.close();
    }
  });

  it('the bytes held for bodies being read at once are bounded (503), and so is the time one may take (408)', async () => {
    const s = await small({ maxBodyBytes: 1000, maxPendingBytes: 1500, readTimeoutMs: 500 });
    try {
      // two senders that stop half-way: the first holds 800 bytes, the second would take the total over 1,500
      const first = post(s.port, 800, { declare: true, declared: 1000, end: false });
      await new Promise((r) => setTimeout(r, 100));
      const second = await post(s.port, 800, { declare: true, declared: 1000, end: false });
      expect(second.status).toBe(503);
      // the first never finishes: refused once its time is up, and what it held is free again
      expect((await first).status).toBe(408);
      const third = await post(s.port, 900, { declare: true });
      expect(third.status).toBe(400); // read whole, then refused by the signature check
    } finally {
      await s.close();
    }
  });
});

describe('a delivery whose signature does not match', () => {
  it('is answered 400 and logged in one short line: its payload never reaches the log', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString()), done()) });
    const probot = new Probot({ appId: 1, privateKey, secret: SECRET, log: pino({ level: 'debug' }, sink) });
    limitWebhookBodies(probot);
    const mw = await createNodeMiddleware(() => {}, { probot });
    const server = createServer((req, res) => void mw(req, res, () => res.writeHead(404).end()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      // what anyone who reaches the endpoint could send: 2 MB of their own text, a signature of nothing
      const body = JSON.stringify({ action: 'created', forged: 'FORGED-PAYLOAD-'.repeat(140_000) });
      const delivery = randomUUID();
      const res = await fetch(`http://127.0.0.1:${port}/api/github/webhooks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-github-event': 'issue_comment', 'x-github-delivery': delivery, 'x-hub-signature-256': `sha256=${createHmac('sha256', 'not-the-secret').update(body).digest('hex')}` },
        body,
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: 'signature does not match event payload and secret' });
      await new Promise((r) => setTimeout(r, 50));
      const log = lines.join('');
      expect(log).not.toContain('FORGED-PAYLOAD');
      expect(log.length).toBeLessThan(2_000);
      const refused = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.delivery === delivery);
      expect(refused).toMatchObject({ event: 'issue_comment', bytes: Buffer.byteLength(body), msg: expect.stringContaining('signature does not match') });
      // a signed delivery still goes through
      const ok = JSON.stringify({ zen: 'Keep it logically awesome.', hook_id: 1 });
      const signed = await fetch(`http://127.0.0.1:${port}/api/github/webhooks`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-github-event': 'ping', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': `sha256=${createHmac('sha256', SECRET).update(ok).digest('hex')}` },
        body: ok,
      });
      expect(signed.status).toBe(200);
    } finally {
      await new Promise((r) => (server.close(r), server.closeAllConnections()));
    }
  });
});
