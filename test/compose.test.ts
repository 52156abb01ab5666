import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { interpolateString } from '../src/compose/interpolate.js';
import { loadCompose, type LoadComposeOptions } from '../src/compose/load.js';
import { normalizeImage, parseDuration, splitCommand } from '../src/compose/normalize.js';
import { DENY_ALL, type Policy } from '../src/compose/policy.js';
import { ComposeError, ConfigError } from '../src/errors.js';
import type { DesiredState, ServiceSpec } from '../src/model/model.js';
import { planToString } from '../src/plan/plan.js';
import { desiredDigest, reconcile } from '../src/plan/reconcile.js';
import { errorOf } from './helpers/errors.js';
import { loadEnvironment, readFromDir } from '../src/config/load-environment.js';

const OPTS: LoadComposeOptions = { project: 'shop', environment: 'staging', variables: {} };

function load(text: string | string[], opts: Partial<LoadComposeOptions> = {}): DesiredState {
  const texts = Array.isArray(text) ? text : [text];
  return loadCompose(
    texts.map((t, i) => ({ path: i === 0 ? 'compose.yml' : `compose.${i}.yml`, text: t })),
    { ...OPTS, ...opts },
  );
}

function service(d: DesiredState, name: string): ServiceSpec {
  const s = d.services.find((x) => x.spec.name === name);
  if (!s) throw new Error(`no service ${name}`);
  return s.spec;
}


const svc = (body: string, extra = '') => `services:\n  web:\n${body.replace(/^/gm, '    ')}\n${extra}`;

