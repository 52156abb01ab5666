// The GitHub port on Probot's octokit (which brings throttling and retries
// for rate limits and 5xx). Every call, read or write, waits out GitHub's
// secondary rate limit (withSecondaryRetry). Failures propagate: the caller
// decides whether a failure denies (authorisation) or is reported and retried
// (comments).
import type { ProbotOctokit } from 'probot';
import type { CheckRunInput, CheckRunUpdate, DeploymentInput, DeploymentState, DeploymentStatusInput, GitHubPort, IssueComment, Permission, PullRequest, RepoRef, Review } from './github.js';
import { CHECK_TEXT_LIMIT, clip, httpStatus, PartialListing, TreeListing, type FileBlob } from './github.js';
import { BerthError } from '../errors.js';
import { MAX_FILE_BYTES } from '../compose/repository-files.js';

type Octokit = InstanceType<typeof ProbotOctokit>;

const PERMISSIONS = new Set<string>(['admin', 'maintain', 'write', 'triage', 'read', 'none']);


/**
 * Probot retries 5xx and primary rate limits, but gives up on GitHub's
 * secondary rate limit (403/429 with retry-after or that message). Those are
 * waited out here, a few times, with the wait GitHub asks for (capped).
 */
export async function withSecondaryRetry<T>(fn: () => Promise<T>, opts: { attempts?: number; maxWaitMs?: number; sleep?: (ms: number) => Promise<void> } = {}): Promise<T> {
  const attempts = opts.attempts ?? 4;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      const e = err as { status?: number; message?: string; response?: { headers?: Record<string, string | undefined> } };
      const h = e.response?.headers ?? {};
      const secondary = (e.status === 403 || e.status === 429) && (/secondary rate limit|abuse/i.test(e.message ?? '') || h['retry-after'] !== undefined);
      // A primary limit (remaining 0) is normally Probot's throttling's to wait out; when throttling is off it is ours.
      const primary = (e.status === 403 || e.status === 429) && h['x-ratelimit-remaining'] === '0';
      if (!(secondary || primary) || i >= attempts) throw err;
      const after = Number(h['retry-after']);
      const reset = Number(h['x-ratelimit-reset']) * 1000 - Date.now();
      const wait = Number.isFinite(after) && after > 0 ? after * 1000 : primary && Number.isFinite(reset) && reset > 0 ? reset : 1000 * 2 ** i;
      await sleep(Math.min(wait, opts.maxWaitMs ?? 60_000));
    }
  }
}

/** GitHub refuses (422) a comment body longer than this many characters. */
export const COMMENT_LIMIT = 65_536;

/**
 * The plan comment is split into parts below the limit; any other body (a configuration error listing every
 * problem of a large compose file, a long failure) is clipped here, with a note, rather than refused whole.
 */
