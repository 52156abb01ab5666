// The secret store's domain: setting, listing, removing and re-encrypting
// secrets of a (repository, environment), and the two ways berth reads them.
//
// - `hashes` is what planning uses: the keyed hash stored with each row, read
//   without decrypting anything (a fork PR's plan or `/plan` never decrypts).
// - `reveal` is what an apply uses: it decrypts, checks each value is the one
//   the plan was made with, and teaches the outbound masker the value at once,
//   so no channel can carry it from the moment it is read.
//
// Rows hold ciphertext only (keyring.ts); nothing here logs or returns a value
// except `reveal`, to the executor.
import { OUT } from '../text/outbound.js';
import type { SecretInfo, SecretRow, Store } from '../store/store.js';
import { Keyring, noKeyError, SecretKeyError, type SecretAddress } from './keyring.js';

export const SECRET_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const REPO_RE = /^[\w.-]+\/[\w.-]+$/;
const ENV_RE = /^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$/;

/** A secret's hash prefix as the plan saw it does not match the stored value any more. */
export class SecretChangedError extends SecretKeyError {}

/** Reads the keyed hashes of an environment's secrets (what planning needs); a missing name is absent from the map. */
export interface SecretHashes {
  hashes(repo: string, environment: string, names: readonly string[]): Promise<Map<string, string>>;
}

/** Decrypts the named secrets for an apply. */
export interface SecretRevealer {
  reveal(repo: string, environment: string, expected: ReadonlyMap<string, string>): Promise<Map<string, string>>;
}

export function checkAddress(a: SecretAddress): void {
  if (!REPO_RE.test(a.repo)) throw new SecretKeyError('invalid_value', `repository must be OWNER/NAME, not "${a.repo}"`);
  if (!ENV_RE.test(a.environment)) throw new SecretKeyError('invalid_value', `environment must be an environment name of berth.yml (a lowercase slug), not "${a.environment}"`);
  if (!SECRET_NAME_RE.test(a.name)) throw new SecretKeyError('invalid_value', `secret name must be a variable name (letters, digits and "_", not starting with a digit), not "${a.name}"`);
}

export class SecretVault implements SecretHashes, SecretRevealer {
  /** `keyring` undefined: a server without a key; every use of a secret is refused with a clear message. */
  constructor(
    private readonly store: Store,
    private readonly keyring: Keyring | undefined,
    private readonly now: () => number = Date.now,
  ) {}

  get configured(): boolean {
    return this.keyring !== undefined;
  }

  private keys(): Keyring {
    if (!this.keyring) throw noKeyError();
    return this.keyring;
  }

  async set(at: SecretAddress, value: string, actor: string): Promise<void> {
    checkAddress(at);
    const keys = this.keys();
    if (value.length === 0) throw new SecretKeyError('invalid_value', `secret ${at.name}: the value is empty`, { hint: 'pipe the value on stdin' });
    OUT.taint(value);
    const sealed = keys.seal(at, value);
    await this.store.putSecret({ ...at, ...sealed, valueHash: keys.hash(at, value), setBy: actor, setAt: this.now() });
  }

  async unset(at: SecretAddress): Promise<boolean> {
    checkAddress(at);
    return this.store.deleteSecret(at.repo, at.environment, at.name);
  }

  list(repo?: string, environment?: string): Promise<SecretInfo[]> {
    return this.store.listSecrets(repo, environment);
  }

  /**
   * Re-encrypts every row not under the current key (or all, with `all`).
   * Each row is decrypted and sealed again; its keyed hash is kept (the value
   * did not change, so no container is recreated). Rows set meanwhile are left
   * as they are (compare-and-set on the ciphertext).
   */
  async rotate(opts: { all?: boolean } = {}): Promise<{ rotated: number; unchanged: number; failed: SecretKeyError[] }> {
    const keys = this.keys();
    let rotated = 0;
    let unchanged = 0;
    const failed: SecretKeyError[] = [];
    for (const row of await this.store.allSecrets()) {
      if (row.keyId === keys.currentId && !opts.all) {
        unchanged++;
        continue;
      }
      const at = { repo: row.repo, environment: row.environment, name: row.name };
      let value: string;
      try {
        value = keys.open(at, row);
      } catch (e) {
        // A row no configured key opens stays as it is (and is reported): the others are still rotated.
        if (!(e instanceof SecretKeyError)) throw e;
        failed.push(e);
        continue;
      }
      OUT.taint(value);
      const next: SecretRow = { ...row, ...keys.seal(at, value) };
      if (await this.store.putSecret(next, row.ciphertext)) rotated++;
      else unchanged++;
    }
    return { rotated, unchanged, failed };
  }

  async hashes(repo: string, environment: string, names: readonly string[]): Promise<Map<string, string>> {
    this.keys();
    const rows = await this.store.getSecrets(repo, environment, names);
    return new Map(rows.map((r) => [r.name, r.valueHash]));
  }

  /**
   * The values of the named secrets. `expected`: name → the hash prefix the
   * plan carried; a secret that is gone or changed since refuses the apply
   * (plan again), so an apply runs exactly the planned values.
   */
  async reveal(repo: string, environment: string, expected: ReadonlyMap<string, string>): Promise<Map<string, string>> {
    const keys = this.keys();
    const rows = new Map((await this.store.getSecrets(repo, environment, [...expected.keys()])).map((r) => [r.name, r]));
    const out = new Map<string, string>();
    for (const [name, prefix] of expected) {
      const row = rows.get(name);
      const set = `berth secrets set --repo ${repo} --env ${environment} ${name}`;
      if (!row) throw new SecretChangedError('missing_secret', `secret ${name} of ${repo} ${environment} was removed after the plan was made`, { hint: `set it (${set}) and plan again` });
      if (!row.valueHash.startsWith(prefix)) throw new SecretChangedError('secret_changed', `secret ${name} of ${repo} ${environment} changed after the plan was made`, { hint: 'plan again: the new plan shows which containers the new value recreates' });
      const value = keys.open({ repo, environment, name }, row);
      // Tainted from the moment it exists in this process: every channel masks it.
      OUT.taint(value);
      out.set(name, value);
    }
    return out;
  }
}
