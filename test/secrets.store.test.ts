// The server-side secret store (issue 18) on every database backend
// (STORE_BACKENDS): the rows round-trip; `set`, `import` and `rotate-key`
// leave no value in the database (the SQLite files' bytes, every MariaDB row);
// a missing or wrong key refuses with a clear message and decrypts nothing; a
// ciphertext moved to another row does not decrypt; the CLI reads values from
// stdin only and lists names, never values.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { main, type Io } from '../src/cli/main.js';
import { Keyring, SecretKeyError } from '../src/secrets/keyring.js';
import { SecretVault } from '../src/secrets/vault.js';
import type { SecretRow } from '../src/store/store.js';
import { describeMysql, describePostgres } from './helpers/env.js';
import { rawDatabaseText, STORE_BACKENDS, type TestStore } from './helpers/stores.js';

const key = () => randomBytes(32);
const b64 = (b: Buffer) => b.toString('base64');
/** Values that must never be found in the database: distinctive, and longer than the masker's minimum. */
const VALUE = `pw-${randomBytes(6).toString('hex')}-VALUE`;
const OTHER = `tok-${randomBytes(6).toString('hex')}-OTHER`;
const IMPORTED = `imp-${randomBytes(6).toString('hex')}-DOTENV`;

function cliIo(stdin?: string) {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (s) => void out.push(s), err: (s) => void err.push(s), stdin: async () => stdin };
  return { io, out, err, text: () => [...out, ...err].join('\n') };
}

/** Runs the CLI with these secret keys in the environment (as an operator's shell would have them). */
async function withKeys<T>(keys: Buffer[] | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = { k: process.env.BERTH_SECRET_KEY, f: process.env.BERTH_SECRET_KEY_FILE };
  delete process.env.BERTH_SECRET_KEY_FILE;
  if (keys) process.env.BERTH_SECRET_KEY = keys.map(b64).join(',');
  else delete process.env.BERTH_SECRET_KEY;
  try {
    return await fn();
  } finally {
    if (saved.k === undefined) delete process.env.BERTH_SECRET_KEY;
    else process.env.BERTH_SECRET_KEY = saved.k;
    if (saved.f !== undefined) process.env.BERTH_SECRET_KEY_FILE = saved.f;
  }
}

