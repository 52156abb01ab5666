// Every image reference is resolved at plan time, and pulled at apply time,
// by the target's Docker engine: inside the operator's network, with the
// server's registry logins. Plans run for every PR, a fork's included, so a
// reference such as `127.0.0.1:5000/x`, `10.0.0.7:8080/x`, `localhost:5000/x`,
// `internal-registry.corp/x` or a public name pointed at 127.0.0.1 made the
// engine send requests into the operator's network on behalf of anyone, and
// the plan (digest found, not found, the registry's error text) told them what
// lives there. Now the registry of the final (interpolated, extended,
// included, merged) reference must be public or listed under
// policy.allow_registries on the default branch — checked by the loader,
// again with DNS before any engine call at plan time, and again at apply time.
// A name the berth server cannot resolve is judged by its form alone (offline
// and air-gapped servers plan real compose files), and with pinning off the
// plan makes no lookup at all (nor any engine call).
import type Dockerode from 'dockerode';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { prepareApply } from '../../src/apply/prepare-apply.js';
import { Executor } from '../../src/apply/executor.js';
import { Lanes } from '../../src/apply/lanes.js';
import { loadCompose } from '../../src/compose/load.js';
import type { RegistryLookup } from '../../src/compose/registries.js';
import { parseConfig } from '../../src/config/config.js';
import { pinThroughTargets } from '../../src/docker/resolve.js';
import { Bot, type BotOptions } from '../../src/github/bot.js';
import type { GitHubPort } from '../../src/github/github.js';
import type { DesiredState } from '../../src/model/model.js';
import { FakeEngine, observeFake } from '../helpers/fake-engine.js';
import { emptyObserved } from '../helpers/simulate.js';
import { spec, state } from '../helpers/specs.js';
import { sqliteTestStore, type TestStore } from '../helpers/stores.js';

const config = (policy: string[] = []) =>
  parseConfig(['project: p', 'environments:', '  - name: staging', '    compose: [compose.yml]', '    variables: {REG: "127.0.0.1:5000"}', ...(policy.length ? ['policy:', ...policy.map((l) => `  ${l}`)] : [])].join('\n'), '.github/berth.yml');
const load = (files: Record<string, string>, c = config()) =>
  loadCompose(
    Object.entries(files)
      .filter(([p]) => p === 'compose.yml' || p === 'compose.override.yml')
      .map(([path, text]) => ({ path, text })),
    { project: 'p', environment: 'staging', policy: c.policy, variables: c.environments[0]!.variables, sources: new Map(Object.entries(files)) },
  );

describe('the loader refuses a non-public registry, located, on the final reference', () => {
  const cases: [string, Record<string, string>, number][] = [
    ['written out', { 'compose.yml': 'services:\n  web:\n    image: 127.0.0.1:5000/x:1\n' }, 3],
    ['another spelling of loopback', { 'compose.yml': 'services:\n  web:\n    image: "0x7f.1:5000/x"\n' }, 3],
    ['an IPv4-mapped IPv6 literal', { 'compose.yml': 'services:\n  web:\n    image: "[::ffff:127.0.0.1]:5000/x"\n' }, 3],
    ['a private address, by digest', { 'compose.yml': `services:\n  web:\n    image: 10.0.0.7:8080/x@sha256:${'a'.repeat(64)}\n` }, 3],
    ['localhost', { 'compose.yml': 'services:\n  web:\n    image: LOCALHOST:5000/x\n' }, 3],
    ['an internal name', { 'compose.yml': 'services:\n  web:\n    image: INTERNAL-REGISTRY.CORP/x\n' }, 3],
    ['through interpolation (berth.yml variables)', { 'compose.yml': 'services:\n  web:\n    image: ${REG}/x:1\n' }, 3],
    ['through a default', { 'compose.yml': 'services:\n  web:\n    image: ${NOPE:-169.254.169.254}/latest\n' }, 3],
    ['through extends from another file', { 'compose.yml': 'services:\n  web:\n    extends: {file: base.yml, service: b}\n', 'base.yml': 'services:\n  b:\n    image: localhost:5000/x\n' }, 3],
    ['through include', { 'compose.yml': 'include: [inc.yml]\nservices: {}\n', 'inc.yml': 'services:\n  w:\n    image: 192.168.1.10:5000/x\n' }, 3],
    ['through an anchor', { 'compose.yml': 'x-img: &img "[::1]:5000/x"\nservices:\n  web:\n    image: *img\n' }, 4],
    ['through an override file', { 'compose.yml': 'services:\n  web:\n    image: nginx\n', 'compose.override.yml': 'services:\n  web:\n    image: registry:5000/x\n' }, 3],
    ['next to build:', { 'compose.yml': 'services:\n  web:\n    build: .\n    image: 127.0.0.1:5000/built:1\n' }, 4],
  ];
  for (const [what, files, line] of cases)
    it(what, () => {
      let err: unknown;
      try {
        load(files);
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'policy_denied', line, hint: expect.stringContaining('policy.allow_registries') });
      expect((err as Error).message).toMatch(/image .* is not allowed by the repository's policy/);
    });

  it('a listed registry is allowed, and only that one', () => {
    const c = config(['allow_registries: ["127.0.0.1:5000"]']);
    expect(load({ 'compose.yml': 'services:\n  web:\n    image: ${REG}/x:1\n' }, c).services[0]!.spec.image).toBe('127.0.0.1:5000/x:1');
    expect(() => load({ 'compose.yml': 'services:\n  web:\n    image: 127.0.0.1:5001/x:1\n' }, c)).toThrow(expect.objectContaining({ code: 'policy_denied' }));
  });

  it('Docker Hub and public registries need no listing', () => {
    for (const image of ['nginx:1.27', 'docker.io/library/nginx', 'ghcr.io/o/app:1', 'quay.io/a/b'])
      expect(load({ 'compose.yml': `services:\n  web:\n    image: ${image}\n` }).services).toHaveLength(1);
  });

  it('a malformed allow_registries entry is refused in berth.yml', () => {
    expect(() => config(['allow_registries: ["https://127.0.0.1:5000/v2"]'])).toThrow(/allow_registries/);
  });
});

