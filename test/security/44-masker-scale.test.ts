// Red-team round 8, H2: the masker redacted with one regular expression made
// of every text it had learnt, and what a secret fed is learnt too — as many
// texts as the PR writes. 2,000 command words `q<i>z${DB_PASSWORD}` made the
// pattern larger than V8 accepts: the plan failed quoting V8's message (the
// pattern: the secret regex-escaped, which nothing masked), the process-wide
// outbound masker threw on every later comment, check run and log line of
// every repository, and `berth plan` let the error escape to Node, which
// printed it, secret and all. Masking now never throws whatever it holds
// (patterns of bounded size, a text too long for one found as it is), and a
// text that holds a secret as given is masked by that secret's own entry, not
// remembered again.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { parseConfig } from '../../src/config/config.js';
import { Masker, MASK } from '../../src/plan/mask.js';
import { outText } from '../../src/text/outbound.js';
import { planFirstEnvironment } from '../helpers/planning-bot.js';

const SECRET = 'Tr0ub4dor.Xyz';
const words = (n: number) => Array.from({ length: n }, (_, i) => `"q${i}z\${DB_PASSWORD}"`).join(', ');

describe('a PR cannot make masking throw', () => {
  it('2,000 command words built from a secret: the plan renders, masked, and outbound text still works afterwards', async () => {
    const c = parseConfig(['project: p', 'environments:', '  - name: staging', '    compose: [compose.yml]', `    variables: {DB_PASSWORD: "${SECRET}"}`].join('\n'), '.github/berth.yml');
    const files: Record<string, string> = { 'compose.yml': `services:\n  web:\n    image: nginx:1\n    command: [${words(2000)}]\n` };
    const docker = { getImage: () => ({ distribution: async () => ({ Descriptor: { digest: `sha256:${'a'.repeat(64)}` } }), inspect: async () => { throw new Error('no'); } }) } as unknown as Dockerode;
    const r = await planFirstEnvironment(c, files, docker);
    expect(r.ok, r.markdown.slice(0, 300)).toBe(true);
    expect(r.markdown).not.toContain('Tr0ub4dor');
    // the process-wide masker: what another repository's plan or a log line sends next, a word of this one masked
    expect(outText('berth plan for another repository')).toBe('berth plan for another repository');
    expect(outText(`exec: q17z${SECRET}: not found`)).toBe(`exec: q17z${MASK}: not found`);
  }, 60_000);

  it('berth plan prints nothing of the secret and returns', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sec44-cli-'));
    mkdirSync(join(dir, '.github'));
    writeFileSync(join(dir, '.github/berth.yml'), ['project: sec44cli', 'environments:', '  - name: staging', '    compose: [compose.yml]', '    variables: {DB_PASSWORD: "Tr0ub4dorXyz"}', ''].join('\n'));
    writeFileSync(join(dir, 'compose.yml'), `services:\n  web:\n    image: berth-test/app:1\n    pull_policy: never\n    command: [${words(2000)}]\n`);
    const printed: string[] = [];
    const before = process.env.BERTH_PIN_IMAGES;
    process.env.BERTH_PIN_IMAGES = 'off';
    try {
      const code = await main(['plan', '--repo', dir, '--env', 'staging', '--database', `sqlite:${join(dir, 'db.sqlite')}`], { out: (s) => void printed.push(s), err: (s) => void printed.push(s) });
      expect(code).toBe(2);
    } finally {
      if (before === undefined) delete process.env.BERTH_PIN_IMAGES;
      else process.env.BERTH_PIN_IMAGES = before;
    }
    expect(printed.join('\n')).toContain('web');
    expect(printed.join('\n')).not.toContain('Tr0ub4dorXyz');
  }, 60_000);

  it('a masker holding tens of thousands of texts, or one of 200 KB, masks each and never throws', () => {
    const many = Array.from({ length: 20_000 }, (_, i) => `s3cret-${i.toString(36)}-${'k'.repeat(60)}`);
    const m = new Masker([], many);
    expect(m.text(`a ${many[0]} b ${many[19_999]!.toUpperCase()} c`)).toBe(`a ${MASK} b ${MASK} c`);
    const long = `${'Ab'.repeat(100_000)}!`;
    const l = new Masker([], [long]);
    expect(l.text(`x${long}y ${long.toLowerCase()}`)).toBe(`x${MASK}y ${MASK}`);
    // learnt one by one, as a long-running server learns them
    const grown = new Masker([], ['hunter22']);
    for (const v of many.slice(0, 5_000)) grown.taint(v);
    expect(grown.text(`${many[4_999]} hunter22`)).toBe(`${MASK} ${MASK}`);
  });
});
