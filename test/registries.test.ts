// The registry classifier behind policy.allow_registries (src/compose/registries.ts):
// how an image reference's registry is read (as Docker reads it) and which hosts
// are refused unless listed, in every spelling a resolver would accept.
import { describe, expect, it } from 'vitest';
import { checkImageRegistry, checkImageRegistryResolved, nonPublicAddress, parseLooseIPv4, registryOfImage, registryResolver, type RegistryLookup } from '../src/compose/registries.js';

const refused = (image: string, allow: string[] = []) => checkImageRegistry(image, allow).refusal;

describe('registryOfImage reads the registry the way Docker does', () => {
  it.each([
    ['nginx', 'docker.io', true],
    ['nginx:1.27', 'docker.io', true],
    ['library/nginx@sha256:' + 'a'.repeat(64), 'docker.io', true],
    ['docker.io/library/nginx:latest', 'docker.io', true],
    ['index.docker.io/x/y', 'index.docker.io', true],
    ['registry-1.docker.io/x/y:1', 'registry-1.docker.io', true],
    ['DOCKER.IO./x/y:1', 'docker.io', true],
    ['ghcr.io/o/app:1', 'ghcr.io', false],
    ['localhost/x', 'localhost', false],
    ['localhost:5000/x:1', 'localhost:5000', false],
    ['LOCALHOST/x', 'localhost', false],
    ['Registry/x', 'registry', false], // an upper-case first component is a host, not a Hub namespace
    ['127.0.0.1:5000/x', '127.0.0.1:5000', false],
    ['127.1:5000/x', '127.0.0.1:5000', false],
    ['2130706433:5000/x', '127.0.0.1:5000', false],
    ['0x7f.1:5000/x', '127.0.0.1:5000', false],
    ['0177.0.0.1:80/x', '127.0.0.1:80', false],
    ['[::1]:5000/x', '[::1]:5000', false],
    ['[::ffff:127.0.0.1]:5000/x', '[::ffff:7f00:1]:5000', false],
    ['[0:0:0:0:0:0:0:1]/x', '[::1]', false],
    ['registry.corp.:05000/x', 'registry.corp:5000', false],
  ])('%s → %s', (image, display, hub) => {
    const r = registryOfImage(image);
    expect(r).toMatchObject({ display, hub });
  });

  it('a malformed registry part is refused, never guessed', () => {
    for (const image of ['user@127.0.0.1:5000/x', 'user:pw@10.0.0.7/x', 'host:port/x', 'a_b.example/x', '[::1/x', '[nothex]:5000/x', 'ex ample.com/x'])
      expect(refused(image), image).toMatch(/not a registry address/);
  });
});

describe('hosts refused unless listed', () => {
  it.each([
    '127.0.0.1:5000/x',
    '127.1:5000/x',
    '127.0.0.1./x',
    '2130706433:5000/x',
    '0x7f.1:5000/x',
    '0x7F000001:5000/x',
    '017700000001:5000/x',
    '0.0.0.0:5000/x',
    '10.0.0.7:8080/x',
    '172.16.3.4/x',
    '172.31.255.255:443/x',
    '192.168.1.10:5000/x',
    '100.64.0.1/x',
    '169.254.169.254/latest',
    '[::1]:5000/x',
    '[::]:5000/x',
    '[0:0:0:0:0:0:0:1]:5000/x',
    '[::ffff:127.0.0.1]:5000/x',
    '[::ffff:7f00:1]:5000/x',
    '[::ffff:a9fe:a9fe]/x',
    '[64:ff9b::7f00:1]/x',
    '[2002:7f00:1::]/x',
    '[fe80::1%25eth0]:5000/x',
    '[fd12:3456::1]:5000/x',
    'localhost/x',
    'localhost:5000/x',
    'LocalHost:5000/x',
    'localhost.:5000/x',
    'registry.localhost/x',
    'registry:5000/x',
    'Registry/x',
    'internal-registry.corp/x',
    'INTERNAL-REGISTRY.CORP./x',
    'registry.internal/x',
    'host.docker.internal:5000/x',
    'nas.local/x',
    'registry.lan/x',
    'registry.home.arpa/x',
    '1.0.0.127.in-addr.arpa/x',
  ])('%s', (image) => {
    expect(refused(image)).toBeDefined();
  });

  it('digests and tags do not change the verdict', () => {
    expect(refused('127.0.0.1:5000/x@sha256:' + 'a'.repeat(64))).toMatch(/loopback/);
    expect(refused('127.0.0.1:5000/x:1.2@sha256:' + 'a'.repeat(64))).toMatch(/loopback/);
    expect(refused('10.0.0.7:8080/a/b/c:tag')).toMatch(/private/);
  });

  it('the refusal says what the address is', () => {
    expect(refused('127.1:5000/x')).toBe('registry 127.0.0.1:5000 is a loopback address');
    expect(refused('169.254.169.254/x')).toMatch(/link-local/);
    expect(refused('[fd00::1]/x')).toMatch(/unique-local/);
    expect(refused('localhost:5000/x')).toMatch(/localhost/);
  });

  it('Docker Hub and public names are allowed by default', () => {
    for (const image of ['nginx', 'nginx:1.27-alpine', 'berth-test/app:1', 'docker.io/library/nginx', 'ghcr.io/o/app:1', 'quay.io/a/b@sha256:' + 'b'.repeat(64), 'registry.example.com:5000/x', '8.8.8.8/x', '[2606:4700::1111]/x', 'nginx@sha256:' + 'c'.repeat(64)])
      expect(refused(image), image).toBeUndefined();
  });
});

