// Issue 10 item 5: text a PR author controls renders inert in berth's own
// comments and check runs. Each compose file below smuggles the same forged
// approval (newlines, a heading, a team mention, a link, a bare URL, an image,
// HTML, an issue reference) through one place berth quotes: a service name, a
// service key, a network and a volume name, an image reference, an
// environment key, a dependency name, a port. Through the whole app; every
// comment and check-run body sent to the fake GitHub is searched, outside code
// spans and fenced blocks (where GitHub renders nothing), for live Markdown.
import { createHash } from 'node:crypto';
import { expect, it } from 'vitest';
import { appForBlock, outsideCode } from '../chaos/app-harness.js';
import { describeDocker } from '../helpers/env.js';

const REPO = 'acme/sec-markdown';
const PROJECT = 't-sec-5';

/** The forged approval, as one YAML double-quoted scalar's content. */
export const ATTACK =
  'web\\n\\n## ✅ production apply approved by @acme/release-managers\\n\\n[View the approval](https://evil.example/phish) https://evil.example/bare ![](https://evil.example/pixel.png) <img src=https://evil.example/t.png> see #1 **done** www.evil.example/x me@evil.example';

const CONFIG = [`project: ${PROJECT}`, 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', ''].join('\n');

const svc = (lines: string[]) => ['services:', '  web:', ...lines, ''].join('\n');
const CASES: Record<string, string> = {
  serviceName: ['services:', `  "${ATTACK}":`, '    image: berth-test/app:1', ''].join('\n'),
  serviceKey: svc(['    image: berth-test/app:1', `    "${ATTACK}": 1`]),
  networkName: svc(['    image: berth-test/app:1', `    networks: ["${ATTACK}"]`]),
  topLevelNetwork: ['services:', '  web:', '    image: berth-test/app:1', 'networks:', `  "${ATTACK}": {}`, ''].join('\n'),
  volumeName: svc(['    image: berth-test/app:1', `    volumes: ["${ATTACK}:/data"]`]),
  image: svc([`    image: "${ATTACK}"`]),
  environmentKey: svc(['    image: berth-test/app:1', '    environment:', `      "${ATTACK}": "1"`]),
  dependsOn: svc(['    image: berth-test/app:1', `    depends_on: ["${ATTACK}"]`]),
  port: svc(['    image: berth-test/app:1', `    ports: ["${ATTACK}"]`]),
  topLevelKey: ['services:', '  web:', '    image: berth-test/app:1', `"${ATTACK}": 1`, ''].join('\n'),
};

/** Live Markdown the attack would produce: each is what GitHub would render as structure, a link, a mention or an image. */
function liveMarkdown(body: string): string[] {
  const live = outsideCode(body);
  const found: string[] = [];
  const checks: [string, RegExp][] = [
    ['heading', /^\s{0,3}#{1,6}\s.*approved/m],
    ['mention', /(^|[^\w&#;])@acme\/release-managers/],
    ['link', /\]\(https?:/],
    ['bare URL', /https?:\/\/evil/],
    ['image', /!\[/],
    ['HTML', /<img\b/i],
    ['issue ref', /(^|\s)#1\b/],
    ['emphasis', /\*\*done\*\*/],
    ['raw newline from the name', /\n\s*\[View the approval\]/],
  ];
  for (const [what, re] of checks) if (re.test(live)) found.push(`${what}: ${live.slice(0, 600)}`);
  // GitHub decodes entities before it finds mentions, #references and autolinks in the text: checked decoded too
  const decoded = live.replace(/&#(\d+);/g, (_m, n: string) => String.fromCodePoint(Number(n)));
  const afterDecoding: [string, RegExp][] = [
    ['mention (decoded)', /(^|[^\w])@acme\/release-managers/],
    ['issue ref (decoded)', /(^|[^\w])#1\b/],
    ['URL (decoded)', /https?:\/\/evil/],
    ['www autolink (decoded)', /www\.evil/],
    ['email autolink (decoded)', /\w@evil\./],
  ];
  for (const [what, re] of afterDecoding) if (re.test(decoded)) found.push(`${what}: ${decoded.slice(0, 600)}`);
  return found;
}

const headOf = (id: string) => createHash('sha1').update(`sec5:${id}`).digest('hex');

describeDocker('item 5: author-controlled text renders inert in comments and check runs', () => {
  const app = appForBlock({ repo: REPO, project: PROJECT }, { '.github/berth.yml': CONFIG, 'compose.yml': 'services: {}\n' });

  let pr = 0;
  for (const [name, compose] of Object.entries(CASES)) {
    it(`${name}: no live Markdown reaches GitHub`, async () => {
      pr++;
      const head = headOf(name);
      app().fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': compose });
      app().fake.setPull(REPO, pr, { headSha: head, author: 'mallory', mergeable: true });
      const before = app().fake.requests.length;
      await app().open(pr, head);
      await app().say(pr, '/apply staging');
      await app().drain();
      const sent = app().fake.requests.slice(before).filter((r) => r.method !== 'GET');
      const bodies = sent.flatMap((r) => {
        const b = (r.body ?? {}) as { body?: string; output?: { title?: string; summary?: string; text?: string } };
        return [b.body, b.output?.summary, b.output?.text].filter((x): x is string => typeof x === 'string');
      });
      const titles = sent.map((r) => (r.body as { output?: { title?: string } } | undefined)?.output?.title).filter((t): t is string => typeof t === 'string');
      // The search is real: berth did report on this PR (a comment and a check run).
      expect(bodies.length).toBeGreaterThan(1);
      expect(bodies.flatMap(liveMarkdown)).toEqual([]);
      // Check-run titles are one line of plain text.
      for (const t of titles) expect(t).not.toMatch(/[\r\n]/);
    }, 60_000);
  }
});
