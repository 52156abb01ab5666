// Red team: Docker and runc quote what they were given with Go's strconv.Quote (`exec: %q: executable file
// not found`), which writes a control character as `\x01` / `\x7f`, a non-printing one (a no-break space) as
// `\u00a0` and one past U+FFFF as `\U000e0041` — forms berth's masker did not know (it knew the JSON and the
// code-span forms: `\u0001`, a raw no-break space, `\u{e0041}`). A secret holding such a character (a random
// one, made of arbitrary bytes) came back from Docker whole, and was stored, logged and posted to GitHub.
// The secret's Go-quoted forms (%q, %+q) are masked too.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { appForBlock } from '../chaos/app-harness.js';
import { describeDocker } from '../helpers/env.js';
import { Masker } from '../../src/plan/mask.js';
import { sentTexts } from '../helpers/sent-texts.js';

describe("a secret as Go's strconv.Quote writes it", () => {
  const cases: [string, string][] = [
    ['a control character', 'Tr0ub4dor\x01And3'],
    ['DEL', 'c0rrect\x7fh0rseBattery'],
    ['a bell and a vertical tab', 'Staple\x07Gun\x0bRocket'],
    ['a no-break space', 'N0Break\u00a0Sp4ceX'],
    ['a character past U+FFFF that does not print', 'T4gged\u{e0041}Secr3t'],
    ['a non-ASCII letter (%+q writes it \\u00e9)', 'Caf\u00e9Cr\u00e8meBr\u00fbl\u00e9e'],
    ['a quote and a backslash', 'Tr0ub"4dor\\And3'],
  ];
  const goQuote = (s: string, ascii = false) =>
    [...s]
      .map((c) => {
        const n = c.codePointAt(0)!;
        if (c === '"' || c === '\\') return `\\${c}`;
        const named: Record<number, string> = { 7: '\\a', 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r' };
        if (named[n]) return named[n];
        if (n < 0x20 || n === 0x7f) return `\\x${n.toString(16).padStart(2, '0')}`;
        const prints = /[\p{L}\p{M}\p{N}\p{P}\p{S}]/u.test(c) || c === ' ';
        if (prints && (!ascii || n < 0x80)) return c;
        return n > 0xffff ? `\\U${n.toString(16).padStart(8, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
      })
      .join('');
  for (const [what, secret] of cases)
    it(`is masked in a Docker message: ${what}`, () => {
      const m = new Masker([], [secret]).withPieces();
      // quoted once (runc), and quoted again inside a quoted message (containerd: `exec: \"…\"`)
      for (const quoted of [goQuote(secret), goQuote(secret, true), goQuote(goQuote(secret)), goQuote(goQuote(secret, true))]) {
        const message = `OCI runtime create failed: exec: "${quoted}": executable file not found in $PATH`;
        const shown = m.text(message);
        expect(shown).toContain('executable file not found');
        expect(shown).toBe(message.replace(quoted, '••••••'));
      }
    });
});

// Through the real app and dockerd: runc's `exec: "…"` with the secret as a command (a control character leaked;
// a quote and a backslash, which Go and JSON escape alike, stay masked as before).
const e2e: [string, string, string, string[]][] = [
  ['a control character', 'acme/rt-go-quoted', 't-rt-goq', ['"Tr0ub4dor\\x01And3"', 'Tr0ub4dor']],
  ['a quote and a backslash', 'acme/rt-go-quoted2', 't-rt-goq2', ["'Qu0teZebra\"Yak9\\Walrus'", 'Qu0teZebra', 'Walrus']],
  ['HTML characters (stay masked as before)', 'acme/rt-go-quoted3', 't-rt-goq3', ["'Amp3rs&nd<Less>Yak9'", 'Amp3rs', 'Less']],
].map(([what, repo, project, [yaml, ...pieces]]) => [what as string, repo as string, project as string, [yaml!, ...pieces]]);

for (const [what, REPO, PROJECT, [yaml, ...PIECES]] of e2e) {
  const CONFIG = [`project: ${PROJECT}`, 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', '    variables:', `      DB_PASSWORD: ${yaml}`, ''].join('\n');
  const COMPOSE = ['services:', '  web:', '    image: berth-test/app:1', '    command: ["${DB_PASSWORD}"]', ''].join('\n');

  describeDocker(`a secret Docker's runtime quotes with strconv.Quote: ${what}`, () => {
    const app = appForBlock({ repo: REPO, project: PROJECT }, { '.github/berth.yml': CONFIG, 'compose.yml': 'services: {}\n' });

    it('reaches neither GitHub nor the logs', async () => {
      const head = createHash('sha1').update(PROJECT).digest('hex');
      app().fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE });
      app().fake.setPull(REPO, 1, { headSha: head, author: 'mallory', mergeable: true });
      await app().open(1, head);
      for (const p of PIECES) expect(app().berthComments(1).map((c) => c.body).join('\n')).not.toContain(p);
      await app().say(1, '/apply staging', 'alice');
      await app().drain();
      const texts = sentTexts(app().fake.requests);
      // the apply did fail on the exec, and said so
      expect(texts.some((t) => /executable file not found|no such file/.test(t))).toBe(true);
      for (const p of PIECES) {
        expect(texts.filter((t) => t.includes(p))).toEqual([]);
        expect(app().logs.filter((l) => l.includes(p))).toEqual([]);
      }
    }, 120_000);
  });
}