describe('compose errors name file, line, path and problem', () => {
  it('bad YAML', () => {
    const e = errorOf(() => load('services:\n  web:\n    image: x\n   bad: [\n'));
    expect(e.code).toBe('bad_yaml');
    expect(e.message).toBe('compose.yml:4: invalid YAML: All mapping items must start at the same column');
  });

  it('duplicate keys are bad YAML', () => {
    const e = errorOf(() => load('services:\n  web:\n    image: x\n    image: y\n'));
    expect(e.message).toBe('compose.yml:4: invalid YAML: Map keys must be unique');
    // the first repeat in the document is the one named; a key of another type is another key; merge keys may repeat
    expect(errorOf(() => load('services:\n  a:\n    image: x\n    labels: {k: 1, k: 2}\n  b:\n    image: y\n    image: z\n')).line).toBe(4);
    expect(service(load('x-a: &a {TZ: UTC}\nx-b: &b {LANG: C}\nservices:\n  web:\n    image: x\n    environment:\n      <<: *a\n      <<: *b\n    labels: {1: a, "1x": b}\n'), 'web').environment).toEqual({ TZ: 'UTC', LANG: 'C' });
  });

  it('a merge key given a list (an anchored environment list, as Coolify\'s langfuse and gramps-web templates write) is refused at its line, as docker compose refuses it; a list of map aliases merges', () => {
    const e = errorOf(() => load('x-env: &env\n  - A=1\nservices:\n  web:\n    image: x\n    environment:\n      <<: *env\n      B: 2\n'));
    expect([e.code, e.line]).toEqual(['bad_yaml', 7]);
    expect(e.message).toContain('the merge key (<<) takes a map, an alias of a map, or a list of those, and is given an alias of a list');
    expect(errorOf(() => load('x-v: &v\n  - data:/data\nservices:\n  web:\n    image: x\n    volumes:\n      <<: *v\n')).line).toBe(7);
    expect(errorOf(() => load('x-a: &a {A: "1"}\nservices:\n  web:\n    image: x\n    environment:\n      <<: [*a, B=2]\n')).line).toBe(6);
    expect(service(load('x-a: &a {A: "1"}\nx-b: &b {B: "2"}\nservices:\n  web:\n    image: x\n    environment:\n      <<: [*a, *b]\n'), 'web').environment).toEqual({ A: '1', B: '2' });
  });

  it('an alias is the latest anchor of its name before it (each alias resolved once, not by a scan of the document)', () => {
    const before = load('x-a: &img nginx:1\nservices:\n  one: {image: *img}\n  two: {image: *img}\nx-b: &img nginx:2\nx-c: *img\n');
    expect(before.services.map((x) => x.spec.image)).toEqual(['docker.io/library/nginx:1', 'docker.io/library/nginx:1']);
    expect(service(load('x-a: &img nginx:1\nx-b: &img nginx:2\nservices:\n  one: {image: *img}\n'), 'one').image).toBe('docker.io/library/nginx:2');
  });

  it('unknown service key, with a suggestion', () => {
    const e = errorOf(() => load('services:\n  web:\n    image: nginx\n    enviroment: {}\n'));
    expect(e.code).toBe('unknown_key');
    expect(e.message).toBe('compose.yml:4: services.web.enviroment: unknown key "enviroment" in service web — did you mean "environment"?');
  });

  it('unknown service key without a close match lists the supported keys', () => {
    const e = errorOf(() => load(svc('image: nginx\nfrobnicate: 1')));
    expect(e.message).toMatch(/^compose\.yml:4: services\.web\.frobnicate: unknown key "frobnicate" in service web — supported service keys: image, command, /);
  });

  it('unknown top-level key', () => {
    expect(errorOf(() => load('servics: {}\n')).message).toBe('compose.yml:1: servics: unknown top-level key "servics" — did you mean "services"?');
  });

  it('a missing env_file and a build: without image: say what to do', () => {
    expect(errorOf(() => load(svc('image: nginx\nenv_file: .env'))).message).toBe(
      "compose.yml:4: services.web.env_file: env_file .env not found (looked for .env in the repository) — add the file to the repository, or mark it optional: env_file: [{path: …, required: false}]; a .env that holds secrets stays out of the repository: list its entries under environment: as ${VARIABLE}s that the environment's variables or server-side secrets in .github/berth.yml supply",
    );
    // env files by name (app.env, .env.local) get the same word about secrets; other files do not
    for (const f of ['app.env', 'deploy/.env.local', 'stack.env']) expect(errorOf(() => load(svc(`image: nginx\nenv_file: ${f}`))).hint, f).toMatch(/secrets/);
    for (const f of ['app.conf', 'envs/web', '.envrc']) expect(errorOf(() => load(svc(`image: nginx\nenv_file: ${f}`))).hint, f).toBe('add the file to the repository, or mark it optional: env_file: [{path: …, required: false}]');
    const b = errorOf(() => load(svc('build: .')));
    expect(b.code).toBe('missing_image');
    expect(b.message).toBe(
      'compose.yml:3: services.web.build: service web has build: but no image: — berth does not build images: build and push the image in CI, then add image: (e.g. image: ghcr.io/OWNER/web:${TAG}) next to build:',
    );
  });

  it('bad port', () => {
    const e = errorOf(() => load(svc('image: nginx\nports:\n  - "80:80"\n  - "8080:99999"')));
    expect(e.code).toBe('bad_port');
    expect(e.line).toBe(6);
    expect(e.message).toBe(
      'compose.yml:6: services.web.ports[1]: invalid port "8080:99999": container port 99999 is out of range 1-65535 — use "[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]", e.g. "8080:80" or "127.0.0.1:53:53/udp"',
    );
    expect(errorOf(() => load(svc('image: nginx\nports: ["abc"]'))).problem).toBe('invalid port "abc": container port "abc" is not a number');
    expect(errorOf(() => load(svc('image: nginx\nports: ["80/quic"]'))).problem).toBe('invalid port "80/quic": protocol "quic" is not tcp, udp or sctp');
    // SCTP, as Docker publishes it (open5gs's AMF: 38412/sctp)
    expect(load(svc('image: nginx\nports: ["38412:38412/sctp", {target: 36412, protocol: SCTP}]')).services[0]!.spec.ports).toEqual([
      { target: 36412, protocol: 'sctp' },
      { target: 38412, published: 38412, protocol: 'sctp' },
    ]);
    expect(errorOf(() => load(svc('image: nginx\nports: ["8000-8002:80-81"]'))).problem).toBe('invalid port "8000-8002:80-81": host and container ranges differ in length');
    expect(errorOf(() => load(svc('image: nginx\nports: ["8000-8010:80"]'))).problem).toBe('invalid port "8000-8010:80": a host port range for one container port is not supported');
    expect(errorOf(() => load(svc('image: nginx\nports: ["300.1.1.1:80:80"]'))).problem).toBe('invalid port "300.1.1.1:80:80": "300.1.1.1" is not an IP address');
  });

  it('missing image', () => {
    const e = errorOf(() => load(svc('ports: ["80"]')));
    expect(e.code).toBe('missing_image');
    expect(e.message).toBe('compose.yml:2: services.web: service web has no image — berth does not build images: add image: with a pushed image reference');
  });

  it('bad image reference', () => {
    expect(errorOf(() => load(svc('image: Nginx'))).message).toBe(
      'compose.yml:3: services.web.image: invalid image reference "Nginx": repository names must be lowercase — write it as [registry/]name[:tag][@digest], e.g. nginx:1.27',
    );
  });

  it('unknown depends_on target', () => {
    const e = errorOf(() => load('services:\n  web:\n    image: nginx\n    depends_on: [apii]\n  api:\n    image: nginx\n'));
    expect(e.code).toBe('unknown_service');
    expect(e.message).toBe('compose.yml:4: services.web.depends_on[0]: service web depends on "apii", which is not a service — did you mean "api"?');
  });

  it('depends_on required: false on a missing service is dropped', () => {
    const d = load(svc('image: nginx\ndepends_on:\n  cache: {condition: service_started, required: false}'));
    expect(service(d, 'web').dependsOn).toEqual([]);
  });

  it('cycle in depends_on names the whole cycle', () => {
    const text = 'services:\n  a:\n    image: x\n    depends_on: [b]\n  b:\n    image: x\n    depends_on: [c]\n  c:\n    image: x\n    depends_on: [a]\n';
    const e = errorOf(() => load(text));
    expect(e.code).toBe('depends_on_cycle');
    expect(e.message).toBe('compose.yml:10: services.c.depends_on[0]: depends_on cycle: a -> b -> c -> a — remove one of these dependencies');
    expect(errorOf(() => load('services:\n  a:\n    image: x\n    depends_on: [a]\n')).problem).toBe('depends_on cycle: a -> a');
  });

  it('service_healthy on a service without a healthcheck in the files waits for the image\'s HEALTHCHECK', () => {
    // as docker compose does: many images (zipkin, woodpecker-server, bonita-postgres…) ship their own
    const d = load('services:\n  web:\n    image: nginx\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: x\n');
    expect(service(d, 'web').dependsOn).toEqual([{ service: 'db', condition: 'service_healthy' }]);
    expect(service(d, 'db').healthcheck).toBeUndefined();
    const plan = planToString(reconcile(d, { project: d.project, environment: d.environment, containers: [], networks: [], volumes: [] }));
    const wait = /-> #(\d+) service:db:1, WaitHealthy, service_healthy \(the image's healthcheck\)/.exec(plan);
    expect(wait).not.toBeNull();
    expect(plan).toMatch(new RegExp(`\\[(\\d+,)*${wait![1]}(,\\d+)*\\] -> #\\d+ service:web:1, StartContainer`));
  });

  it('a healthcheck without a test (disable: false, or timings only) runs the image\'s HEALTHCHECK, its left-out timings the image\'s too', () => {
    // immich writes `healthcheck: {disable: false}` to turn its image's healthcheck on
    const d = load('services:\n  web:\n    image: nginx\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: x\n    healthcheck:\n      disable: false\n      retries: 7\n');
    expect(service(d, 'db').healthcheck).toEqual({ test: [], intervalMs: 0, timeoutMs: 0, retries: 7, startPeriodMs: 0 });
    const plan = planToString(reconcile(d, { project: d.project, environment: d.environment, containers: [], networks: [], volumes: [] }));
    expect(plan).toMatch(/service:db:1, WaitHealthy, service_healthy \(the image's healthcheck\)/);
    expect(desiredDigest(d)).not.toBe(desiredDigest(load('services:\n  web:\n    image: nginx\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: x\n    healthcheck:\n      disable: false\n')));
  });

  it('service_healthy on a service whose healthcheck is disabled is refused, located', () => {
    for (const hc of ['{disable: true}', '{test: [NONE]}']) {
      const e = errorOf(() => load(`services:\n  web:\n    image: nginx\n    depends_on:\n      db: {condition: service_healthy}\n  db:\n    image: x\n    healthcheck: ${hc}\n`));
      expect(e.code).toBe('no_healthcheck');
      expect(e.message).toBe("compose.yml:5: services.web.depends_on.db: service web waits for db to be healthy, but db's healthcheck is disabled — give db a healthcheck that runs a test, or use condition: service_started");
    }
  });

  it('undeclared network and volume', () => {
    const n = errorOf(() => load(svc('image: nginx\nnetworks: [frnt]', 'networks:\n  front: {}\n')));
    expect(n.code).toBe('undeclared_network');
    expect(n.message).toBe('compose.yml:4: services.web.networks[0]: service web uses network "frnt", which is not declared under the top-level networks — did you mean "front"?');
    const v = errorOf(() => load(svc('image: nginx\nvolumes: ["data:/data"]')));
    expect(v.code).toBe('undeclared_volume');
    expect(v.message).toBe('compose.yml:4: services.web.volumes[0]: service web uses volume "data", which is not declared under the top-level volumes — declare it: volumes: { data: {} }');
  });

  it('replicas must be a non-negative integer', () => {
    const e = errorOf(() => load(svc('image: nginx\ndeploy:\n  replicas: -1')));
    expect(e.code).toBe('bad_replicas');
    expect(e.message).toBe('compose.yml:5: services.web.deploy.replicas: deploy.replicas must be a non-negative integer, not -1');
    expect(errorOf(() => load(svc('image: nginx\ndeploy:\n  replicas: 1.5'))).problem).toBe('deploy.replicas must be a non-negative integer, not 1.5');
    expect(errorOf(() => load(svc('image: nginx\ndeploy:\n  replicas: many'))).problem).toBe('deploy.replicas must be a non-negative integer, not "many"');
    expect(errorOf(() => load(svc('image: nginx\ndeploy:\n  placement: {}'))).problem).toBe('deploy.placement is not supported by berth');
  });

  it('an unset plain variable becomes "" and is warned about; a :? demand still refuses with its located message', () => {
    const d = load(svc('image: nginx\nenvironment:\n  X: ${NOPE}\n  Y: a-$NOPE2-b'));
    expect(service(d, 'web').environment).toMatchObject({ X: '', Y: 'a--b' });
    expect(d.unsetVariables).toEqual([{ file: 'compose.yml', names: ['NOPE', 'NOPE2'] }]);
    const r = errorOf(() => load(svc('image: nginx:${TAG:?set the release tag}')));
    expect(r.code).toBe('missing_variable');
    expect(r.message).toBe("compose.yml:3: services.web.image: variable TAG is not set: set the release tag — set TAG in the environment's variables in .github/berth.yml");
    const q = errorOf(() => load(svc('image: nginx:${TAG?}')));
    expect(q.message).toBe("compose.yml:3: services.web.image: variable TAG is not set — set TAG in the environment's variables in .github/berth.yml");
    // :? refuses an empty value too, ? only an unset one (compose's rule)
    expect(errorOf(() => load(svc('image: nginx:${TAG:?}'), { variables: { TAG: '' } })).problem).toBe('variable TAG is empty');
    expect(service(load(svc('image: nginx${TAG?}'), { variables: { TAG: '' } }), 'web').image).toBe('docker.io/library/nginx:latest');
    // a set variable, a default, an alternative and $$ warn about nothing
    const quiet = load(svc('image: nginx:${TAG:-1}\nenvironment:\n  A: ${SET}\n  B: ${ALT:+x}\n  C: $${LITERAL}\n  D: ${E-}'), { variables: { SET: 's' } });
    expect(service(quiet, 'web').environment).toMatchObject({ A: 's', B: '', C: '${LITERAL}', D: '' });
    expect(service(quiet, 'web').image).toBe('docker.io/library/nginx:1');
    expect(quiet.unsetVariables).toBeUndefined();
  });

  it('a file that leaves several variables unset plans, naming them all once per file in the order used', () => {
    const text =
      'x-unused:\n  note: ${ONLY_IN_EXTENSION}\nservices:\n  web:\n    image: nginx:${TAG:-1}\n    env_file: [vars.env]\n    environment:\n      A: ${FIRST}\n      B: ${SECOND}\n      C: $THIRD\n      D: ${FIRST}-again\n      E: ${OPT:-${NESTED}}\n      F: ${SET}\n  db:\n    image: postgres\n    command: ["--x=${FOURTH}"]\n    volumes: ["data:/d"]\nvolumes:\n  data:\n    name: x${FIFTH}\n';
    const sources = new Map([
      ['vars.env', 'FROM_ENV_FILE=${IN_ENV_FILE}\n'],
      ['.env', 'DOT=${IN_DOTENV}\n'],
    ]);
    const d = loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'e', variables: { SET: 's' }, sources });
    // not the defaulted TAG, the set SET, nor an x- field berth does not read
    expect(d.unsetVariables).toEqual([
      { file: '.env', names: ['IN_DOTENV'] },
      { file: 'compose.yml', names: ['FIRST', 'SECOND', 'THIRD', 'NESTED', 'FOURTH', 'FIFTH'] },
      { file: 'vars.env', names: ['IN_ENV_FILE'] },
    ]);
    expect(service(d, 'web').environment).toMatchObject({ A: '', D: '-again', E: '', F: 's', FROM_ENV_FILE: '' });
    expect(d.volumes.find((v) => v.spec.name === 'data')?.spec.dockerName).toBe('x');
  });

  it("Flowise's real file, which leaves about a hundred variables unset, plans with them all in one warning", () => {
    // the corpus copy binds ~/.flowise (its berth.yml sets home:); here the bind is written absolute
    const text = readFileSync(new URL('../fixtures/corpus/flowise/docker/docker-compose.yml', import.meta.url), 'utf8').replace('~/.flowise:', '/srv/flowise:');
    const vars = { PORT: '3000', JWT_ISSUER: 'Flowise', JWT_AUDIENCE: 'Flowise', JWT_TOKEN_EXPIRY_IN_MINUTES: '360', JWT_REFRESH_TOKEN_EXPIRY_IN_MINUTES: '43200' };
    const d = loadCompose([{ path: 'docker/docker-compose.yml', text }], { project: 'p', environment: 'e', variables: vars });
    expect(d.unsetVariables).toHaveLength(1);
    const [u] = d.unsetVariables!;
    expect(u!.file).toBe('docker/docker-compose.yml');
    expect(u!.names.length).toBeGreaterThan(100);
    expect(new Set(u!.names).size).toBe(u!.names.length);
    for (const set of Object.keys(vars)) expect(u!.names).not.toContain(set);
    expect(u!.names).toContain('DATABASE_TYPE');
    expect(service(d, 'flowise').environment).toMatchObject({ PORT: '3000', DATABASE_TYPE: '' });
  });

  it('process.env is never a source of variables', () => {
    process.env.BERTH_TEST_ONLY_IN_PROCESS_ENV = 'x';
    try {
      const d = load(svc('image: nginx:${BERTH_TEST_ONLY_IN_PROCESS_ENV:-fallback}\nenvironment:\n  A: ${BERTH_TEST_ONLY_IN_PROCESS_ENV}'));
      expect(service(d, 'web').image).toBe('docker.io/library/nginx:fallback');
      expect(service(d, 'web').environment).toMatchObject({ A: '' });
      expect(d.unsetVariables).toEqual([{ file: 'compose.yml', names: ['BERTH_TEST_ONLY_IN_PROCESS_ENV'] }]);
    } finally {
      delete process.env.BERTH_TEST_ONLY_IN_PROCESS_ENV;
    }
  });

  it('bad interpolation syntax', () => {
    expect(errorOf(() => load(svc('image: nginx\nenvironment:\n  X: ${A'))).message).toBe(
      'compose.yml:5: services.web.environment.X: invalid interpolation in "${A": unclosed "${" — write $$ for a literal $',
    );
  });

  it('alias bomb: refused by its size once expanded', () => {
    const bomb = [
      'x-a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      ...'bcdef'.split('').map((l, i) => `x-${l}: &${l} [${Array(10).fill(`*${'abcdef'[i]}`).join(',')}]`),
      'services: {}',
    ].join('\n');
    const e = errorOf(() => load(bomb));
    expect(e.code).toBe('alias_bomb');
    expect(e.message).toBe(
      'compose.yml: YAML document expands to more than 200000 values once its aliases are expanded — this looks like a "billion laughs" document; use fewer nested anchors and aliases',
    );
    expect(errorOf(() => load(readFileSync(new URL('../fixtures/hostile/alias-bomb.compose.yml', import.meta.url), 'utf8'))).code).toBe('alias_bomb');
  });

  it('oversize file', () => {
    const e = errorOf(() => load('services: {}\n' + '#'.repeat(1024 * 1024)));
    expect(e.code).toBe('too_large');
    expect(e.message).toBe('compose.yml: file is 1048589 bytes, more than the 1048576 bytes berth reads — split it or remove what is not needed');
  });

  it('nesting too deep, including deep enough to overflow the parser', () => {
    const e = errorOf(() => load(`x-a: ${'['.repeat(100)}${']'.repeat(100)}\nservices: {}\n`));
    expect(e.code).toBe('too_deep');
    expect(e.message).toBe('compose.yml:1: YAML nested more than 64 levels deep — flatten the document');
    expect(errorOf(() => load(`x-a: ${'['.repeat(200_000)}\n`)).code).toBe('too_deep');
  });

  it('a self-referencing anchor is refused, not looped over', () => {
    expect(errorOf(() => load('x-a: &a [*a]\nservices: {}\n')).code).toMatch(/too_deep|bad_yaml|alias_bomb/);
  });

  it('custom tags other than !reset/!override are refused', () => {
    expect(errorOf(() => load(svc('image: !foo nginx'))).message).toBe('compose.yml:3: unsupported YAML tag !foo — only !reset and !override are understood');
  });

  it('errors in a later file name that file', () => {
    const e = errorOf(() => load([svc('image: nginx'), 'services:\n  web:\n    ports: ["70000"]\n']));
    expect(e.file).toBe('compose.1.yml');
    expect(e.line).toBe(3);
  });

  it('errors inside anchors point at the anchored text, through aliases and merge keys', () => {
    const merged = 'x-app: &app\n  image: x\n  environment:\n    A: ${NOPE:?}\nservices:\n  web:\n    <<: *app\n';
    expect(errorOf(() => load(merged)).message).toMatch(/^compose\.yml:4: services\.web\.environment\.A: variable NOPE is not set/);
    const alias = 'x-ports: &ports\n  - "80:80"\n  - "bad"\nservices:\n  web:\n    image: x\n    ports: *ports\n';
    expect(errorOf(() => load(alias)).message).toMatch(/^compose\.yml:3: services\.web\.ports\[1\]: invalid port "bad"/);
  });

  it('network_mode and networks together', () => {
    expect(errorOf(() => load(svc('image: nginx\nnetwork_mode: host\nnetworks: [default]'))).problem).toBe('service web: network_mode and networks cannot be combined');
  });

  it('healthcheck duration and test shapes', () => {
    expect(errorOf(() => load(svc('image: nginx\nhealthcheck:\n  test: ["true"]\n  interval: 10'))).problem).toBe(
      'healthcheck.test list must start with CMD, CMD-SHELL or NONE, not "true"',
    );
    expect(errorOf(() => load(svc('image: nginx\nhealthcheck:\n  test: "true"\n  interval: 10'))).message).toBe(
      'compose.yml:6: services.web.healthcheck.interval: healthcheck.interval: invalid duration 10 — use a number with a unit, e.g. 30s, 1m30s, 500ms',
    );
  });
});

