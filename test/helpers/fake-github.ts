// A local fake of the GitHub REST API for end-to-end tests: a real HTTP
// server that Probot (or any Octokit) is pointed at with `baseUrl`.
//
// Every request is checked against GitHub's own REST API description
// (@octokit/openapi): the method and path must be an operation, path and
// query parameters must have the declared types, and a JSON body must satisfy
// the operation's request schema (required fields, enums, lengths), plus the
// few rules GitHub documents in prose (a completed check run needs a
// conclusion, comment bodies are at most 65,536 characters, check runs are
// created on commits that exist). A request GitHub would refuse gets GitHub's
// 404/422 and is listed in `violations`, so a test ends with
// `expect(fake.violations).toEqual([])`. Responses are built on the examples in
// the same description and are themselves checked against its response schemas
// (a mismatch is a `side: 'response'` violation: a bug in this fake).
//
// State (files per ref, pull requests, reviews, permissions, team memberships,
// comments, reactions, check runs, deployments and their statuses) lives in
// memory, is set up with the knobs below and is inspected with `comments()`,
// `checkRuns()`, `reactions()`, `deployments()`. Deployments behave as GitHub
// documents: a ref must exist, omitting `required_contexts` is a 409 here (the
// fake has no commit statuses to verify), and `auto_inactive` (default true)
// marks earlier successful non-production, non-transient ones inactive.
// `fail()` injects 5xx, secondary-rate-limit 403s and 429s on any route.
import { createHash, createHmac, createPublicKey, randomUUID, verify as verifySignature } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import type { WebhookEventMap, WebhookEventName } from '@octokit/webhooks-types';

// ── public types ────────────────────────────────────────────────────────────

export interface RecordedRequest {
  /** 1-based arrival order */
  seq: number;
  method: string;
  /** decoded path, without the query string */
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** parsed JSON body (undefined when there was none; the raw text when it was not JSON) */
  body: unknown;
  /** the matched operation, e.g. `checks/create` */
  operationId?: string;
  /** the status the fake answered with */
  status: number;
}

export interface Violation {
  /** 'request': GitHub would refuse this request; 'response': the fake answered off-spec (a bug in the fake) */
  side: 'request' | 'response';
  method: string;
  path: string;
  operationId?: string;
  problems: string[];
}

/** A fault for `fail()`: a status code (5xx), GitHub's secondary rate limit (403) or a rate limit (429). */
export type Fault = number | 'secondary-rate-limit' | 'rate-limit' | { status: number; message?: string; headers?: Record<string, string> };

export type RepoRole = 'admin' | 'maintain' | 'write' | 'triage' | 'read' | 'none';
export type ReviewState = 'APPROVED' | 'CHANGES_REQUESTED' | 'COMMENTED' | 'DISMISSED' | 'PENDING';

export interface PullInput {
  headSha?: string;
  headRef?: string;
  baseRef?: string;
  /** owner/name of the head repository: a different one makes the PR come from a fork; null: the fork was deleted */
  headRepo?: string | null;
  /** shorthand for headRepo `<author>/<name>` */
  fork?: boolean;
  /** null: GitHub is still computing it */
  mergeable?: boolean | null;
  mergeableState?: string;
  state?: 'open' | 'closed';
  merged?: boolean;
  draft?: boolean;
  author?: string;
  title?: string;
}

export interface FakePull extends Required<Omit<PullInput, 'fork'>> {
  number: number;
}

export interface FakeReview {
  id: number;
  user: string;
  state: ReviewState;
  submittedAt: string | null;
  commitId: string;
}

export interface FakeComment {
  id: number;
  issueNumber: number;
  body: string;
  user: string;
  userType: 'User' | 'Bot';
  createdAt: string;
  updatedAt: string;
  /** every body the comment has had, oldest first */
  history: string[];
}

export interface FakeReaction {
  id: number;
  content: string;
  user: string;
}

export interface FakeCheckRun {
  id: number;
  name: string;
  headSha: string;
  status: string;
  conclusion: string | null;
  title: string | null;
  summary: string | null;
  text: string | null;
  externalId: string | null;
  detailsUrl: string | null;
  startedAt: string;
  completedAt: string | null;
  /** the create body and every update body, in order */
  writes: Record<string, unknown>[];
}

export interface FakeDeploymentStatus {
  id: number;
  state: string;
  description: string;
  logUrl: string;
  environmentUrl: string;
  /** who set it: the app, or GitHub itself (auto_inactive) */
  creator: string;
}

export interface FakeDeployment {
  id: number;
  ref: string;
  sha: string;
  environment: string;
  description: string | null;
  payload: unknown;
  productionEnvironment: boolean;
  transientEnvironment: boolean;
  createdAt: string;
  /** the create body */
  request: Record<string, unknown>;
  /** oldest first */
  statuses: FakeDeploymentStatus[];
}

export interface FakeGitHubOptions {
  /** 'required' (default): app routes need the app's JWT, others an installation token the fake issued (or `fake.token`) */
  auth?: 'required' | 'off';
  /** the app's private (or public) key, PEM: JWTs must be signed with it */
  appKey?: string;
  /** when set, a JWT's `iss` must be this app id */
  appId?: number | string;
  /** the app's slug: comments it writes come from `<slug>[bot]` */
  appSlug?: string;
}

export interface FakeGitHub {
  /** base URL to hand to Octokit / Probot (`baseUrl`) */
  readonly url: string;
  readonly requests: RecordedRequest[];
  readonly violations: Violation[];
  /** valid requests for operations the fake does not implement (answered 501) */
  readonly unhandled: RecordedRequest[];
  /** an installation token the fake accepts, for clients that skip app authentication */
  readonly token: string;
  close(): Promise<void>;

  // ── knobs ──
  setRepo(repo: string, opts?: { defaultBranch?: string; private?: boolean }): void;
  /** the whole tree at `ref` (a branch name or a commit SHA) */
  /** `modes`: git modes other than 100644, by path ('100755' an executable, '120000' a symbolic link) */
  setFiles(repo: string, ref: string, files: Record<string, string>, opts?: { truncated?: boolean; modes?: Record<string, string> }): void;
  /** one file at `ref`; null deletes it */
  setFile(repo: string, ref: string, path: string, content: string | null): void;
  /** create or change a pull request; returns its current state */
  setPull(repo: string, number: number, pull?: PullInput): FakePull;
  addReview(repo: string, pr: number, review: { user: string; state: ReviewState; submittedAt?: string | null; commitId?: string }): FakeReview;
  /** the user's role on the repository; null: GitHub answers 404 (no such user) */
  setPermission(repo: string, user: string, role: RepoRole | null): void;
  /** null: not a member (404) */
  setTeamMembership(org: string, team: string, user: string, membership: { state?: 'active' | 'pending'; role?: 'member' | 'maintainer' } | null): void;
  /** a comment written by someone (a person by default), as a webhook would announce it */
  addComment(repo: string, pr: number, body: string, opts?: { user?: string; userType?: 'User' | 'Bot' }): FakeComment;
  /** someone with write access edits a comment (anyone's, berth's too), as GitHub lets them: its updated_at moves */
  editComment(repo: string, id: number, body: string): FakeComment;
  /** the next `times` (default 1) valid calls to `route` fail (times 0 clears the route's faults); route: an operationId (`checks/create`) or `METHOD /template` */
  fail(route: string, fault: Fault, opts?: { times?: number; retryAfter?: number }): void;

  // ── inspection ──
  comments(repo: string, pr: number): FakeComment[];
  comment(repo: string, id: number): FakeComment | undefined;
  checkRuns(repo: string, sha: string): FakeCheckRun[];
  reactions(repo: string, commentId: number): FakeReaction[];
  /** deployments, oldest first (optionally of one environment), with their statuses */
  deployments(repo: string, environment?: string): FakeDeployment[];
  /** recorded requests for a route (operationId or `METHOD /template`) */
  requestsTo(route: string): RecordedRequest[];
}

// ── GitHub's REST API description ───────────────────────────────────────────

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Param {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema?: Json;
  multiSegment: boolean;
}

interface Operation {
  operationId: string;
  method: string;
  template: string;
  regex: RegExp;
  pathParams: string[];
  params: Param[];
  body?: { required: boolean; schema?: Json; json: boolean };
  responses: Record<string, Json>;
  specificity: number;
}

interface Spec {
  doc: Json;
  operations: Operation[];
  byId: Map<string, Operation>;
}

let spec: Spec | undefined;

