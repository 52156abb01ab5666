// The server's secret keys and the only code that encrypts or decrypts a
// secret value. AES-256-GCM (authenticated) from Node's crypto, a fresh 96-bit
// nonce per encryption, and the row's repository, environment and name as
// associated data, so a ciphertext copied to another row does not decrypt.
//
// Keys come from BERTH_SECRET_KEY_FILE (files of 32 random bytes, or their
// base64, comma-separated) or BERTH_SECRET_KEY (base64 keys, comma-separated);
// the first key is current (new values are encrypted under it), the others
// only decrypt, so a key can be rotated: add the new key first, run
// `berth secrets rotate-key`, then drop the old one. Each row records the id
// of its key (a hash of the key, never the key).
//
// Besides the ciphertext each row stores a keyed hash of the value
// (HMAC-SHA-256 under a key derived from the current server key): planning
// compares and shows that hash's effect ("secret changed") without ever
// decrypting. This file never logs or returns a key.
import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BerthError } from '../errors.js';

export const KEY_ENV = 'BERTH_SECRET_KEY';
export const KEY_FILE_ENV = 'BERTH_SECRET_KEY_FILE';
const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/** The secret store cannot be used: no key, a malformed key, a value that does not decrypt. */
export class SecretKeyError extends BerthError {}

interface Key {
  id: string;
  enc: Buffer;
  mac: Buffer;
}

/** One encrypted value as the store keeps it (base64 text, so every backend stores it alike). */
export interface Sealed {
  keyId: string;
  nonce: string;
  ciphertext: string;
}

/** Where the value belongs: bound into the ciphertext as associated data, and into the keyed hash. */
export interface SecretAddress {
  repo: string;
  environment: string;
  name: string;
}

const aad = (a: SecretAddress): Buffer => Buffer.from(JSON.stringify([a.repo, a.environment, a.name]), 'utf8');

function deriveKey(raw: Buffer): Key {
  return {
    id: createHash('sha256').update('berth secret key id\0').update(raw).digest('hex').slice(0, 16),
    enc: Buffer.from(hkdfSync('sha256', raw, Buffer.alloc(0), 'berth secrets: aes-256-gcm', KEY_BYTES)),
    mac: Buffer.from(hkdfSync('sha256', raw, Buffer.alloc(0), 'berth secrets: value hash', KEY_BYTES)),
  };
}

function decodeKey(text: string, where: string): Buffer {
  const t = text.trim();
  const b = /^[A-Za-z0-9+/_-]+={0,2}$/.test(t) ? Buffer.from(t, t.includes('-') || t.includes('_') ? 'base64url' : 'base64') : Buffer.alloc(0);
  if (b.length !== KEY_BYTES)
    throw new SecretKeyError('bad_secret_key', `${where} is not a ${KEY_BYTES}-byte key (base64 of 32 random bytes)`, {
      hint: `make one with: head -c 32 /dev/urandom > berth.key (for ${KEY_FILE_ENV}) or: head -c 32 /dev/urandom | base64 (for ${KEY_ENV})`,
    });
  return b;
}

export class Keyring {
  private constructor(private readonly keys: readonly Key[]) {}

  /** Keys as raw 32-byte buffers, current first. */
  static of(raw: readonly Buffer[]): Keyring {
    if (!raw.length) throw new SecretKeyError('no_secret_key', 'no secret key given');
    for (const k of raw) if (k.length !== KEY_BYTES) throw new SecretKeyError('bad_secret_key', `a secret key must be ${KEY_BYTES} bytes`);
    return new Keyring(raw.map(deriveKey));
  }

  /**
   * The keys the environment configures, or undefined when none is (secrets
   * are then refused where they are asked for). A key that is configured but
   * unreadable or malformed throws: a server must not start half-keyed.
   */
  static fromEnv(env: NodeJS.ProcessEnv = process.env): Keyring | undefined {
    const raw: Buffer[] = [];
    const files = (env[KEY_FILE_ENV] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    for (const [i, path] of files.entries()) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(path);
      } catch (e) {
        throw new SecretKeyError('bad_secret_key', `${KEY_FILE_ENV} (file ${i + 1}) cannot be read: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { hint: 'give the path of a file of 32 random bytes' });
      }
      raw.push(bytes.length === KEY_BYTES ? bytes : decodeKey(bytes.toString('utf8'), `${KEY_FILE_ENV} (file ${i + 1})`));
    }
    const inline = (env[KEY_ENV] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    for (const [i, text] of inline.entries()) raw.push(decodeKey(text, `${KEY_ENV} (key ${i + 1})`));
    return raw.length ? Keyring.of(raw) : undefined;
  }

  /** The id of the key new values are encrypted under. */
  get currentId(): string {
    return this.keys[0]!.id;
  }

  get ids(): string[] {
    return this.keys.map((k) => k.id);
  }

  has(keyId: string): boolean {
    return this.keys.some((k) => k.id === keyId);
  }

  seal(at: SecretAddress, value: string): Sealed {
    const key = this.keys[0]!;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key.enc, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(aad(at));
    const body = Buffer.concat([cipher.update(value, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return { keyId: key.id, nonce: nonce.toString('base64'), ciphertext: body.toString('base64') };
  }

  /** The value, or a SecretKeyError naming the row (never its content) when the key is unknown or the data does not authenticate. */
  open(at: SecretAddress, sealed: Sealed): string {
    const key = this.keys.find((k) => k.id === sealed.keyId);
    const where = `secret ${at.name} of ${at.repo} ${at.environment}`;
    if (!key)
      throw new SecretKeyError('unknown_secret_key', `${where} is encrypted under key ${sealed.keyId}, which this server does not have (its keys: ${this.ids.join(', ')})`, {
        hint: `configure that key too (${KEY_FILE_ENV} or ${KEY_ENV}, comma-separated, current key first), or set the secret again`,
      });
    const body = Buffer.from(sealed.ciphertext, 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.enc, Buffer.from(sealed.nonce, 'base64'), { authTagLength: TAG_BYTES });
      decipher.setAAD(aad(at));
      decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
      return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretKeyError('secret_undecryptable', `${where} does not decrypt: it was changed in the database, moved from another row, or encrypted under a different key with the same id`, {
        hint: 'set the secret again with berth secrets set',
      });
    }
  }

  /** The keyed hash planning uses in place of the value (hex). */
  hash(at: SecretAddress, value: string): string {
    return createHmac('sha256', this.keys[0]!.mac).update(aad(at)).update('\0').update(value, 'utf8').digest('hex');
  }
}

/** The message a server without a key gives wherever a secret is asked for. */
export const NO_KEY_HINT = `set ${KEY_FILE_ENV} to the path of a file of 32 random bytes (head -c 32 /dev/urandom > berth.key), or ${KEY_ENV} to their base64`;

export function noKeyError(): SecretKeyError {
  return new SecretKeyError('no_secret_key', 'this berth server has no secret key configured, so server-side secrets are refused (never stored in clear)', { hint: NO_KEY_HINT });
}