describe('policy', () => {
  const withPolicy = (body: string, policy: Partial<Policy> = {}, extra = '') => load(svc(`image: nginx\n${body}`, extra), { policy: { ...DENY_ALL, ...policy }, repoRoot: '/srv/repo' });

  it('denies privileged, host network, host pid, capabilities, devices, the docker socket and bind mounts by default', () => {
    expect(errorOf(() => withPolicy('privileged: true')).message).toBe(
      "compose.yml:4: services.web.privileged: service web: privileged mode is not allowed by the repository's policy — allow it with policy.allow_privileged: true in .github/berth.yml on the default branch",
    );
    expect(errorOf(() => withPolicy('network_mode: host')).problem).toBe("service web: network_mode host is not allowed by the repository's policy");
    expect(errorOf(() => withPolicy('pid: host')).problem).toBe("service web: pid host is not allowed by the repository's policy");
    expect(errorOf(() => withPolicy('cap_add: [net_admin]')).problem).toBe("service web: cap_add NET_ADMIN is not allowed by the repository's policy");
    expect(errorOf(() => withPolicy('devices: [/dev/fuse]')).problem).toBe("service web: device /dev/fuse is not allowed by the repository's policy");
    expect(errorOf(() => withPolicy('volumes: ["/var/run/docker.sock:/var/run/docker.sock"]')).problem).toBe(
      "service web: mounting the Docker socket (/var/run/docker.sock) is not allowed by the repository's policy",
    );
    expect(errorOf(() => withPolicy('volumes: ["/var/run:/host-run"]')).code).toBe('policy_denied');
    expect(errorOf(() => withPolicy('volumes: ["./conf:/conf"]')).problem).toBe("service web: bind mount of ./conf is not allowed by the repository's policy");
  });

  it('~ in a bind source is the environment\'s home: (docker compose takes its user\'s home), then the policy decides as for any path', () => {
    const home = { home: '/home/deploy' };
    expect(service(load(svc('image: nginx\nvolumes: ["~/data:/data", "~:/h", {type: bind, source: ~/.cfg/x, target: /x}]'), home), 'web').volumes.map((v) => v.source).sort()).toEqual(['/home/deploy', '/home/deploy/.cfg/x', '/home/deploy/data']);
    // no home: a located refusal that says where to set it
    const none = errorOf(() => load(svc('image: nginx\nvolumes: ["~/data:/data"]')));
    expect(none.line).toBe(4);
    expect(none.problem).toBe('bind source "~/data": ~ names no directory here (docker compose takes the home of the user it runs as; berth runs as no user of the target)');
    expect(none.hint).toBe('use an absolute path, or set home: (e.g. home: /home/deploy) for this environment in .github/berth.yml on the default branch');
    // another user's home is not expanded (nor by docker compose)
    expect(errorOf(() => load(svc('image: nginx\nvolumes: ["~root/.ssh:/k"]'), home)).problem).toBe('bind source "~root/.ssh": ~user is not supported');
    // the policy sees the expanded path: outside the allowlist, or climbing out of it, is denied
    const homePolicy = (body: string) => load(svc(`image: nginx\n${body}`), { policy: { ...DENY_ALL, bind_mount_allowlist: ['/home/deploy/data'] }, ...home });
    expect(errorOf(() => homePolicy('volumes: ["~/.ssh:/k"]')).problem).toBe("service web: bind mount of ~/.ssh is not allowed by the repository's policy");
    expect(errorOf(() => homePolicy('volumes: ["~/data/../.ssh:/k"]')).code).toBe('policy_denied');
    expect(service(homePolicy('volumes: ["~/data/app:/d"]'), 'web').volumes[0]!.source).toBe('/home/deploy/data/app');
  });

  it('home: is ${HOME} too, as docker compose reads both from its user, unless the environment sets HOME', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-home-'));
    mkdirSync(join(dir, '.github'));
    const berth = (vars: string) => `project: shop\nenvironments:\n  - { name: staging, home: /home/deploy${vars} }\npolicy:\n  bind_mount_allowlist: [/home/deploy, /srv]\n`;
    writeFileSync(join(dir, 'compose.yml'), 'services:\n  web:\n    image: nginx\n    volumes: ["${HOME}/data:/data", "~/cfg:/cfg"]\n');
    writeFileSync(join(dir, '.github/berth.yml'), berth(''));
    const sources = async () => service((await loadEnvironment(readFromDir(dir), 'staging')).desired, 'web').volumes.map((v) => v.source).sort();
    expect(await sources()).toEqual(['/home/deploy/cfg', '/home/deploy/data']);
    writeFileSync(join(dir, '.github/berth.yml'), berth(', variables: { HOME: /srv }'));
    expect(await sources()).toEqual(['/home/deploy/cfg', '/srv/data']);
  });

  it('an unset variable is "" before the policy looks: it cannot make a denied host path pass', () => {
    // each path below is what the policy sees once the unset variable is gone, and each is denied as the literal is
    const denied = [
      'volumes: ["${HOST_ROOT}/:/host"]',
      'volumes: ["${HOST_ROOT}/var/run/docker.sock:/var/run/docker.sock"]',
      'volumes: [{type: bind, source: "${HOST_ROOT}/", target: /host}]',
      'volumes: ["/srv/data${APP_DIR}:/x"]',
      'volumes: ["./conf${SUB}/../..:/x"]',
    ];
    for (const body of denied) {
      const e = errorOf(() => withPolicy(body, { bind_mount_allowlist: ['/srv/data/app', './conf/app'] }));
      expect(['policy_denied', 'path_escapes_repo'], body).toContain(e.code);
      expect(e.line, body).toBe(4);
    }
    expect(errorOf(() => withPolicy('volumes: ["${HOST_ROOT}/:/host"]')).problem).toBe(errorOf(() => withPolicy('volumes: ["/:/host"]')).problem);
    expect(errorOf(() => withPolicy('volumes: ["/srv/data${APP_DIR}:/x"]', { bind_mount_allowlist: ['/srv/data/app'] })).problem).toBe("service web: bind mount of /srv/data is not allowed by the repository's policy");
    // set, the same file is allowed: the denial is the empty substitution's doing
    expect(() => load(svc('image: nginx\nvolumes: ["/srv/data${APP_DIR}:/x"]'), { policy: { ...DENY_ALL, bind_mount_allowlist: ['/srv/data/app'] }, repoRoot: '/srv/repo', variables: { APP_DIR: '/app' } })).not.toThrow();
  });

  it('a bind source written with an unset variable is denied with a hint that names it ($PWD: berth has no shell)', () => {
    // miniflux's Caddy example: `$PWD/Caddyfile` is `/Caddyfile` once PWD is "" — the denial says why
    const pwd = errorOf(() => withPolicy('volumes: ["$PWD/Caddyfile:/etc/caddy/Caddyfile"]', { bind_mount_allowlist: ['Caddyfile'] }));
    expect(pwd.problem).toBe("service web: bind mount of /Caddyfile is not allowed by the repository's policy");
    expect(pwd.line).toBe(4);
    expect(pwd.hint).toContain('the source was written with $PWD/Caddyfile, and PWD is not set (it became "")');
    expect(pwd.hint).toContain('berth runs no shell, so $PWD is not the directory docker compose was started in: write ./Caddyfile (relative to the compose file)');
    // the long form and ${VAR} too; the hint names every unset variable of the source
    const long = errorOf(() => withPolicy('volumes: [{type: bind, source: "${DATA_ROOT}/data/${SUB}", target: /x}]', { bind_mount_allowlist: ['/srv/data'] }));
    expect(long.problem).toBe("service web: bind mount of /data/ is not allowed by the repository's policy");
    expect(long.hint).toContain('the source was written with ${DATA_ROOT}/data/${SUB}, and DATA_ROOT, SUB are not set (each became "")');
    // the source as written ends at the first ":" outside ${…}
    expect(errorOf(() => withPolicy('volumes: ["${BASE}/x/${SUB:-app}:/x"]')).hint).toContain('the source was written with ${BASE}/x/${SUB:-app}, and BASE is not set');
    // "${ROOT}/" is "/", which holds the Docker socket: that denial says why too
    expect(errorOf(() => withPolicy('volumes: ["${ROOT}/:/host"]')).hint).toContain('the source was written with ${ROOT}/, and ROOT is not set');
    expect(long.hint).toContain("set them in the environment's variables in .github/berth.yml");
    // a source with nothing unset keeps the plain hint
    expect(errorOf(() => withPolicy('volumes: ["./conf:/conf"]')).hint).toBe('add the path (or a parent) to policy.bind_mount_allowlist in .github/berth.yml on the default branch');
    // and a set variable changes nothing: allowed when it points inside the allowlist
    expect(() => load(svc('image: nginx\nvolumes: ["$PWD/Caddyfile:/etc/caddy/Caddyfile"]'), { policy: { ...DENY_ALL, bind_mount_allowlist: ['Caddyfile'] }, repoRoot: '/srv/repo', variables: { PWD: '.' } })).not.toThrow();
  });

  it('allows what the policy allows', () => {
    expect(() => withPolicy('privileged: true', { allow_privileged: true })).not.toThrow();
    expect(() => withPolicy('network_mode: host', { allow_host_network: true })).not.toThrow();
    expect(() => withPolicy('cap_add: [CAP_NET_ADMIN]', { allow_cap_add: ['NET_ADMIN'] })).not.toThrow();
    expect(() => withPolicy('volumes: ["/var/run/docker.sock:/var/run/docker.sock:ro"]', { allow_docker_socket: true })).not.toThrow();
    expect(() => withPolicy('volumes: ["./conf/nginx:/conf"]', { bind_mount_allowlist: ['./conf'] })).not.toThrow();
    expect(() => withPolicy('volumes: ["/srv/data/x:/x"]', { bind_mount_allowlist: ['/srv/data'] })).not.toThrow();
    expect(errorOf(() => withPolicy('volumes: ["/srv/database:/x"]', { bind_mount_allowlist: ['/srv/data'] })).code).toBe('policy_denied');
    // named volumes are not bind mounts
    expect(() => withPolicy('volumes: ["data:/data"]', {}, 'volumes:\n  data: {}\n')).not.toThrow();
  });
});

