// Secrets, through the whole app: values that are secret by key name, by being
// a secret flag's argument, or by being declared in the environment's
// `secret_keys` are planted in a PR; it is planned, applied, applied again
// with a step that fails with a Docker message echoing a secret, stopped and
// rolled back. Secret variables are also interpolated where parsing transforms
// them (JSON-escaped command arguments, a string command split into words,
// list-form environment split at `=`, a capability upper-cased into a policy
// error) and one is rotated between plan and apply (the stale-plan refusal).
// The same repository is planned through the CLI. Then every request berth
// made to GitHub (bodies: comments, check-run output, reactions), every log
// line (pino at `trace`) and everything the CLI printed is searched for every
// planted value, raw, JSON-escaped, upper- and lower-cased: none may appear.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { describeDocker } from '../helpers/env.js';
import type { App } from './app-harness.js';
import { docker, recordFigure, startApp } from './app-harness.js';

const REPO = 'acme/secrets';
const PROJECT = 't-secrets';

/** Each planted value, and how it is secret. */
const PLANTED = {
  byKeyName: 's3cr3t-PLANTED-keyname-7f3a',
  flagEquals: 's3cr3t-PLANTED-flag-eq-91bc',
  flagSpace: 's3cr3t-PLANTED-flag-sp-44d0',
  urlPassword: 's3cr3t-PLANTED-urlpass-0e2d',
  declared: 's3cr3t-PLANTED-declared-b81f',
  declaredVariable: 's3cr3t-PLANTED-declvar-5a77',
  variableByName: 's3cr3t-PLANTED-varname-c3e9',
  inFailingStep: 's3cr3t-PLANTED-failstep-d12e',
  labelByKeyName: 's3cr3t-PLANTED-label-6b20',
  inHealthcheck: 's3cr3t-PLANTED-health-a9f1',
  quotedArgument: 's3cr3t-PLANTED-"quo\\ted-2b7e',
  splitCommand: 's3cr3t-PLANTED-split word-8c40',
  listEnvironment: 's3cr3t-PLANTED-list=env=-1d9a',
  upperCasedCapability: 's3cr3t-planted-cap-77ab',
  rotatedBefore: 's3cr3t-PLANTED-rotate-old-4e11',
  rotatedAfter: 's3cr3t-PLANTED-rotate-new-9f02',
} as const;

const configWith = (rotated: string) =>
  [
    `project: ${PROJECT}`,
    'environments:',
    '  - name: staging',
    '    compose: [compose.yml]',
    '    targets: [local]',
    '    secret_keys: [API_AUTH, SIGNING, QUOTED, WORDS, LISTED, CAPS, ROTATED]',
    '    variables:',
    `      SIGNING: ${PLANTED.declaredVariable}`,
    `      DB_PASSWORD: ${PLANTED.variableByName}`,
    `      QUOTED: ${JSON.stringify(PLANTED.quotedArgument)}`,
    `      WORDS: ${PLANTED.splitCommand}`,
    `      LISTED: ${PLANTED.listEnvironment}`,
    `      CAPS: ${PLANTED.upperCasedCapability}`,
    `      ROTATED: ${rotated}`,
    '',
  ].join('\n');
const CONFIG = configWith(PLANTED.rotatedBefore);

/** Where parsing transforms what was interpolated. */
const TRANSFORMED = [
  'services:',
  '  api:',
  '    image: berth-test/app:1',
  '    command: "sleep 3600 ${WORDS} ${ROTATED}"',
  '    entrypoint: ["/bin/run", "--opt=${QUOTED}"]',
  '    environment: ["LISTED_VALUE=${LISTED}"]',
  '',
].join('\n');
const CAPABILITY = ['services:', '  api:', '    image: berth-test/app:1', '    cap_add: ["${CAPS}"]', ''].join('\n');

/** Everything the CLI printed in this suite. */
const cliOutput: string[] = [];

