// canonicalJson skips copying what is already canonical; its text must stay exactly the
// reference's (JSON.stringify of a key-sorted copy): config hashes are stored in container
// labels, and a changed text would recreate every container on the next apply.
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../src/model/hash.js';

/** The implementation canonicalJson had before (the definition of its text). */
function sortDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortDeep);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value as object).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortDeep(v);
    }
    return out;
  }
  return value;
}
const reference = (v: unknown) => JSON.stringify(sortDeep(v));

/** A small deterministic PRNG, so a failure reproduces. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

// Sorted and unsorted names, integer-like keys (an object enumerates those first), toJSON.
const KEYS = ['a', 'b', 'B', 'image', 'name', '0', '1', '10', '2', '01', '-1', 'é', '\u0000', '"q"', 'toJSON', ''];
const STRINGS = ['', 'x', 'pw-1', 'a"b\\c', 'line\nbreak', '\u2028', '\ud800', 'ünï'];

function randomValue(r: () => number, depth: number): unknown {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const k = r();
  if (depth <= 0 || k < 0.3) return pick<unknown>([null, undefined, true, false, 0, -0, 1.5, 1e21, NaN, Infinity, pick(STRINGS), () => 1, Symbol('s')]);
  if (k < 0.55) {
    const a: unknown[] = Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth - 1));
    if (r() < 0.1) a.length += 2; // holes
    if (r() < 0.03) Object.assign(a, { toJSON: () => 'array toJSON' });
    return a;
  }
  if (k < 0.6) return pick<unknown>([new Date(0), new Map([[1, 2]]), new Set([1]), new (class C { x = 1; })(), Object.assign(new String('ab'), { y: 1 })]);
  const o: Record<string, unknown> = r() < 0.1 ? Object.create(null) : {};
  const keys = Array.from({ length: Math.floor(r() * 5) }, () => pick(KEYS));
  // Half the objects are built in key order: those are the ones passed through uncopied.
  if (r() < 0.5) keys.sort();
  for (const key of keys) o[key] = key === 'toJSON' && r() < 0.5 ? () => 'object toJSON' : randomValue(r, depth - 1);
  return o;
}

describe('canonicalJson', () => {
  it('equals JSON.stringify of the key-sorted copy on random values', () => {
    const r = rng(20261203);
    let passedThrough = 0;
    for (let i = 0; i < 30_000; i++) {
      const v = randomValue(r, 4);
      const want = reference(v);
      expect(canonicalJson(v)).toBe(want);
      if (v && typeof v === 'object' && want === JSON.stringify(v)) passedThrough++;
    }
    // The inputs exercise the pass-through (already canonical) path, not only the copy.
    expect(passedThrough).toBeGreaterThan(1000);
  });

  it('orders integer-like keys as an object does, and drops undefined properties', () => {
    const v = { b: 1, a: undefined, 10: 'x', 2: 'y', z: [undefined, () => 1], toJSON: 'not a function' };
    expect(canonicalJson(v)).toBe('{"2":"y","10":"x","b":1,"toJSON":"not a function","z":[null,null]}');
    expect(canonicalJson({ 2: 'y', 10: 'x', a: 1 })).toBe('{"2":"y","10":"x","a":1}');
  });

  it('does not pass through an object with toJSON, or one with undefined properties', () => {
    expect(canonicalJson({ a: 1, toJSON: () => 'x' })).toBe(reference({ a: 1, toJSON: () => 'x' }));
    expect(canonicalJson({ a: { b: new Date(0) } })).toBe('{"a":{"b":{}}}');
    expect(canonicalJson({ a: undefined, b: [1] })).toBe('{"b":[1]}');
  });
});
