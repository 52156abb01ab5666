// The delivery guard: each handler routes the event, claims the delivery as a
// durable work item (payload stored) and hands it to the Bot on a per-PR
// queue, detached from the webhook request so GitHub gets its answer at once.
// A failure is logged and reported on the PR, never fatal.
import type { Context } from 'probot';
import type { GitHubPort, RepoRef } from '../github.js';
import { httpStatus, parseRepo } from '../github.js';
import { OctokitGitHub } from '../octokit-github.js';
import { readOnce } from '../read-once.js';
import { msg } from '../messages.js';
import { maskedGitHub } from '../../text/outbound.js';
import { instrumentOctokit } from '../../server/metrics.js';
import type { Services } from '../../services.js';

/** What a delivery asks of berth: the PR it belongs to (its queue) and the work. */
export type Job = { pr: number | undefined; run: (gh: GitHubPort, repo: RepoRef) => Promise<void> };
export type Payload = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * A payload → the job, `{ malformed }` when a field the job needs is missing,
 * undefined when it is not for berth. Pure, so a stored delivery is routed
 * again exactly as it was when it arrived.
 */
export type Route = (payload: Payload) => Job | { malformed: string } | undefined;
/** `<event>.<action>` (or `<event>` without actions) → its route. */
export type Routes = Record<string, Route>;

export interface Deliveries {
  /** Validates, claims the delivery as a durable work item (payload stored), then runs it detached. */
  handle(context: Context, event: string): Promise<void>;
  /** Deliveries a crash or a shutdown left unfinished (their claim lapsed): run again, each by one process. */
  resume(): Promise<void>;
}

/**
 * Lists a delivery can carry that no route reads, left out of the payload as stored (it is stored to be routed
 * again after a crash): a push names up to 2,048 commits, each with every path it touched (GitHub sends up to
 * 25 MB a delivery), more than MariaDB takes in one statement (max_allowed_packet, 16 MiB by default), so the
 * claim, and the push with it, failed. The push route reads the ref, the commit pushed and who pushed it.
 */
const UNREAD: Record<string, readonly string[]> = { push: ['commits', 'head_commit'] };

/** The payload as the deliveries table keeps it: without what no route reads (UNREAD). */
export function storedPayload(event: string, payload: Payload): string {
  const unread = UNREAD[event.split('.')[0]!];
  if (!unread?.some((k) => Object.hasOwn(payload, k))) return JSON.stringify(payload);
  const kept: Payload = {};
  for (const [k, v] of Object.entries(payload)) if (!unread.includes(k)) kept[k] = v;
  return JSON.stringify(kept);
}

/**
 * The reply to a handler that failed: a GitHub request it needed that GitHub failed (Octokit's RequestError: a
 * status and the request) is named as GitHub's failure, with the request's method and path; anything else is ours.
 */
export function failureReply(ref: string, err: unknown): string {
  const status = httpStatus(err);
  const req = (err as { request?: { method?: unknown; url?: unknown } })?.request;
  if (typeof status === 'number' && status >= 400 && typeof req?.method === 'string' && typeof req.url === 'string') {
    let path = req.url;
    try {
      path = decodeURIComponent(new URL(req.url).pathname);
    } catch {
      // a relative or undecodable URL is shown as it is
    }
    return msg.githubFailed(ref, status, `${req.method} ${path}`);
  }
  return msg.internalError(ref);
}

/** A delivery whose work was claimed this many times without finishing is given up at the next resume. */
export const MAX_DELIVERY_ATTEMPTS = 3;