describe('normalisation', () => {
  it('images are fully qualified', () => {
    expect(normalizeImage('nginx')).toBe('docker.io/library/nginx:latest');
    expect(normalizeImage('nginx:1.27')).toBe('docker.io/library/nginx:1.27');
    expect(normalizeImage('foo/bar:1')).toBe('docker.io/foo/bar:1');
    expect(normalizeImage('docker.io/nginx')).toBe('docker.io/library/nginx:latest');
    expect(normalizeImage('index.docker.io/library/nginx:1')).toBe('docker.io/library/nginx:1');
    expect(normalizeImage('ghcr.io/acme/api:2.1')).toBe('ghcr.io/acme/api:2.1');
    expect(normalizeImage('localhost:5000/api')).toBe('localhost:5000/api:latest');
    expect(normalizeImage('localhost/api')).toBe('localhost/api:latest');
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(normalizeImage(`nginx@${digest}`)).toBe(`docker.io/library/nginx@${digest}`);
    expect(normalizeImage(`nginx:1.27@${digest}`)).toBe(`docker.io/library/nginx:1.27@${digest}`);
    expect(normalizeImage('berth-test/app:1')).toBe('docker.io/berth-test/app:1');
  });

  it('durations', () => {
    expect(parseDuration('1m30s', 'x')).toBe(90_000);
    expect(parseDuration('500ms', 'x')).toBe(500);
    expect(parseDuration('1.5s', 'x')).toBe(1500);
    expect(parseDuration('1.1s', 'x')).toBe(1100);
    expect(parseDuration('1h', 'x')).toBe(3_600_000);
    expect(parseDuration('250us', 'x')).toBe(0.25);
    expect(parseDuration('0', 'x')).toBe(0);
  });

  it('commands given as strings are split like a shell', () => {
    expect(splitCommand('sleep 3600')).toEqual(['sleep', '3600']);
    expect(splitCommand(`sh -c 'echo "a b"; exit 0'`)).toEqual(['sh', '-c', 'echo "a b"; exit 0']);
    expect(splitCommand('echo "a \\"b\\"" c\\ d')).toEqual(['echo', 'a "b"', 'c d']);
    expect(splitCommand('  ')).toEqual([]);
    // as go-shellwords (docker compose) splits, where a POSIX shell would not: a backslash in double quotes takes
    // any next character (a regex's \\d is d), \\t and \\n are a tab and a newline, a backquoted part is one piece
    expect(splitCommand('grep -E "\\d+" log')).toEqual(['grep', '-E', 'd+', 'log']);
    expect(splitCommand('printf "a\\tb\\n" \\n')).toEqual(['printf', 'a\tb\n', '\n']);
    expect(splitCommand("printf 'a\\tb'")).toEqual(['printf', 'a\\tb']);
    expect(splitCommand('echo `date +%s` x`a "b" \\c`')).toEqual(['echo', '`date +%s`', 'x`a "b" \\c`']);
    expect(splitCommand('a\u00a0b\u2003c')).toEqual(['a\u00a0b\u2003c']);
    expect(splitCommand("echo '' \"\"")).toEqual(['echo', '', '']);
    expect(() => splitCommand('echo a\\')).toThrow('ends in a backslash that escapes nothing');
    expect(() => splitCommand('echo `date')).toThrow('unterminated backquote');
    expect(() => splitCommand('echo a)')).toThrow('")" outside quotes is shell syntax, and no shell runs this command: docker compose cannot split a command with it into words');
    expect(load(svc('image: x\ncommand: sleep 3600')).services[0]!.spec.command).toEqual(['sleep', '3600']);
    expect(load(svc('image: x\nentrypoint: ["/bin/sh", "-c"]')).services[0]!.spec.entrypoint).toEqual(['/bin/sh', '-c']);
    // shell syntax outside quotes: docker compose (go-shellwords) runs the words before it and drops the rest (Kong's
    // `kong migrations up && kong migrations finish`): refused at its line, with the list that runs a shell
    const kong = errorOf(() => load(svc('image: kong\ncommand: kong migrations up && kong migrations finish')));
    expect(kong).toMatchObject({ code: 'invalid_value', line: 4, hint: 'to run it in a shell, write the command as a list: [sh, -c, "kong migrations up && kong migrations finish"]; or quote the "&&" if it is an argument' });
    expect(kong.problem).toContain('"&&" outside quotes is shell syntax');
    for (const [cmd, op] of [['node server.js 8090 2>&1', '>'], ['a; b', ';'], ['a | b', '|'], ['a < f', '<'], ['echo (x)', '(']])
      expect(errorOf(() => load(svc(`image: x\nentrypoint: ${JSON.stringify(cmd)}`))).problem).toContain(`"${op}" outside quotes`);
    // quoted, it is an argument like any other
    expect(load(svc(`image: x\ncommand: 'sh -c "a && b; c | d > e"'`)).services[0]!.spec.command).toEqual(['sh', '-c', 'a && b; c | d > e']);
  });

  // Found by running public compose files (corpus round of 2026-12-05), each as compose-go does it.
  it('an override merges logging as compose does, adds its profiles, and yes/no/on/off are booleans', () => {
    const base = 'services:\n  web:\n    image: nginx\n    profiles: [web]\n    logging: {driver: json-file, options: {max-size: 10m}}\n';
    const merged = service(load([base, 'services:\n  web:\n    profiles: [extra]\n    logging: {options: {max-file: "3"}}\n'], { profiles: ['web'] }), 'web');
    expect(merged.logging).toEqual({ driver: 'json-file', options: { 'max-file': '3', 'max-size': '10m' } });
    // another driver replaces the whole
    expect(service(load([base, 'services:\n  web:\n    logging: {driver: local}\n'], { profiles: ['web'] }), 'web').logging).toEqual({ driver: 'local', options: {} });
    // the profile the override adds keeps the service, and so does the base's
    expect(load([base, 'services:\n  web:\n    profiles: [extra]\n'], { profiles: ['extra'] }).services).toHaveLength(1);
    expect(load([base, 'services:\n  web:\n    profiles: [extra]\n'], { profiles: ['web'] }).services).toHaveLength(1);
    expect(service(load('services:\n  web: {image: x, tty: "yes", stdin_open: "Off", init: "n"}\n'), 'web')).toMatchObject({ tty: true, stdinOpen: false, init: false });
    expect(errorOf(() => load('services:\n  web: {image: x, tty: "maybe"}\n')).problem).toBe('tty must be true or false, not "maybe"');
  });

  it('integers reach the container as docker compose reads them: every digit beyond 2^53, 1_000 and 0b101 as numbers', () => {
    const env = service(
      load('services:\n  bot:\n    image: x\n    environment:\n      GUILD: 1098765432109876543\n      MIN: -9223372036854775808\n      MAX: 18446744073709551615\n      HUGE: 98765432109876543210987\n      BATCH: 1_000\n      FLAGS: 0b101\n      HEX: 0x1F\n      SMALL: -42\n    labels: {chat: 7123456789012345678}\n'),
      'bot',
    );
    // go-yaml holds 64 bits exactly; beyond them a float64, printed as Go prints it
    expect(env.environment).toEqual({ GUILD: '1098765432109876543', MIN: '-9223372036854775808', MAX: '18446744073709551615', HUGE: '9.876543210987654e+22', BATCH: '1000', FLAGS: '5', HEX: '31', SMALL: '-42' });
    expect(env.labels).toEqual({ chat: '7123456789012345678' });
    // numbers where numbers are wanted are unchanged
    expect(service(load('services:\n  web: {image: x, ports: ["8080:80"], deploy: {replicas: 1_0}}\n'), 'web')).toMatchObject({ ports: [{ published: 8080, target: 80 }], replicas: 10 });
  });

  it('a leading zero is octal, as go-yaml reads it; modes follow compose-go: a number is the number, a string is octal digits', () => {
    const env = service(load('services:\n  bot:\n    image: x\n    environment: {UMASK: 022, NEG: -010, NINE: 09, ZERO: 0, O: 0o17, QUOTED: "022"}\n'), 'bot').environment;
    expect(env).toEqual({ UMASK: '18', NEG: '-8', NINE: '9', ZERO: '0', O: '15', QUOTED: '022' });
    const modes = (mode: string) =>
      service(load(`services:\n  web:\n    image: x\n    configs: [{source: c, target: /c, mode: ${mode}}]\nconfigs:\n  c: {content: hi}\n`), 'web').files![0]!.mode;
    expect([modes('0440'), modes('"0440"'), modes('0o440'), modes('"0o440"'), modes('0o400'), modes('440'), modes('288')]).toEqual([0o440, 0o440, 0o440, 0o440, 0o400, 440, 0o440]);
    expect(errorOf(() => modes('"rw-r--r--"')).problem).toBe('mode "rw-r--r--" is not an octal mode');
    const tmpfs = (mode: string) => service(load(`services:\n  web:\n    image: x\n    volumes: [{type: tmpfs, target: /t, tmpfs: {mode: ${mode}}}]\n`), 'web').volumes[0]!.tmpfsMode;
    // 1777 without its zero is decimal in docker compose too (0o3361): the sticky mode is 01777
    expect([tmpfs('01777'), tmpfs('0o1777'), tmpfs('"01777"'), tmpfs('1777'), tmpfs('"1777"'), tmpfs('0700')]).toEqual([0o1777, 0o1777, 0o1777, 1777, 1777, 0o700]);
  });

  it('x- keys inside a service\'s objects are ignored as compose ignores them; in maps whose keys are data they are data', () => {
    const web = service(
      load(
        [
          'services:',
          '  web:',
          '    image: nginx',
          '    environment: {x-keep: "1", A: b}',
          '    labels: {x-label: "yes"}',
          '    healthcheck: {test: ["CMD", "true"], x-note: hi}',
          '    deploy: {x-a: 1, resources: {limits: {memory: 64m, x-b: 2}}, restart_policy: {condition: on-failure, x-c: 3}}',
          '    logging: {driver: json-file, options: {x-opt: v}, x-d: 4}',
          '    depends_on: {db: {condition: service_started, x-e: 5}}',
          '    ports: [{target: 80, published: 8080, x-f: 6}]',
          '    volumes: [{type: volume, source: data, target: /data, volume: {nocopy: true, x-g: 7}, x-h: 8}]',
          '    networks: {default: {aliases: [w], x-i: 9}}',
          '    ulimits: {nofile: {soft: 10, hard: 20, x-j: 1}}',
          '  db: {image: postgres}',
          'volumes: {data: {}}',
          '',
        ].join('\n'),
      ),
      'web',
    );
    expect(web).toMatchObject({
      environment: { A: 'b', 'x-keep': '1' },
      labels: { 'x-label': 'yes' },
      healthcheck: { test: ['CMD', 'true'] },
      memLimit: 64 * 1024 ** 2,
      logging: { driver: 'json-file', options: { 'x-opt': 'v' } },
      ports: [{ target: 80, published: 8080, protocol: 'tcp' }],
      volumes: [{ type: 'volume', source: 'data', target: '/data', noCopy: true }],
      ulimits: { nofile: { soft: 10, hard: 20 } },
    });
    // a key that is not an extension is still refused where it is
    expect(errorOf(() => load(svc('image: x\nhealthcheck: {test: ["CMD", "true"], intervall: 1s}'))).code).toBe('unknown_key');
  });

  it('a file of several YAML documents is refused in words that say what to do', () => {
    const e = errorOf(() => load('services:\n  a: {image: x}\n---\nservices:\n  b: {image: y}\n'));
    expect(e).toMatchObject({ code: 'bad_yaml', line: 3, problem: 'the file holds more than one YAML document (a --- line starts another)' });
    expect(e.hint).toContain("list the files, in order, under the environment's compose:");
  });

  it('defaults: restart no, replicas 1, network default, no healthcheck', () => {
    const d = load(svc('image: nginx'));
    expect(service(d, 'web')).toEqual({
      name: 'web',
      image: 'docker.io/library/nginx:latest',
      environment: {},
      ports: [],
      volumes: [],
      networks: ['default'],
      dependsOn: [],
      labels: {},
      restart: 'no',
      replicas: 1,
    });
    expect(d.networks.map((n) => n.spec)).toEqual([{ name: 'default', driver: 'bridge', internal: false, attachable: false, labels: {}, external: false }]);
  });

  it('the implicit default network exists only when some service uses it; unused declared networks and volumes are left out', () => {
    const d = load(svc('image: nginx\nnetworks: [front]', 'networks:\n  front: {}\n  unused: {}\nvolumes:\n  spare: {}\n'));
    expect(d.networks.map((n) => n.spec.name)).toEqual(['front']);
    expect(d.volumes).toEqual([]);
    expect(load(svc('image: nginx\nnetwork_mode: none')).networks).toEqual([]);
    expect(service(load(svc('image: nginx\nnetwork_mode: none')), 'web').networks).toEqual([]);
  });

  it('healthcheck defaults and forms', () => {
    const h = service(load(svc('image: x\nhealthcheck:\n  test: curl -f http://localhost')), 'web').healthcheck;
    // timings left out are 0, as docker compose sends them: Docker takes the image's HEALTHCHECK timings, else its defaults
    expect(h).toEqual({ test: ['CMD-SHELL', 'curl -f http://localhost'], intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 0 });
    const h2 = service(load(svc('image: x\nhealthcheck:\n  test: ["CMD", "true"]\n  interval: 1m30s\n  timeout: 500ms\n  retries: 5\n  start_period: 2s')), 'web').healthcheck;
    expect(h2).toEqual({ test: ['CMD', 'true'], intervalMs: 90_000, timeoutMs: 500, retries: 5, startPeriodMs: 2000 });
    expect(service(load(svc('image: x\nhealthcheck:\n  disable: true')), 'web').healthcheck?.test).toEqual(['NONE']);
  });

  it('depends_on list form means service_started', () => {
    const d = load('services:\n  web:\n    image: x\n    depends_on: [db, api]\n  api:\n    image: x\n  db:\n    image: x\n');
    expect(service(d, 'web').dependsOn).toEqual([
      { service: 'api', condition: 'service_started' },
      { service: 'db', condition: 'service_started' },
    ]);
  });

  it('environment: map or list, sorted, values stringified like compose, bare keys from the variables', () => {
    const d = load(svc('image: x\nenvironment:\n  B: 1\n  A: true\n  C: 1.50\n  D: ""\n  E:\n  F:\n  G: null'), { variables: { E: 'from-config' } });
    expect(Object.entries(service(d, 'web').environment)).toEqual([
      ['A', 'true'],
      ['B', '1'],
      ['C', '1.5'],
      ['D', ''],
      ['E', 'from-config'],
    ]);
    const l = load(svc('image: x\nenvironment:\n  - B=1\n  - A=x=y\n  - E\n  - F'), { variables: { E: 'e' } });
    expect(service(l, 'web').environment).toEqual({ A: 'x=y', B: '1', E: 'e' });
  });

  it('labels: map or list', () => {
    expect(service(load(svc('image: x\nlabels: ["a=1", "b"]')), 'web').labels).toEqual({ a: '1', b: '' });
    expect(service(load(svc('image: x\nlabels: {b: 2, a: "1"}')), 'web').labels).toEqual({ a: '1', b: '2' });
  });

  it('ports: every short form and the long form, sorted', () => {
    const d = load(
      svc(
        [
          'image: x',
          'ports:',
          '  - "127.0.0.1:8080:80/udp"',
          '  - "8000-8001:90-91"',
          '  - 443',
          '  - "80"',
          '  - "127.0.0.1::22"',
          '  - "[::1]:5353:53/udp"',
          '  - "7000-7001"',
          '  - target: 80',
          '    published: "8080"',
          '    host_ip: 0.0.0.0',
          '    protocol: tcp',
          '    mode: host',
        ].join('\n'),
      ),
    );
    expect(service(d, 'web').ports).toEqual([
      { target: 22, hostIp: '127.0.0.1', protocol: 'tcp' },
      { target: 53, published: 5353, hostIp: '::1', protocol: 'udp' },
      { target: 80, protocol: 'tcp' },
      { target: 80, published: 8080, hostIp: '0.0.0.0', protocol: 'tcp' },
      { target: 80, published: 8080, hostIp: '127.0.0.1', protocol: 'udp' },
      { target: 90, published: 8000, protocol: 'tcp' },
      { target: 91, published: 8001, protocol: 'tcp' },
      { target: 443, protocol: 'tcp' },
      { target: 7000, protocol: 'tcp' },
      { target: 7001, protocol: 'tcp' },
    ]);
  });

  it('volumes: named, anonymous, tmpfs, binds relative to the first compose file under the repo root', () => {
    const text = svc(
      [
        'image: x',
        'volumes:',
        '  - data:/var/lib/data:ro',
        '  - ./conf/:/etc/app',
        '  - ../shared:/shared:rw',
        '  - /srv/logs:/logs',
        '  - /cache',
        '  - type: tmpfs',
        '    target: /tmp',
        '  - type: bind',
        '    source: ./static',
        '    target: /static',
        '    read_only: true',
      ].join('\n'),
      'volumes:\n  data: {}\n',
    );
    const files = (repoRoot?: string) =>
      loadCompose([{ path: 'deploy/compose.yml', text }], { ...OPTS, ...(repoRoot ? { repoRoot } : {}) });
    expect(service(files('/srv/repo'), 'web').volumes).toEqual([
      { type: 'volume', target: '/cache', readOnly: false },
      { type: 'bind', source: '/srv/repo/deploy/conf', target: '/etc/app', readOnly: false, createHostPath: true },
      { type: 'bind', source: '/srv/logs', target: '/logs', readOnly: false, createHostPath: true },
      { type: 'bind', source: '/srv/repo/shared', target: '/shared', readOnly: false, createHostPath: true },
      { type: 'bind', source: '/srv/repo/deploy/static', target: '/static', readOnly: true },
      { type: 'tmpfs', target: '/tmp', readOnly: false },
      { type: 'volume', source: 'data', target: '/var/lib/data', readOnly: true },
    ]);
    // without a checkout, relative binds stay repository-relative, resolved the same way
    expect(service(files(), 'web').volumes.filter((v) => v.type === 'bind').map((v) => v.source)).toEqual(['./deploy/conf', '/srv/logs', './shared', './deploy/static']);
  });

  it('policy-relevant settings are normalised', () => {
    const s = service(load(svc('image: x\nprivileged: true\npid: host\ncap_add: [sys_admin, CAP_NET_ADMIN, NET_ADMIN]\ndevices: [/dev/fuse, "/dev/sda:/dev/xvda:r"]')), 'web');
    expect(s).toMatchObject({ privileged: true, pid: 'host', capAdd: ['NET_ADMIN', 'SYS_ADMIN'], devices: ['/dev/fuse:/dev/fuse:rwm', '/dev/sda:/dev/xvda:r'] });
    expect(service(load(svc('image: x\nprivileged: false')), 'web').privileged).toBeUndefined();
  });

  it('devices: one per path in the container, a later entry (in the file or an override) replacing the earlier one, as docker compose keeps them', () => {
    // Docker was given both and granted the container the cgroup access of each host device, /dev/null's too
    const one = service(load(svc('image: x\ndevices: ["/dev/null:/dev/x", "/dev/fuse", "/dev/zero:/dev/x:r"]')), 'web');
    expect(one.devices).toEqual(['/dev/fuse:/dev/fuse:rwm', '/dev/zero:/dev/x:r']);
    const merged = service(load([svc('image: x\ndevices: ["/dev/null:/dev/n1", "/dev/fuse"]'), svc('devices: ["/dev/zero:/dev/n1", "/dev/net/tun"]')]), 'web');
    expect(merged.devices).toEqual(['/dev/fuse:/dev/fuse:rwm', '/dev/net/tun:/dev/net/tun:rwm', '/dev/zero:/dev/n1:rwm']);
  });

  it('user, working_dir, restart, scale', () => {
    const s = service(load(svc('image: x\nuser: 1000\nworking_dir: /app\nrestart: unless-stopped\nscale: 3')), 'web');
    expect(s).toMatchObject({ user: '1000', workingDir: '/app', restart: 'unless-stopped', replicas: 3 });
    expect(service(load(svc('image: x\ndeploy:\n  replicas: 0')), 'web').replicas).toBe(0);
  });

  it('top-level networks and volumes', () => {
    const d = load(
      svc(
        'image: x\nnetworks: [back, ext]\nvolumes: ["data:/d", "old:/o"]',
        'networks:\n  back:\n    internal: true\n    attachable: true\n    labels: ["tier=back"]\n  ext:\n    external: true\nvolumes:\n  data:\n    driver: local\n    labels: {keep: "yes"}\n  old:\n    external: true\n',
      ),
    );
    expect(d.networks.map((n) => n.spec)).toEqual([
      { name: 'back', driver: 'bridge', internal: true, attachable: true, labels: { tier: 'back' }, external: false },
      { name: 'ext', driver: 'bridge', internal: false, attachable: false, labels: {}, external: true },
    ]);
    expect(d.volumes.map((v) => v.spec)).toEqual([
      { name: 'data', driver: 'local', labels: { keep: 'yes' }, external: false },
      { name: 'old', driver: 'local', labels: {}, external: true },
    ]);
  });
});

