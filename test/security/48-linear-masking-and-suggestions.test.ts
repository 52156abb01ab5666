// Red-team round 10: two things a PR writes cost the square of their length.
// (1) The masker found every occurrence of each learnt text, overlapping ones
// too (security 46), by trying every text again from each position: a value a
// PR writes under a secret-looking key (`X_PASSWORD: aaaa…`, learnt) shown
// beside a longer run of it took 8 s for a 150 KB file. Texts are now found
// together in one pass (src/text/needles.ts), overlapping ones still masked as
// a union. (2) The did-you-mean of a bound file not committed compared the
// PR's file name, of any length, with 256 names of the directory (11 s for a
// 50 KB name); a name further in length than a suggestion may be is skipped.
// The inputs below took seconds to minutes; the tests' own time limit is the
// bound (a linear pass takes milliseconds).
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { Masker, MASK } from '../../src/plan/mask.js';
import { reconcile } from '../../src/plan/reconcile.js';
import { renderPlanMarkdown } from '../../src/plan/render.js';
import { Needles, replaceSpans } from '../../src/text/needles.js';
import { closest } from '../../src/text/suggest.js';
import { emptyObserved } from '../helpers/simulate.js';

describe('masking is one pass, whatever the learnt texts and the text masked', () => {
  it('a 100 KB learnt value over a 600 KB run of it, and a 4 KB one over 1 MB: one mask each', () => {
    const long = new Masker();
    long.value('X_PASSWORD', 'a'.repeat(100_000));
    expect(long.redact('a'.repeat(600_000))).toBe(MASK);
    const short = new Masker();
    short.value('X_PASSWORD', 'a'.repeat(4_000));
    expect(short.redact(`x${'a'.repeat(1_000_000)}y`)).toBe(`x${MASK}y`);
    // a learnt run that ends in another letter, over a run that never does: nothing found, in one pass
    const almost = new Masker();
    almost.value('X_PASSWORD', `${'a'.repeat(50_000)}b`);
    expect(almost.redact('a'.repeat(600_000))).toBe('a'.repeat(600_000));
  }, 20_000);

  it('a 150 KB compose file showing its own secret-looking value beside longer runs renders its plan, masked', () => {
    let text = `x-env: &e\n  X_PASSWORD: ${'a'.repeat(50_000)}\n  Y: ${'a'.repeat(100_000)}b\nservices:\n`;
    for (let i = 0; i < 10; i++) text += `  s${i}:\n    image: nginx:1\n    environment: *e\n`;
    const d = loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'e', variables: {} });
    const md = renderPlanMarkdown(reconcile(d, emptyObserved('p', 'e')), { environment: 'e', target: 'local' });
    expect(md).toContain('11 to create');
    expect(md).not.toContain('aaaaaaaa');
  }, 20_000);

  it('every occurrence of every text is found, case aside, overlapping ones joined', () => {
    const n = new Needles(['Tr0ub4dor', 'app-tr', 'dor-x', '']);
    const text = 'a APP-TR0UB4DOR-X b tr0ub4 c';
    expect(replaceSpans(text, n.find(text), '#')).toBe('a # b tr0ub4 c');
    expect(new Needles(['abc']).find('xabcabcx')).toEqual([[1, 7]]);
    expect(new Needles([]).find('anything')).toEqual([]);
  });
});

describe('a did-you-mean compares only names a suggestion could be', () => {
  it('a 50 KB name of a bound file not committed, beside 256 long file names, is refused at its line at once', () => {
    const files = ['compose.yml', ...Array.from({ length: 256 }, (_, i) => `${String(i).padStart(3, '0')}${'q'.repeat(240)}.conf`)].sort();
    const tree = { complete: true, mode: (p: string) => (files.includes(p) ? '100644' : undefined), under: (d: string) => (d === '' ? files : files.filter((f) => f.startsWith(`${d}/`))), size: () => 10 };
    const text = `services:\n  web:\n    image: nginx\n    volumes:\n      - ./${'z'.repeat(50_000)}.conf:/x\n`;
    expect(() => loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'e', repoTree: tree })).toThrow(/compose\.yml:5: .*its name is a file's/);
    // suggestions are unchanged: a typo away is found, a far longer name is not compared
    expect(closest('tls.yaml', ['tls.yml', 'other.conf'])).toBe('tls.yml');
    expect(closest('z'.repeat(1_000_000), ['zzz', 'z'.repeat(999_990)])).toBeUndefined();
  }, 20_000);
});
