// The GitHub the domain services need, and nothing more: owned here so tests
// can run the whole bot against a fake GitHub or an in-memory double, and so
// every call berth makes is listed in one place.

export type Permission = 'admin' | 'maintain' | 'write' | 'triage' | 'read' | 'none';

export interface RepoRef {
  owner: string;
  name: string;
}

export const repoName = (r: RepoRef) => `${r.owner}/${r.name}`;

export function parseRepo(fullName: string): RepoRef {
  const [owner, name, ...rest] = fullName.split('/');
  if (!owner || !name || rest.length) throw new Error(`"${fullName}" is not owner/name`);
  return { owner, name };
}

export interface PullRequest {
  number: number;
  state: 'open' | 'closed';
  merged: boolean;
  draft: boolean;
  headSha: string;
  /** owner/name of the head repository; differs from the base for forks (null when the fork was deleted) */
  headRepo: string | null;
  baseRepo: string;
  /** null while GitHub is still computing it */
  mergeable: boolean | null;
  author: string;
  htmlUrl: string;
}

/** An issue comment as GitHub holds it. */
export interface IssueComment {
  body: string;
  /** GitHub's `updated_at` (ISO 8601): the last edit, by anyone */
  updatedAt: string;
}

export interface Review {
  user: string;
  state: string;
  submittedAt: string | null;
  /** the commit the review was made on (GitHub's `commit_id`); an approval is of that commit only */
  commitId: string | null;
}

export type CheckStatus = 'queued' | 'in_progress' | 'completed';
export type CheckConclusion = 'success' | 'failure' | 'neutral' | 'cancelled' | 'skipped' | 'timed_out' | 'action_required';

export interface CheckRunInput {
  name: string;
  headSha: string;
  status: CheckStatus;
  conclusion?: CheckConclusion;
  title: string;
  summary: string;
  text?: string;
  externalId?: string;
  detailsUrl?: string;
}

export type CheckRunUpdate = Omit<CheckRunInput, 'headSha' | 'name'>;

/** A GitHub deployment (issue 14): berth never lets GitHub merge or wait for checks. */
export interface DeploymentInput {
  /** the commit applied */
  ref: string;
  environment: string;
  description: string;
  payload: Record<string, string | number | null>;
  productionEnvironment: boolean;
  transientEnvironment: boolean;
}

export type DeploymentState = 'error' | 'failure' | 'inactive' | 'in_progress' | 'queued' | 'pending' | 'success';

export interface DeploymentStatusInput {
  state: DeploymentState;
  description?: string;
  logUrl?: string;
  environmentUrl?: string;
}

/** The HTTP status of a failed GitHub request (Octokit's RequestError), if it has one. */
export const httpStatus = (err: unknown): number | undefined => (err as { status?: number })?.status;

/**
 * A commit's listing GitHub cut short (a recursive tree over its limits: big monorepos). It holds the paths
 * it was given, but cannot tell a file is absent: `has` answers yes for every path, so the file is asked
 * for and a 404 says it is not there. Never cached as a commit's complete contents.
 */
export class PartialListing extends Set<string> {
  /**
   * `modes`: the git modes other than 100644 of the paths it holds (executables, symbolic links);
   * `sizes`: their sizes in bytes, where GitHub gave them (a read can be refused before it is made)
   */
  constructor(
    paths: Iterable<string> = [],
    readonly modes: ReadonlyMap<string, string> = new Map(),
    readonly sizes: ReadonlyMap<string, number> = new Map(),
  ) {
    super(paths);
  }

  override has(_path: string): boolean {
    return true;
  }
}

/**
 * A commit's complete listing with each file's blob (Git's name for its
 * bytes): a file whose blob was read before, at any commit, is known without
 * reading it again (commit-cache.ts).
 */
export class TreeListing extends Set<string> {
  /** `modes`: the git modes other than 100644 (executables, symbolic links), by path; `sizes`: bytes, where GitHub gave them */
  constructor(
    readonly blobs: ReadonlyMap<string, string>,
    readonly modes: ReadonlyMap<string, string> = new Map(),
    readonly sizes: ReadonlyMap<string, number> = new Map(),
  ) {
    super(blobs.keys());
  }
}

