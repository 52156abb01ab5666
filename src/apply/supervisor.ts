// Runs applies detached from the webhook that asked for them, keeps track of
// them for shutdown, and reports progress and outcome to GitHub. Reporting
// failures are logged and never touch the apply itself.
import { Deployments, lookup } from '../github/deployments.js';
import type { DeploymentSpec } from '../github/deployments.js';
import type { Executor, Handover } from './executor.js';
import { parsePayload } from './executor.js';
import type { CheckConclusion, GitHubPort } from '../github/github.js';
import { parseRepo } from '../github/github.js';
import { block, code, formatDuration, MARKER, msg } from '../github/messages.js';
import { learnApply, outText } from '../text/outbound.js';
import { applyGantt } from '../plan/mermaid.js';
import type { AggregateState, ApplyRow, Fence, Store, TaskRow } from '../store/store.js';
import { decideAutoRollback, earlierCompleted, startAutoRollback, type StartedRollback } from './auto-rollback.js';
import type { Observer } from './prepare-apply.js';
import { TERMINAL_TASK_STATES } from '../store/store.js';
import { HeldLease } from './lease.js';

export interface RunnerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface RunnerOptions {
  store: Store;
  /** resolved lazily: the executor calls back into the runner for progress */
  executor: () => Executor;
  /** a GitHub client for a repository (owner/name) */
  github: (repo: string) => Promise<GitHubPort>;
  log: RunnerLogger;
  /** counters for /metrics (optional) */
  metrics?: { applyFinished(outcome: string, seconds: number): void; task(kind: string, state: string): void };
  /** attempts at the final check run and outcome comment (default 4, backoff from reportRetryMs, default 1 s) */
  reportAttempts?: number;
  reportRetryMs?: number;
  /** minimum time between two progress updates of one check run (default 2 s) */
  progressIntervalMs?: number;
  now?: () => number;
  /**
   * Observes targets: with it, an apply that ends failed because a rollout stopped under
   * `failure_action: rollback` after some replicas were updated starts the rollback of those
   * services by itself (issue 13). Without it (tools, some tests) nothing is started.
   */
  observe?: Observer;
}

export const CONCLUSION: Record<'completed' | 'failed' | 'stopped', CheckConclusion> = {
  completed: 'success',
  failed: 'failure',
  stopped: 'cancelled',
};

/** The hidden line an apply's outcome comment carries: a re-sent report finds the comment by it. */
export function outcomeMarker(applyId: string): string {
  return `<!-- berth:outcome:${applyId} -->`;
}

const rateLimited = (e: { status?: number; message?: string; response?: { headers?: Record<string, string> } }) =>
  /rate limit|abuse/i.test(String(e?.message)) || e?.response?.headers?.['retry-after'] !== undefined || e?.response?.headers?.['x-ratelimit-remaining'] === '0';

/**
 * A refusal no retry changes, not retried at all: 403 that is not a rate limit (the app lacks a permission:
 * "Resource not accessible by integration"), 410 Gone. Everything else is retried (a 404 or 422 can be
 * GitHub's replication lag or a stand-in's fault).
 */
function forbidden(err: unknown): boolean {
  const e = err as { status?: number; message?: string; response?: { headers?: Record<string, string> } };
  return (e?.status === 403 && !rateLimited(e)) || e?.status === 410;
}

/** A 4xx other than a rate limit or a timeout: after the retries, GitHub's answer for good. */
function clientError(err: unknown): boolean {
  const e = err as { status?: number; message?: string; response?: { headers?: Record<string, string> } };
  const status = e?.status;
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 408 && status !== 429 && !rateLimited(e);
}

export function checkName(env: string): string {
  return `berth / ${env}`;
}

