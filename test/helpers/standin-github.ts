// An independent GitHub stand-in for the black-box test (test/blackbox.e2e.test.ts).
// It shares nothing with fake-github.ts on purpose: a second, small reading of
// GitHub's REST API, so berth is not only ever checked against one double.
//
// It serves the API under `/api/v3` — where Probot sends requests when
// `GHE_HOST`/`GHE_PROTOCOL` name it — and answers the way github.com does
// where the reading differs from our main fake: lists are paginated with
// `Link` headers (one item per page), the installation token answer carries
// `permissions`, a deleted comment is a 404 on edit, and faults (5xx, the
// secondary rate limit with `retry-after`, a 422 on a check-run update) can be
// queued per operation. Every request is matched against @octokit/openapi
// (method + path → operation; required fields, enums, maxLength, maxItems of
// the JSON body) and against the limits GitHub documents in prose; whatever
// GitHub would refuse is answered 422 and listed in `problems`.
import { createHmac, createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface Seen {
  method: string;
  path: string;
  query: URLSearchParams;
  op: string;
  body: Json;
  status: number;
  headers: IncomingHttpHeaders;
}

interface Op {
  id: string;
  method: string;
  re: RegExp;
  names: string[];
  schema?: Json;
  literal: number;
}

let ops: { doc: Json; list: Op[] } | undefined;
function openapi() {
  if (ops) return ops;
  const require = createRequire(import.meta.url);
  const doc = JSON.parse(readFileSync(require.resolve('@octokit/openapi/generated/api.github.com.json'), 'utf8'));
  const list: Op[] = [];
  for (const [tpl, item] of Object.entries<Json>(doc.paths)) {
    for (const method of ['get', 'post', 'patch', 'put', 'delete']) {
      const o = item[method];
      if (!o) continue;
      const names: string[] = [];
      const re = new RegExp(
        '^' +
          tpl.replace(/\{([^}]+)\}|[^{]+/g, (m, name) => {
            if (name) {
              names.push(name);
              return name === 'path' || name === 'ref' ? '(.+)' : '([^/]+)';
            }
            return m.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
          }) +
          '$',
      );
      const rb = resolve(doc, o.requestBody);
      list.push({ id: o.operationId, method: method.toUpperCase(), re, names, schema: rb?.content?.['application/json']?.schema, literal: tpl.replace(/\{[^}]+\}/g, '').length });
    }
  }
  list.sort((a, b) => b.literal - a.literal);
  ops = { doc, list };
  return ops;
}

function resolve(doc: Json, x: Json): Json {
  while (x && typeof x === 'object' && typeof x.$ref === 'string') x = x.$ref.slice(2).split('/').reduce((o: Json, k: string) => o?.[k], doc);
  return x;
}

/** The body problems GitHub's schema names: type, required, enum, maxLength, maxItems, nested. */
function check(doc: Json, schema: Json, v: Json, at: string, out: string[]): void {
  const s = resolve(doc, schema);
  if (!s || v === undefined) return;
  if (v === null) {
    if (!s.nullable && s.type) out.push(`${at} is null`);
    return;
  }
  const alts = s.oneOf ?? s.anyOf;
  if (alts) {
    const results = alts.map((a: Json) => {
      const p: string[] = [];
      check(doc, a, v, at, p);
      return p;
    });
    if (!results.some((p: string[]) => p.length === 0)) out.push(`${at}: no alternative fits (${results[0].join('; ')})`);
    return;
  }
  for (const a of s.allOf ?? []) check(doc, a, v, at, out);
  const t = s.type;
  const type = Array.isArray(v) ? 'array' : Number.isInteger(v) ? 'integer' : typeof v;
  if (t && !(t === type || (t === 'number' && type === 'integer'))) return void out.push(`${at}: ${type}, expected ${t}`);
  if (s.enum && !s.enum.includes(v)) out.push(`${at}: ${JSON.stringify(v)} not one of ${s.enum.join(', ')}`);
  if (typeof v === 'string' && s.maxLength !== undefined && [...v].length > s.maxLength) out.push(`${at}: ${[...v].length} characters, more than ${s.maxLength}`);
  if (Array.isArray(v)) {
    if (s.maxItems !== undefined && v.length > s.maxItems) out.push(`${at}: ${v.length} items, more than ${s.maxItems}`);
    v.forEach((x, i) => check(doc, s.items, x, `${at}[${i}]`, out));
  }
  if (type === 'object' && !Array.isArray(v)) {
    for (const r of s.required ?? []) if (v[r] === undefined) out.push(`${at}.${r} is required`);
    for (const [k, x] of Object.entries(v)) if (s.properties?.[k]) check(doc, s.properties[k], x, `${at}.${k}`, out);
  }
}

