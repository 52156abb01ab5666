import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Command, ParseResult } from '../src/github/commands.js';
import { COMMAND_NAMES, MAX_COMMENT_CHARS, commandText, helpTable, parseCommands, renderInvalid } from '../src/github/commands.js';

const ENVS = ['staging', 'production'] as const;

const none: ParseResult = { kind: 'none' };
const cmd = (command: Command): ParseResult => ({ kind: 'command', command });
/** An invalid result: the problem must match, the suggestion must be exactly this (or absent). */
const bad = (problem: RegExp, suggestion?: string) => ({
  kind: 'invalid',
  problem: expect.stringMatching(problem),
  ...(suggestion === undefined ? {} : { suggestion }),
});

const LOOK_ALIKE = /look-alike or invisible characters/;
const ONE_PER_COMMENT = /one command per comment/;

// [what, comment body, expected, environments (default staging, production)]
type Row = [what: string, body: string, expected: unknown, envs?: readonly string[]];
const rows: Row[] = [
  // ── commands ──
  ['plan everything', '/plan', cmd({ name: 'plan', envs: [] })],
  ['plan one environment', '/plan staging', cmd({ name: 'plan', envs: ['staging'] })],
  ['plan several, duplicates dropped', '/plan production staging production', cmd({ name: 'plan', envs: ['production', 'staging'] })],
  ['apply', '/apply staging', cmd({ name: 'apply', env: 'staging' })],
  ['leading and trailing whitespace', '   /apply production \t ', cmd({ name: 'apply', env: 'production' })],
  ['tabs between words', '/apply\tstaging', cmd({ name: 'apply', env: 'staging' })],
  ['stop everything', '/stop', cmd({ name: 'stop' })],
  ['stop one environment', '/stop production', cmd({ name: 'stop', env: 'production' })],
  ['unlock everything', '/unlock', cmd({ name: 'unlock' })],
  ['unlock one environment', '/unlock staging', cmd({ name: 'unlock', env: 'staging' })],
  ['rollback', '/rollback production', cmd({ name: 'rollback', env: 'production' })],
  ['help', '/help', cmd({ name: 'help' })],
  ['a command among prose', 'Looks good, shipping it.\n\n/apply staging\n\nThanks!', cmd({ name: 'apply', env: 'staging' })],
  ['right after a prose line', 'Shipping:\n/apply staging', cmd({ name: 'apply', env: 'staging' })],
  ['CRLF line endings', 'Please deploy\r\n/apply production\r\n', cmd({ name: 'apply', env: 'production' })],
  ['old Mac CR line endings', 'thanks\r/help\r', cmd({ name: 'help' })],
  ['continuation line of a list item', '- reviewed\n  /apply staging', cmd({ name: 'apply', env: 'staging' })],
  ['the only command outside a fence', '/apply staging\n```\n/apply production\n```', cmd({ name: 'apply', env: 'staging' })],
  ['after a closed HTML comment', '<!-- note -->\n/apply staging', cmd({ name: 'apply', env: 'staging' })],
  ['after a quote and a blank line', '> can you deploy?\n\n/apply staging', cmd({ name: 'apply', env: 'staging' })],
  ['a non-ASCII environment name taken exactly', '/apply übung', cmd({ name: 'apply', env: 'übung' }), ['übung']],

  // ── not commands: silently ignored ──
  ['empty comment', '', none],
  ['ordinary prose', 'Looks good to me 👍', none],
  ['a slash mid-line', 'the binary is in /usr/bin, see /apply staging docs', none],
  ['a path on a line of its own', '/usr/bin/foo', none],
  ['a short path', '/etc', none],
  ['a lone slash', '/', none],
  ['backtick fence', '```\n/apply staging\n```', none],
  ['tilde fence', '~~~\n/apply staging\n~~~', none],
  ['longer fence holding a shorter one', '````\n```\n/apply staging\n```\n````', none],
  ['fence closed only by a long enough run', '~~~~\n/plan\n~~~\n/apply staging\n~~~~', none],
  ['fence indented by three spaces', '   ```\n/apply staging\n   ```', none],
  ['fence with an info string', '```bash\n/apply staging\n```', none],
  ['unclosed fence runs to the end', 'example:\n```\n/apply staging', none],
  ['fence inside a list item', '- ```\n  /apply staging\n  ```', none],
  ['list item ends, a new fence opens (CommonMark)', '- ```\n  code\n```\n/apply staging\n```', none],
  ['indented code block', '    /apply staging', none],
  ['a tab indents a code block', '\t/apply staging', none],
  ['inline code', '`/apply staging`', none],
  ['code span over several lines', 'run `\n/apply staging\n` later', none],
  ['quote', '> /apply staging', none],
  ['quote without a space', '>/apply staging', none],
  ['nested quote', '> > /apply staging', none],
  ['quote inside a list item', '- > /apply staging', none],
  ['HTML comment block', '<!--\n/apply staging\n-->', none],
  ['inline HTML comment over lines', 'note <!--\n/apply staging\n--> end', none],
  ['pre block', '<pre>\n/apply staging\n</pre>', none],
  ['list item marker before it', '- /apply staging', none],
  ['escaped slash', '\\/apply staging', none],
  ['emphasised', '**/apply staging**', none],
  ['look-alike inside a fence', '```\n/аpply staging\n```', none],

  // ── near misses: reported with a did-you-mean ──
  ['typo in the command', '/aply staging', bad(/`\/aply` is not a berth command/, '/apply staging')],
  ['typo, short command', '/pln', bad(/`\/pln` is not a berth command/, '/plan')],
  ['transposed letters', '/stpo staging', bad(/is not a berth command/, '/stop staging')],
  ['typo in a long command', '/rollbak production', bad(/is not a berth command/, '/rollback production')],
  ['typo in command and environment', '/aply prod', bad(/is not a berth command/, '/apply production')],
  ['uppercase command', '/Apply staging', bad(/commands are lowercase/, '/apply staging')],
  ['missing environment', '/apply', bad(/`\/apply` needs an environment: `\/apply <env>`, where `<env>` is one of `staging`, `production`/)],
  ['missing environment, single choice suggested', '/rollback', bad(/needs an environment/, '/rollback staging'), ['staging']],
  ['unknown environment, prefix', '/apply prod', bad(/`prod` is not an environment of this repository/, '/apply production')],
  ['environment names are case-sensitive', '/apply Staging', bad(/case-sensitive/, '/apply staging')],
  ['abbreviated environment', '/apply stg', bad(/`stg` is not an environment/, '/apply staging')],
  ['one unknown among several', '/plan staging prd', bad(/`prd` is not an environment/, '/plan staging production')],
  ['unknown environment, nothing close', '/apply qa', bad(/`qa` is not an environment of this repository: environments are `staging`, `production`\./)],
  ['no environments configured', '/apply staging', bad(/defines no environments/), []],
  ['trailing text', '/apply staging please', bad(/Unexpected text after `\/apply staging`: `please`\. A command must be alone on its line/, '/apply staging')],
  ['trailing text after help', '/help me', bad(/Unexpected text after `\/help`/, '/help')],
  ['too many environments', '/apply staging production', bad(/`\/apply` takes exactly one environment, but this names 2/)],
  ['too many environments for stop', '/stop staging production', bad(/`\/stop` takes at most one environment/)],
  ['two commands', '/apply staging\n/apply production', bad(ONE_PER_COMMENT)],
  ['two commands in separate paragraphs', '/plan\n\nthen\n\n/help', bad(/This comment has 2 command lines \(line 1: `\/plan`, line 5: `\/help`\)/)],
  ['a command and a near miss', '/apply staging\n/aply production', bad(ONE_PER_COMMENT)],
  ['lazy continuation of a quote', '> can you deploy?\n/apply staging', bad(/part of the quote/, '/apply staging')],

  // ── look-alikes and invisibles: explained, never run ──
  ['Cyrillic а in the command', '/аpply staging', bad(LOOK_ALIKE, '/apply staging')],
  ['fullwidth solidus', '／apply staging', bad(/U\+FF0F fullwidth solidus at column 1/, '/apply staging')],
  ['fraction slash', '⁄apply staging', bad(LOOK_ALIKE, '/apply staging')],
  ['fullwidth letters', '/ａｐｐｌｙ staging', bad(LOOK_ALIKE, '/apply staging')],
  ['zero-width space inside the word', '/ap\u200bply staging', bad(/U\+200B zero-width space \(invisible\) at column 4/, '/apply staging')],
  ['zero-width joiner at the end', '/apply staging\u200d', bad(LOOK_ALIKE, '/apply staging')],
  ['no-break space between words', '/apply\u00a0staging', bad(/U\+00A0 no-break space/, '/apply staging')],
  ['no-break space before the slash', '\u00a0/apply staging', bad(LOOK_ALIKE, '/apply staging')],
  ['Cyrillic ѕ in the environment', '/apply ѕtaging', bad(LOOK_ALIKE, '/apply staging')],
  ['Greek omicron in the command', '/stοp', bad(LOOK_ALIKE, '/stop')],
  ['right-to-left override', '/apply \u202estaging', bad(LOOK_ALIKE, '/apply staging')],
  ['soft hyphen', '/un\u00adlock', bad(LOOK_ALIKE, '/unlock')],
];