export function progressSummary(apply: ApplyRow, tasks: TaskRow[]): { title: string; summary: string } {
  // Steps that ran to an end; cancelled and skipped ones are counted apart, never as done (a /stop's
  // last progress had read "30/30 steps" when 28 of them had been cancelled).
  const done = tasks.filter((t) => t.state === 'succeeded' || t.state === 'failed').length;
  const dropped = tasks.filter((t) => t.state === 'cancelled' || t.state === 'skipped').length;
  const running = tasks.filter((t) => t.state === 'running');
  const failed = tasks.filter((t) => t.state === 'failed');
  const droppedNote = dropped ? `, ${dropped} not run` : '';
  const lines = [`**${done}/${tasks.length}** steps done${droppedNote} · state ${code(apply.state)}`];
  if (running.length) lines.push('', 'Running now:', ...running.slice(0, 10).map((t) => `- ${t.kind} ${code(t.resource)}`));
  if (failed.length) lines.push('', 'Failed:', ...failed.slice(0, 10).map((t) => `- ${t.kind} ${code(t.resource)}: ${code((t.error ?? '').slice(0, 300))}`));
  const verb = apply.state === 'stopping' || apply.stopRequested ? 'Stopping' : 'Applying';
  return { title: `${verb} ${apply.environment}: ${done}/${tasks.length} steps${droppedNote}`, summary: lines.join('\n') };
}

export function finalSummary(apply: ApplyRow, tasks: TaskRow[]): { title: string; summary: string; failure?: { step: string; error: string } } {
  const count = (s: string) => tasks.filter((t) => t.state === s).length;
  const dur = formatDuration((apply.finishedAt ?? Date.now()) - (apply.startedAt ?? apply.createdAt));
  const failedTask = tasks.find((t) => t.state === 'failed');
  const failure = failedTask ? { step: `${failedTask.kind} ${failedTask.resource}`, error: failedTask.error ?? '(no message)' } : undefined;
  const title =
    apply.state === 'completed' ? `Applied ${apply.environment} in ${dur}` : apply.state === 'stopped' ? `Apply to ${apply.environment} stopped` : `Apply to ${apply.environment} failed`;
  const lines = [
    `Apply ${code(apply.id)} ended ${code(apply.state)} after ${dur}.`,
    '',
    `| succeeded | failed | skipped | cancelled |`,
    `|---|---|---|---|`,
    `| ${count('succeeded')} | ${count('failed')} | ${count('skipped')} | ${count('cancelled')} |`,
  ];
  if (failure) lines.push('', `**Failed step:** ${code(failure.step)}`, '', block(failure.error));
  return { title, summary: lines.join('\n'), ...(failure ? { failure } : {}) };
}

export class ApplyRunner {
  private readonly tracked = new Map<string, Promise<AggregateState | undefined>>();
  private readonly lastReport = new Map<string, number>();
  private readonly pending = new Map<string, NodeJS.Timeout>();
  /** progress writes on their way to GitHub (maybe deep in the client's retries): the final one waits for them */
  private readonly reporting = new Map<string, Promise<void>>();
  private readonly now: () => number;
  /** start reports still on their way, by apply */
  private readonly started = new Map<string, Promise<void>>();
  /** GitHub deployments of applies (issue 14) */
  readonly deployments: Deployments;

  constructor(private readonly o: RunnerOptions) {
    this.now = o.now ?? Date.now;
    this.deployments = new Deployments({ store: o.store, log: o.log });
  }

  /** Reports a started apply as a GitHub deployment (detached; never affects the apply). */
  deploy(gh: GitHubPort, apply: Pick<ApplyRow, 'id' | 'repo' | 'environment' | 'checkRunId'>, spec: DeploymentSpec): Promise<void> {
    return this.deployments.start(gh, apply, spec);
  }

  /** Who drives applies in this process, and for how long a lease lasts: startApply leases new applies to it. */
  lease(): { holder: string; ttlMs: number } {
    const e = this.o.executor();
    return { holder: e.holder, ttlMs: e.leaseTtlMs };
  }

