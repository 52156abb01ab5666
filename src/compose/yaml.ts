// Safe YAML for untrusted repository files: a size limit, a bound on the
// size after alias expansion (billion laughs), a nesting limit, YAML merge keys (`<<: *base`), and a way
// back from a path in the parsed value to the line it came from, so every
// later error can say `file:line`.
import type { Alias, Node, Pair, ScalarTag, Tags, YAMLMap, YAMLSeq } from 'yaml';
import { isAlias, isCollection, isMap, isScalar, isSeq, LineCounter, parseDocument, visit } from 'yaml';

export type PathSeg = string | number;

export interface YamlLimits {
  /** bytes; default 1 MiB */
  maxBytes?: number;
  /** collections inside collections; default 64 */
  maxDepth?: number;
  /**
   * values (mappings, sequences and scalars) the document holds once every alias is
   * expanded; default 200 000. Real files with a hundred aliases stay in the
   * thousands, a "billion laughs" document runs into the billions.
   */
  maxNodes?: number;
}

const INT_TAG = 'tag:yaml.org,2002:int';
const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

/**
 * An integer as docker compose reads it, where JavaScript's numbers would differ: a value beyond 2^53
 * (a Discord or Telegram id, `1098765432109876543`) keeps every digit, as the string it is in the container
 * (as a number it would come out as 1098765432109876500); within 64 bits, as go-yaml holds it.
 */
