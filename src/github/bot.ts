// The domain services behind the webhook handlers: plan a PR, run a comment
// command, react to a PR closing. Handlers in index.ts only parse the event
// and call these. GitHub, Docker and the store are reached through ports.
import type { Policy } from '../compose/policy.js';
import type { Observer, TargetPlan, ExpectedPlan } from '../apply/prepare-apply.js';
import { ApplyRefusedError, environmentFingerprint, expectedOf, planTargets, prepareApply, StalePlanError } from '../apply/prepare-apply.js';
import type { ReconcileOptions } from '../plan/reconcile.js';
import type { ParseResult } from './commands.js';
import { helpTable, parseCommands, renderInvalid } from './commands.js';
import { environmentLoadOptions, loadComposeReading } from '../config/load-environment.js';
import { environmentSecretInputs, rememberConfigText, secretKeysOf } from '../secrets/environment.js';
import type { SecretHashes } from '../secrets/vault.js';
import { readComposeSources } from '../compose/sources.js';
import { repositoryReads } from './repository-reads.js';
import type { BerthConfig, EnvironmentConfig } from '../config/config.js';
import { CONFIG_PATH, parseConfig } from '../config/config.js';
import { parseYaml } from '../compose/yaml.js';
import { ComposeError, ConfigError, isBerthError } from '../errors.js';
import { staleCommand } from './freshness.js';
import type { CommandTimes } from './freshness.js';
import { authorise, forkGate, requiresGate, requirementsGate } from './gates.js';
import type { Gate } from './gates.js';
import type { CheckConclusion, GitHubPort, PullRequest, RepoRef } from './github.js';
import { clip, httpStatus, PartialListing, planCheckExternalId, repoName, TreeListing } from './github.js';
import { repoTreeOf, type RepoTree } from '../compose/repository-files.js';
import { block, code, MARKER, msg, shortSha } from './messages.js';
import type { DesiredState } from '../model/model.js';
import { isEmpty, planToString, summarize } from '../plan/plan.js';
import { deploymentSpec } from './deployments.js';
import { desiredDigest } from '../plan/reconcile.js';
import { desiredService } from '../model/desired.js';
import { parsePayload } from '../apply/executor.js';
import { renderPlanMarkdown } from '../plan/render.js';
import { Masker, secretVariableValues } from '../plan/mask.js';
import { learnDesired, learnEnvironment, outText } from '../text/outbound.js';
import { planFlowchart } from '../plan/mermaid.js';
import type { ApplyRunner, RunnerLogger } from '../apply/supervisor.js';
import { checkName } from '../apply/supervisor.js';
import { DEFAULT_SPLIT_LIMIT, MAX_PARTS, splitMarkdown } from './split-comment.js';
import { sanitizeLine } from '../text/escape.js';
import type { ApplyKind, Store } from '../store/store.js';
import { IN_FLIGHT_AGGREGATE_STATES, TERMINAL_AGGREGATE_STATES } from '../store/store.js';
import type { EnvironmentStatus } from './status.js';
import { renderStatus, STATUS_RECENT } from './status.js';
import type { Targets } from '../docker/targets.js';
import { UnknownTargetError } from '../docker/targets.js';
import { composeFilesOf } from '../config/compose-files.js';
import { createHash } from 'node:crypto';

/**
 * What berth keeps of each part of its plan comment: the SHA-256 of the body it wrote (line ends and trailing
 * space aside), so a part someone with write access edited since is found before an apply. Taken of the body
 * as it leaves berth (outText: the GitHub port masks every comment), on both sides: masking what is already
 * masked changes nothing, so GitHub's copy of a part berth wrote digests as the part did.
 */
export const commentDigest = (body: string) => createHash('sha256').update(outText(body).replace(/\r\n?/g, '\n').trimEnd()).digest('hex');


export interface BotOptions {
  store: Store;
  targets: Pick<Targets, 'has' | 'names'>;
  observe: Observer;
  runner: ApplyRunner;
  log: RunnerLogger;
  /** counts commands for /metrics (optional) */
  metrics?: { command(command: string, outcome: string): void };
  /** let PRs from forks apply (server setting, default false) */
  allowForks?: boolean;
  /**
   * Pins every image to the digest its registry serves now (issue 12), an
   * input gathered before planning like observed state; absent: images as written.
   */
  resolveImages?: (desired: DesiredState, targets: readonly string[], policy: Policy) => Promise<DesiredState>;
  /** server-side secrets' keyed hashes (issue 18); absent when the server has no secret key (environments that list secrets are refused) */
  secrets?: SecretHashes;
}

export interface CommentEvent {
  id: number;
  body: string;
  user: string;
  /** GitHub's user type: 'User', 'Bot', 'Organization' */
  userType: string;
  /** GitHub's `created_at` of the comment: what the command acts on must be older */
  createdAt: string;
  /** GitHub's `updated_at`: a comment edited after it was written carries no command */
  updatedAt?: string;
}

