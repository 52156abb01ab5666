// /metrics: every named series is exposed (string assertions on the text
// exposition), the handler answers only GET/HEAD /metrics, the reconciler
// records its ticks, and an instrumented Octokit counts requests and the
// rate limit left.
import { generateKeyPairSync } from 'node:crypto';
import type Dockerode from 'dockerode';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { createNodeMiddleware, Probot, ProbotOctokit } from 'probot';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DockerLister } from '../src/drift/drift.js';
import { DriftReconciler } from '../src/drift/drift.js';
import { LABEL } from '../src/model/model.js';
import type { BerthServices } from '../src/index.js';
import { berth } from '../src/index.js';
import { githubOutcome, instrumentOctokit, Metrics, metricsHandler } from '../src/server/metrics.js';
import { Targets } from '../src/docker/targets.js';
import { sqliteTestStore } from './helpers/stores.js';
import { until } from './helpers/wait.js';

const SERIES = [
  'berth_webhooks_total',
  'berth_commands_total',
  'berth_apply_duration_seconds',
  'berth_tasks_total',
  'berth_github_requests_total',
  'berth_github_rate_limit_remaining',
  'berth_drift_tick_duration_seconds',
  'berth_drift_containers',
  'berth_drift_count',
];

describe('Metrics', () => {
  it('exposes every named series with HELP and TYPE, before anything is recorded', async () => {
    const text = await new Metrics({ defaultMetrics: false }).text();
    for (const name of SERIES) {
      expect(text).toContain(`# HELP ${name} `);
      expect(text).toMatch(new RegExp(`# TYPE ${name} (counter|gauge|histogram)`));
    }
    expect(text).toContain('# TYPE berth_apply_duration_seconds histogram');
    expect(text).toContain('# TYPE berth_drift_tick_duration_seconds histogram');
    expect(text).toContain('# TYPE berth_github_rate_limit_remaining gauge');
    expect(text).toContain('berth_drift_containers{state="missing"} 0');
  });

  it('records through its helpers, with the documented labels', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.webhook('issue_comment', 'handled');
    m.webhook('issue_comment', 'handled');
    m.webhook('pull_request', 'duplicate');
    m.command('apply', 'ok');
    m.command('plan', 'denied');
    m.applyFinished('completed', 12.5);
    m.task('CreateContainer', 'succeeded');
    m.githubRequest('ok', 4999);
    m.rateLimitRemaining(4998);
    m.driftTick('local', 0.02);
    m.driftTick('local', 0, 'lease_held');
    m.driftContainers('local', { running: 3, missing: 1 });
    m.driftContainers('edge', { running: 2 });
    m.driftContainers('local', { running: 4 }); // replaces local's previous counts
    m.driftCount(5);
    const text = await m.text();
    expect(text).toContain('berth_webhooks_total{event="issue_comment",outcome="handled"} 2');
    expect(text).toContain('berth_webhooks_total{event="pull_request",outcome="duplicate"} 1');
    expect(text).toContain('berth_commands_total{command="apply",outcome="ok"} 1');
    expect(text).toContain('berth_commands_total{command="plan",outcome="denied"} 1');
    expect(text).toContain('berth_apply_duration_seconds_bucket{le="30",outcome="completed"} 1');
    expect(text).toContain('berth_apply_duration_seconds_sum{outcome="completed"} 12.5');
    expect(text).toContain('berth_apply_duration_seconds_count{outcome="completed"} 1');
    expect(text).toContain('berth_tasks_total{kind="CreateContainer",state="succeeded"} 1');
    expect(text).toContain('berth_github_requests_total{outcome="ok"} 1');
    expect(text).toContain('berth_github_rate_limit_remaining 4998');
    expect(text).toContain('berth_drift_tick_duration_seconds_count{target="local"} 1'); // lease-held ticks are counted, not timed
    expect(text).toContain('berth_drift_ticks_total{target="local",outcome="lease_held"} 1');
    expect(text).toContain('berth_drift_containers{state="running"} 6');
    expect(text).toContain('berth_drift_containers{state="missing"} 0');
    expect(text).toContain('berth_drift_count 5');
  });

  it('two instances do not share a registry; default process metrics are on unless turned off', async () => {
    const a = new Metrics();
    const b = new Metrics();
    a.webhook('push', 'ignored');
    expect(await a.text()).toContain('berth_webhooks_total{event="push",outcome="ignored"} 1');
    expect(await b.text()).not.toContain('event="push"');
    expect(await a.text()).toContain('process_cpu_user_seconds_total');
    expect(await new Metrics({ defaultMetrics: false }).text()).not.toContain('process_cpu_user_seconds_total');
  });

  it.each([
    [200, {}, 'ok'],
    [304, {}, 'ok'],
    [404, {}, 'client_error'],
    [403, { 'x-ratelimit-remaining': '0' }, 'rate_limited'],
    [429, { 'retry-after': '30' }, 'rate_limited'],
    [403, { 'x-ratelimit-remaining': '12' }, 'client_error'],
    [502, {}, 'server_error'],
    [undefined, {}, 'network_error'],
  ])('githubOutcome(%s, %j) = %s', (status, headers, outcome) => {
    expect(githubOutcome(status, headers)).toBe(outcome);
  });
});

describe('metricsHandler over HTTP', () => {
  const metrics = new Metrics({ defaultMetrics: false });
  const handler = metricsHandler(metrics);
  const server = createServer((req, res) => {
    void handler(req, res).then((handled) => {
      if (!handled) res.writeHead(404).end('next handler');
    });
  });
  let base = '';
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
  });

  it('GET /metrics answers the text exposition with every named series', async () => {
    metrics.command('help', 'ok');
    const res = await fetch(`${base}/metrics?x=1`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const name of SERIES) expect(text).toContain(`# TYPE ${name} `);
    expect(text).toContain('berth_commands_total{command="help",outcome="ok"} 1');
  });

  it('leaves other paths and methods to the next handler', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(404);
    const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
  });
});

