// A config may take its content from a variable of the environment
// (`configs: {c: {environment: DB_PASSWORD}}`). A secret's digest is never
// shown (a short value is guessed from its sha256 offline), but a config's was:
// the plan's JSON (`berth plan --format json`) carried the full sha256 of the
// secret variable's value under the service's files. Every rendering shows
// file digests masked, whatever kind of file.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { planToJson, renderPlanMarkdown, renderPlanText } from '../../src/plan/render.js';

const SECRET = 'hunter22';
const compose = ['services:', '  web:', '    image: berth-test/app:1', '    configs: [c]', 'configs:', '  c:', '    environment: DB_PASSWORD', ''].join('\n');

describe("a config read from a secret variable does not show the secret's digest", () => {
  const desired = loadCompose([{ path: 'compose.yml', text: compose }], { project: 'p', environment: 'staging', variables: { DB_PASSWORD: SECRET } });
  const digest = createHash('sha256').update(SECRET).digest('hex');

  it('the desired state does hold the digest (the test is about what is shown)', () => {
    expect(JSON.stringify(desired.services[0]!.spec.files)).toContain(digest);
  });

  it('plan Markdown, text and JSON', () => {
    const opts = { environment: 'staging', secretValues: [SECRET] };
    const created = reconcile(desired, { project: 'p', environment: 'staging', containers: [], networks: [], volumes: [] });
    for (const out of [renderPlanMarkdown(created, opts), renderPlanText(created, opts), JSON.stringify(planToJson(created, opts))]) {
      expect(out).not.toContain(digest.slice(0, 12));
      expect(out).not.toContain(SECRET);
    }
  });
});