/** One environment's outcome of planning a PR head. */
export type EnvPlan =
  | { env: string; ok: true; plans: TargetPlan[]; desired: DesiredState; markdown: string }
  | { env: string; ok: false; error: unknown; markdown: string; title: string };

/** Masks an environment's secret variable values (and `KEY=value`-like secrets) in text shown or logged. */
/** What the loader may know of the head's files (a bind of a repository path is copied from them): the listing as GitHub gave it. */
function listingTree(files: Set<string>): RepoTree {
  const listed = files instanceof TreeListing || files instanceof PartialListing ? files : undefined;
  return repoTreeOf(files, listed?.modes ?? new Map<string, string>(), !(files instanceof PartialListing), listed?.sizes);
}

function redactorFor(env: EnvironmentConfig): (text: string) => string {
  const m = new Masker(secretKeysOf(env), secretVariableValues(env.variables, env.secret_keys));
  return (text) => m.text(text);
}

interface Loaded {
  config: BerthConfig;
  files: Set<string>;
}

const OWN_LOGIN_SUFFIX = '[bot]';

/** The line of `project:` in each loaded config, so an ownership refusal points at it. */
const projectLines = new WeakMap<BerthConfig, number>();

export class Bot {
  constructor(private readonly o: BotOptions) {}

  // ── configuration and desired state ───────────────────────────────────────

  /** `.github/berth.yml` from the default branch: a PR never configures berth for itself. Undefined when absent. */
  async loadConfig(gh: GitHubPort, repo: RepoRef): Promise<BerthConfig | undefined> {
    // No ref: GitHub reads the default branch itself (one request, not a repos.get first).
    const text = await gh.readFile(repo, CONFIG_PATH);
    if (text === undefined) return undefined;
    const config = parseConfig(text, CONFIG_PATH);
    rememberConfigText(config, text);
    const line = parseYaml(CONFIG_PATH, text).lineAt(['project']);
    if (line !== undefined) projectLines.set(config, line);
    for (const env of config.environments) learnEnvironment(env);
    return config;
  }

  /**
   * A project on a target belongs to one repository: planning refuses a
   * project another repository owns; applying claims it (atomically) first.
   */
  async ownProject(full: string, config: BerthConfig, env: EnvironmentConfig, claim: boolean): Promise<void> {
    for (const target of env.targets) {
      const owner = claim ? await this.o.store.claimProject(target, config.project, full) : await this.o.store.projectOwner(target, config.project);
      if (owner === undefined || owner === full) continue;
      const line = projectLines.get(config);
      throw new ConfigError('project_owned', `project ${config.project} on target ${target} belongs to repository ${owner}`, {
        file: CONFIG_PATH,
        ...(line !== undefined ? { line } : {}),
        path: 'project',
        hint: `choose another project name in ${CONFIG_PATH} on the default branch: a project on a target is deployed by one repository`,
      });
    }
  }