/** GitHub's REST API description (api.github.com), loaded once per process. */
export function githubSpec(): Spec {
  if (spec) return spec;
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve('@octokit/openapi/package.json'));
  const doc = JSON.parse(readFileSync(join(dir, 'generated', 'api.github.com.json'), 'utf8'));
  const operations: Operation[] = [];
  for (const [template, item] of Object.entries<Json>(doc.paths)) {
    for (const [method, op] of Object.entries<Json>(item)) {
      if (!op || typeof op !== 'object' || !op.operationId) continue;
      const params: Param[] = [...(item.parameters ?? []), ...(op.parameters ?? [])].map((p: Json) => {
        const d = deref(doc, p);
        return { name: d.name, in: d.in, required: d.required, schema: d.schema, multiSegment: !!d['x-multi-segment'] };
      });
      const pathParams: string[] = [];
      let specificity = 0;
      const source = template
        .split(/(\{[^}]+\})/)
        .map((part) => {
          const m = /^\{(.+)\}$/.exec(part);
          if (!m) {
            specificity += part.length;
            return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          }
          pathParams.push(m[1]!);
          const multi = params.find((p) => p.in === 'path' && p.name === m[1])?.multiSegment;
          return multi ? '(.+)' : '([^/]+)';
        })
        .join('');
      const rb = op.requestBody ? deref(doc, op.requestBody) : undefined;
      const content = rb?.content ?? {};
      operations.push({
        operationId: op.operationId,
        method: method.toUpperCase(),
        template,
        regex: new RegExp(`^${source}$`),
        pathParams,
        params,
        body: rb ? { required: !!rb.required, schema: content['application/json']?.schema, json: 'application/json' in content } : undefined,
        responses: op.responses ?? {},
        specificity,
      });
    }
  }
  operations.sort((a, b) => b.specificity - a.specificity);
  spec = { doc, operations, byId: new Map(operations.map((o) => [o.operationId, o])) };
  return spec;
}

function deref(doc: Json, x: Json): Json {
  let cur = x;
  for (let hops = 0; cur && typeof cur === 'object' && typeof cur.$ref === 'string'; hops++) {
    if (hops > 32) throw new Error(`$ref loop at ${cur.$ref}`);
    cur = cur.$ref
      .slice(2)
      .split('/')
      .reduce((o: Json, k: string) => o?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
  }
  return cur;
}

/**
 * Checks a value against an OpenAPI 3.0 schema: type, nullable, enum, required,
 * properties, additionalProperties, items, length and count limits, allOf,
 * anyOf and oneOf (read as anyOf: GitHub's alternatives overlap).
 */
export function validateSchema(schema: Json, value: unknown, at = '$', problems: string[] = [], depth = 0): string[] {
  const doc = githubSpec().doc;
  const s = deref(doc, schema);
  if (!s || typeof s !== 'object' || depth > 40) return problems;
  if (value === null) {
    if (s.nullable || s.enum?.includes(null)) return problems;
    if (s.type) {
      problems.push(`${at}: null is not allowed`);
      return problems;
    }
  }
  for (const sub of s.allOf ?? []) validateSchema(sub, value, at, problems, depth + 1);
  const alternatives: Json[] | undefined = s.anyOf ?? s.oneOf;
  if (alternatives) {
    let best: string[] | undefined;
    for (const alt of alternatives) {
      const p = validateSchema(alt, value, at, [], depth + 1);
      if (!p.length) {
        best = undefined;
        break;
      }
      if (!best || p.length < best.length) best = p;
    }
    if (best) problems.push(`${at}: matches none of the allowed forms (closest: ${best.join('; ')})`);
  }
  if (value === null) return problems;
  if (s.enum && !s.enum.includes(value)) {
    problems.push(`${at}: ${JSON.stringify(value)} is not one of ${s.enum.map((e: unknown) => JSON.stringify(e)).join(', ')}`);
  }
  const type = s.type ?? (s.properties || s.required ? 'object' : undefined);
  switch (type) {
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) {
        problems.push(`${at}: expected an object, got ${describe(value)}`);
        break;
      }
      const obj = value as Record<string, unknown>;
      for (const r of s.required ?? []) if (obj[r] === undefined) problems.push(`${at}.${r}: is required`);
      for (const [k, v] of Object.entries(obj)) {
        if (v === undefined) continue;
        const ps = s.properties?.[k];
        if (ps) validateSchema(ps, v, `${at}.${k}`, problems, depth + 1);
        else if (s.additionalProperties === false) problems.push(`${at}.${k}: is not a known field`);
        else if (s.additionalProperties && typeof s.additionalProperties === 'object') validateSchema(s.additionalProperties, v, `${at}.${k}`, problems, depth + 1);
      }
      if (s.maxProperties !== undefined && Object.keys(obj).length > s.maxProperties) problems.push(`${at}: more than ${s.maxProperties} fields`);
      break;
    }
    case 'array':
      if (!Array.isArray(value)) {
        problems.push(`${at}: expected an array, got ${describe(value)}`);
        break;
      }
      if (s.maxItems !== undefined && value.length > s.maxItems) problems.push(`${at}: more than ${s.maxItems} items`);
      if (s.minItems !== undefined && value.length < s.minItems) problems.push(`${at}: fewer than ${s.minItems} items`);
      if (s.items) value.forEach((v, i) => validateSchema(s.items, v, `${at}[${i}]`, problems, depth + 1));
      break;
    case 'string':
      if (typeof value !== 'string') problems.push(`${at}: expected a string, got ${describe(value)}`);
      else {
        if (s.maxLength !== undefined && value.length > s.maxLength) problems.push(`${at}: longer than ${s.maxLength} characters (${value.length})`);
        if (s.minLength !== undefined && value.length < s.minLength) problems.push(`${at}: shorter than ${s.minLength} characters`);
      }
      break;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) problems.push(`${at}: expected an integer, got ${describe(value)}`);
      else checkRange(s, value, at, problems);
      break;
    case 'number':
      if (typeof value !== 'number') problems.push(`${at}: expected a number, got ${describe(value)}`);
      else checkRange(s, value, at, problems);
      break;
    case 'boolean':
      if (typeof value !== 'boolean') problems.push(`${at}: expected a boolean, got ${describe(value)}`);
      break;
  }
  return problems;
}

function checkRange(s: Json, value: number, at: string, problems: string[]) {
  if (s.minimum !== undefined && value < s.minimum) problems.push(`${at}: below the minimum ${s.minimum}`);
  if (s.maximum !== undefined && value > s.maximum) problems.push(`${at}: above the maximum ${s.maximum}`);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  const s = JSON.stringify(v);
  return `${typeof v} ${s && s.length > 40 ? s.slice(0, 40) + '…' : s}`;
}

/** Path and query parameters against their declared schemas; unknown query parameters are reported. */
function validateParams(op: Operation, pathValues: Record<string, string>, query: Record<string, string>): string[] {
  const problems: string[] = [];
  const scalar = (p: Param, raw: string, at: string) => {
    const s = deref(githubSpec().doc, p.schema ?? {});
    const type = s?.type;
    if (type === 'integer' && !/^-?\d+$/.test(raw)) problems.push(`${at}: expected an integer, got ${JSON.stringify(raw)}`);
    else if (type === 'boolean' && raw !== 'true' && raw !== 'false') problems.push(`${at}: expected true or false, got ${JSON.stringify(raw)}`);
    else if (s?.enum && !s.enum.map(String).includes(raw)) problems.push(`${at}: ${JSON.stringify(raw)} is not one of ${s.enum.join(', ')}`);
    if (type === 'integer' && /^-?\d+$/.test(raw)) checkRange(s, Number(raw), at, problems);
  };
  for (const p of op.params) {
    if (p.in === 'path') {
      const v = pathValues[p.name];
      if (v === undefined || v === '') problems.push(`path parameter ${p.name}: missing`);
      else scalar(p, v, `path parameter ${p.name}`);
    } else if (p.in === 'query') {
      const v = query[p.name];
      if (v === undefined) {
        if (p.required) problems.push(`query parameter ${p.name}: is required`);
      } else if (deref(githubSpec().doc, p.schema ?? {})?.type !== 'array') scalar(p, v, `query parameter ${p.name}`);
    }
  }
  const declared = new Set(op.params.filter((p) => p.in === 'query').map((p) => p.name));
  for (const k of Object.keys(query)) if (!declared.has(k)) problems.push(`query parameter ${k}: not a parameter of ${op.operationId}`);
  return problems;
}

/** The example GitHub documents for an operation's response with this status, deep-copied. */
function exampleFor(op: Operation, status: number): Json {
  const doc = githubSpec().doc;
  const res = deref(doc, op.responses[String(status)]);
  const content = res?.content?.['application/json'];
  if (!content) return undefined;
  const examples = content.examples ? Object.values<Json>(content.examples) : [];
  const ex = examples.length ? deref(doc, examples[0]).value : content.example;
  return ex === undefined ? undefined : structuredClone(ex);
}

// ── the fake ────────────────────────────────────────────────────────────────

