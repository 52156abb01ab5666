// The block pass of comment-layout.ts reads paragraph and heading text
// straight from micromark's events (blockProseOf) instead of building the
// mdast tree: it must read exactly what the tree says — the same text spans
// (offsets, lines, values, quoted or not), the same paragraphs (parts, length,
// first opener, scans) and the same definitions — on every comment fixture,
// the hostile ones included, and on generated Markdown mixing the block
// constructs that hide lines (fences, math, HTML, quotes, lists, tables,
// definitions, setext headings, hard breaks, CR/LF).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromMarkdown } from 'mdast-util-from-markdown';
import { describe, expect, it } from 'vitest';
import { BLOCKS, blockProseOf, proseOf } from '../src/github/comment-layout.js';

type Read = ReturnType<typeof proseOf>;
const plain = (r: Read) => ({
  spans: r.spans.map(({ lineStarts: _l, ...s }) => s),
  prose: r.prose.map((p) => ({ ...p, parts: p.parts.map((x) => (typeof x === 'string' ? x : r.spans.indexOf(x))) })),
  definitions: r.definitions,
});
const viaTree = (text: string) => plain(proseOf(fromMarkdown(text, BLOCKS), 7));
const viaEvents = (text: string) => plain(blockProseOf(text, 7));

const PIECES = [
  '> ', '- ', '1. ', '  ', '\t', '    ', '```', '~~~', '$$', '$', '<!--', '-->', '<div>', '</div>', '<pre>', '[a]: x', '[Foo  Bar]: <y>', '[a]', '# ', '===', '---',
  '| a | b |', '|---|---|', '  \n', '\\\n', '[^1]: n', '* ', '\n', '\n\n', '/apply staging', 'text', '`', '<', '[', ']', '![a](b)', '\r\n', '\r', '**', '~~', 'www.x.com', '&amp;',
];

function generated(count: number): string[] {
  let seed = 20261202;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  return Array.from({ length: count }, () => {
    let s = '';
    for (let j = 3 + rnd(40); j > 0; j--) s += PIECES[rnd(PIECES.length)];
    return s;
  });
}

describe('the block pass read from events equals the mdast tree', () => {
  it('on every comment fixture', () => {
    const dirs = ['fixtures/comments', 'fixtures/hostile'];
    const files = dirs.flatMap((d) => readdirSync(d).filter((f) => f.endsWith('.md')).map((f) => join(d, f)));
    expect(files.length).toBeGreaterThan(5);
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      expect(viaEvents(text), f).toEqual(viaTree(text));
    }
  });

  it('on 3,000 generated comments', () => {
    let paragraphs = 0;
    for (const text of generated(3000)) {
      const tree = viaTree(text);
      paragraphs += tree.prose.length;
      expect(viaEvents(text), JSON.stringify(text)).toEqual(tree);
    }
    expect(paragraphs).toBeGreaterThan(3000);
  });
});