  /** One environment's desired state from the compose files at the PR head. */
  /**
   * `pinnedFrom`: a rollback's applied state — a service whose reference is unchanged runs the digest that
   * apply ran (a tag re-pushed since must not turn the rollback into a deploy of the new bits).
   */
  async desiredAt(gh: GitHubPort, repo: RepoRef, config: BerthConfig, env: EnvironmentConfig, sha: string, files: Set<string>, pinnedFrom?: DesiredState): Promise<DesiredState> {
    const inputs = [];
    // Read together, checked in order (the first missing one is the error).
    // Every read of the head for this environment goes through one bounded reader (repository-reads.ts).
    const reads = repositoryReads(gh, repo, sha, files);
    const cleaned = (await composeFilesOf(env, reads.text)).map((path) => path.replace(/^\.\//, ''));
    const texts = await Promise.all(cleaned.map((clean) => reads.text(clean)));
    for (const [i, clean] of cleaned.entries()) {
      const text = texts[i];
      if (text === undefined) {
        throw new ComposeError('missing_file', `compose file ${code(clean)} does not exist at ${shortSha(sha)}`, {
          file: CONFIG_PATH,
          path: `environments.${env.name}.compose`,
          hint: `add ${clean} to the PR, or fix the list of compose files of ${env.name} in ${CONFIG_PATH} on the default branch`,
        });
      }
      inputs.push({ path: clean, text });
    }
    // env_file, include, extends.file and .env: read at the same head, through the same reader
    const read = reads.text;
    // Server-side secrets enter as placeholders carrying their keyed hashes: planning never decrypts (secrets/environment.ts).
    const secretInputs = await environmentSecretInputs(config, env, repoName(repo), this.o.secrets);
    const options = environmentLoadOptions(config, env, secretInputs);
    const sources = await readComposeSources(read, inputs, options.variables);
    const desired = await loadComposeReading(
      inputs,
      { ...options, sources, repoTree: listingTree(files), commit: sha },
      read,
      // a bound repository file is copied byte for byte (repository-files.ts)
      reads.bytes,
    );
    learnDesired(desired, secretInputs.secretKeys, secretVariableValues(env.variables, env.secret_keys));
    // Pinned here, so the plan, the stale-plan guard, the staging-first digest and the apply all see the same bits.
    const ran = new Map((pinnedFrom?.services ?? []).map((x) => [x.spec.name, x.spec.image]));
    const asRan = ran.size
      ? {
          ...desired,
          services: desired.services.map((x) => {
            const image = ran.get(x.spec.name);
            return image?.startsWith(`${x.spec.image}@sha256:`) ? { ...desiredService({ ...x.spec, image }), ...(x.at ? { at: x.at } : {}) } : x;
          }),
        }
      : desired;
    const pinned = this.o.resolveImages ? await this.o.resolveImages(asRan, env.targets, config.policy) : asRan;
    return { ...pinned, repository: repoName(repo) };
  }

  checkTargets(env: EnvironmentConfig) {
    for (const t of env.targets) if (!this.o.targets.has(t)) throw new UnknownTargetError(t, this.o.targets.names());
  }

  async planEnvironment(gh: GitHubPort, repo: RepoRef, loaded: Loaded, env: EnvironmentConfig, sha: string, opts: ReconcileOptions = {}, pinnedFrom?: DesiredState): Promise<EnvPlan> {
    try {
      this.checkTargets(env);
      await this.ownProject(repoName(repo), loaded.config, env, false);
      const desired = await this.desiredAt(gh, repo, loaded.config, env, sha, loaded.files, pinnedFrom);
      const plans = await planTargets(desired, env.targets, this.o.observe, opts);
      const secrets = { secretKeys: secretKeysOf(env), secretValues: secretVariableValues(env.variables, env.secret_keys) };
      // The plan DAG drawn (issue 14): labels masked like the plan, then made inert for Mermaid.
      const redact = redactorFor(env);
      const graph = (p: TargetPlan) => {
        const chart = planFlowchart(p.plan, (t) => outText(redact(t)));
        return chart ? `\n${chart}\n` : '';
      };
      const parts = plans.map(
        (p) => (plans.length > 1 ? `#### target ${code(p.target)}\n\n` : '') + renderPlanMarkdown(p.plan, { environment: env.name, target: p.target, headSha: sha, ...secrets, ...(desired.notes ? { notes: desired.notes } : {}), ...(desired.unsetVariables ? { unsetVariables: desired.unsetVariables } : {}) }) + graph(p),
      );
      return { env: env.name, ok: true, plans, desired, markdown: parts.join('\n\n') };
    } catch (error) {
      // A compose error can quote a value interpolated from a secret variable (`invalid port "…"`): redacted like plans are.
      const redact = redactorFor(env);
      if (!isBerthError(error)) this.o.log.error({ repo: repoName(repo), env: env.name, err: redact(String(error)), stack: redact(String((error as Error)?.stack)) }, 'planning failed');
      const body = isBerthError(error) ? msg.configError(error).replace(`${MARKER}\n`, '') : `### ❌ ${code(env.name)}: planning failed\n\n${block(String((error as Error)?.message ?? error))}`;
      return { env: env.name, ok: false, error, markdown: redact(body), title: redact(isBerthError(error) ? error.problem : 'Planning failed') };
    }
  }

  // ── autoplan ──────────────────────────────────────────────────────────────

  /**
   * Plans the PR head for the given environments (all when none given):
   * stores each plan, sets each `berth / <env>` check run, and rewrites the
   * PR's berth comment in place.
   */
  async planPullRequest(gh: GitHubPort, repo: RepoRef, pull: PullRequest, only?: readonly string[]): Promise<EnvPlan[]> {
    let config: BerthConfig | undefined;
    try {
      config = await this.loadConfig(gh, repo);
    } catch (err) {
      // Only a bad config is the user's to fix; a GitHub failure is ours and is reported as such by the caller.
      if (!isBerthError(err)) throw err;
      await this.check(gh, repo, pull, 'berth', 'failure', 'Invalid berth configuration', msg.configError(err).replace(`${MARKER}\n`, ''));
      await this.upsertPlanComment(gh, repo, pull.number, msg.configError(err));
      return [];
    }
    if (!config) return [];
    await this.o.store.recordHead(repoName(repo), pull.number, pull.headSha);
    const files = await gh.listFiles(repo, pull.headSha);
    const loaded = { config, files };
    const envs = config.environments.filter((e) => !only?.length || only.includes(e.name));
    const results = await Promise.all(envs.map((env) => this.planEnvironment(gh, repo, loaded, env, pull.headSha)));
    for (const r of results) {
      if (r.ok) {
        const expected = expectedOf(r.plans);
        await this.o.store.savePlan({
          repo: repoName(repo),
          pr: pull.number,
          environment: r.env,
          headSha: pull.headSha,
          fingerprint: environmentFingerprint(r.plans),
          desiredDigest: desiredDigest(r.desired),
          observedDigest: r.plans.map((p) => p.plan.observedDigest).join(','),
          planJson: JSON.stringify(expected),
          rendered: r.markdown,
        });
        const changes = r.plans.some((p) => !isEmpty(p.plan));
        const s = r.plans.map((p) => summarize(p.plan));
        const sum = (k: 'create' | 'change' | 'remove') => s.reduce((a, x) => a + x[k], 0);
        await this.check(
          gh,
          repo,
          pull,
          checkName(r.env),
          changes ? 'action_required' : 'success',
          changes ? `${sum('create')} to create, ${sum('change')} to change, ${sum('remove')} to remove` : 'No changes',
          r.markdown,
        );
      } else {
        await this.check(gh, repo, pull, checkName(r.env), 'failure', r.title, r.markdown);
      }
    }
    // The comment always shows every environment; a partial re-plan keeps the others' latest plans.
    const sections: string[] = [];
    for (const env of config.environments) {
      const fresh = results.find((r) => r.env === env.name);
      if (fresh) sections.push(fresh.markdown);
      else {
        const saved = await this.o.store.latestPlan(repoName(repo), pull.number, env.name);
        if (saved) sections.push(saved.rendered + (saved.headSha !== pull.headSha ? `\n\n_(planned at ${code(shortSha(saved.headSha))}; comment \`/plan ${env.name}\` to refresh)_` : ''));
      }
    }
    const header = `${MARKER}\n## berth plan for ${code(shortSha(pull.headSha))}`;
    const footer = `---\nComment ${config.environments.map((e) => `\`/apply ${e.name}\``).join(' · ')} to apply, \`/plan\` to plan again, \`/help\` for all commands.`;
    await this.upsertPlanComment(gh, repo, pull.number, [header, ...sections, footer].join('\n\n'));
    return results;
  }