function suite(backend: (typeof STORE_BACKENDS)[number]): void {
  let ts: TestStore;
  const oldKey = key();
  const newKey = key();
  beforeAll(async () => {
    ts = await backend.open();
  });
  afterAll(async () => {
    await ts?.dispose();
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('rows round-trip: put (insert, replace, compare-and-set), get many, list without values, delete, all', async () => {
    const s = ts.store;
    const row = (name: string, over: Partial<SecretRow> = {}): SecretRow => ({
      repo: 'acme/rt',
      environment: 'staging',
      name,
      keyId: 'k1',
      nonce: 'bm9uY2U=',
      ciphertext: `c-${name}`,
      valueHash: `h-${name}`,
      setBy: 'alice',
      setAt: 1_700_000_000_000,
      ...over,
    });
    expect(await s.putSecret(row('A'))).toBe(true);
    expect(await s.putSecret(row('B'))).toBe(true);
    expect(await s.putSecret(row('A', { environment: 'production', ciphertext: 'c-prod' }))).toBe(true);
    expect((await s.getSecrets('acme/rt', 'staging', ['A', 'B', 'NONE'])).sort((x, y) => (x.name < y.name ? -1 : 1))).toEqual([row('A'), row('B')]);
    expect(await s.getSecrets('acme/rt', 'staging', [])).toEqual([]);
    // replace
    expect(await s.putSecret(row('A', { ciphertext: 'c-A2', valueHash: 'h-A2', setBy: 'bob', setAt: 1_700_000_000_001 }))).toBe(true);
    expect((await s.getSecrets('acme/rt', 'staging', ['A']))[0]).toEqual(row('A', { ciphertext: 'c-A2', valueHash: 'h-A2', setBy: 'bob', setAt: 1_700_000_000_001 }));
    // compare-and-set on the ciphertext: a stale expectation writes nothing
    expect(await s.putSecret(row('A', { ciphertext: 'c-A3' }), 'c-A')).toBe(false);
    expect(await s.putSecret(row('A', { ciphertext: 'c-A3', keyId: 'k2' }), 'c-A2')).toBe(true);
    expect((await s.getSecrets('acme/rt', 'staging', ['A']))[0]).toMatchObject({ ciphertext: 'c-A3', keyId: 'k2' });
    expect(await s.putSecret(row('Z'), 'anything')).toBe(false);
    expect(await s.getSecrets('acme/rt', 'staging', ['Z'])).toEqual([]);
    // list: metadata only
    const listed = await s.listSecrets('acme/rt');
    expect(listed.map((r) => `${r.environment}/${r.name}`)).toEqual(['production/A', 'staging/A', 'staging/B']);
    for (const r of listed) expect(Object.keys(r).sort()).toEqual(['environment', 'keyId', 'name', 'repo', 'setAt', 'setBy', 'valueHash']);
    expect((await s.listSecrets('acme/rt', 'production')).map((r) => r.name)).toEqual(['A']);
    expect((await s.allSecrets()).filter((r) => r.repo === 'acme/rt')).toHaveLength(3);
    expect(await s.deleteSecret('acme/rt', 'staging', 'B')).toBe(true);
    expect(await s.deleteSecret('acme/rt', 'staging', 'B')).toBe(false);
    expect((await s.listSecrets('acme/rt', 'staging')).map((r) => r.name)).toEqual(['A']);
    // (rows of made-up ciphertext would stand in the way of the rotations below)
    for (const r of await s.listSecrets('acme/rt')) await s.deleteSecret(r.repo, r.environment, r.name);
    expect(await s.listSecrets('acme/rt')).toEqual([]);
  });

  it('set, plan-time hashes and apply-time reveal; the database never holds the value, before or after rotate-key', async () => {
    const at = { repo: 'acme/vault', environment: 'staging', name: 'DB_PASSWORD' };
    const v1 = new SecretVault(ts.store, Keyring.of([oldKey]));
    await v1.set(at, VALUE, 'alice');
    await v1.set({ ...at, name: 'API_TOKEN' }, OTHER, 'alice');
    let raw = await rawDatabaseText(ts.url);
    expect(raw).toContain('DB_PASSWORD');
    expect(raw).not.toContain(VALUE);
    expect(raw).not.toContain(OTHER);

    // Planning reads hashes and decrypts nothing.
    const open = vi.spyOn(Keyring.prototype, 'open');
    const hashes = await v1.hashes(at.repo, at.environment, ['DB_PASSWORD', 'API_TOKEN', 'UNSET']);
    expect([...hashes.keys()].sort()).toEqual(['API_TOKEN', 'DB_PASSWORD']);
    expect(open).not.toHaveBeenCalled();
    const revealed = await v1.reveal(at.repo, at.environment, new Map([['DB_PASSWORD', hashes.get('DB_PASSWORD')!.slice(0, 32)]]));
    expect(revealed.get('DB_PASSWORD')).toBe(VALUE);
    expect(open).toHaveBeenCalledTimes(1);

    // A value set again to the same thing keeps its hash (nothing to recreate); another value changes it.
    await v1.set(at, VALUE, 'bob');
    expect((await v1.hashes(at.repo, at.environment, ['DB_PASSWORD'])).get('DB_PASSWORD')).toBe(hashes.get('DB_PASSWORD'));

    // rotate-key: the new key first, the old one still accepted; every row re-encrypted, hashes kept.
    const v2 = new SecretVault(ts.store, Keyring.of([newKey, oldKey]));
    const before = (await ts.store.getSecrets(at.repo, at.environment, ['DB_PASSWORD']))[0]!;
    const r = await v2.rotate();
    expect(r.rotated).toBeGreaterThanOrEqual(2);
    const after = (await ts.store.getSecrets(at.repo, at.environment, ['DB_PASSWORD']))[0]!;
    expect(after.keyId).toBe(Keyring.of([newKey]).currentId);
    expect(after.keyId).not.toBe(before.keyId);
    expect(after.ciphertext).not.toBe(before.ciphertext);
    expect(after.valueHash).toBe(before.valueHash);
    expect((await v2.rotate()).rotated).toBe(0);
    raw = await rawDatabaseText(ts.url);
    expect(raw).not.toContain(VALUE);
    expect(raw).not.toContain(OTHER);
    // Only the new key now: it decrypts; only the old key: refused, naming the key it lacks.
    const onlyNew = new SecretVault(ts.store, Keyring.of([newKey]));
    expect((await onlyNew.reveal(at.repo, at.environment, new Map([['DB_PASSWORD', '']]))).get('DB_PASSWORD')).toBe(VALUE);
    const onlyOld = new SecretVault(ts.store, Keyring.of([oldKey]));
    const e = await onlyOld.reveal(at.repo, at.environment, new Map([['DB_PASSWORD', '']])).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SecretKeyError);
    expect((e as SecretKeyError).code).toBe('unknown_secret_key');
    expect((e as SecretKeyError).message).toContain(after.keyId);
    expect((e as SecretKeyError).message).not.toContain(VALUE);
  });

  it('a wrong key, no key, a changed value or a row moved elsewhere: a clear error, nothing decrypted', async () => {
    const at = { repo: 'acme/wrong', environment: 'staging', name: 'DB_PASSWORD' };
    const good = new SecretVault(ts.store, Keyring.of([oldKey]));
    await good.set(at, VALUE, 'alice');
    await good.set({ ...at, name: 'OTHER' }, OTHER, 'alice');
    const [row] = await ts.store.getSecrets(at.repo, at.environment, ['DB_PASSWORD']);

    const wrong = new SecretVault(ts.store, Keyring.of([key()]));
    await expect(wrong.reveal(at.repo, at.environment, new Map([['DB_PASSWORD', '']]))).rejects.toMatchObject({ code: 'unknown_secret_key' });

    const none = new SecretVault(ts.store, undefined);
    await expect(none.set({ ...at, name: 'NEW' }, VALUE, 'alice')).rejects.toMatchObject({ code: 'no_secret_key' });
    await expect(none.reveal(at.repo, at.environment, new Map([['DB_PASSWORD', '']]))).rejects.toMatchObject({ code: 'no_secret_key' });
    await expect(none.hashes(at.repo, at.environment, ['DB_PASSWORD'])).rejects.toMatchObject({ code: 'no_secret_key' });
    expect(await ts.store.getSecrets(at.repo, at.environment, ['NEW'])).toEqual([]);

    // The plan saw another value (hash prefix) than the one stored now: the apply refuses.
    await expect(good.reveal(at.repo, at.environment, new Map([['DB_PASSWORD', '0'.repeat(32)]]))).rejects.toMatchObject({ code: 'secret_changed' });
    await expect(good.reveal(at.repo, at.environment, new Map([['GONE', '']]))).rejects.toMatchObject({ code: 'missing_secret' });

    // The ciphertext of DB_PASSWORD copied into OTHER's row (same key): the associated data refuses it.
    await ts.store.putSecret({ ...row!, name: 'OTHER' });
    const moved = await good.reveal(at.repo, at.environment, new Map([['OTHER', row!.valueHash.slice(0, 32)]])).catch((x: unknown) => x);
    expect(moved).toMatchObject({ code: 'secret_undecryptable' });
    expect(String((moved as Error).message)).not.toContain(VALUE);
    // A flipped byte: refused too.
    const body = Buffer.from(row!.ciphertext, 'base64');
    body[0] = body[0]! ^ 1;
    await ts.store.putSecret({ ...row!, ciphertext: body.toString('base64') });
    await expect(good.reveal(at.repo, at.environment, new Map([['DB_PASSWORD', '']]))).rejects.toMatchObject({ code: 'secret_undecryptable' });
    // rotate-key leaves such rows as they are and names them; it never writes what it could not read.
    const rows = await ts.store.getSecrets(at.repo, at.environment, ['DB_PASSWORD', 'OTHER']);
    const r = await new SecretVault(ts.store, Keyring.of([newKey, oldKey])).rotate();
    expect(r.failed.map((e) => `${e.code}: ${e.message.split(' does not')[0]}`).filter((m) => m.includes('acme/wrong')).sort()).toEqual([
      'secret_undecryptable: secret DB_PASSWORD of acme/wrong staging',
      'secret_undecryptable: secret OTHER of acme/wrong staging',
    ]);
    expect(await ts.store.getSecrets(at.repo, at.environment, ['DB_PASSWORD', 'OTHER'])).toEqual(rows);
    for (const n of ['DB_PASSWORD', 'OTHER']) await ts.store.deleteSecret(at.repo, at.environment, n);
  });

  it('CLI: set reads stdin only, list shows names, who and when but no value, import reads a dotenv file, rotate-key re-encrypts', async () => {
    const db = ['--database', ts.url];
    const repo = ['--repo', 'acme/cli', '--env', 'production'];
    await withKeys([oldKey], async () => {
      // A value argument is refused, whatever its form; nothing is stored.
      let r = cliIo(VALUE);
      expect(await main(['secrets', 'set', ...repo, 'DB_PASSWORD', VALUE, ...db], r.io)).toBe(1);
      expect(r.text()).toContain('stdin only');
      r = cliIo(VALUE);
      expect(await main(['secrets', 'set', ...repo, `--value=${VALUE}`, 'DB_PASSWORD', ...db], r.io)).toBe(1);
      expect(r.text()).toContain('stdin only');
      expect(await ts.store.getSecrets('acme/cli', 'production', ['DB_PASSWORD'])).toEqual([]);
      // A terminal on stdin is refused (the value would echo).
      r = cliIo(undefined);
      expect(await main(['secrets', 'set', ...repo, 'DB_PASSWORD', ...db], r.io)).toBe(1);
      expect(r.text()).toContain('pipe the value on stdin');

      r = cliIo(`${VALUE}\n`);
      expect(await main(['secrets', 'set', ...repo, 'DB_PASSWORD', '--actor', 'ops-oncall', ...db], r.io)).toBe(0);
      expect(r.text()).toBe('secret DB_PASSWORD set for acme/cli production');
      const dir = mkdtempSync(join(tmpdir(), 'berth-dotenv-'));
      try {
        writeFileSync(join(dir, 'prod.env'), `# production\nAPI_TOKEN=${IMPORTED}\nexport SMTP_PASSWORD="${OTHER}"\n`);
        r = cliIo();
        expect(await main(['secrets', 'import', ...repo, join(dir, 'prod.env'), ...db], r.io)).toBe(0);
        expect(r.text()).toBe('imported 2 secret(s) for acme/cli production: API_TOKEN, SMTP_PASSWORD');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      const revealed = await new SecretVault(ts.store, Keyring.of([oldKey])).reveal('acme/cli', 'production', new Map([['DB_PASSWORD', ''], ['API_TOKEN', ''], ['SMTP_PASSWORD', '']]));
      expect(Object.fromEntries(revealed)).toEqual({ DB_PASSWORD: VALUE, API_TOKEN: IMPORTED, SMTP_PASSWORD: OTHER });

      r = cliIo();
      expect(await main(['secrets', 'list', '--repo', 'acme/cli', ...db], r.io)).toBe(0);
      const listed = r.text();
      expect(listed).toMatch(/acme\/cli\s+production\s+API_TOKEN\s+\S+\s+\d{4}-\d\d-\d\dT/);
      expect(listed).toMatch(/acme\/cli\s+production\s+DB_PASSWORD\s+ops-oncall\s+\d{4}-/);
      expect(listed).toContain('SMTP_PASSWORD');
      for (const v of [VALUE, IMPORTED, OTHER]) expect(listed).not.toContain(v);
    });
    let raw = await rawDatabaseText(ts.url);
    for (const v of [VALUE, IMPORTED, OTHER]) expect(raw).not.toContain(v);

    // rotate-key: the operator puts the new key first and keeps the old one until it has run.
    await withKeys([newKey, oldKey], async () => {
      const r = cliIo();
      expect(await main(['secrets', 'rotate-key', ...db], r.io)).toBe(0);
      expect(r.text()).toMatch(/^re-encrypted [1-9]\d* secret\(s\) under the current key; \d+ already were$/);
    });
    for (const row of (await ts.store.allSecrets()).filter((x) => x.repo === 'acme/cli')) expect(row.keyId).toBe(Keyring.of([newKey]).currentId);
    raw = await rawDatabaseText(ts.url);
    for (const v of [VALUE, IMPORTED, OTHER]) expect(raw).not.toContain(v);

    // Without a key, set refuses before anything is written; unset needs no key.
    await withKeys(undefined, async () => {
      let r = cliIo(VALUE);
      expect(await main(['secrets', 'set', ...repo, 'NEW_ONE', ...db], r.io)).toBe(1);
      expect(r.text()).toContain('no secret key configured');
      r = cliIo();
      expect(await main(['secrets', 'unset', ...repo, 'SMTP_PASSWORD', ...db], r.io)).toBe(0);
      expect(r.text()).toBe('secret SMTP_PASSWORD removed from acme/cli production');
    });
    expect(await ts.store.getSecrets('acme/cli', 'production', ['NEW_ONE', 'SMTP_PASSWORD'])).toEqual([]);
    // A malformed key stops the command with the variable's name.
    process.env.BERTH_SECRET_KEY = 'too-short';
    try {
      const r = cliIo(VALUE);
      expect(await main(['secrets', 'set', ...repo, 'X', ...db], r.io)).toBe(1);
      expect(r.text()).toContain('BERTH_SECRET_KEY (key 1) is not a 32-byte key');
    } finally {
      delete process.env.BERTH_SECRET_KEY;
    }
  });
}

for (const backend of STORE_BACKENDS) ({ sqlite: describe, mysql: describeMysql, postgres: describePostgres }[backend.dialect])(`secret store on ${backend.name}`, () => suite(backend));