describe('identical intent gives deep-equal specs and the same hash', () => {
  const same = (a: string | string[], b: string | string[], opts: Partial<LoadComposeOptions> = {}) => {
    const x = load(a, opts);
    const y = load(b, opts);
    expect(y.services.map((s) => s.spec)).toEqual(x.services.map((s) => s.spec));
    expect(y.services.map((s) => s.configHash)).toEqual(x.services.map((s) => s.configHash));
    expect(desiredDigest(y)).toBe(desiredDigest(x));
  };

  it('map vs list environment and labels', () => {
    same(svc('image: x\nenvironment: {A: "1", B: two}\nlabels: {l: v}'), svc('image: x\nenvironment: ["B=two", "A=1"]\nlabels: ["l=v"]'));
  });

  it('short vs long ports', () => {
    same(
      svc('image: x\nports: ["127.0.0.1:8080:80", "53:53/udp"]'),
      svc('image: x\nports:\n  - {target: 53, published: 53, protocol: udp}\n  - {target: 80, published: 8080, host_ip: 127.0.0.1, protocol: tcp}'),
    );
  });

  it('short vs long volumes', () => {
    same(svc('image: x\nvolumes: ["data:/d:ro"]', 'volumes:\n  data: {}\n'), svc('image: x\nvolumes:\n  - {type: volume, source: data, target: /d, read_only: true}', 'volumes:\n  data:\n'));
  });

  it('key order and image spelling', () => {
    same(
      'services:\n  web:\n    image: nginx\n    restart: always\n    command: ["a", "b"]\n',
      'services:\n  web:\n    command: a b\n    restart: always\n    image: docker.io/library/nginx:latest\n',
    );
  });

  it('defaults written out vs left out', () => {
    same(
      svc('image: x\nhealthcheck:\n  test: ["CMD-SHELL", "true"]\n  interval: 30s'),
      svc('image: x\nrestart: "no"\nnetworks: [default]\ndeploy: {replicas: 1}\nhealthcheck:\n  test: "true"\n  interval: 0.5m\n  start_period: 0s'),
    );
  });

  // baserow: its backend image's HEALTHCHECK runs every 60s; a test with no interval keeps that, 30s written out does not
  it('a healthcheck timing left out is not the same as Docker\'s default written out (the image may set its own)', () => {
    const hash = (text: string) => load(text).services[0]!.configHash;
    expect(hash(svc('image: x\nhealthcheck:\n  test: ["CMD", "true"]'))).not.toBe(hash(svc('image: x\nhealthcheck:\n  test: ["CMD", "true"]\n  interval: 30s')));
  });

  it('anchors and merge keys vs written out', () => {
    same(
      'x-base: &base\n  image: x\n  environment: {A: "1"}\n  restart: always\nservices:\n  a:\n    <<: *base\n  b:\n    <<: *base\n    restart: "no"\n',
      'services:\n  b:\n    image: x\n    environment: {A: "1"}\n  a:\n    restart: always\n    environment:\n      - A=1\n    image: x\n',
    );
  });

  it('interpolated vs literal', () => {
    same(svc('image: x:${TAG}\nenvironment: {P: "${PORT:-80}"}'), svc('image: x:1\nenvironment: {P: "80"}'), { variables: { TAG: '1' } });
  });
});

