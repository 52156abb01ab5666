// `/rollback <env>` goes back to the last completed state before the current
// one. When the latest apply failed (or was stopped), the environment runs
// that apply's state, at least in part: the last completed state before it is
// the latest completed apply's. berth took the latest COMPLETED apply for the
// current state and went one further back — after a failed deploy of v3,
// `/rollback` deployed v1 (the version v2 had replaced, a fix it carried
// undone) instead of the v2 that ran until the failure.
// Through the whole app, with real applies on dockerd.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { App } from '../chaos/app-harness.js';
import { sha, startApp } from '../chaos/app-harness.js';
import { berthYml } from '../helpers/berth-yml.js';
import { describeDocker } from '../helpers/env.js';

const REPO = 'acme/sec-rollback-after-failure';
const PROJECT = 't-sec-56';
const [H1, H2, H3] = [sha('1'), sha('2'), sha('3')];
const CONFIG = berthYml(PROJECT, [{ name: 'staging', compose: ['compose.yml'] }]);
const version = (rev: string, broken = false) =>
  [
    'services:',
    '  web:',
    '    image: berth-test/app:1',
    '    labels:',
    `      rev: "${rev}"`,
    ...(broken ? ['    healthcheck:', '      test: ["CMD", "false"]', '      interval: 1s', '      timeout: 1s', '      retries: 1', '  api:', '    image: berth-test/app:1', '    depends_on:', '      web:', '        condition: service_healthy'] : []),
    '',
  ].join('\n');

describeDocker('security: /rollback after a failed apply goes back to the last completed state', () => {
  let app: App;
  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT, users: { alice: 'write' }, logLevel: 'warn' });
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': CONFIG, 'compose.yml': version('0') });
    app.fake.setFiles(REPO, H1, { '.github/berth.yml': CONFIG, 'compose.yml': version('1') });
    app.fake.setFiles(REPO, H2, { '.github/berth.yml': CONFIG, 'compose.yml': version('2') });
    app.fake.setFiles(REPO, H3, { '.github/berth.yml': CONFIG, 'compose.yml': version('3', true) });
  }, 60_000);
  afterAll(async () => {
    await app?.close();
  });

  it('v1, v2 completed, v3 failed: /rollback returns to v2', async () => {
    const apply = async (head: string, action: 'opened' | 'synchronize') => {
      app.fake.setPull(REPO, 1, { headSha: head, author: 'alice' });
      expect(await app.open(1, head, action)).toBe(200);
      await app.say(1, '/apply staging');
      await app.drain();
      return (await app.ts.store.listApplies({ repo: REPO, environment: 'staging' }))[0]!;
    };
    expect(await apply(H1, 'opened')).toMatchObject({ headSha: H1, state: 'completed' });
    expect(await apply(H2, 'synchronize')).toMatchObject({ headSha: H2, state: 'completed' });
    expect(await apply(H3, 'synchronize')).toMatchObject({ headSha: H3, state: 'failed' });
    await app.say(1, '/rollback staging');
    await app.drain();
    const [rb] = await app.ts.store.listApplies({ repo: REPO, environment: 'staging' });
    expect(rb).toMatchObject({ kind: 'rollback', headSha: H2, state: 'completed' });
  }, 120_000);
});