interface RepoState {
  owner: string;
  name: string;
  id: number;
  defaultBranch: string;
  private: boolean;
  trees: Map<string, { files: Map<string, string>; truncated: boolean; modes?: Map<string, string> }>;
  roles: Map<string, RepoRole | null>;
  pulls: Map<number, FakePull>;
  reviews: Map<number, FakeReview[]>;
  comments: Map<number, FakeComment>;
  reactions: Map<number, FakeReaction[]>;
  checkRuns: Map<number, FakeCheckRun>;
  deployments: Map<number, FakeDeployment>;
}

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface Ctx {
  op: Operation;
  params: Record<string, string>;
  query: Record<string, string>;
  body: Json;
  repo?: RepoState;
  /** who is calling: the app's bot user for installation tokens */
  actor: string;
  /** this request's URL without the query, for Link headers */
  self: string;
}

/** Where GitHub's real answers differ from its description, the fake answers like GitHub. */
const KNOWN_SPEC_GAPS: Record<string, string[]> = {
  // A pull request whose fork was deleted has `head.repo: null`; the description says it is never null.
  'pulls/get': ['response.head.repo: null is not allowed'],
};

const DOCS = 'https://docs.github.com/rest';
const SECONDARY_RATE_LIMIT = 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.';
const COMMENT_BODY_LIMIT = 65_536;

function error(status: number, message: string, extra: Record<string, unknown> = {}): Reply {
  return { status, body: { message, documentation_url: DOCS, status: String(status), ...extra } };
}
const notFound = () => error(404, 'Not Found');

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');
const blobSha = (content: string) => sha1(`blob ${Buffer.byteLength(content)}\0${content}`);
const isSha = (s: string) => /^[0-9a-f]{40}$/.test(s);

class Fake implements FakeGitHub {
  url = '';
  readonly requests: RecordedRequest[] = [];
  readonly violations: Violation[] = [];
  readonly unhandled: RecordedRequest[] = [];
  readonly token = 'ghs_fakeInstallationToken000000000000000';
  private readonly server = createServer((req, res) => void this.handle(req, res));
  private readonly repos = new Map<string, RepoState>();
  private readonly teams = new Map<string, { state: 'active' | 'pending'; role: 'member' | 'maintainer' }>();
  private readonly faults: { op: Operation; fault: Fault; times: number; retryAfter: number }[] = [];
  private readonly tokens = new Set<string>([this.token]);
  private readonly publicKey;
  private nextId = 1000;
  private seq = 0;

