// Policy, through the whole app: the default branch's `.github/berth.yml`
// denies by default; a PR adding privileged / host network / host pid / a bind
// mount outside the allowlist / the Docker socket / cap_add / devices gets a
// plan that names file, line, rule and how to allow it, and /apply is refused.
// Allowed on the default branch, the same PR plans. A PR that edits
// `.github/berth.yml` to grant itself anything changes nothing: config is read
// from the default branch only.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeDocker } from '../helpers/env.js';
import type { App } from './app-harness.js';
import { outsideCode, startApp } from './app-harness.js';

const REPO = 'acme/policy';
const PROJECT = 't-policy';
const BIND_DIR = '/tmp/t-policy-allowed';

function config(policy: string[] = [], opts: { extraEnv?: string[]; requires?: boolean } = {}): string {
  return [
    `project: ${PROJECT}`,
    'environments:',
    '  - name: staging',
    '    compose: [compose.yml]',
    '    targets: [local]',
    '  - name: production',
    '    compose: [compose.yml]',
    '    targets: [local]',
    ...(opts.requires === false ? [] : ['    requires: [staging]']),
    ...(opts.extraEnv ?? []),
    ...(policy.length ? ['policy:', ...policy.map((l) => `  ${l}`)] : []),
    '',
  ].join('\n');
}

/** compose.yml with one service `web` and the given extra lines (indented under it); the first extra line is line 4. */
const compose = (...extra: string[]) => ['services:', '  web:', '    image: berth-test/app:1', ...extra.map((l) => `    ${l}`), ''].join('\n');

interface Case {
  id: string;
  extra: string[];
  line: number;
  rule: string;
  /** the policy line that allows it (under `policy:`) */
  allow: string;
  /** what the hint tells the user to write */
  hint: string;
}

const CASES: Case[] = [
  { id: 'privileged: true', extra: ['privileged: true'], line: 4, rule: 'service web: privileged mode is not allowed', allow: 'allow_privileged: true', hint: 'policy.allow_privileged: true' },
  { id: 'network_mode: host', extra: ['network_mode: host'], line: 4, rule: 'service web: network_mode host is not allowed', allow: 'allow_host_network: true', hint: 'policy.allow_host_network: true' },
  { id: 'pid: host', extra: ['pid: host'], line: 4, rule: 'service web: pid host is not allowed', allow: 'allow_host_pid: true', hint: 'policy.allow_host_pid: true' },
  {
    id: 'bind mount outside the allowlist',
    extra: ['volumes:', '  - /etc:/host-etc:ro'],
    line: 5,
    rule: 'service web: bind mount of /etc is not allowed',
    allow: 'bind_mount_allowlist: [/etc]',
    hint: 'policy.bind_mount_allowlist',
  },
  {
    id: 'mount of /var/run/docker.sock',
    extra: ['volumes:', '  - /var/run/docker.sock:/var/run/docker.sock'],
    line: 5,
    rule: 'service web: mounting the Docker socket (/var/run/docker.sock) is not allowed',
    allow: 'allow_docker_socket: true',
    hint: 'policy.allow_docker_socket: true',
  },
  { id: 'cap_add', extra: ['cap_add: [NET_ADMIN]'], line: 4, rule: 'service web: cap_add NET_ADMIN is not allowed', allow: 'allow_cap_add: [NET_ADMIN]', hint: 'policy.allow_cap_add: [NET_ADMIN]' },
  { id: 'devices', extra: ['devices:', '  - /dev/null:/dev/berth-null'], line: 5, rule: 'service web: device /dev/null is not allowed', allow: 'allow_devices: true', hint: 'policy.allow_devices: true' },
];

const headOf = (id: string) => createHash('sha1').update(`policy:${id}`).digest('hex');