describe('interpolation', () => {
  const v = { SET: 'value', EMPTY: '' };
  it.each([
    ['${SET}', 'value'],
    ['$SET/x', 'value/x'],
    ['${UNSET:-d}', 'd'],
    ['${EMPTY:-d}', 'd'],
    ['${EMPTY-d}', ''],
    ['${UNSET-d}', 'd'],
    ['${SET:-d}', 'value'],
    ['${SET:+alt}', 'alt'],
    ['${EMPTY:+alt}', ''],
    ['${EMPTY+alt}', 'alt'],
    ['${UNSET:-${SET}}', 'value'],
    ['$${SET}', '${SET}'],
    ['a$$b', 'a$b'],
    ['cost: $5', 'cost: $5'],
    ['${SET:?must be set}', 'value'],
    ['${EMPTY?must be set}', ''],
    // a default may hold braces (compose-go's TestValueWithCurlyBracesDefault; dify's ENDPOINT_URL_TEMPLATE)
    ['ok ${SET:-{"json":1}}', 'ok value'],
    ['ok ${SET-{"json":1}}', 'ok value'],
    ['ok ${UNSET:-{"json":1}}', 'ok {"json":1}'],
    ['${SET:-http://localhost/e/{hook_id}}', 'value'],
    ['${UNSET:-http://localhost/e/{hook_id}}/x', 'http://localhost/e/{hook_id}/x'],
    ['${UNSET:-{"a":{"b":"${SET}"}}} and ${SET}', '{"a":{"b":"value"}} and value'],
    ['${SET:+x{y}z}', 'x{y}z'],
    ['${SET}}', 'value}'],
    // a brace left open in a default: the first closing brace ends it, as compose's pattern does
    ['${UNSET:-{}', '{'],
    ['${UNSET:-a{b}c', 'a{bc'],
  ])('%s → %s', (input, out) => {
    expect(interpolateString(input, v)).toBe(out);
  });

  it('an unset plain reference is "" and is reported; defaults, alternatives and $$ are not', () => {
    const unset = new Set<string>();
    expect(interpolateString('a${UNSET}b$UNSET2${SET}', v, undefined, unset)).toBe('abvalue');
    expect([...unset]).toEqual(['UNSET', 'UNSET2']);
    const none = new Set<string>();
    expect(interpolateString('${UNSET:-d}${UNSET-}${UNSET:+x}$${UNSET}$$UNSET', v, undefined, none)).toBe('d${UNSET}$UNSET');
    expect([...none]).toEqual([]);
    expect(interpolateString('${UNSET}', v)).toBe('');
  });

  it('errors', () => {
    expect(() => interpolateString('${EMPTY:?must be set}', v)).toThrow('variable EMPTY is empty: must be set');
    expect(() => interpolateString('${UNSET?}', v)).toThrow('variable UNSET is not set');
    expect(() => interpolateString('${}', v)).toThrow('does not start with a variable name');
    expect(() => interpolateString('${SET!x}', v)).toThrow('unexpected "!x" after ${SET');
  });

  it('keys are not interpolated, extension fields are not read', () => {
    const d = load('x-unused: ${NOT_SET}\nservices:\n  web:\n    image: x\n    labels:\n      "${K}": v\n');
    expect(service(d, 'web').labels).toEqual({ '${K}': 'v' });
  });

  it('replicas and booleans may come from variables', () => {
    const s = service(load(svc('image: x\ndeploy:\n  replicas: ${N}\nprivileged: ${P}'), { variables: { N: '3', P: 'true' } }), 'web');
    expect(s.replicas).toBe(3);
    expect(s.privileged).toBe(true);
  });
});

