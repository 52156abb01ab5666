// berth runs a command only from a line GitHub renders as text of its own
// (src/github/comment-layout.ts). GitHub renders math — `$$` blocks, `$$…$$`
// and `$…$` inside a paragraph — with MathJax: a command line inside it shows
// as a formula, or not at all (`\phantom{…}`), yet CommonMark alone reads it
// as paragraph text. Such a line must not run (a reader cannot see it).
import { describe, expect, it } from 'vitest';
import { parseCommands } from '../../src/github/commands.js';

const ENVS = ['staging', 'production'];
const run = { kind: 'command', command: { name: 'apply', env: 'production' } };

describe('a command inside math renders as a formula (or nothing) on GitHub: it does not run', () => {
  const hidden: [string, string][] = [
    ['a $$ block', '$$\n/apply production\n$$'],
    ['a $$ block drawing nothing (\\phantom)', '$$\n\\phantom{\n/apply production\n}\n$$'],
    ['$$…$$ inside a paragraph', 'see $$\\phantom{\n/apply production\n}$$'],
    ['$…$ inside a paragraph', 'cost $\\phantom{\n/apply production\n}$ here'],
    ['an unclosed $$ block (open to the end)', '$$\n\n/apply production'],
    ['a $$ block after a blank line in it', 'hello\n\n$$\n\\phantom{x}\n\n/apply production\n$$'],
  ];
  for (const [what, body] of hidden) it(what, () => expect(parseCommands(body, ENVS)).toEqual({ kind: 'none' }));

  const visible: [string, string][] = [
    ['a price before the command, no closing $', 'it costs $5\n/apply production'],
    ['math closed before the command line', 'where $x$ holds\n/apply production'],
    ['a $$ block closed before it', '$$\nx\n$$\n/apply production'],
  ];
  for (const [what, body] of visible) it(`control: ${what}`, () => expect(parseCommands(body, ENVS)).toEqual(run));
});