describe('instrumented', () => {
  it('the reconciler records tick durations and the index by state', async () => {
    const ts = await sqliteTestStore();
    try {
      const { id } = await ts.store.createApply({ repo: 'a/b', pr: null, environment: 'staging', kind: 'apply', actor: 'x', headSha: null, desiredDigest: 'd', planFingerprint: null, desiredJson: '{}', operations: [] });
      await ts.store.casApplyState(id, 0, { state: 'failed', finishedAt: Date.now() }); // not in flight, and not a drift reference
      const list = [
        { Id: 'c1', Names: ['/shop-staging-web-1'], State: 'running', Labels: { [LABEL.project]: 'shop', [LABEL.environment]: 'staging', [LABEL.service]: 'web', [LABEL.replica]: '1', [LABEL.configHash]: 'h', [LABEL.applyId]: id } },
        { Id: 'c2', Names: ['/shop-staging-web-2'], State: 'exited', Labels: { [LABEL.project]: 'shop', [LABEL.environment]: 'staging', [LABEL.service]: 'web', [LABEL.replica]: '2', [LABEL.configHash]: 'h', [LABEL.applyId]: id } },
      ] as unknown as Dockerode.ContainerInfo[];
      const docker: DockerLister = { listContainers: (async () => list) as DockerLister['listContainers'] };
      const metrics = new Metrics({ defaultMetrics: false });
      const r = new DriftReconciler({ store: ts.store, targets: ['local'], docker: () => docker, holder: 'h', metrics });
      await r.pass();
      const text = await metrics.text();
      expect(text).toContain('berth_drift_tick_duration_seconds_count{target="local"} 1');
      expect(text).toContain('berth_drift_ticks_total{target="local",outcome="ok"} 1');
      expect(text).toContain('berth_drift_containers{state="running"} 1');
      expect(text).toContain('berth_drift_containers{state="stopped"} 1');
      expect(text).toContain('berth_drift_count 0'); // no completed apply: nothing to drift from
    } finally {
      await ts.dispose();
    }
  });

  it('an Octokit counts its requests and the rate limit left, and still sees errors', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const fetchStub = async (url: string | URL | Request) => {
      const u = String(url);
      if (u.endsWith('/missing')) return new Response(JSON.stringify({ message: 'Not Found' }), { status: 404, headers: { 'content-type': 'application/json', 'x-ratelimit-remaining': '4990' } });
      return new Response('{}', { status: 200, headers: { 'content-type': 'application/json', 'x-ratelimit-remaining': '4991' } });
    };
    const octokit = new ProbotOctokit({ request: { fetch: fetchStub }, retry: { enabled: false }, throttle: { enabled: false } });
    instrumentOctokit(octokit, metrics);
    instrumentOctokit(octokit, metrics); // idempotent
    await octokit.request('GET /ok');
    await expect(octokit.request('GET /missing')).rejects.toMatchObject({ status: 404 });
    const text = await metrics.text();
    expect(text).toContain('berth_github_requests_total{outcome="ok"} 1');
    expect(text).toContain('berth_github_requests_total{outcome="client_error"} 1');
    expect(text).toContain('berth_github_rate_limit_remaining 4990');
  });
});

describe('the Probot app serves /metrics and runs the reconciler', () => {
  async function boot(over: Parameters<typeof berth>[0] = {}) {
    const ts = await sqliteTestStore();
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, privateKeyEncoding: { type: 'pkcs1', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } });
    const probot = new Probot({ appId: 1, privateKey, secret: 's', log: pino({ level: 'silent' }) });
    let services!: BerthServices;
    // An engine that is not there: the reconciler's ticks fail, visibly, and change nothing.
    const mw = await createNodeMiddleware(
      berth({ store: ts.store, targets: Targets.single('unix:///nonexistent/berth-test.sock'), recover: false, env: { DRIFT_INTERVAL: '10s' }, onReady: (s) => (services = s), ...over }),
      { probot },
    );
    const server = createServer((req, res) => void mw(req, res, () => res.writeHead(404).end()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return {
      url,
      services,
      close: async () => {
        await services.drift?.stop();
        await new Promise((r) => server.close(r));
        await ts.dispose();
      },
    };
  }

  it('GET /metrics on the app; the first reconciler pass runs at load', async () => {
    const app = await boot();
    try {
      expect(app.services.drift?.intervalMs).toBe(10_000);
      const text = await until('the first reconciler pass in /metrics', async () => {
        const res = await fetch(`${app.url}/metrics`);
        expect(res.status).toBe(200);
        const body = await res.text();
        return body.includes('berth_drift_ticks_total{target="local",outcome="error"} 1') && body;
      });
      expect(text).toContain('berth_drift_ticks_total{target="local",outcome="error"} 1');
      for (const name of SERIES) expect(text).toContain(`# TYPE ${name} `);
      expect((await fetch(`${app.url}/healthz`)).status).toBe(200); // the other handlers still answer
    } finally {
      await app.close();
    }
  });

  it('drift: false (or BERTH_DRIFT=off) starts no reconciler', async () => {
    const a = await boot({ drift: false });
    const b = await boot({ env: { BERTH_DRIFT: 'off' } });
    try {
      expect(a.services.drift).toBeUndefined();
      expect(b.services.drift).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
  });
});
