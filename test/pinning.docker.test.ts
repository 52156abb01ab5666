// Tag → digest pinning (issue 12) against the real TLS + htpasswd registry:
// a private image resolves with the server-side login and fails the plan
// (not the apply) without it; a re-pushed tag is "image digest changed" with
// an unchanged compose file, the apply runs the new digest, and the
// desired-state digest (what staging-first compares) differs.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Observer } from '../src/apply/prepare-apply.js';
import { planTargets, prepareApply } from '../src/apply/prepare-apply.js';
import { DockerEngine } from '../src/docker/docker-engine.js';
import { observe } from '../src/docker/observe.js';
import { credentialsFor } from '../src/docker/registry-auth.js';
import { ImageResolutionError, pinDesired, pinImages, resolveImages, tagResolver } from '../src/docker/resolve.js';
import { driftReport } from '../src/drift/drift.js';
import { main } from '../src/cli/main.js';
import { mkdirSync } from 'node:fs';
import { loadCompose } from '../src/compose/load.js';
import { Executor } from '../src/apply/executor.js';
import { DENY_ALL } from '../src/compose/policy.js';
import { requiresGate } from '../src/github/gates.js';
import { Lanes } from '../src/apply/lanes.js';
import type { DesiredState } from '../src/model/model.js';
import { desiredDigest } from '../src/plan/reconcile.js';
import { docker, removeProject } from './helpers/docker.js';
import { CI_REGISTRY, CI_SERVICES_DIR, describeRegistry } from './helpers/env.js';
import { spec, state } from './helpers/specs.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

const PROJECT = `t-pin-${process.pid}`;

