// Round 16: `berth secrets set` reads a value from stdin only and refuses one
// given as an argument ("arguments are kept in shell history and shown by
// ps"), but the commonest way to write one there — `NAME=value`, as
// `heroku config:set` and `export` take it — was read as the secret's name and
// refused with the name quoted: `secret name must be a variable name …, not
// "STRIPE_SK=<the value>"`, the value printed on the terminal and into
// whatever keeps the operator's output (CI logs, a pasted transcript). The
// masker cannot know it (it was never stored) and hides only what looks
// secret by its name or form (DB_PASSWORD=…, not STRIPE_SK=… or SLACK_WEBHOOK=…).
// A name with `=` is refused as a value in an argument, without quoting it.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, type Io } from '../../src/cli/main.js';
import { sqliteTestStore, type TestStore } from '../helpers/stores.js';

/** A value the masker has no reason to hide by its look or its name's (a Stripe key, a Slack webhook's path). */
const VALUE = `sk_live_${randomBytes(8).toString('hex')}`;

function cliIo(stdin?: string) {
  const out: string[] = [];
  const io: Io = { out: (s) => void out.push(s), err: (s) => void out.push(s), stdin: async () => stdin };
  return { io, text: () => out.join('\n') };
}

describe('security 66: a secret value written as NAME=value in the command line is never printed', () => {
  let ts: TestStore;
  const saved = process.env.BERTH_SECRET_KEY;
  beforeAll(async () => {
    ts = await sqliteTestStore();
    process.env.BERTH_SECRET_KEY = randomBytes(32).toString('base64');
  });
  afterAll(async () => {
    if (saved === undefined) delete process.env.BERTH_SECRET_KEY;
    else process.env.BERTH_SECRET_KEY = saved;
    await ts?.dispose();
  });

  const at = ['--repo', 'acme/cli', '--env', 'production'];
  for (const [sub, name, stdin] of [
    ['set', `STRIPE_SK=${VALUE}`, 'x'],
    ['set', `STRIPE_SK="${VALUE}"`, 'x'],
    ['set', `SLACK_WEBHOOK=https://hooks.slack.com/services/T0/B0/${VALUE}`, 'x'],
    ['unset', `STRIPE_SK=${VALUE}`, undefined],
  ] as const) {
    it(`secrets ${sub} ${JSON.stringify(name.replace(VALUE, '<value>'))}: refused without the value`, async () => {
      const r = cliIo(stdin);
      expect(await main(['secrets', sub, ...at, name, '--database', ts.url], r.io)).toBe(1);
      expect(r.text()).not.toContain(VALUE);
      expect(r.text()).not.toContain(VALUE.slice(0, 12));
      expect(r.text()).toContain('stdin only');
      expect(await ts.store.listSecrets('acme/cli')).toEqual([]);
    });
  }
});