const app1 = (extraEnv: string[] = []) =>
  [
    'services:',
    '  api:',
    '    image: berth-test/app:1',
    '    command: ["sleep", "3600", "--token=' + PLANTED.flagEquals + '", "--password", "' + PLANTED.flagSpace + '"]',
    '    environment:',
    `      DB_PASSWORD: ${PLANTED.byKeyName}`,
    `      DATABASE_URL: postgres://app:${PLANTED.urlPassword}@db:5432/app`,
    `      API_AUTH: ${PLANTED.declared}`,
    '      SIGNATURE_HINT: "sig=${SIGNING}"',
    '      PGPASS_FROM_VAR: ${DB_PASSWORD}',
    ...extraEnv.map((l) => `      ${l}`),
    '    labels:',
    `      com.example.api-token: ${PLANTED.labelByKeyName}`,
    '    healthcheck:',
    `      test: ["CMD-SHELL", "test -f /VERSION || echo --password=${PLANTED.inHealthcheck}"]`,
    '      interval: 1s',
    '',
  ].join('\n');

/** A second service whose start fails with a Docker message that echoes its (mis-quoted) entrypoint, secret included. */
const failing = (base: string) =>
  base +
  [
    '  worker:',
    '    image: berth-test/app:1',
    `    entrypoint: ["/opt/worker --token=${PLANTED.inFailingStep}"]`,
    '',
  ].join('\n');

const headOf = (id: string) => createHash('sha1').update(`secrets:${id}`).digest('hex');

let leaked = -1;

