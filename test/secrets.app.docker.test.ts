// Server-side secrets (issue 18) through the whole app on the real engine:
// signed webhooks into Probot, the fake GitHub that checks every request
// against GitHub's description, a real SQLite store and dockerd. The secrets
// are set with the CLI (stdin) into the app's database. A plan before they are
// set names the command; plans (PR opened, /plan) decrypt nothing; /apply puts
// the value into the container's environment and /run/secrets/<name>; a
// rotated value reads "secret … changed" (an /apply of the plan made before
// it is refused as out of date) and recreates only its users; no
// GitHub request, log line or database byte contains a value.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { main, type Io } from '../src/cli/main.js';
import { LABEL } from '../src/model/model.js';
import { Keyring } from '../src/secrets/keyring.js';
import type { App } from './chaos/app-harness.js';
import { docker, startApp } from './chaos/app-harness.js';
import { execIn } from './helpers/docker.js';
import { describeDocker } from './helpers/env.js';
import { rawDatabaseText } from './helpers/stores.js';

const REPO = 'acme/vaulted';
const PROJECT = 't-vault-app';
const KEY = randomBytes(32).toString('base64');
const tag = () => randomBytes(5).toString('hex');
const VALUES = { first: `db-pass-FIRST-${tag()}`, second: `db-pass-SECOND-${tag()}`, token: `api-token-VALUE-${tag()}` };
const sha = (c: string) => c.repeat(40);
const cname = (s: string) => `${PROJECT}-staging-${s}-1`;

const CONFIG = `project: ${PROJECT}
environments:
  - name: staging
    compose: [compose.yml]
    targets: [local]
    secrets: [DB_PASSWORD, API_TOKEN]
`;
const COMPOSE = `services:
  app:
    image: berth-test/app:1
    environment:
      DB_URL: postgres://shop:\${DB_PASSWORD}@db/shop
    secrets: [db_password]
  worker:
    image: berth-test/app:1
    secrets: [api_token]
  static:
    image: berth-test/app:1
secrets:
  db_password:
    environment: DB_PASSWORD
  api_token:
    environment: API_TOKEN
`;


/** `berth secrets set` as an operator runs it: the value on stdin, the key in the environment, the app's database. */
async function setSecret(app: App, name: string, value: string): Promise<void> {
  const out: string[] = [];
  const io: Io = { out: (s) => void out.push(s), err: (s) => void out.push(s), stdin: async () => `${value}\n` };
  const saved = process.env.BERTH_SECRET_KEY;
  process.env.BERTH_SECRET_KEY = KEY;
  try {
    expect(await main(['secrets', 'set', '--repo', REPO, '--env', 'staging', name, '--database', app.ts.url], io)).toBe(0);
  } finally {
    if (saved === undefined) delete process.env.BERTH_SECRET_KEY;
    else process.env.BERTH_SECRET_KEY = saved;
  }
  expect(out.join('\n')).not.toContain(value);
}

