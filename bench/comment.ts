// parse_comment_*_ms: parseCommands() on comments at the sizes and shapes
// that bound its cost. micromark is not linear on every input (nested lists,
// unclosed inline constructs), so berth bounds what it parses
// (src/github/comment-layout.ts); these figures show what the bounds cost:
// - parse_comment_64k_ms: a 65,536-character review comment (GitHub's limit)
//   whose whole text must be parsed (a fence at the top), command at the end;
// - parse_comment_1m_ms: 1 MiB of prose, then the command (berth's cap; the
//   parse window is the command's paragraph only);
// - parse_comment_worst_*_ms: the costliest inputs that still reach the
//   parser: a full window of `[` / emphasis / backtick runs before a command
//   line of the same paragraph, unclosed HTML comments, link destinations and
//   link ends at the inline limit, nested lists at the nesting limit;
// - parse_comment_refused_1m_ms: a 1 MiB comment refused before parsing.
import { MAX_COMMENT_CHARS, parseCommands } from '../src/github/commands.js';
import { MAX_INLINE_COST, MAX_NESTED_CONTAINERS, MAX_PARSE_CHARS } from '../src/github/comment-layout.js';
import type { Figure } from './lib.js';
import { figure, time } from './lib.js';

const ENVS = ['staging', 'production'];
const RUNS = 15;
const WARMUP = 3;
/** Not from the design: a provisional budget, well inside a webhook's handling time. */
export const PARSE_COMMENT_TARGET_MS = 250;

const COMMAND = '/apply staging';
const FENCE = '```\nx\n```\n';

/** `head`, then `unit` repeated, then the command line, `size` characters at most. */
function fill(head: string, unit: string, size: number, sep = '\n'): string {
  const room = size - head.length - sep.length - COMMAND.length;
  return head + unit.repeat(Math.floor(room / unit.length)) + sep + COMMAND;
}

const REVIEW = [
  'Thanks, this looks mostly right. A few notes on the `web` service:',
  '',
  '- the healthcheck interval is `5s`, which is aggressive for **production**;',
  '  - see [the docs](https://example.com/compose#healthcheck) and <https://example.com>',
  '  - and ~~maybe~~ use `start_period`',
  '1. rename `db` to `postgres`',
  '',
  '> previously we used `nginx:1.27` here',
  '> and it worked',
  '',
  '```diff',
  '- image: nginx:1.27',
  '+ image: nginx:1.28',
  '```',
  '',
  '| service | image |',
  '| --- | --- |',
  '| web | `nginx:1.28` |',
  '',
  '<details><summary>log</summary>',
  '',
  '    indented output line',
  '',
  '</details>',
  '',
].join('\n');

export async function bench(log: (line: string) => void): Promise<Figure[]> {
  const inputs: [name: string, body: string, expect: string][] = [
    ['parse_comment_64k_ms', fill(FENCE, REVIEW, MAX_PARSE_CHARS), 'command'],
    ['parse_comment_1m_ms', fill('', 'Some review prose that goes on and on, with `code`, > quotes and /slashes.\n', MAX_COMMENT_CHARS, '\n\n'), 'command'],
    ['parse_comment_worst_brackets_64k_ms', fill(FENCE, '[', MAX_PARSE_CHARS), 'command'],
    ['parse_comment_worst_emphasis_64k_ms', fill(FENCE + '<', '*_', MAX_PARSE_CHARS), 'command'],
    ['parse_comment_worst_html_comments_ms', fill('x ', 'a <!-- ', 7 * Math.floor(Math.sqrt(MAX_INLINE_COST / 7)) - 20), 'command'],
    ['parse_comment_worst_link_destinations_ms', fill('x ', '[a](', 4 * Math.floor(Math.sqrt(MAX_INLINE_COST / 4)) - 20), 'command'],
    ['parse_comment_worst_link_ends_ms', fill('x ', '[a]', 3 * Math.floor(Math.sqrt(MAX_INLINE_COST / 3)) - 20), 'command'],
    ['parse_comment_worst_backtick_runs_64k_ms', FENCE + Array.from({ length: 360 }, (_, i) => '`'.repeat(i + 1)).join(' x ').slice(0, MAX_PARSE_CHARS - FENCE.length - 20) + '\n' + COMMAND, 'command'],
    ['parse_comment_worst_nested_lists_ms', '- a\n' + '  - b\n'.repeat(MAX_NESTED_CONTAINERS) + COMMAND, 'command'],
    ['parse_comment_refused_1m_ms', fill('', '/aply staging\n', MAX_COMMENT_CHARS, ''), 'invalid'],
  ];
  const out: Figure[] = [];
  for (const [name, body, expect] of inputs) {
    const got = parseCommands(body, ENVS).kind;
    if (got !== expect) throw new Error(`${name}: expected ${expect}, got ${got}`);
    const samples = await time(() => parseCommands(body, ENVS), RUNS, WARMUP);
    log(`${name}: ${body.length} characters → ${got}`);
    // The worst cases are reported, not targeted: they show what a hostile comment can cost at most.
    out.push(figure(name, samples, name.includes('_worst_') ? null : PARSE_COMMENT_TARGET_MS, { chars: body.length }));
  }
  return out;
}
