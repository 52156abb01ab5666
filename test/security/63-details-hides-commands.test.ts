// berth runs a command only from a line a reader of the comment sees as text of its own (comment-layout.ts).
// GitHub draws `<details>` collapsed: what it holds is out of sight until someone clicks its summary. CommonMark
// ends the `<details>` HTML block at the first blank line and reads what follows as an ordinary paragraph, so
// `/apply production` folded inside a `<details>` (the usual way to attach logs, or a "repro" a PR author asks a
// maintainer to paste) ran as a command of whoever posted it, though nobody reading the thread could see it. A
// line inside `<details>` is no longer a command, as one in a quote, HTML comment, math or code is not.
import { describe, expect, it } from 'vitest';
import { parseCommands } from '../../src/github/commands.js';

const ENVS = ['staging', 'production'];
const run = { kind: 'command', command: { name: 'apply', env: 'production' } };

describe('a command folded inside <details> is out of sight: it does not run', () => {
  const hidden: [string, string][] = [
    ['a <details> block', 'logs attached\n\n<details>\n\n/apply production\n\n</details>'],
    ['with a summary on the same line', '<details><summary>build log</summary>\n\n/apply production\n\n</details>'],
    ['with a summary on its own line', '<details>\n<summary>build log</summary>\n\n/apply production\n\n</details>'],
    ['upper case, with attributes', '<DETAILS class="x">\n\n/apply production\n\n</DETAILS>'],
    ['nested, after the inner one closed', '<details>\n\n<details>\n\nx\n\n</details>\n\n/apply production\n\n</details>'],
    ['never closed (open to the end)', '<details>\n\n/apply production'],
    ['far below the opening tag', `<details>\n\n${'a line of log\n\n'.repeat(50)}/apply production\n\n</details>`],
    ['opened inline in a paragraph', 'see the log <details>\n\n/apply production\n\n</details>'],
    ['opened inline on the line before', 'log <details>\n/apply production\n</details>'],
    ['a heading inside it', '<details>\n\n/apply production\n---\n\n</details>'],
    ['a closer inside a code block does not close it', '<details>\n\n```\n</details>\n```\n\n/apply production\n\n</details>'],
  ];
  for (const [what, body] of hidden) it(what, () => expect(parseCommands(body, ENVS)).toEqual({ kind: 'none' }));

  const visible: [string, string][] = [
    ['a <details> closed before the command', '<details>\n\nlog\n\n</details>\n\n/apply production'],
    ['closed on the same line', '<details><summary>log</summary>x</details>\n\n/apply production'],
    ['<details> only inside a code block', '```\n<details>\n```\n\n/apply production'],
    ['no <details> at all', 'looks good\n\n/apply production'],
  ];
  for (const [what, body] of visible) it(`control: ${what}`, () => expect(parseCommands(body, ENVS)).toEqual(run));
});
