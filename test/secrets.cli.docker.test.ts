// Server-side secrets through the CLI on every database backend
// (STORE_BACKENDS) and the real engine: `berth secrets set` (stdin) → `berth
// plan` (hashes only, the value never printed) → `berth apply` (the value in
// the container) → `berth secrets rotate-key`. After each step the whole
// database — the SQLite files' bytes, every MariaDB row, applies and their
// stored desired states included — is searched for the value. The executor
// applies only planned values: one changed after the plan, or a missing key,
// fails the apply before any Docker call.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prepareApply } from '../src/apply/prepare-apply.js';
import { main, type Io } from '../src/cli/main.js';
import { DockerEngine } from '../src/docker/docker-engine.js';
import { Executor } from '../src/apply/executor.js';
import { Lanes } from '../src/apply/lanes.js';
import { loadEnvironment, readFromDir } from '../src/config/load-environment.js';
import { Keyring } from '../src/secrets/keyring.js';
import { SecretVault } from '../src/secrets/vault.js';
import { docker, removeProject } from './helpers/docker.js';
import { realObserver } from './helpers/real-apply.js';
import { describeDocker, describeMysql, describePostgres } from './helpers/env.js';
import { rawDatabaseText, STORE_BACKENDS, type TestStore } from './helpers/stores.js';

const OLD_KEY = randomBytes(32).toString('base64');
const NEW_KEY = randomBytes(32).toString('base64');

function io(stdin?: string) {
  const lines: string[] = [];
  const x: Io = { out: (s) => void lines.push(s), err: (s) => void lines.push(s), stdin: async () => stdin };
  return { io: x, text: () => lines.join('\n') };
}

async function withKey<T>(keys: string, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.BERTH_SECRET_KEY;
  process.env.BERTH_SECRET_KEY = keys;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.BERTH_SECRET_KEY;
    else process.env.BERTH_SECRET_KEY = saved;
  }
}

function suite(backend: (typeof STORE_BACKENDS)[number]): void {
  const project = `t-vault-cli-${backend.dialect}`;
  const value = `cli-db-pass-${randomBytes(5).toString('hex')}`;
  let ts: TestStore;
  let dir: string;

  beforeAll(async () => {
    await removeProject(project);
    ts = await backend.open();
    dir = mkdtempSync(join(tmpdir(), 'berth-vault-cli-'));
    mkdirSync(join(dir, '.github'));
    writeFileSync(join(dir, '.github/berth.yml'), `project: ${project}\nenvironments:\n  - name: staging\n    compose: [compose.yml]\n    secrets: [DB_PASSWORD]\n`);
    writeFileSync(join(dir, 'compose.yml'), 'services:\n  app:\n    image: berth-test/app:1\n    environment:\n      DB_PASSWORD: ${DB_PASSWORD}\n');
  });
  afterAll(async () => {
    await removeProject(project);
    await ts?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('set, plan, apply, rotate-key: the value reaches the container and is never in the database or the output', async () => {
    const db = ['--database', ts.url];
    const plan = ['plan', '--repo', dir, '--env', 'staging', '--docker', 'unix:///var/run/docker.sock', ...db];
    await withKey(OLD_KEY, async () => {
      // Unset: the plan fails at the secrets: line and names the command.
      let r = io();
      expect(await main(plan, r.io)).toBe(1);
      expect(r.text()).toContain(`.github/berth.yml:5: environments[0].secrets[0]: secret DB_PASSWORD of environment staging is not set on the berth server — set it with: berth secrets set --repo local/${project} --env staging DB_PASSWORD`);

      r = io(value);
      expect(await main(['secrets', 'set', '--repo', `local/${project}`, '--env', 'staging', 'DB_PASSWORD', ...db], r.io)).toBe(0);
      expect(await rawDatabaseText(ts.url)).not.toContain(value);

      r = io();
      expect(await main(plan, r.io)).toBe(2);
      expect(r.text()).toContain('service:app:1, CreateContainer');
      expect(r.text()).not.toContain(value);

      r = io();
      expect(await main(['apply', '--repo', dir, '--env', 'staging', '--yes', '--docker', 'unix:///var/run/docker.sock', ...db], r.io)).toBe(0);
      expect(r.text()).not.toContain(value);
      expect((await docker.getContainer(`${project}-staging-app-1`).inspect()).Config.Env).toContain(`DB_PASSWORD=${value}`);
      expect(await rawDatabaseText(ts.url)).not.toContain(value);
      // Planned again: nothing to do (the label holds the placeholder the plan compares with).
      r = io();
      expect(await main(plan, r.io)).toBe(0);
    });

    await withKey(`${NEW_KEY},${OLD_KEY}`, async () => {
      const r = io();
      expect(await main(['secrets', 'rotate-key', ...db], r.io)).toBe(0);
      expect(r.text()).toBe('re-encrypted 1 secret(s) under the current key; 0 already were');
      // The value did not change: nothing to recreate.
      const p = io();
      expect(await main(plan, p.io)).toBe(0);
    });
    const [row] = await ts.store.getSecrets(`local/${project}`, 'staging', ['DB_PASSWORD']);
    expect(row!.keyId).toBe(Keyring.of([Buffer.from(NEW_KEY, 'base64')]).currentId);
    expect(await rawDatabaseText(ts.url)).not.toContain(value);
  }, 120_000);

  it('the executor applies only the planned values: a value changed after the plan, or no key, fails the apply before any Docker call', async () => {
    const keyring = Keyring.of([Buffer.from(NEW_KEY, 'base64')]);
    const vault = new SecretVault(ts.store, keyring);
    const at = { repo: `local/${project}`, environment: 'staging', name: 'DB_PASSWORD' };
    const planned = `${value}-planned`;
    const later = `${value}-later`;
    await vault.set(at, planned, 'test');
    const { desired } = await loadEnvironment(readFromDir(dir), 'staging', undefined, { repo: at.repo, source: vault });
    const before = (await docker.getContainer(`${project}-staging-app-1`).inspect()).Id;
    const run = async (executor: Executor) => {
      const { applyId } = await prepareApply(ts.store, realObserver, { repo: at.repo, pr: null, environment: 'staging', kind: 'apply', actor: 'test', headSha: null, desired, targets: ['local'], onFailure: 'halt' });
      const state = await executor.run(applyId);
      return { state, errors: (await ts.store.listTasksForApply(applyId)).map((t) => t.error ?? '').join('\n') };
    };
    const executorWith = (secrets?: SecretVault) => new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 100, ...(secrets ? { secrets } : {}) });

    await vault.set(at, later, 'test');
    const changed = await run(executorWith(vault));
    expect(changed.state).toBe('failed');
    expect(changed.errors).toContain('secret DB_PASSWORD of local/' + project + ' staging changed after the plan was made');
    const keyless = await run(executorWith(undefined));
    expect(keyless.state).toBe('failed');
    expect(keyless.errors).toContain('no secret key configured');
    // Nothing was touched: the container still runs the value of the last successful apply.
    const c = await docker.getContainer(`${project}-staging-app-1`).inspect();
    expect(c.Id).toBe(before);
    expect(c.Config.Env).toContain(`DB_PASSWORD=${value}`);
    const raw = await rawDatabaseText(ts.url);
    for (const v of [planned, later]) expect(raw).not.toContain(v);
  }, 120_000);
}

describeDocker('server-side secrets through the CLI on the real engine', () => {
  for (const backend of STORE_BACKENDS) ({ sqlite: describe, mysql: describeMysql, postgres: describePostgres }[backend.dialect])(`on ${backend.name}`, () => suite(backend));
});