describe('policy.allow_registries', () => {
  it('a listed host with a port allows that port only', () => {
    expect(refused('127.0.0.1:5000/x', ['127.0.0.1:5000'])).toBeUndefined();
    expect(refused('127.0.0.1:5001/x', ['127.0.0.1:5000'])).toBeDefined();
  });
  it('a listed host without a port allows every port', () => {
    expect(refused('registry.corp:5000/x', ['registry.corp'])).toBeUndefined();
    expect(refused('registry.corp/x', ['registry.corp'])).toBeUndefined();
  });
  it('entries and references compare normalised (case, trailing dot, IP spelling)', () => {
    expect(refused('127.1:5000/x', ['127.0.0.1:5000'])).toBeUndefined();
    expect(refused('Registry.Corp./x', ['registry.corp'])).toBeUndefined();
    expect(refused('[::1]:5000/x', ['[0:0::1]:5000'])).toBeUndefined();
  });
  it('a listed address does not allow another spelling of a different address', () => {
    expect(refused('127.0.0.2:5000/x', ['127.0.0.1:5000'])).toBeDefined();
    expect(refused('[::ffff:127.0.0.1]:5000/x', ['127.0.0.1:5000'])).toBeDefined();
  });
});

describe('inet_aton spellings', () => {
  it.each([
    ['127.1', '127.0.0.1'],
    ['127.0.1', '127.0.0.1'],
    ['2130706433', '127.0.0.1'],
    ['0x7f.1', '127.0.0.1'],
    ['0x7f000001', '127.0.0.1'],
    ['0177.0.0.01', '127.0.0.1'],
    ['10.0.0.7', '10.0.0.7'],
  ])('%s → %s', (s, ip) => expect(parseLooseIPv4(s)).toBe(ip));
  it('out-of-range and non-numeric forms are not addresses', () => {
    for (const s of ['256.0.0.1', '1.2.3.4.5', '4294967296', '08.0.0.1', 'example'] as const) expect(parseLooseIPv4(s)).toBeUndefined();
  });
  it('nonPublicAddress knows public from non-public', () => {
    expect(nonPublicAddress('8.8.8.8')).toBeUndefined();
    expect(nonPublicAddress('2606:4700::1111')).toBeUndefined();
    expect(nonPublicAddress('192.168.0.1')).toMatch(/private/);
    expect(nonPublicAddress('::ffff:10.1.2.3')).toMatch(/private/);
  });
});

describe('names are resolved on the berth server when a resolver is given', () => {
  const dns: Record<string, string[]> = { 'ghcr.io': ['140.82.112.33'], 'evil.example.com': ['127.0.0.1'], 'split.example.com': ['140.82.112.33', '10.0.0.5'], 'v6.example.com': ['::1'] };
  const calls: string[] = [];
  const lookup: RegistryLookup = async (h) => {
    calls.push(h);
    const a = dns[h];
    if (!a) throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
    return a;
  };
  it('a public name with public addresses is allowed', async () => {
    expect((await checkImageRegistryResolved('ghcr.io/o/a:1', [], lookup)).refusal).toBeUndefined();
  });
  it('a public-looking name pointed at a non-public address is refused', async () => {
    expect((await checkImageRegistryResolved('evil.example.com/x', [], lookup)).refusal).toBe('registry evil.example.com resolves to a loopback address (127.0.0.1)');
    expect((await checkImageRegistryResolved('split.example.com/x', [], lookup)).refusal).toMatch(/private address \(10\.0\.0\.5\)/);
    expect((await checkImageRegistryResolved('v6.example.com:5000/x', [], lookup)).refusal).toMatch(/loopback/);
  });
  it('a name whose lookup fails is allowed, whatever the failure: berth has no address to judge', async () => {
    for (const code of ['ENOTFOUND', 'EAI_AGAIN', 'ENODATA', 'ESERVFAIL', 'ETIMEOUT', undefined]) {
      const failing: RegistryLookup = async () => {
        throw Object.assign(new Error('lookup failed'), code ? { code } : {});
      };
      expect((await checkImageRegistryResolved('ghcr.io/o/a:1', [], failing)).refusal, String(code)).toBeUndefined();
    }
    expect((await checkImageRegistryResolved('registry.nowhere.example/x', [], lookup)).refusal).toBeUndefined();
    expect((await checkImageRegistryResolved('empty.example.com/x', [], async () => [])).refusal).toBeUndefined();
  });
  it('any non-public address in a successful answer refuses', async () => {
    for (const a of ['10.1.2.3', '127.0.0.53', 'fd00::1', '169.254.169.254']) {
      const answer: RegistryLookup = async () => ['140.82.112.33', a];
      expect((await checkImageRegistryResolved('registry.example.com/x', [], answer)).refusal, a).toMatch(new RegExp(`resolves to .*\\(${a.replace(/\./g, '\\.')}\\)`));
    }
  });
  it('Docker Hub, IP literals and listed registries are not looked up', async () => {
    calls.length = 0;
    await checkImageRegistryResolved('nginx', [], lookup);
    await checkImageRegistryResolved('docker.io/library/nginx', [], lookup);
    await checkImageRegistryResolved('8.8.8.8/x', [], lookup);
    expect((await checkImageRegistryResolved('evil.example.com/x', ['evil.example.com'], lookup)).refusal).toBeUndefined();
    expect(calls).toEqual([]);
  });
  it('a name refused by its form is not looked up either', async () => {
    calls.length = 0;
    expect((await checkImageRegistryResolved('localhost:5000/x', [], lookup)).refusal).toBeDefined();
    expect(calls).toEqual([]);
  });
});

