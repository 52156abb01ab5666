// The Probot app: wiring only. Each handler dedupes the delivery, parses the
// event and hands it to the Bot on a per-PR queue, detached from the webhook
// request so GitHub gets its answer at once. Slow work is tracked for
// shutdown; a failure is logged and reported on the PR, never fatal.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import type { ApplicationFunction, Context, Probot } from 'probot';
import type { Observer } from './apply.js';
import { Bot } from './bot.js';
import { observe } from './docker/observe.js';
import { DriftReconciler, parseDriftInterval } from './drift.js';
import { Executor } from './executor.js';
import type { GitHubPort, RepoRef } from './github.js';
import { parseRepo } from './github.js';
import { OctokitGitHub } from './github-octokit.js';
import { Lanes } from './lanes.js';
import { msg } from './messages.js';
import { instrumentOctokit, Metrics, metricsHandler } from './metrics.js';
import { ApplyRunner } from './runner.js';
import { openStore, redactUrl } from './store/open.js';
import type { Store } from './store/store.js';
import { Targets } from './targets.js';

export interface BerthServices {
  store: Store;
  targets: Targets;
  executor: Executor;
  runner: ApplyRunner;
  bot: Bot;
  metrics: Metrics;
  /** undefined when BERTH_DRIFT=off */
  drift: DriftReconciler | undefined;
  /** resolves when every detached webhook job has finished (tests, shutdown) */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export interface BerthOptions {
  env?: NodeJS.ProcessEnv;
  store?: Store;
  targets?: Targets;
  progressIntervalMs?: number;
  /** run crash recovery at start (default true) */
  recover?: boolean;
  /** default: a new Metrics (own registry) */
  metrics?: Metrics;
  /** run the drift reconciler (default: unless BERTH_DRIFT=off) */
  drift?: boolean;
  /** receives the services once the app is loaded (tests) */
  onReady?: (s: BerthServices) => void;
}

type Log = Probot['log'];

/** Detached jobs, serialised per key (one PR's events in order), tracked for idle/drain. */
class Work {
  private readonly lanes = new Lanes();
  private readonly jobs = new Set<Promise<unknown>>();
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  /** At most `limit` jobs run at once, so a burst of deliveries cannot starve the webhook endpoint itself. */
  constructor(private readonly limit = 4) {}

  run(key: string, fn: () => Promise<void>): void {
    const p = this.lanes.run(key, () => this.slot(fn)).finally(() => this.jobs.delete(p));
    this.jobs.add(p);
  }