describe('merging files in order', () => {
  const base = [
    'services:',
    '  web:',
    '    image: x:1',
    '    command: ["echo", "base"]',
    '    environment: {A: "1", B: "1"}',
    '    labels: {keep: "1"}',
    '    ports: ["8080:80", "9090:90"]',
    '    volumes: ["data:/data", "./a:/a"]',
    '    networks: [front]',
    '    depends_on: [db]',
    '    cap_add: [NET_ADMIN]',
    '    healthcheck:',
    '      test: ["CMD", "base"]',
    '      interval: 5s',
    '  db:',
    '    image: x:1',
    '    healthcheck: {test: "true"}',
    'networks:',
    '  front: {}',
    '  back: {}',
    'volumes:',
    '  data: {}',
    '  other: {}',
  ].join('\n');

  it('maps merge, scalars override, command and healthcheck.test are replaced, ports and volumes unique by key', () => {
    const override = [
      'services:',
      '  web:',
      '    image: x:2',
      '    command: ["echo", "override"]',
      '    environment: ["B=2", "C=3"]',
      '    ports: ["8080:80", "7070:70"]',
      '    volumes: ["other:/data:ro"]',
      '    networks: [back]',
      '    depends_on:',
      '      db: {condition: service_healthy}',
      '    cap_add: [NET_ADMIN, SYS_TIME]',
      '    healthcheck:',
      '      test: ["CMD", "override"]',
      '    deploy: {replicas: 2}',
    ].join('\n');
    const s = service(load([base, override], { repoRoot: '/r' }), 'web');
    expect(s.image).toBe('docker.io/library/x:2');
    expect(s.command).toEqual(['echo', 'override']);
    expect(s.environment).toEqual({ A: '1', B: '2', C: '3' });
    expect(s.labels).toEqual({ keep: '1' });
    expect(s.ports.map((p) => `${p.published}:${p.target}`)).toEqual(['7070:70', '8080:80', '9090:90']);
    expect(s.volumes).toEqual([
      { type: 'bind', source: '/r/a', target: '/a', readOnly: false, createHostPath: true },
      { type: 'volume', source: 'other', target: '/data', readOnly: true },
    ]);
    expect(s.networks).toEqual(['back', 'front']);
    expect(s.dependsOn).toEqual([{ service: 'db', condition: 'service_healthy' }]);
    expect(s.capAdd).toEqual(['NET_ADMIN', 'SYS_TIME']);
    expect(s.healthcheck).toEqual({ test: ['CMD', 'override'], intervalMs: 5000, timeoutMs: 0, retries: 0, startPeriodMs: 0 });
    expect(s.replicas).toBe(2);
  });

  it('a later file can add services, and each file is interpolated with the same variables', () => {
    const d = load([base, 'services:\n  worker:\n    image: x:${TAG}\n'], { variables: { TAG: '9' } });
    expect(d.services.map((s) => s.spec.name)).toEqual(['db', 'web', 'worker']);
    expect(service(d, 'worker').image).toBe('docker.io/library/x:9');
  });

  it('!reset removes an attribute or a service, !override replaces instead of merging', () => {
    const override = ['services:', '  web:', '    ports: !override ["1234:80"]', '    environment: !reset {}', '    cap_add: !reset []', '  db: !reset'].join('\n');
    const d = load([base.replace('depends_on: [db]', 'depends_on: []'), override]);
    const s = service(d, 'web');
    expect(s.ports).toEqual([{ target: 80, published: 1234, protocol: 'tcp' }]);
    expect(s.environment).toEqual({});
    expect(s.capAdd).toBeUndefined();
    expect(d.services.map((x) => x.spec.name)).toEqual(['web']);
  });

  it('a service only partly described in the override must still get an image from the base', () => {
    const e = errorOf(() => load([base, 'services:\n  extra:\n    environment: {A: "1"}\n']));
    expect(e.message).toBe('compose.1.yml:2: services.extra: service extra has no image — berth does not build images: add image: with a pushed image reference');
  });
});