/** What GitHub documents in prose rather than in the schema. */
function proseRules(op: string, b: Json, state: StandIn): string[] {
  const out: string[] = [];
  const completed = (b?.status === 'completed' || b?.completed_at) && !b?.conclusion;
  if ((op === 'checks/create' || op === 'checks/update') && completed) out.push('a completed check run needs a conclusion');
  if ((op === 'checks/create' || op === 'checks/update') && b?.output) {
    if (!b.output.title || !b.output.summary) out.push('output needs title and summary');
    if ((b.output.annotations?.length ?? 0) > 50) out.push('more than 50 annotations in one request');
  }
  if ((op === 'issues/create-comment' || op === 'issues/update-comment') && typeof b?.body === 'string' && [...b.body].length > 65536) out.push('comment body longer than 65536 characters');
  if (op === 'repos/create-deployment-status' && typeof b?.description === 'string' && b.description.length > 140) out.push('deployment status description longer than 140');
  if (op === 'repos/create-deployment' && typeof b?.description === 'string' && b.description.length > 140) out.push('deployment description longer than 140');
  if (op === 'checks/create' && !state.commits.has(b?.head_sha)) out.push(`head_sha ${b?.head_sha} is no commit of the repository`);
  return out;
}

export interface Fault {
  status: number;
  headers?: Record<string, string>;
  message?: string;
}

export interface StandIn {
  /** base URL of the server (no /api/v3): what GHE_PROTOCOL://GHE_HOST names */
  origin: string;
  seen: Seen[];
  problems: string[];
  /** path → content, the same at every commit of `commits` (and the default branch) */
  files: Map<string, string>;
  /** commit → path → content, for a commit whose files differ from `files` */
  filesAt: Map<string, Map<string, string>>;
  commits: Set<string>;
  pulls: Map<number, Json>;
  comments: Map<number, { id: number; issue: number; body: string; deleted?: boolean; createdAt?: string; updatedAt?: string }>;
  checkRuns: Map<number, Json>;
  deployments: Map<number, Json & { statuses: Json[] }>;
  /** operationId → faults answered (in order) before the real answer */
  faults: Map<string, Fault[]>;
  close(): Promise<void>;
}

/** The app's JWT (RS256, iss = app id, signed with the app's key) or an installation token this stand-in issued. */
function checkAuth(auth: string | undefined, op: string, app: { id: number; publicKey: string } | undefined): string | undefined {
  if (!auth) return 'no authorization header';
  const appEndpoint = op.startsWith('apps/');
  if (appEndpoint) {
    const m = /^bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/i.exec(auth);
    if (!m) return `an app endpoint needs the app's JWT, got "${auth.slice(0, 12)}…"`;
    if (!app) return undefined;
    const claims = JSON.parse(Buffer.from(m[2]!, 'base64url').toString());
    if (Number(claims.iss) !== app.id) return `JWT iss ${claims.iss}, expected ${app.id}`;
    if (!verify('RSA-SHA256', Buffer.from(`${m[1]}.${m[2]}`), createPublicKey(app.publicKey), Buffer.from(m[3]!, 'base64url'))) return 'JWT signature does not verify';
    if (!(claims.exp > Date.now() / 1000) || claims.exp - claims.iat > 600) return 'JWT expired or valid longer than 10 minutes';
    return undefined;
  }
  return /^token ghs_standin\d+$/.test(auth) ? undefined : `a repository endpoint needs an installation token, got "${auth.slice(0, 12)}…"`;
}

