// A field a secret variable fed is shown as a mask as a whole (test 3) — but the
// masker knew only the original service fields (image, command, ports, …). The
// keys berth added since (tmpfs, hostname, extra_hosts, sysctls, logging, …,
// compose/service-keys.ts EXTRA_KEYS) were masked in the plan's diff lines by
// their label, yet went into `berth plan --format json` (before/after specs) as
// parsed, with only the whole secret searched for: `tmpfs: ["/t${DB_PASSWORD}"]`
// with a password holding `:` is split into a path and mount options, and
// neither part is the secret. Every tainted field the spec carries is masked
// now, whichever key set it. Marker method of test 3.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { EXTRA_KEYS } from '../../src/compose/service-keys.js';
import { secretVariableValues } from '../../src/plan/mask.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { planToJson, renderPlanMarkdown, renderPlanText } from '../../src/plan/render.js';
import { emptyObserved } from '../helpers/simulate.js';

const MARKERS = [...'秘密鍵錠'];
/** A marker at every third position; `:`, `=` and `,` where parsers split. */
const SECRET = '秘a:密c=鍵e,錠';

function outputs(service: string[], variables: Record<string, string>): string[] {
  const text = ['services:', '  web:', '    image: registry.example/web:1', ...service.map((l) => `    ${l}`), ''].join('\n');
  const plan = reconcile(loadCompose([{ path: 'compose.yml', text }], { project: 'shop', environment: 'staging', variables }), emptyObserved('shop', 'staging'));
  const opts = { secretValues: secretVariableValues(variables) };
  return [renderPlanText(plan, opts), renderPlanMarkdown(plan, { environment: 'staging', target: 'local', ...opts }), JSON.stringify(planToJson(plan, opts))];
}

const leaks = (out: string[]) => out.filter((o) => MARKERS.some((m) => o.includes(m))).map((o) => o.slice(0, 300));

describe('a tainted field set by any compose key is masked in every plan format', () => {
  it('tmpfs: a secret split at ":" into path and options', () => {
    // The check is real: without the taint (a variable that is not secret), the JSON shows the parts.
    expect(leaks(outputs(['tmpfs: ["/t${ORDINARY}"]'], { ORDINARY: SECRET })).length).toBeGreaterThan(0);
    expect(leaks(outputs(['tmpfs: ["/t${DB_PASSWORD}"]'], { DB_PASSWORD: SECRET }))).toEqual([]);
  });

  it('the same for every key berth added: each tainted one is a mask in the JSON specs', () => {
    // A value each key accepts with the secret in it; the secret has no ":" here, so parsing keeps it whole,
    // and what is checked is that the field itself is the mask, not only the secret searched for.
    const plain = 'abc秘xyz';
    const FORMS: Record<string, string> = { tmpfs: 'tmpfs: ["/t${DB_PASSWORD}"]', hostname: 'hostname: "h${DB_PASSWORD}"', extra_hosts: 'extra_hosts: ["h${DB_PASSWORD}.example:10.0.0.1"]', dns_search: 'dns_search: ["${DB_PASSWORD}.example"]', logging: 'logging: {driver: json-file, options: {tag: "${DB_PASSWORD}"}}' };
    for (const [key, line] of Object.entries(FORMS)) {
      const [, , json] = outputs([line], { DB_PASSWORD: plain.replace('秘', 'q') });
      const after = JSON.parse(json!).changes.find((c: { name: string }) => c.name === 'web').after;
      expect(after[EXTRA_KEYS[key]!.field], key).toBe('••••••');
    }
  });
});