  constructor(private readonly options: FakeGitHubOptions) {
    this.publicKey = options.appKey ? createPublicKey(options.appKey) : undefined;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve, reject) => this.server.close((err) => (err ? reject(err) : resolve())));
  }

  private get botLogin() {
    return `${this.options.appSlug ?? 'berth'}[bot]`;
  }

  // ── knobs ──

  private repo(full: string, create = true): RepoState | undefined {
    const key = full.toLowerCase();
    let r = this.repos.get(key);
    if (!r && create) {
      const [owner, name, ...rest] = full.split('/');
      if (!owner || !name || rest.length) throw new Error(`fake-github: "${full}" is not owner/name`);
      r = {
        owner,
        name,
        id: this.nextId++,
        defaultBranch: 'main',
        private: false,
        trees: new Map(),
        roles: new Map(),
        pulls: new Map(),
        reviews: new Map(),
        comments: new Map(),
        reactions: new Map(),
        checkRuns: new Map(),
        deployments: new Map(),
      };
      this.repos.set(key, r);
    }
    return r;
  }

  setRepo(repo: string, opts: { defaultBranch?: string; private?: boolean } = {}) {
    const r = this.repo(repo)!;
    if (opts.defaultBranch !== undefined) r.defaultBranch = opts.defaultBranch;
    if (opts.private !== undefined) r.private = opts.private;
  }

  setFiles(repo: string, ref: string, files: Record<string, string>, opts: { truncated?: boolean; modes?: Record<string, string> } = {}) {
    this.repo(repo)!.trees.set(ref, { files: new Map(Object.entries(files)), truncated: !!opts.truncated, ...(opts.modes ? { modes: new Map(Object.entries(opts.modes)) } : {}) });
  }

  setFile(repo: string, ref: string, path: string, content: string | null) {
    const r = this.repo(repo)!;
    let tree = r.trees.get(ref);
    if (!tree) r.trees.set(ref, (tree = { files: new Map(), truncated: false }));
    if (content === null) tree.files.delete(path);
    else tree.files.set(path, content);
  }

  setPull(repo: string, number: number, input: PullInput = {}): FakePull {
    const r = this.repo(repo)!;
    const cur = r.pulls.get(number);
    const author = input.author ?? cur?.author ?? 'octocat';
    const pull: FakePull = {
      number,
      headSha: input.headSha ?? cur?.headSha ?? sha1(`${r.owner}/${r.name}#${number}`),
      headRef: input.headRef ?? cur?.headRef ?? `pr-${number}`,
      baseRef: input.baseRef ?? cur?.baseRef ?? r.defaultBranch,
      headRepo:
        input.headRepo !== undefined ? input.headRepo : input.fork !== undefined ? (input.fork ? `${author}/${r.name}` : `${r.owner}/${r.name}`) : (cur?.headRepo ?? `${r.owner}/${r.name}`),
      mergeable: input.mergeable !== undefined ? input.mergeable : (cur?.mergeable ?? true),
      mergeableState: input.mergeableState ?? cur?.mergeableState ?? 'clean',
      state: input.state ?? cur?.state ?? 'open',
      merged: input.merged ?? cur?.merged ?? false,
      draft: input.draft ?? cur?.draft ?? false,
      author,
      title: input.title ?? cur?.title ?? `PR #${number}`,
    };
    r.pulls.set(number, pull);
    return { ...pull };
  }

  addReview(repo: string, pr: number, review: { user: string; state: ReviewState; submittedAt?: string | null; commitId?: string }): FakeReview {
    const r = this.repo(repo)!;
    const list = r.reviews.get(pr) ?? [];
    const rv: FakeReview = {
      id: this.nextId++,
      user: review.user,
      state: review.state,
      submittedAt: review.submittedAt !== undefined ? review.submittedAt : review.state === 'PENDING' ? null : now(),
      commitId: review.commitId ?? r.pulls.get(pr)?.headSha ?? sha1(`${repo}#${pr}`),
    };
    list.push(rv);
    r.reviews.set(pr, list);
    return { ...rv };
  }

  setPermission(repo: string, user: string, role: RepoRole | null) {
    this.repo(repo)!.roles.set(user.toLowerCase(), role);
  }

  setTeamMembership(org: string, team: string, user: string, membership: { state?: 'active' | 'pending'; role?: 'member' | 'maintainer' } | null) {
    const key = `${org}/${team}/${user}`.toLowerCase();
    if (membership === null) this.teams.delete(key);
    else this.teams.set(key, { state: membership.state ?? 'active', role: membership.role ?? 'member' });
  }

  addComment(repo: string, pr: number, body: string, opts: { user?: string; userType?: 'User' | 'Bot' } = {}): FakeComment {
    const c = this.createComment(this.repo(repo)!, pr, body, opts.user ?? 'octocat', opts.userType ?? 'User');
    return { ...c, history: [...c.history] };
  }

  editComment(repo: string, id: number, body: string): FakeComment {
    const c = this.repo(repo)!.comments.get(id);
    if (!c) throw new Error(`no comment ${id} in ${repo}`);
    c.body = body;
    c.updatedAt = now();
    c.history.push(body);
    return { ...c, history: [...c.history] };
  }

  fail(route: string, fault: Fault, opts: { times?: number; retryAfter?: number } = {}) {
    // times 0: the route's earlier faults are cleared (a test ends a fault it injected).
    if (opts.times === 0) {
      const op = this.route(route);
      for (const f of this.faults) if (f.op === op) f.times = 0;
      return;
    }
    this.faults.push({ op: this.route(route), fault, times: opts.times ?? 1, retryAfter: opts.retryAfter ?? 1 });
  }

  // ── inspection ──

  comments(repo: string, pr: number): FakeComment[] {
    const r = this.repo(repo, false);
    return r ? [...r.comments.values()].filter((c) => c.issueNumber === pr).map((c) => ({ ...c, history: [...c.history] })) : [];
  }

  comment(repo: string, id: number): FakeComment | undefined {
    const c = this.repo(repo, false)?.comments.get(id);
    return c && { ...c, history: [...c.history] };
  }

  checkRuns(repo: string, sha: string): FakeCheckRun[] {
    const r = this.repo(repo, false);
    return r ? [...r.checkRuns.values()].filter((c) => c.headSha === sha).map((c) => ({ ...c, writes: [...c.writes] })) : [];
  }

  reactions(repo: string, commentId: number): FakeReaction[] {
    return [...(this.repo(repo, false)?.reactions.get(commentId) ?? [])];
  }

  deployments(repo: string, environment?: string): FakeDeployment[] {
    const r = this.repo(repo, false);
    return r ? [...r.deployments.values()].filter((d) => environment === undefined || d.environment === environment).map((d) => ({ ...d, statuses: [...d.statuses] })) : [];
  }

  requestsTo(route: string): RecordedRequest[] {
    const op = this.route(route);
    return this.requests.filter((r) => r.operationId === op.operationId);
  }

  private route(route: string): Operation {
    const s = githubSpec();
    const byId = s.byId.get(route);
    if (byId) return byId;
    const m = /^([A-Z]+)\s+(\S+)$/.exec(route.trim());
    const op = m && s.operations.find((o) => o.method === m[1] && o.template === m[2]);
    if (!op) throw new Error(`fake-github: "${route}" is neither an operationId nor "METHOD /template" of GitHub's REST API`);
    return op;
  }

  // ── HTTP ──

  private async handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://fake.invalid');
    const method = (req.method ?? 'GET').toUpperCase();
    const query = Object.fromEntries(url.searchParams);
    let path = url.pathname;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      /* keep it encoded */
    }
    const record: RecordedRequest = { seq: ++this.seq, method, path, query, headers: req.headers, body: undefined, status: 0 };
    this.requests.push(record);

    let reply: Reply;
    try {
      reply = this.dispatch(req, url, method, raw, record);
    } catch (err) {
      reply = error(500, `fake-github: ${(err as Error).stack ?? err}`);
    }
    record.status = reply.status;
    const headers: Record<string, string> = {
      'content-type': 'application/json; charset=utf-8',
      'x-github-request-id': `FAKE:${record.seq}`,
      'x-github-api-version-selected': '2022-11-28',
      'x-ratelimit-limit': '5000',
      'x-ratelimit-remaining': '4999',
      'x-ratelimit-used': '1',
      'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 3600),
      'x-ratelimit-resource': 'core',
      ...reply.headers,
    };
    res.writeHead(reply.status, headers);
    res.end(reply.body === undefined ? '' : JSON.stringify(reply.body));
  }

  private dispatch(req: IncomingMessage, url: URL, method: string, raw: string, record: RecordedRequest): Reply {
    const s = githubSpec();
    const rawPath = url.pathname;
    const onPath = s.operations.filter((o) => o.regex.test(rawPath));
    const op = onPath.find((o) => o.method === method);

    // Body first, so even a refused request is recorded with what it sent.
    let body: Json;
    const problems: string[] = [];
    if (raw.length) {
      const type = String(req.headers['content-type'] ?? '');
      try {
        body = JSON.parse(raw);
      } catch {
        body = raw;
        if (!op?.body || op.body.json) problems.push(`body: not valid JSON (content-type ${type || 'missing'})`);
      }
      if (op?.body?.json && !/^application\/(?:[\w.+-]+\+)?json\b/.test(type)) problems.push(`content-type: ${type || 'missing'}, the operation takes application/json`);
    }
    record.body = body;

    if (!op) {
      const allowed = [...new Set(onPath.map((o) => o.method))];
      this.violations.push({
        side: 'request',
        method,
        path: record.path,
        problems: [allowed.length ? `${method} is not an operation on this path (it has ${allowed.join(', ')})` : 'no operation of GitHub’s REST API has this path'],
      });
      return notFound();
    }
    record.operationId = op.operationId;

    const m = op.regex.exec(rawPath)!;
    const params: Record<string, string> = {};
    op.pathParams.forEach((name, i) => {
      const v = m[i + 1]!;
      try {
        params[name] = decodeURIComponent(v);
      } catch {
        params[name] = v;
      }
    });

    problems.push(...validateParams(op, params, record.query));
    if (op.body) {
      if (body === undefined) {
        if (op.body.required) problems.push('body: required');
      } else if (op.body.schema && typeof body === 'object') validateSchema(op.body.schema, body, 'body', problems);
    } else if (raw.trim().length && method !== 'GET') problems.push('body: the operation takes none');
    if (body !== undefined && typeof body === 'object' && body !== null) problems.push(...this.documentedRules(op, params, body));
    if (problems.length) {
      this.violations.push({ side: 'request', method, path: record.path, operationId: op.operationId, problems });
      return error(422, 'Validation Failed', { errors: problems.map((message) => ({ resource: op.operationId, code: 'invalid', message })) });
    }

    const denied = this.authenticate(op, req.headers.authorization);
    if (denied) return denied;

    const fault = this.faults.find((f) => f.op === op && f.times > 0);
    if (fault) {
      fault.times--;
      return faultReply(fault.fault, fault.retryAfter);
    }

    const handler = HANDLERS[op.operationId];
    if (!handler) {
      this.unhandled.push(record);
      return error(501, `fake-github does not implement ${op.operationId}`);
    }
    const repo = params.owner && params.repo ? this.repo(`${params.owner}/${params.repo}`, false) : undefined;
    if (params.owner && params.repo && !repo) return notFound();
    const reply = handler.call(this, { op, params, query: record.query, body, repo, actor: this.botLogin, self: `${this.url}${rawPath}` });

    // The fake's own answer must match GitHub's description too.
    const res = deref(githubSpec().doc, op.responses[String(reply.status)]);
    const schema = res?.content?.['application/json']?.schema;
    if (schema && reply.status < 300) {
      const bad = validateSchema(schema, reply.body, 'response').filter((p) => !KNOWN_SPEC_GAPS[op.operationId]?.includes(p));
      if (bad.length) this.violations.push({ side: 'response', method, path: record.path, operationId: op.operationId, problems: bad });
    }
    return reply;
  }

  /** Rules GitHub states in prose rather than in the schema. */
  private documentedRules(op: Operation, params: Record<string, string>, body: Json): string[] {
    const problems: string[] = [];
    switch (op.operationId) {
      case 'checks/create':
      case 'checks/update':
        if ((body.status === 'completed' || body.completed_at !== undefined) && body.conclusion === undefined)
          problems.push('body.conclusion: is required when status is completed or completed_at is given');
        if (body.conclusion === 'stale') problems.push('body.conclusion: "stale" can only be set by GitHub');
        if (op.operationId === 'checks/create' && typeof body.head_sha === 'string') {
          const repo = this.repo(`${params.owner}/${params.repo}`, false);
          if (!isSha(body.head_sha)) problems.push(`body.head_sha: ${JSON.stringify(body.head_sha)} is not a commit SHA`);
          else if (repo && !this.knownCommit(repo, body.head_sha)) problems.push(`body.head_sha: no commit found for SHA ${body.head_sha}`);
        }
        break;
      case 'repos/create-deployment': {
        const repo = this.repo(`${params.owner}/${params.repo}`, false);
        if (typeof body.ref === 'string' && repo && !(repo.trees.has(body.ref) || (isSha(body.ref) && this.knownCommit(repo, body.ref)))) problems.push(`body.ref: No ref found for: ${body.ref}`);
        break;
      }
      case 'repos/create-deployment-status':
        if (typeof body.description === 'string' && body.description.length > 140) problems.push(`body.description: is too long (maximum is 140 characters)`);
        break;
      case 'issues/create-comment':
      case 'issues/update-comment':
        if (typeof body.body === 'string' && body.body.length > COMMENT_BODY_LIMIT)
          problems.push(`body.body: is too long (${body.body.length} characters; the maximum is ${COMMENT_BODY_LIMIT})`);
        break;
    }
    return problems;
  }

  private knownCommit(repo: RepoState, sha: string): boolean {
    if (repo.trees.has(sha)) return true;
    for (const p of repo.pulls.values()) if (p.headSha === sha) return true;
    return false;
  }

  private authenticate(op: Operation, header: string | undefined): Reply | undefined {
    if (this.options.auth === 'off') return undefined;
    const [scheme, credential] = (header ?? '').split(/\s+/, 2);
    if (!scheme || !credential) return error(401, 'Requires authentication');
    // As GitHub: /app routes, and finding an app's installation for a repository, org or user, take the app's JWT.
    const appRoute = op.template.startsWith('/app') || /^apps\/get-(repo|org|user)-installation$/.test(op.operationId);
    if (appRoute) {
      if (scheme.toLowerCase() !== 'bearer') return error(401, 'A JSON web token could not be decoded');
      const problem = this.checkJwt(credential);
      return problem ? error(401, problem) : undefined;
    }
    if (!['token', 'bearer'].includes(scheme.toLowerCase()) || !this.tokens.has(credential)) return error(401, 'Bad credentials');
    return undefined;
  }

  private checkJwt(jwt: string): string | undefined {
    const parts = jwt.split('.');
    if (parts.length !== 3) return 'A JSON web token could not be decoded';
    let header: Json;
    let payload: Json;
    try {
      header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
      payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    } catch {
      return 'A JSON web token could not be decoded';
    }
    if (this.publicKey) {
      if (header.alg !== 'RS256') return `'${header.alg}' is not a supported JWT algorithm`;
      const ok = verifySignature('RSA-SHA256', Buffer.from(`${parts[0]}.${parts[1]}`), this.publicKey, Buffer.from(parts[2]!, 'base64url'));
      if (!ok) return 'A JSON web token could not be decoded';
    }
    const t = Math.floor(Date.now() / 1000);
    if (typeof payload.exp !== 'number' || payload.exp < t) return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
    if (typeof payload.iat !== 'number' || payload.iat > t + 60) return "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued";
    if (this.options.appId !== undefined && String(payload.iss) !== String(this.options.appId)) return `'Issuer' claim ('iss') must be the app id ${this.options.appId}`;
    return undefined;
  }

  // ── state operations used by handlers ──

  createComment(repo: RepoState, issue: number, body: string, user: string, userType: 'User' | 'Bot'): FakeComment {
    const t = now();
    const c: FakeComment = { id: this.nextId++, issueNumber: issue, body, user, userType, createdAt: t, updatedAt: t, history: [body] };
    repo.comments.set(c.id, c);
    return c;
  }

  newId() {
    return this.nextId++;
  }

  issueToken(): string {
    const token = `ghs_fake${String(this.nextId++).padStart(32, '0')}`;
    this.tokens.add(token);
    return token;
  }

  teamMembership(org: string, team: string, user: string) {
    return this.teams.get(`${org}/${team}/${user}`.toLowerCase());
  }
}