function exactInt(value: bigint): number | string {
  if (value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(value);
  return value >= INT64_MIN && value <= UINT64_MAX ? value.toString() : Number(value);
}

/**
 * Plain integers (`[-+]?[0-9]+`) as go-yaml reads them, exact beyond 2^53 (exactInt): a leading zero makes the
 * rest octal (`0440` is 288, `UMASK: 022` is 18), as in YAML 1.1, which go-yaml v3 still follows there; a
 * digit 8 or 9 after it leaves the number decimal (go-yaml falls back to reading it as a float, the same value).
 */
function exactDecimal(core: ScalarTag): ScalarTag {
  return {
    ...core,
    resolve: (str: string) => {
      const octal = /^([-+]?)0([0-7]+)$/.exec(str);
      return exactInt(octal ? (octal[1] === '-' ? -1n : 1n) * BigInt(`0o${octal[2]}`) : BigInt(str));
    },
  };
}

/**
 * Integers YAML 1.2 reads as strings and go-yaml (so docker compose) as numbers: with `_` between digits
 * (`1_000` is 1000; go-yaml drops every `_` first) or in binary (`0b101` is 5). A `_`-run with a leading zero
 * is octal there, as go reads it.
 */
const goInt: ScalarTag = {
  identify: () => false,
  default: true,
  tag: INT_TAG,
  // Tried on every plain scalar a PR writes: each part can match in one way only (a run of `_` before the first
  // binary digit, digits up to the first `_`), so a long scalar costs one pass, not a pass per split point.
  test: /^[-+]?(?:0[bB]_*[01][01_]*|[0-9]+_[0-9_]*)$/,
  resolve: (str: string) => {
    const plain = str.replace(/_/g, '');
    const sign = plain[0] === '-' ? -1n : 1n;
    const digits = plain.replace(/^[-+]/, '');
    const value = /^0[bB]/.test(digits) ? BigInt(`0b${digits.slice(2)}`) : /^0[0-7]+$/.test(digits) ? BigInt(`0o${digits.slice(1)}`) : /^[0-9]+$/.test(digits) ? BigInt(digits) : undefined;
    return value === undefined ? str : exactInt(sign * value);
  },
};

/** YAML 1.2's core tags with docker compose's integers (exactDecimal, goInt). */
const composeTags = (tags: Tags): Tags => [...tags.map((t) => (typeof t === 'object' && t.tag === INT_TAG && !t.format && 'resolve' in t ? exactDecimal(t as ScalarTag) : t)), goInt];

export const DEFAULT_LIMITS: Required<YamlLimits> = { maxBytes: 1024 * 1024, maxDepth: 64, maxNodes: 200_000 };

/** The problem a YAML document has, located; the caller wraps it in its own error class. */
export interface YamlProblem {
  code: 'bad_yaml' | 'too_large' | 'alias_bomb' | 'too_deep';
  problem: string;
  line?: number;
  hint?: string;
}

export class YamlFailure extends Error {
  constructor(readonly detail: YamlProblem) {
    super(detail.problem);
  }
}

export interface YamlFile {
  file: string;
  /** the document as plain JS (aliases expanded, merge keys applied); undefined for an empty document */
  value: unknown;
  /** 1-based line of the deepest node found along `path` (the key's line for map entries) */
  lineAt(path: readonly PathSeg[]): number | undefined;
  /** paths of nodes tagged `!reset` / `!override` (compose's merge tags), as `a.b.c` strings */
  tags: Map<string, 'reset' | 'override'>;
}

/** `services.web.ports[0]`; keys that are not plain words are quoted: `labels["com.example.x"]`. */
export function formatPath(path: readonly PathSeg[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

const tagKey = (path: readonly PathSeg[]) => path.map(String).join('\u0000');

export function tagAt(y: YamlFile, path: readonly PathSeg[]): 'reset' | 'override' | undefined {
  return y.tags.get(tagKey(path));
}

export function parseYaml(file: string, text: string, limits: YamlLimits = {}): YamlFile {
  const { maxBytes, maxDepth, maxNodes } = { ...DEFAULT_LIMITS, ...limits };
  const size = Buffer.byteLength(text, 'utf8');
  if (size > maxBytes)
    throw new YamlFailure({
      code: 'too_large',
      problem: `file is ${size} bytes, more than the ${maxBytes} bytes berth reads`,
      hint: 'split it or remove what is not needed',
    });

  // Pathological flow nesting (`[[[[…`) makes the parser slow and recursive: refuse it before parsing.
  // Brackets are counted without regard to quoting, so the bound is generous; the exact limit is checked on the tree.
  let flow = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) {
      if (++flow > maxDepth * 4) throw tooDeep(maxDepth, text.slice(0, i).split('\n').length);
    } else if ((c === 0x5d || c === 0x7d) && flow > 0) flow--;
  }

  const lineCounter = new LineCounter();
  let doc: ReturnType<typeof parseDocument>;
  try {
    // uniqueKeys is checked below: yaml compares each key with every key before it (minutes for a map of thousands).
    doc = parseDocument(text, { lineCounter, merge: true, uniqueKeys: false, prettyErrors: false, strict: true, version: '1.2', customTags: composeTags });
  } catch (err) {
    if (err instanceof RangeError) throw tooDeep(maxDepth);
    throw err;
  }
  const lineOf = (offset: number | undefined) => (offset === undefined ? undefined : lineCounter.linePos(offset).line);

  const first = doc.errors[0];
  if (first?.code === 'RESOURCE_EXHAUSTION' && /call stack/i.test(first.message)) throw tooDeep(maxDepth, lineOf(first.pos[0]));
  // Several documents (`---` between them): said in berth's words, not the library's.
  if (first?.code === 'MULTIPLE_DOCS')
    throw new YamlFailure({
      code: 'bad_yaml',
      problem: 'the file holds more than one YAML document (a --- line starts another)',
      ...located(lineOf(first.pos[0])),
      hint: "put each document in a file of its own and list the files, in order, under the environment's compose: in .github/berth.yml (they merge as override files do)",
    });
  if (first) {
    throw new YamlFailure({
      code: 'bad_yaml',
      problem: `invalid YAML: ${yamlMessage(first.message)}`,
      ...located(lineOf(first.pos[0])),
    });
  }

  // Walk the syntax tree once: depth limit, compose's merge tags, refuse other custom tags, unique keys.
  const tags = new Map<string, 'reset' | 'override'>();
  /** the offset of the first key (in the document) that repeats one before it in its map */
  let duplicate: number | undefined;
  const stack: { node: unknown; path: PathSeg[]; depth: number }[] = [{ node: doc.contents, path: [], depth: 0 }];
  while (stack.length) {
    const { node, path, depth } = stack.pop()!;
    if (!node || isAlias(node)) continue;
    const n = node as Node;
    if (n.tag === '!reset' || n.tag === '!override') {
      tags.set(tagKey(path), n.tag === '!reset' ? 'reset' : 'override');
      n.tag = undefined;
    } else if (n.tag && n.tag.startsWith('!') && !n.tag.startsWith('!!')) {
      throw new YamlFailure({ code: 'bad_yaml', problem: `unsupported YAML tag ${n.tag}`, ...located(lineOf(n.range?.[0])), hint: 'only !reset and !override are understood' });
    }
    if (!isCollection(n)) continue;
    if (depth >= maxDepth) throw tooDeep(maxDepth, lineOf(n.range?.[0]));
    if (isMap(n)) {
      const keys = new Set<string>();
      for (const pair of (n as YAMLMap).items) {
        const key = isScalar(pair.key) ? pair.key.value : undefined;
        // `__proto__` names an object's prototype in JavaScript: a plain object would drop it (a label, a variable,
        // a service) where compose keeps it. Refused at its line rather than carried by a guess.
        if (key === '__proto__') throw protoKey(lineOf((pair.key as Node).range?.[0]));
        // A key twice in one map (a scalar of the same type and value; merge keys may repeat), as yaml's uniqueKeys.
        if (isScalar(pair.key) && !isMergeKey(key)) {
          const k = `${typeof key}\0${String(key)}`;
          const offset = (pair.key as Node).range?.[0];
          if (keys.has(k) && offset !== undefined && (duplicate === undefined || offset < duplicate)) duplicate = offset;
          keys.add(k);
        }
        stack.push({ node: pair.value, path: [...path, String(key)], depth: depth + 1 });
      }
    } else {
      (n as YAMLSeq).items.forEach((item, i) => stack.push({ node: item, path: [...path, i], depth: depth + 1 }));
    }
  }

  if (duplicate !== undefined) throw new YamlFailure({ code: 'bad_yaml', problem: 'invalid YAML: Map keys must be unique', ...located(lineOf(duplicate)) });

  // Each alias's node, found in one walk in document order (an alias names the latest anchor before it). yaml's
  // Alias.resolve scans every anchor and alias before the one it resolves, at every call: toJS and a lookup per
  // field made a small file of thousands of aliases take minutes. Each alias is given its own answer: yaml's
  // resolve is kept (its anchors and counts), with the scan cut to the one node that matters.
  const aliased = new Map<Alias, unknown>();
  const anchors = new Map<string, unknown>();
  visit(doc, {
    Node(_key, n) {
      if (isAlias(n)) aliased.set(n, anchors.get(n.source));
      else if (n.anchor) anchors.set(n.anchor, n);
    },
  });
  for (const [alias, target] of aliased) {
    const resolve = Object.getPrototypeOf(alias).resolve as Alias['resolve'];
    alias.resolve = function (this: Alias, d, ctx) {
      if (ctx) ctx.aliasResolveCache = target ? [target as Node, this] : [this];
      return resolve.call(this, d, ctx);
    };
  }

  // yaml converts a merge key's source again at every merge (it caches plain aliases, not merges): a chain of
  // maps each merging the one before (`a2: &a2 {<<: *a1, k2: 1}`) costs the cube of its length inside toJS, before
  // checkExpanded could count anything (58 KB took 90 s). The size the merges expand to is bounded first.
  checkMerges(doc.contents, aliased, maxNodes, lineOf);

  let value: unknown;
  try {
    // Aliases become shared references here (memory stays linear); the expanded size is bounded just below.
    value = doc.toJS({ maxAliasCount: -1 });
  } catch (err) {
    if (err instanceof RangeError) throw tooDeep(maxDepth);
    if (err instanceof Error) throw new YamlFailure({ code: 'bad_yaml', problem: `invalid YAML: ${yamlMessage(err.message)}` });
    throw err;
  }
  // Aliases may point into their own anchor (a cycle), expand deeper than the tree itself, or expand to billions of values.
  checkExpanded(value, maxDepth, maxNodes);

  const lineAt = (path: readonly PathSeg[]): number | undefined => {
    let node: unknown = doc.contents;
    let line = lineOf((node as Node | null)?.range?.[0]);
    for (const seg of path) {
      node = deref(node);
      if (isMap(node)) {
        const pair = findPair(node as YAMLMap, String(seg), 0);
        if (!pair) break;
        line = lineOf((pair.key as Node).range?.[0]) ?? line;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = (node as YAMLSeq).items[seg];
        if (item === undefined) break;
        line = lineOf((item as Node).range?.[0]) ?? line;
        node = item;
      } else break;
    }
    return line;
  };

  const deref = (node: unknown): unknown => {
    for (let i = 0; i < 100 && isAlias(node); i++) node = aliased.get(node as Alias);
    return node;
  };

  // Each map's pairs by key, made at the first lookup in it: a lookup per service in a map of thousands is not a scan each.
  const byKey = new WeakMap<YAMLMap, Map<string, Pair>>();
  const pairsOf = (map: YAMLMap): Map<string, Pair> => {
    let index = byKey.get(map);
    if (!index) {
      index = new Map();
      // the first pair of a key, as a scan finds it (a duplicate key was refused when parsing)
      for (const p of map.items as Pair[]) if (isScalar(p.key) && !index.has(String(p.key.value))) index.set(String(p.key.value), p);
      byKey.set(map, index);
    }
    return index;
  };
  const findPair = (map: YAMLMap, key: string, hops: number): Pair | undefined => {
    const direct = pairsOf(map).get(key);
    if (direct || hops > 10) return direct;
    // merge keys: `<<: *base` or `<<: [*a, *b]` (earlier sources win)
    for (const p of map.items) {
      if (!isScalar(p.key) || !isMergeKey(p.key.value)) continue;
      const sources = isSeq(p.value) ? (p.value as YAMLSeq).items : [p.value];
      for (const s of sources) {
        const m = deref(s);
        if (isMap(m)) {
          const found = findPair(m as YAMLMap, key, hops + 1);
          if (found) return found;
        }
      }
    }
    return undefined;
  };

  return { file, value, lineAt, tags };
}

/** `<<`, which yaml may hold as a string or as a symbol */
const isMergeKey = (v: unknown) => v === '<<' || (typeof v === 'symbol' && v.description === '<<');

const located = (line: number | undefined) => (line === undefined ? {} : { line });

/** A key named `__proto__`, anywhere in the document (mapOrList and the env_file readers refuse the list forms). */
export const PROTO_KEY_HINT = 'rename it: berth cannot carry a key named __proto__ (in JavaScript it is an object\'s prototype, so it would be lost), and refuses it rather than drop it';
function protoKey(line: number | undefined): YamlFailure {
  return new YamlFailure({ code: 'bad_yaml', problem: 'a mapping key named "__proto__" is not accepted', ...located(line), hint: PROTO_KEY_HINT });
}

function tooDeep(maxDepth: number, line?: number): YamlFailure {
  return new YamlFailure({ code: 'too_deep', problem: `YAML nested more than ${maxDepth} levels deep`, ...located(line), hint: 'flatten the document' });
}

const aliasBomb = (maxNodes: number) =>
  new YamlFailure({
    code: 'alias_bomb',
    problem: `YAML document expands to more than ${maxNodes} values once its aliases are expanded`,
    hint: 'this looks like a "billion laughs" document; use fewer nested anchors and aliases',
  });

/**
 * What converting the syntax tree costs, bounded before yaml's toJS runs: every alias counted as the values it
 * expands to where it is used (as checkExpanded counts them), and a merge key's source as converted anew at each
 * merge — its own cost, and its values copied in (a merged key that the map overrides too: a bound). One pass in
 * document order, so an alias's anchor is counted before it (an anchor still open is the alias's own ancestor, a
 * cycle: counted once, left to toJS and checkExpanded). Refused as soon as the cost passes maxNodes.
 */
function checkMerges(root: unknown, aliased: ReadonlyMap<Alias, unknown>, maxNodes: number, lineOf: (offset: number | undefined) => number | undefined): void {
  /** node → [the values it expands to, what converting it costs] */
  const cost = new Map<unknown, [number, number]>();
  const of = (n: unknown): [number, number] => (n ? (cost.get(n) ?? [1, 1]) : [1, 1]);
  const stack: { node: unknown; open: boolean }[] = [{ node: root, open: false }];
  while (stack.length) {
    const top = stack.pop()!;
    const n = top.node;
    if (!n || cost.has(n)) continue;
    if (isAlias(n)) {
      const [values] = of(aliased.get(n));
      cost.set(n, [values, values]);
      continue;
    }
    if (!isCollection(n)) {
      cost.set(n, [1, 1]);
      continue;
    }
    const pairs = isMap(n) ? ((n as YAMLMap).items as Pair[]) : undefined;
    const children = pairs ? pairs.map((p) => p.value) : (n as YAMLSeq).items;
    if (!top.open) {
      stack.push({ node: n, open: true });
      for (let i = children.length - 1; i >= 0; i--) stack.push({ node: children[i], open: false });
      continue;
    }
    let values = 1;
    let work = 1;
    children.forEach((c, i) => {
      const merged = pairs !== undefined && isScalar(pairs[i]!.key) && isMergeKey((pairs[i]!.key as { value: unknown }).value);
      // `<<: *a` or `<<: [*a, *b]`: each source map converted again (its own cost) and its values copied in
      const sources = merged && isSeq(c) ? (c as YAMLSeq).items : [c];
      if (merged) {
        // What go-yaml (docker compose) merges: a map, an alias of a map, or a list of those. yaml would merge an
        // alias of a list item by item and fail inside toJS on the first item that is no map, with no line.
        const bad = sources.find((src) => !isMap(isAlias(src) ? aliased.get(src as Alias) : src));
        if (bad !== undefined || (isAlias(c) && !isMap(aliased.get(c as Alias)))) {
          const target = isAlias(c) ? aliased.get(c as Alias) : bad !== undefined && isAlias(bad) ? aliased.get(bad as Alias) : bad;
          const given = isSeq(target) ? 'a list' : isMap(target) ? 'a map' : 'a scalar';
          throw new YamlFailure({
            code: 'bad_yaml',
            problem: `invalid YAML: the merge key (<<) takes a map, an alias of a map, or a list of those, and is given ${isAlias(c) || (bad !== undefined && isAlias(bad)) ? `an alias of ${given}` : given}`,
            ...located(lineOf((pairs![i]!.key as Node).range?.[0])),
            hint: 'docker compose refuses it too (map merge requires map or sequence of maps): to share a list such as environment: - A=1, write it as a map (A: "1") in the anchor, or repeat its items',
          });
        }
      }
      for (const src of merged ? sources : [c]) {
        const target = merged && isAlias(src) ? aliased.get(src as Alias) : src;
        const [v, w] = merged ? of(target) : of(src);
        values += v;
        work += merged ? w + v : w;
      }
    });
    if (values > maxNodes) throw aliasBomb(maxNodes);
    if (work > maxNodes)
      throw new YamlFailure({
        code: 'alias_bomb',
        problem: `YAML document's merge keys (<<) expand to more than ${maxNodes} values, each merge counting what it merges in`,
        ...located(lineOf((n as Node).range?.[0])),
        hint: 'merge each map from a base that merges nothing itself, rather than chaining merges one on another',
      });
    cost.set(n, [values, work]);
  }
}

/** Walks the value as later stages will (every alias expanded), stopping as soon as it is too deep or too big. */
function checkExpanded(value: unknown, maxDepth: number, maxNodes: number): void {
  const stack: { v: unknown; d: number }[] = [{ v: value, d: 0 }];
  let visited = 0;
  while (stack.length) {
    const { v, d } = stack.pop()!;
    if (++visited > maxNodes) throw aliasBomb(maxNodes);
    if (!v || typeof v !== 'object') continue;
    if (d >= maxDepth) throw tooDeep(maxDepth);
    for (const child of Array.isArray(v) ? v : Object.values(v as object)) stack.push({ v: child, d: d + 1 });
  }
}

/** yaml's message without its trailing "at line X, column Y:" and code excerpt (the line is reported separately). */
function yamlMessage(message: string): string {
  const firstLine = message.split('\n')[0] ?? message;
  return firstLine.replace(/\s+at line \d+, column \d+:?\s*$/, '').trim();
}
