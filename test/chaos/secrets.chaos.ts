// Secrets, through the whole app: values that are secret by key name, by being
// a secret flag's argument, or by being declared in the environment's
// `secret_keys` are planted in a PR; it is planned, applied, applied again
// with a step that fails with a Docker message echoing a secret, stopped and
// rolled back. Then every request berth made to GitHub (bodies: comments,
// check-run output, reactions) and every log line (pino at `trace`) is searched
// for every planted value: none may appear, not even once.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
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
} as const;

const CONFIG = [
  `project: ${PROJECT}`,
  'environments:',
  '  - name: staging',
  '    compose: [compose.yml]',
  '    targets: [local]',
  '    secret_keys: [API_AUTH, SIGNING]',
  '    variables:',
  `      SIGNING: ${PLANTED.declaredVariable}`,
  `      DB_PASSWORD: ${PLANTED.variableByName}`,
  '',
].join('\n');

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

  it('a secret variable in an image tag is masked in the plan', async () => {
    const head = headOf('image-tag');
    const tagged = ['services:', '  api:', '    image: berth-test/app:${SIGNING}', ''].join('\n');
    app.fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': tagged });
    app.fake.setPull(REPO, 3, { headSha: head, author: 'alice', mergeable: true });
    await app.open(3, head);
    expect(app.check(head, 'berth / staging')!.conclusion).toBe('action_required');
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

  it('no planted value appears in any request to GitHub or any log line', () => {
    const requests = app.fake.requests.map((r) => JSON.stringify({ path: r.path, query: r.query, body: r.body }));
    const found: string[] = [];
    for (const [how, value] of Object.entries(PLANTED)) {
      for (const r of requests) if (r.includes(value)) found.push(`request: ${how}: ${r.slice(0, 400)}`);
      for (const l of app.logs) if (l.includes(value)) found.push(`log: ${how}: ${l.slice(0, 400)}`);
    }
    leaked = found.length;
    // The search is real: berth did post plans and outcomes, and logged at debug level.
    expect(requests.filter((r) => r.includes('issues/1/comments')).length).toBeGreaterThan(3);
    expect(app.logs.length).toBeGreaterThan(50);
    expect(found).toEqual([]);
  });
});