  private async check(gh: GitHubPort, repo: RepoRef, pull: { number: number; headSha: string }, name: string, conclusion: CheckConclusion, title: string, summary: string): Promise<number | undefined> {
    try {
      // A check run's title is one line of plain text; it may quote a compose problem. Its external_id names the PR:
      // a "Re-run" on a fork PR's check comes without pull_requests (check-run.ts).
      return await gh.createCheckRun(repo, { name, headSha: pull.headSha, status: 'completed', conclusion, title: sanitizeLine(title).slice(0, 1000), summary: clip(summary), externalId: planCheckExternalId(pull.number) });
    } catch (err) {
      this.o.log.error({ repo: repoName(repo), name, err: String(err) }, 'could not create check run');
      return undefined;
    }
  }

  /** One berth comment per PR, edited in place; split into numbered parts when long. */
  async upsertPlanComment(gh: GitHubPort, repo: RepoRef, pr: number, body: string): Promise<void> {
    const parts = splitMarkdown(body, DEFAULT_SPLIT_LIMIT, MAX_PARTS);
    const ids = await this.o.store.getPrComments(repoName(repo), pr);
    const out: number[] = [];
    const digests: string[] = [];
    for (let i = 0; i < parts.length; i++) {
      const part = i === 0 || parts[i]!.startsWith(MARKER) ? parts[i]! : `${MARKER}\n${parts[i]}`;
      const existing = ids[i];
      // A comment someone deleted answers 404 to the edit: the part is posted again.
      if (existing !== undefined && (await edited(gh.updateComment(repo, existing, part)))) out.push(existing);
      else out.push(await gh.createComment(repo, pr, part));
      digests.push(commentDigest(part));
    }
    // Parts no longer needed are emptied rather than deleted: deleting needs more permissions and loses the thread position.
    const kept: number[] = [];
    const unused = `${MARKER}\n_(this part of the berth plan is no longer used)_`;
    for (const stale of ids.slice(parts.length))
      if (await edited(gh.updateComment(repo, stale, unused))) {
        kept.push(stale);
        digests.push(commentDigest(unused));
      }
    // With what berth wrote to each part: /apply checks GitHub still shows exactly that (planCommentEdited).
    await this.o.store.setPrComments(repoName(repo), pr, [...out, ...kept], digests);
  }

  // ── commands ──────────────────────────────────────────────────────────────