describe('the server resolver: bounded, and answers kept a short time per host (failures too)', () => {
  it('a lookup that does not answer fails after the timeout, and the failure is kept for the TTL', async () => {
    let t = 0;
    const asked: string[] = [];
    const resolver = registryResolver((h) => (asked.push(h), new Promise<string[]>(() => {})), { timeoutMs: 20, ttlMs: 60_000, now: () => t });
    const started = Date.now();
    await expect(resolver('ghcr.io')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    expect(Date.now() - started).toBeLessThan(1000);
    // an offline machine pays the timeout once per host and minute, not on every plan
    t = 59_999;
    await expect(resolver('ghcr.io')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    expect(asked).toEqual(['ghcr.io']);
    t = 60_000;
    await expect(resolver('ghcr.io')).rejects.toMatchObject({ code: 'ETIMEOUT' });
    expect(asked).toEqual(['ghcr.io', 'ghcr.io']);
  });

  it('answers and failures are kept per host; concurrent asks share one lookup', async () => {
    let t = 0;
    const asked: string[] = [];
    const resolver = registryResolver(
      async (h) => {
        asked.push(h);
        if (h === 'nowhere.example') throw Object.assign(new Error('not found'), { code: 'ENOTFOUND' });
        return [h === 'evil.example.com' ? '127.0.0.1' : '140.82.112.33'];
      },
      { ttlMs: 60_000, now: () => t },
    );
    expect(await Promise.all([resolver('ghcr.io'), resolver('ghcr.io')])).toEqual([['140.82.112.33'], ['140.82.112.33']]);
    await expect(resolver('nowhere.example')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(await resolver('evil.example.com')).toEqual(['127.0.0.1']);
    t = 30_000;
    await resolver('ghcr.io');
    await expect(resolver('nowhere.example')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(asked).toEqual(['ghcr.io', 'nowhere.example', 'evil.example.com']);
    t = 61_000;
    await resolver('ghcr.io');
    expect(asked).toEqual(['ghcr.io', 'nowhere.example', 'evil.example.com', 'ghcr.io']);
  });
});

describe('checkImageRegistry answers from a cache of its verdicts', () => {
  it('keyed by the image and every entry of the allow list: a change of either is judged anew', () => {
    const image = '10.0.0.5:5000/team/app:1';
    const allow = ['10.0.0.5'];
    expect(checkImageRegistry(image, []).refusal).toMatch(/private/);
    expect(checkImageRegistry(image, allow).refusal).toBeUndefined();
    // the same verdict object the second time (cached), and still refused without the entry
    expect(checkImageRegistry(image, ['10.0.0.5'])).toBe(checkImageRegistry(image, allow));
    expect(checkImageRegistry(image, []).refusal).toMatch(/private/);
    // entries joined differently are different lists
    expect(checkImageRegistry(image, ['10.0.0.5,10.0.0.6']).refusal).toMatch(/private/);
    expect(checkImageRegistry('10.0.0.6:5000/app:1', ['10.0.0.5', '10.0.0.6']).refusal).toBeUndefined();
    expect(checkImageRegistry('10.0.0.6:5000/app:1', ['10.0.0.5']).refusal).toMatch(/private/);
    // a shared verdict cannot be changed by one caller for the next
    expect(Object.isFrozen(checkImageRegistry(image, allow))).toBe(true);
  });
});
