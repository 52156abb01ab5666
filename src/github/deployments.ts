// GitHub deployments (issue 14): every apply and rollback shows up where
// GitHub shows deployments — the PR timeline, the repository's Environments
// page with its URL and history. An apply is one GitHub deployment of its
// environment at the applied commit; its statuses follow the apply
// (in_progress → success / failure / error), and a successful one marks the
// environment's earlier successful deployments inactive.
//
// What to create is stored with the apply before GitHub is asked, so the
// reporter that ends the apply (in any process) can create it if the start
// could not. This module must never affect an apply: every failure is logged
// and retried by the caller's report loop, never thrown into the executor.
import type { EnvironmentConfig } from '../config/config.js';
import type { DeploymentState, GitHubPort, RepoRef } from './github.js';
import { httpStatus, parseRepo } from './github.js';
import { githubWebUrl } from './messages.js';
import type { RunnerLogger } from '../apply/supervisor.js';
import type { ApplyRow, Store } from '../store/store.js';

/** What berth asks GitHub to create for an apply; stored as JSON with the apply. */
export interface DeploymentSpec {
  ref: string;
  environment: string;
  url?: string;
  production: boolean;
  transient: boolean;
  description: string;
  payload: Record<string, string | number | null>;
}

/** The environment's deployment flags from berth.yml: `production` is a production environment unless it says otherwise. */
export function deploymentSpec(env: Pick<EnvironmentConfig, 'name' | 'url' | 'production_environment' | 'transient_environment'>, apply: Pick<ApplyRow, 'id' | 'kind' | 'pr' | 'actor'>, ref: string, trigger = 'comment'): DeploymentSpec {
  return {
    ref,
    environment: env.name,
    ...(env.url ? { url: env.url } : {}),
    production: env.production_environment ?? env.name === 'production',
    transient: env.transient_environment ?? false,
    description: `berth ${apply.kind} ${apply.id}${apply.pr !== null ? ` from #${apply.pr}` : ''}`,
    payload: { apply_id: apply.id, kind: apply.kind, pr: apply.pr, actor: apply.actor, trigger },
  };
}

/** The apply's check run on GitHub, the deployment's log. */
export function checkRunUrl(repo: string, checkRunId: number | null): string | undefined {
  return checkRunId ? `${githubWebUrl()}/${repo}/runs/${checkRunId}` : undefined;
}

export const FINAL_DEPLOYMENT_STATE: Record<'completed' | 'failed' | 'stopped', DeploymentState> = {
  completed: 'success',
  failed: 'failure',
  stopped: 'error',
};

/** Runs one GitHub step of a report, retrying as the other reports are; resolves false when it gave up. */
export type Persist = (what: string, fn: (attempt: number) => Promise<unknown>) => Promise<boolean>;

export class Deployments {
  /** deployment creations in flight in this process: the final report waits for them */
  private readonly starting = new Map<string, Promise<void>>();

  constructor(private readonly o: { store: Store; log: RunnerLogger }) {}

  /**
   * What the apply's deployment will be, stored before any GitHub write of its start report: a process that
   * dies while it sends them (the check run, the start comment) leaves the deployment to the final report of
   * whoever recovers the apply, which creates it from this row. Never throws (start() stores it again).
   */
  async intend(apply: Pick<ApplyRow, 'id' | 'repo' | 'environment'>, spec: DeploymentSpec): Promise<void> {
    await this.o.store.saveDeployment({ applyId: apply.id, repo: apply.repo, environment: apply.environment, spec: JSON.stringify(spec) }).catch((err: unknown) => this.o.log.warn({ applyId: apply.id, err: String(err) }, 'could not store the deployment to create; the start report will'));
  }

  /**
   * At apply start: records what to create, then creates the deployment with
   * an `in_progress` status. Never throws; a failure leaves the creation to
   * the final report.
   */
  start(gh: GitHubPort, apply: Pick<ApplyRow, 'id' | 'repo' | 'environment' | 'checkRunId'>, spec: DeploymentSpec): Promise<void> {
    const p = (async () => {
      try {
        await this.o.store.saveDeployment({ applyId: apply.id, repo: apply.repo, environment: apply.environment, spec: JSON.stringify(spec) });
        const repo = parseRepo(apply.repo);
        const id = await gh.createDeployment(repo, deploymentInput(spec));
        await this.o.store.setDeployment(apply.id, { deploymentId: id });
        const checkRunId = (await this.o.store.getApply(apply.id))?.checkRunId ?? apply.checkRunId;
        await gh.createDeploymentStatus(repo, id, { state: 'in_progress', description: `Applying ${spec.environment}`, ...logUrl(apply.repo, checkRunId), ...envUrl(spec) });
        // The final status may already have been set by the reporter (a very short apply): never step back.
        const row = await this.o.store.getDeployment(apply.id);
        if (!row?.state) await this.o.store.setDeployment(apply.id, { state: 'in_progress' });
      } catch (err) {
        this.o.log.warn({ applyId: apply.id, err: String(err) }, 'could not create the GitHub deployment; the final report will');
      }
    })().finally(() => this.starting.delete(apply.id));
    this.starting.set(apply.id, p);
    return p;
  }