export function deliveries(s: Services, routes: Routes): Deliveries {
  const { log, store, metrics, work, installations, replica, leaseTtlMs, githubFor, commitCache } = s;

  /** A payload without what the handler needs is not from GitHub (or not for berth): logged and dropped, never an error. */
  const malformed = (context: { id: string; name: string }, missing: string) => {
    log.warn({ delivery: context.id, event: context.name, missing }, 'malformed webhook payload ignored');
    metrics.webhook(context.name, 'ignored');
  };

  const route = (event: string, payload: Payload): Job | { malformed: string } | undefined => (Object.hasOwn(routes, event) ? routes[event]!(payload) : undefined);

  /**
   * Runs a claimed delivery's job detached on its PR's queue; failures are reported on the PR; then it is done.
   * `gh` as a function: the client is made in the job (asking GitHub for the repository's installation).
   */
  const enqueue = (delivery: { id: string; name: string }, full: string, job: Job, client: GitHubPort | (() => Promise<GitHubPort>)) => {
    const repo = parseRepo(full);
    // Queued per PR (its events in order); slots shared per repository, so no repository's burst starves another's.
    work.run(`${full}#${job.pr ?? 'repo'}`, async () => {
      let gh: GitHubPort;
      try {
        gh = typeof client === 'function' ? await client() : client;
      } catch (err) {
        metrics.webhook(delivery.name, 'failed');
        // 404: the app is not installed on the repository, nothing to act with. Anything else (GitHub unreachable
        // after Octokit's own retries) is an error no PR can be told of, as a handler's failure would be: logged.
        // Done either way, as a failed handler's delivery is (this process renews its claims while it lives).
        if (httpStatus(err) === 404) log.warn({ delivery: delivery.id, event: delivery.name, repo: full }, 'delivery for a repository the app is not installed on: ignored');
        else log.error({ delivery: delivery.id, event: delivery.name, repo: full, err: String(err) }, 'no GitHub client for the delivery (its installation could not be asked): not handled');
        await store.finishDelivery(delivery.id).catch((e) => log.error({ delivery: delivery.id, err: String(e) }, 'could not mark the delivery done'));
        return;
      }
      try {
        // Each read of this event made once (config, trees, compose files at a commit); what a commit
        // holds is remembered across events too (commit-cache.ts), the default branch's config never.
        await job.run(readOnce(commitCache.wrap(gh)), repo);
        metrics.webhook(delivery.name, 'handled');
      } catch (err) {
        metrics.webhook(delivery.name, 'failed');
        log.error({ delivery: delivery.id, event: delivery.name, repo: full, pr: job.pr, err: String(err), stack: (err as Error)?.stack }, 'handler failed');
        if (job.pr !== undefined) await gh.createComment(repo, job.pr, failureReply(delivery.id, err)).catch((e) => log.error({ err: String(e) }, 'could not report the internal error'));
      } finally {
        // Done, handled or reported: a redelivery from now on is a duplicate.
        await store.finishDelivery(delivery.id).catch((err) => log.error({ delivery: delivery.id, err: String(err) }, 'could not mark the delivery done'));
      }
    }, full);
  };

  const handle = async (context: Context, event: string) => {
    const payload = context.payload as Payload;
    const job = route(event, payload);
    if (!job) return;
    if ('malformed' in job) return malformed(context, job.malformed);
    if (typeof payload.repository?.full_name !== 'string' || !payload.repository.full_name.includes('/')) return malformed(context, 'repository.full_name');
    // Every delivery GitHub sends an app names its installation. One that names none (a replay, a stand-in)
    // is acted on through the installation GitHub says the repository has, asked with the app's own JWT.
    const installation: unknown = payload.installation?.id;
    if (installation !== undefined && typeof installation !== 'number') return malformed(context, 'installation.id');
    const full = payload.repository.full_name as string;
    if (typeof installation === 'number') installations.set(full, installation);
    // Only a delivery whose work is done (or is being done by a live process) is a duplicate.
    if (!(await store.claimDelivery(context.id, event, storedPayload(event, payload), replica, leaseTtlMs))) {
      log.info({ delivery: context.id, event: context.name }, 'duplicate delivery ignored');
      metrics.webhook(context.name, 'duplicate');
      return;
    }
    if (typeof installation !== 'number') return enqueue(context, full, job, () => githubFor(full));
    instrumentOctokit(context.octokit, metrics);
    enqueue(context, full, job, maskedGitHub(new OctokitGitHub(context.octokit as never)));
  };

  const resume = async () => {
    for (const d of await store.pendingDeliveries(100)) {
      // Claimed this often and never finished: each claim ended with its process (a crash, the out-of-memory
      // killer), and one more would too. Given up, so one delivery cannot keep the app from serving.
      if (d.attempts >= MAX_DELIVERY_ATTEMPTS) {
        log.error({ delivery: d.deliveryId, event: d.event, attempts: d.attempts }, `delivery given up: its work was started ${d.attempts} times and never finished (each time the process ended while handling it)`);
        metrics.webhook(d.event.split('.')[0]!, 'failed');
        await store.finishDelivery(d.deliveryId);
        continue;
      }
      let payload: Payload;
      try {
        payload = JSON.parse(d.payload) as Payload;
      } catch {
        await store.finishDelivery(d.deliveryId);
        continue;
      }
      const job = route(d.event, payload);
      const full = payload.repository?.full_name;
      const installation: unknown = payload.installation?.id;
      if (!job || 'malformed' in job || typeof full !== 'string' || (installation !== undefined && typeof installation !== 'number')) {
        await store.finishDelivery(d.deliveryId);
        continue;
      }
      if (!(await store.claimDelivery(d.deliveryId, d.event, d.payload, replica, leaseTtlMs))) continue;
      // Without one in the payload, githubFor asks GitHub for the repository's installation.
      if (typeof installation === 'number') installations.set(full, installation);
      let gh: GitHubPort;
      try {
        gh = await githubFor(full);
      } catch (err) {
        if (httpStatus(err) === 404) {
          // The app is not installed on the repository (any more): nothing to act with.
          log.warn({ delivery: d.deliveryId, repo: full }, 'delivery for a repository the app is not installed on: ignored');
          await store.finishDelivery(d.deliveryId);
          continue;
        }
        // Not done: given back, tried again at the next pass. This delivery only: the others this process holds
        // are being worked on, and released they would be taken over and run a second time by any replica.
        log.error({ delivery: d.deliveryId, err: String(err) }, 'no GitHub client to resume a delivery');
        await store.releaseDeliveries(replica, d.deliveryId).catch(() => 0);
        continue;
      }
      log.info({ delivery: d.deliveryId, event: d.event, repo: full }, 'resuming an unfinished delivery');
      enqueue({ id: d.deliveryId, name: d.event.split('.')[0]! }, full, job, gh);
    }
  };

  return { handle, resume };
}