  async handleComment(gh: GitHubPort, repo: RepoRef, prNumber: number, comment: CommentEvent): Promise<void> {
    if (comment.userType === 'Bot' || comment.user.endsWith(OWN_LOGIN_SUFFIX)) return;
    // Whether a comment holds a command (or a look-alike of one) does not depend on the environments:
    // ordinary talk is dropped here without a single GitHub call.
    if (parseCommands(comment.body, []).kind === 'none') return;
    let config: BerthConfig | undefined;
    let configError: unknown;
    try {
      config = await this.loadConfig(gh, repo);
    } catch (err) {
      if (!isBerthError(err)) throw err;
      configError = err;
    }
    const envs = config?.environments.map((e) => e.name) ?? [];
    const parsed = parseCommands(comment.body, envs);
    if (parsed.kind === 'none') return;
    // Sent first but not waited for: GitHub spaces writes a second apart, and the command's work (an
    // apply's Docker calls) must not queue behind its acknowledgement. The command ends after it.
    const ack = gh.react(repo, comment.id, 'eyes').catch((err) => this.o.log.warn({ err: String(err) }, 'could not add reaction'));
    try {
      // What an edited comment said when it was written, and what its author saw then, is unknown: it carries no command.
      if (comment.updatedAt !== undefined && comment.updatedAt !== comment.createdAt) return void (await this.reply(gh, repo, prNumber, msg.editedCommand()));
      if (!config) {
        await gh.createComment(repo, prNumber, configError ? msg.configError(configError) : msg.configMissing());
        return;
      }
      const name = parsed.kind === 'command' ? parsed.command.name : 'invalid';
      try {
        await this.runCommand(gh, repo, prNumber, comment, parsed, config);
        this.o.metrics?.command(name, parsed.kind === 'command' ? 'handled' : 'rejected');
      } catch (err) {
        this.o.metrics?.command(name, 'failed');
        throw err;
      }
    } finally {
      await ack;
    }
  }

  private reply(gh: GitHubPort, repo: RepoRef, pr: number, body: string): Promise<number> {
    return gh.createComment(repo, pr, body.startsWith(MARKER) ? body : `${MARKER}\n${body}`);
  }

  private async runCommand(gh: GitHubPort, repo: RepoRef, pr: number, comment: CommentEvent, parsed: ParseResult, config: BerthConfig): Promise<void> {
    const envNames = config.environments.map((e) => e.name);
    if (parsed.kind === 'invalid') {
      await this.reply(gh, repo, pr, renderInvalid(parsed, envNames));
      return;
    }
    if (parsed.kind !== 'command') return;
    const c = parsed.command;
    switch (c.name) {
      case 'help':
        await this.reply(gh, repo, pr, `### berth commands\n\n${helpTable(envNames)}`);
        return;
      case 'plan': {
        const pull = await gh.getPull(repo, pr);
        await this.planPullRequest(gh, repo, pull, c.envs);
        return;
      }
      case 'apply':
        await this.apply(gh, repo, pr, comment.user, config, c.env, 'apply', comment);
        return;
      case 'rollback':
        await this.apply(gh, repo, pr, comment.user, config, c.env, 'rollback', comment);
        return;
      case 'stop':
        await this.stop(gh, repo, pr, comment.user, config, c.env);
        return;
      case 'unlock':
        await this.unlock(gh, repo, pr, comment.user, config, c.env);
        return;
      case 'status':
        await this.reply(gh, repo, pr, await this.status(repo, config, c.env));
        return;
    }
  }

  private envOf(config: BerthConfig, name: string): EnvironmentConfig | undefined {
    return config.environments.find((e) => e.name === name);
  }

  private async authorised(gh: GitHubPort, repo: RepoRef, pr: number, user: string, env: EnvironmentConfig): Promise<boolean> {
    const g = await authorise(gh, repo, user, env);
    if (!g.ok) await this.reply(gh, repo, pr, g.message);
    return g.ok;
  }

  private async refuse(gh: GitHubPort, repo: RepoRef, pr: number, gate: Gate): Promise<boolean> {
    if (gate.ok) return false;
    await this.reply(gh, repo, pr, gate.message);
    return true;
  }

  /** Refuses (true) when the head or berth's plan comment changed after the command comment was written. */
  private async changedSince(gh: GitHubPort, repo: RepoRef, pull: PullRequest, command: CommandTimes, env: string, kind: ApplyKind, planMadeAt?: number): Promise<boolean> {
    const full = repoName(repo);
    const reasons = staleCommand(command, {
      headSha: pull.headSha,
      heads: await this.o.store.listHeads(full, pull.number),
      commentWrittenAt: await this.o.store.prCommentsWrittenAt(full, pull.number),
      ...(planMadeAt !== undefined ? { planMadeAt } : {}),
    });
    if (reasons.length) await this.reply(gh, repo, pull.number, msg.commandStale(env, kind, reasons));
    return reasons.length > 0;
  }

  /**
   * Refuses (true) when berth's plan comment on GitHub is not what berth wrote there: anyone with write access
   * can edit it (a writer not trusted with production could show a reviewer a harmless plan while the stored
   * one is applied). Each part must hold the body berth wrote (its digest) and have been last edited before
   * the command was written (GitHub's clocks, both): an edit undone later was still what the commenter read.
   */
  private async planCommentEdited(gh: GitHubPort, repo: RepoRef, pull: PullRequest, command: CommandTimes, env: string): Promise<boolean> {
    const parts = await this.o.store.getPrCommentParts(repoName(repo), pull.number);
    const written = Date.parse(command.createdAt);
    const reasons: string[] = [];
    for (const [i, part] of parts.entries()) {
      const which = parts.length > 1 ? `part ${i + 1} of berth's plan comment` : "berth's plan comment";
      let now;
      try {
        now = await gh.getComment(repo, part.id);
      } catch (err) {
        reasons.push(`${which} could not be read back from GitHub (${code(String((err as Error)?.message ?? err))}), so what it shows is unknown`);
        continue;
      }
      if (!now) reasons.push(`${which} was deleted`);
      else if (part.sha256 === undefined) reasons.push(`${which} was written before berth kept what it wrote there, so an edit of it cannot be told`);
      else if (commentDigest(now.body) !== part.sha256) reasons.push(`${which} was edited by someone else after berth wrote it`);
      else if (!(Date.parse(now.updatedAt) < written)) reasons.push(`${which} was edited at ${now.updatedAt}, when the command was written (${command.createdAt}) or after`);
    }
    if (reasons.length) await this.reply(gh, repo, pull.number, msg.planCommentEdited(env, reasons));
    return reasons.length > 0;
  }

