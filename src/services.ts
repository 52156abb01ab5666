// Builds what berth runs on from its options and environment: the store, the
// targets, the secret vault, metrics, drift, the apply runner and executor, the
// Bot, auto-apply and the webhook work queue. No handler lives here.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Probot } from 'probot';
import type { Observer } from './apply/prepare-apply.js';
import { AutoApply } from './github/auto-apply.js';
import { Bot } from './github/bot.js';
import { CommitCache } from './github/commit-cache.js';
import { observe } from './docker/observe.js';
import { DriftReconciler, parseDriftInterval } from './drift/drift.js';
import { Executor } from './apply/executor.js';
import type { GitHubPort } from './github/github.js';
import { parseRepo } from './github/github.js';
import { OctokitGitHub } from './github/octokit-github.js';
import type { BerthOptions, BerthServices } from './index.js';
import { Lanes } from './apply/lanes.js';
import { maskedGitHub, maskedLogger } from './text/outbound.js';
import { instrumentOctokit, Metrics } from './server/metrics.js';
import { ApplyRunner } from './apply/supervisor.js';
import { openStore, redactUrl } from './store/open.js';
import type { Store } from './store/store.js';
import { Targets } from './docker/targets.js';
import { pinThroughTargets, tagResolver } from './docker/resolve.js';
import type { Policy } from './compose/policy.js';
import { systemLookup } from './compose/registries.js';
import type { DesiredState } from './model/model.js';
import { Keyring, KEY_ENV, KEY_FILE_ENV } from './secrets/keyring.js';
import { SecretVault } from './secrets/vault.js';
import { Work } from './server/work.js';

export type Log = Probot['log'];

/** Everything the handlers, routes, recovery loop and shutdown need; `services` is what tests and callers see. */
export interface Services {
  env: NodeJS.ProcessEnv;
  /** berth's GitHub App id (APP_ID), when configured: a check suite or run of another app is not berth's */
  appId: number | undefined;
  log: ReturnType<typeof maskedLogger>;
  store: Store;
  targets: Targets;
  /** repository full name → installation id (from deliveries, or asked of GitHub) */
  installations: Map<string, number>;
  metrics: Metrics;
  drift: DriftReconciler | undefined;
  githubFor: (repo: string) => Promise<GitHubPort>;
  /** a commit's tree and files, remembered across events (immutable at a commit SHA; bounded by bytes) */
  commitCache: CommitCache;
  /** this process's identity: drives applies (their leases), holds targets and claims webhook deliveries */
  replica: string;
  leaseTtlMs: number;
  executor: Executor;
  runner: ApplyRunner;
  bot: Bot;
  auto: AutoApply;
  work: Work;
  services: BerthServices;
}

export async function createServices(app: Probot, opts: BerthOptions): Promise<Services> {
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
  // A malformed BERTH_COMMIT_CACHE_BYTES stops the start, naming the variable.
  // Its shared tier is the store: a restart or another replica does not read the same compose files again.
  const commitCache = CommitCache.fromEnv(env, store, (err) => log.warn({ err: String(err) }, 'file text cache in the store failed; read from GitHub instead'));

  // ── metrics and drift (issue 5) ──────────────────────────────────────
  const metrics = opts.metrics ?? new Metrics();
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
  // observe: an apply whose rollout stopped under failure_action: rollback starts the rollback of its updated replicas (issue 13).
  const runner = new ApplyRunner({ store, executor: () => executor, github: githubFor, log, metrics, observe: (...a) => observer(...a), ...(opts.progressIntervalMs !== undefined ? { progressIntervalMs: opts.progressIntervalMs } : {}) });
  executor = new Executor({ store, engine: (t) => targets.engine(t), lanes: new Lanes(), registryLookup: systemLookup, log, onProgress: (id) => runner.progress(id), holder: replica, leaseTtlMs, ...(vault ? { secrets: vault } : {}) });
  const observer: Observer = async (target, project, environment, opts) => (await observe(targets.docker(target), project, environment, opts)).observed;
  // Tag → digest pinning through the environment's first target (its engine and registry login), the others checked.
  // The registry policy first, with the server's DNS, so a refused registry is never queried (registries.ts).
  const resolveImagesFor = (desired: DesiredState, names: readonly string[], policy: Policy): Promise<DesiredState> => pinThroughTargets(targets, desired, names, env, { policy, lookup: systemLookup });
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

  const appId = /^[1-9]\d{0,15}$/.test(env.APP_ID ?? '') ? Number(env.APP_ID) : undefined;
  return { env, appId, log, store, targets, installations, metrics, drift, githubFor, commitCache, replica, leaseTtlMs, executor, runner, bot, auto, work, services };
}