describe('a PR plan never makes the engine query a refused registry', () => {
  /** A scripted engine: every registry query and image inspect is recorded. */
  function engine() {
    const calls: string[] = [];
    const docker = {
      getImage: (name: string) => ({
        distribution: async () => {
          calls.push(`distribution ${name}`);
          throw Object.assign(new Error('(HTTP code 404) not found - manifest unknown'), { statusCode: 404 });
        },
        inspect: async () => {
          calls.push(`inspect ${name}`);
          throw Object.assign(new Error('no such image'), { statusCode: 404 });
        },
      }),
    } as unknown as Dockerode;
    return { docker, calls };
  }
  const dns: Record<string, string[]> = { 'evil.example.com': ['127.0.0.1'], 'lan.example.com': ['140.82.112.33', '10.0.0.7'], 'v6.example.com': ['fd00::5'], 'registry.example.com': ['93.184.215.14'] };
  const looked: string[] = [];
  const lookup: RegistryLookup = async (h) => {
    looked.push(h);
    if (dns[h]) return dns[h]!;
    throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
  };
  beforeEach(() => {
    looked.length = 0;
  });
  const plan = async (compose: string, policy: string[] = [], env: NodeJS.ProcessEnv = {}) => {
    const e = engine();
    const files: Record<string, string> = { 'compose.yml': compose };
    const gh = { readFile: async (_r: unknown, path: string) => files[path] } as unknown as GitHubPort;
    const c = config(policy);
    const targets = { docker: () => e.docker, credentials: () => ({ source: '/srv/berth/config.json', setting: 'BERTH_DOCKER_CONFIG', authFor: () => ({ serveraddress: 'x', username: 'u', password: 'p' }) }) };
    const bot = new Bot({
      targets: { has: () => true, names: () => ['local'] },
      store: { projectOwner: async () => undefined },
      observe: async (_t: string, project: string, environment: string) => emptyObserved(project, environment),
      log: { error: () => {}, info: () => {}, warn: () => {} },
      resolveImages: (d: DesiredState, names: readonly string[], p: unknown) => pinThroughTargets(targets, d, names, env, { policy: p as never, lookup }),
    } as unknown as BotOptions);
    const r = await bot.planEnvironment(gh, { owner: 'eve', name: 'shop' }, { config: c, files: new Set(Object.keys(files)) }, c.environments[0]!, 'head1');
    return { r, calls: e.calls };
  };

  it('a loopback registry: the plan is refused at the image line and the engine is never asked', async () => {
    const { r, calls } = await plan('services:\n  web:\n    image: 127.0.0.1:5000/secret-app:1\n');
    expect(r.ok).toBe(false);
    expect(r.markdown).toContain('in `compose.yml, line 3, services.web.image`');
    expect(r.markdown).toContain('allow&#95;registries');
    expect(r.markdown).toContain('loopback');
    expect(calls).toEqual([]);
  });

  it('a public-looking name that resolves to loopback on the berth server: refused before any engine call', async () => {
    const { r, calls } = await plan('services:\n  web:\n    image: evil.example.com:5000/x:1\n');
    expect(r.ok).toBe(false);
    expect(r.markdown).toContain('resolves to a loopback address');
    expect(calls).toEqual([]);
  });

  it('any non-public address in the answer refuses (10.x next to a public one, fd00::)', async () => {
    for (const [host, shown] of [['lan.example.com', '10.0.0.7'], ['v6.example.com', 'fd00::5']]) {
      const { r, calls } = await plan(`services:\n  web:\n    image: ${host}/x:1\n`);
      expect(r.ok, host).toBe(false);
      expect(r.markdown).toContain(`(${shown})`);
      expect(calls).toEqual([]);
    }
  });

  it('a name the berth server cannot resolve (offline, air-gapped) is judged by its form: allowed, and pinned as usual', async () => {
    const { r, calls } = await plan('services:\n  web:\n    image: registry.nowhere.example/x:1\n    pull_policy: never\n  api:\n    image: ghcr.io/o/api:1\n');
    expect([...looked].sort()).toEqual(['ghcr.io', 'registry.nowhere.example']);
    // the plan got past the registry policy to the engine (which, in this script, knows no image)
    expect(r.markdown).not.toContain('allow&#95;registries');
    expect(calls).toContain('inspect registry.nowhere.example/x:1');
  });

  it('with pinning off the plan asks no resolver and no engine: the name form alone decides', async () => {
    const off = { BERTH_PIN_IMAGES: 'off' };
    const ok = await plan('services:\n  web:\n    image: evil.example.com:5000/x:1\n  api:\n    image: ghcr.io/o/api:1\n', [], off);
    expect(ok.r.ok).toBe(true);
    expect(ok.calls).toEqual([]);
    for (const image of ['127.0.0.1:5000/x:1', 'registry:5000/x', 'registry.internal/x', 'localhost/x']) {
      const refused = await plan(`services:\n  web:\n    image: ${image}\n`, [], off);
      expect(refused.r.ok, image).toBe(false);
      expect(refused.r.markdown).toContain('allow&#95;registries');
      expect(refused.calls).toEqual([]);
    }
    expect(looked).toEqual([]);
  });

  it('the check happens even with pull_policy never (no registry query, but still refused)', async () => {
    const { r, calls } = await plan('services:\n  web:\n    image: 10.0.0.7:8080/x:1\n    pull_policy: never\n');
    expect(r.ok).toBe(false);
    expect(calls).toEqual([]);
  });

  it('a public or listed registry does reach the engine (the record above is live)', async () => {
    const pub = await plan('services:\n  web:\n    image: registry.example.com/x:1\n');
    expect(pub.calls).toContain('distribution registry.example.com/x:1');
    const listed = await plan('services:\n  web:\n    image: evil.example.com:5000/x:1\n', ['allow_registries: ["evil.example.com:5000"]']);
    expect(listed.calls).toContain('distribution evil.example.com:5000/x:1');
  });
});