describe('repository loading', () => {
  const shop = resolve(import.meta.dirname, '../fixtures/repos/shop');

  it('loads the shop fixture for staging', async () => {
    const { config, environment, desired } = await loadEnvironment(readFromDir(shop), 'staging');
    expect(config.project).toBe('shop');
    expect(environment.name).toBe('staging');
    expect(desired.project).toBe('shop');
    expect(desired.environment).toBe('staging');
    expect(desired.services.map((s) => [s.spec.name, s.spec.image, s.spec.replicas])).toEqual([
      ['api', 'docker.io/berth-test/app:1', 1],
      ['db', 'docker.io/berth-test/app:1', 1],
      ['web', 'docker.io/berth-test/app:1', 1],
    ]);
    expect(service(desired, 'api').dependsOn).toEqual([{ service: 'db', condition: 'service_healthy' }]);
    expect(service(desired, 'api').environment).toEqual({ DB_HOST: 'db', DB_PASSWORD: 'staging-secret', LOG_LEVEL: 'info' });
    expect(service(desired, 'web').ports).toEqual([{ target: 80, published: 18080, hostIp: '127.0.0.1', protocol: 'tcp' }]);
    expect(desired.networks.map((n) => [n.spec.name, n.spec.internal])).toEqual([
      ['back', true],
      ['front', false],
    ]);
    expect(desired.volumes.map((v) => v.spec.name)).toEqual(['db-data']);
  });

  it('loads production with its override file', async () => {
    const { environment, desired } = await loadEnvironment(readFromDir(shop), 'production');
    expect(environment.requires).toEqual(['staging']);
    expect(service(desired, 'api').replicas).toBe(2);
    expect(service(desired, 'api').environment.LOG_LEVEL).toBe('warn');
    expect(service(desired, 'api').image).toBe('docker.io/berth-test/app:2');
  });

  it('takes the config text from the caller (the default branch) when given', async () => {
    const config = 'project: other\nenvironments:\n  - name: dev\n    compose: [compose.yml]\n    variables: {APP_TAG: "2", DB_PASSWORD: x, WEB_PORT: "1"}\n';
    const { desired } = await loadEnvironment(readFromDir(shop), 'dev', config);
    expect(desired.project).toBe('other');
    expect(service(desired, 'web').image).toBe('docker.io/berth-test/app:2');
  });

  it('an unknown environment is a ConfigError naming the known ones', async () => {
    await expect(loadEnvironment(readFromDir(shop), 'stagign')).rejects.toThrow(
      new ConfigError('unknown_environment', 'no environment "stagign"', { file: '.github/berth.yml', hint: 'did you mean "staging"? environments: staging, production' }),
    );
  });

  it('a missing compose file is a ComposeError naming it', async () => {
    const files: Record<string, string> = { '.github/berth.yml': 'project: p\nenvironments:\n  - name: dev\n    compose: [compose.yml, compose.dev.yml]\n', 'compose.yml': svc('image: x') };
    const err = await loadEnvironment(async (p) => files[p], 'dev').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ComposeError);
    expect((err as ComposeError).code).toBe('missing_file');
    expect((err as ComposeError).message).toBe('.github/berth.yml:4: environments[0].compose[1]: compose file compose.dev.yml not found — environment dev lists it; add the file or remove it from the list');
  });

  it('a missing config is a ConfigError', async () => {
    await expect(loadEnvironment(async () => undefined, 'dev')).rejects.toThrow('.github/berth.yml: .github/berth.yml not found');
  });

  it('the default compose file is docker-compose.yml', async () => {
    const files: Record<string, string> = { '.github/berth.yml': 'project: p\nenvironments:\n  - name: dev\n', 'docker-compose.yml': svc('image: x') };
    const { desired } = await loadEnvironment(async (p) => files[p], 'dev');
    expect(desired.services.map((s) => s.spec.name)).toEqual(['web']);
  });

  it('the policy of the config applies', async () => {
    const files: Record<string, string> = { '.github/berth.yml': 'project: p\nenvironments:\n  - name: dev\n', 'docker-compose.yml': svc('image: x\nprivileged: true') };
    await expect(loadEnvironment(async (p) => files[p], 'dev')).rejects.toThrow(/docker-compose\.yml:4: services\.web\.privileged: service web: privileged mode is not allowed/);
  });

  it('readFromDir refuses paths that leave the directory, including through symlinks', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-repo-'));
    const outside = mkdtempSync(join(tmpdir(), 'berth-outside-'));
    writeFileSync(join(outside, 'secret.yml'), 'x: 1\n');
    mkdirSync(join(dir, 'sub'));
    writeFileSync(join(dir, 'sub', 'ok.yml'), 'ok\n');
    symlinkSync(join(outside, 'secret.yml'), join(dir, 'link.yml'));
    const read = readFromDir(dir);
    expect(await read('sub/ok.yml')).toBe('ok\n');
    expect(await read('sub/../sub/ok.yml')).toBe('ok\n');
    expect(await read('missing.yml')).toBeUndefined();
    await expect(read('../x.yml')).rejects.toThrow('../x.yml is outside the repository');
    await expect(read('/etc/passwd')).rejects.toThrow('is outside the repository');
    await expect(read('link.yml')).rejects.toThrow('link.yml is outside the repository');
    expect(read.root).toBe(resolve(dir));
  });

  it('relative binds resolve under the checkout read by readFromDir', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-repo-'));
    mkdirSync(join(dir, '.github'));
    writeFileSync(join(dir, '.github/berth.yml'), 'project: p\nenvironments:\n  - name: dev\npolicy:\n  bind_mount_allowlist: [./conf]\n');
    writeFileSync(join(dir, 'docker-compose.yml'), svc('image: x\nvolumes: ["./conf:/conf:ro"]'));
    const { desired } = await loadEnvironment(readFromDir(dir), 'dev');
    expect(service(desired, 'web').volumes).toEqual([{ type: 'bind', source: join(resolve(dir), 'conf'), target: '/conf', readOnly: true, createHostPath: true }]);
  });
});
