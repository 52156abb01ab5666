// Server-side secrets (issue 18) without a database or an engine: the keyring
// (keys from the environment, authenticated encryption bound to the row),
// placeholders, berth.yml `secrets:`, loading an environment whose secrets
// come from the store (the desired state holds placeholders, never values; a
// missing secret is located and names the command), and the plan reason a
// rotated value gives ("secret DB_PASSWORD changed", only for its users).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { parseConfig } from '../src/config/config.js';
import { ConfigError } from '../src/errors.js';
import { planToString } from '../src/plan/plan.js';
import { reconcile } from '../src/plan/reconcile.js';
import { renderPlanMarkdown, renderPlanText } from '../src/plan/render.js';
import { loadEnvironment, type FileReader } from '../src/config/load-environment.js';
import { Keyring, SecretKeyError } from '../src/secrets/keyring.js';
import { jsonMayHoldPlaceholders, placeholder, placeholdersIn, revealIn, withoutHashes } from '../src/secrets/placeholder.js';
import type { SecretHashes } from '../src/secrets/vault.js';
import { emptyObserved, simulate } from './helpers/simulate.js';

const at = { repo: 'acme/shop', environment: 'staging', name: 'DB_PASSWORD' };

describe('keyring', () => {
  it('seals with AES-256-GCM bound to the row: opens only for the same repository, environment and name', () => {
    const k = Keyring.of([randomBytes(32)]);
    const sealed = k.seal(at, 'hunter2-value');
    expect(sealed.keyId).toBe(k.currentId);
    expect(Buffer.from(sealed.ciphertext, 'base64').toString('latin1')).not.toContain('hunter2');
    expect(k.open(at, sealed)).toBe('hunter2-value');
    // a fresh nonce every time
    expect(k.seal(at, 'hunter2-value').ciphertext).not.toBe(sealed.ciphertext);
    for (const other of [{ ...at, repo: 'acme/other' }, { ...at, environment: 'production' }, { ...at, name: 'API_TOKEN' }])
      expect(() => k.open(other, sealed)).toThrow(/does not decrypt/);
    expect(() => Keyring.of([randomBytes(32)]).open(at, sealed)).toThrow(/encrypted under key [0-9a-f]{16}, which this server does not have/);
  });

  it('keyed hashes: same value same hash, per row, and depending on the key', () => {
    const raw = randomBytes(32);
    const k = Keyring.of([raw]);
    expect(k.hash(at, 'v1')).toBe(Keyring.of([raw]).hash(at, 'v1'));
    expect(k.hash(at, 'v1')).not.toBe(k.hash(at, 'v2'));
    expect(k.hash(at, 'v1')).not.toBe(k.hash({ ...at, environment: 'production' }, 'v1'));
    expect(k.hash(at, 'v1')).not.toBe(Keyring.of([randomBytes(32)]).hash(at, 'v1'));
  });

  it('keys from BERTH_SECRET_KEY_FILE (raw or base64) and BERTH_SECRET_KEY (comma-separated base64), current first', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-keys-'));
    try {
      const [a, b, c] = [randomBytes(32), randomBytes(32), randomBytes(32)];
      writeFileSync(join(dir, 'a.key'), a);
      writeFileSync(join(dir, 'b.key'), `${b.toString('base64')}\n`);
      const k = Keyring.fromEnv({ BERTH_SECRET_KEY_FILE: `${join(dir, 'a.key')}, ${join(dir, 'b.key')}`, BERTH_SECRET_KEY: c.toString('base64') })!;
      expect(k.ids).toEqual([Keyring.of([a]).currentId, Keyring.of([b]).currentId, Keyring.of([c]).currentId]);
      const sealedUnderC = Keyring.of([c]).seal(at, 'x-value');
      expect(k.open(at, sealedUnderC)).toBe('x-value');
      expect(Keyring.fromEnv({})).toBeUndefined();
      expect(() => Keyring.fromEnv({ BERTH_SECRET_KEY: 'c2hvcnQ=' })).toThrow(/BERTH_SECRET_KEY \(key 1\) is not a 32-byte key/);
      expect(() => Keyring.fromEnv({ BERTH_SECRET_KEY_FILE: join(dir, 'missing.key') })).toThrow(SecretKeyError);
      writeFileSync(join(dir, 'short.key'), randomBytes(16));
      expect(() => Keyring.fromEnv({ BERTH_SECRET_KEY_FILE: join(dir, 'short.key') })).toThrow(/BERTH_SECRET_KEY_FILE \(file 1\) is not a 32-byte key/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('placeholders', () => {
  it('are found, revealed and compared without their hashes, anywhere in a structure', () => {
    const p = placeholder('DB_PASSWORD', 'ab'.repeat(32));
    expect(p).toBe(`berth-secret.DB_PASSWORD.${'ab'.repeat(16)}`);
    const spec = { environment: { URL: `postgres://u:${p}@db/x`, [p]: 'k' }, command: ['run', p] };
    expect(placeholdersIn(spec)).toEqual(new Map([['DB_PASSWORD', 'ab'.repeat(16)]]));
    expect(revealIn(spec, new Map([['DB_PASSWORD', 's3cr3t']]))).toEqual({ environment: { URL: 'postgres://u:s3cr3t@db/x', s3cr3t: 'k' }, command: ['run', 's3cr3t'] });
    expect(revealIn(spec, new Map())).toEqual(spec);
    const rotated = { ...spec, command: ['run', placeholder('DB_PASSWORD', 'cd'.repeat(32))] };
    expect(rotated).not.toEqual(spec);
    expect(withoutHashes(rotated)).toEqual(withoutHashes(spec));
  });

  it('a payload text without `berth-secret.` and without \\u escapes holds none; one that spells it through an escape may', () => {
    const p = placeholder('DB_PASSWORD', 'ab'.repeat(32));
    expect(jsonMayHoldPlaceholders(JSON.stringify({ services: [{ environment: { A: 'plain' } }] }))).toBe(false);
    expect(jsonMayHoldPlaceholders(JSON.stringify({ services: [{ environment: { A: p } }] }))).toBe(true);
    expect(jsonMayHoldPlaceholders(JSON.stringify({ [p]: 1 }))).toBe(true);
    // The same placeholder written with an escape: not found by the text test, so the text says "may" and the payload is searched.
    const escaped = JSON.stringify({ a: p }).replace('berth-secret', '\\u0062erth-secret');
    expect(JSON.parse(escaped)).toEqual({ a: p });
    expect(jsonMayHoldPlaceholders(escaped)).toBe(true);
    expect(placeholdersIn(JSON.parse(escaped))).toEqual(new Map([['DB_PASSWORD', 'ab'.repeat(16)]]));
  });
});

describe('berth.yml secrets:', () => {
  const cfg = (env: string) => `project: shop\nenvironments:\n  - name: staging\n${env}`;
  it('lists names; a name that is also a variable, listed twice or not a name is refused at its line', () => {
    expect(parseConfig(cfg('    secrets: [DB_PASSWORD, API_TOKEN]\n')).environments[0]!.secrets).toEqual(['DB_PASSWORD', 'API_TOKEN']);
    const e = (() => {
      try {
        parseConfig(cfg('    variables: { DB_PASSWORD: x }\n    secrets:\n      - DB_PASSWORD\n      - API_TOKEN\n      - API_TOKEN\n      - 9bad\n'));
      } catch (err) {
        return err as ConfigError;
      }
    })()!;
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.issues.join('\n')).toContain('.github/berth.yml:6: environments[0].secrets[0]: "DB_PASSWORD" is both a server-side secret and a variable');
    expect(e.issues.join('\n')).toContain('.github/berth.yml:8: environments[0].secrets[2]: secret "API_TOKEN" is listed twice');
    expect(e.issues.join('\n')).toContain('.github/berth.yml:9: environments[0].secrets[3]: must be a secret name');
  });
});

// ── loading an environment whose secrets live in the store ─────────────────

const VALUES: Record<string, string> = { DB_PASSWORD: 'db-VALUE-one-7f3a', API_TOKEN: 'api-VALUE-tok-91bc' };
const keyring = Keyring.of([randomBytes(32)]);
const REPO = 'acme/shop';
/** The store's hashes as planning reads them (no decryption): a fake of SecretVault.hashes. */
const hashesOf = (values: Record<string, string>): SecretHashes => ({
  hashes: async (repo, environment, names) => new Map(names.filter((n) => n in values).map((n) => [n, keyring.hash({ repo, environment, name: n }, values[n]!)])),
});

const CONFIG = `project: shop
environments:
  - name: staging
    compose: [compose.yml]
    secrets:
      - DB_PASSWORD
      - API_TOKEN
`;
const COMPOSE = `services:
  app:
    image: berth-test/app:1
    environment:
      DB_URL: postgres://shop:\${DB_PASSWORD}@db/shop
  worker:
    image: berth-test/app:1
    secrets: [api_token]
  static:
    image: berth-test/app:1
secrets:
  api_token:
    environment: API_TOKEN
`;
const reader = (files: Record<string, string> = {}): FileReader => {
  const all: Record<string, string> = { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE, ...files };
  return async (p) => all[p];
};

describe('loading an environment with server-side secrets', () => {
  it('the desired state holds placeholders carrying keyed hashes, never the values; what they feed is tainted', async () => {
    const { desired } = await loadEnvironment(reader(), 'staging', undefined, { repo: REPO, source: hashesOf(VALUES) });
    const json = JSON.stringify(desired);
    for (const v of Object.values(VALUES)) expect(json).not.toContain(v);
    const app = desired.services.find((s) => s.spec.name === 'app')!;
    expect(app.spec.environment.DB_URL).toMatch(/^postgres:\/\/shop:berth-secret\.DB_PASSWORD\.[0-9a-f]{32}@db\/shop$/);
    expect(desired.secretFields?.app).toEqual(['environment.DB_URL']);
    expect(desired.contents?.['secret:api_token']).toMatch(/^berth-secret\.API_TOKEN\.[0-9a-f]{32}$/);
  });

  it('a missing secret is a located error naming the command that sets it; no key configured is refused with the reason', async () => {
    const e = await loadEnvironment(reader(), 'staging', undefined, { repo: REPO, source: hashesOf({ DB_PASSWORD: 'x-value' }) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).message).toBe(
      '.github/berth.yml:7: environments[0].secrets[1]: secret API_TOKEN of environment staging is not set on the berth server — set it with: berth secrets set --repo acme/shop --env staging API_TOKEN (the value is read from stdin)',
    );
    const none = await loadEnvironment(reader(), 'staging', undefined, { repo: REPO }).catch((x: unknown) => x);
    expect(none).toMatchObject({ code: 'no_secret_key', file: '.github/berth.yml', line: 6 });
    expect((none as Error).message).toContain('BERTH_SECRET_KEY_FILE');
  });

  it('a placeholder written by hand (to reach a secret the environment does not list) is refused at its line', async () => {
    const e = await loadEnvironment(reader({ 'compose.yml': COMPOSE.replace('  static:\n    image: berth-test/app:1\n', '  static:\n    image: berth-test/app:1\n    command: ["echo", "berth-secret.ADMIN_TOKEN.0123"]\n') }), 'staging', undefined, { repo: REPO, source: hashesOf(VALUES) }).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'reserved_text', file: 'compose.yml', line: 11 });
    const env = await loadEnvironment(reader({ 'compose.yml': COMPOSE.replace('  static:\n    image: berth-test/app:1', '  static:\n    image: berth-test/app:1\n    env_file: x.env'), 'x.env': 'A=1\nB=berth-secret.X.1\n' }), 'staging', undefined, { repo: REPO, source: hashesOf(VALUES) }).catch((x: unknown) => x);
    expect(env).toMatchObject({ code: 'reserved_text', file: 'x.env', line: 2 });
    // a config file read from the repository (its content is revealed into the container like a secret's)
    const cfg = await loadEnvironment(reader({ 'compose.yml': COMPOSE.replace('  static:\n    image: berth-test/app:1', '  static:\n    image: berth-test/app:1\n    configs: [motd]').concat('configs:\n  motd:\n    file: ./motd.txt\n'), 'motd.txt': 'hello\nberth-secret.API_TOKEN.00\n' }), 'staging', undefined, { repo: REPO, source: hashesOf(VALUES) }).catch((x: unknown) => x);
    expect(cfg).toMatchObject({ code: 'reserved_text', file: 'motd.txt', line: 2 });
  });

  it('a rotated value changes the config of exactly its users, reads "secret … changed" and shows no value nor hash', async () => {
    const before = (await loadEnvironment(reader(), 'staging', undefined, { repo: REPO, source: hashesOf(VALUES) })).desired;
    const deployed = simulate(reconcile(before, emptyObserved('shop', 'staging')), emptyObserved('shop', 'staging'));
    expect(reconcile(before, deployed).nodes).toEqual([]);
    for (const [name, service, reason] of [
      ['DB_PASSWORD', 'app', 'secret DB_PASSWORD changed'],
      ['API_TOKEN', 'worker', 'secret api_token changed'],
    ] as const) {
      const rotatedValues = { ...VALUES, [name]: `${VALUES[name]}-rotated` };
      const after = (await loadEnvironment(reader(), 'staging', undefined, { repo: REPO, source: hashesOf(rotatedValues) })).desired;
      const plan = reconcile(after, deployed);
      const text = planToString(plan);
      expect(text).toContain(`service:${service}:1, CreateContainer, ${reason}`);
      for (const other of ['app', 'worker', 'static'].filter((s) => s !== service)) expect(text).not.toContain(`service:${other}:`);
      const shown = [text, renderPlanText(plan), renderPlanMarkdown(plan, { environment: 'staging' })].join('\n');
      for (const v of [...Object.values(VALUES), ...Object.values(rotatedValues)]) expect(shown).not.toContain(v);
      expect(shown).not.toMatch(/berth-secret\.[A-Z_]+\.[0-9a-f]{32}/);
    }
  });
});

describe('unset variables next to secret ones', () => {
  it('an unset one is "" and warned about, a set secret one stays tainted and masked', async () => {
    const config = 'project: shop\nenvironments:\n  - name: staging\n    compose: [compose.yml]\n    targets: [local]\n    variables:\n      API_KEY: k3y-s3cret-value\n      PLAIN: visible\n';
    const compose = 'services:\n  app:\n    image: berth-test/app:1\n    environment:\n      TOKEN: ${API_KEY}\n      URL: https://${PLAIN}/${API_KEY}/${UNSET_PART}\n      DB_PASSWORD: ${MISSING_PASSWORD}\n';
    const files: Record<string, string> = { '.github/berth.yml': config, 'compose.yml': compose };
    const { desired, environment } = await loadEnvironment(async (p) => files[p], 'staging');
    const app = desired.services.find((x) => x.spec.name === 'app')!;
    expect(app.spec.environment).toEqual({ TOKEN: 'k3y-s3cret-value', URL: 'https://visible/k3y-s3cret-value/', DB_PASSWORD: '' });
    expect(desired.secretFields?.app?.sort()).toEqual(['environment.TOKEN', 'environment.URL']);
    expect(desired.unsetVariables).toEqual([{ file: 'compose.yml', names: ['UNSET_PART', 'MISSING_PASSWORD'] }]);
    const plan = reconcile(desired, emptyObserved(desired.project, desired.environment));
    const md = renderPlanMarkdown(plan, { environment: 'staging', unsetVariables: desired.unsetVariables!, secretKeys: environment.secret_keys, secretValues: [environment.variables.API_KEY!] });
    expect(md).toContain('<code>UNSET&#95;PART</code>, <code>MISSING&#95;PASSWORD</code>');
    expect(md).not.toContain('k3y-s3cret-value');
    expect(renderPlanText(plan, { secretKeys: environment.secret_keys, secretValues: [environment.variables.API_KEY!] })).not.toContain('k3y-s3cret-value');
  });
});

describe('berth secrets usage', () => {
  it('is printed as written: nothing in it reads to the masker as a secret', async () => {
    const out: string[] = [];
    const io = { out: (x: string) => void out.push(x), err: (x: string) => void out.push(x), stdin: async () => undefined };
    expect(await main(['secrets'], io)).toBe(1);
    expect(await main(['help'], io)).toBe(0);
    expect(await main(['secrets', 'bogus'], io)).toBe(1);
    const text = out.join('\n');
    expect(text).toContain('berth: secrets needs a command (rotate-key, set, unset, list or import)');
    expect(text).toContain('usage:');
    expect(text).toContain('berth secrets rotate-key --database URL --all');
    expect(text).not.toContain('••••••');
  });
});
