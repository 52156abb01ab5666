// resolveImages against a scripted engine: once per distinct image, pinned
// references kept, a host-built image used as written, a registry image the
// registry refuses is an error (never silently the cached copy); pinDesired
// pins, recomputes the config hash and fails the plan naming the service.
import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { ImageResolutionError, pinDesired, pinImages, pinnedRef, resolveImages, tagResolver } from '../src/docker/resolve.js';
import { spec, state } from './helpers/specs.js';

const D1 = `sha256:${'1'.repeat(64)}`;

function engine(registry: Record<string, string>, local: Record<string, string[]>) {
  const calls: string[] = [];
  const docker = {
    getImage: (name: string) => ({
      distribution: async () => {
        calls.push(name);
        if (registry[name]) return { Descriptor: { digest: registry[name] } };
        throw Object.assign(new Error('(HTTP code 401) no such image - unauthorized: authentication required'), { statusCode: 401 });
      },
      inspect: async () => {
        if (local[name]) return { RepoDigests: local[name] };
        throw Object.assign(new Error('no such image'), { statusCode: 404 });
      },
    }),
  } as unknown as Dockerode;
  return { docker, calls };
}

describe('resolveImages', () => {
  it('once per distinct image; pinned, registry, host-built and refused images', async () => {
    const { docker, calls } = engine(
      { 'r.io/a:main': D1 },
      { 'docker.io/berth-test/app:1': ['127.0.0.1:5000/elsewhere/app@' + D1], 'r.io/b:1': ['r.io/b@' + D1] },
    );
    const got = await resolveImages(docker, ['r.io/a:main', 'r.io/a:main', `r.io/c@${D1}`, 'docker.io/berth-test/app:1', 'r.io/b:1']);
    expect(calls.filter((c) => c === 'r.io/a:main')).toHaveLength(1);
    expect(calls).not.toContain(`r.io/c@${D1}`);
    expect(got.get('r.io/a:main')).toEqual({ digest: D1 });
    expect(got.get(`r.io/c@${D1}`)).toEqual({ digest: D1 });
    expect(got.get('docker.io/berth-test/app:1')).toEqual({ local: true });
    // Pulled from its registry before: the cached copy never stands in for a refused query.
    expect(got.get('r.io/b:1')).toEqual({ error: expect.stringContaining('unauthorized: authentication required — registry r.io, image r.io/b:1, queried without credentials; fix the image reference, or set BERTH_DOCKER_CONFIG') });
  });

  it('pinDesired pins and rehashes; a failure is a plan error naming the service', async () => {
    const d = state([spec('web', { image: 'r.io/a:main' }), spec('db')]);
    const pinned = pinDesired(d, new Map([['r.io/a:main', { digest: D1 }], ['docker.io/berth-test/app:1', { local: true as const }]]));
    expect(pinned.services[0]!.spec.image).toBe(pinnedRef('r.io/a:main', D1));
    expect(pinned.services[0]!.spec.image).toBe(`r.io/a:main@${D1}`);
    expect(pinned.services[0]!.configHash).not.toBe(d.services[0]!.configHash);
    expect(pinned.services[1]).toEqual(d.services[1]);
    expect(() => pinDesired(d, new Map([['r.io/a:main', { error: 'denied' }]]))).toThrow(ImageResolutionError);
    expect(() => pinDesired(d, new Map([['r.io/a:main', { error: 'denied' }]]))).toThrow('cannot resolve an image to a digest:\n- service web: denied');
  });
});

describe('tagResolver (drift)', () => {
  it('asks once per target and tag within the ttl, again after it; an unresolvable tag is undefined', async () => {
    const { docker, calls } = engine({ 'r.io/a:main': D1 }, {});
    let t = 0;
    const resolve = tagResolver({ docker: () => docker, credentials: () => ({ source: 's', setting: 'S', authFor: () => undefined }) }, 1000, () => t);
    expect(await resolve('local', ['r.io/a:main', 'r.io/b:1'])).toEqual(new Map([['r.io/a:main', D1], ['r.io/b:1', undefined]]));
    await resolve('local', ['r.io/a:main']);
    expect(calls.filter((c) => c === 'r.io/a:main')).toHaveLength(1);
    t = 1000;
    await resolve('local', ['r.io/a:main']);
    expect(calls.filter((c) => c === 'r.io/a:main')).toHaveLength(2);
  });
});

describe('pinImages: pull_policy never across the targets of an environment', () => {
  const D2 = `sha256:${'2'.repeat(64)}`;
  /** An engine that holds `held` (repo digests by reference) and refuses every registry query. */
  const holding = (held: Record<string, string[]>) =>
    ({
      getImage: (name: string) => ({
        distribution: async () => {
          throw Object.assign(new Error('registry asked'), { statusCode: 500 });
        },
        inspect: async () => {
          if (held[name]) return { Id: `sha256:${name.length}`, RepoDigests: held[name], Metadata: { LastTagTime: new Date().toISOString() } };
          throw Object.assign(new Error('no such image'), { statusCode: 404 });
        },
      }),
    }) as unknown as Dockerode;
  const never = state([spec('web', { image: 'r.io/a:1', pullPolicy: 'never' })]);

  it('pins the digest every target holds, without asking a registry', async () => {
    const t = (name: string) => ({ name, docker: holding({ 'r.io/a:1': [`r.io/a@${D1}`] }) });
    expect((await pinImages(t('a'), never, { others: [t('b')] })).services[0]!.spec.image).toBe(`r.io/a:1@${D1}`);
  });

  it('fails the plan when another target lacks it or holds other bits', async () => {
    const a = { name: 'a', docker: holding({ 'r.io/a:1': [`r.io/a@${D1}`] }) };
    await expect(pinImages(a, never, { others: [{ name: 'b', docker: holding({}) }] })).rejects.toThrow('image r.io/a:1 is used as the engine holds it (pull_policy), but target b does not have it');
    await expect(pinImages(a, never, { others: [{ name: 'b', docker: holding({ 'r.io/a:1': [`r.io/a@${D2}`] }) }] })).rejects.toThrow(`target b holds another image (${D2.slice(0, 19)}) than target a (${D1.slice(0, 19)})`);
    await expect(pinImages({ name: 'a', docker: holding({}) }, never)).rejects.toThrow('pull_policy: never, and target a has no image r.io/a:1');
  });
});