function faultReply(fault: Fault, retryAfter: number): Reply {
  if (fault === 'secondary-rate-limit') return { ...error(403, SECONDARY_RATE_LIMIT), headers: { 'retry-after': String(retryAfter) } };
  if (fault === 'rate-limit') {
    return {
      ...error(429, 'API rate limit exceeded for installation.'),
      headers: {
        'retry-after': String(retryAfter),
        'x-ratelimit-remaining': '0',
        'x-ratelimit-reset': String(Math.ceil(Date.now() / 1000) + retryAfter),
      },
    };
  }
  if (typeof fault === 'number') return error(fault, fault >= 500 ? 'Server Error' : 'Fault injected by fake-github');
  return { ...error(fault.status, fault.message ?? 'Fault injected by fake-github'), headers: fault.headers };
}

// ── response builders (GitHub's documented examples, with our data) ─────────

function userObject(login: string, type: 'User' | 'Bot' = login.endsWith('[bot]') ? 'Bot' : 'User', base?: Json): Json {
  const id = Number.parseInt(sha1(login).slice(0, 7), 16);
  return {
    ...(base ?? {}),
    login,
    id,
    node_id: `U_${id}`,
    avatar_url: `https://avatars.githubusercontent.com/u/${id}?v=4`,
    gravatar_id: '',
    url: `https://api.github.com/users/${encodeURIComponent(login)}`,
    html_url: `https://github.com/${encodeURIComponent(login)}`,
    followers_url: `https://api.github.com/users/${login}/followers`,
    following_url: `https://api.github.com/users/${login}/following{/other_user}`,
    gists_url: `https://api.github.com/users/${login}/gists{/gist_id}`,
    starred_url: `https://api.github.com/users/${login}/starred{/owner}{/repo}`,
    subscriptions_url: `https://api.github.com/users/${login}/subscriptions`,
    organizations_url: `https://api.github.com/users/${login}/orgs`,
    repos_url: `https://api.github.com/users/${login}/repos`,
    events_url: `https://api.github.com/users/${login}/events{/privacy}`,
    received_events_url: `https://api.github.com/users/${login}/received_events`,
    type,
    site_admin: false,
  };
}

function repoObject(base: Json, full: string, id: number, extra: Json = {}): Json {
  const [owner, name] = full.split('/') as [string, string];
  return {
    ...base,
    id,
    node_id: `R_${id}`,
    name,
    full_name: full,
    owner: userObject(owner, 'User', base?.owner),
    html_url: `https://github.com/${full}`,
    url: `https://api.github.com/repos/${full}`,
    ...extra,
  };
}

function pullObject(ctx: Ctx, p: FakePull): Json {
  const r = ctx.repo!;
  const full = `${r.owner}/${r.name}`;
  const base = exampleFor(githubSpec().byId.get('pulls/get')!, 200);
  const api = `https://api.github.com/repos/${full}/pulls/${p.number}`;
  return {
    ...base,
    id: Number.parseInt(sha1(`${full}#${p.number}`).slice(0, 8), 16),
    node_id: `PR_${p.number}`,
    number: p.number,
    url: api,
    html_url: `https://github.com/${full}/pull/${p.number}`,
    diff_url: `https://github.com/${full}/pull/${p.number}.diff`,
    patch_url: `https://github.com/${full}/pull/${p.number}.patch`,
    issue_url: `https://api.github.com/repos/${full}/issues/${p.number}`,
    state: p.state,
    title: p.title,
    user: userObject(p.author, 'User', base.user),
    draft: p.draft,
    merged: p.merged,
    merged_at: p.merged ? now() : null,
    closed_at: p.state === 'closed' ? now() : null,
    mergeable: p.mergeable,
    mergeable_state: p.mergeableState,
    requested_reviewers: [],
    requested_teams: [],
    head: {
      ...base.head,
      label: `${(p.headRepo ?? full).split('/')[0]}:${p.headRef}`,
      ref: p.headRef,
      sha: p.headSha,
      user: userObject((p.headRepo ?? full).split('/')[0]!, 'User', base.head.user),
      repo: p.headRepo === null ? null : repoObject(base.head.repo, p.headRepo, p.headRepo.toLowerCase() === full.toLowerCase() ? r.id : r.id + 1, { fork: p.headRepo.toLowerCase() !== full.toLowerCase() }),
    },
    base: {
      ...base.base,
      label: `${r.owner}:${p.baseRef}`,
      ref: p.baseRef,
      sha: sha1(`${full}@${p.baseRef}`),
      user: userObject(r.owner, 'User', base.base.user),
      repo: repoObject(base.base.repo, full, r.id, { default_branch: r.defaultBranch, private: r.private }),
    },
  };
}

function commentObject(ctx: Ctx, c: FakeComment): Json {
  const r = ctx.repo!;
  const full = `${r.owner}/${r.name}`;
  const base = exampleFor(githubSpec().byId.get('issues/get-comment')!, 200);
  return {
    ...base,
    id: c.id,
    node_id: `IC_${c.id}`,
    url: `https://api.github.com/repos/${full}/issues/comments/${c.id}`,
    html_url: `https://github.com/${full}/pull/${c.issueNumber}#issuecomment-${c.id}`,
    issue_url: `https://api.github.com/repos/${full}/issues/${c.issueNumber}`,
    body: c.body,
    user: userObject(c.user, c.userType, base.user),
    created_at: c.createdAt,
    updated_at: c.updatedAt,
    author_association: c.userType === 'Bot' ? 'NONE' : 'MEMBER',
    performed_via_github_app: null,
  };
}

function checkRunObject(ctx: Ctx, c: FakeCheckRun): Json {
  const r = ctx.repo!;
  const full = `${r.owner}/${r.name}`;
  const base = exampleFor(githubSpec().byId.get('checks/get')!, 200);
  return {
    ...base,
    id: c.id,
    node_id: `CR_${c.id}`,
    head_sha: c.headSha,
    external_id: c.externalId ?? '',
    url: `https://api.github.com/repos/${full}/check-runs/${c.id}`,
    html_url: `https://github.com/${full}/runs/${c.id}`,
    details_url: c.detailsUrl ?? `https://github.com/${full}/runs/${c.id}`,
    status: c.status,
    conclusion: c.conclusion,
    started_at: c.startedAt,
    completed_at: c.completedAt,
    name: c.name,
    output: {
      title: c.title,
      summary: c.summary,
      text: c.text,
      annotations_count: 0,
      annotations_url: `https://api.github.com/repos/${full}/check-runs/${c.id}/annotations`,
    },
    check_suite: { id: Number.parseInt(c.headSha.slice(0, 7), 16) },
    pull_requests: [...r.pulls.values()]
      .filter((p) => p.headSha === c.headSha && p.state === 'open')
      .map((p) => ({
        id: p.number,
        number: p.number,
        url: `https://api.github.com/repos/${full}/pulls/${p.number}`,
        head: { ref: p.headRef, sha: p.headSha, repo: { id: r.id, url: `https://api.github.com/repos/${full}`, name: r.name } },
        base: { ref: p.baseRef, sha: sha1(`${full}@${p.baseRef}`), repo: { id: r.id, url: `https://api.github.com/repos/${full}`, name: r.name } },
      })),
  };
}

