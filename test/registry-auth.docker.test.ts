// Registry credentials (issue 12): server-side config.json logins parsed as
// `docker login` writes them, and a pull from the real TLS + htpasswd registry
// scripts/ci-services.sh starts — with the login it succeeds, without it the
// error names the registry, the image and the setting to fix.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerEngine } from '../src/docker/docker-engine.js';
import { credentialsFor, parseDockerConfig, registryOf } from '../src/docker/registry-auth.js';
import { docker } from './helpers/docker.js';
import { CI_REGISTRY, CI_SERVICES_DIR, describeRegistry } from './helpers/env.js';

describe('config.json logins', () => {
  it('auth and identitytoken entries, keyed by host or URL; docker.io aliases', () => {
    const c = parseDockerConfig(
      JSON.stringify({
        auths: {
          'https://index.docker.io/v1/': { auth: Buffer.from('alice:s3:cret').toString('base64') },
          'ghcr.io': { identitytoken: 'tok' },
          'quay.io': {},
        },
      }),
      '/etc/berth/config.json',
      'BERTH_DOCKER_CONFIG',
    );
    expect(c.authFor('nginx:1')).toEqual({ serveraddress: 'docker.io', username: 'alice', password: 's3:cret' });
    expect(c.authFor('ghcr.io/acme/web:main')).toEqual({ serveraddress: 'ghcr.io', identitytoken: 'tok' });
    expect(c.authFor('quay.io/x/y')).toBeUndefined();
    expect(c.authFor('127.0.0.1:5000/x')).toBeUndefined();
    expect(registryOf('127.0.0.1:5000/a/b:t')).toBe('127.0.0.1:5000');
    expect(registryOf('acme/web')).toBe('docker.io');
  });

  it('a bad file or entry, and a path a setting names that is missing, fail naming the setting', () => {
    expect(() => parseDockerConfig('{', '/x/config.json', 'BERTH_DOCKER_CONFIG')).toThrow(/^BERTH_DOCKER_CONFIG: \/x\/config.json: not JSON/);
    expect(() => parseDockerConfig(JSON.stringify({ auths: { 'a.io': { auth: 'bm9jb2xvbg==' } } }), '/x', 'S')).toThrow('S: /x: auths["a.io"].auth is not base64 of user:password');
    expect(() => credentialsFor('edge', { BERTH_DOCKER_CONFIG_EDGE: '/nonexistent/config.json' })).toThrow('BERTH_DOCKER_CONFIG_EDGE: cannot read /nonexistent/config.json for target "edge": ENOENT');
    // The default location missing is simply "no logins".
    expect(credentialsFor('edge', { DOCKER_CONFIG: '/nonexistent' }).authFor('nginx')).toBeUndefined();
  });
});

describeRegistry('pulls from the private registry send the server-side login', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-docker-config-'));
  const ref = `${CI_REGISTRY}/t-reg-${process.pid}/app:${Date.now().toString(36)}`;
  const cli = (...args: string[]) => execFileSync('docker', ['--config', dir, ...args], { stdio: ['pipe', 'pipe', 'pipe'], input: args[0] === 'login' ? readFileSync(`${CI_SERVICES_DIR}/registry/password`) : undefined });
  const untag = () => docker.getImage(ref).remove().catch(() => {});

  beforeAll(() => {
    // A temporary DOCKER_CONFIG: never the machine's own logins.
    cli('login', CI_REGISTRY, '-u', 'berth', '--password-stdin');
    cli('tag', 'berth-test/app:1', ref);
    cli('push', ref);
    cli('rmi', ref);
  }, 120_000);
  afterAll(untag);

  it('with the login from BERTH_DOCKER_CONFIG the pull succeeds', async () => {
    await untag();
    const engine = new DockerEngine(docker, credentialsFor('local', { BERTH_DOCKER_CONFIG: join(dir, 'config.json') }));
    await engine.ensureImage(ref);
    expect((await docker.getImage(ref).inspect()).RepoDigests.some((d) => d.startsWith(`${CI_REGISTRY}/t-reg-${process.pid}/app@sha256:`))).toBe(true);
  }, 60_000);

  it('without a login the error names the registry, the image and the setting', async () => {
    await untag();
    const empty = join(dir, 'empty.json');
    writeFileSync(empty, JSON.stringify({ auths: {} }));
    const engine = new DockerEngine(docker, credentialsFor('local', { BERTH_DOCKER_CONFIG: empty }));
    await expect(engine.ensureImage(ref)).rejects.toThrow(`(registry ${CI_REGISTRY}, image ${ref}, pulled without credentials: ${empty} has no login for ${CI_REGISTRY}; set BERTH_DOCKER_CONFIG to a config.json with a working login for ${CI_REGISTRY})`);
  }, 60_000);
});
