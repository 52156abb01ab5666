import { createHash } from 'node:crypto';

/** JSON with object keys sorted at every level, so equal values always serialise equally. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortDeep(value));
}

const byKey = (keys: readonly string[]) => (a: number, b: number) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : 0);

/**
 * A copy with object keys sorted and undefined properties dropped, at every level — or, where
 * that copy would serialise exactly as the value does, the value itself: a plain object (or
 * array) without toJSON whose keys are already in order, with no undefined property, and
 * whose values are unchanged in turn. The plan's digests (a record per observed container)
 * are built in key order, so hashing them copies nothing. (Integer-like keys enumerate first
 * in the value and in a copy alike: keys "already in order" enumerate as the copy's would.)
 */
function sortDeep(value: unknown): unknown {
  if (Array.isArray(value)) {
    const out = value.map(sortDeep);
    if ('toJSON' in value) return out;
    for (let i = 0; i < out.length; i++) if (out[i] !== value[i]) return out;
    return value;
  }
  if (value && typeof value === 'object') {
    const keys = Object.keys(value);
    const proto = Object.getPrototypeOf(value);
    let ordered = true;
    for (let i = 1; i < keys.length; i++) if (!(keys[i - 1]! < keys[i]!)) ordered = false;
    let same = ordered && (proto === Object.prototype || proto === null) && !('toJSON' in value);
    const values: unknown[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const v = (value as Record<string, unknown>)[keys[i]!];
      if (v === undefined) {
        same = false;
        continue;
      }
      values[i] = sortDeep(v);
      if (values[i] !== v) same = false;
    }
    if (same) return value;
    const out: Record<string, unknown> = {};
    const order = keys.map((_, i) => i);
    if (!ordered) order.sort(byKey(keys));
    for (const i of order) if (values[i] !== undefined) out[keys[i]!] = values[i];
    return out;
  }
  return value;
}

export function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

export function hashOf(value: unknown): string {
  return sha256(canonicalJson(value));
}