  /**
   * The ended apply's final deployment status (creating the deployment first
   * when the start could not), then the environment's earlier successful
   * deployments become inactive. Called by whoever claimed its report; again
   * when a reporter died before it was done (`resend`): a deployment or a
   * final status GitHub already holds is found, never made twice.
   */
  async finish(gh: GitHubPort, apply: ApplyRow, persist: Persist, resend = false): Promise<void> {
    if (!(apply.state === 'completed' || apply.state === 'failed' || apply.state === 'stopped')) return;
    await this.starting.get(apply.id);
    const row = await this.o.store.getDeployment(apply.id);
    if (!row) return; // an apply berth did not report as a deployment (the CLI's)
    const spec = JSON.parse(row.spec) as DeploymentSpec;
    const repo = parseRepo(apply.repo);
    const state = FINAL_DEPLOYMENT_STATE[apply.state];
    let id = row.deploymentId;
    if (id === null) {
      const ok = await persist('create the GitHub deployment', async (attempt) => {
        // Created before a crash (or a lost answer) without its id stored: that one, found by the apply it names.
        id = (resend || attempt > 1 ? await lookup(this.o.log, apply.id, 'deployments', gh.findDeployment(repo, spec.ref, spec.environment, apply.id)) : undefined) ?? (await gh.createDeployment(repo, deploymentInput(spec)));
        await this.o.store.setDeployment(apply.id, { deploymentId: id });
      });
      if (!ok || id === null) return;
    }
    const description = apply.state === 'completed' ? `Applied ${apply.environment}` : apply.state === 'stopped' ? `Apply stopped` : `Apply failed`;
    const deploymentId: number = id;
    // Already sent and recorded: nothing to send (a terminal status is never repeated).
    const sent =
      row.state === state ||
      row.state === 'inactive' ||
      (await persist('set the deployment status', async (attempt) => {
        const there = resend || attempt > 1 ? await lookup(this.o.log, apply.id, 'deployment statuses', gh.latestDeploymentStatus(repo, deploymentId)) : undefined;
        if (there !== state) await gh.createDeploymentStatus(repo, deploymentId, { state, description, ...logUrl(apply.repo, apply.checkRunId), ...envUrl(spec) });
        await this.o.store.setDeployment(apply.id, { state });
      }));
    if (sent && state === 'success') await this.inactivateEarlier(gh, repo, apply, persist);
  }

  /** Earlier successful deployments of the environment: inactive, as GitHub shows only the live one as active. */
  private async inactivateEarlier(gh: GitHubPort, repo: RepoRef, apply: ApplyRow, persist: Persist): Promise<void> {
    for (const d of await this.o.store.listDeployments(apply.repo, apply.environment, 'success')) {
      if (d.applyId === apply.id || d.deploymentId === null) continue;
      const id = d.deploymentId;
      await persist('mark an earlier deployment inactive', async () => {
        await gh.createDeploymentStatus(repo, id, { state: 'inactive', description: `Superseded by ${apply.id}` });
        await this.o.store.setDeployment(d.applyId, { state: 'inactive' });
      });
    }
  }
}

/**
 * A re-send's look at what GitHub already holds. A GitHub that does not serve the listing (404, 405, 501:
 * a stand-in or proxy without it) cannot tell: the step is sent (a repeat beats a report never made),
 * with a warning. Any other failure throws, for the report's retries.
 */
export async function lookup<T>(log: RunnerLogger, applyId: string, what: string, p: Promise<T | undefined>): Promise<T | undefined> {
  try {
    return await p;
  } catch (err) {
    const status = httpStatus(err);
    if (status !== 404 && status !== 405 && status !== 501) throw err;
    log.warn({ applyId, status, err: String(err) }, `could not list ${what} to find what an earlier report sent; sending it`);
    return undefined;
  }
}

function deploymentInput(spec: DeploymentSpec) {
  return { ref: spec.ref, environment: spec.environment, description: spec.description, payload: spec.payload, productionEnvironment: spec.production, transientEnvironment: spec.transient };
}

const logUrl = (repo: string, checkRunId: number | null) => {
  const url = checkRunUrl(repo, checkRunId);
  return url ? { logUrl: url } : {};
};

const envUrl = (spec: DeploymentSpec) => (spec.url ? { environmentUrl: spec.url } : {});