  /**
   * /apply and /rollback: every gate, the command-freshness check, the lock,
   * the stale-plan guard, then a detached run. A rollback's state is rebuilt
   * from its commit under today's configuration and policy, and its plan is
   * posted before it runs.
   */
  async apply(gh: GitHubPort, repo: RepoRef, pr: number, user: string, config: BerthConfig, envName: string, kind: ApplyKind, command: CommandTimes): Promise<string | undefined> {
    // The command's delivery runs again when the process handling it ended (durable deliveries): the apply it
    // made is driven and reported by recovery, and this run of it has nothing to add (it would answer that the
    // host moved — the apply is changing it — or apply a second time).
    const made = command.id === undefined ? undefined : await this.o.store.applyForCommand(repoName(repo), command.id);
    if (made) {
      this.o.log.info({ repo: repoName(repo), pr, applyId: made, comment: command.id }, `/${kind} already made its apply: a delivery run again`);
      return made;
    }
    const env = this.envOf(config, envName);
    if (!env) {
      await this.reply(gh, repo, pr, msg.unknownEnv(envName, config.environments.map((e) => e.name)));
      return;
    }
    // A read, asked for while authorisation is checked: the gates below need it anyway.
    const pulled = gh.getPull(repo, pr);
    pulled.catch(() => undefined);
    if (!(await this.authorised(gh, repo, pr, user, env))) return;
    const pull = await pulled;
    if (pull.state !== 'open') return void (await this.reply(gh, repo, pr, msg.closedPr()));
    if (await this.refuse(gh, repo, pr, forkGate(pull, !!this.o.allowForks))) return;
    const full = repoName(repo);
    if (await this.refuse(gh, repo, pr, await requirementsGate(gh, repo, pull, env, await this.o.store.headPushers(full, pr, pull.headSha)))) return;
    const inFlight = await this.o.store.applyOf(full, pr, env.name);
    if (inFlight) return void (await this.reply(gh, repo, pr, msg.alreadyApplying(env.name, inFlight.id)));
    try {
      this.checkTargets(env);
      await this.ownProject(full, config, env, true);
    } catch (err) {
      if (!isBerthError(err)) throw err;
      return void (await this.reply(gh, repo, pr, msg.configError(err)));
    }

    let desired: DesiredState;
    let expected: readonly ExpectedPlan[] | undefined;
    let rollbackPlan: string | undefined;
    let stateSha = pull.headSha;
    const [, files] = await Promise.all([this.o.store.recordHead(full, pr, pull.headSha), gh.listFiles(repo, pull.headSha)]);
    if (kind === 'apply') {
      const saved = await this.o.store.latestPlan(full, pr, env.name);
      if (!saved || saved.headSha !== pull.headSha) {
        const [planned] = await this.planPullRequest(gh, repo, pull, [env.name]);
        // A head whose plan fails has no plan to review: its error is the answer (applying again would loop).
        if (planned && !planned.ok) return void (await this.reply(gh, repo, pr, msg.planFailed(env.name, pull.headSha, planned.markdown)));
        return void (await this.reply(gh, repo, pr, msg.staleHead(env.name, saved?.headSha, pull.headSha)));
      }
      if (await this.changedSince(gh, repo, pull, command, env.name, kind, saved.createdAt)) return;
      // A merge or push (no comment) was not shown the plan comment: only a command comment is held to it.
      if (command.id !== undefined && (await this.planCommentEdited(gh, repo, pull, command, env.name))) return;
      try {
        desired = await this.desiredAt(gh, repo, config, env, pull.headSha, files);
      } catch (err) {
        return void (await this.reply(gh, repo, pr, msg.configError(err)));
      }
      const gate = await requiresGate(this.o.store, repo, pull, env, config.environments.map((e) => e.name), async (req) =>
        desiredDigest(await this.desiredAt(gh, repo, config, this.envOf(config, req)!, pull.headSha, files)),
      );
      if (await this.refuse(gh, repo, pr, gate)) return;
      expected = JSON.parse(saved.planJson) as ExpectedPlan[];
    } else {
      if (await this.changedSince(gh, repo, pull, command, env.name, kind)) return;
      // Rollback: the last completed state of this environment that differs from what is there now.
      const history = await this.o.store.listApplies({ repo: full, environment: env.name, states: ['completed'] });
      // What runs now is the latest ended apply's state, completed or not: after a failed or stopped apply (in part
      // on the host), the last completed state before it is the latest completed one, not the one before that.
      const [latest] = await this.o.store.listApplies({ repo: full, environment: env.name, states: TERMINAL_AGGREGATE_STATES, limit: 1 });
      const current = latest ?? history[0];
      const target = history.find((a) => a.desiredDigest !== current?.desiredDigest);
      if (!target) return void (await this.reply(gh, repo, pr, msg.noRollback(env.name)));
      if (!target.headSha) return void (await this.reply(gh, repo, pr, msg.rollbackUnsourced(env.name, target.id)));
      // Not the stored snapshot as is: that commit's compose, under TODAY's config and policy (a policy tightened since denies it).
      const source = { id: target.id, pr: target.pr, headSha: target.headSha };
      // …with the image digests that apply ran (an unreadable payload rebuilds with today's digests, which the plan shows).
      let ranState: DesiredState | undefined;
      try {
        ranState = parsePayload(target.desiredJson).desired;
      } catch {
        ranState = undefined;
      }
      const planned = await this.planEnvironment(gh, repo, { config, files: await gh.listFiles(repo, target.headSha) }, env, target.headSha, { rollout: 'rollback' }, ranState);
      if (!planned.ok) return void (await this.reply(gh, repo, pr, msg.rollbackRefused(env.name, source, planned.markdown)));
      desired = planned.desired;
      expected = expectedOf(planned.plans);
      rollbackPlan = msg.rollbackPlan(env.name, source, planned.markdown);
      stateSha = target.headSha;
    }

    const owner = `${full}#${pr}`;
    const lock = await this.o.store.acquireLock(full, env.name, owner, pr);
    if (!lock.acquired) return void (await this.reply(gh, repo, pr, msg.lockHeld(env.name, lock.holder, full)));
    // Shown before anything runs; the stale-plan guard below then holds the rollback to exactly this plan.
    if (rollbackPlan) await this.reply(gh, repo, pr, rollbackPlan);

    let prepared;
    try {
      prepared = await prepareApply(this.o.store, this.o.observe, {
        repo: full,
        pr,
        environment: env.name,
        kind,
        actor: user,
        // A rollback records the commit its state was rebuilt from, so rolling back to it again rebuilds the same.
        headSha: stateSha,
        desired,
        targets: env.targets,
        onFailure: env.on_failure,
        ...(env.parallelism ? { parallelism: env.parallelism } : {}),
        ...(expected ? { expected } : {}),
        secretKeys: secretKeysOf(env),
        secretValues: secretVariableValues(env.variables, env.secret_keys),
        policy: config.policy,
        ...(command.id !== undefined ? { commandCommentId: command.id } : {}),
        // Lock, in-flight check, apply and its driver's lease: one transaction (another replica may be here too).
        start: { lock: { owner, pr }, lease: this.o.runner.lease() },
      });
    } catch (err) {
      if (err instanceof StalePlanError) {
        // The host moved because an apply of this environment is under way (the same /apply taken a moment earlier
        // by another replica, or a second comment): that is the answer, not a plan of a half-applied host.
        const running = (await this.o.store.listApplies({ repo: full, environment: env.name, states: IN_FLIGHT_AGGREGATE_STATES }))[0];
        if (running) return void (await this.reply(gh, repo, pr, msg.alreadyApplying(env.name, running.id)));
        await this.planPullRequest(gh, repo, pull, [env.name]);
        return void (await this.reply(gh, repo, pr, msg.staleWorld(env.name, err.changes, kind)));
      }
      if (err instanceof ApplyRefusedError) {
        const r = err.refusal;
        return void (await this.reply(gh, repo, pr, r.reason === 'locked' ? msg.lockHeld(env.name, r.holder, full) : msg.alreadyApplying(env.name, r.applyId)));
      }
      throw err;
    }
    const steps = prepared.plans.reduce((n, p) => n + p.plan.nodes.length, 0);
    const applyId = prepared.applyId;
    // The start report (check run, then comment, then the deployment: in that order, once each) is sent
    // while Docker work already runs: GitHub's write spacing never delays the apply. The runner holds its
    // progress and final reports until this one is out, so they land after it and on its check run.
    const deployment = deploymentSpec(env, { id: applyId, kind, pr, actor: user }, stateSha);
    const report = (async () => {
      await this.o.runner.deployments.intend({ id: applyId, repo: full, environment: env.name }, deployment);
      let checkRunId: number | null = null;
      try {
        const id = await gh.createCheckRun(repo, {
          name: checkName(env.name),
          headSha: pull.headSha,
          status: 'in_progress',
          title: `Applying ${env.name}: 0/${steps} steps`,
          summary: `Apply ${code(applyId)} (${kind}) started by @${user}.\n\n${block(prepared.plans.map((p) => planToString(p.plan)).join('\n'), 'text')}`,
          externalId: applyId,
        });
        await this.o.store.setApplyCheckRun(applyId, id);
        checkRunId = id;
      } catch (err) {
        // Reporting never blocks the apply.
        this.o.log.error({ applyId, err: String(err) }, 'could not create the apply check run');
      }
      await this.reply(gh, repo, pr, steps ? msg.started(env.name, applyId, stateSha, steps) : msg.nothingToApply(env.name)).catch((err) =>
        this.o.log.error({ applyId, err: String(err) }, 'could not post the start comment'),
      );
      // Shown on GitHub's deployments surfaces, alongside the apply (issue 14): detached, never in its way
      // (started here, so the final report, which waits for this start report, finds it under way).
      void this.o.runner.deploy(gh, { id: applyId, repo: full, environment: env.name, checkRunId }, deployment);
    })();
    // The apply is this process's from now on (no recovery pass takes it).
    void this.o.runner.start(applyId, prepared.handover, report);
    // The command is handled once its start is reported (the PR's next event comes after it).
    await report;
    return prepared.applyId;
  }

