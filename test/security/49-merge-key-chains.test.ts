// Red-team round 11, H1: YAML merge keys cost what they expand to. yaml's toJS
// converts a merge key's source anew at every merge (it caches aliases, not
// merges), so a chain of maps each merging the one before
// (`x-a2: &a2 {<<: *a1, k2: 1}`) costs the cube of its length, all of it inside
// toJS — before the alias-bomb bound (which walks the converted value) could
// count anything. A 58 KB compose file of 1,600 links held the event loop 90 s,
// a 1 MiB one (35,000 links) for days: one push to a fork's PR stops the app.
// The bound is now checked on the syntax tree, before anything is converted.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { mergeChain } from '../../fixtures/hostile/generate.js';

const load = (text: string) => loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'e', variables: {} });

describe('merge keys are bounded before they are expanded', () => {
  it('a chain of 1,600 merges (58 KB) is refused at once', () => {
    const t = Date.now();
    expect(() => load(mergeChain(1_600))).toThrow(/merge keys \(<<\) expand to more than 200000 values/);
    expect(Date.now() - t).toBeLessThan(5_000);
  }, 20_000);

  it('merges as real files write them still load: one base merged into many services, a merge of two', () => {
    const services = Array.from({ length: 300 }, (_, i) => `  s${i}:\n    <<: *svc\n    environment:\n      <<: [*env, *more]\n      N: "${i}"\n`).join('');
    const d = load(`x-env: &env {A: "1", B: "2"}\nx-more: &more {B: "3", C: "4"}\nx-svc: &svc\n  image: berth-test/app:1\n  restart: always\n  labels: {a: b}\nservices:\n${services}`);
    expect(d.services).toHaveLength(300);
    expect(d.services.find((s) => s.spec.name === 's7')!.spec.environment).toEqual({ A: '1', B: '2', C: '4', N: '7' });
    expect(d.services.find((s) => s.spec.name === 's7')!.spec.restart).toBe('always');
  });
});
