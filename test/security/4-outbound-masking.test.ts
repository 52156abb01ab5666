// Issue 10 item 4: every byte that leaves berth goes through the masker. Secret
// variables (one by name, one by secret_keys; one holding `"` and `\`, one used
// as a release label and then rotated; an image from a secret is refused while
// planning, security 43) feed a PR's compose file. Through the whole
// app: autoplan, a stale-plan refusal after the rotation, an apply with its
// in-progress and final check runs and progress; through the CLI: plan in
// every format, apply with a step whose Docker message echoes a secret, and
// status. Every request body berth sent the fake GitHub, every log line (pino
// at trace) and everything the CLI printed is searched for every secret, raw
// and in its JSON-escaped spelling.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/main.js';
import type { App } from '../chaos/app-harness.js';
import { startApp } from '../chaos/app-harness.js';
import { docker, removeProject } from '../helpers/docker.js';
import { describeDocker } from '../helpers/env.js';

const REPO = 'acme/sec-outbound';
const PROJECT = 't-sec-4-app';
const CLI_PROJECT = 't-sec-4-cli';

/** Release tags that are secret values (a label of the container). */
const TAG_A = 'sec4-tag-A-7c1e93';
const TAG_B = 'sec4-tag-B-rotated-2d4f';
const QUOTED = 'pa"ss\\w0rd-sec4-Q7';
const SIGNED = 'sec4-signing-88aa01';

const SECRETS = [TAG_A, TAG_B, QUOTED, SIGNED];
const spellings = (v: string) => [...new Set([v, JSON.stringify(v).slice(1, -1), JSON.stringify(JSON.stringify(v)).slice(1, -1)])];

const config = (project: string, tag: string, target = 'local') =>
  [
    `project: ${project}`,
    'environments:',
    '  - name: staging',
    '    compose: [compose.yml]',
    `    targets: [${target}]`,
    '    secret_keys: [IMAGE_TAG]',
    '    variables:',
    `      IMAGE_TAG: ${tag}`,
    `      DB_PASSWORD: '${QUOTED}'`,
    `      SIGNING_SECRET: ${SIGNED}`,
    '',
  ].join('\n');

const COMPOSE = [
  'services:',
  '  api:',
  '    image: berth-test/app:1',
  '    labels: ["release=${IMAGE_TAG}"]',
  '    command: ["sleep", "3600", "--auth=${DB_PASSWORD}"]',
  '    environment: ["HINT=pre${SIGNING_SECRET}"]',
  '',
].join('\n');

/** A second service whose start fails with a Docker message quoting its entrypoint (a secret, escaped by Docker). */
const FAILING = COMPOSE + ['  worker:', '    image: berth-test/app:1', '    entrypoint: ["/opt/${DB_PASSWORD}"]', ''].join('\n');

function findLeaks(channels: Record<string, string[]>): string[] {
  const found: string[] = [];
  for (const [channel, texts] of Object.entries(channels))
    for (const t of texts) for (const s of SECRETS) for (const sp of spellings(s)) if (t.includes(sp)) found.push(`${channel}: ${JSON.stringify(s)} in ${t.slice(Math.max(0, t.indexOf(sp) - 150), t.indexOf(sp) + 80)}`);
  return found;
}

function capture(): Io & { text: string[] } {
  const text: string[] = [];
  return { text, out: (s) => void text.push(s), err: (s) => void text.push(s) };
}

const head = (id: string) => createHash('sha1').update(`sec4:${id}`).digest('hex');

describeDocker('item 4: nothing leaves berth unmasked', () => {
  let app: App;

  beforeAll(async () => {
    await removeProject(CLI_PROJECT);
    app = await startApp({ repo: REPO, project: PROJECT });
  }, 60_000);

  afterAll(async () => {
    await app?.close();
    await removeProject(CLI_PROJECT);
  });

  it('the app: plan, a stale plan after a secret rotation, an apply with progress and outcome', async () => {
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': config(PROJECT, TAG_A), 'compose.yml': 'services: {}\n' });
    const h = head('app');
    app.fake.setFiles(REPO, h, { '.github/berth.yml': config(PROJECT, TAG_A), 'compose.yml': COMPOSE });
    app.fake.setPull(REPO, 1, { headSha: h, author: 'alice', mergeable: true });
    await app.open(1, h);
    expect(app.check(h, 'berth / staging')!.conclusion).toBe('action_required');

    // The secret is rotated on the default branch: the reviewed plan (old tag) is now stale.
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': config(PROJECT, TAG_B), 'compose.yml': 'services: {}\n' });
    await app.say(1, '/apply staging');
    expect(app.lastReply(1)).toContain('The plan is out of date');

    await app.say(1, '/apply staging');
    await app.drain();
    expect((await app.ts.store.latestApply(REPO, 'staging'))!.state).toBe('completed');
    const env = (await docker.getContainer(`${PROJECT}-staging-api-1`).inspect()).Config;
    expect(env.Labels.release).toBe(TAG_B);
    expect(env.Cmd).toContain(`--auth=${QUOTED}`);

    const checks = app.fake.requests.filter((r) => r.path.includes('check-runs'));
    expect(checks.some((r) => JSON.stringify(r.body).includes('in_progress'))).toBe(true);
    const requests = app.fake.requests.map((r) => JSON.stringify({ path: r.path, query: r.query, body: r.body }));
    expect(findLeaks({ github: requests, log: app.logs })).toEqual([]);
  }, 120_000);

  it('the CLI: plan (text, markdown, json), apply with a failing step, status', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-sec4-'));
    mkdirSync(join(dir, 'repo/.github'), { recursive: true });
    writeFileSync(join(dir, 'repo/.github/berth.yml'), config(CLI_PROJECT, TAG_A));
    writeFileSync(join(dir, 'repo/compose.yml'), FAILING);
    const db = `sqlite:${join(dir, 'berth.sqlite')}`;
    const io = capture();
    for (const format of ['text', 'markdown', 'json']) expect(await main(['plan', '--repo', join(dir, 'repo'), '--env', 'staging', '--format', format], io)).toBe(2);
    expect(io.text.join('\n')).toContain('••••••');
    expect(await main(['apply', '--repo', join(dir, 'repo'), '--env', 'staging', '--yes', '--database', db], io)).toBe(1);
    const id = /Apply (\S+) started/.exec(io.text.join('\n'))![1]!;
    expect(await main(['status', '--apply', id, '--database', db], io)).toBe(0);
    expect(await main(['status', '--database', db], io)).toBe(0);
    const all = io.text.join('\n');
    // The search is real: the failing step and its Docker message are printed.
    expect(all).toMatch(/StartContainer +service:worker:1 +failed/);
    expect(findLeaks({ cli: io.text })).toEqual([]);
  }, 120_000);
});