/** A file's text and the blob GitHub says it is (its `sha`). */
export interface FileBlob {
  text: string;
  blob: string;
}

export interface GitHubPort {
  defaultBranch(repo: RepoRef): Promise<string>;
  /** undefined when the file does not exist at that ref; no ref: the default branch (GitHub's own default, no repos.get) */
  readFile(repo: RepoRef, path: string, ref?: string): Promise<string | undefined>;
  /** readFile, with the blob GitHub names for the file */
  readFileBlob(repo: RepoRef, path: string, ref?: string): Promise<FileBlob | undefined>;
  /** a file's exact bytes (what a bind of a repository path copies into a container: images, fonts too); undefined when it does not exist */
  readFileBytes(repo: RepoRef, path: string, ref?: string): Promise<Buffer | undefined>;
  /** every blob path at a commit (one recursive tree call): a TreeListing, or a PartialListing when GitHub truncated it */
  listFiles(repo: RepoRef, sha: string): Promise<Set<string>>;
  getPull(repo: RepoRef, pr: number): Promise<PullRequest>;
  listReviews(repo: RepoRef, pr: number): Promise<Review[]>;
  permission(repo: RepoRef, user: string): Promise<Permission>;
  /** active member of org/team */
  isTeamMember(org: string, team: string, user: string): Promise<boolean>;
  createComment(repo: RepoRef, pr: number, body: string): Promise<number>;
  updateComment(repo: RepoRef, commentId: number, body: string): Promise<void>;
  /** a comment as GitHub holds it now (anyone with write access may have edited it); undefined when it is gone */
  getComment(repo: RepoRef, commentId: number): Promise<IssueComment | undefined>;
  react(repo: RepoRef, commentId: number, content: 'eyes' | '+1' | 'confused' | 'rocket'): Promise<void>;
  createCheckRun(repo: RepoRef, input: CheckRunInput): Promise<number>;
  updateCheckRun(repo: RepoRef, checkRunId: number, update: CheckRunUpdate): Promise<void>;
  /** the deployment's id */
  createDeployment(repo: RepoRef, input: DeploymentInput): Promise<number>;
  createDeploymentStatus(repo: RepoRef, deploymentId: number, status: DeploymentStatusInput): Promise<void>;
  /**
   * Re-sending a report (idempotency): the newest comment of the PR whose body holds `marker` (every
   * page read), undefined when there is none.
   */
  findComment(repo: RepoRef, pr: number, marker: string): Promise<number | undefined>;
  /** Re-sending a report: the newest status of a deployment, undefined when it has none. */
  latestDeploymentStatus(repo: RepoRef, deploymentId: number): Promise<DeploymentState | undefined>;
  /** Re-sending a report: the deployment of `ref` in `environment` whose payload names the apply, if GitHub has one. */
  findDeployment(repo: RepoRef, ref: string, environment: string, applyId: string): Promise<number | undefined>;
}

/** GitHub limits a check run's summary and text to 65,535 characters. */
export const CHECK_TEXT_LIMIT = 65_535;

export function clip(text: string, limit = CHECK_TEXT_LIMIT): string {
  if (text.length <= limit) return text;
  const note = '\n\n… (truncated; the full plan is in the PR comment)';
  return text.slice(0, limit - note.length) + note;
}

/** The external_id of a plan check run: the PR it was planned for (GitHub omits pull_requests for fork heads). */
export const planCheckExternalId = (pr: number) => `berth-plan:pr:${pr}`;

/** The PR a plan check run's external_id names; undefined for any other id. */
export function planCheckPr(externalId: unknown): number | undefined {
  const m = typeof externalId === 'string' ? /^berth-plan:pr:([1-9]\d{0,9})$/.exec(externalId) : null;
  return m ? Number(m[1]) : undefined;
}
