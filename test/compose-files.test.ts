// Compose configs and secrets in the loader (pure): forms and defaults,
// digests in the hash, and every refusal located at its line.
import { describe, expect, it } from 'vitest';
import { loadCompose, NeedRepoFiles } from '../src/compose/load.js';

const load = (text: string, opts: { variables?: Record<string, string>; secrets?: Record<string, string>; repoFiles?: Map<string, string | undefined> } = {}) =>
  loadCompose([{ path: 'deploy/compose.yml', text }], {
    project: 'shop',
    environment: 'staging',
    variables: opts.variables ?? {},
    secrets: { value: (n) => opts.secrets?.[n] },
    ...(opts.repoFiles ? { repoFiles: opts.repoFiles } : {}),
  });

const stack = (service: string, top: string) => `services:\n  app:\n    image: nginx\n${service}\n${top}\n`;

describe('compose configs and secrets', () => {
  it('applies compose defaults to the short and long forms', () => {
    const d = load(
      stack('    configs: [motd, {source: motd, target: etc/motd, mode: "0400"}]\n    secrets: [pw, {source: pw, target: pw2, uid: "7", gid: "8", mode: 0440}]', 'configs:\n  motd: {content: hi}\nsecrets:\n  pw: {environment: PW}'),
      { secrets: { PW: 'hunter22' } },
    );
    const files = d.services[0]!.spec.files!.map(({ digest: _d, ...f }) => f);
    expect(files).toEqual([
      { kind: 'config', source: 'motd', target: '/etc/motd', mode: 0o400 },
      { kind: 'config', source: 'motd', target: '/motd', mode: 0o444 },
      { kind: 'secret', source: 'pw', target: '/run/secrets/pw', mode: 0o444 },
      { kind: 'secret', source: 'pw', target: '/run/secrets/pw2', uid: '7', gid: '8', mode: 0o440 },
    ]);
    expect(d.contents).toEqual({ 'config:motd': 'hi', 'secret:pw': 'hunter22' });
  });

  it("a value's change changes the config hash of its users only", () => {
    const text = `services:\n  a:\n    image: nginx\n    secrets: [pw]\n  b:\n    image: nginx\nsecrets:\n  pw: {environment: PW}\n`;
    const one = load(text, { secrets: { PW: 'one-one' } });
    const two = load(text, { secrets: { PW: 'two-two' } });
    expect(one.services[0]!.configHash).not.toBe(two.services[0]!.configHash);
    expect(one.services[1]!.configHash).toBe(two.services[1]!.configHash);
  });

  it('asks for the repository files configs read, relative to the compose file, then uses them', () => {
    const text = stack('    configs: [site]', 'configs:\n  site: {file: ./conf/site.conf}');
    expect(() => load(text)).toThrow(NeedRepoFiles);
    try {
      load(text);
    } catch (e) {
      expect((e as NeedRepoFiles).paths).toEqual(['deploy/conf/site.conf']);
    }
    expect(load(text, { repoFiles: new Map([['deploy/conf/site.conf', 'x']]) }).contents).toEqual({ 'config:site': 'x' });
    expect(() => load(text, { repoFiles: new Map([['deploy/conf/site.conf', undefined]]) })).toThrow(/deploy\/compose.yml:6: .*does not exist/);
  });

  // as docker compose: an included file's paths are its own directory's; every file listed, the first file's directory
  it('a config file declared in an included file is read next to it; in an override file in another directory, next to the first file', () => {
    const files = new Map<string, string | undefined>([
      ['deploy/db/db.yml', 'services:\n  db:\n    image: postgres\n    configs: [pgconf]\nconfigs:\n  pgconf: {file: ./pg.conf}\n'],
      ['deploy/db/pg.conf', 'in-db-dir'],
      ['deploy/pg.conf', 'in-deploy-dir'],
      ['deploy/site.conf', 'site-in-deploy-dir'],
      ['ops/site.conf', 'site-in-ops-dir'],
    ]);
    const d = loadCompose(
      [
        { path: 'deploy/compose.yml', text: 'include: [db/db.yml]\nservices:\n  app: {image: nginx}\n' },
        { path: 'ops/over.yml', text: 'services:\n  app:\n    configs: [site]\nconfigs:\n  site: {file: ./site.conf}\n' },
      ],
      { project: 'shop', environment: 'staging', sources: files, repoFiles: files },
    );
    expect(d.contents).toEqual({ 'config:pgconf': 'in-db-dir', 'config:site': 'site-in-deploy-dir' });
  });

  it.each([
    ['a secret from a repository file', stack('    secrets: [k]', 'secrets:\n  k: {file: ./k.pem}'), /compose.yml:6: secrets.k.file: secret k reads a file from the repository/],
    ['an undeclared secret', stack('    secrets: [keys]', 'secrets:\n  key: {environment: K}'), /compose.yml:4: services.app.secrets\[0\]: secret "keys" is not declared .* did you mean "key"/],
    ['a secret whose variable is missing', stack('    secrets: [k]', 'secrets:\n  k: {environment: NOPE}'), /compose.yml:6: secrets.k: secret k reads variable NOPE/],
    ['an external config', stack('    configs: [c]', 'configs:\n  c: {external: true}'), /compose.yml:6: configs.c.external: .*Swarm/],
    ['a config file outside the repository', stack('    configs: [c]', 'configs:\n  c: {file: ../../etc/passwd}'), /outside the repository/],
    ['two files at one target', stack('    configs: [{source: c, target: /x}]\n    secrets: [{source: s, target: /x}]', 'configs:\n  c: {content: a}\nsecrets:\n  s: {environment: S}'), /two configs or secrets land at \/x/],
  ])('refuses %s at its line', (_what, text, re) => {
    expect(() => load(text, { secrets: { S: 'v', K: 'v' } })).toThrow(re);
  });
});
