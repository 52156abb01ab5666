// `berth secrets set|unset|list|import|rotate-key`: managing the server-side
// secret store (issue 18) through the same database the app uses, so every
// replica sees the same secrets. A value is read from stdin or a dotenv file,
// never from an argument (arguments land in shell history and `ps`), and
// nothing this prints contains one: `list` shows names, who and when.
import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { DotenvError, parseDotenv } from '../compose/dotenv.js';
import { openStore } from '../store/open.js';
import { Keyring, SecretKeyError } from './keyring.js';
import { SecretVault } from './vault.js';

export const SECRETS_USAGE = `  berth secrets set    --repo OWNER/NAME --env NAME KEY [--actor WHO] [--database URL]
                       the value is read from stdin (never from an argument), e.g.
                       berth secrets set --repo acme/shop --env production DB_PASSWORD < password.txt
  berth secrets unset  --repo OWNER/NAME --env NAME KEY [--database URL]
  berth secrets list   [--repo OWNER/NAME] [--env NAME] [--database URL]   names, who set them and when; never values
  berth secrets import --repo OWNER/NAME --env NAME FILE [--actor WHO] [--database URL]   every line of a dotenv file
  berth secrets rotate-key --database URL --all
                       -- re-encrypts every secret under the current key (the first one of BERTH_SECRET_KEY_FILE
                       or BERTH_SECRET_KEY); --all: every row, not only those under an older key (both optional)`;

export interface SecretsIo {
  out: (s: string) => void;
  /** the whole of stdin; undefined when stdin is a terminal (a typed value would echo) */
  stdin: () => Promise<string | undefined>;
}

/** A usage problem: the caller prints it with the usage text. */
export class SecretsUsageError extends Error {}

const VALUE_IN_ARGUMENT = 'a secret value is read from stdin only, never from an argument (arguments are kept in shell history and shown by ps)';

/**
 * The secret's name as given. `NAME=value` (as `export` and `heroku config:set` take it) is a value in an
 * argument: refused without quoting it, since the invalid-name error quotes the name and the masker cannot know
 * a value it never stored (it hides only what looks secret: DB_PASSWORD=…, not STRIPE_SK=… nor SLACK_WEBHOOK=…).
 */
function nameArgument(name: string | undefined): string | undefined {
  if (name?.includes('=')) throw new SecretsUsageError(`${VALUE_IN_ARGUMENT}: name the secret alone (KEY, not KEY=value) and pipe its value`);
  return name;
}

const who = (actor: string | undefined): string => actor || process.env.USER || process.env.LOGNAME || safeUser();
function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}

function need(v: Record<string, unknown>, name: string): string {
  const x = v[name];
  if (typeof x !== 'string' || !x) throw new SecretsUsageError(`--${name} is required`);
  return x;
}

/** One trailing newline is the shell's (`echo x |`, a file's last line), not the value's. */
const chompOne = (s: string) => s.replace(/\r?\n$/, '');

async function withVault<T>(database: string | undefined, fn: (vault: SecretVault) => Promise<T>): Promise<T> {
  // The key is checked before the database is opened: without one nothing is read or written.
  const keyring = Keyring.fromEnv();
  const store = await openStore(database);
  try {
    return await fn(new SecretVault(store, keyring));
  } finally {
    await store.close();
  }
}