  /**
   * Starts (or joins) the apply in the background and reports its end.
   * `lease`: the lease startApply took for this process with the apply (with the rows it wrote: a handover);
   * `started`: the start report (check run and comment) on its way. Work
   * does not wait for it; progress and the final report do, so they come
   * after it and update the check run it created.
   */
  start(applyId: string, lease?: Fence | Handover, started?: Promise<unknown>): Promise<AggregateState | undefined> {
    let p = this.tracked.get(applyId);
    if (p) return p;
    if (started) {
      const s = started.then(
        () => undefined,
        () => undefined,
      );
      this.started.set(applyId, s);
    }
    p = (async () => {
      // This process owes the apply's report from now until it is out: its report lease tells every
      // recovery pass (of any replica) to leave the apply alone, also between its end and the claim.
      const held = await this.holdReport(applyId);
      try {
        const state = await this.o.executor().run(applyId, lease ?? false);
        await this.finish(applyId);
        return state;
      } finally {
        await held?.release();
      }
    })()
      .catch((err) => {
        this.o.log.error({ applyId, err: String(err), stack: (err as Error)?.stack }, 'apply driver crashed');
        return undefined;
      })
      .finally(() => {
        this.tracked.delete(applyId);
        this.started.delete(applyId);
      });
    this.tracked.set(applyId, p);
    return p;
  }

  inFlight(): string[] {
    return [...this.tracked.keys()];
  }

  /** The lease `report:<id>`: held by the process that owes an apply's report (undefined when another holds it). */
  private async holdReport(applyId: string): Promise<HeldLease | undefined> {
    const { holder, ttlMs } = this.lease();
    try {
      return await HeldLease.take(this.o.store, `report:${applyId}`, holder, ttlMs, this.now, this.o.log);
    } catch (err) {
      // Without it a recovery pass may report the apply first: still once (the claim), maybe before its start report.
      this.o.log.warn({ applyId, err: String(err) }, 'could not take the report lease');
      return undefined;
    }
  }

  private async leased(name: string): Promise<boolean> {
    const l = await this.o.store.getLease(name);
    return l !== undefined && l.expiresAt > this.now();
  }

  /**
   * Reports the ended applies nobody reported: their process died after the
   * apply ended and before its report was claimed (a recovery pass, at start
   * and every interval). An apply whose driver (`apply:<id>`) or reporter
   * (`report:<id>`) lease is live is someone's, this process's included; the
   * others are taken one by one under their report lease (compare-and-set:
   * one replica each), then finished as usual — the automatic rollback owed
   * first (once: by its link), then the report claimed and sent once.
   * Returns the applies reported here.
   */
  async recoverReports(): Promise<string[]> {
    const owed = await this.o.store.listUnreportedApplies();
    const done: string[] = [];
    for (const a of owed) {
      if (this.tracked.has(a.id)) continue;
      if ((await this.leased(`apply:${a.id}`)) || (await this.leased(`report:${a.id}`))) continue;
      const { holder, ttlMs } = this.lease();
      const held = await HeldLease.take(this.o.store, `report:${a.id}`, holder, ttlMs, this.now, this.o.log);
      if (!held) continue;
      try {
        // Another replica may have reported it between the listing and the lease.
        if (!(await this.o.store.listUnreportedApplies()).some((x) => x.id === a.id)) continue;
        this.o.log.info({ applyId: a.id, state: a.state }, 'reporting an ended apply whose report was owed');
        if (await this.finish(a.id)) done.push(a.id);
      } finally {
        await held.release();
      }
    }
    return done;
  }

