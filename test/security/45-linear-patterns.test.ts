// Red-team round 8, H3 and H4: patterns tried on text a PR writes must cost one
// pass over it. The masker's `--flag value` and `scheme://user:pass@` patterns
// could start at every character of a long run (`--a--a--a…`, `aaaa…://`) and
// scan the rest of the run from each one; YAML's go-style integer tag
// (`1_000`) had two overlapping runs of `[0-9_]`. A 90 KB value held the event
// loop for 9 s, a 1 MiB compose file for minutes, per environment and push.
// Each input below would take well over a minute with those patterns; the
// tests' own time limit is the bound (a linear pass takes milliseconds).
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { Masker, MASK } from '../../src/plan/mask.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { renderPlanMarkdown } from '../../src/plan/render.js';
import { emptyObserved } from '../helpers/simulate.js';

const load = (text: string) => loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'e', variables: {} });

describe('patterns over PR-written text are linear', () => {
  it('a 300 KB environment value of flags run together renders, and its secret flags are still masked', () => {
    const d = load(`services:\n  web:\n    image: nginx:1\n    environment:\n      X: '${'--a'.repeat(100_000)} "'\n      Y: 'run --password hunter2 --user bob'\n`);
    const md = renderPlanMarkdown(reconcile(d, emptyObserved('p', 'e')), { environment: 'e', target: 'local' });
    expect(md).toContain('2 to create');
    expect(md).toContain('--password ••••••');
    expect(md).not.toContain('hunter2');
  }, 30_000);

  it('a 400 KB run of letters before :// through the outbound masker, and a URL password still masked', () => {
    const m = new Masker();
    expect(m.text(`${'a'.repeat(400_000)}://`)).toHaveLength(400_003);
    expect(m.text('postgres://app:hunter2@db/x and xpostgres://a:b@c')).toBe(`postgres://app:${MASK}@db/x and xpostgres://a:${MASK}@c`);
  }, 30_000);

  it('a 600 KB plain scalar of underscores is a string, and go-style integers still read as go-yaml reads them', () => {
    const d = load(`services:\n  web:\n    image: nginx:1\n    labels:\n      run: 1${'_'.repeat(600_000)}x\n    ulimits:\n      nofile: 1_024\n      nproc: 0b1_0\n`);
    expect(d.services[0]!.spec.labels!.run).toHaveLength(600_002);
    expect(d.services[0]!.spec.ulimits).toEqual({ nofile: { soft: 1024, hard: 1024 }, nproc: { soft: 2, hard: 2 } });
  }, 30_000);
});
