// The masker redacts, besides a secret's values, the text of every field a
// secret fed, wherever it appears (so free text quoting the field stays
// masked). A PR author could abuse that: interpolate a secret into a field
// whose parser cleans the secret out again, leaving any text they like —
// `subpath: "ghcr.io/evil/miner:1/x${DB_PASSWORD}/.."` is `ghcr.io/evil/miner:1`
// — and that text was masked everywhere, so the plan hid the image another
// service deploys from the reviewer (red-team round of 2026-12-06). A field's
// text is now remembered only while it still carries some of a secret —
// judged against the secrets alone, never against text remembered before, and
// a piece of a secret only when it is most of the text (red-team round 5).
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { secretVariableValues } from '../../src/plan/mask.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { planToJson, renderPlanMarkdown, renderPlanText } from '../../src/plan/render.js';
import { emptyObserved } from '../helpers/simulate.js';

const SECRET = 'h0rse-battery-st4ple';

/** The plan of `compose` on an empty host as text, Markdown and JSON. */
function outputs(compose: string, variables: Record<string, string> = { DB_PASSWORD: SECRET }, secretKeys: string[] = []): string[] {
  const opts = { secretKeys, secretValues: secretVariableValues(variables, secretKeys) };
  const desired = loadCompose([{ path: 'compose.yml', text: compose }], { project: 'shop', environment: 'staging', variables, secretKeys });
  const plan = reconcile(desired, emptyObserved('shop', 'staging'));
  return [renderPlanText(plan, opts), renderPlanMarkdown(plan, { environment: 'staging', target: 'local', ...opts }), JSON.stringify(planToJson(plan, opts))];
}

describe('a field a secret fed hides nothing but the secret', () => {
  it('a subpath that normalises the secret away does not mask the image another service deploys', () => {
    const compose = [
      'services:',
      '  web:',
      '    image: ghcr.io/evil/miner:1',
      '  decoy:',
      '    image: nginx',
      '    volumes:',
      '      - {type: volume, source: data, target: /d, volume: {subpath: "ghcr.io/evil/miner:1/x${DB_PASSWORD}/.."}}',
      'volumes:',
      '  data: {}',
      '',
    ].join('\n');
    for (const out of outputs(compose)) {
      expect(out).toContain('ghcr.io/evil/miner:1');
      expect(out).not.toContain(SECRET);
    }
  });

  it('a field that still carries the secret, split or respelled, stays masked, and so does free text quoting it', () => {
    // the command's words are the secret's pieces (split at its spaces by the command's parser)
    const compose = 'services:\n  web:\n    image: nginx\n    command: "serve ${DB_PASSWORD}"\n    mac_address: "${MAC}"\n';
    for (const out of outputs(compose, { DB_PASSWORD: 'h0rse battery st4ple', MAC: '02-42-AC-11-7E-5D' }, ['MAC']))
      for (const hidden of ['h0rse', 'battery', 'st4ple', '02:42:ac:11:7e:5d', '02-42-AC']) expect(out, hidden).not.toContain(hidden);
  });

  it('(red-team round 5) a command argument next to the secret does not mask the image another service deploys', () => {
    const compose = [
      'services:',
      '  web:',
      '    image: ghcr.io/evil/miner:1',
      '  decoy:',
      '    image: nginx',
      '    command: ["ghcr.io/evil/miner:1", "${DB_PASSWORD}"]',
      '',
    ].join('\n');
    const [text, md, json] = outputs(compose);
    for (const out of [text!, md!, json!]) {
      expect(out).not.toContain(SECRET);
      expect(out).toContain('ghcr.io/evil/miner:1');
    }
    // the reviewer must see what web deploys, in its diff and its pull step
    expect(md).toMatch(/\+ image: ghcr\.io\/evil\/miner:1/);
    expect(md).toMatch(/image:ghcr\.io\/evil\/miner:1, EnsureImage/);
  });

  it('(red-team round 5) a subpath cleaned of the secret does not mask an image holding a guessable piece of it (the port of a database URL)', () => {
    const variables = { DB_PASSWORD: 'postgres://app:Tr0ub4dor@db:5432/app' };
    const compose = [
      'services:',
      '  web:',
      '    image: ghcr.io/evil/miner:5432',
      '  decoy:',
      '    image: nginx',
      '    volumes:',
      '      - {type: volume, source: data, target: /d, volume: {subpath: "ghcr.io/evil/miner:5432/x${DB_PASSWORD}/../../.."}}',
      'volumes:',
      '  data: {}',
      '',
    ].join('\n');
    const md = outputs(compose, variables)[1]!;
    expect(md).not.toContain('Tr0ub4dor');
    expect(md).toMatch(/\+ image: ghcr\.io\/evil\/miner:5432/);
    // nor the volume's own key ("data"), which nothing secret fed
    expect(md).toMatch(/volume <code>data<\/code>/);
  });
  it('(red-team round 6) a command argument spelling a secret\'s piece does not hide the image another service deploys (a secret by name whose value the PR author knows)', () => {
    // TOKEN_URL is secret by its name; its value is no secret to anyone who can read the docs
    const variables = { TOKEN_URL: 'https://auth.example.com' };
    const compose = [
      'services:',
      '  web:',
      '    image: auth.example.com/miner:1',
      '  decoy:',
      '    image: nginx',
      '    command: ["auth.example.com/miner:1", "${TOKEN_URL}"]',
      '',
    ].join('\n');
    const [text, md, json] = outputs(compose, variables) as [string, string, string];
    // the reviewer must see what web deploys: its diff line and its pull step
    expect(md).toMatch(/\+ image: auth\.example\.com\/miner:1/);
    for (const out of [text, json]) expect(out).toContain('auth.example.com/miner:1');
  });
});