describe('a fork PR through the planner', () => {
  let ts: TestStore;
  beforeEach(async () => {
    ts = await sqliteTestStore();
  });
  afterEach(async () => ts.dispose());

  it("is refused in the plan comment and check run, its own berth.yml grants nothing, and the engine is never asked", async () => {
    const HEAD = 'f'.repeat(40);
    const main = { '.github/berth.yml': 'project: p\nenvironments:\n  - name: staging\n    compose: [compose.yml]\n' };
    // The fork's head tries to allow the registry itself: only the default branch's policy counts.
    const head: Record<string, string> = {
      '.github/berth.yml': 'project: p\nenvironments:\n  - name: staging\n    compose: [compose.yml]\npolicy:\n  allow_registries: ["127.0.0.1:5000"]\n',
      'compose.yml': 'services:\n  web:\n    image: 127.0.0.1:5000/internal/billing:1\n',
    };
    const comments: string[] = [];
    const checks: { conclusion?: string; title?: string; summary?: string }[] = [];
    const gh = {
      readFile: async (_r: unknown, path: string, ref?: string) => (ref === undefined ? main[path as keyof typeof main] : ref === HEAD ? head[path] : undefined),
      listFiles: async () => new Set(Object.keys(head)),
      createCheckRun: async (_r: unknown, input: { conclusion?: string; title?: string; summary?: string }) => (checks.push(input), checks.length),
      createComment: async (_r: unknown, _pr: number, body: string) => (comments.push(body), comments.length),
      updateComment: async () => {},
    } as unknown as GitHubPort;
    const calls: string[] = [];
    const docker = {
      getImage: (name: string) => ({
        distribution: async () => (calls.push(`distribution ${name}`), { Descriptor: { digest: `sha256:${'c'.repeat(64)}` } }),
        inspect: async () => (calls.push(`inspect ${name}`), { RepoDigests: [] }),
      }),
    } as unknown as Dockerode;
    const targets = { docker: () => docker, credentials: () => ({ source: 'config.json', setting: 'BERTH_DOCKER_CONFIG', authFor: () => ({ serveraddress: '127.0.0.1:5000', username: 'ci', password: 'hunter2' }) }) };
    const bot = new Bot({
      store: ts.store,
      targets: { has: () => true, names: () => ['local'] },
      observe: async (_t: string, project: string, environment: string) => emptyObserved(project, environment),
      log: { error: () => {}, info: () => {}, warn: () => {} },
      resolveImages: (d: DesiredState, names: readonly string[], p: unknown) => pinThroughTargets(targets, d, names, {}, { policy: p as never, lookup: async () => ['140.82.112.33'] }),
    } as unknown as BotOptions);
    const pull = { number: 9, state: 'open', merged: false, draft: false, headSha: HEAD, headRepo: 'eve/shop', baseRepo: 'acme/shop', mergeable: true, author: 'eve', htmlUrl: '' } as const;
    const [r] = await bot.planPullRequest(gh, { owner: 'acme', name: 'shop' }, pull);
    expect(r!.ok).toBe(false);
    expect(checks).toEqual([expect.objectContaining({ conclusion: 'failure' })]);
    expect(checks[0]!.summary).toContain('allow&#95;registries');
    expect(comments.join('\n')).toContain('registry 127.0.0.1:5000 is a loopback address');
    expect(comments.join('\n')).toContain('in `compose.yml, line 3, services.web.image`');
    expect(calls).toEqual([]);
    expect(await ts.store.latestPlan('acme/shop', 9, 'staging')).toBeUndefined();
  });
});