export function clipComment(body: string): string {
  if (body.length <= COMMENT_LIMIT) return body;
  const note = `\n\n… (truncated: GitHub takes at most ${COMMENT_LIMIT} characters in a comment)`;
  let cut = COMMENT_LIMIT - note.length - 80;
  // never half a surrogate pair
  if (/[\uD800-\uDBFF]/.test(body[cut - 1] ?? '')) cut--;
  const head = body.slice(0, cut);
  // A code block the cut left open is closed, so the note reads as prose (fences counted by line, as GFM opens them).
  const fences = head.match(/^ {0,3}(`{3,}|~{3,})/gm) ?? [];
  const close = fences.length % 2 === 1 ? `\n${fences.at(-1)!.trim()}` : '';
  return (head + close).length + note.length <= COMMENT_LIMIT ? head + close + note : head + note;
}

export class OctokitGitHub implements GitHubPort {
  constructor(private readonly octokit: Octokit) {}

  async defaultBranch(repo: RepoRef): Promise<string> {
    const { data } = await withSecondaryRetry(() => this.octokit.rest.repos.get({ owner: repo.owner, repo: repo.name }));
    return data.default_branch;
  }

  async readFile(repo: RepoRef, path: string, ref?: string): Promise<string | undefined> {
    return (await this.readFileBlob(repo, path, ref))?.text;
  }

  async readFileBlob(repo: RepoRef, path: string, ref?: string): Promise<FileBlob | undefined> {
    const got = await this.readRaw(repo, path, ref);
    return got && { text: got.bytes.toString('utf8'), blob: got.blob };
  }

  async readFileBytes(repo: RepoRef, path: string, ref?: string): Promise<Buffer | undefined> {
    return (await this.readRaw(repo, path, ref))?.bytes;
  }

  /** A file's bytes as GitHub's contents API serves them (base64), and its blob; undefined when there is no such file. */
  private async readRaw(repo: RepoRef, path: string, ref?: string): Promise<{ bytes: Buffer; blob: string } | undefined> {
    try {
      const res = await withSecondaryRetry(() => this.octokit.rest.repos.getContent({ owner: repo.owner, repo: repo.name, path, ...(ref !== undefined ? { ref } : {}) }));
      // Octokit hands back text it could not parse as JSON (seen with multi-megabyte answers): never read as "no such file".
      let data: unknown = res.data;
      if (typeof data === 'string') {
        const text = data;
        try {
          data = JSON.parse(text);
        } catch {
          throw new Error(`${path}@${ref ?? 'default branch'}: GitHub's answer is not a JSON file entry (${text.length} characters of text)`);
        }
      }
      if (Array.isArray(data) || (data as { type?: string })?.type !== 'file') return undefined;
      const file = data as { content?: string; encoding?: string; size?: number; sha?: string };
      // GitHub serves the content of files up to 1 MB only; larger ones come with encoding "none" and no content.
      const tooLarge = (size: number | undefined) =>
        new BerthError('too_large', `file is ${size ?? `more than ${MAX_FILE_BYTES}`} bytes, more than the ${MAX_FILE_BYTES} bytes berth reads`, {
          file: path,
          hint: 'split it or remove what is not needed',
        });
      if (file.encoding === 'none' || (file.size ?? 0) > MAX_FILE_BYTES) throw tooLarge(file.size);
      if (file.encoding !== 'base64' || file.content === undefined) throw new Error(`${path}@${ref ?? 'default branch'}: unexpected encoding ${file.encoding}`);
      // The content itself, whatever size the answer claims (base64 is 4 characters for 3 bytes, lines broken).
      if (file.content.length > Math.ceil(MAX_FILE_BYTES / 3) * 4 * 1.05 + 1024) throw tooLarge(undefined);
      const bytes = Buffer.from(file.content, 'base64');
      if (bytes.length > MAX_FILE_BYTES) throw tooLarge(bytes.length);
      return { bytes, blob: String(file.sha ?? '') };
    } catch (err) {
      if (httpStatus(err) === 404) return undefined;
      throw err;
    }
  }

  async listFiles(repo: RepoRef, sha: string): Promise<Set<string>> {
    let data: Awaited<ReturnType<Octokit['rest']['git']['getTree']>>['data'];
    try {
      ({ data } = await withSecondaryRetry(() => this.octokit.rest.git.getTree({ owner: repo.owner, repo: repo.name, tree_sha: sha, recursive: 'true' })));
    } catch (err) {
      // No listing to be had (a GitHub Enterprise or a stand-in without the trees API, a tree it will
      // not list): each file is asked for instead, a 404 meaning "not there", as for a truncated tree.
      const s = httpStatus(err);
      if (s === 404 || s === 405 || s === 409 || s === 501) return new PartialListing([]);
      throw err;
    }
    const blobs = data.tree.filter((e) => e.type === 'blob' && e.path);
    // Executables and symbolic links: a bind of a repository path copies files with their mode (repository-files.ts).
    // (A submodule is a `commit` entry: no file, but its mode says what a bind of it is.)
    const modes = new Map([...blobs, ...data.tree.filter((e) => e.type === 'commit' && e.path)].filter((e) => e.mode && e.mode !== '100644').map((e) => [e.path!, e.mode!]));
    // Each file's size: a read over what berth reads is refused before it is made (repository-reads.ts).
    const sizes = new Map(blobs.filter((e) => typeof e.size === 'number' && Number.isSafeInteger(e.size) && e.size >= 0).map((e) => [e.path!, e.size!]));
    // Too large for one listing: the files are then asked for one by one (a 404 is "not there").
    return data.truncated ? new PartialListing(blobs.map((e) => e.path!), modes, sizes) : new TreeListing(new Map(blobs.map((e) => [e.path!, String(e.sha ?? '')])), modes, sizes);
  }

  async getPull(repo: RepoRef, pr: number): Promise<PullRequest> {
    const { data } = await withSecondaryRetry(() => this.octokit.rest.pulls.get({ owner: repo.owner, repo: repo.name, pull_number: pr }));
    return {
      number: data.number,
      state: data.state as 'open' | 'closed',
      merged: !!data.merged,
      draft: !!data.draft,
      headSha: data.head.sha,
      headRepo: data.head.repo?.full_name ?? null,
      baseRepo: data.base.repo.full_name,
      // Left out (a GitHub or stand-in that does not compute it) is as unknown as GitHub's null, never "has conflicts".
      mergeable: data.mergeable ?? null,
      // A deleted account's PR may come without its user: nobody's approval is then the author's.
      author: data.user?.login ?? '',
      htmlUrl: data.html_url,
    };
  }

  async listReviews(repo: RepoRef, pr: number): Promise<Review[]> {
    const reviews = await withSecondaryRetry(() => this.octokit.paginate(this.octokit.rest.pulls.listReviews, { owner: repo.owner, repo: repo.name, pull_number: pr, per_page: 100 }));
    return reviews.map((r) => ({ user: r.user?.login ?? '', state: r.state, submittedAt: r.submitted_at ?? null, commitId: r.commit_id ?? null }));
  }

  async permission(repo: RepoRef, user: string): Promise<Permission> {
    const { data } = await withSecondaryRetry(() => this.octokit.rest.repos.getCollaboratorPermissionLevel({ owner: repo.owner, repo: repo.name, username: user }));
    // role_name carries maintain/triage, which `permission` folds into write/read.
    const role = (data as { role_name?: string }).role_name;
    if (role === 'maintain' || role === 'triage') return role;
    // An answer with only role_name (a stand-in, an older GitHub Enterprise) is read by it; a custom role's name,
    // or nothing known at all, is no permission (authorisation fails closed, and says so).
    const known = (p: unknown): Permission | undefined => (typeof p === 'string' && PERMISSIONS.has(p) ? (p as Permission) : undefined);
    return known((data as { permission?: unknown }).permission) ?? known(role) ?? 'none';
  }

  async isTeamMember(org: string, team: string, user: string): Promise<boolean> {
    try {
      const { data } = await withSecondaryRetry(() => this.octokit.rest.teams.getMembershipForUserInOrg({ org, team_slug: team, username: user }));
      return data.state === 'active';
    } catch (err) {
      if (httpStatus(err) === 404) return false;
      throw err;
    }
  }

  async createComment(repo: RepoRef, pr: number, body: string): Promise<number> {
    const { data } = await withSecondaryRetry(() => this.octokit.rest.issues.createComment({ owner: repo.owner, repo: repo.name, issue_number: pr, body: clipComment(body) }));
    return data.id;
  }

  async updateComment(repo: RepoRef, commentId: number, body: string): Promise<void> {
    await withSecondaryRetry(() => this.octokit.rest.issues.updateComment({ owner: repo.owner, repo: repo.name, comment_id: commentId, body: clipComment(body) }));
  }

  async getComment(repo: RepoRef, commentId: number): Promise<IssueComment | undefined> {
    try {
      const { data } = await withSecondaryRetry(() => this.octokit.rest.issues.getComment({ owner: repo.owner, repo: repo.name, comment_id: commentId }));
      return { body: data.body ?? '', updatedAt: data.updated_at };
    } catch (err) {
      if (httpStatus(err) === 404 || httpStatus(err) === 410) return undefined;
      throw err;
    }
  }

  async react(repo: RepoRef, commentId: number, content: 'eyes' | '+1' | 'confused' | 'rocket'): Promise<void> {
    await withSecondaryRetry(() => this.octokit.rest.reactions.createForIssueComment({ owner: repo.owner, repo: repo.name, comment_id: commentId, content }));
  }

  async createCheckRun(repo: RepoRef, input: CheckRunInput): Promise<number> {
    const { data } = await withSecondaryRetry(() => this.octokit.rest.checks.create({
      owner: repo.owner,
      repo: repo.name,
      name: input.name,
      head_sha: input.headSha,
      status: input.status,
      ...(input.conclusion ? { conclusion: input.conclusion } : {}),
      ...(input.externalId ? { external_id: input.externalId } : {}),
      ...(input.detailsUrl ? { details_url: input.detailsUrl } : {}),
      output: output(input),
    }));
    return data.id;
  }

  async updateCheckRun(repo: RepoRef, checkRunId: number, update: CheckRunUpdate): Promise<void> {
    await withSecondaryRetry(() => this.octokit.rest.checks.update({
      owner: repo.owner,
      repo: repo.name,
      check_run_id: checkRunId,
      status: update.status,
      ...(update.conclusion ? { conclusion: update.conclusion } : {}),
      ...(update.externalId ? { external_id: update.externalId } : {}),
      output: output(update),
    }));
  }

  async createDeployment(repo: RepoRef, input: DeploymentInput): Promise<number> {
    const res = await withSecondaryRetry(() =>
      this.octokit.rest.repos.createDeployment({
        owner: repo.owner,
        repo: repo.name,
        ref: input.ref,
        environment: input.environment,
        description: input.description.slice(0, 140),
        payload: input.payload,
        // berth's own checks are what the apply waited for; GitHub must neither wait for them nor merge anything.
        required_contexts: [],
        auto_merge: false,
        production_environment: input.productionEnvironment,
        transient_environment: input.transientEnvironment,
      }),
    );
    const id = (res.data as { id?: number }).id;
    if (res.status !== 201 || typeof id !== 'number') throw new Error(`GitHub did not create the deployment (${res.status}): ${(res.data as { message?: string }).message ?? ''}`);
    return id;
  }

  async createDeploymentStatus(repo: RepoRef, deploymentId: number, status: DeploymentStatusInput): Promise<void> {
    await withSecondaryRetry(() =>
      this.octokit.rest.repos.createDeploymentStatus({
        owner: repo.owner,
        repo: repo.name,
        deployment_id: deploymentId,
        state: status.state,
        ...(status.description !== undefined ? { description: status.description.slice(0, 140) } : {}),
        ...(status.logUrl ? { log_url: status.logUrl } : {}),
        ...(status.environmentUrl ? { environment_url: status.environmentUrl } : {}),
        // berth marks earlier deployments inactive itself, production ones included (GitHub's auto_inactive skips those).
        auto_inactive: false,
      }),
    );
  }

  async findComment(repo: RepoRef, pr: number, marker: string): Promise<number | undefined> {
    const all = await withSecondaryRetry(() => this.octokit.paginate(this.octokit.rest.issues.listComments, { owner: repo.owner, repo: repo.name, issue_number: pr, per_page: 100 }));
    // Only a comment an app wrote can be berth's: the marker names an apply id every reader of the thread sees, so
    // anyone could post it first, and berth would write its outcome into their comment (which they could edit).
    // An app's comments are GitHub's type Bot, with a `[bot]` login no person's login can have.
    const byApp = (u: { type?: string; login?: string } | null | undefined) => u?.type === 'Bot' || !!u?.login?.endsWith('[bot]');
    return all.filter((c) => byApp(c.user) && typeof c.body === 'string' && c.body.includes(marker)).at(-1)?.id;
  }

  async latestDeploymentStatus(repo: RepoRef, deploymentId: number): Promise<DeploymentState | undefined> {
    // Newest first, as GitHub lists them.
    const { data } = await withSecondaryRetry(() => this.octokit.rest.repos.listDeploymentStatuses({ owner: repo.owner, repo: repo.name, deployment_id: deploymentId, per_page: 1 }));
    return data[0]?.state as DeploymentState | undefined;
  }

  async findDeployment(repo: RepoRef, ref: string, environment: string, applyId: string): Promise<number | undefined> {
    const all = await withSecondaryRetry(() => this.octokit.paginate(this.octokit.rest.repos.listDeployments, { owner: repo.owner, repo: repo.name, ref, environment, per_page: 100 }));
    const payloadOf = (p: unknown) => {
      if (typeof p === 'string') {
        try {
          return JSON.parse(p) as Record<string, unknown>;
        } catch {
          return {};
        }
      }
      return (p ?? {}) as Record<string, unknown>;
    };
    return all.find((d) => payloadOf(d.payload).apply_id === applyId)?.id;
  }
}

function output(x: { title: string; summary: string; text?: string }) {
  return { title: x.title.slice(0, 255), summary: clip(x.summary, CHECK_TEXT_LIMIT), ...(x.text ? { text: clip(x.text, CHECK_TEXT_LIMIT) } : {}) };
}
