// Hostile input, through the whole app: every case of fixtures/hostile/index.json
// goes in as GitHub would deliver it (a compose file at the PR head, a config on
// the default branch, a PR comment, a raw webhook) and must come out as a clear
// error naming file, line and problem, the did-not-run reply, or a silent
// ignore — never an apply, never a container, and the app keeps answering.
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GENERATORS } from '../../fixtures/hostile/generate.js';
import { describeDocker } from '../helpers/env.js';
import { commentOnPullEvent, pullRequestEvent } from '../helpers/fake-github.js';
import type { App } from './app-harness.js';
import { outsideCode, recordFigure, sha, startApp } from './app-harness.js';

interface Case {
  id: string;
  kind: 'compose' | 'config' | 'comment' | 'webhook';
  file?: string;
  generate?: [string, ...unknown[]];
  expect: 'error' | 'invalid' | 'ignore' | 'command' | 'reject' | 'plan';
  /** more files at the PR head (compose cases): a text, `bytes` of `fill` repeated, or what a generator makes */
  files?: Record<string, string | { fill: string; bytes: number } | { generate: [string, ...unknown[]] }>;
  /** a path prefix no file read (get-content) of the case may name: what berth must refuse before reading it */
  neverRead?: string;
  mentions?: string[];
  notInMarkdown?: string[];
  status?: number;
  webhook?: { event: string; body?: string; signature?: string | null; secret?: string; rawBody?: string; delete?: string[]; set?: Record<string, unknown> };
}

