import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BlockScanner, CONTINUED, DEFAULT_SPLIT_LIMIT, GITHUB_COMMENT_LIMIT, splitMarkdown } from '../src/github/split-comment.js';

/** Open fences / details at the end of `text`. */
function openBlocks(text: string): number {
  const s = new BlockScanner();
  for (const l of text.split('\n')) s.feed(l);
  return s.stack.length;
}

const HEADER = /^\*\*Part \d+\/\d+\*\*$/;
/** Lines the splitter may add: headers, blank lines, markers, fence lines, details open/close. */
const isSynthetic = (l: string) =>
  HEADER.test(l) || l === '' || l === CONTINUED || /^ {0,3}(`{3,}|~{3,})/.test(l) || l === '</details>' || /^<details\b[^>]*><summary>.*\(continued\)<\/summary>$/.test(l);

/** Every line of `md`, in order, is in the parts; everything else in the parts is synthetic. */
function expectContentPreserved(md: string, parts: string[]) {
  const want = md.split('\n');
  let i = 0;
  for (const part of parts) {
    for (const line of part.split('\n')) {
      if (i < want.length && line === want[i]) i++;
      else expect(isSynthetic(line), `unexpected line ${JSON.stringify(line)}`).toBe(true);
    }
  }
  expect(i, `missing from line ${i}: ${JSON.stringify(want[i])}`).toBe(want.length);
}

function expectInvariants(md: string, parts: string[], limit: number) {
  expect(parts.length).toBeGreaterThan(0);
  for (const p of parts) expect(p.length).toBeLessThan(limit);
  for (const p of parts) expect(openBlocks(p)).toBe(0);
  if (parts.length > 1) parts.forEach((p, i) => expect(p.startsWith(`**Part ${i + 1}/${parts.length}**\n\n`)).toBe(true));
  expectContentPreserved(md, parts);
}

const fence = (lang: string, body: string[], f = '```') => [`${f}${lang}`, ...body, f];

describe('splitMarkdown', () => {
  it('returns a short comment unchanged', () => {
    const md = '### plan\n\n```diff\n+ a\n```\n';
    expect(splitMarkdown(md, 1000)).toEqual([md]);
  });

  it('defaults to a limit below GitHub’s 65,536 characters', () => {
    expect(DEFAULT_SPLIT_LIMIT).toBeLessThan(GITHUB_COMMENT_LIMIT);
    const md = Array.from({ length: 3000 }, (_, i) => `line ${i} ${'x'.repeat(40)}`).join('\n');
    const parts = splitMarkdown(md);
    expect(parts.length).toBe(3);
    expectInvariants(md, parts, DEFAULT_SPLIT_LIMIT);
  });

  it('cuts between blocks, never inside a fence that fits a part', () => {
    const block = (n: number) => fence('text', Array.from({ length: 8 }, (_, i) => `${n}.${i} ${'y'.repeat(30)}`));
    const md = [...block(1), '', ...block(2), '', ...block(3)].join('\n');
    const parts = splitMarkdown(md, 400);
    expect(parts.length).toBe(3);
    expect(parts.join('\n')).not.toContain(CONTINUED);
    for (const p of parts) expect(p.split('\n').filter((l) => l.startsWith('```')).length).toBe(2);
    expectInvariants(md, parts, 400);
  });

  it('closes and reopens a fence too big for one part, with a continued marker', () => {
    const body = Array.from({ length: 12 }, (_, i) => `+ line ${String(i).padStart(2, '0')}`);
    const md = ['intro', '', ...fence('diff', body)].join('\n');
    const parts = splitMarkdown(md, 120);
    expect(parts).toEqual([
      '**Part 1/2**\n\nintro\n\n```diff\n+ line 00\n+ line 01\n+ line 02\n+ line 03\n+ line 04\n+ line 05\n+ line 06\n+ line 07\n```',
      '**Part 2/2**\n\n*(continued)*\n\n```diff\n+ line 08\n+ line 09\n+ line 10\n+ line 11\n```',
    ]);
    expectInvariants(md, parts, 120);
  });

  it('closes and reopens <details> around a fence, keeping its summary', () => {
    const body = Array.from({ length: 30 }, (_, i) => `[${i}] -> #${i + 1} service:web:1, StartContainer, missing`);
    const md = ['<details open>', '<summary>Plan (30 steps)</summary>', '', ...fence('text', body), '', '</details>', ''].join('\n');
    const parts = splitMarkdown(md, 700);
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts.slice(1)) expect(p).toContain('<details open><summary>Plan (30 steps) (continued)</summary>\n\n```text\n');
    for (const p of parts.slice(0, -1)) expect(p.endsWith('```\n</details>')).toBe(true);
    expectInvariants(md, parts, 700);
  });

  it('reopens details whose summary is on the opening line', () => {
    const md = ['<details><summary>Big</summary>', '', ...Array.from({ length: 40 }, (_, i) => `para ${i}`), '</details>'].join('\n');
    const parts = splitMarkdown(md, 150);
    expect(parts[1]).toContain('<details><summary>Big (continued)</summary>');
    expectInvariants(md, parts, 150);
  });

  it('ignores details tags and short fences inside a code block', () => {
    const md = fence('md', ['<details>', '``', '~~~', ...Array.from({ length: 30 }, (_, i) => `x${i}`), '</details>']).join('\n');
    const parts = splitMarkdown(md, 100);
    expectInvariants(md, parts, 100);
    expect(parts[0]).toContain('<details>');
  });

  it('hard-cuts a single line longer than a part', () => {
    const long = 'z'.repeat(500);
    const md = ['a', long, 'b'].join('\n');
    const parts = splitMarkdown(md, 120);
    for (const p of parts) expect(p.length).toBeLessThan(120);
    const content = parts.map((p) => p.split('\n').filter((l) => !HEADER.test(l) && l !== '').join('')).join('');
    expect(content).toBe(`a${long}b`);
  });

  it('numbers ten or more parts with room for the wider header', () => {
    const md = Array.from({ length: 200 }, (_, i) => `row ${i}`).join('\n');
    const parts = splitMarkdown(md, 60);
    expect(parts.length).toBeGreaterThanOrEqual(10);
    expectInvariants(md, parts, 60);
  });

  it('past maxParts, the last parts are left out whole and one part says so; what is kept renders on its own', () => {
    const md = ['intro', '', ...fence('diff', Array.from({ length: 400 }, (_, i) => `+ line ${i}`))].join('\n');
    const all = splitMarkdown(md, 300);
    expect(all.length).toBeGreaterThan(5);
    const parts = splitMarkdown(md, 300, 5);
    expect(parts).toHaveLength(5);
    parts.forEach((p, i) => expect(p.startsWith(`**Part ${i + 1}/5**\n\n`)).toBe(true));
    expect(parts.slice(0, 4).map((p) => p.replace(/^\*\*Part \d+\/5\*\*/, ''))).toEqual(all.slice(0, 4).map((p) => p.replace(/^\*\*Part \d+\/\d+\*\*/, '')));
    expect(parts[4]).toContain(`it would take ${all.length - 4} more comments`);
    // every fence a kept part opens, it closes
    for (const p of parts) expect((p.match(/^```/gm) ?? []).length % 2).toBe(0);
  });

  it('refuses a limit too small to hold the blocks open at a cut', () => {
    const md = ['<details><summary>' + 's'.repeat(200) + '</summary>', ...Array.from({ length: 50 }, () => 'x'), '</details>'].join('\n');
    expect(() => splitMarkdown(md, 150)).toThrow(/limit too small/);
  });

  // --- property: random documents of paragraphs, fences and nested details
  const word = fc.string({ unit: fc.constantFrom('a', 'b', ' ', '`', '<', '>', '|', '*', '~', '-', '#'), maxLength: 50 });
  const textLine = word.map((w) => `t${w}`);
  type Doc = fc.Arbitrary<string[]>;
  const para: Doc = fc.array(textLine, { minLength: 1, maxLength: 5 });
  const codeBlock: Doc = fc
    .record({
      f: fc.constantFrom('```', '````', '~~~'),
      lang: fc.constantFrom('', 'diff', 'text'),
      body: fc.array(fc.oneof(textLine, fc.constantFrom('<details>', '</details>', '``', '', '  indented')), { maxLength: 60, size: 'medium' }),
    })
    .map(({ f, lang, body }) => fence(lang, body, f));
  const { details } = fc.letrec<{ details: string[]; block: string[] }>((tie) => ({
    details: fc
      .record({
        open: fc.constantFrom('<details>', '<details open>'),
        summary: fc.option(fc.string({ unit: fc.constantFrom('s', ' ', '*', '<'), maxLength: 20 }), { nil: undefined }),
        sameLine: fc.boolean(),
        inner: fc.array(tie('block'), { maxLength: 4, depthIdentifier: 'd' }),
      })
      .map(({ open, summary, sameLine, inner }) => {
        const head = summary === undefined ? [open] : sameLine ? [`${open}<summary>${summary}</summary>`] : [open, `<summary>${summary}</summary>`];
        return [...head, '', ...inner.flat(), '</details>'];
      }),
    block: fc.oneof({ depthSize: 'small', depthIdentifier: 'd' }, para, codeBlock, tie('details'), fc.constant<string[]>([''])),
  }));
  const doc = fc.array(fc.oneof(para, codeBlock, details, fc.constant<string[]>([''])), { minLength: 1, maxLength: 60, size: 'medium' }).map((bs) => bs.flat().join('\n'));

  it('property: every part is under the limit, blocks are balanced in every part, all content lines survive', () => {
    fc.assert(
      fc.property(doc, fc.integer({ min: 400, max: 1500 }), (md, limit) => {
        const parts = splitMarkdown(md, limit);
        if (md.length < limit) expect(parts).toEqual([md]);
        expectInvariants(md, parts, limit);
      }),
      { numRuns: 300 },
    );
  });
});