describe('parseCommands', () => {
  it('has a table of at least 40 rows', () => expect(rows.length).toBeGreaterThanOrEqual(40));

  it.each(rows)('%s: %j', (_what, body, expected, envs = ENVS) => {
    expect(parseCommands(body, envs)).toEqual(expected);
  });

  it('every suggestion it makes is itself a valid command', () => {
    for (const [, body, , envs = ENVS] of rows) {
      const r = parseCommands(body, envs);
      if (r.kind !== 'invalid' || !r.suggestion || r.suggestion.includes('<env>')) continue;
      expect(parseCommands(r.suggestion, envs), `${JSON.stringify(body)} → ${r.suggestion}`).toMatchObject({ kind: 'command' });
    }
  });

  it('round-trips the canonical text of every command', () => {
    const commands: Command[] = [
      { name: 'plan', envs: [] },
      { name: 'plan', envs: ['production', 'staging'] },
      { name: 'apply', env: 'staging' },
      { name: 'stop' },
      { name: 'stop', env: 'staging' },
      { name: 'unlock' },
      { name: 'unlock', env: 'production' },
      { name: 'rollback', env: 'production' },
      { name: 'help' },
    ];
    for (const c of commands) expect(parseCommands(commandText(c), ENVS)).toEqual(cmd(c));
  });

  it('shows invisible characters in the problem instead of echoing them', () => {
    const r = parseCommands('/ap\u200bply \u202estaging', ENVS);
    expect(r.kind).toBe('invalid');
    const problem = (r as { problem: string }).problem;
    expect(problem).toContain('⟨U+200B⟩');
    expect(problem).toContain('⟨U+202E⟩');
    expect(problem).not.toMatch(/[\u200b\u202e]/);
  });

  it('quotes user text so backticks cannot break out of inline code', () => {
    const r = parseCommands('/apply `x`', ENVS);
    expect(r).toEqual(bad(/^`` `x` `` is not an environment/));
  });

  it('never treats a command with an inserted look-alike or invisible character as a command', () => {
    const odd = ['\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u00a0', '\u00ad', '\u202e', 'а', 'е', 'о', 'р', 'с', 'ο', '／', '⁄', '\u3000'];
    fc.assert(
      fc.property(
        fc.constantFrom('/apply staging', '/plan', '/stop production', '/help', '/rollback staging', '/unlock'),
        fc.nat(),
        fc.constantFrom(...odd),
        fc.boolean(),
        (line, at, ch, replace) => {
          const i = at % (line.length + 1);
          const mutated = line.slice(0, i) + ch + line.slice(replace ? i + 1 : i);
          const r = parseCommands(`thanks\n\n${mutated}\n`, ENVS);
          expect(r.kind).not.toBe('command');
        },
      ),
      { numRuns: 500 },
    );
  });

  it('only returns a command when one line literally is that command', () => {
    const piece = fc.constantFrom('/apply staging', '/plan', '/help', '> ', '```', '~~~', '`', '<!--', '-->', '- ', '    ', 'text', '\n', '\n', '\r\n', ' ', '/aply', 'staging', '\u200b', 'а');
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 30 }), (pieces) => {
        const body = pieces.join('');
        const r = parseCommands(body, ENVS);
        if (r.kind === 'command') {
          const lines = body.split(/\r\n|\r|\n/).map((l) => l.replace(/^[ \t]+|[ \t]+$/g, '').replace(/[ \t]+/g, ' '));
          expect(lines).toContain(commandText(r.command));
        }
      }),
      { numRuns: 2000 },
    );
  });

  describe('size limits', () => {
    // A guard against catastrophic (super-linear) parsing, not a latency target: linear takes
    // ~1 s for the slowest 1 MB case on a quiet 2-core machine, a quadratic scan of 1 MB takes
    // hours. The bound is far above what a loaded machine needs, well under the test timeout.
    const SUPERLINEAR_MS = 30_000;
    const filler = 'Some review prose that goes on and on, with `code`, > quotes and /slashes.\n';

    it('finds a command at the end of a 1 MB comment, in linear time', () => {
      const body = filler.repeat(Math.floor((MAX_COMMENT_CHARS - 100) / filler.length)) + '\n/apply staging\n';
      expect(body.length).toBeLessThanOrEqual(MAX_COMMENT_CHARS);
      const t0 = performance.now();
      expect(parseCommands(body, ENVS)).toEqual(cmd({ name: 'apply', env: 'staging' }));
      expect(performance.now() - t0).toBeLessThan(SUPERLINEAR_MS);
    });

    it.each([
      ['backticks', '`'.repeat(MAX_COMMENT_CHARS)],
      ['backtick runs of every length', Array.from({ length: 1400 }, (_, i) => '`'.repeat(i + 1)).join(' x ').slice(0, MAX_COMMENT_CHARS)],
      ['unclosed HTML comments', 'a <!-- '.repeat(MAX_COMMENT_CHARS / 7)],
      ['deeply nested quotes', '> '.repeat(MAX_COMMENT_CHARS / 4) + '\n/apply staging'],
      ['deeply nested lists and blank lines', '1. '.repeat(200) + '\n'.repeat(MAX_COMMENT_CHARS - 600)],
      ['long indentation on many lines', (' '.repeat(1000) + 'x\n').repeat(1000)],
      ['a huge single line that starts like a command', '/apply ' + 'staging '.repeat(MAX_COMMENT_CHARS / 8 - 1)],
      ['a huge look-alike line', '/аpply ' + 'ѕ'.repeat(MAX_COMMENT_CHARS - 10)],
      ['many near-miss lines', '/aply staging\n'.repeat(MAX_COMMENT_CHARS / 14)],
    ])('stays fast on pathological input: %s', (_what, body) => {
      const t0 = performance.now();
      const r = parseCommands(body, ENVS);
      expect(performance.now() - t0).toBeLessThan(SUPERLINEAR_MS);
      if (r.kind === 'invalid') expect(r.problem.length).toBeLessThan(1000);
    });

    it('reports, rather than scans, a comment over the cap that has a command-like line', () => {
      const body = 'x'.repeat(MAX_COMMENT_CHARS) + '\n/apply staging';
      expect(parseCommands(body, ENVS)).toEqual(bad(/characters long; berth reads commands only from comments of at most 1,048,576 characters/));
    });

    it('ignores a comment over the cap without any command-like line', () => {
      expect(parseCommands('y'.repeat(MAX_COMMENT_CHARS + 1), ENVS)).toEqual(none);
    });
  });
});

