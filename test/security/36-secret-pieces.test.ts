// Docker splits some values and quotes only a piece in its error: `user: "UID:GROUP"` fails at start with
// `unable to find group GROUP: no matching entries in group file`. berth masked a Docker error by the whole
// secret value (and its escaped forms), so a secret fed into `user:` leaked the part after its first ':' in
// the apply's check run, the outcome comment and the logs (red team, 2026-12-05). The PR author writes
// `user: "${DB_PASSWORD}"`; the plan shows `user` masked, a writer applies it, and the failure must not
// report the password, whole or in pieces.
import { createHash } from 'node:crypto';
import { expect, it } from 'vitest';
import { appForBlock } from '../chaos/app-harness.js';
import { describeDocker } from '../helpers/env.js';
import { sentTexts } from '../helpers/sent-texts.js';

const REPO = 'acme/rt-docker-split';
const PROJECT = 't-rt-dsplit';
const SECRET = '1000:Tr0ub4dorAnd3';
const PIECE = 'Tr0ub4dorAnd3';

const CONFIG = [`project: ${PROJECT}`, 'environments:', '  - name: staging', '    compose: [compose.yml]', '    targets: [local]', '    variables:', `      DB_PASSWORD: "${SECRET}"`, ''].join('\n');
const COMPOSE = ['services:', '  web:', '    image: berth-test/app:1', '    user: "${DB_PASSWORD}"', ''].join('\n');

describeDocker('a secret split by Docker in its error message', () => {
  const app = appForBlock({ repo: REPO, project: PROJECT }, { '.github/berth.yml': CONFIG, 'compose.yml': 'services: {}\n' });

  it('no piece of the secret reaches GitHub or the logs', async () => {
    const head = createHash('sha1').update('rt-dsplit').digest('hex');
    app().fake.setFiles(REPO, head, { '.github/berth.yml': CONFIG, 'compose.yml': COMPOSE });
    app().fake.setPull(REPO, 1, { headSha: head, author: 'mallory', mergeable: true });
    await app().open(1, head);
    const plan = app().berthComments(1).map((c) => c.body).join('\n');
    expect(plan).not.toContain(PIECE); // the plan itself masks it
    await app().say(1, '/apply staging', 'alice');
    await app().drain();
    const texts = sentTexts(app().fake.requests);
    const leaks = texts.filter((t) => t.includes(PIECE));
    const logLeaks = app().logs.filter((l) => l.includes(PIECE));
    // the apply did fail, and said so (with the secret's piece masked)
    expect(texts.some((t) => /unable to find group/.test(t))).toBe(true);
    expect(leaks).toEqual([]);
    expect(logLeaks).toEqual([]);
  }, 120_000);
});