export async function cmdSecrets(args: string[], io: SecretsIo): Promise<number> {
  const [sub, ...rest] = args;
  const common = { repo: { type: 'string' }, env: { type: 'string' }, database: { type: 'string' }, actor: { type: 'string' } } as const;
  switch (sub) {
    case 'set': {
      if (rest.some((a) => /^--value(=|$)/.test(a))) throw new SecretsUsageError(VALUE_IN_ARGUMENT);
      const { values, positionals } = parseArgs({ args: rest, options: common, allowPositionals: true });
      if (positionals.length > 1) throw new SecretsUsageError(VALUE_IN_ARGUMENT);
      const name = nameArgument(positionals[0]);
      if (!name) throw new SecretsUsageError('name the secret: berth secrets set --repo OWNER/NAME --env NAME KEY');
      const at = { repo: need(values, 'repo'), environment: need(values, 'env'), name };
      return withVault(values.database, async (vault) => {
        if (!vault.configured) throw new SecretKeyError('no_secret_key', 'no secret key configured: refusing to store a secret (it would be in clear)', { hint: 'set BERTH_SECRET_KEY_FILE or BERTH_SECRET_KEY' });
        const raw = await io.stdin();
        if (raw === undefined) throw new SecretsUsageError('pipe the value on stdin (berth secrets set … KEY < file); it is not read from a terminal, where it would echo');
        await vault.set(at, chompOne(raw), who(values.actor));
        io.out(`secret ${name} set for ${at.repo} ${at.environment}`);
        return 0;
      });
    }
    case 'unset': {
      const { values, positionals } = parseArgs({ args: rest, options: common, allowPositionals: true });
      const name = nameArgument(positionals[0]);
      if (!name || positionals.length > 1) throw new SecretsUsageError('name one secret: berth secrets unset --repo OWNER/NAME --env NAME KEY');
      const at = { repo: need(values, 'repo'), environment: need(values, 'env'), name };
      return withVault(values.database, async (vault) => {
        const gone = await vault.unset(at);
        io.out(gone ? `secret ${name} removed from ${at.repo} ${at.environment}` : `secret ${name} is not set for ${at.repo} ${at.environment}`);
        return gone ? 0 : 1;
      });
    }
    case 'list': {
      const { values } = parseArgs({ args: rest, options: common });
      return withVault(values.database, async (vault) => {
        const rows = await vault.list(values.repo, values.env);
        if (!rows.length) {
          io.out('No secrets.');
          return 0;
        }
        const table = [['REPOSITORY', 'ENVIRONMENT', 'NAME', 'SET BY', 'SET AT', 'KEY'], ...rows.map((r) => [r.repo, r.environment, r.name, r.setBy, new Date(r.setAt).toISOString(), r.keyId])];
        const widths = table[0]!.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
        io.out(table.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n'));
        return 0;
      });
    }
    case 'import': {
      const { values, positionals } = parseArgs({ args: rest, options: common, allowPositionals: true });
      const file = positionals[0];
      if (!file || positionals.length > 1) throw new SecretsUsageError('name one dotenv file: berth secrets import --repo OWNER/NAME --env NAME FILE');
      const repo = need(values, 'repo');
      const environment = need(values, 'env');
      const text = await readFile(file, 'utf8');
      let parsed;
      try {
        parsed = parseDotenv(text);
      } catch (e) {
        // The line, never its text: it holds a value.
        if (e instanceof DotenvError) throw new SecretKeyError(e.code, `${file}:${e.line}: not an assignment berth can read`, { hint: 'dotenv syntax as docker compose reads it: one assignment per line, quotes optional' });
        throw e;
      }
      if (!parsed.size) throw new SecretsUsageError(`${file} has no assignments`);
      return withVault(values.database, async (vault) => {
        if (!vault.configured) throw new SecretKeyError('no_secret_key', 'no secret key configured: refusing to store secrets (they would be in clear)', { hint: 'set BERTH_SECRET_KEY_FILE or BERTH_SECRET_KEY' });
        const actor = who(values.actor);
        for (const [name, v] of parsed) await vault.set({ repo, environment, name }, v.value, actor);
        io.out(`imported ${parsed.size} secret(s) for ${repo} ${environment}: ${[...parsed.keys()].join(', ')}`);
        return 0;
      });
    }
    case 'rotate-key': {
      const { values } = parseArgs({ args: rest, options: { database: { type: 'string' }, all: { type: 'boolean', default: false } } });
      return withVault(values.database, async (vault) => {
        const r = await vault.rotate({ all: values.all! });
        io.out(`re-encrypted ${r.rotated} secret(s) under the current key; ${r.unchanged} already were`);
        for (const e of r.failed) io.out(`not re-encrypted: ${e.message}`);
        return r.failed.length ? 1 : 0;
      });
    }
    default:
      throw new SecretsUsageError(sub ? `unknown secrets command "${sub}"` : 'secrets needs a command (rotate-key, set, unset, list or import)');
  }
}