  /** Waits for tracked applies up to the timeout; true when all ended. What is left stays recoverable. */
  async drain(timeoutMs: number): Promise<boolean> {
    const all = Promise.all(this.tracked.values()).then(() => true);
    const timer = new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref());
    return Promise.race([all, timer]);
  }

  /** Executor progress callback: throttled check-run updates, the last one always delivered. */
  progress(applyId: string): void {
    const interval = this.o.progressIntervalMs ?? 2000;
    const since = this.now() - (this.lastReport.get(applyId) ?? 0);
    if (this.pending.has(applyId)) return;
    const fire = () => {
      this.pending.delete(applyId);
      this.lastReport.set(applyId, this.now());
      const p = this.reportProgress(applyId).finally(() => {
        if (this.reporting.get(applyId) === p) this.reporting.delete(applyId);
      });
      this.reporting.set(applyId, p);
    };
    if (since >= interval) fire();
    else this.pending.set(applyId, setTimeout(fire, interval - since).unref());
  }

  private async reportProgress(applyId: string): Promise<void> {
    try {
      await this.started.get(applyId);
      const apply = await this.o.store.getApply(applyId);
      if (!apply?.checkRunId || apply.state === 'completed' || apply.state === 'failed' || apply.state === 'stopped') return;
      learnApply(apply);
      const tasks = await this.o.store.listTasksForApply(applyId);
      const gh = await this.o.github(apply.repo);
      await gh.updateCheckRun(parseRepo(apply.repo), apply.checkRunId, { status: 'in_progress', ...progressSummary(apply, tasks) });
    } catch (err) {
      this.o.log.warn({ applyId, err: String(err) }, 'progress report failed');
    }
  }

  /**
   * Final check run, outcome comment, and the lock bookkeeping of an ended
   * apply. Whoever ends or recovers an apply calls this, in any process: the
   * report is claimed in the store (holder and time), sent, then marked
   * reported; a claim whose holder died before the sends were done lapses
   * after a lease and is taken over by a recovery pass, which sends the report
   * again without repeating any of it on GitHub (report()). True when this
   * caller sent (or tried to send) the report.
   */
  async finish(applyId: string): Promise<boolean> {
    const t = this.pending.get(applyId);
    if (t) clearTimeout(t);
    this.pending.delete(applyId);
    this.lastReport.delete(applyId);
    // The start report first (the check run to complete, the comment the outcome answers).
    await this.started.get(applyId);
    // A late `in_progress` would land after the final update and leave the check running forever.
    await this.reporting.get(applyId);
    const ended = await this.o.store.getApply(applyId);
    if (!ended || !(ended.state === 'completed' || ended.state === 'failed' || ended.state === 'stopped')) return false;
    // A rollout stopped under failure_action: rollback with replicas already updated: their rollback starts
    // first, before the report is claimed, so a crash between the two loses at most the report, never the
    // rollback (a second caller finds the one started, by its link). Its own start report waits for this one.
    let thisReported!: () => void;
    const reportedHere = new Promise<void>((r) => (thisReported = r));
    try {
      let followUp: string | undefined;
      try {
        followUp = await this.autoRollback(ended, reportedHere);
      } catch (err) {
        this.o.log.error({ applyId, err: String(err), stack: (err as Error)?.stack }, 'automatic rollback decision failed');
      }
      // A claim already there is one its holder never finished (it died between the claim and the sends,
      // or GitHub refused a send): this report is a re-send, each step of which must not repeat on GitHub.
      const resend = (await this.o.store.reportClaim(applyId)) !== undefined;
      const { holder, ttlMs } = this.lease();
      if (!(await this.o.store.claimReport(applyId, { holder, ttlMs }))) {
        const gh = await this.o.github(ended.repo).catch((err) => void this.o.log.warn({ applyId, err: String(err) }, 'no GitHub client to read the PR state; lock kept'));
        await this.releaseAfter(ended, gh ?? undefined);
        return false;
      }
      // Re-read after the claim: the row as it ended, with the check run the start report stored.
      const apply = (await this.o.store.getApply(applyId)) ?? ended;
      if (!(apply.state === 'completed' || apply.state === 'failed' || apply.state === 'stopped')) return false;
      learnApply(apply);
      const tasks = await this.o.store.listTasksForApply(applyId);
      const fin = finalSummary(apply, tasks);
      if (!resend) {
        this.o.metrics?.applyFinished(apply.state, ((apply.finishedAt ?? this.now()) - (apply.startedAt ?? apply.createdAt)) / 1000);
        for (const t of tasks) this.o.metrics?.task(t.kind, t.state);
      }
      let gh: GitHubPort | undefined;
      try {
        gh = await this.o.github(apply.repo);
      } catch (err) {
        this.o.log.error({ applyId, err: String(err) }, 'no GitHub client to report the apply outcome');
      }
      // Marked reported only once every send is done (or refused for good); otherwise the claim lapses
      // after a lease and a recovery pass sends the report again.
      if (await this.report(apply, tasks, fin, gh, followUp, resend)) await this.o.store.markReported(applyId);
      else this.o.log.warn({ applyId }, 'apply report not fully sent; a recovery pass sends it again');
      return true;
    } finally {
      thisReported();
    }
  }

  /** The rollback berth started for this failed apply, if any (its payload names the apply it follows). */
  private async linkedRollback(apply: ApplyRow): Promise<ApplyRow | undefined> {
    const later = await this.o.store.listApplies({ repo: apply.repo, environment: apply.environment, limit: 50 });
    // Newest first: a rollback it started comes after it.
    for (const a of later) {
      if (a.id === apply.id) break;
      if (a.kind !== 'rollback') continue;
      try {
        if (parsePayload(a.desiredJson).rollbackOf === apply.id) return a;
      } catch {
        // an unreadable payload is not a link
      }
    }
    return undefined;
  }

  /** An apply of the same environment created after this one (newest first), if any. */
  private async newerApply(apply: ApplyRow): Promise<ApplyRow | undefined> {
    const later = await this.o.store.listApplies({ repo: apply.repo, environment: apply.environment, limit: 50 });
    // Newest first: whatever comes before it is later.
    const first = later[0];
    return first && first.id !== apply.id ? first : undefined;
  }

  /**
   * failure_action: rollback for the whole service (issue 13): decides, and starts the follow-up rollback
   * apply when there is an earlier state to return to. Returns the paragraph the failed apply's outcome
   * carries (what serves which version, and what berth does about it), or undefined when there is nothing to say.
   */
  private async autoRollback(apply: ApplyRow, reportedHere: Promise<void>): Promise<string | undefined> {
    if (!this.o.observe || apply.state !== 'failed' || apply.kind !== 'apply') return undefined;
    const tasks = await this.o.store.listTasksForApply(apply.id);
    const decision = decideAutoRollback(apply, tasks, await earlierCompleted(this.o.store, apply));
    if (decision.kind === 'none') return undefined;
    if (decision.kind === 'no_earlier') {
      this.o.log.warn({ applyId: apply.id, why: decision.why }, 'rollout stopped with updated replicas; nothing to roll them back to');
      return msg.rolloutOutcome(apply.environment, decision.stopped, { kind: 'none', why: decision.why });
    }
    // Started already (by another caller of finish, or before a crash): said, never started twice.
    const linked = await this.linkedRollback(apply);
    if (linked) return msg.rolloutOutcome(apply.environment, decision.stopped, { kind: 'started', applyId: linked.id, services: decision.services, earlier: decision.earlier });
    // Owed but not started, and the environment moved on since (reported late, after a crash): a later apply
    // owns its state now, and returning services to an earlier state would undo it.
    const newer = await this.newerApply(apply);
    if (newer) {
      this.o.log.warn({ applyId: apply.id, newer: newer.id }, 'automatic rollback not started: a later apply came first');
      return msg.rolloutOutcome(apply.environment, decision.stopped, { kind: 'none', why: `apply ${newer.id} was started on ${apply.environment} after this one, so berth leaves the environment to it` });
    }
    let started: StartedRollback;
    try {
      started = await startAutoRollback(this.o.store, this.o.observe, apply, decision, this.lease());
    } catch (err) {
      // Another caller of finish started it a moment ago (the environment's one slot is taken by it).
      const raced = await this.linkedRollback(apply).catch(() => undefined);
      if (raced) return msg.rolloutOutcome(apply.environment, decision.stopped, { kind: 'started', applyId: raced.id, services: decision.services, earlier: decision.earlier });
      const why = String((err as Error)?.message ?? err);
      this.o.log.error({ applyId: apply.id, err: why }, 'could not start the automatic rollback');
      return msg.rolloutOutcome(apply.environment, decision.stopped, { kind: 'failed', why });
    }
    const rollbackId = started.applyId;
    this.o.log.info({ applyId: apply.id, rollbackId, services: decision.services, earlier: decision.earlier.id }, 'automatic rollback started');
    const steps = started.plans.reduce((n, p) => n + p.plan.nodes.length, 0);
    // The rollback's start report: after the failed apply's outcome (which announces it), on the same head's check.
    const startReport = (async () => {
      await reportedHere;
      const gh = await this.o.github(apply.repo).catch((err) => void this.o.log.error({ applyId: rollbackId, err: String(err) }, 'no GitHub client to report the rollback start'));
      if (!gh) return;
      const repo = parseRepo(apply.repo);
      let checkRunId: number | null = null;
      if (apply.headSha) {
        try {
          const id = await gh.createCheckRun(repo, {
            name: checkName(apply.environment),
            headSha: apply.headSha,
            status: 'in_progress',
            title: `Rolling back ${apply.environment}: 0/${steps} steps`,
            summary: `Apply ${code(rollbackId)} (rollback) started by berth: the rollout of apply ${code(apply.id)} stopped under \`failure_action: rollback\`; ${decision.services.map(code).join(', ')} return to the state of apply ${code(decision.earlier.id)}.`,
            externalId: rollbackId,
          });
          await this.o.store.setApplyCheckRun(rollbackId, id);
          checkRunId = id;
        } catch (err) {
          this.o.log.error({ applyId: rollbackId, err: String(err) }, 'could not create the rollback check run');
        }
      }
      // A GitHub deployment like the failed apply's (its environment's flags), at the commit the state returns to.
      const dep = await this.o.store.getDeployment(apply.id).catch(() => undefined);
      if (dep) {
        const spec = JSON.parse(dep.spec) as DeploymentSpec;
        const ref = decision.earlier.headSha ?? spec.ref;
        void this.deploy(gh, { id: rollbackId, repo: apply.repo, environment: apply.environment, checkRunId }, {
          ...spec,
          ref,
          description: `berth rollback ${rollbackId}${apply.pr !== null ? ` from #${apply.pr}` : ''}`,
          payload: { ...spec.payload, apply_id: rollbackId, kind: 'rollback', actor: 'berth', trigger: 'failure_action' },
        });
      }
      if (apply.pr !== null)
        await gh
          .createComment(repo, apply.pr, msg.autoRollbackStarted(apply.environment, rollbackId, apply.id, decision.services, decision.earlier, steps))
          .catch((err) => this.o.log.error({ applyId: rollbackId, err: String(err) }, 'could not post the rollback start comment'));
    })();
    void this.start(rollbackId, started.handover, startReport);
    return msg.rolloutOutcome(apply.environment, decision.stopped, { kind: 'started', applyId: rollbackId, services: decision.services, earlier: decision.earlier });
  }

  /**
   * The final check run, outcome comment and deployment status of an ended apply (claimed by the caller).
   * True when every step is done: sent, or refused by GitHub for good (403 without a rate limit and 410
   * at once; another 4xx after the retries), never when a 5xx, a rate limit or no answer had the last
   * word. Each step can be sent again without repeating on GitHub: the check run is updated by id, the
   * outcome comment carries a hidden marker and is edited where a comment with it is found (on a re-send,
   * or a retry after a failure whose answer was lost), the deployment status is not sent again when
   * GitHub already holds it (deployments.ts).
   */
  private async report(apply: ApplyRow, tasks: TaskRow[], fin: ReturnType<typeof finalSummary>, gh: GitHubPort | undefined, followUp: string | undefined, resend = false): Promise<boolean> {
    const applyId = apply.id;
    const repo = parseRepo(apply.repo);
    let complete = gh !== undefined;
    // The outcome is the report that matters most: after the client's own retries, try a few more times.
    const persist = async (what: string, fn: (attempt: number) => Promise<unknown>): Promise<boolean> => {
      for (let attempt = 1; ; attempt++) {
        try {
          await fn(attempt);
          return true;
        } catch (err) {
          if (forbidden(err)) {
            this.o.log.error({ applyId, status: (err as { status?: number }).status, err: String(err) }, `could not ${what}: GitHub refused it`);
            return false;
          }
          if (attempt >= (this.o.reportAttempts ?? 4)) {
            this.o.log.error({ applyId, status: (err as { status?: number }).status, err: String(err) }, `could not ${what}`);
            // A 4xx GitHub answered every time is its last word on this report; anything else (5xx, rate
            // limits, no answer) is left for a recovery pass to send again.
            if (!clientError(err)) complete = false;
            return false;
          }
          this.o.log.warn({ applyId, attempt, err: String(err) }, `could not ${what}; retrying`);
          await new Promise((r) => setTimeout(r, (this.o.reportRetryMs ?? 1000) * 2 ** (attempt - 1)));
        }
      }
    };
    // A completed rollback leaves the environment at an earlier state, not at this PR's head: its check must not
    // read as "applied" (with `berth / <env>` a required check, success would let the PR merge unapplied).
    const rolledBack = apply.kind === 'rollback' && apply.state === 'completed';
    const conclusion = rolledBack ? 'action_required' : CONCLUSION[apply.state as keyof typeof CONCLUSION];
    const title = rolledBack ? `Rolled back ${apply.environment}: this head is not applied` : fin.title;
    if (gh && apply.checkRunId) {
      const id = apply.checkRunId;
      await persist('complete the check run', () => gh!.updateCheckRun(repo, id, { status: 'completed', conclusion, title, summary: fin.summary + (followUp ? `\n\n${followUp}` : '') }));
    }
    if (gh && apply.pr !== null) {
      const pr = apply.pr;
      // The apply's timeline drawn (issue 14), masked before it is made inert for Mermaid.
      const timeline = applyGantt(`${apply.kind} ${apply.environment}`, tasks, outText);
      const marker = outcomeMarker(applyId);
      const finished = msg.finished(apply.environment, apply.state, (apply.finishedAt ?? this.now()) - (apply.startedAt ?? apply.createdAt), fin.failure);
      // The marker right under berth's own: hidden, and how a re-send finds the comment it may have posted.
      const body = (finished.startsWith(`${MARKER}\n`) ? `${MARKER}\n${marker}\n${finished.slice(MARKER.length + 1)}` : `${marker}\n${finished}`) + (followUp ? `\n\n${followUp}` : '') + (timeline ? `\n\n${timeline}` : '');
      await persist('post the apply outcome', async (attempt) => {
        const posted = resend || attempt > 1 ? await lookup(this.o.log, applyId, 'the PR comments', gh!.findComment(repo, pr, marker)) : undefined;
        if (posted !== undefined) await gh!.updateComment(repo, posted, body);
        else await gh!.createComment(repo, pr, body);
      });
    }
    if (gh)
      await this.deployments.finish(gh, apply, persist, resend).catch((err) => {
        complete = false;
        this.o.log.error({ applyId, err: String(err) }, 'could not report the deployment');
      });
    await this.releaseAfter(apply, gh);
    return complete;
  }

  /** The lock no longer points at this apply; if the PR closed while it ran, the lock goes too. */
  private async releaseAfter(apply: ApplyRow, gh: GitHubPort | undefined): Promise<void> {
    const lock = await this.o.store.getLock(apply.repo, apply.environment);
    if (!lock || lock.applyId !== apply.id) return;
    await this.o.store.setLockApply(apply.repo, apply.environment, null);
    // A CLI apply's lock lives as long as the apply: `berth apply` releases it, and so does whoever recovers it.
    if (apply.pr === null) {
      await this.o.store.releaseLock(apply.repo, apply.environment, lock.owner);
      return;
    }
    if (!gh) return;
    try {
      const pull = await gh.getPull(parseRepo(apply.repo), apply.pr);
      if (pull.state === 'closed') {
        await this.o.store.releaseLock(apply.repo, apply.environment, lock.owner);
        this.o.log.info({ applyId: apply.id, env: apply.environment }, 'lock released: PR closed while the apply ran');
      }
    } catch (err) {
      // Keeping the lock is the safe side: a person can /unlock.
      this.o.log.warn({ applyId: apply.id, err: String(err) }, 'could not read the PR state; lock kept');
    }
  }
}