describe('an apply refuses a non-public registry on the target too (stale plan, CLI, old payload)', () => {
  let ts: TestStore;
  beforeEach(async () => {
    ts = await sqliteTestStore();
  });
  afterEach(async () => ts.dispose());

  const run = async (image: string, allow: string[] = []) => {
    const engine = new FakeEngine();
    const executor = new Executor({ store: ts.store, engine: () => engine, lanes: new Lanes(), stopPollMs: 0, healthPollMs: 5 });
    const desired: DesiredState = state([spec('web', { image })], undefined, undefined, 'p', 'staging');
    const policy = { ...config().policy, allow_registries: allow };
    const observe = async (_t: string, project: string, environment: string) => observeFake(engine, project, environment, { imageOf: () => image });
    const { applyId } = await prepareApply(ts.store, observe, { repo: 'acme/shop', pr: 1, environment: 'staging', kind: 'apply', actor: 'alice', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt', policy });
    const result = await executor.run(applyId);
    const tasks = await ts.store.listTasksForApply(applyId);
    return { result, engine, tasks };
  };

  it('a loopback image is neither pulled nor created', async () => {
    const { result, engine, tasks } = await run(`127.0.0.1:5000/x:1@sha256:${'b'.repeat(64)}`);
    expect(result).toBe('failed');
    expect(engine.calls.filter((c) => c.method === 'ensureImage' || c.method === 'createContainer')).toEqual([]);
    expect(tasks.find((t) => t.kind === 'EnsureImage')?.error).toMatch(/refused by the repository's policy: .*127\.0\.0\.1:5000 is a loopback address.*allow_registries/);
  });

  it('the same image under allow_registries is pulled and created', async () => {
    const { result, engine } = await run(`127.0.0.1:5000/x:1@sha256:${'b'.repeat(64)}`, ['127.0.0.1:5000']);
    expect(result).toBe('completed');
    expect(engine.calls.map((c) => c.method)).toContain('ensureImage');
  });
});
