import { beforeEach, describe, expect, it, vi } from 'vitest';

// Every call into micromark is recorded (the real parser still runs), so the
// limits below are checked by what reaches the parser, not by a clock: the
// block pass calls micromark itself, the inline pass through mdast.
const parsed = vi.hoisted(() => ({ inputs: [] as string[] }));
vi.mock('micromark', async (importOriginal) => {
  const real = await importOriginal<typeof import('micromark')>();
  return {
    ...real,
    preprocess: () => {
      const chunks = real.preprocess();
      return (value: Parameters<typeof chunks>[0], encoding?: Parameters<typeof chunks>[1], end?: boolean) => {
        parsed.inputs.push(String(value));
        return chunks(value, encoding, end);
      };
    },
  };
});
vi.mock('mdast-util-from-markdown', async (importOriginal) => {
  const real = await importOriginal<typeof import('mdast-util-from-markdown')>();
  return {
    ...real,
    fromMarkdown: (value: string, ...rest: unknown[]) => {
      parsed.inputs.push(value);
      return (real.fromMarkdown as (v: string, ...r: unknown[]) => unknown)(value, ...rest);
    },
  };
});

const { MAX_COMMENT_CHARS, parseCommands } = await import('../src/github/commands.js');
const { MAX_INLINE_COST, MAX_NESTED_CONTAINERS, MAX_PARSE_CHARS } = await import('../src/github/comment-layout.js');

const ENVS = ['staging', 'production'] as const;
const apply = { kind: 'command', command: { name: 'apply', env: 'staging' } };
const none = { kind: 'none' };
const unreadable = { kind: 'invalid', problem: expect.stringMatching(/^berth cannot tell which lines of this comment are commands: .*, so nothing was run\./) };

beforeEach(() => {
  parsed.inputs.length = 0;
});

// Where GitHub's rendering (GFM) decides, the decision is written down here.
// [what, comment body, expected]
const rows: [string, string, unknown][] = [
  ['setext heading: GitHub shows the line on its own, as a heading', '/apply staging\n---', apply],
  ['setext heading with =', '/apply staging\n===', apply],
  ['a "---" after a blank line is a rule, the command a paragraph', '/apply staging\n\n---', apply],
  ['GFM table header cell', '/apply staging\n| --- |', none],
  ['GFM table body row', 'a | b\n--- | ---\n/apply staging | x', none],
  ['task list item', '- [ ] /apply staging', none],
  ['link reference definition (renders nothing)', '[x]:\n/help', none],
  ['image alt text', '![\n/apply staging\n](https://example.com/x.png)', none],
  ['image alt text, reference defined further down', '![\n/apply staging\n][logo]\n\n[logo]: https://example.com/logo.png', none],
  ['link title', '[a](https://example.com "\n/apply staging\n")', none],
  ['link text is visible text', '[see\n/apply staging\n](https://example.com)', apply],
  ['inline HTML tag over lines', 'note <span title="\n/apply staging\n">x</span>', none],
  ['HTML block (type 7) runs to the blank line', '<span>\n/apply staging', none],
  ['after an HTML block and a blank line', '<span>\n\n/apply staging', apply],
  // GitHub renders Markdown inside <details>, but collapsed: out of sight until opened (security 63)
  ['inside <details>, collapsed', '<details>\n\n/apply staging\n\n</details>', none],
  ['after a closed <details>', '<details>\n\nlog\n\n</details>\n\n/apply staging', apply],
  ['lazy continuation of a list item', '- looks good\n/apply staging', apply],
  ['lazy continuation of a list item inside a quote', '> - looks good\n/apply staging', { kind: 'invalid', problem: expect.stringMatching(/part of the quote/), suggestion: '/apply staging' }],
  ['a footnote (GitHub shows it under the comment)', '[^1]: see\n/apply staging', apply],
  ['code span closed after a blank-line-free run', 'run `x\ny\n/apply staging\n` later', none],
  // The parse window starts after a blank line only where nothing can still be open.
  ['unclosed fence far above', '```\ncode\n\nmore\n\n/apply staging', none],
  ['unclosed HTML comment far above', '<!--\nnote\n\nmore\n\n/apply staging', none],
  ['unclosed <pre> far above', '<pre>\n\nx\n\n/apply staging', none],
  ['closed fence far above', '```\ncode\n```\n\nmore\n\n/apply staging', apply],
  ['indented code ends at a line in column 0', '    code\n\n/apply staging', apply],
];

describe('comment layout: GitHub-rendering decisions', () => {
  it.each(rows)('%s: %j', (_what, body, expected) => {
    expect(parseCommands(body, ENVS)).toEqual(expected);
  });

  it('a comment without a command-like line is never parsed', () => {
    expect(parseCommands('Looks good!\n\n```\nnpm test\n```\n> quoted\n', ENVS)).toEqual(none);
    expect(parsed.inputs).toEqual([]);
  });
});

