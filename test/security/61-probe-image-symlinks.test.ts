// Red team: the pre-create guard resolved a bind source's symlinks with the
// engine's path stat, inside a probe container of the PR's own image — and
// the engine evaluates a link *in the container's root filesystem*. A link
// planted in an allow-listed directory (`ALLOWED/x -> /tmp/secret`, by an
// earlier container with a writable entry) is followed by the mount on the
// host, to the host's /tmp/secret; in the probe, the PR's image makes
// /tmp/secret a link back to ALLOWED/decoy, so the stat answered "inside the
// allowlist" and the container was created with the host directory mounted.
// The guard now reads each link's own text and follows it the way the host's
// kernel will, never through the image. Real engine, real links; through
// `berth apply`.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/main.js';
import { LABEL } from '../../src/model/model.js';
import { within } from '../../src/compose/policy.js';
import { resolveUnder, type PathKind } from '../../src/docker/host-path.js';
import { docker, removeProject } from '../helpers/docker.js';
import { describeDocker } from '../helpers/env.js';

const PROJECT = 't-sec-61';
const IMAGE = 'berth-test/rt-probe-links:61';

function capture(): Io & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out: (s: string) => void (io.stdout += `${s}\n`), err: (s: string) => void (io.stderr += `${s}\n`) };
  return io;
}

/** berth-test/app:1 with `links` made in its root filesystem (path -> target), committed as IMAGE. */
async function imageWithLinks(links: [string, string][]): Promise<void> {
  const script = links.map(([path, target]) => `rm -rf '${path}' && mkdir -p "$(dirname '${path}')" && ln -s '${target}' '${path}'`).join(' && ');
  const c = await docker.createContainer({ Image: 'berth-test/app:1', Cmd: ['sh', '-c', script], Labels: { [LABEL.project]: PROJECT } });
  await c.start();
  expect((await c.wait()).StatusCode).toBe(0);
  await c.commit({ repo: IMAGE.split(':')[0], tag: IMAGE.split(':')[1] });
  await c.remove({ force: true });
}

describeDocker("the guard follows a bind source's links as the host does, not through the PR's image", () => {
  let repo: string;
  let db: string;
  let allowed: string;
  let secret: string;
  const cli = async (...args: string[]) => {
    const io = capture();
    const code = await main([args[0]!, '--repo', repo, ...args.slice(1)], io);
    return { code, out: io.stdout, err: io.stderr };
  };

  beforeAll(async () => {
    await removeProject(PROJECT);
    const dir = mkdtempSync(join(tmpdir(), 'berth-sec61-'));
    repo = join(dir, 'repo');
    mkdirSync(join(repo, '.github'), { recursive: true });
    db = `sqlite:${join(dir, 'berth.sqlite')}`;
    allowed = mkdtempSync('/tmp/t-sec-61-allowed-');
    // A host directory outside the allowlist, with something the PR must not read.
    secret = mkdtempSync('/tmp/t-sec-61-outside-');
    writeFileSync(join(secret, 'host-secret'), 'host only\n');
    mkdirSync(join(allowed, 'decoy'));
    // Planted in the allow-listed directory (as test 02's planter does from a container with a writable entry).
    symlinkSync(secret, join(allowed, 'x'));
    symlinkSync(`${secret}/../${secret.split('/').pop()}`, join(allowed, 'y'));
    // In the PR's image, the host path the link names leads back into the allowlist.
    await imageWithLinks([[secret, `${allowed}/decoy`]]);
  }, 60_000);

  afterAll(async () => {
    await removeProject(PROJECT);
    await docker.getImage(IMAGE).remove({ force: true }).catch(() => {});
    if (repo) rmSync(join(repo, '..'), { recursive: true, force: true });
    for (const d of [allowed, secret]) if (d) rmSync(d, { recursive: true, force: true });
  });

  for (const link of ['x', 'y'])
    it(`a link (${link}) to a host directory the image makes look allow-listed is refused, nothing created`, async () => {
      writeFileSync(join(repo, '.github/berth.yml'), [`project: ${PROJECT}`, 'environments:', '  - name: staging', '    compose: [compose.yml]', 'policy:', `  bind_mount_allowlist: [${allowed}]`, ''].join('\n'));
      writeFileSync(join(repo, 'compose.yml'), ['services:', '  reader:', `    image: ${IMAGE}`, '    volumes:', `      - ${allowed}/${link}:/host`, ''].join('\n'));
      const r = await cli('apply', '--env', 'staging', '--yes', '--database', db);
      const created = await docker.listContainers({ all: true, filters: { label: [`${LABEL.project}=${PROJECT}`, `${LABEL.service}=reader`] } });
      expect(created.map((c) => c.Mounts.find((m) => m.Destination === '/host')?.Source)).toEqual([]);
      expect(r.code).toBe(1);
      expect(r.out + r.err).toContain(`service reader: bind mount of ${allowed}/${link} resolves to ${secret} on the target`);
      expect(r.out + r.err).toContain('nothing was created');
    }, 60_000);

  it('links that stay inside the allowlist are still followed and mounted', async () => {
    mkdirSync(join(allowed, 'real'));
    symlinkSync(join(allowed, 'real'), join(allowed, 'abs'));
    symlinkSync('decoy/../real', join(allowed, 'rel'));
    writeFileSync(join(repo, 'compose.yml'), ['services:', '  reader:', `    image: ${IMAGE}`, '    volumes:', `      - ${allowed}/abs:/abs`, `      - ${allowed}/rel:/rel`, ''].join('\n'));
    const r = await cli('apply', '--env', 'staging', '--yes', '--database', db);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const c = await docker.getContainer(`${PROJECT}-staging-reader-1`).inspect();
    expect(c.Mounts.filter((m) => m.Type === 'bind').map((m) => m.Source).sort()).toEqual([`${allowed}/abs`, `${allowed}/rel`]);
  }, 60_000);
});

describe('resolveUnder follows link texts as the host kernel does', () => {
  const dir = '/srv/allowed';
  const fs: Record<string, string | null> = { '/srv/allowed/real': null, '/srv/allowed/in': 'real', '/srv/allowed/abs': '/srv/allowed/real', '/srv/allowed/loop': 'loop', '/srv/allowed/via': 'in/../../allowed/real', '/srv/allowed/side': '/srv/other/../allowed/real' };
  const look = async (p: string): Promise<PathKind> => (p in fs ? (fs[p] === null ? { kind: 'other' } : { kind: 'link', text: fs[p]! }) : { kind: 'absent' });
  it('inside links resolve; leaving dir by .., by a link as written or past an ancestor is reported as where it leads', async () => {
    expect(await resolveUnder(dir, '/srv/allowed/in', look)).toBe('/srv/allowed/real');
    expect(await resolveUnder(dir, '/srv/allowed/abs', look)).toBe('/srv/allowed/real');
    // `in/..` is /srv/allowed by the kernel (in is a link to a directory of dir), and .. there leaves it
    expect(within(await resolveUnder(dir, '/srv/allowed/via', look), dir)).toBe(false);
    // /srv/other is not the way into dir: whatever it is on the host, the walk does not follow it
    expect(await resolveUnder(dir, '/srv/allowed/side', look)).toBe('/srv/other');
    await expect(resolveUnder(dir, '/srv/allowed/loop', look)).rejects.toThrow(/more than 40 symbolic links/);
  });
});