describeDocker('policy from the default branch, through the whole app', () => {
  let app: App;
  let pr = 0;

  beforeAll(async () => {
    app = await startApp({ repo: REPO, project: PROJECT });
    app.fake.setFiles(REPO, 'main', { '.github/berth.yml': config(), 'compose.yml': compose() });
  }, 60_000);

  afterAll(async () => {
    await app?.close();
  });

  async function openPr(files: Record<string, string>, id: string): Promise<{ n: number; head: string }> {
    const n = ++pr;
    const head = headOf(`${id}#${n}`);
    app.fake.setFiles(REPO, head, files);
    app.fake.setPull(REPO, n, { headSha: head, author: 'alice', mergeable: true });
    expect(await app.open(n, head)).toBe(200);
    return { n, head };
  }

  async function nothingApplied() {
    expect(await app.ts.store.listApplies({})).toEqual([]);
    expect(await app.containers()).toEqual([]);
  }

  describe('denied by default: the plan shows the violation and /apply is refused', () => {
    for (const c of CASES) {
      it(c.id, async () => {
        app.fake.setFiles(REPO, 'main', { '.github/berth.yml': config(), 'compose.yml': compose() });
        const { n, head } = await openPr({ '.github/berth.yml': config(), 'compose.yml': compose(...c.extra) }, c.id);
        const comment = app.berthComments(n)[0]!.body;
        const check = app.check(head, 'berth / staging')!;
        for (const text of [comment, check.summary ?? '']) {
          expect(text).toContain(c.rule);
          expect(text).toContain(`compose.yml, line ${c.line}`);
          expect(text).toContain(`compose.yml:${c.line}:`);
          expect(text).toContain(c.hint);
          expect(text).toContain('in .github/berth.yml on the default branch');
        }
        expect(check.conclusion).toBe('failure');
        expect(check.title).toContain("is not allowed by the repository's policy");
        await app.say(n, '/apply staging');
        expect(app.lastReply(n)).toMatch(/^<!-- berth -->\n### 🚫/);
        await nothingApplied();
      });
    }
  });

  describe('allowed on the default branch: the same change plans', () => {
    for (const c of CASES) {
      it(c.id, async () => {
        app.fake.setFiles(REPO, 'main', { '.github/berth.yml': config([c.allow]), 'compose.yml': compose() });
        try {
          const { n, head } = await openPr({ '.github/berth.yml': config(), 'compose.yml': compose(...c.extra) }, `allowed ${c.id}`);
          const check = app.check(head, 'berth / staging')!;
          expect(check.conclusion).toBe('action_required');
          expect(check.title).toMatch(/^[12] to create, 0 to change, 0 to remove$/);
          expect(outsideCode(app.berthComments(n)[0]!.body)).not.toContain('not allowed');
        } finally {
          app.fake.setFiles(REPO, 'main', { '.github/berth.yml': config(), 'compose.yml': compose() });
        }
        await nothingApplied();
      });
    }
  });

  describe('a PR cannot grant itself anything by editing .github/berth.yml', () => {
    it('allow_privileged in the PR head is ignored: still denied', async () => {
      const { n, head } = await openPr({ '.github/berth.yml': config(['allow_privileged: true', 'allow_docker_socket: true']), 'compose.yml': compose('privileged: true') }, 'self-grant privileged');
      expect(app.check(head, 'berth / staging')!.conclusion).toBe('failure');
      expect(app.berthComments(n)[0]!.body).toContain('service web: privileged mode is not allowed');
      await app.say(n, '/apply staging');
      expect(app.lastReply(n)).toContain('### 🚫');
      await nothingApplied();
    });

    it('an environment and target added in the PR head do not exist', async () => {
      const evil = ['  - name: evil', '    compose: [compose.yml]', '    targets: [prod-host]'];
      const { n, head } = await openPr({ '.github/berth.yml': config([], { extraEnv: evil }), 'compose.yml': compose() }, 'self-grant target');
      const body = app.berthComments(n)[0]!.body;
      expect(body).not.toContain('evil');
      expect(body).not.toContain('prod-host');
      expect(app.fake.checkRuns(REPO, head).map((r) => r.name).sort()).toEqual(['berth / production', 'berth / staging']);
      await app.say(n, '/apply evil');
      expect(app.lastReply(n)).toContain('`evil`');
      expect(app.lastReply(n)).toMatch(/not an environment|unknown environment|no environment/i);
      await nothingApplied();
    });

    it('dropping requires: [staging] in the PR head does not lift the staging-first gate', async () => {
      const { n } = await openPr({ '.github/berth.yml': config([], { requires: false }), 'compose.yml': compose() }, 'self-grant requires');
      await app.say(n, '/apply production');
      const reply = app.lastReply(n);
      expect(reply).toContain('### 🚫 Staging first');
      expect(reply).toContain('`/apply staging`');
      await nothingApplied();
    });

    it('berth read .github/berth.yml only from the default branch, never from a PR head', () => {
      const reads = app.fake.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/contents/.github/berth.yml'));
      expect(reads.length).toBeGreaterThan(CASES.length * 2);
      // No ref: GitHub's contents API reads the repository's default branch (one request, no repos.get
      // first). Never a PR head's commit or branch.
      expect(new Set(reads.map((r) => r.query.ref ?? '(default branch)'))).toEqual(new Set(['(default branch)']));
      expect(app.fake.violations).toEqual([]);
    });
  });
});