describe('comment layout: limits', () => {
  const filler = 'Some review prose that goes on and on, with `code`, > quotes and /slashes.\n';
  const atMax = (unit: string, tail = '') => unit.repeat(Math.floor((MAX_COMMENT_CHARS - tail.length) / unit.length)) + tail;

  // [what, body, expected result]. Each body is at (or near) the largest size berth reads.
  const cases: [string, string, unknown][] = [
    ['a command after 1 MB of prose', atMax(filler, '\n/apply staging\n'), apply],
    ['a command after 1 MB of nested lists', atMax('- a\n  - b\n', '\n/apply staging\n'), apply],
    ['a command lazily continuing 1 MB of nested lists', atMax('- a\n  - b\n', '/apply staging'), unreadable],
    ['a command after deep quotes on one line', '> '.repeat(MAX_COMMENT_CHARS / 2 - 20) + '\n/apply staging', unreadable],
    ['a command after deep lists on one line', '- '.repeat(MAX_COMMENT_CHARS / 2 - 20) + '\n/apply staging', unreadable],
    ['many backticks before a command line', atMax('`', '\n/apply staging'), unreadable],
    ['backtick runs of every length, then a command', Array.from({ length: 1400 }, (_, i) => '`'.repeat(i + 1)).join(' x ').slice(0, MAX_COMMENT_CHARS - 20) + '\n/apply staging', unreadable],
    ['many < before a command line', atMax('<', '\n/apply staging'), unreadable],
    ['many unclosed HTML comments, then a command', atMax('a <!-- ', '\n/apply staging'), unreadable],
    ['many [ before a command line', atMax('[', '\n/apply staging'), unreadable],
    ['many emphasis markers before a command line', atMax('*a ', '\n/apply staging'), unreadable],
    ['many near-miss lines', atMax('/aply staging\n'), unreadable],
    ['a huge line that starts like a command', '/apply ' + 'staging '.repeat(MAX_COMMENT_CHARS / 8 - 1), unreadable],
    ['no command-like line at all', atMax('`<[*> - 1. '), none],
  ];

  it.each(cases)('%s: micromark runs at most twice, on a bounded input', (_what, body, expected) => {
    expect(body.length).toBeLessThanOrEqual(MAX_COMMENT_CHARS);
    expect(parseCommands(body, ENVS)).toEqual(expected);
    expect(parsed.inputs.length).toBeLessThanOrEqual(2);
    for (const input of parsed.inputs) expect(input.length).toBeLessThanOrEqual(MAX_PARSE_CHARS);
  });

  it('parses a whole comment of GitHub’s maximum size when the command needs it', () => {
    // A fence at the top means no line is known to start with nothing open: the whole comment is the window.
    const head = '```\nx\n```\n';
    const tail = '/apply staging';
    const body = head + filler.repeat(Math.floor((MAX_PARSE_CHARS - head.length - tail.length) / filler.length)) + tail;
    expect(body.length).toBeLessThanOrEqual(MAX_PARSE_CHARS);
    expect(parseCommands(body, ENVS)).toEqual(apply);
    // Blocks over the whole comment; then inline over the one paragraph the command continues (it holds code spans).
    expect(parsed.inputs.map((i) => i.length)).toEqual([body.length, expect.any(Number)]);
    expect(parsed.inputs[1]!.length).toBeLessThan(body.length);
  });

  it('a command continuing a paragraph is parsed for inline constructs only when one could open before it', () => {
    expect(parseCommands('looks good\nand fine\n/apply staging', ENVS)).toEqual(apply);
    expect(parsed.inputs).toHaveLength(1);
    parsed.inputs.length = 0;
    expect(parseCommands('looks `good`\n/apply staging', ENVS)).toEqual(apply);
    expect(parsed.inputs).toHaveLength(2);
    expect(parsed.inputs[1]).toBe('looks `good`\n/apply staging');
  });

  it('inline parsing is bounded: HTML comment openers or link ends times paragraph length', () => {
    const paragraph = (unit: string, n: number) => 'x ' + unit.repeat(n) + '\n/apply staging';
    const fits = Math.floor(Math.sqrt(MAX_INLINE_COST / 7)) - 5; // 7 characters and one scan per unit
    expect(parseCommands(paragraph('a <!-- ', fits), ENVS)).toEqual(apply);
    expect(parsed.inputs).toHaveLength(2);
    parsed.inputs.length = 0;
    expect(parseCommands(paragraph('a <!-- ', 2 * fits), ENVS)).toEqual({ kind: 'invalid', problem: expect.stringContaining('holds 2,') });
    expect(parsed.inputs).toHaveLength(1);
    parsed.inputs.length = 0;
    expect(parseCommands(paragraph('[a](', 4 * fits), ENVS)).toMatchObject({ kind: 'invalid' });
    expect(parsed.inputs).toHaveLength(1);
    parsed.inputs.length = 0;
    expect(parseCommands(paragraph('[a]', 4 * fits), ENVS)).toMatchObject({ kind: 'invalid' });
    expect(parsed.inputs).toHaveLength(1);
  });

  it('one character more than the window limit is refused, not parsed', () => {
    const head = '```\nx\n```\n';
    const tail = '/apply staging';
    const body = head + 'y'.repeat(MAX_PARSE_CHARS + 1 - head.length - tail.length - 1) + '\n' + tail;
    expect(body.length).toBe(MAX_PARSE_CHARS + 1);
    expect(parseCommands(body, ENVS)).toEqual({ kind: 'invalid', problem: expect.stringContaining('spans 65,537 characters (berth reads at most 65,536)') });
    expect(parsed.inputs).toEqual([]);
  });

  it('nested lists and quotes up to the limit are parsed; one more is refused', () => {
    const nested = (n: number) => '- a\n' + '  - b\n'.repeat(n) + '/apply staging';
    expect(parseCommands(nested(MAX_NESTED_CONTAINERS), ENVS)).toEqual(apply);
    expect(parsed.inputs).toHaveLength(1);
    parsed.inputs.length = 0;
    expect(parseCommands(nested(MAX_NESTED_CONTAINERS + 1), ENVS)).toEqual({ kind: 'invalid', problem: expect.stringContaining('nests lists and quotes 1,001 times') });
    expect(parsed.inputs).toEqual([]);
  });
});
