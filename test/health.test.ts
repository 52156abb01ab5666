// /healthz, /readyz and SIGTERM draining: readiness follows the store and
// every target's engine; draining waits for applies up to its timeout.
import { generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createNodeMiddleware, Probot } from 'probot';
import { afterEach, describe, expect, it } from 'vitest';
import type { Executor } from '../src/apply/executor.js';
import { berth } from '../src/index.js';
import { ApplyRunner } from '../src/apply/supervisor.js';
import type { AggregateState } from '../src/store/store.js';
import { Targets } from '../src/docker/targets.js';
import { describeDocker } from './helpers/env.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });

async function serve(targets: Targets, ts: TestStore) {
  const probot = new Probot({ appId: 1, privateKey, secret: 's', log: pino({ level: 'silent' }) });
  const mw = await createNodeMiddleware(berth({ store: ts.store, targets, recover: false, drift: false }), { probot });
  const server = createServer((req, res) => void mw(req, res, () => res.writeHead(404).end()));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, close: () => new Promise((r) => server.close(r)) };
}

describeDocker('/healthz and /readyz', () => {
  let ts: TestStore | undefined;
  afterEach(async () => ts?.dispose());

  it('ready when the store and the engine answer', async () => {
    ts = await sqliteTestStore();
    const s = await serve(Targets.single('unix:///var/run/docker.sock'), ts);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    const r = await fetch(`${s.url}/readyz`);
    expect(r.status).toBe(200);
    // Each target's transport and engine version (issue 12).
    expect(await r.json()).toEqual({ status: 'ready', checks: { store: 'ok', 'target:local': 'ok' }, targets: { local: { transport: 'unix', engine: expect.stringMatching(/^\d+\./), api: expect.stringMatching(/^\d+\.\d+$/) } } });
    await s.close();
  });

  it('unready (503) when a target engine socket is gone, still healthy', async () => {
    ts = await sqliteTestStore();
    const s = await serve(new Targets(new Map([['local', 'unix:///var/run/docker.sock'], ['edge', 'unix:///tmp/berth-no-such.sock']])), ts);
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    const r = await fetch(`${s.url}/readyz`);
    expect(r.status).toBe(503);
    const body = (await r.json()) as { status: string; checks: Record<string, string> };
    expect(body.status).toBe('unready');
    expect(body.checks['target:local']).toBe('ok');
    expect(body.checks['target:edge']).toMatch(/ENOENT|connect/);
    expect((body as unknown as { targets: Record<string, unknown> }).targets.edge).toEqual({ transport: 'unix' });
    await s.close();
  });

  it('unready when the store is closed', async () => {
    ts = await sqliteTestStore();
    const s = await serve(Targets.single('unix:///var/run/docker.sock'), ts);
    await ts.store.close();
    const r = await fetch(`${s.url}/readyz`);
    expect(r.status).toBe(503);
    expect(((await r.json()) as { checks: Record<string, string> }).checks.store).not.toBe('ok');
    await s.close();
    ts = undefined;
  });
});

describe('draining applies on shutdown', () => {
  /** A runner whose applies end only when the test says so: no timing decides the outcome. */
  function controlledRunner() {
    let end!: (s: AggregateState) => void;
    const ended = new Promise<AggregateState>((r) => (end = r));
    const executor = { run: (_id: string) => ended } as unknown as Executor;
    const silent = { info() {}, warn() {}, error() {} };
    const store = { getApply: async () => undefined } as never;
    const runner = new ApplyRunner({ store, executor: () => executor, github: async () => { throw new Error('no GitHub in this test'); }, log: silent });
    return { runner, end };
  }
  const turns = async (n: number) => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  };

  it('waits for in-flight applies to end', async () => {
    const { runner: r, end } = controlledRunner();
    void r.start('a1');
    expect(r.inFlight()).toEqual(['a1']);
    let drained: boolean | undefined;
    const draining = r.drain(60_000).then((v) => (drained = v));
    await turns(20);
    expect(drained).toBeUndefined(); // the apply has not ended, so draining has not either
    end('completed');
    await draining;
    expect(drained).toBe(true);
    expect(r.inFlight()).toEqual([]);
  });

  it('gives up after the timeout and leaves the apply to recovery', async () => {
    const { runner: r, end } = controlledRunner();
    void r.start('a2');
    // The apply never ends on its own: only drain's own timeout can answer (or the test times out).
    expect(await r.drain(100)).toBe(false);
    expect(r.inFlight()).toEqual(['a2']);
    end('completed');
  });
});