describeDocker('planted secrets never leave the server', () => {
  let app: App;

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT });
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': 'services: {}\n' });
  }, 60_000);

  afterAll(async () => {
    recordFigure({ section: 'secrets leaked', tried: Object.keys(PLANTED).length, leaked: Math.max(leaked, 0) });
    await app?.close();
  });

  it('plan and apply: the containers get the real values, GitHub sees masks', async () => {
    const head = headOf('apply');
    app.fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': app1() });
    app.fake.setPull(REPO, 1, { headSha: head, author: 'alice', mergeable: true });
    await app.open(1, head);
    const plan = app.berthComments(1)[0]!.body;
    expect(plan).toContain('API_AUTH');
    expect(plan).toContain('••••••');
    await app.say(1, '/apply staging');
    await app.drain();
    expect((await app.ts.store.latestApply(REPO, 'staging'))!.state).toBe('completed');
    const env = (await docker.getContainer(`${PROJECT}-staging-api-1`).inspect()).Config.Env ?? [];
    expect(env).toContain(`DB_PASSWORD=${PLANTED.byKeyName}`);
    expect(env).toContain(`API_AUTH=${PLANTED.declared}`);
    expect(env).toContain(`SIGNATURE_HINT=sig=${PLANTED.declaredVariable}`);
  });

  it('a change of secret values is shown as a change, never as values', async () => {
    const head = headOf('change');
    app.fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': app1([`EXTRA_TOKEN: ${PLANTED.byKeyName}-v2`]) });
    app.fake.setPull(REPO, 1, { headSha: head });
    await app.open(1, head, 'synchronize');
    expect(app.check(head, 'berth / staging')!.conclusion).toBe('action_required');
  });

  it('a failing step whose Docker message echoes a secret: apply failed, the message is masked', async () => {
    const head = headOf('fail');
    app.fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': failing(app1()) });
    app.fake.setPull(REPO, 1, { headSha: head });
    await app.open(1, head, 'synchronize');
    await app.say(1, '/apply staging');
    await app.drain();
    const a = (await app.ts.store.latestApply(REPO, 'staging'))!;
    expect(a.state).toBe('failed');
    const failed = (await app.ts.store.listTasksForApply(a.id)).filter((t) => t.state === 'failed');
    expect(failed.length).toBeGreaterThan(0);
    expect(app.check(head, 'berth / staging')!.conclusion).toBe('failure');
    // The step and Docker's reason are still there, only the secret is masked.
    expect(app.lastReply(1)).toContain('failed');
    expect(app.lastReply(1)).toContain('exec: "/opt/worker --token=••••••"');
    expect(failed[0]!.error).toContain('--token=••••••');
  });

  it('a compose error that quotes an interpolated secret variable is masked', async () => {
    const head = headOf('bad-port');
    const bad = ['services:', '  api:', '    image: berth-test/app:1', '    ports:', '      - "127.0.0.1:${DB_PASSWORD}:80"', ''].join('\n');
    app.fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': bad });
    app.fake.setPull(REPO, 2, { headSha: head, author: 'alice', mergeable: true });
    await app.open(2, head);
    expect(app.check(head, 'berth / staging')!.conclusion).toBe('failure');
    expect(app.berthComments(2)[0]!.body).toContain('compose.yml');
  });

  it('a secret variable in an image tag is refused before planning resolves it, quoting nothing of it', async () => {
    const head = headOf('image-tag');
    const tagged = ['services:', '  api:', '    image: berth-test/app:${SIGNING}', ''].join('\n');
    // Resolving the image would send the tag to its registry (security 43): refused at its line instead.
    app.fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': tagged });
    app.fake.setPull(REPO, 3, { headSha: head, author: 'alice', mergeable: true });
    await app.open(3, head);
    expect(app.check(head, 'berth / staging')!.conclusion).toBe('failure');
    expect(app.berthComments(3)[0]!.body).toContain('cannot come from a secret variable');
  });

  it('rollback, a stopped apply and unlock report without secrets too', async () => {
    await app.say(1, '/rollback staging');
    await app.drain();
    // Back to the good state, then stopped at once: the stop path reports too.
    const head = headOf('stop');
    app.fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': app1([`LATE_SECRET: ${PLANTED.byKeyName}-v3`]) });
    app.fake.setPull(REPO, 1, { headSha: head });
    await app.open(1, head, 'synchronize');
    await app.say(1, '/apply staging');
    await app.say(1, '/stop staging');
    await app.drain();
    expect(['completed', 'stopped']).toContain((await app.ts.store.latestApply(REPO, 'staging'))!.state);
    await app.say(1, '/unlock staging');
  });

  it('values transformed by parsing (escaped, split, upper-cased) and a rotated secret stay masked', async () => {
    const head = headOf('transformed');
    app.fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': TRANSFORMED });
    app.fake.setPull(REPO, 4, { headSha: head, author: 'alice', mergeable: true });
    await app.open(4, head);
    expect(app.check(head, 'berth / staging')!.conclusion).toBe('action_required');
    // Rotated on the default branch after the plan: the refusal explains the stale plan without either value.
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': configWith(PLANTED.rotatedAfter), 'compose.yml': 'services: {}\n' });
    await app.say(4, '/apply staging');
    expect(app.lastReply(4)).toContain('The plan is out of date');
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': 'services: {}\n' });

    const caps = headOf('capability');
    app.fake.setFiles(REPO, caps, { '.github/berth.yml': CONFIG, 'compose.yml': CAPABILITY });
    app.fake.setPull(REPO, 5, { headSha: caps, author: 'alice', mergeable: true });
    await app.open(5, caps);
    expect(app.check(caps, 'berth / staging')!.conclusion).toBe('failure');
  });

  it('the CLI plans the same files in every format without a secret', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-secrets-'));
    mkdirSync(join(dir, '.github'));
    writeFileSync(join(dir, '.github/berth.yml'), CONFIG);
    const io = { out: (s: string) => void cliOutput.push(s), err: (s: string) => void cliOutput.push(s) };
    for (const compose of [app1(), TRANSFORMED, CAPABILITY]) {
      writeFileSync(join(dir, 'compose.yml'), compose);
      // as the repository the app deployed this project for (the CLI deploys as a repository: security 69)
      for (const format of ['text', 'markdown', 'json']) await main(['plan', '--repo', dir, '--env', 'staging', '--format', format, '--repository', REPO], io);
    }
    expect(cliOutput.join('\n')).toContain('••••••');
  });

  it('no planted value appears in any request to GitHub, any log line or any CLI output', () => {
    const requests = app.fake.requests.map((r) => JSON.stringify({ path: r.path, query: r.query, body: r.body }));
    const found: string[] = [];
    const spellings = (v: string) => [...new Set([v, JSON.stringify(v).slice(1, -1), JSON.stringify(JSON.stringify(v)).slice(1, -1), v.toUpperCase(), v.toLowerCase()])];
    for (const [how, value] of Object.entries(PLANTED)) {
      for (const v of spellings(value)) {
        for (const r of requests) if (r.includes(v)) found.push(`request: ${how}: ${r.slice(0, 400)}`);
        for (const l of app.logs) if (l.includes(v)) found.push(`log: ${how}: ${l.slice(0, 400)}`);
        for (const o of cliOutput) if (o.includes(v)) found.push(`cli: ${how}: ${o.slice(0, 400)}`);
      }
    }
    leaked = found.length;
    // The search is real: berth did post plans and outcomes, and logged at debug level.
    expect(requests.filter((r) => r.includes('issues/1/comments')).length).toBeGreaterThan(3);
    expect(app.logs.length).toBeGreaterThan(50);
    expect(found).toEqual([]);
  });
});