describeRegistry('pinning images to registry digests at plan time', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-docker-config-'));
  const repo = `${CI_REGISTRY}/t-pin-${process.pid}/app`;
  const ref = `${repo}:main-${Date.now().toString(36)}`;
  const cli = (...args: string[]) => execFileSync('docker', ['--config', dir, ...args], { stdio: ['pipe', 'pipe', 'pipe'], input: args[0] === 'login' ? readFileSync(`${CI_SERVICES_DIR}/registry/password`) : undefined });
  /** Pushes `source` under `ref` (moving the tag) and returns the registry's digest for it. */
  const push = (source: string) => {
    cli('tag', source, ref);
    const out = cli('push', ref).toString();
    cli('rmi', ref);
    return /digest: (sha256:[0-9a-f]{64})/.exec(out)![1]!;
  };
  const creds = () => credentialsFor('local', { BERTH_DOCKER_CONFIG: join(dir, 'config.json') });
  const desired = (): DesiredState => {
    const s = spec('web', { image: ref });
    delete s.command;
    return state([s], undefined, [], PROJECT);
  };
  const pinned = async (c = creds()) => pinDesired(desired(), await resolveImages(docker, [ref], c));
  const observer: Observer = async (_t, project, env) => (await observe(docker, project, env)).observed;
  let ts: TestStore | undefined;
  const cleanup = async () => {
    await removeProject(PROJECT);
    // Only this test's tags and digest references, never by image ID: the
    // pushed content is the shared berth-test images, which must stay.
    for (const i of await docker.listImages({ filters: { reference: [repo] } }))
      for (const name of [...(i.RepoTags ?? []), ...(i.RepoDigests ?? [])].filter((n) => n.startsWith(`${repo}:`) || n.startsWith(`${repo}@`))) await docker.getImage(name).remove({ noprune: true }).catch(() => {});
  };

  beforeAll(async () => {
    cli('login', CI_REGISTRY, '-u', 'berth', '--password-stdin');
    await cleanup();
  }, 120_000);
  afterEach(async () => {
    await ts?.dispose();
    ts = undefined;
  });
  afterAll(cleanup);

  async function apply(d: DesiredState, engine = new DockerEngine(docker, creds()), outcome = 'completed') {
    ts ??= await sqliteTestStore();
    const executor = new Executor({ store: ts.store, engine: () => engine, lanes: new Lanes(), healthPollMs: 100 });
    const { applyId } = await prepareApply(ts.store, observer, { repo: 'acme/shop', pr: 1, environment: d.environment, kind: 'apply', actor: 'alice', headSha: 'abc', desired: d, targets: ['local'], onFailure: 'halt', policy: { ...DENY_ALL, allow_registries: [CI_REGISTRY] } });
    const got = await executor.run(applyId);
    expect(got).toBe(outcome);
    return (await ts.store.listTasksForApply(applyId)).find((t) => t.kind === 'EnsureImage');
  }
  /** A config.json with no login: what a query or pull the registry refuses looks like. */
  const noLogin = () => {
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, JSON.stringify({ auths: {} }));
    return credentialsFor('local', { BERTH_DOCKER_CONFIG: empty });
  };
  /** The service as a user writes it, through the loader (so refusals are located). */
  const written = (policy: string | undefined, environment: string, image = ref) =>
    loadCompose([{ path: 'compose.yml', text: `services:\n  web:\n    image: ${image}\n${policy ? `    pull_policy: ${policy}\n` : ''}` }], { project: PROJECT, environment });
  const pinWith = async (d: DesiredState, c = creds(), now?: number) => (await pinImages({ name: 'local', docker }, d, { credentials: c, ...(now ? { now } : {}) })).services[0]!.spec.image;

  it('resolves with the login, fails the plan without it naming registry, image and setting', async () => {
    const digest = push('berth-test/app:1');
    expect((await pinned()).services[0]!.spec.image).toBe(`${ref}@${digest}`);
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, JSON.stringify({ auths: {} }));
    const err = await pinned(credentialsFor('local', { BERTH_DOCKER_CONFIG: empty })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageResolutionError);
    expect((err as Error).message).toContain(`service web: `);
    expect((err as Error).message).toContain(`registry ${CI_REGISTRY}, image ${ref}, queried without credentials (${empty} has no login for ${CI_REGISTRY}); fix the image reference, or set BERTH_DOCKER_CONFIG`);
  }, 60_000);

  it('a re-pushed tag is "image digest changed" with the same compose; the apply runs the new digest; the desired digest differs', async () => {
    const first = push('berth-test/app:1');
    const before = await pinned();
    await apply(before);
    const running = async () => (await docker.listContainers({ filters: { label: [`io.berth.project=${PROJECT}`] } })).map((c) => c.Image);
    expect(await running()).toEqual([`${ref}@${first}`]);
    expect((await planTargets(await pinned(), ['local'], observer))[0]!.plan.nodes).toEqual([]);

    const second = push('berth-test/app:2');
    expect(second).not.toBe(first);
    // Drift notices the moved tag (asked through the target's engine and login), and only it.
    const resolveTags = tagResolver({ docker: () => docker, credentials: () => creds() });
    const moved = async () => (await driftReport(ts!.store, { resolveTags })).environments.flatMap((e) => e.items).filter((i) => i.kind === 'image-moved');
    expect(await moved()).toEqual([expect.objectContaining({ service: 'web', kind: 'image-moved', expected: first, observed: second, detail: expect.stringContaining(`${ref} now resolves to ${second.slice(0, 19)}`) })]);
    const after = await pinned();
    const [plan] = await planTargets(after, ['local'], observer);
    expect(plan!.plan.changes.find((c) => c.name === 'web')).toMatchObject({ action: 'change', reasons: ['image digest changed'] });
    // Staging-first: staging ran the old bits, so production with the moved tag is refused
    // although the compose file is the same; with the bits staging ran it passes.
    expect(desiredDigest(after)).not.toBe(desiredDigest(before));
    const production = { name: 'production', requires: ['staging'] };
    const gate = (d: DesiredState) => requiresGate(ts!.store, { owner: 'acme', name: 'shop' }, { number: 1, headSha: 'abc' }, production, ['staging', 'production'], async () => desiredDigest(d));
    expect(await gate(before)).toEqual({ ok: true });
    const refused = await gate(after);
    expect(refused.ok).toBe(false);
    expect((refused as { message: string }).message).toContain('has not applied its');
    await apply(after);
    expect(await running()).toEqual([`${ref}@${second}`]);
    expect(await moved()).toEqual([]);
  }, 120_000);

  it('pull_policy at plan time: never and a fresh every_<d> pin the engine\'s copy without asking the registry; missing, always and a stale interval ask it', async () => {
    const first = push('berth-test/app:1');
    const second = push('berth-test/app:2');
    // The host holds the first build under the tag (pulled by digest, then tagged: a docker pull of an older build); the registry has moved on.
    await new DockerEngine(docker, creds()).ensureImage(`${repo}@${first}`);
    cli('tag', `${repo}@${first}`, ref);
    // never: the engine's copy, pinned to its digest; the registry is not asked (no login would be refused)
    expect(await pinWith(written('never', 'pp'), noLogin())).toBe(`${ref}@${first}`);
    // every_1h: tagged a moment ago, so still fresh: the engine's copy, no registry query
    expect(await pinWith(written('every_1h', 'pp'), noLogin())).toBe(`${ref}@${first}`);
    expect(await pinWith(written('weekly', 'pp'), noLogin())).toBe(`${ref}@${first}`);
    // two hours later the interval has passed: the registry's digest (the tag moved)
    expect(await pinWith(written('every_1h', 'pp'), creds(), Date.now() + 2 * 3600_000)).toBe(`${ref}@${second}`);
    // the default (missing), if_not_present, always and build ask the registry, whatever the engine holds
    for (const p of [undefined, 'missing', 'if_not_present', 'always', 'build']) expect(await pinWith(written(p, 'pp')), String(p)).toBe(`${ref}@${second}`);
    // never with an image the target does not have: a plan error located at pull_policy, naming target and image
    const absent = `${CI_REGISTRY}/t-pin-${process.pid}/absent:1`;
    const err = await pinWith(written('never', 'pp', absent)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageResolutionError);
    expect(err).toMatchObject({ file: 'compose.yml', line: 4, path: 'services.web.pull_policy' });
    expect((err as Error).message).toContain(`pull_policy: never, and target local has no image ${absent} — pull or load it on that host, or change pull_policy`);
    // Through the registry, a refusal is located at image: and names registry, image and setting
    const refused = await pinWith(written(undefined, 'pp'), noLogin()).catch((e: unknown) => e);
    expect(refused).toMatchObject({ file: 'compose.yml', line: 3, path: 'services.web.image' });
    expect((refused as Error).message).toContain(`registry ${CI_REGISTRY}, image ${ref}, queried without credentials`);
    expect((refused as Error).message).toContain('set BERTH_DOCKER_CONFIG on the berth server');
  }, 120_000);

  /** The image pulls the engine reports for this test's repository while `fn` runs (its own event log, not a timing). */
  async function pullsDuring(fn: () => Promise<unknown>): Promise<string[]> {
    const since = (Date.now() / 1000).toFixed(3);
    await fn();
    const until = (Date.now() / 1000 + 1).toFixed(3);
    const stream = (await docker.getEvents({ since, until, filters: { type: ['image'], event: ['pull'] } } as never)) as unknown as NodeJS.ReadableStream;
    let text = '';
    for await (const chunk of stream) text += String(chunk);
    return text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: string }).id).filter((id) => id.startsWith(repo));
  }

  it('pull_policy at apply time: always pulls the pinned digest although the engine holds it, missing and never use the copy', async () => {
    push('berth-test/app:1');
    const image = await pinWith(written('always', 'always'));
    const digest = new Map([[ref, { digest: image.slice(image.indexOf('@') + 1) }]]);
    await new DockerEngine(docker, creds()).ensureImage(image); // on the engine now
    expect(await pullsDuring(() => apply(pinDesired(written('always', 'always'), digest)))).toEqual([`${repo}@${digest.get(ref)!.digest}`]);
    expect(await pullsDuring(() => apply(pinDesired(written(undefined, 'missing'), digest)))).toEqual([]);
    expect(await pullsDuring(() => apply(pinDesired(written('never', 'never'), digest)))).toEqual([]);
  }, 120_000);

  it('the CLI pins like the app: berth plan shows the digest, berth apply runs it, and a refused image is the located plan error', async () => {
    const digest = push('berth-test/app:1');
    const checkout = mkdtempSync(join(tmpdir(), 'berth-cli-pin-'));
    mkdirSync(join(checkout, '.github'));
    // The local test registry is on loopback: the policy must list it (policy.allow_registries).
    writeFileSync(join(checkout, '.github/berth.yml'), `project: ${PROJECT}\nenvironments:\n  - name: cli\n    compose: [compose.yml]\n    targets: [local]\npolicy:\n  allow_registries: ["${CI_REGISTRY}"]\n`);
    writeFileSync(join(checkout, 'compose.yml'), `services:\n  web:\n    image: ${ref}\n`);
    const io = () => {
      const o = { stdout: '', stderr: '', out: (t: string) => void (o.stdout += `${t}\n`), err: (t: string) => void (o.stderr += `${t}\n`) };
      return o;
    };
    const saved = { BERTH_DOCKER_CONFIG: process.env.BERTH_DOCKER_CONFIG, BERTH_TARGETS: process.env.BERTH_TARGETS };
    try {
      delete process.env.BERTH_TARGETS;
      process.env.BERTH_DOCKER_CONFIG = join(dir, 'config.json');
      const plan = io();
      expect(await main(['plan', '--repo', checkout, '--env', 'cli'], plan)).toBe(2);
      expect(plan.stdout).toContain(`${ref}@${digest}`);
      const db = `sqlite:${join(checkout, 'berth.sqlite')}`;
      expect(await main(['apply', '--repo', checkout, '--env', 'cli', '--yes', '--database', db], io())).toBe(0);
      const cs = await docker.listContainers({ filters: { label: [`io.berth.project=${PROJECT}`, 'io.berth.environment=cli'] } });
      expect(cs.map((c) => c.Image)).toEqual([`${ref}@${digest}`]);
      process.env.BERTH_DOCKER_CONFIG = (noLogin(), join(dir, 'empty.json'));
      const refused = io();
      expect(await main(['plan', '--repo', checkout, '--env', 'cli'], refused)).toBe(1);
      expect(refused.stderr).toContain(`berth: compose.yml:3: services.web.image: cannot resolve an image to a digest`);
      expect(refused.stderr).toContain(`registry ${CI_REGISTRY}, image ${ref}, queried without credentials`);
    } finally {
      for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }, 120_000);
});
