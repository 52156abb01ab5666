import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findEnvironment, parseConfig } from '../src/config/config.js';
import { ConfigError } from '../src/errors.js';

function errorOf(text: string, file?: string): ConfigError {
  try {
    parseConfig(text, file);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig', () => {
  it('fills in defaults: local target, halt, no approvals, everything denied; no compose files (found as compose finds them)', () => {
    expect(parseConfig('project: shop\nenvironments:\n  - name: staging\n')).toEqual({
      project: 'shop',
      environments: [
        {
          name: 'staging',
          targets: ['local'],
          requires: [],
          profiles: [],
          variables: {},
          appliers: { users: [], teams: [] },
          approvals: 0,
          require: {},
          on_failure: 'halt',
          secret_keys: [],
          secrets: [],
          transient_environment: false,
          apply_on: 'comment',
        },
      ],
      policy: {
        allow_privileged: false,
        allow_host_network: false,
        allow_host_pid: false,
        allow_cap_add: [],
        allow_devices: false,
        allow_docker_socket: false,
        bind_mount_allowlist: [],
        allow_container_namespaces: [],
        allow_host_sysctls: false,
        allow_security_opt: false,
        allow_host_ipc: false,
        allow_host_cgroupns: false,
        allow_host_userns: false,
        allow_network_subnets: [],
        allow_logging_drivers: [],
        allow_registries: [],
        allow_shared_objects: [],
        allow_volume_drivers: [],
        allow_network_drivers: [],
      },
    });
  });

  it('reads every setting', () => {
    const c = parseConfig(
      [
        'project: shop',
        'environments:',
        '  - name: staging',
        '    compose: [deploy/compose.yml, ./deploy/../deploy/compose.staging.yml]',
        '    targets: [edge-1, edge.2]',
        '    variables: {TAG: "1.2", PORT: 8080, DEBUG: true}',
        '  - name: production',
        '    requires: [staging]',
        '    appliers: {users: [alice], teams: [acme/ops]}',
        '    approvals: 2',
        '    require: {approved: true, mergeable: true}',
        '    on_failure: continue',
        '    parallelism: 4',
        'policy:',
        '  allow_privileged: true',
        '  allow_cap_add: [cap_net_admin, SYS_TIME]',
        '  bind_mount_allowlist: [/srv/shop, ./conf]',
      ].join('\n'),
    );
    const [staging, production] = c.environments;
    expect(staging!.compose).toEqual(['deploy/compose.yml', 'deploy/compose.staging.yml']);
    expect(staging!.targets).toEqual(['edge-1', 'edge.2']);
    expect(staging!.variables).toEqual({ TAG: '1.2', PORT: '8080', DEBUG: 'true' });
    expect(production).toMatchObject({
      requires: ['staging'],
      appliers: { users: ['alice'], teams: ['acme/ops'] },
      approvals: 2,
      require: { approved: true, mergeable: true },
      on_failure: 'continue',
      parallelism: 4,
    });
    expect(c.policy).toMatchObject({ allow_privileged: true, allow_cap_add: ['NET_ADMIN', 'SYS_TIME'], bind_mount_allowlist: ['/srv/shop', './conf'] });
  });

  it('the shop fixture is valid', () => {
    const c = parseConfig(readFileSync(resolve(import.meta.dirname, '../fixtures/repos/shop/.github/berth.yml'), 'utf8'));
    expect(c.environments.map((e) => [e.name, e.requires])).toEqual([
      ['staging', []],
      ['production', ['staging']],
    ]);
  });

  it('bad YAML names file and line', () => {
    const e = errorOf('project: [\n');
    expect(e.code).toBe('bad_yaml');
    expect(e.message).toBe('.github/berth.yml:2: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]');
  });

  it('an empty config', () => {
    expect(errorOf('').message).toBe('.github/berth.yml: the config is empty — it needs at least project: and environments:');
  });

  it('unknown keys name the key, a suggestion and the known keys', () => {
    const e = errorOf('project: shop\nenvironments:\n  - name: staging\n    variabels: {}\n');
    expect(e.code).toBe('unknown_key');
    expect(e.line).toBe(4);
    expect(e.path).toBe('environments[0].variabels');
    expect(e.message).toBe(
      '.github/berth.yml:4: environments[0].variabels: unknown key "variabels" — did you mean "variables"? known keys: name, compose, targets, requires, profiles, variables, appliers, approvals, require, on_failure, secret_keys, secrets, parallelism, home, build_image, url, production_environment, transient_environment, apply_on',
    );
    expect(errorOf('project: shop\nenvironments: [{name: a}]\ntargets: []\n').message).toBe('.github/berth.yml:3: targets: unknown key "targets" — known keys: project, environments, policy');
  });

  it('requires must name an existing earlier environment', () => {
    expect(errorOf('project: shop\nenvironments:\n  - name: production\n    requires: [staging]\n  - name: staging\n').message).toBe(
      '.github/berth.yml:4: environments[0].requires[0]: "staging" is listed after "production" — environments are listed in promotion order: move "staging" before "production"',
    );
    expect(errorOf('project: shop\nenvironments:\n  - name: staging\n  - name: production\n    requires: [stagin]\n').message).toBe(
      '.github/berth.yml:5: environments[1].requires[0]: "stagin" is not an environment — did you mean "staging"?',
    );
    expect(errorOf('project: shop\nenvironments:\n  - name: staging\n    requires: [staging]\n').problem).toBe('environment "staging" cannot require itself');
  });

  it('duplicate environment names', () => {
    const e = errorOf('project: shop\nenvironments:\n  - name: staging\n  - name: staging\n');
    expect(e.code).toBe('duplicate_environment');
    expect(e.message).toBe('.github/berth.yml:4: environments[1].name: environment "staging" is listed twice — environments[0] has the same name');
  });

  it('names must be slugs', () => {
    expect(errorOf('project: Shop!\nenvironments:\n  - name: staging\n').message).toBe(
      '.github/berth.yml:1: project: must be a lowercase slug: a-z, 0-9, "-" and "_", starting and ending with a letter or digit, at most 63 characters, not "Shop!"',
    );
    expect(errorOf('project: shop\nenvironments:\n  - name: Prod Env\n').path).toBe('environments[0].name');
  });

  it('compose paths must stay inside the repository', () => {
    expect(errorOf('project: shop\nenvironments:\n  - name: a\n    compose: [../x.yml]\n').message).toBe(
      '.github/berth.yml:4: environments[0].compose[0]: "../x.yml" must be a file path inside the repository',
    );
    expect(errorOf('project: shop\nenvironments:\n  - name: a\n    compose: [/etc/compose.yml]\n').code).toBe('invalid_value');
  });

  it('every problem is listed at once, in line order', () => {
    const e = errorOf(
      [
        'project: shop',
        'environments:',
        '  - name: staging',
        '    targets: []',
        '    approvals: -1',
        '    on_failure: explode',
        '  - name: production',
        '    requires: [qa]',
        '    parallelism: 0',
        '    variables: {"1X": a, N: null}',
        'policy:',
        '  allow_privilegd: true',
        '  allow_cap_add: [1]',
      ].join('\n'),
    );
    expect(e.code).toBe('invalid_config');
    expect(e.line).toBe(4);
    expect(e.issues).toEqual([
      '.github/berth.yml:4: environments[0].targets: must not be empty',
      '.github/berth.yml:5: environments[0].approvals: must be at least 0, not -1',
      '.github/berth.yml:6: environments[0].on_failure: must be one of halt, continue, not "explode"',
      '.github/berth.yml:8: environments[1].requires[0]: "qa" is not an environment — environments: staging, production',
      '.github/berth.yml:9: environments[1].parallelism: must be at least 1, not 0',
      '.github/berth.yml:10: environments[1].variables.1X: invalid key "1X": must be a variable name: letters, digits and "_", not starting with a digit',
      '.github/berth.yml:10: environments[1].variables.N: must be a string, number or boolean',
      '.github/berth.yml:12: policy.allow_privilegd: unknown key "allow_privilegd" — did you mean "allow_privileged"? known keys: allow_privileged, allow_host_network, allow_host_pid, allow_cap_add, allow_devices, allow_docker_socket, bind_mount_allowlist, allow_container_namespaces, allow_host_sysctls, allow_security_opt, allow_host_ipc, allow_host_cgroupns, allow_host_userns, allow_network_subnets, allow_logging_drivers, allow_registries, allow_shared_objects, allow_volume_drivers, allow_network_drivers',
      '.github/berth.yml:13: policy.allow_cap_add[0]: must be a string, not 1',
    ]);
    expect(e.message).toBe(e.issues.join('\n'));
  });

  it('home: an absolute path on the target, normalised; what ~ stands for in that environment\'s bind sources', () => {
    expect(parseConfig('project: shop\nenvironments:\n  - { name: staging, home: /home/deploy/ }\n').environments[0]!.home).toBe('/home/deploy');
    expect(parseConfig('project: shop\nenvironments:\n  - { name: staging, home: "/home//deploy/./x/.." }\n').environments[0]!.home).toBe('/home/deploy');
    expect(parseConfig('project: shop\nenvironments:\n  - { name: staging }\n').environments[0]!.home).toBeUndefined();
    for (const [bad, shown] of [['"~/x"', '"~/x"'], ['home/deploy', '"home/deploy"'], ['""', '""']])
      expect(errorOf(`project: shop\nenvironments:\n  - { name: staging, home: ${bad} }\n`).issues, bad).toEqual([`.github/berth.yml:3: environments[0].home: must be an absolute path on the target, e.g. /home/deploy, not ${shown}`]);
  });

  it('a ~ path in bind_mount_allowlist is refused at its line (before, loading an environment crashed on it)', () => {
    const e = errorOf(['project: shop', 'environments:', '  - { name: staging, compose: [compose.yml] }', 'policy:', '  bind_mount_allowlist:', '    - /srv/ok', '    - ~/Pictures', '    - { path: "~", writable: true }'].join('\n'));
    expect(e.issues).toEqual([
      ".github/berth.yml:7: policy.bind_mount_allowlist[1]: ~ is not supported in the policy (an environment's home: gives ~ its meaning in that environment's bind sources only): use an absolute path, e.g. /srv/app or /home/deploy/data",
      ".github/berth.yml:8: policy.bind_mount_allowlist[2].path: ~ is not supported in the policy (an environment's home: gives ~ its meaning in that environment's bind sources only): use an absolute path, e.g. /srv/app or /home/deploy/data",
    ]);
  });

  it('missing and mistyped required keys', () => {
    expect(errorOf('environments:\n  - {}\n').issues).toEqual(['.github/berth.yml:1: missing required key "project"', '.github/berth.yml:2: environments[0]: missing required key "name"']);
    expect(errorOf('project: 1\nenvironments: {}\n').issues).toEqual(['.github/berth.yml:1: project: must be a string, not 1', '.github/berth.yml:2: environments: must be a list, not a mapping']);
    expect(errorOf('project: shop\nenvironments: []\n').message).toBe('.github/berth.yml:2: environments: list at least one environment');
  });

  it('names the file it was given', () => {
    expect(errorOf('project: [\n', 'main:.github/berth.yml').file).toBe('main:.github/berth.yml');
  });

  it('alias bombs are refused', () => {
    const ten = (l: string) => `[${Array(10).fill(`*${l}`).join(',')}]`;
    const bomb = ['a: &a [x,x,x,x,x,x,x,x,x,x]', `b: &b ${ten('a')}`, `c: &c ${ten('b')}`, `d: &d ${ten('c')}`, `e: &e ${ten('d')}`, `f: &f ${ten('e')}`, 'project: *f'].join('\n');
    expect(errorOf(bomb).code).toBe('alias_bomb');
  });
});

describe('findEnvironment', () => {
  const c = parseConfig('project: shop\nenvironments:\n  - name: staging\n  - name: production\n');
  it('finds by name, or names the ones there are', () => {
    expect(findEnvironment(c, 'production').name).toBe('production');
    expect(() => findEnvironment(c, 'prod')).toThrow('.github/berth.yml: no environment "prod" — environments: staging, production');
    expect(() => findEnvironment(c, 'stagin')).toThrow('.github/berth.yml: no environment "stagin" — did you mean "staging"? environments: staging, production');
  });
});

describe('environment names that would make Docker names collide', () => {
  it('refuses an environment named like another one plus "-…"', () => {
    const text = 'project: shop\nenvironments:\n  - name: staging\n  - name: staging-web\n';
    expect(() => parseConfig(text)).toThrow('.github/berth.yml:4: environments[1].name: environment "staging-web" starts with "staging-", another environment\'s name — their containers\' names could collide (<project>-staging-<service>…); rename one, e.g. "staging_web"');
    expect(() => parseConfig('project: shop\nenvironments:\n  - name: staging\n  - name: staging_web\n')).not.toThrow();
  });
});
