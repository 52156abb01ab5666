// The outbound masker redacts every secret value it knows, as written and as
// JSON quotes it. But berth's prose escaper (escape.ts `inert`) writes every
// ASCII character but letters, digits, space and `-,()` as a numeric entity
// before the text reaches the masker: a secret like `sec26_net.s3cret` went out
// as `sec26&#95;net&#46;s3cret`, which GitHub renders as the secret itself.
// A secret variable interpolated into an external network's `name:` is not a
// service field, and the plan error that names the missing network (in bold
// prose at the head of the PR comment, and in the check run's title) quoted it
// that way. Through the whole app; every body and title sent to the fake
// GitHub is searched with its entities decoded.
import { createHash } from 'node:crypto';
import { expect, it } from 'vitest';
import { appForBlock } from '../chaos/app-harness.js';
import { describeDocker } from '../helpers/env.js';
import { sentTexts } from '../helpers/sent-texts.js';

const REPO = 'acme/sec-escaped';
const PROJECT = 't-sec-26';
const SECRET = 'sec26_net.s3cret';

const CONFIG = [`project: ${PROJECT}`, 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', '    variables:', `      NET_PASSWORD: "${SECRET}"`, ''].join('\n');
const COMPOSE = ['services:', '  web:', '    image: berth-test/app:1', '    networks: [n]', 'networks:', '  n:', '    external: true', '    name: "${NET_PASSWORD}"', ''].join('\n');

/** What GitHub renders: numeric and the common named entities decoded. */
const rendered = (s: string) =>
  s
    .replace(/&#(\d+);/g, (_m, d: string) => String.fromCharCode(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');

describeDocker('a secret escaped as HTML entities is still masked', () => {
  const app = appForBlock({ repo: REPO, project: PROJECT }, { '.github/berth.yml': CONFIG, 'compose.yml': 'services: {}\n' });

  it('the plan error naming a missing external network does not show the secret its name came from', async () => {
    const head = createHash('sha1').update('sec26').digest('hex');
    app().fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE });
    app().fake.setPull(REPO, 1, { headSha: head, author: 'mallory', mergeable: true });
    await app().open(1, head);
    await app().drain();
    const texts = sentTexts(app().fake.requests);
    // The search is real: berth did report the refusal (the network is named, its name masked).
    expect(texts.some((t) => t.includes('external_missing') || /is external, but the target has no network/.test(rendered(t)))).toBe(true);
    expect(texts.filter((t) => rendered(t).includes(SECRET)).map((t) => rendered(t).slice(0, 400))).toEqual([]);
  }, 60_000);
});
