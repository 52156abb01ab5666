// Text a PR author controls reaches comments and check runs through escape.ts,
// which wrote as escapes only a list of control, zero-width and bidi characters
// (U+200B–U+200F, U+202A–U+202E, U+2060–U+2064, U+2066–U+2069, U+FEFF). Other
// characters that render as nothing or reorder text went out as they were:
// U+061C ARABIC LETTER MARK (a bidi control), U+180E, U+206A–U+206F, U+00AD,
// U+034F, Hangul fillers, and the tag characters U+E0000–U+E007F, which spell
// ASCII no reader sees ("ASCII smuggling": instructions hidden in a bot's
// comment for whoever — or whatever — reads it next). A PR writes them into a
// compose key, an image reference, a network name; berth quotes each in its
// refusal. Through the whole app; every body and title sent to the fake GitHub
// must hold no default-ignorable or bidi-control character, and show each as
// an escape instead.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Masker } from '../../src/plan/mask.js';
import { block, code, inert } from '../../src/text/escape.js';
import { appForBlock } from '../chaos/app-harness.js';
import { describeDocker } from '../helpers/env.js';
import { sentTexts } from '../helpers/sent-texts.js';

const REPO = 'acme/sec-invisible';
const PROJECT = 't-sec-31';
const CONFIG = [`project: ${PROJECT}`, 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', ''].join('\n');

/** "approved" in tag characters (invisible), an Arabic letter mark, a Mongolian vowel separator, a soft hyphen, an inhibit-swapping control. */
const HIDDEN = `${[...'approved'].map((c) => String.fromCodePoint(0xe0000 + c.charCodeAt(0))).join('')}\\u061C\\u180E\\u00AD\\u206A`;

const CASES: Record<string, string> = {
  serviceKey: ['services:', '  web:', '    image: berth-test/app:1', `    "imag${HIDDEN}e": 1`, ''].join('\n'),
  image: ['services:', '  web:', `    image: "berth-test/app${HIDDEN}:1"`, ''].join('\n'),
  networkName: ['services:', '  web:', '    image: berth-test/app:1', `    networks: ["n${HIDDEN}"]`, ''].join('\n'),
};

/** What renders as nothing or reorders text (variation selectors excepted: they only pick an emoji's glyph). */
const INVISIBLE = /(?![\uFE00-\uFE0F])[\p{Default_Ignorable_Code_Point}\p{Bidi_Control}]/u;

const headOf = (id: string) => createHash('sha1').update(`sec31:${id}`).digest('hex');

describeDocker('invisible and bidi characters a PR writes never reach GitHub as they are', () => {
  const app = appForBlock({ repo: REPO, project: PROJECT }, { '.github/berth.yml': CONFIG, 'compose.yml': 'services: {}\n' });

  let pr = 0;
  for (const [name, compose] of Object.entries(CASES)) {
    it(`${name}: every comment and check run shows them as escapes`, async () => {
      pr++;
      const head = headOf(name);
      app().fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': compose });
      app().fake.setPull(REPO, pr, { headSha: head, author: 'mallory', mergeable: true });
      const before = app().fake.requests.length;
      await app().open(pr, head);
      await app().drain();
      const texts = sentTexts(app().fake.requests.slice(before));
      // The search is real: berth reported the refusal (and quotes the text, as escapes).
      expect(texts.length).toBeGreaterThan(1);
      expect(texts.filter((t) => INVISIBLE.test(t)).map((t) => JSON.stringify(t.slice(0, 300)))).toEqual([]);
      expect(texts.some((t) => /u\{?e0061\}?|u061c/i.test(t.replace(/&#92;/g, '\\')))).toBe(true);
    }, 60_000);
  }
});

describe('a secret holding such a character is masked in its escaped form', () => {
  // escape.ts writes the character as an escape, so the text GitHub gets holds neither the secret as
  // written, nor as JSON quotes it: the outbound masker must know the escaped form too.
  for (const [what, secret] of [
    ['soft hyphen', 'pa\u00adss-word9'],
    ['zero-width space', 'pa\u200bss-word9'],
    ['backspace', 'pa\bss-word9'],
    ['tag character', 'pa\u{e0041}ss-word9'],
  ] as const) {
    it(`${what}: in a code span, a fenced block and prose`, () => {
      const m = new Masker();
      m.absorb(new Masker([], [secret]));
      for (const shown of [code(`network ${secret} x`), block(`error: ${secret}\n`), inert(`value ${secret} x`)]) {
        expect(shown, 'the check is real: the escaped form is what is shown').toMatch(/ss-word9|ss&#45;word9/);
        expect(m.redact(shown)).not.toMatch(/ss-word9|ss&#45;word9/);
      }
    });
  }
});