  /** `/status [env]`: locks, running and recent applies of every (or the named) environment, read from the store only. */
  async status(repo: RepoRef, config: BerthConfig, envName?: string): Promise<string> {
    const full = repoName(repo);
    const locks = await this.o.store.listLocks(full);
    const envs: EnvironmentStatus[] = [];
    for (const env of config.environments.filter((e) => !envName || e.name === envName)) {
      const [live] = await this.o.store.listApplies({ repo: full, environment: env.name, states: IN_FLIGHT_AGGREGATE_STATES, limit: 1 });
      envs.push({
        name: env.name,
        lock: locks.find((l) => l.environment === env.name),
        running: live ? { apply: live, tasks: await this.o.store.listTasksForApply(live.id) } : undefined,
        recent: await this.o.store.listApplies({ repo: full, environment: env.name, states: TERMINAL_AGGREGATE_STATES, limit: STATUS_RECENT }),
      });
    }
    return renderStatus(full, envs, Date.now());
  }

  async stop(gh: GitHubPort, repo: RepoRef, pr: number, user: string, config: BerthConfig, envName?: string): Promise<void> {
    const envs = envName ? [this.envOf(config, envName)].filter((e): e is EnvironmentConfig => !!e) : config.environments;
    if (envName && !envs.length) return void (await this.reply(gh, repo, pr, msg.unknownEnv(envName, config.environments.map((e) => e.name))));
    const stopped: string[] = [];
    for (const env of envs) {
      const a = await this.o.store.applyOf(repoName(repo), pr, env.name);
      if (!a) continue;
      if (!(await this.authorised(gh, repo, pr, user, env))) return;
      if (await this.o.store.requestStop(a.id)) stopped.push(env.name);
    }
    await this.reply(gh, repo, pr, stopped.length ? msg.stopRequested(stopped) : msg.nothingToStop(envName));
  }