function deploymentObject(ctx: Ctx, d: FakeDeployment): Json {
  const r = ctx.repo!;
  const full = `${r.owner}/${r.name}`;
  const base = exampleFor(githubSpec().byId.get('repos/get-deployment')!, 200);
  const api = `https://api.github.com/repos/${full}/deployments/${d.id}`;
  return {
    ...base,
    id: d.id,
    node_id: `DE_${d.id}`,
    url: api,
    statuses_url: `${api}/statuses`,
    repository_url: `https://api.github.com/repos/${full}`,
    sha: d.sha,
    ref: d.ref,
    task: 'deploy',
    payload: d.payload,
    original_environment: d.environment,
    environment: d.environment,
    description: d.description,
    creator: userObject(ctx.actor, 'Bot', base.creator),
    created_at: d.createdAt,
    updated_at: d.createdAt,
    transient_environment: d.transientEnvironment,
    production_environment: d.productionEnvironment,
    performed_via_github_app: null,
  };
}

function deploymentStatusObject(ctx: Ctx, d: FakeDeployment, st: FakeDeploymentStatus): Json {
  const r = ctx.repo!;
  const full = `${r.owner}/${r.name}`;
  const base = exampleFor(githubSpec().byId.get('repos/get-deployment-status')!, 200);
  const api = `https://api.github.com/repos/${full}/deployments/${d.id}`;
  return {
    ...base,
    id: st.id,
    node_id: `DES_${st.id}`,
    url: `${api}/statuses/${st.id}`,
    state: st.state,
    creator: userObject(st.creator === 'github' ? 'github' : ctx.actor, st.creator === 'github' ? 'User' : 'Bot', base.creator),
    description: st.description,
    environment: d.environment,
    target_url: st.logUrl,
    log_url: st.logUrl,
    environment_url: st.environmentUrl,
    created_at: now(),
    updated_at: now(),
    deployment_url: api,
    repository_url: `https://api.github.com/repos/${full}`,
    performed_via_github_app: null,
  };
}

/** One page of a list, with GitHub's Link header. */
function page<T>(ctx: Ctx, items: T[], wrap?: (items: T[]) => Json): Reply {
  const perPage = Math.min(100, Math.max(1, Number(ctx.query.per_page ?? 30)));
  const pageNo = Math.max(1, Number(ctx.query.page ?? 1));
  const last = Math.max(1, Math.ceil(items.length / perPage));
  const slice = items.slice((pageNo - 1) * perPage, pageNo * perPage);
  const headers: Record<string, string> = {};
  if (last > 1) {
    const link = (n: number, rel: string) => {
      const q = new URLSearchParams({ ...ctx.query, per_page: String(perPage), page: String(n) });
      return `<${ctx.self}?${q}>; rel="${rel}"`;
    };
    const links: string[] = [];
    if (pageNo > 1) links.push(link(pageNo - 1, 'prev'), link(1, 'first'));
    if (pageNo < last) links.push(link(pageNo + 1, 'next'), link(last, 'last'));
    headers.link = links.join(', ');
  }
  return { status: 200, body: wrap ? wrap(slice) : slice, headers };
}

function fileEntry(ctx: Ctx, path: string, content: string, ref: string): Json {
  const r = ctx.repo!;
  const full = `${r.owner}/${r.name}`;
  const sha = blobSha(content);
  const api = `https://api.github.com/repos/${full}/contents/${path}?ref=${encodeURIComponent(ref)}`;
  const html = `https://github.com/${full}/blob/${ref}/${path}`;
  const git = `https://api.github.com/repos/${full}/git/blobs/${sha}`;
  return {
    type: 'file',
    encoding: 'base64',
    size: Buffer.byteLength(content),
    name: path.split('/').pop(),
    path,
    // GitHub wraps the base64 at 60 characters
    content: (Buffer.from(content, 'utf8').toString('base64').match(/.{1,60}/g) ?? []).join('\n') + '\n',
    sha,
    url: api,
    git_url: git,
    html_url: html,
    download_url: `https://raw.githubusercontent.com/${full}/${ref}/${path}`,
    _links: { self: api, git, html },
  };
}

const ROLE_TO_PERMISSION: Record<RepoRole, string> = { admin: 'admin', maintain: 'write', write: 'write', triage: 'read', read: 'read', none: 'none' };

