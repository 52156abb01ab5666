// The Probot app: wiring only. Each handler routes the event, claims the
// delivery as a durable work item (payload stored) and hands it to the Bot on
// a per-PR queue, detached from the webhook request so GitHub gets its answer
// at once. Work is drained on shutdown and what a crash left unfinished runs
// again at start; a failure is logged and reported on the PR, never fatal.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import type { ApplicationFunction, Context, Probot } from 'probot';
import type { Observer } from './apply.js';
import { AutoApply } from './auto-apply.js';
import { Bot } from './bot.js';
import { observe } from './docker/observe.js';
import { DriftReconciler, parseDriftInterval } from './drift.js';
import { Executor } from './executor.js';
import type { GitHubPort, RepoRef } from './github.js';
import { parseRepo } from './github.js';
import { OctokitGitHub } from './github-octokit.js';
import { readOnce } from './github-reads.js';
import { Lanes } from './lanes.js';
import { msg } from './messages.js';
import { maskedGitHub, maskedLogger } from './outbound.js';
import { instrumentOctokit, Metrics, metricsHandler } from './metrics.js';
import { ApplyRunner } from './runner.js';
import { openStore, redactUrl } from './store/open.js';
import type { Store } from './store/store.js';
import { Targets } from './targets.js';
import { pinThroughTargets, tagResolver } from './docker/resolve.js';
import type { DesiredState } from './model.js';
import { Keyring, KEY_ENV, KEY_FILE_ENV } from './secrets/keyring.js';
import { SecretVault } from './secrets/vault.js';

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
    // Every line berth logs is masked (outbound.ts).
    const log = maskedLogger(app.log as Log);
    const store = opts.store ?? (await openStore(env.DATABASE_URL));
    if (!opts.store) log.info({ database: redactUrl(env.DATABASE_URL ?? 'sqlite:./.berth/berth.sqlite') }, 'berth store ready');
    const targets = opts.targets ?? Targets.fromEnv(env);
    // Server-side secrets (issue 18): a malformed key stops the start (fromEnv throws, naming the variable);
    // no key at all starts berth, and every environment that lists secrets is refused with the reason.
    const keyring = Keyring.fromEnv(env);
    const vault = keyring ? new SecretVault(store, keyring) : undefined;
    if (keyring) log.info({ keys: keyring.ids.length, current: keyring.currentId }, 'secret store ready');
    else log.warn({}, `no secret key configured (${KEY_FILE_ENV} or ${KEY_ENV}): server-side secrets are refused, never stored in clear`);
    const installations = new Map<string, number>();

    // ── metrics and drift (issue 5) ──────────────────────────────────────
    const metrics = opts.metrics ?? new Metrics();
    addHandler(metricsHandler(metrics));
    const interval = parseDriftInterval(env.DRIFT_INTERVAL);
    if (interval.warning) log.warn({ DRIFT_INTERVAL: env.DRIFT_INTERVAL }, interval.warning);
    const drift =
      (opts.drift ?? env.BERTH_DRIFT !== 'off')
        ? new DriftReconciler({
            store,
            targets: targets.names(),
            docker: (t) => targets.docker(t),
            log,
            intervalMs: interval.ms,
            holder: `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`,
            metrics,
            // A moved tag is drift too; the registry is asked at most every 10 minutes per tag and target.
            ...(env.BERTH_PIN_IMAGES === 'off' ? {} : { resolveTags: tagResolver(targets, Math.max(interval.ms, 10 * 60_000)) }),
          })
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
      return maskedGitHub(new OctokitGitHub(octokit));
    };

    // One identity per process: it drives applies (their leases), holds targets and claims webhook deliveries.
    const replica = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
    const leaseTtlMs = Math.max(300, Number(env.BERTH_LEASE_TTL_MS ?? 30_000));
    let executor!: Executor;
    const runner = new ApplyRunner({ store, executor: () => executor, github: githubFor, log, metrics, ...(opts.progressIntervalMs !== undefined ? { progressIntervalMs: opts.progressIntervalMs } : {}) });
    executor = new Executor({ store, engine: (t) => targets.engine(t), lanes: new Lanes(), log, onProgress: (id) => runner.progress(id), holder: replica, leaseTtlMs, ...(vault ? { secrets: vault } : {}) });
    const observer: Observer = async (target, project, environment, opts) => (await observe(targets.docker(target), project, environment, opts)).observed;
    // Tag → digest pinning through the environment's first target (its engine and registry login), the others checked.
    const resolveImagesFor = (desired: DesiredState, names: readonly string[]): Promise<DesiredState> => pinThroughTargets(targets, desired, names, env);
    const bot = new Bot({ store, targets, observe: observer, runner, log, metrics, allowForks: env.BERTH_ALLOW_FORKS === 'true', resolveImages: resolveImagesFor, ...(vault ? { secrets: vault } : {}) });
    // apply_on: merge | push (issue 14)
    const auto = new AutoApply({ store, observe: observer, runner, bot, log });
    const work = new Work(Math.max(1, Number(env.BERTH_WEBHOOK_CONCURRENCY ?? 4)));
    // The claims on deliveries this process works on stay live while it lives; a dead process's lapse.
    const heartbeat = setInterval(() => void store.renewDeliveries(replica, leaseTtlMs).catch((err) => log.warn({ err: String(err) }, 'could not renew delivery claims')), Math.floor(leaseTtlMs / 3));
    heartbeat.unref();

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
        clearInterval(heartbeat);
        await drift?.stop();
        await store.close();
      },
    };

    /** A payload without what the handler needs is not from GitHub (or not for berth): logged and dropped, never an error. */
    const malformed = (context: { id: string; name: string }, missing: string) => {
      log.warn({ delivery: context.id, event: context.name, missing }, 'malformed webhook payload ignored');
      metrics.webhook(context.name, 'ignored');
    };

    /** What a delivery asks of berth: the PR it belongs to (its queue) and the work. */
    type Job = { pr: number | undefined; run: (gh: GitHubPort, repo: RepoRef) => Promise<void> };
    type Payload = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

    /**
     * `<event>.<action>` and its payload → the job, `{ malformed }` when a field
     * the job needs is missing, undefined when it is not for berth. Pure, so a
     * stored delivery is routed again exactly as it was when it arrived.
     */
    const route = (event: string, payload: Payload): Job | { malformed: string } | undefined => {
      switch (event) {
        case 'pull_request.opened':
        case 'pull_request.synchronize':
        case 'pull_request.reopened':
        case 'pull_request.ready_for_review': {
          const pr = payload.pull_request;
          if (typeof pr?.number !== 'number' || typeof pr.head?.sha !== 'string' || typeof pr.base?.repo?.full_name !== 'string') return { malformed: 'pull_request' };
          return {
            pr: pr.number,
            run: async (gh, repo) => {
              // When berth first saw this head: a command written before it cannot have been about it (drafts included).
              await store.recordHead(payload.repository.full_name, pr.number, pr.head.sha);
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
            },
          };
        }
        case 'pull_request.closed': {
          const pr = payload.pull_request;
          if (typeof pr?.number !== 'number') return { malformed: 'pull_request.number' };
          return {
            pr: pr.number,
            run: async (gh, repo) => {
              // Merged: the apply_on: merge environments apply the merge commit under the PR's lock first.
              try {
                if (pr.merged === true && typeof pr.merge_commit_sha === 'string')
                  await auto.merged(gh, repo, pr.number, pr.merge_commit_sha, pr.merged_by?.login ?? payload.sender?.login ?? '');
              } finally {
                // Whatever happened to the merge apply, the PR's other locks go (those with an apply in flight when it ends).
                await bot.pullClosed(repo, pr.number);
              }
            },
          };
        }
        case 'push': {
          if (typeof payload.ref !== 'string' || typeof payload.after !== 'string') return { malformed: 'ref or after' };
          const branch = payload.repository?.default_branch;
          if (payload.deleted || !/^[0-9a-f]{40}$/.test(payload.after) || payload.ref !== `refs/heads/${branch}`) return undefined;
          if (typeof payload.repository?.full_name === 'string') auto.pushReceived(payload.repository.full_name, payload.after);
          return { pr: undefined, run: (gh, repo) => auto.pushed(gh, repo, payload.after, payload.sender?.login ?? payload.pusher?.name ?? '') };
        }
        case 'issue_comment.created': {
          const { issue, comment } = payload;
          if (typeof issue?.number !== 'number' || typeof comment?.id !== 'number') return { malformed: 'issue or comment' };
          if (!issue.pull_request) return undefined;
          // A command is only ever taken from a named user: without one, authorisation would be asked about nobody.
          if (typeof comment.user?.login !== 'string' || !comment.user.login) return { malformed: 'comment.user.login' };
          return {
            pr: issue.number,
            run: (gh, repo) =>
              bot.handleComment(gh, repo, issue.number, {
                id: comment.id,
                body: comment.body ?? '',
                user: comment.user?.login ?? '',
                userType: comment.user?.type ?? 'User',
                createdAt: String(comment.created_at ?? ''),
                updatedAt: String(comment.updated_at ?? comment.created_at ?? ''),
              }),
          };
        }
        case 'check_run.rerequested': {
          const run = payload.check_run;
          if (typeof run?.name !== 'string' || !Array.isArray(run.pull_requests)) return { malformed: 'check_run' };
          if (!run.name.startsWith('berth')) return undefined;
          const pr = run.pull_requests[0]?.number;
          if (pr === undefined) return undefined;
          return {
            pr,
            run: async (gh, repo) => {
              const pull = await gh.getPull(repo, pr);
              const envName = run.name.startsWith('berth / ') ? run.name.slice('berth / '.length) : undefined;
              await bot.planPullRequest(gh, repo, pull, envName ? [envName] : undefined);
            },
          };
        }
      }
      return undefined;
    };

    /** Runs a claimed delivery's job detached on its PR's queue; failures are reported on the PR; then it is done. */
    const enqueue = (delivery: { id: string; name: string }, full: string, job: Job, gh: GitHubPort) => {
      const repo = parseRepo(full);
      work.run(`${full}#${job.pr ?? 'repo'}`, async () => {
        try {
          // Each read of this event made once (config, trees, compose files at a commit).
          await job.run(readOnce(gh), repo);
          metrics.webhook(delivery.name, 'handled');
        } catch (err) {
          metrics.webhook(delivery.name, 'failed');
          log.error({ delivery: delivery.id, event: delivery.name, repo: full, pr: job.pr, err: String(err), stack: (err as Error)?.stack }, 'handler failed');
          if (job.pr !== undefined) await gh.createComment(repo, job.pr, msg.internalError(delivery.id)).catch((e) => log.error({ err: String(e) }, 'could not report the internal error'));
        } finally {
          // Done, handled or reported: a redelivery from now on is a duplicate.
          await store.finishDelivery(delivery.id).catch((err) => log.error({ delivery: delivery.id, err: String(err) }, 'could not mark the delivery done'));
        }
      });
    };

    /** Validates, claims the delivery as a durable work item (payload stored), then runs it detached. */
    const handle = async (context: Context, event: string) => {
      const payload = context.payload as Payload;
      const job = route(event, payload);
      if (!job) return;
      if ('malformed' in job) return malformed(context, job.malformed);
      if (typeof payload.repository?.full_name !== 'string' || !payload.repository.full_name.includes('/')) return malformed(context, 'repository.full_name');
      // Every delivery to a GitHub App names its installation; without one there is no token to act with.
      if (typeof payload.installation?.id !== 'number') return malformed(context, 'installation.id');
      const full = payload.repository.full_name as string;
      installations.set(full, payload.installation.id);
      // Only a delivery whose work is done (or is being done by a live process) is a duplicate.
      if (!(await store.claimDelivery(context.id, event, JSON.stringify(payload), replica, leaseTtlMs))) {
        log.info({ delivery: context.id, event: context.name }, 'duplicate delivery ignored');
        metrics.webhook(context.name, 'duplicate');
        return;
      }
      instrumentOctokit(context.octokit, metrics);
      enqueue(context, full, job, maskedGitHub(new OctokitGitHub(context.octokit as never)));
    };

    /** Deliveries a crash or a shutdown left unfinished (their claim lapsed): run again, each by one process. */
    const resumeDeliveries = async () => {
      for (const d of await store.pendingDeliveries(100)) {
        let payload: Payload;
        try {
          payload = JSON.parse(d.payload) as Payload;
        } catch {
          await store.finishDelivery(d.deliveryId);
          continue;
        }
        const job = route(d.event, payload);
        const full = payload.repository?.full_name;
        if (!job || 'malformed' in job || typeof full !== 'string' || typeof payload.installation?.id !== 'number') {
          await store.finishDelivery(d.deliveryId);
          continue;
        }
        if (!(await store.claimDelivery(d.deliveryId, d.event, d.payload, replica, leaseTtlMs))) continue;
        installations.set(full, payload.installation.id);
        let gh: GitHubPort;
        try {
          gh = await githubFor(full);
        } catch (err) {
          // Not done: given back, tried again at the next pass.
          log.error({ delivery: d.deliveryId, err: String(err) }, 'no GitHub client to resume a delivery');
          await store.releaseDeliveries(replica).catch(() => 0);
          continue;
        }
        log.info({ delivery: d.deliveryId, event: d.event, repo: full }, 'resuming an unfinished delivery');
        enqueue({ id: d.deliveryId, name: d.event.split('.')[0]! }, full, job, gh);
      }
    };

    app.on(['pull_request.opened', 'pull_request.synchronize', 'pull_request.reopened', 'pull_request.ready_for_review', 'pull_request.closed'], async (context) => {
      await handle(context as unknown as Context, `pull_request.${context.payload.action}`);
    });
    app.on('issue_comment.created', async (context) => {
      await handle(context as unknown as Context, 'issue_comment.created');
    });
    app.on('push', async (context) => {
      await handle(context as unknown as Context, 'push');
    });
    app.on('check_run.rerequested', async (context) => {
      await handle(context as unknown as Context, 'check_run.rerequested');
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
        // Each target's transport and engine version: which way berth reaches it and what answers.
        const described = await targets.describeAll();
        const engines: Record<string, { transport: string; engine?: string; api?: string }> = {};
        for (const [t, d] of Object.entries(described)) {
          checks[`target:${t}`] = d.error ?? 'ok';
          if (d.error) ok = false;
          engines[t] = { transport: d.transport, ...(d.version ? { engine: d.version, api: d.api } : {}) };
        }
        res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ready' : 'unready', checks, targets: engines }));
        return true;
      }
      return false;
    });

    const shutdown = async (signal: string) => {
      log.info({ signal, inFlight: runner.inFlight() }, 'shutting down: draining webhook work and applies');
      const timeoutMs = Number(env.BERTH_DRAIN_TIMEOUT_MS ?? 30_000);
      const started = Date.now();
      const worked = await Promise.race([work.idle().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
      if (!worked) {
        // Given back at once: the next start (or another replica) runs them without waiting for the claims to lapse.
        await store.releaseDeliveries(replica).catch(() => 0);
        log.warn({}, 'drain timed out: unfinished webhook work runs again at next start');
      }
      const drained = await runner.drain(Math.max(0, timeoutMs - (Date.now() - started)));
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
        void resumeDeliveries()
          .catch((err) => log.error({ err: String(err) }, 'resuming deliveries failed'))
          .then(() => executor.recover())
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