export async function startStandIn(opts: { repo: string; defaultBranch?: string; app?: { id: number; publicKey: string }; installationId?: number }): Promise<StandIn> {
  const { doc, list } = openapi();
  const [owner, name] = opts.repo.split('/') as [string, string];
  let nextId = 7_000_000;
  const state: StandIn = {
    origin: '',
    seen: [],
    problems: [],
    files: new Map(),
    filesAt: new Map(),
    commits: new Set(),
    pulls: new Map(),
    comments: new Map(),
    checkRuns: new Map(),
    deployments: new Map(),
    faults: new Map(),
    close: async () => void (await new Promise((r) => server.close(r))),
  };
  const user = (login: string) => ({ login, id: 1, node_id: 'U_1', type: 'User', site_admin: false, avatar_url: '', url: '', html_url: `${state.origin}/${login}` });
  const repository = (o = owner, n = name) => ({ id: 42, node_id: 'R_42', name: n, full_name: `${o}/${n}`, private: false, owner: user(o), default_branch: opts.defaultBranch ?? 'main', html_url: `${state.origin}/${o}/${n}`, url: `${state.origin}/api/v3/repos/${o}/${n}` });

  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (c) => (raw += c));
    req.on('end', () => {
      const url = new URL(req.url!, 'http://x');
      const send = (status: number, body: Json, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'x-ratelimit-remaining': '4999', 'x-ratelimit-limit': '5000', 'x-ratelimit-reset': String(Math.floor(Date.now() / 1000) + 3600), ...headers });
        res.end(body === undefined ? '' : JSON.stringify(body));
      };
      if (!url.pathname.startsWith('/api/v3/')) {
        state.problems.push(`${req.method} ${url.pathname}: not under /api/v3 (GHE_HOST's API root)`);
        return send(404, { message: 'Not Found' });
      }
      const path = decodeURIComponent(url.pathname.slice('/api/v3'.length));
      const op = list.find((o) => o.method === req.method && o.re.test(path));
      let body: Json;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        body = raw;
      }
      const rec: Seen = { method: req.method!, path, query: url.searchParams, op: op?.id ?? '?', body, status: 0, headers: req.headers };
      state.seen.push(rec);
      const reply = (status: number, b: Json, h?: Record<string, string>) => {
        rec.status = status;
        send(status, b, h);
      };
      if (!op) {
        state.problems.push(`${req.method} ${path}: no such operation in GitHub's REST API`);
        return reply(404, { message: 'Not Found' });
      }
      const p: Record<string, string> = {};
      op.re.exec(path)!.slice(1).forEach((v, i) => (p[op.names[i]!] = v));
      const bad: string[] = [];
      if (op.schema) {
        if (body === undefined && resolve(doc, op.schema)?.required?.length) bad.push('body is required');
        else check(doc, op.schema, body, '$', bad);
      }
      bad.push(...proseRules(op.id, body, state));
      if (bad.length) {
        state.problems.push(`${req.method} ${path} (${op.id}): ${bad.join('; ')}`);
        return reply(422, { message: 'Validation Failed', errors: bad });
      }
      const authProblem = checkAuth(req.headers.authorization, op.id, opts.app);
      if (authProblem) {
        state.problems.push(`${req.method} ${path}: ${authProblem}`);
        return reply(401, { message: 'Bad credentials' });
      }
      const queued = state.faults.get(op.id);
      const fault = queued?.shift();
      if (fault) return reply(fault.status, { message: fault.message ?? 'fault', documentation_url: 'https://docs.github.com/rest' }, fault.headers);
      // Any repository exists (webhook examples name theirs); only `opts.repo` holds files, commits and pulls.
      const ours = p.owner === undefined || `${p.owner}/${p.repo}` === opts.repo;
      const paged = (items: Json[]) => {
        const page = Math.max(1, Number(url.searchParams.get('page') ?? 1));
        const per = 1; // one per page: whoever lists must follow Link
        const last = Math.max(1, Math.ceil(items.length / per));
        const link = (n: number, rel: string) => {
          const u = new URL(`${state.origin}/api/v3${path}`);
          url.searchParams.forEach((v, k) => u.searchParams.set(k, v));
          u.searchParams.set('page', String(n));
          return `<${u}>; rel="${rel}"`;
        };
        const links = [page < last ? link(page + 1, 'next') : '', link(last, 'last')].filter(Boolean).join(', ');
        reply(200, items.slice((page - 1) * per, page * per), links && items.length > per ? { link: links } : {});
      };
      const now = new Date().toISOString();
      switch (op.id) {
        case 'apps/create-installation-access-token':
          return reply(201, { token: `ghs_standin${p.installation_id}`, expires_at: new Date(Date.now() + 3600_000).toISOString(), permissions: { checks: 'write', contents: 'read', issues: 'write', pull_requests: 'write', metadata: 'read', deployments: 'write', members: 'read' }, repository_selection: 'selected' });
        case 'apps/get-repo-installation':
          // The app is installed on this stand-in's one repository (a delivery naming no installation is acted on through it).
          if (!ours) return reply(404, { message: 'Not Found' });
          return reply(200, {
            id: opts.installationId ?? 1,
            account: { login: owner, id: 1, node_id: 'O_1', type: 'Organization', site_admin: false },
            repository_selection: 'selected',
            access_tokens_url: `${state.origin}/api/v3/app/installations/${opts.installationId ?? 1}/access_tokens`,
            repositories_url: `${state.origin}/api/v3/installation/repositories`,
            html_url: `${state.origin}/organizations/${owner}/settings/installations/${opts.installationId ?? 1}`,
            app_id: opts.app?.id ?? 1,
            target_id: 1,
            target_type: 'Organization',
            permissions: { checks: 'write', contents: 'read', issues: 'write', pull_requests: 'write', metadata: 'read', deployments: 'write' },
            events: ['pull_request', 'issue_comment', 'check_run', 'check_suite', 'push'],
            created_at: now,
            updated_at: now,
            single_file_name: null,
            app_slug: 'berth',
          });
        case 'repos/get':
          return reply(200, repository(p.owner, p.repo));
        case 'repos/get-content': {
          const ref = url.searchParams.get('ref');
          if (ref && !state.commits.has(ref) && ref !== (opts.defaultBranch ?? 'main')) return reply(404, { message: 'No commit found for the ref' });
          const c = ours ? (state.filesAt.get(ref ?? '') ?? state.files).get(p.path!) : undefined;
          if (c === undefined) return reply(404, { message: 'Not Found' });
          return reply(200, { type: 'file', encoding: 'base64', size: Buffer.byteLength(c), name: p.path!.split('/').pop(), path: p.path, sha: 'f'.repeat(40), content: Buffer.from(c).toString('base64').replace(/.{60}/g, '$&\n') });
        }
        case 'git/get-tree':
          if (!ours || !state.commits.has(p.tree_sha!)) return reply(404, { message: 'Not Found' });
          return reply(200, { sha: p.tree_sha, url: '', truncated: false, tree: [...(state.filesAt.get(p.tree_sha!) ?? state.files).keys()].map((path) => ({ path, mode: '100644', type: 'blob', sha: 'e'.repeat(40), size: 1 })) });
        case 'pulls/get': {
          const pr = ours ? state.pulls.get(Number(p.pull_number)) : undefined;
          return pr ? reply(200, pr) : reply(404, { message: 'Not Found' });
        }
        case 'pulls/list-reviews':
          return paged(state.pulls.get(Number(p.pull_number))?.reviews ?? []);
        case 'repos/get-collaborator-permission-level':
          return reply(200, { permission: 'admin', role_name: 'admin', user: user(p.username!) });
        case 'issues/create-comment': {
          const c = { id: nextId++, issue: Number(p.issue_number), body: body.body, createdAt: now, updatedAt: now };
          state.comments.set(c.id, c);
          return reply(201, { id: c.id, node_id: `IC_${c.id}`, body: c.body, user: user('berth[bot]'), created_at: now, updated_at: now, html_url: `${state.origin}/${opts.repo}/pull/${c.issue}#issuecomment-${c.id}`, url: '', issue_url: '', author_association: 'NONE' });
        }
        case 'issues/update-comment': {
          const c = state.comments.get(Number(p.comment_id));
          if (!c || c.deleted) return reply(404, { message: 'Not Found' });
          c.body = body.body;
          c.updatedAt = now;
          return reply(200, { id: c.id, body: c.body, user: user('berth[bot]'), created_at: now, updated_at: now, html_url: '', url: '', issue_url: '' });
        }
        case 'issues/get-comment': {
          const c = state.comments.get(Number(p.comment_id));
          if (!c || c.deleted) return reply(404, { message: 'Not Found' });
          return reply(200, { id: c.id, node_id: `IC_${c.id}`, body: c.body, user: user('berth[bot]'), created_at: c.createdAt ?? now, updated_at: c.updatedAt ?? now, html_url: '', url: '', issue_url: '', author_association: 'NONE' });
        }
        case 'issues/list-comments':
          return paged([...state.comments.values()].filter((c) => c.issue === Number(p.issue_number) && !c.deleted).map((c) => ({ id: c.id, body: c.body, user: user('berth[bot]') })));
        case 'reactions/create-for-issue-comment':
          return reply(201, { id: nextId++, content: body.content, user: user('berth[bot]'), created_at: now });
        case 'checks/create': {
          const run = { ...body, id: nextId++, html_url: `${state.origin}/${opts.repo}/runs/1`, app: { slug: 'berth' } };
          state.checkRuns.set(run.id, run);
          return reply(201, run);
        }
        case 'checks/update': {
          const run = state.checkRuns.get(Number(p.check_run_id));
          if (!run) return reply(404, { message: 'Not Found' });
          Object.assign(run, body);
          return reply(200, run);
        }
        case 'repos/create-deployment': {
          const d = { ...body, id: nextId++, statuses: [] as Json[], created_at: now };
          state.deployments.set(d.id, d);
          return reply(201, { ...d, statuses: undefined, sha: body.ref, url: '', creator: user('berth[bot]') });
        }
        case 'repos/create-deployment-status': {
          const d = state.deployments.get(Number(p.deployment_id));
          if (!d) return reply(404, { message: 'Not Found' });
          d.statuses.push(body);
          return reply(201, { id: nextId++, state: body.state, created_at: now });
        }
        case 'teams/get-membership-for-user-in-org':
          return reply(404, { message: 'Not Found' });
        default:
          state.problems.push(`${req.method} ${path} (${op.id}): the stand-in does not serve this operation`);
          return reply(404, { message: 'Not Found' });
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

/** GitHub's webhook signature headers for a payload. */
export function signed(secret: string, event: string, body: string, id: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    'x-github-event': event,
    'x-github-delivery': id,
    'x-github-hook-id': '1',
    'x-github-hook-installation-target-type': 'integration',
    'x-github-hook-installation-target-id': '1',
    'user-agent': 'GitHub-Hookshot/standin',
    'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
    'x-hub-signature': `sha1=${createHmac('sha1', secret).update(body).digest('hex')}`,
  };
}