const HANDLERS: Record<string, (this: Fake, ctx: Ctx) => Reply> = {
  'apps/create-installation-access-token'(ctx) {
    const base = exampleFor(ctx.op, 201);
    return {
      status: 201,
      body: {
        ...base,
        token: this.issueToken(),
        expires_at: new Date(Date.now() + 3600_000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        permissions: { checks: 'write', contents: 'read', deployments: 'write', issues: 'write', metadata: 'read', pull_requests: 'read', members: 'read' },
        repository_selection: 'all',
        repositories: undefined,
      },
    };
  },

  'apps/get-repo-installation'(ctx) {
    // One installation (id 1, the webhook payloads' default) covers every repository the fake knows.
    return { status: 200, body: { ...exampleFor(ctx.op, 200), id: 1 } };
  },

  'repos/get'(ctx) {
    const r = ctx.repo!;
    // GitHub's example is a fork of a template in an organization; this repository is none of those.
    const { source: _s, parent: _p, template_repository: _t, organization: _o, ...base } = exampleFor(ctx.op, 200);
    return {
      status: 200,
      body: repoObject(base, `${r.owner}/${r.name}`, r.id, {
        default_branch: r.defaultBranch,
        private: r.private,
        visibility: r.private ? 'private' : 'public',
        fork: false,
        language: base.language ?? null,
      }),
    };
  },

  'repos/get-content'(ctx) {
    const r = ctx.repo!;
    const ref = ctx.query.ref ?? r.defaultBranch;
    const tree = r.trees.get(ref);
    if (!tree) return error(404, `No commit found for the ref ${ref}`);
    const path = ctx.params.path!.replace(/^\/+|\/+$/g, '');
    const content = tree.files.get(path);
    if (content !== undefined) return { status: 200, body: fileEntry(ctx, path, content, ref) };
    const prefix = path ? `${path}/` : '';
    const children = new Map<string, Json>();
    for (const [p, c] of tree.files) {
      if (!p.startsWith(prefix)) continue;
      const rest = p.slice(prefix.length);
      const name = rest.split('/')[0]!;
      const childPath = prefix + name;
      if (children.has(name)) continue;
      const isFile = rest === name;
      const entry = fileEntry(ctx, childPath, isFile ? c : '', ref);
      delete entry.content;
      delete entry.encoding;
      children.set(name, isFile ? entry : { ...entry, type: 'dir', size: 0, sha: sha1(`tree ${childPath}`), download_url: null });
    }
    if (!children.size) return notFound();
    return { status: 200, body: [...children.values()] };
  },

  'git/get-tree'(ctx) {
    const r = ctx.repo!;
    const tree = r.trees.get(ctx.params.tree_sha!);
    if (!tree) return notFound();
    const full = `${r.owner}/${r.name}`;
    const recursive = ctx.query.recursive !== undefined;
    const entries = new Map<string, Json>();
    for (const [p, content] of [...tree.files].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const parts = p.split('/');
      for (let i = 1; i < parts.length; i++) {
        const dir = parts.slice(0, i).join('/');
        if (!entries.has(dir)) entries.set(dir, { path: dir, mode: '040000', type: 'tree', sha: sha1(`tree ${dir}`), url: `https://api.github.com/repos/${full}/git/trees/${sha1(`tree ${dir}`)}` });
      }
      const sha = blobSha(content);
      entries.set(p, { path: p, mode: tree.modes?.get(p) ?? '100644', type: 'blob', sha, size: Buffer.byteLength(content), url: `https://api.github.com/repos/${full}/git/blobs/${sha}` });
    }
    const list = [...entries.values()].filter((e) => recursive || !e.path.includes('/'));
    const sha = isSha(ctx.params.tree_sha!) ? ctx.params.tree_sha! : sha1(`ref ${ctx.params.tree_sha}`);
    return { status: 200, body: { sha, url: `https://api.github.com/repos/${full}/git/trees/${sha}`, tree: list, truncated: tree.truncated } };
  },

  'pulls/get'(ctx) {
    const p = ctx.repo!.pulls.get(Number(ctx.params.pull_number));
    return p ? { status: 200, body: pullObject(ctx, p) } : notFound();
  },

  'pulls/list-reviews'(ctx) {
    const r = ctx.repo!;
    const n = Number(ctx.params.pull_number);
    if (!r.pulls.has(n)) return notFound();
    const full = `${r.owner}/${r.name}`;
    const base = (exampleFor(ctx.op, 200) ?? [])[0] ?? {};
    const reviews = (r.reviews.get(n) ?? []).map((rv) => ({
      ...base,
      id: rv.id,
      node_id: `PRR_${rv.id}`,
      user: userObject(rv.user, 'User', base.user),
      body: '',
      state: rv.state,
      html_url: `https://github.com/${full}/pull/${n}#pullrequestreview-${rv.id}`,
      pull_request_url: `https://api.github.com/repos/${full}/pulls/${n}`,
      submitted_at: rv.submittedAt ?? undefined,
      commit_id: rv.commitId,
      author_association: 'MEMBER',
    }));
    return page(ctx, reviews);
  },

  'repos/get-collaborator-permission-level'(ctx) {
    const r = ctx.repo!;
    const user = ctx.params.username!;
    const role = r.roles.has(user.toLowerCase()) ? r.roles.get(user.toLowerCase())! : 'none';
    if (role === null) return notFound();
    const base = exampleFor(ctx.op, 200);
    return {
      status: 200,
      body: { ...base, permission: ROLE_TO_PERMISSION[role], role_name: role, user: { ...userObject(user, 'User', base.user), role_name: role } },
    };
  },

  'teams/get-membership-for-user-in-org'(ctx) {
    const m = this.teamMembership(ctx.params.org!, ctx.params.team_slug!, ctx.params.username!);
    if (!m) return notFound();
    return {
      status: 200,
      body: { url: `https://api.github.com/organizations/1/team/1/memberships/${ctx.params.username}`, role: m.role, state: m.state },
    };
  },

  'issues/list-comments'(ctx) {
    const r = ctx.repo!;
    const n = Number(ctx.params.issue_number);
    const list = [...r.comments.values()].filter((c) => c.issueNumber === n).sort((a, b) => a.id - b.id);
    return page(
      ctx,
      list.map((c) => commentObject(ctx, c)),
    );
  },

  'issues/create-comment'(ctx) {
    const r = ctx.repo!;
    const n = Number(ctx.params.issue_number);
    if (!r.pulls.has(n)) return notFound();
    const c = this.createComment(r, n, ctx.body.body, ctx.actor, 'Bot');
    return { status: 201, body: commentObject(ctx, c), headers: { location: `https://api.github.com/repos/${r.owner}/${r.name}/issues/comments/${c.id}` } };
  },

  'issues/get-comment'(ctx) {
    const c = ctx.repo!.comments.get(Number(ctx.params.comment_id));
    return c ? { status: 200, body: commentObject(ctx, c) } : notFound();
  },

  'issues/update-comment'(ctx) {
    const c = ctx.repo!.comments.get(Number(ctx.params.comment_id));
    if (!c) return notFound();
    c.body = ctx.body.body;
    c.updatedAt = now();
    c.history.push(c.body);
    return { status: 200, body: commentObject(ctx, c) };
  },

  'reactions/create-for-issue-comment'(ctx) {
    const r = ctx.repo!;
    const id = Number(ctx.params.comment_id);
    if (!r.comments.has(id)) return notFound();
    const list = r.reactions.get(id) ?? [];
    r.reactions.set(id, list);
    const existing = list.find((x) => x.content === ctx.body.content && x.user === ctx.actor);
    const reaction = existing ?? { id: this.newId(), content: ctx.body.content, user: ctx.actor };
    if (!existing) list.push(reaction);
    const base = exampleFor(ctx.op, 201);
    return {
      status: existing ? 200 : 201,
      body: { ...base, id: reaction.id, node_id: `REA_${reaction.id}`, user: userObject(reaction.user, undefined, base.user), content: reaction.content, created_at: now() },
    };
  },

  'checks/create'(ctx) {
    const r = ctx.repo!;
    const b = ctx.body;
    const completed = b.conclusion !== undefined;
    const t = now();
    const run: FakeCheckRun = {
      id: this.newId(),
      name: b.name,
      headSha: b.head_sha,
      status: completed ? 'completed' : (b.status ?? 'queued'),
      conclusion: b.conclusion ?? null,
      title: b.output?.title ?? null,
      summary: b.output?.summary ?? null,
      text: b.output?.text ?? null,
      externalId: b.external_id ?? null,
      detailsUrl: b.details_url ?? null,
      startedAt: b.started_at ?? t,
      completedAt: completed ? (b.completed_at ?? t) : null,
      writes: [structuredClone(b)],
    };
    r.checkRuns.set(run.id, run);
    return { status: 201, body: checkRunObject(ctx, run) };
  },

  'checks/get'(ctx) {
    const run = ctx.repo!.checkRuns.get(Number(ctx.params.check_run_id));
    return run ? { status: 200, body: checkRunObject(ctx, run) } : notFound();
  },

  'checks/update'(ctx) {
    const run = ctx.repo!.checkRuns.get(Number(ctx.params.check_run_id));
    if (!run) return notFound();
    const b = ctx.body;
    if (b.name !== undefined) run.name = b.name;
    if (b.details_url !== undefined) run.detailsUrl = b.details_url;
    if (b.external_id !== undefined) run.externalId = b.external_id;
    if (b.started_at !== undefined) run.startedAt = b.started_at;
    if (b.output) {
      if (b.output.title !== undefined) run.title = b.output.title;
      if (b.output.summary !== undefined) run.summary = b.output.summary;
      if (b.output.text !== undefined) run.text = b.output.text;
    }
    if (b.conclusion !== undefined) {
      run.conclusion = b.conclusion;
      run.status = 'completed';
      run.completedAt = b.completed_at ?? now();
    } else if (b.status !== undefined) {
      run.status = b.status;
      if (b.status !== 'completed') {
        run.conclusion = null;
        run.completedAt = null;
      }
    }
    run.writes.push(structuredClone(b));
    return { status: 200, body: checkRunObject(ctx, run) };
  },

  'repos/create-deployment'(ctx) {
    const r = ctx.repo!;
    const b = ctx.body;
    const environment = b.environment ?? 'production';
    // GitHub verifies every status context of the ref unless required_contexts is given (an empty list skips it).
    if (b.required_contexts === undefined) return error(409, 'Conflict: Commit status checks failed for ' + b.ref);
    const d: FakeDeployment = {
      id: this.newId(),
      ref: b.ref,
      sha: isSha(b.ref) ? b.ref : sha1(`ref ${b.ref}`),
      environment,
      description: b.description ?? null,
      payload: b.payload ?? {},
      productionEnvironment: b.production_environment ?? environment === 'production',
      transientEnvironment: b.transient_environment ?? false,
      createdAt: now(),
      request: structuredClone(b),
      statuses: [],
    };
    r.deployments.set(d.id, d);
    return { status: 201, body: deploymentObject(ctx, d) };
  },

  'repos/get-deployment'(ctx) {
    const d = ctx.repo!.deployments.get(Number(ctx.params.deployment_id));
    return d ? { status: 200, body: deploymentObject(ctx, d) } : notFound();
  },

  'repos/list-deployments'(ctx) {
    let list = [...ctx.repo!.deployments.values()].sort((a, b) => b.id - a.id);
    if (ctx.query.environment !== undefined) list = list.filter((d) => d.environment === ctx.query.environment);
    if (ctx.query.sha !== undefined) list = list.filter((d) => d.sha === ctx.query.sha);
    if (ctx.query.ref !== undefined) list = list.filter((d) => d.ref === ctx.query.ref);
    return page(
      ctx,
      list.map((d) => deploymentObject(ctx, d)),
    );
  },

  'repos/create-deployment-status'(ctx) {
    const r = ctx.repo!;
    const d = r.deployments.get(Number(ctx.params.deployment_id));
    if (!d) return notFound();
    const b = ctx.body;
    const add = (dep: FakeDeployment, state: string, creator: string, extra: Partial<FakeDeploymentStatus> = {}) => {
      const st: FakeDeploymentStatus = { id: this.newId(), state, description: '', logUrl: '', environmentUrl: '', creator, ...extra };
      dep.statuses.push(st);
      return st;
    };
    const st = add(d, b.state, ctx.actor, { description: b.description ?? '', logUrl: b.log_url ?? b.target_url ?? '', environmentUrl: b.environment_url ?? '' });
    // auto_inactive (default true): earlier successful non-transient, non-production deployments of the environment.
    if (b.state === 'success' && b.auto_inactive !== false)
      for (const other of r.deployments.values())
        if (other.id !== d.id && other.environment === d.environment && !other.transientEnvironment && !other.productionEnvironment && other.statuses.at(-1)?.state === 'success')
          add(other, 'inactive', 'github');
    return { status: 201, body: deploymentStatusObject(ctx, d, st) };
  },

  'repos/list-deployment-statuses'(ctx) {
    const d = ctx.repo!.deployments.get(Number(ctx.params.deployment_id));
    if (!d) return notFound();
    return page(
      ctx,
      [...d.statuses].reverse().map((st) => deploymentStatusObject(ctx, d, st)),
    );
  },

  'checks/list-for-ref'(ctx) {
    const r = ctx.repo!;
    const ref = ctx.params.ref!;
    const sha = r.trees.has(ref) && !isSha(ref) ? undefined : ref;
    let runs = [...r.checkRuns.values()].filter((c) => c.headSha === (sha ?? ref));
    if (ctx.query.check_name !== undefined) runs = runs.filter((c) => c.name === ctx.query.check_name);
    if (ctx.query.status !== undefined) runs = runs.filter((c) => c.status === ctx.query.status);
    if ((ctx.query.filter ?? 'latest') === 'latest') {
      const latest = new Map<string, FakeCheckRun>();
      for (const c of runs) if (!latest.has(c.name) || latest.get(c.name)!.id < c.id) latest.set(c.name, c);
      runs = [...latest.values()];
    }
    runs.sort((a, b) => b.id - a.id);
    const total = runs.length;
    return page(
      ctx,
      runs.map((c) => checkRunObject(ctx, c)),
      (items) => ({ total_count: total, check_runs: items }),
    );
  },
};

/** Start a fake GitHub on a free local port. */
export async function startFakeGitHub(options: FakeGitHubOptions = {}): Promise<FakeGitHub> {
  githubSpec();
  const fake = new Fake(options);
  await fake.listen();
  return fake;
}

// ── webhooks ────────────────────────────────────────────────────────────────

/** The `X-Hub-Signature-256` header GitHub sends for this body. */
export function signWebhook(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

/** Headers of a webhook delivery of `body`, signed with `secret`. */
export function webhookHeaders(event: string, body: string, secret: string, deliveryId: string = randomUUID()): Record<string, string> {
  return {
    'content-type': 'application/json',
    'user-agent': 'GitHub-Hookshot/fake',
    'x-github-event': event,
    'x-github-delivery': deliveryId,
    'x-hub-signature-256': signWebhook(secret, body),
  };
}

interface ExampleSet {
  name: string;
  examples: unknown[];
}

let examples: ExampleSet[] | undefined;

/**
 * A real webhook payload from @octokit/webhooks-examples (deep-copied, so a
 * test may change it): the first example of `event` the predicate accepts.
 */
export function loadExample<E extends WebhookEventName>(event: E, predicate: (payload: WebhookEventMap[E]) => boolean = () => true): WebhookEventMap[E] {
  if (!examples) {
    const require = createRequire(import.meta.url);
    examples = JSON.parse(readFileSync(require.resolve('@octokit/webhooks-examples'), 'utf8')) as ExampleSet[];
  }
  const set = examples.find((e) => e.name === event);
  if (!set) throw new Error(`@octokit/webhooks-examples has no "${event}" event`);
  const found = (set.examples as WebhookEventMap[E][]).find((p) => predicate(p));
  if (!found) {
    const actions = [...new Set(set.examples.map((p) => (p as { action?: string }).action).filter(Boolean))];
    throw new Error(`no "${event}" example matches (actions available: ${actions.join(', ') || 'none'})`);
  }
  return structuredClone(found);
}

/** Point a payload's repository (and installation) at `repo`, keeping the rest of the real example. */
function retarget<T extends { repository?: unknown }>(payload: T, repo: string, installationId: number): T {
  const [owner, name] = repo.split('/') as [string, string];
  const r = (payload as { repository: Json }).repository;
  if (r) {
    r.name = name;
    r.full_name = repo;
    r.owner = { ...r.owner, login: owner };
    r.html_url = `https://github.com/${repo}`;
    r.url = `https://api.github.com/repos/${repo}`;
  }
  (payload as Json).installation = { id: installationId, node_id: `MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u${installationId}` };
  return payload;
}

/**
 * A `check_suite` payload (GitHub's own example for the action) for the suite at `headSha`: `prs` are
 * the PRs GitHub lists (none for a PR whose head is in a fork), `appId` the app the suite belongs to.
 */
export function checkSuiteEvent(opts: { repo: string; headSha: string; prs: number[]; appId: number; action?: 'rerequested' | 'requested' | 'completed'; installationId?: number }): WebhookEventMap['check_suite'] {
  const p = loadExample('check_suite', (e) => e.action === (opts.action ?? 'rerequested')) as Json;
  retarget(p, opts.repo, opts.installationId ?? 1);
  const template = p.check_suite.pull_requests[0] ?? { head: { ref: 'changes', repo: {} }, base: { ref: 'main', repo: {} } };
  p.check_suite.head_sha = opts.headSha;
  p.check_suite.app = { ...p.check_suite.app, id: opts.appId };
  p.check_suite.pull_requests = opts.prs.map((number) => ({
    ...template,
    number,
    url: `https://api.github.com/repos/${opts.repo}/pulls/${number}`,
    head: { ...template.head, sha: opts.headSha },
  }));
  return p;
}

/**
 * Resolves once GitHub's clock (whole seconds, as in `created_at`) has moved
 * past this moment: a person reads berth's plan comment before answering it,
 * and berth cannot tell a command written in the same second as the plan from
 * one written before it (it refuses those). Tests call it before writing a
 * command about what berth has just posted.
 */
export function nextGitHubSecond(): Promise<void> {
  return new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 1));
}

