// A server-side secret stands in a plan as `berth-secret.NAME.<keyed hash
// prefix>`. The README promises a plan never shows a secret's value nor its
// hash; but a secret interpolated into something that is not a service field
// — a network's or volume's `name:`, shown in the plan's step details — is
// not tainted as a field, and its placeholder went out whole. Every rendering
// and the outbound path mask any placeholder, wherever it comes from.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { renderPlanMarkdown, renderPlanText, planToJson } from '../../src/plan/render.js';
import { placeholder } from '../../src/secrets/placeholder.js';
import { outText } from '../../src/text/outbound.js';

const HASH = '0123456789abcdef0123456789abcdef';
const P = placeholder('DB_PASSWORD', HASH);
const compose = [
  'services:',
  '  web:',
  '    image: berth-test/app:1',
  '    networks: [n]',
  '    volumes: [v:/v]',
  'networks:',
  '  n:',
  '    name: "n-${DB_PASSWORD}"',
  'volumes:',
  '  v:',
  '    name: "v-${DB_PASSWORD}"',
  '',
].join('\n');

describe('no keyed hash of a secret leaves berth', () => {
  const desired = loadCompose([{ path: 'compose.yml', text: compose }], { project: 'p', environment: 'staging', variables: { DB_PASSWORD: P }, secretKeys: ['DB_PASSWORD'] });
  const plan = reconcile(desired, { project: 'p', environment: 'staging', containers: [], networks: [], volumes: [] });
  const opts = { environment: 'staging', secretKeys: ['DB_PASSWORD'] };

  it('the desired state does hold the placeholder (the test is about what is shown)', () => {
    expect(JSON.stringify(desired)).toContain(HASH);
  });
  it('plan Markdown, text and JSON', () => {
    for (const out of [renderPlanMarkdown(plan, opts), renderPlanText(plan, opts), JSON.stringify(planToJson(plan, opts))]) {
      expect(out).not.toContain(HASH);
      expect(out).not.toContain(HASH.slice(0, 8));
    }
  });
  it('the outbound path (comments, check runs, logs, CLI)', () => {
    expect(outText(`created network n-${P} and volume v-${P}`)).not.toContain(HASH.slice(0, 8));
  });
});
