// A service's `platform:` reaches the pull, not only the container create (corpus round 7: Flagsmith's
// docker-compose.pgpool.yml runs bitnami pgpool with `platform: linux/arm64`). docker compose pulls the image
// for the service's platform; berth pulled the host's and then created the container for linux/arm64, which
// Docker refuses ("does not match the specified platform").
import type Dockerode from 'dockerode';
import { describe, expect, it } from 'vitest';
import { imagePulls } from '../src/apply/executor.js';
import { DockerEngine } from '../src/docker/docker-engine.js';

/** A Dockerode stand-in: the image present locally (or not), and the pulls asked for. */
function stubDocker(present: { Os: string; Architecture: string; Variant?: string } | undefined) {
  const pulls: { image: string; opts: Record<string, unknown> }[] = [];
  const docker = {
    getImage: () => ({
      inspect: async () => {
        if (!present) throw Object.assign(new Error('No such image'), { statusCode: 404 });
        return present;
      },
    }),
    pull: async (image: string, opts: Record<string, unknown>) => (pulls.push({ image, opts }), 'stream'),
    modem: { followProgress: (_s: unknown, done: (err: Error | null, out: unknown[]) => void) => done(null, []) },
  } as unknown as Dockerode;
  return { docker, pulls };
}

describe('platform: reaches the pull', () => {
  it('pulls the image for the service platform, and an image of another platform is not present', async () => {
    const amd64 = stubDocker({ Os: 'linux', Architecture: 'amd64' });
    await new DockerEngine(amd64.docker).ensureImage('docker.io/bitnami/pgpool:4@sha256:' + 'a'.repeat(64), { platform: 'linux/arm64' });
    expect(amd64.pulls).toEqual([{ image: 'docker.io/bitnami/pgpool:4@sha256:' + 'a'.repeat(64), opts: { platform: 'linux/arm64' } }]);
    // missing: pulled for the platform
    const none = stubDocker(undefined);
    await new DockerEngine(none.docker).ensureImage('nginx:1', { platform: 'linux/arm64/v8' });
    expect(none.pulls).toEqual([{ image: 'nginx:1', opts: { platform: 'linux/arm64/v8' } }]);
    // present for that platform (x86_64 is amd64, as Docker reads it): nothing pulled
    const same = stubDocker({ Os: 'linux', Architecture: 'amd64' });
    await new DockerEngine(same.docker).ensureImage('nginx:1', { platform: 'linux/x86_64' });
    expect(same.pulls).toEqual([]);
    // no platform: present is present, as before
    const plain = stubDocker({ Os: 'linux', Architecture: 'arm64' });
    await new DockerEngine(plain.docker).ensureImage('nginx:1');
    expect(plain.pulls).toEqual([]);
  });

  it('pull_policy: never with an image of another platform is an error naming both platforms, never a create that fails later', async () => {
    const amd64 = stubDocker({ Os: 'linux', Architecture: 'amd64' });
    await expect(new DockerEngine(amd64.docker).ensureImage('nginx:1', { pull: false, platform: 'linux/arm64' })).rejects.toThrow('image nginx:1 is on the engine for linux/amd64, not for platform linux/arm64');
    expect(amd64.pulls).toEqual([]);
  });

  it('EnsureImage pulls once per platform the services of the image name, and the host platform for those that name none', () => {
    const svc = (platform?: string, pullPolicy?: 'never' | 'always') => ({ spec: { ...(platform ? { platform } : {}), ...(pullPolicy ? { pullPolicy } : {}) } });
    expect(imagePulls([svc('linux/arm64'), svc('linux/arm64')])).toEqual([{ pull: true, always: false, platform: 'linux/arm64' }]);
    expect(imagePulls([svc(), svc('linux/arm64')])).toEqual([{ pull: true, always: false }, { pull: true, always: false, platform: 'linux/arm64' }]);
    expect(imagePulls([svc()])).toEqual([{ pull: true, always: false }]);
    expect(imagePulls([svc('linux/amd64', 'never')])).toEqual([{ pull: false, always: false, platform: 'linux/amd64' }]);
    expect(imagePulls([])).toEqual([{ pull: true, always: false }]);
  });
});