/**
 * An `issue_comment` `created` payload for a comment on a pull request
 * (the examples have none on a PR: this adapts a real one the way GitHub
 * sends it — `issue.pull_request` set).
 */
export function commentOnPullEvent(opts: {
  repo: string;
  pr: number;
  /** createdAt/updatedAt: GitHub's times of the comment (default: now, unedited) */
  comment: { id: number; body: string; user: string; userType?: 'User' | 'Bot'; createdAt?: string; updatedAt?: string };
  installationId?: number;
  action?: 'created' | 'edited' | 'deleted';
}): WebhookEventMap['issue_comment'] {
  const p = loadExample('issue_comment', (e) => e.action === (opts.action ?? 'created')) as Json;
  retarget(p, opts.repo, opts.installationId ?? 1);
  const prUrl = `https://api.github.com/repos/${opts.repo}/pulls/${opts.pr}`;
  p.issue.number = opts.pr;
  p.issue.url = `https://api.github.com/repos/${opts.repo}/issues/${opts.pr}`;
  p.issue.html_url = `https://github.com/${opts.repo}/pull/${opts.pr}`;
  p.issue.state = 'open';
  p.issue.pull_request = { url: prUrl, html_url: `https://github.com/${opts.repo}/pull/${opts.pr}`, diff_url: `${prUrl}.diff`, patch_url: `${prUrl}.patch`, merged_at: null };
  p.comment.id = opts.comment.id;
  p.comment.body = opts.comment.body;
  p.comment.user = { ...p.comment.user, login: opts.comment.user, type: opts.comment.userType ?? 'User' };
  p.comment.html_url = `https://github.com/${opts.repo}/pull/${opts.pr}#issuecomment-${opts.comment.id}`;
  // The example's times are years old: a command is judged against when it was written.
  p.comment.created_at = opts.comment.createdAt ?? now();
  p.comment.updated_at = opts.comment.updatedAt ?? p.comment.created_at;
  p.sender = { ...p.sender, login: opts.comment.user, type: opts.comment.userType ?? 'User' };
  return p;
}

/** A `pull_request` payload for `action`, adapted to `repo`, PR number and head SHA. */
export function pullRequestEvent(opts: {
  repo: string;
  pr: number;
  action: 'opened' | 'synchronize' | 'reopened' | 'closed';
  headSha: string;
  merged?: boolean;
  headRepo?: string;
  installationId?: number;
  /** who caused the event (for `synchronize`: who pushed); default: the example payload's sender */
  sender?: string;
}): WebhookEventMap['pull_request'] {
  const p = loadExample('pull_request', (e) => e.action === opts.action) as Json;
  retarget(p, opts.repo, opts.installationId ?? 1);
  p.number = opts.pr;
  const pr = p.pull_request;
  pr.number = opts.pr;
  pr.html_url = `https://github.com/${opts.repo}/pull/${opts.pr}`;
  pr.url = `https://api.github.com/repos/${opts.repo}/pulls/${opts.pr}`;
  pr.head.sha = opts.headSha;
  pr.head.repo = { ...pr.head.repo, full_name: opts.headRepo ?? opts.repo, fork: (opts.headRepo ?? opts.repo) !== opts.repo };
  pr.base.repo = { ...pr.base.repo, full_name: opts.repo, name: opts.repo.split('/')[1] };
  if (opts.action === 'closed') {
    pr.state = 'closed';
    pr.merged = !!opts.merged;
  } else {
    pr.state = 'open';
    pr.merged = false;
  }
  if (opts.sender !== undefined) p.sender = { ...p.sender, login: opts.sender, type: 'User' };
  return p;
}