describe('help and invalid-command replies', () => {
  it('lists every command with its usage and a description', () => {
    const table = helpTable(ENVS);
    const lines = table.split('\n');
    expect(lines[0]).toBe('| Command | What it does |');
    expect(lines[1]).toBe('| --- | --- |');
    const usages = ['`/plan [env…]`', '`/apply <env>`', '`/stop [env]`', '`/unlock [env]`', '`/rollback <env>`', '`/status [env]`', '`/help`'];
    expect(usages).toHaveLength(COMMAND_NAMES.length);
    usages.forEach((u, i) => {
      expect(lines[i + 2]).toMatch(new RegExp(`^\\| ${u.replace(/[[\]]/g, '\\$&')} \\| .{10,} \\|$`));
    });
    expect(table).toContain('Environments, in promotion order: `staging`, `production`.');
    expect(table).toContain('one command per comment');
  });

  it('says so when no environment is configured', () => {
    expect(helpTable([])).toContain('defines no environments');
  });

  it('the help table parses as no command at all (quoting it back is harmless)', () => {
    expect(parseCommands(helpTable(ENVS), ENVS)).toEqual(none);
  });

  it('renders the problem, the did-you-mean and the help table', () => {
    const r = parseCommands('/aply prod', ENVS);
    if (r.kind !== 'invalid') throw new Error('expected invalid');
    const body = renderInvalid(r, ENVS);
    expect(body).toBe(
      [
        '### ⚠️ berth did not run this command',
        '',
        '`/aply` is not a berth command.',
        '',
        'Did you mean `/apply production`?',
        '',
        helpTable(ENVS),
      ].join('\n'),
    );
  });

  it('leaves out the did-you-mean when there is no suggestion', () => {
    const r = parseCommands('/apply staging\n/help', ENVS);
    if (r.kind !== 'invalid') throw new Error('expected invalid');
    const body = renderInvalid(r, ENVS);
    expect(body).not.toContain('Did you mean');
    expect(body).toContain('one command per comment');
    expect(body).toContain(helpTable(ENVS));
  });

  it('a reply quoting an invalid command back is not itself a command', () => {
    for (const input of ['/aply staging', '/apply prod', '/аpply staging', '/apply staging please']) {
      const r = parseCommands(input, ENVS);
      if (r.kind !== 'invalid') throw new Error(`expected invalid for ${input}`);
      expect(parseCommands(renderInvalid(r, ENVS), ENVS)).toEqual(none);
    }
  });
});