describeDocker('server-side secrets through the app on the real engine', () => {
  let app: App;
  const opened = () => vi.mocked(Keyring.prototype.open).mock.calls.length;

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, env: { ...process.env, BERTH_SECRET_KEY: KEY } });
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE });
    app.fake.setFiles(REPO, sha('1'), { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE });
    app.fake.setPull(REPO, 1, { headSha: sha('1'), author: 'alice', mergeable: true });
    vi.spyOn(Keyring.prototype, 'open');
  }, 60_000);

  afterAll(async () => {
    vi.restoreAllMocks();
    await app?.close();
  });

  it('before the secrets are set, the plan is a located error naming the command that sets them', async () => {
    await app.open(1, sha('1'));
    const body = app.berthComments(1)[0]!.body;
    expect(body).toContain('.github/berth.yml');
    expect(body).toContain('berth secrets set --repo acme/vaulted --env staging DB_PASSWORD');
    expect(app.check(sha('1'), 'berth / staging')!.conclusion).toBe('failure');
  });

  it('plans read keyed hashes only; /apply decrypts and the values reach the environment and /run/secrets', async () => {
    await setSecret(app, 'DB_PASSWORD', VALUES.first);
    await setSecret(app, 'API_TOKEN', VALUES.token);
    await app.say(1, '/plan staging');
    expect(app.check(sha('1'), 'berth / staging')!.conclusion).toBe('action_required');
    expect(opened()).toBe(0);

    await app.say(1, '/apply staging');
    await app.drain();
    expect((await app.ts.store.latestApply(REPO, 'staging'))!.state).toBe('completed');
    expect(opened()).toBeGreaterThan(0);
    const inspect = await docker.getContainer(cname('app')).inspect();
    expect(inspect.Config.Env).toContain(`DB_URL=postgres://shop:${VALUES.first}@db/shop`);
    expect(await execIn(cname('app'), 'cat /run/secrets/db_password')).toBe(VALUES.first);
    expect(await execIn(cname('worker'), 'cat /run/secrets/api_token')).toBe(VALUES.token);
    // What berth labels the container with (and reads back as observed state) is the placeholder, not the value.
    expect(inspect.Config.Labels![LABEL.config]).toMatch(/berth-secret\.DB_PASSWORD\.[0-9a-f]{32}/);
    expect(inspect.Config.Labels![LABEL.config]).not.toContain(VALUES.first);
  }, 120_000);

  it('a rotated value reads "secret DB_PASSWORD changed" in the plan and recreates exactly its users', async () => {
    const ids = async () => Object.fromEntries(await Promise.all(['app', 'worker', 'static'].map(async (s) => [s, (await docker.getContainer(cname(s)).inspect()).Id] as const)));
    const before = await ids();
    await setSecret(app, 'DB_PASSWORD', VALUES.second);
    const decrypted = opened();
    // /apply of the plan shown before the rotation: refused as out of date, re-planned, nothing decrypted or applied.
    await app.say(1, '/apply staging');
    await app.drain();
    expect(app.lastReply(1)).toContain('The plan is out of date');
    expect(app.lastReply(1)).toContain('secret DB_PASSWORD changed');
    expect(opened()).toBe(decrypted);
    expect(await ids()).toEqual(before);
    await app.say(1, '/plan staging');
    expect(opened()).toBe(decrypted);
    const plan = app.berthComments(1)[0]!.body;
    expect(plan).toContain('secret DB_PASSWORD changed');
    expect(plan).toMatch(/1 to change/);
    expect(app.check(sha('1'), 'berth / staging')!.conclusion).toBe('action_required');

    await app.say(1, '/apply staging');
    await app.drain();
    expect((await app.ts.store.latestApply(REPO, 'staging'))!.state).toBe('completed');
    const after = await ids();
    expect(after.app).not.toBe(before.app);
    expect(after.worker).toBe(before.worker);
    expect(after.static).toBe(before.static);
    expect((await docker.getContainer(cname('app')).inspect()).Config.Env).toContain(`DB_URL=postgres://shop:${VALUES.second}@db/shop`);
    expect(await execIn(cname('app'), 'cat /run/secrets/db_password')).toBe(VALUES.second);
  }, 120_000);

  it('no value in any GitHub request, any log line, or the database', async () => {
    expect(app.fake.violations).toEqual([]);
    const requests = JSON.stringify(app.fake.requests.map((r) => r.body));
    const logs = app.logs.join('\n');
    expect(logs.length).toBeGreaterThan(0);
    const db = await rawDatabaseText(app.ts.url);
    for (const v of Object.values(VALUES)) {
      expect(requests).not.toContain(v);
      expect(logs).not.toContain(v);
      expect(db).not.toContain(v);
    }
  });
});

describeDocker('a berth server without a secret key', () => {
  let app: App;
  beforeAll(async () => {
    const env = { ...process.env };
    delete env.BERTH_SECRET_KEY;
    delete env.BERTH_SECRET_KEY_FILE;
    app = await startApp({ repo: 'acme/keyless', project: 't-vault-keyless', env });
    app.fake.setFiles('acme/keyless', 'main', { '.github/berth.yml': CONFIG.replace(PROJECT, 't-vault-keyless'), 'compose.yml': COMPOSE });
    app.fake.setFiles('acme/keyless', sha('2'), { '.github/berth.yml': CONFIG.replace(PROJECT, 't-vault-keyless'), 'compose.yml': COMPOSE });
    app.fake.setPull('acme/keyless', 1, { headSha: sha('2'), author: 'alice', mergeable: true });
  }, 60_000);
  afterAll(async () => {
    await app?.close();
  });

  it('says so at start, and refuses an environment that lists secrets with the reason and what to configure', async () => {
    expect(app.logs.some((l) => l.includes('no secret key configured') && l.includes('BERTH_SECRET_KEY_FILE'))).toBe(true);
    await app.open(1, sha('2'));
    const body = app.berthComments(1)[0]!.body;
    expect(body).toContain('no secret key configured');
    expect(body).toContain('BERTH_SECRET_KEY_FILE');
    expect(app.check(sha('2'), 'berth / staging')!.conclusion).toBe('failure');
    await app.say(1, '/apply staging');
    await app.drain();
    expect(await app.ts.store.latestApply('acme/keyless', 'staging')).toBeUndefined();
    expect(await app.containers()).toEqual([]);
  });
});