  async unlock(gh: GitHubPort, repo: RepoRef, pr: number, user: string, config: BerthConfig, envName?: string): Promise<void> {
    const full = repoName(repo);
    const locks = (await this.o.store.locksForPr(full, pr)).filter((l) => !envName || l.environment === envName);
    const released: string[] = [];
    for (const l of locks) {
      const env = this.envOf(config, l.environment) ?? { name: l.environment, requires: [] };
      if (!(await this.authorised(gh, repo, pr, user, env as EnvironmentConfig))) return;
      // The store refuses to release a lock whose apply is in flight (whichever replica started it, however recently).
      if (await this.o.store.releaseLock(full, l.environment, l.owner)) released.push(l.environment);
      else if (await this.o.store.getLock(full, l.environment)) await this.reply(gh, repo, pr, msg.unlockInFlight(l.environment));
    }
    await this.reply(gh, repo, pr, msg.unlocked(released));
  }

  // ── PR lifecycle ──────────────────────────────────────────────────────────

  /** Closed or merged: locks go, except those with an apply in flight (the runner releases them when it ends). */
  async pullClosed(repo: RepoRef, pr: number): Promise<{ released: string[]; retained: string[] }> {
    const full = repoName(repo);
    const released: string[] = [];
    const retained: string[] = [];
    for (const l of await this.o.store.locksForPr(full, pr)) {
      // Retained by the store while its apply is in flight; the runner releases it when the apply ends.
      if (await this.o.store.releaseLock(full, l.environment, l.owner)) released.push(l.environment);
      else if (await this.o.store.getLock(full, l.environment)) retained.push(l.environment);
    }
    this.o.log.info({ repo: full, pr, released, retained }, 'PR closed: locks');
    return { released, retained };
  }
}

/** An edit of a comment: false when GitHub no longer has it (deleted: 404, or 410 Gone); other failures throw. */
async function edited(update: Promise<void>): Promise<boolean> {
  try {
    await update;
    return true;
  } catch (err) {
    const status = httpStatus(err);
    if (status === 404 || status === 410) return false;
    throw err;
  }
}
