// The Probot app: the composition root. Services are built once (services.ts);
// each webhook event's handler claims its delivery as a durable work item and
// runs it detached on a per-PR queue (github/webhooks/); health, readiness and
// metrics are HTTP routes (server/routes.ts). Work is drained on shutdown
// (server/shutdown.ts) and what a crash left unfinished runs again at start
// and every interval (apply/recovery-loop.ts).
import type { ApplicationFunction } from 'probot';
import { startRecoveryLoop } from './apply/recovery-loop.js';
import type { DriftReconciler } from './drift/drift.js';
import type { Executor } from './apply/executor.js';
import { checkRunRoutes, onCheckRun } from './github/webhooks/check-run.js';
import { deliveries } from './github/webhooks/delivery.js';
import { issueCommentRoutes, onIssueComment } from './github/webhooks/issue-comment.js';
import { onPullRequest, pullRequestRoutes } from './github/webhooks/pull-request.js';
import { onPush, pushRoutes } from './github/webhooks/push.js';
import type { Bot } from './github/bot.js';
import type { Metrics } from './server/metrics.js';
import type { ApplyRunner } from './apply/supervisor.js';
import { healthz, metricsRoute, readyz } from './server/routes.js';
import { onSignals } from './server/shutdown.js';
import { limitWebhookBodies } from './server/webhook-intake.js';
import { createServices } from './services.js';
import type { Store } from './store/store.js';
import type { Targets } from './docker/targets.js';

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

export function berth(opts: BerthOptions = {}): ApplicationFunction {
  return async (app, { addHandler }) => {
    // Before anything else: whoever mounts Probot's webhook middleware gets it with a bound on the body.
    limitWebhookBodies(app);
    const s = await createServices(app, opts);
    // A route is the pure routing of one `<event>.<action>`: a stored delivery is routed again exactly as it arrived.
    const d = deliveries(s, { ...pullRequestRoutes(s), ...issueCommentRoutes(s), ...pushRoutes(s), ...checkRunRoutes(s) });
    onPullRequest(app, d);
    onIssueComment(app, d);
    onPush(app, d);
    onCheckRun(app, d);
    [metricsRoute(s), healthz(s), readyz(s)].forEach((h) => addHandler(h));
    if (!opts.store) onSignals(s);
    if (opts.recover ?? true) startRecoveryLoop(s, d.resume);
    s.drift?.start();
    opts.onReady?.(s.services);
  };
}

export default berth();