  private async slot(fn: () => Promise<void>): Promise<void> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.waiting.push(r));
    else await new Promise<void>((r) => setImmediate(r)); // answer the webhook first
    this.active++;
    try {
      await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  async idle(): Promise<void> {
    while (this.jobs.size) await Promise.allSettled([...this.jobs]);
  }
}

export function berth(opts: BerthOptions = {}): ApplicationFunction {
  return async (app, { addHandler }) => {
    const env = opts.env ?? process.env;
    const log: Log = app.log;
    const store = opts.store ?? (await openStore(env.DATABASE_URL));
    if (!opts.store) log.info({ database: redactUrl(env.DATABASE_URL ?? 'sqlite:./.berth/berth.sqlite') }, 'berth store ready');
    const targets = opts.targets ?? Targets.fromEnv(env);
    const installations = new Map<string, number>();

    // ── metrics and drift (issue 5) ──────────────────────────────────────
    const metrics = opts.metrics ?? new Metrics();
    addHandler(metricsHandler(metrics));
    const interval = parseDriftInterval(env.DRIFT_INTERVAL);
    if (interval.warning) log.warn({ DRIFT_INTERVAL: env.DRIFT_INTERVAL }, interval.warning);
    const drift =
      (opts.drift ?? env.BERTH_DRIFT !== 'off')
        ? new DriftReconciler({ store, targets: targets.names(), docker: (t) => targets.docker(t), log, intervalMs: interval.ms, holder: `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`, metrics })
        : undefined;
    // ─────────────────────────────────────────────────────────────────────

    const githubFor = async (repo: string): Promise<GitHubPort> => {
      let id = installations.get(repo);
      if (id === undefined) {
        const r = parseRepo(repo);
        const appOctokit = await app.auth();
        const { data } = await appOctokit.rest.apps.getRepoInstallation({ owner: r.owner, repo: r.name });
        id = data.id;
        installations.set(repo, id);
      }
      const octokit = await app.auth(id);
      instrumentOctokit(octokit, metrics);
      return new OctokitGitHub(octokit);
    };

    let executor!: Executor;
    const runner = new ApplyRunner({ store, executor: () => executor, github: githubFor, log, metrics, ...(opts.progressIntervalMs !== undefined ? { progressIntervalMs: opts.progressIntervalMs } : {}) });
    executor = new Executor({ store, engine: (t) => targets.engine(t), lanes: new Lanes(), log, onProgress: (id) => runner.progress(id) });
    const observer: Observer = async (target, project, environment, desired) => (await observe(targets.docker(target), project, environment, desired)).observed;
    const bot = new Bot({ store, targets, observe: observer, runner, log, metrics, allowForks: env.BERTH_ALLOW_FORKS === 'true' });
    const work = new Work(Math.max(1, Number(env.BERTH_WEBHOOK_CONCURRENCY ?? 4)));

    const services: BerthServices = {
      store,
      targets,
      executor,
      runner,
      bot,
      metrics,
      drift,
      idle: async () => {
        await work.idle();
      },
      close: async () => {
        await work.idle();
        await runner.drain(Number(env.BERTH_DRAIN_TIMEOUT_MS ?? 30_000));
        await drift?.stop();
        await store.close();
      },
    };

    /** Dedupes the delivery, then runs `fn` detached on the PR's queue; failures are reported on the PR. */
    /** A payload without what the handler needs is not from GitHub (or not for berth): logged and dropped, never an error. */
    const malformed = (context: Context, missing: string) => {
      log.warn({ delivery: context.id, event: context.name, missing }, 'malformed webhook payload ignored');
      metrics.webhook(context.name, 'ignored');
    };

    const handle = async (context: Context, pr: number | undefined, fn: (gh: GitHubPort, repo: RepoRef) => Promise<void>) => {
      const payload = context.payload as { repository?: { full_name?: unknown }; installation?: { id?: unknown } };
      if (typeof payload.repository?.full_name !== 'string' || !payload.repository.full_name.includes('/')) return malformed(context, 'repository.full_name');
      // Every delivery to a GitHub App names its installation; without one there is no token to act with.
      if (typeof payload.installation?.id !== 'number') return malformed(context, 'installation.id');
      const full = payload.repository.full_name;
      installations.set(full, payload.installation.id);
      if (!(await store.recordDelivery(context.id, context.name))) {
        log.info({ delivery: context.id, event: context.name }, 'duplicate delivery ignored');
        metrics.webhook(context.name, 'duplicate');
        return;
      }
      const repo = parseRepo(full);
      instrumentOctokit(context.octokit, metrics);
      const gh = new OctokitGitHub(context.octokit as never);
      work.run(`${full}#${pr ?? 'repo'}`, async () => {
        try {
          await fn(gh, repo);
          metrics.webhook(context.name, 'handled');
        } catch (err) {
          metrics.webhook(context.name, 'failed');
          log.error({ delivery: context.id, event: context.name, repo: full, pr, err: String(err), stack: (err as Error)?.stack }, 'handler failed');
          if (pr !== undefined) await gh.createComment(repo, pr, msg.internalError(context.id)).catch((e) => log.error({ err: String(e) }, 'could not report the internal error'));
        }
      });
    };

    app.on(['pull_request.opened', 'pull_request.synchronize', 'pull_request.reopened', 'pull_request.ready_for_review'], async (context) => {
      const pr = context.payload.pull_request;
      if (typeof pr?.number !== 'number' || typeof pr.head?.sha !== 'string' || typeof pr.base?.repo?.full_name !== 'string') return malformed(context as unknown as Context, 'pull_request');
      await handle(context as unknown as Context, pr.number, async (gh, repo) => {
        if (pr.draft) return;
        await bot.planPullRequest(gh, repo, {
          number: pr.number,
          state: pr.state as 'open' | 'closed',
          merged: !!pr.merged,
          draft: !!pr.draft,
          headSha: pr.head.sha,
          headRepo: pr.head.repo?.full_name ?? null,
          baseRepo: pr.base.repo.full_name,
          mergeable: pr.mergeable ?? null,
          author: pr.user?.login ?? '',
          htmlUrl: pr.html_url,
        });
      });
    });

    app.on('pull_request.closed', async (context) => {
      const pr = context.payload.pull_request;
      if (typeof pr?.number !== 'number') return malformed(context as unknown as Context, 'pull_request.number');
      await handle(context as unknown as Context, pr.number, async (_gh, repo) => {
        await bot.pullClosed(repo, pr.number);
      });
    });

    app.on('issue_comment.created', async (context) => {
      const { issue, comment } = context.payload;
      if (typeof issue?.number !== 'number' || typeof comment?.id !== 'number') return malformed(context as unknown as Context, 'issue or comment');
      if (!issue.pull_request) return;
      // A command is only ever taken from a named user: without one, authorisation would be asked about nobody.
      if (typeof comment.user?.login !== 'string' || !comment.user.login) return malformed(context as unknown as Context, 'comment.user.login');
      await handle(context as unknown as Context, issue.number, async (gh, repo) => {
        await bot.handleComment(gh, repo, issue.number, { id: comment.id, body: comment.body ?? '', user: comment.user?.login ?? '', userType: comment.user?.type ?? 'User' });
      });
    });

    app.on('check_run.rerequested', async (context) => {
      const run = context.payload.check_run;
      if (typeof run?.name !== 'string' || !Array.isArray(run.pull_requests)) return malformed(context as unknown as Context, 'check_run');
      if (!run.name.startsWith('berth')) return;
      const pr = run.pull_requests[0]?.number;
      if (pr === undefined) return;
      await handle(context as unknown as Context, pr, async (gh, repo) => {
        const pull = await gh.getPull(repo, pr);
        const envName = run.name.startsWith('berth / ') ? run.name.slice('berth / '.length) : undefined;
        await bot.planPullRequest(gh, repo, pull, envName ? [envName] : undefined);
      });
    });

    addHandler(async (req: IncomingMessage, res: ServerResponse) => {
      const path = req.url?.split('?')[0];
      if (req.method !== 'GET') return false;
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ok' }));
        return true;
      }
      if (path === '/readyz') {
        const checks: Record<string, string> = {};
        let ok = true;
        try {
          await store.ping();
          checks.store = 'ok';
        } catch (err) {
          ok = false;
          checks.store = String((err as Error)?.message ?? err);
        }
        await Promise.all(
          targets.names().map(async (t) => {
            try {
              await targets.docker(t).ping();
              checks[`target:${t}`] = 'ok';
            } catch (err) {
              ok = false;
              checks[`target:${t}`] = String((err as Error)?.message ?? err);
            }
          }),
        );
        res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ready' : 'unready', checks }));
        return true;
      }
      return false;
    });

    const shutdown = async (signal: string) => {
      log.info({ signal, inFlight: runner.inFlight() }, 'shutting down: draining applies');
      const drained = await runner.drain(Number(env.BERTH_DRAIN_TIMEOUT_MS ?? 30_000));
      if (!drained) log.warn({ inFlight: runner.inFlight() }, 'drain timed out: open applies stay recoverable at next start');
      await drift?.stop();
      process.exit(0);
    };
    if (!opts.store) {
      process.once('SIGTERM', () => void shutdown('SIGTERM'));
      process.once('SIGINT', () => void shutdown('SIGINT'));
    }

    if (opts.recover ?? true) {
      // Applies a crash left open: re-check their running tasks, finish them, report as usual.
      // Again every interval: an apply whose dead driver still held its lease at start
      // (or that a dead replica was driving) becomes ours once that lease expires.
      let recovering = false;
      const recover = () => {
        if (recovering) return;
        recovering = true;
        void executor
          .recover()
          .then(async (results) => {
            for (const r of results) await runner.finish(r.applyId);
            if (results.length) log.info({ results }, 'recovered applies');
          })
          .catch((err) => log.error({ err: String(err) }, 'recovery failed'))
          .finally(() => (recovering = false));
      };
      recover();
      const every = Math.max(1000, Number(env.BERTH_RECOVER_INTERVAL_MS ?? 30_000));
      const timer = setInterval(recover, every);
      timer.unref();
      const close = services.close;
      services.close = async () => {
        clearInterval(timer);
        await close();
      };
    }
    drift?.start();
    opts.onReady?.(services);
  };
}

export default berth();
