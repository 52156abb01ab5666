// Applies nobody typed (issue 14): `apply_on: merge` applies the merge
// commit of a merged PR, `apply_on: push` applies each push to the default
// branch. Both go through the same gates as `/apply` — the policy (enforced
// when the compose files are loaded, and again by the executor), targets and
// project ownership, staging-first, and the environment's lock — and report
// like any apply: a `berth / <env>` check run on the applied commit, a
// deployment, and for a merge the PR thread. A refusal or a failure is loud
// (a failing check, and a comment on the merged PR).
//
// Pushes are coalesced: they are taken in the order they arrived, one at a
// time per repository; a push that finds a newer one already received is not
// applied but reported as skipped (its checks say which commit superseded it).
import type { BerthConfig, EnvironmentConfig } from '../config/config.js';
import { deploymentSpec } from './deployments.js';
import { isBerthError } from '../errors.js';
import { ApplyRefusedError, prepareApply } from '../apply/prepare-apply.js';
import type { Observer } from '../apply/prepare-apply.js';
import type { Bot } from './bot.js';
import { authorise, pushRequiresGate, requirementsGate, requiresGate } from './gates.js';
import type { CheckConclusion, GitHubPort, RepoRef } from './github.js';
import { repoName } from './github.js';
import { secretVariableValues } from '../plan/mask.js';
import { secretKeysOf } from '../secrets/environment.js';
import { code, errorMarkdown, MARKER, shortSha } from './messages.js';
import { desiredDigest } from '../plan/reconcile.js';
import type { ApplyRunner, RunnerLogger } from '../apply/supervisor.js';
import { checkName } from '../apply/supervisor.js';
import type { AggregateState, Store } from '../store/store.js';

export type AutoTrigger = 'merge' | 'push';

export interface AutoApplyOptions {
  store: Store;
  observe: Observer;
  runner: ApplyRunner;
  bot: Bot;
  log: RunnerLogger;
}

/** What started an automatic apply: the commit, who, and for a merge the PR. */
interface Trigger {
  kind: AutoTrigger;
  sha: string;
  actor: string;
  pr?: number;
}

export class AutoApply {
  /** newest push received per repository (owner/name → after SHA): older ones are skipped */
  private readonly newestPush = new Map<string, string>();
  /** pushes already seen per repository: a redelivered old push never counts as the newest */
  private readonly seenPushes = new Map<string, Set<string>>();

  constructor(private readonly o: AutoApplyOptions) {}

  /** Called when a push delivery is routed (on receipt, and again on resume, in arrival order). */
  pushReceived(repo: string, sha: string): void {
    let seen = this.seenPushes.get(repo);
    if (!seen) this.seenPushes.set(repo, (seen = new Set()));
    if (seen.has(sha)) return;
    seen.add(sha);
    this.newestPush.set(repo, sha);
  }

  /** PR merged: each `apply_on: merge` environment, in promotion order, each awaited (a later one may require an earlier one). */
  async merged(gh: GitHubPort, repo: RepoRef, pr: number, mergeSha: string, actor: string): Promise<void> {
    const config = await this.config(gh, repo, { kind: 'merge', sha: mergeSha, actor, pr });
    if (!config) return;
    for (const env of config.environments.filter((e) => e.apply_on === 'merge')) await this.applyOne(gh, repo, config, env, { kind: 'merge', sha: mergeSha, actor, pr });
  }

  /** A push to the default branch: applied unless a newer push has arrived since, then it is reported skipped. */
  async pushed(gh: GitHubPort, repo: RepoRef, sha: string, actor: string): Promise<void> {
    const full = repoName(repo);
    const config = await this.config(gh, repo, { kind: 'push', sha, actor });
    if (!config) return;
    const envs = config.environments.filter((e) => e.apply_on === 'push');
    if (!envs.length) return;
    const newest = this.newestPush.get(full);
    if (newest !== undefined && newest !== sha) {
      for (const env of envs)
        await this.check(gh, repo, sha, env.name, 'skipped', `Skipped: superseded by ${shortSha(newest)}`, `A newer push (${code(shortSha(newest))}) arrived while ${code(env.name)} was being applied; berth applies only the newest.`);
      this.o.log.info({ repo: full, sha, newest }, 'push skipped: superseded');
      return;
    }
    for (const env of envs) await this.applyOne(gh, repo, config, env, { kind: 'push', sha, actor });
  }

