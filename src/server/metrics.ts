// Prometheus metrics (prom-client), served at GET /metrics on Probot's server.
// Each Metrics owns its Registry, so two apps (or two tests) in one process
// never collide over prom-client's global default registry. Callers record
// through small methods (`metrics.webhook(event, outcome)`), never through
// the prom-client objects, so label names stay in one place.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { IndexedContainerState } from '../store/store.js';
import { INDEXED_CONTAINER_STATES } from '../store/store.js';

export interface MetricsOptions {
  /** Node process metrics (CPU, memory, event loop lag); default true. */
  defaultMetrics?: boolean;
}

/** Seconds: from a quick apply to one that waits minutes on health checks. */
const APPLY_BUCKETS = [1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
/** Seconds: a tick is one list call plus a handful of queries. */
const TICK_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Metrics {
  readonly registry = new Registry();

  private readonly webhooks = new Counter({
    name: 'berth_webhooks_total',
    help: 'Webhook deliveries received, by event and outcome',
    labelNames: ['event', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly commands = new Counter({
    name: 'berth_commands_total',
    help: 'PR commands handled, by command and outcome',
    labelNames: ['command', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly applyDuration = new Histogram({
    name: 'berth_apply_duration_seconds',
    help: 'Wall time of applies from start to terminal state, by outcome',
    labelNames: ['outcome'] as const,
    buckets: APPLY_BUCKETS,
    registers: [this.registry],
  });
  private readonly tasks = new Counter({
    name: 'berth_tasks_total',
    help: 'Apply tasks that reached a state, by node kind and state',
    labelNames: ['kind', 'state'] as const,
    registers: [this.registry],
  });
  private readonly githubRequests = new Counter({
    name: 'berth_github_requests_total',
    help: 'GitHub API requests, by outcome (ok, client_error, server_error, rate_limited, network_error)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly rateLimit = new Gauge({
    name: 'berth_github_rate_limit_remaining',
    help: 'x-ratelimit-remaining of the latest GitHub API response',
    registers: [this.registry],
  });
  private readonly tickDuration = new Histogram({
    name: 'berth_drift_tick_duration_seconds',
    help: 'Duration of one drift reconciler tick, by target',
    labelNames: ['target'] as const,
    buckets: TICK_BUCKETS,
    registers: [this.registry],
  });
  private readonly ticks = new Counter({
    name: 'berth_drift_ticks_total',
    help: 'Drift reconciler ticks, by target and outcome (ok, lease_held, error)',
    labelNames: ['target', 'outcome'] as const,
    registers: [this.registry],
  });
  private readonly containers = new Gauge({
    name: 'berth_drift_containers',
    help: 'Containers in the drift index after the latest tick of each target, by state',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  private readonly drift = new Gauge({
    name: 'berth_drift_count',
    help: 'Drifted replicas and services (missing, stopped, changed config, unexpected) in the latest drift report',
    registers: [this.registry],
  });

  /** Latest per-target state counts; the gauge shows their sum. */
  private readonly containersByTarget = new Map<string, Partial<Record<IndexedContainerState, number>>>();

  constructor(opts: MetricsOptions = {}) {
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    // Every state is exposed from the start (0), so dashboards see the series before the first tick.
    for (const s of INDEXED_CONTAINER_STATES) this.containers.set({ state: s }, 0);
  }

  /** A webhook delivery was handled: outcome e.g. `handled`, `duplicate`, `ignored`, `failed`. */
  webhook(event: string, outcome: string): void {
    this.webhooks.inc({ event, outcome });
  }

  /** A PR command was handled: outcome e.g. `ok`, `denied`, `invalid`, `failed`. */
  command(command: string, outcome: string): void {
    this.commands.inc({ command, outcome });
  }

  /** An apply reached a terminal state (completed, failed, stopped) after `seconds`. */
  applyFinished(outcome: string, seconds: number): void {
    this.applyDuration.observe({ outcome }, Math.max(0, seconds));
  }

  /** A task reached `state` (count each transition once). */
  task(kind: string, state: string): void {
    this.tasks.inc({ kind, state });
  }

  /** A GitHub API call finished; `remaining` is the x-ratelimit-remaining header when the response had one. */
  githubRequest(outcome: string, remaining?: number): void {
    this.githubRequests.inc({ outcome });
    if (remaining !== undefined && Number.isFinite(remaining)) this.rateLimit.set(remaining);
  }

  rateLimitRemaining(remaining: number): void {
    if (Number.isFinite(remaining)) this.rateLimit.set(remaining);
  }

  /** One reconciler tick of `target` took `seconds`; outcome ok, lease_held or error. */
  driftTick(target: string, seconds: number, outcome: 'ok' | 'lease_held' | 'error' = 'ok'): void {
    this.ticks.inc({ target, outcome });
    if (outcome !== 'lease_held') this.tickDuration.observe({ target }, Math.max(0, seconds));
  }

  /** The drift index of `target` after a tick, counted by state. */
  driftContainers(target: string, counts: Partial<Record<IndexedContainerState, number>>): void {
    this.containersByTarget.set(target, counts);
    for (const s of INDEXED_CONTAINER_STATES) {
      let sum = 0;
      for (const c of this.containersByTarget.values()) sum += c[s] ?? 0;
      this.containers.set({ state: s }, sum);
    }
  }

  /** How many drift items the latest drift report found. */
  driftCount(n: number): void {
    this.drift.set(n);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition format. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

/** The outcome label for a GitHub response status (or a thrown request error). */
export function githubOutcome(status: number | undefined, headers?: Record<string, unknown>): string {
  if (status === undefined || status === 0) return 'network_error';
  if (status < 400) return 'ok';
  if ((status === 403 || status === 429) && (headers?.['x-ratelimit-remaining'] === '0' || headers?.['retry-after'] !== undefined)) return 'rate_limited';
  return status >= 500 ? 'server_error' : 'client_error';
}

interface OctokitLike {
  hook: {
    after(name: 'request', fn: (response: { status: number; headers: Record<string, unknown> }, options: unknown) => void): void;
    error(name: 'request', fn: (error: { status?: number; response?: { headers?: Record<string, unknown> } }, options: unknown) => unknown): void;
  };
}

const instrumented = new WeakSet<object>();

/**
 * Counts every request an Octokit makes (berth_github_requests_total) and
 * records x-ratelimit-remaining. Idempotent per Octokit instance; errors are
 * rethrown untouched so Probot's retry/throttling still sees them.
 */
export function instrumentOctokit(octokit: unknown, metrics: Metrics): void {
  const o = octokit as OctokitLike | undefined;
  if (!o?.hook || instrumented.has(o)) return;
  instrumented.add(o);
  const remaining = (h: Record<string, unknown> | undefined) => {
    const v = h?.['x-ratelimit-remaining'];
    return v === undefined ? undefined : Number(v);
  };
  o.hook.after('request', (response) => {
    metrics.githubRequest(githubOutcome(response.status, response.headers), remaining(response.headers));
  });
  o.hook.error('request', (error) => {
    const headers = error.response?.headers;
    metrics.githubRequest(githubOutcome(error.status, headers), remaining(headers));
    throw error;
  });
}

/**
 * A handler for Probot's `addHandler`: GET (or HEAD) `path` answers with the
 * exposition text; every other request is left to the next handler (false).
 */
export function metricsHandler(metrics: Metrics, path = '/metrics'): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    if (req.url?.split('?')[0] !== path) return false;
    try {
      const body = await metrics.text();
      res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`metrics unavailable: ${(err as Error)?.message ?? String(err)}\n`);
    }
    return true;
  };
}