/** A character that renders as nothing or reorders text (test/security/31-invisible-text.test.ts). */
const INVISIBLE = /[\p{Cc}\p{Cs}\p{Bidi_Control}](?<![\n\t])|(?![\uFE0E\uFE0F])[\p{Cf}\p{Default_Ignorable_Code_Point}]|(?<!\p{Emoji})[\uFE0E\uFE0F]/u;
const DIR = 'fixtures/hostile';
const CASES: Case[] = JSON.parse(readFileSync(`${DIR}/index.json`, 'utf8')).cases;
const REPO = 'acme/hostile';
const PROJECT = 't-hostile';
const HEAD = sha('e');
/** A secret variable the hostile compose files may use: its value must never show, whatever they do with it. */
const SECRET = 'h0stile-s3cret-9f2';
const CONFIG = ['project: t-hostile', 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', `    variables: {DB_PASSWORD: ${SECRET}}`, ''].join('\n');
const COMPOSE = ['services:', '  web:', '    image: berth-test/app:1', ''].join('\n');

function input(c: Case): string {
  if (c.file) return readFileSync(`${DIR}/${c.file}`, 'utf8');
  return generated(c.generate!);
}

function generated([name, ...args]: [string, ...unknown[]]): string {
  return (GENERATORS[name] as (...a: unknown[]) => string)(...args);
}

/** A `check_run` `rerequested` payload for berth's staging check of PR 1, as in test/app.e2e.test.ts. */
const checkRunEvent = (): Record<string, unknown> => ({
  action: 'rerequested',
  check_run: { id: 1, name: 'berth / staging', head_sha: HEAD, status: 'completed', conclusion: 'action_required', pull_requests: [{ number: 1, id: 1, url: '', head: { ref: 'x', sha: HEAD, repo: {} }, base: { ref: 'main', sha: HEAD, repo: {} } }] },
  repository: { full_name: REPO, name: 'hostile', owner: { login: 'acme' } },
  installation: { id: 1 },
  sender: { login: 'alice', type: 'User' },
});

const headOf = (id: string) => createHash('sha1').update(id).digest('hex');

function unset(obj: Record<string, unknown>, path: string) {
  const segs = path.split('.');
  let o: Record<string, unknown> | undefined = obj;
  for (const s of segs.slice(0, -1)) o = o?.[s] as Record<string, unknown> | undefined;
  if (o) delete o[segs.at(-1)!];
}

function setAt(obj: Record<string, unknown>, path: string, value: unknown) {
  const segs = path.split('.');
  let o: Record<string, unknown> = obj;
  for (const s of segs.slice(0, -1)) o = (o[s] ??= {}) as Record<string, unknown>;
  o[segs.at(-1)!] = value;
}

let tried = 0;
let handled = 0;
/** the slowest hostile comment, answered and replied to: a figure, not a threshold */
let slowestMs = 0;

describeDocker('hostile input through the whole app', () => {
  let app: App;
  let pr = 1;

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT });
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE });
    app.fake.setFiles(REPO, HEAD, { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE });
    app.fake.setPull(REPO, 1, { headSha: HEAD, author: 'alice', mergeable: true });
  }, 60_000);

  afterAll(async () => {
    recordFigure({ section: 'hostile inputs', tried, handled, slowest_comment_ms: Math.round(slowestMs) });
    await app?.close();
  });

  /** Nothing applied, nothing created, and the app still answers /help. */
  async function stillSafe(onPr = 1) {
    expect(await app.ts.store.listApplies({})).toEqual([]);
    // The store's tables are intact (a SQL injection would show here): the locks table answers.
    expect(await app.ts.store.getLock(REPO, 'staging')).toBeUndefined();
    expect(await app.containers()).toEqual([]);
    await app.say(onPr, '/help');
    expect(app.lastReply(onPr)).toContain('### berth commands');
  }

  function assertText(c: Case, body: string) {
    for (const m of c.mentions ?? []) expect(body, `${c.id}: "${m}" in:\n${body.slice(0, 1500)}\n`).toContain(m);
    for (const bad of c.notInMarkdown ?? []) expect(outsideCode(body), `${c.id}: "${bad}" outside code in:\n${body.slice(0, 1500)}\n`).not.toContain(bad);
    // Whatever the input, berth's reply fits in one GitHub comment.
    expect(body.length).toBeLessThanOrEqual(65_536);
    // …and holds nothing that renders as nothing or reorders text, in code or out (an emoji's variation selector aside).
    expect(body, `${c.id}: an invisible or bidi character in:\n${JSON.stringify(body.slice(0, 1500))}\n`).not.toMatch(INVISIBLE);
  }

  describe('compose files at the PR head', () => {
    for (const c of CASES.filter((x) => x.kind === 'compose')) {
      it(c.id, async () => {
        tried++;
        const n = ++pr;
        const head = headOf(c.id);
        const extra = Object.entries(c.files ?? {}).map(([p, f]) => [p, typeof f === 'string' ? f : 'generate' in f ? generated(f.generate) : f.fill.repeat(Math.ceil(f.bytes / f.fill.length)).slice(0, f.bytes)]);
        app.fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': input(c), ...Object.fromEntries(extra) });
        app.fake.setPull(REPO, n, { headSha: head, author: 'alice', mergeable: true });
        const readsBefore = app.fake.requestsTo('repos/get-content').length;
        expect(await app.open(n, head)).toBe(200);
        const check = app.check(head, 'berth / staging')!;
        // 'plan': the PR's text is planned (and shown, inert); anything else is refused
        expect(check.conclusion).toBe(c.expect === 'plan' ? 'action_required' : 'failure');
        const comment = app.berthComments(n)[0]!.body;
        assertText(c, comment);
        assertText(c, check.summary ?? '');
        for (const text of [comment, check.summary ?? '', check.title ?? '']) expect(text.toLowerCase(), `${c.id}: the secret variable's value shown`).not.toContain(SECRET.toLowerCase());
        if (c.neverRead !== undefined) {
          const read = app.fake.requestsTo('repos/get-content').slice(readsBefore).map((r) => r.path);
          expect(read.filter((p) => p.includes(`/contents/${c.neverRead}`)), `${c.id}: read before it was refused`).toEqual([]);
        }
        if (c.expect !== 'plan') {
          // An /apply of a PR whose plan failed is refused: nothing is applied.
          await app.say(n, '/apply staging');
          expect(app.lastReply(n)).toMatch(/🚫|❌/);
        }
        await stillSafe(n);
        handled++;
      });
    }
  });

  describe('configs on the default branch', () => {
    for (const c of CASES.filter((x) => x.kind === 'config')) {
      it(c.id, async () => {
        tried++;
        const n = ++pr;
        const head = headOf(c.id);
        app.fake.setFiles(REPO, 'main', { '.github/berth.yml': input(c), 'compose.yml': COMPOSE });
        app.fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE });
        app.fake.setPull(REPO, n, { headSha: head, author: 'alice', mergeable: true });
        try {
          expect(await app.open(n, head)).toBe(200);
          expect(app.check(head, 'berth')!.conclusion).toBe('failure');
          assertText(c, app.berthComments(n)[0]!.body);
          assertText(c, app.check(head, 'berth')!.summary ?? '');
          await app.say(n, '/apply staging');
          assertText(c, app.lastReply(n));
          expect(await app.ts.store.listApplies({})).toEqual([]);
        } finally {
          app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE });
        }
        await stillSafe(n);
        handled++;
      });
    }
  });

  describe('PR comments', () => {
    for (const c of CASES.filter((x) => x.kind === 'comment')) {
      it(c.id, async () => {
        tried++;
        const before = app.berthComments(1).length;
        const t0 = performance.now();
        const id = await app.say(1, input(c));
        const ms = performance.now() - t0;
        slowestMs = Math.max(slowestMs, ms);
        const replies = app.berthComments(1).slice(before);
        if (c.expect === 'ignore') {
          expect(replies).toEqual([]);
          expect(app.fake.reactions(REPO, id)).toEqual([]);
        } else {
          expect(replies).toHaveLength(1);
          expect(app.fake.reactions(REPO, id).map((r) => r.content)).toEqual(['eyes']);
          if (c.expect === 'invalid') expect(replies[0]!.body).toContain('### ⚠️ berth did not run this command');
          assertText(c, replies[0]!.body);
        }
        // Parsing is linear: even 5 MB is handled (answered, parsed, replied to) within GitHub's 10 s
        // for a delivery. A super-linear parser would take minutes here; load alone cannot reach 10 s.
        expect(ms).toBeLessThan(10_000);
        await stillSafe();
        handled++;
      });
    }
  });

  describe('raw webhooks', () => {
    for (const c of CASES.filter((x) => x.kind === 'webhook')) {
      it(c.id, async () => {
        tried++;
        const w = c.webhook!;
        const writes = () => app.fake.requests.filter((r) => r.method !== 'GET' && !r.path.endsWith('/access_tokens')).length;
        const writesBefore = writes();
        const id = app.fake.addComment(REPO, 1, w.body ?? '/apply staging', { user: 'alice' }).id;
        const payload: Record<string, unknown> =
          w.event === 'issue_comment'
            ? (commentOnPullEvent({ repo: REPO, pr: 1, comment: { id, body: w.body ?? '/apply staging', user: 'alice' } }) as never)
            : w.event === 'pull_request'
              ? (pullRequestEvent({ repo: REPO, pr: 1, action: 'synchronize', headSha: HEAD }) as never)
              : checkRunEvent();
        for (const p of w.delete ?? []) unset(payload, p);
        for (const [p, v] of Object.entries(w.set ?? {})) setAt(payload, p, v);
        const status = await app.deliver(w.event, payload, {
          delivery: randomUUID(),
          ...(w.rawBody !== undefined ? { rawBody: w.rawBody } : {}),
          ...(w.secret !== undefined ? { secret: w.secret } : {}),
          ...(w.signature !== undefined ? { signature: w.signature } : {}),
        });
        if (c.expect === 'reject') expect(status).toBe(c.status);
        else expect(status, `${c.id}: status`).toBeLessThan(500);
        // Nothing processed: no write to GitHub at all (no reaction, no comment, no check run).
        expect(writes() - writesBefore).toBe(0);
        expect(app.fake.reactions(REPO, id)).toEqual([]);
        await stillSafe();
        handled++;
      });
    }
  });

  it('the app still serves, every request it made matches GitHub\'s REST description, dropped payloads were logged', async () => {
    const res = await fetch(`${app.url}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
    const dropped = app.logs.filter((l) => l.includes('malformed webhook payload ignored'));
    // (a comment without a body is simply not a command: quiet, without a warning; one naming no installation,
    // for a repository the app is not installed on, is ignored with a warning of its own)
    const noInstallation = (c: Case) => !!c.webhook?.delete?.includes('installation');
    expect(dropped.length).toBe(CASES.filter((c) => c.webhook?.delete && !c.webhook.delete.includes('comment.body') && !noInstallation(c)).length);
    expect(app.logs.filter((l) => l.includes('the app is not installed on')).length).toBe(CASES.filter(noInstallation).length);
    expect(app.fake.violations).toEqual([]);
    expect(CASES.length).toBeGreaterThanOrEqual(30);
  });
});