  private async config(gh: GitHubPort, repo: RepoRef, t: Trigger): Promise<BerthConfig | undefined> {
    try {
      return await this.o.bot.loadConfig(gh, repo);
    } catch (err) {
      if (!isBerthError(err)) throw err;
      // An invalid config on the default branch: nothing applies, and the merged PR is told.
      if (t.pr !== undefined) await gh.createComment(repo, t.pr, `${MARKER}\n### ❌ berth did not apply on ${t.kind}\n\n${errorMarkdown(err)}`);
      return undefined;
    }
  }

  /** One environment at one commit: gates, lock, start, report; resolves when the apply (and its report) ended. */
  private async applyOne(gh: GitHubPort, repo: RepoRef, config: BerthConfig, env: EnvironmentConfig, t: Trigger): Promise<AggregateState | undefined> {
    const full = repoName(repo);
    const what = t.kind === 'merge' ? `the merge of #${t.pr}` : `the push of ${code(shortSha(t.sha))}`;
    const refuse = async (title: string, detail: string) => {
      await this.check(gh, repo, t.sha, env.name, 'failure', title, detail);
      if (t.pr !== undefined) await gh.createComment(repo, t.pr, `${MARKER}\n### ❌ ${code(env.name)} was not applied on merge\n\n${detail}`);
      this.o.log.warn({ repo: full, env: env.name, trigger: t.kind, sha: t.sha, title }, 'automatic apply refused');
      return undefined;
    };
    // Whoever merged or pushed must be allowed to apply this environment: merging is not a way around `appliers`.
    const who = await authorise(gh, repo, t.actor, env);
    if (!who.ok) return await refuse('Not authorised', who.message.replace(`${MARKER}\n`, ''));
    // A merge applies what the PR's last head brought, so it needs the approvals `/apply` needs, of that head:
    // merging (without branch protection, or by an admin bypassing it) is no way around berth's own review rule.
    // `mergeable` is moot once merged (GitHub then answers null).
    if (t.pr !== undefined && (env.approvals || env.require?.approved)) {
      const gate = await gh.getPull(repo, t.pr).then(
        async (pull) => requirementsGate(gh, repo, pull, { ...env, require: { ...env.require, mergeable: false } }, await this.o.store.headPushers(full, t.pr!, pull.headSha)),
        (err: unknown) => ({ ok: false as const, message: `checking the approvals of #${t.pr} failed: ${code(String((err as Error)?.message ?? err))}` }),
      );
      if (!gate.ok) return await refuse('Apply requirement not met', gate.message.replace(`${MARKER}\n`, ''));
    }
    // A push carries no review berth can count (a direct push has none; a PR's merge pushes its last head, approved
    // or not, since GitHub keeps stale approvals by default): an environment that needs approvals fails closed.
    if (t.pr === undefined && (env.approvals || env.require?.approved)) {
      const needed = Math.max(env.approvals ?? 0, env.require?.approved ? 1 : 0);
      return await refuse(
        'Apply requirement not met',
        `${code(env.name)} needs ${needed} approving review${needed > 1 ? 's' : ''} of what it applies, and ${what} has no review berth can count, so \`apply_on: push\` does not apply it. Use \`apply_on: merge\` (approvals of the PR's last head count) or \`/apply ${env.name}\` from a PR.`,
      );
    }
    let desired;
    try {
      this.o.bot.checkTargets(env);
      await this.o.bot.ownProject(full, config, env, true);
      const files = await gh.listFiles(repo, t.sha);
      desired = await this.o.bot.desiredAt(gh, repo, config, env, t.sha, files);
      const known = config.environments.map((e) => e.name);
      const digestOf = async (req: string) => desiredDigest(await this.o.bot.desiredAt(gh, repo, config, config.environments.find((e) => e.name === req)!, t.sha, files));
      if (t.pr !== undefined) {
        const gate = await requiresGate(this.o.store, repo, { number: t.pr, headSha: t.sha }, env, known, digestOf);
        if (!gate.ok) return await refuse('Staging first', gate.message.replace(`${MARKER}\n`, ''));
      } else {
        const gate = await pushRequiresGate(this.o.store, repo, env, known, digestOf);
        if (!gate.ok) return await refuse('Staging first', gate.message);
      }
    } catch (err) {
      if (!isBerthError(err)) throw err;
      return await refuse(`Not applied: ${err.problem}`.slice(0, 200), errorMarkdown(err));
    }

    // A merge uses the PR's own lock (released when the apply ends: the PR is closed); a push takes the environment's for itself.
    const lock = t.pr !== undefined ? { owner: `${full}#${t.pr}`, pr: t.pr } : { owner: `${full}@push`, pr: 0 };
    let prepared;
    try {
      prepared = await prepareApply(this.o.store, this.o.observe, {
        repo: full,
        pr: t.pr ?? null,
        environment: env.name,
        kind: 'apply',
        actor: t.actor,
        headSha: t.sha,
        desired,
        targets: env.targets,
        onFailure: env.on_failure,
        ...(env.parallelism ? { parallelism: env.parallelism } : {}),
        secretKeys: secretKeysOf(env),
        secretValues: secretVariableValues(env.variables, env.secret_keys),
        policy: config.policy,
        start: { lock, lease: this.o.runner.lease() },
      });
    } catch (err) {
      if (err instanceof ApplyRefusedError) {
        const r = err.refusal;
        const why = r.reason === 'locked' ? `${code(env.name)} is locked by ${code(r.holder.owner)} since ${new Date(r.holder.createdAt).toISOString()}.` : `${code(env.name)} already has an apply in flight (${code(r.applyId)}).`;
        return await refuse(`Not applied: ${r.reason === 'locked' ? 'locked' : 'an apply is in flight'}`, `${what} was not applied: ${why}`);
      }
      throw err;
    }
    const steps = prepared.plans.reduce((n, p) => n + p.plan.nodes.length, 0);
    let reported!: () => void;
    const ready = new Promise<void>((r) => (reported = r));
    const done = this.o.runner.start(prepared.applyId, prepared.handover, ready);
    const deployment = deploymentSpec(env, { id: prepared.applyId, kind: 'apply', pr: t.pr ?? null, actor: t.actor }, t.sha, t.kind);
    // stored before the start report's GitHub writes: a process dying among them leaves the deployment to recovery
    await this.o.runner.deployments.intend({ id: prepared.applyId, repo: full, environment: env.name }, deployment);
    let checkRunId: number | null = null;
    try {
      checkRunId = await gh.createCheckRun(repo, {
        name: checkName(env.name),
        headSha: t.sha,
        status: 'in_progress',
        title: `Applying ${env.name}: 0/${steps} steps`,
        summary: `Apply ${code(prepared.applyId)} started by ${what} (apply_on: ${t.kind}).`,
        externalId: prepared.applyId,
      });
      await this.o.store.setApplyCheckRun(prepared.applyId, checkRunId);
    } catch (err) {
      this.o.log.error({ applyId: prepared.applyId, err: String(err) }, 'could not create the apply check run');
    }
    if (t.pr !== undefined) {
      const text = steps
        ? `${MARKER}\n🚀 Applying ${code(env.name)} at the merge commit ${code(shortSha(t.sha))}: ${steps} step${steps === 1 ? '' : 's'} (apply ${code(prepared.applyId)}, apply_on: merge).`
        : `${MARKER}\n✅ ${code(env.name)} already matches the merge commit ${code(shortSha(t.sha))}: nothing to apply.`;
      await gh.createComment(repo, t.pr, text).catch((err) => this.o.log.error({ applyId: prepared.applyId, err: String(err) }, 'could not post the start comment'));
    }
    reported();
    void this.o.runner.deploy(gh, { id: prepared.applyId, repo: full, environment: env.name, checkRunId }, deployment);
    return done;
  }

  private async check(gh: GitHubPort, repo: RepoRef, sha: string, env: string, conclusion: CheckConclusion, title: string, summary: string): Promise<void> {
    try {
      await gh.createCheckRun(repo, { name: checkName(env), headSha: sha, status: 'completed', conclusion, title, summary });
    } catch (err) {
      this.o.log.error({ sha, env, err: String(err) }, 'could not report on the commit');
    }
  }
}
