// Every supported compose service key reaches the container: one compose file
// (read from a checkout the way the CLI reads it, env_file and label_file included) with one
// service per key, applied on the real engine; `docker inspect` shows each
// setting where Docker keeps it (no key silently dropped), and planning again
// finds nothing to do (no key reads as drift).
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type Dockerode from 'dockerode';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Observer } from '../src/apply/prepare-apply.js';
import { planTargets, prepareApply } from '../src/apply/prepare-apply.js';
import { DENY_ALL } from '../src/compose/policy.js';
import { loadCompose } from '../src/compose/load.js';
import { DockerEngine } from '../src/docker/docker-engine.js';
import { observe } from '../src/docker/observe.js';
import { Executor } from '../src/apply/executor.js';
import { Lanes } from '../src/apply/lanes.js';
import { LABEL, names } from '../src/model/model.js';
import { loadEnvironment, readFromDir } from '../src/config/load-environment.js';
import { docker, removeProject } from './helpers/docker.js';
import { describeDocker } from './helpers/env.js';
import { sqliteTestStore, type TestStore } from './helpers/stores.js';

const PROJECT = `t-ck-${process.pid}`;
const ENV = 'staging';
const IMAGE = 'berth-test/app:1';
/** a /24 unlikely to meet another test's network */
const SUBNET = `10.${200 + (process.pid % 50)}.${process.pid % 250}`;
const NAMED = `${PROJECT}-named`;

/** the table's service that an included file defines too */
const INCLUDED = 'include overridden by the including file';

type Inspect = Dockerode.ContainerInspectInfo & { Config: Record<string, any>; HostConfig: Record<string, any> };

/** [service key, its compose lines, what inspect must show] */
const TABLE: [string, string, (c: Inspect) => void][] = [
  ['container_name', `container_name: ${NAMED}`, (c) => expect(c.Name).toBe(`/${NAMED}`)],
  // a service: join of a service that sets container_name is given that name (the create failed on a name Docker has not got)
  ['joins of a service with container_name', 'network_mode: "service:k-container-name"\nvolumes_from: ["k-container-name:ro"]', (c) => {
    expect(c.HostConfig.NetworkMode).toMatch(/^container:[0-9a-f]{64}$/);
    expect(c.HostConfig.VolumesFrom).toEqual([`${NAMED}:ro`]);
  }],
  ['expose', 'expose: ["3000", "53/udp"]', (c) => expect(Object.keys(c.Config.ExposedPorts ?? {}).sort()).toEqual(['3000/tcp', '53/udp'])],
  ['stop_signal', 'stop_signal: SIGQUIT', (c) => expect(c.Config.StopSignal).toBe('SIGQUIT')],
  ['stop_grace_period', 'stop_grace_period: 1m', (c) => expect(c.Config.StopTimeout).toBe(60)],
  ['init', 'init: true', (c) => expect(c.HostConfig.Init).toBe(true)],
  ['tty', 'tty: true', (c) => expect(c.Config.Tty).toBe(true)],
  ['stdin_open', 'stdin_open: true', (c) => expect(c.Config.OpenStdin).toBe(true)],
  ['hostname', 'hostname: berth-host', (c) => expect(c.Config.Hostname).toBe('berth-host')],
  ['domainname', 'domainname: example.org', (c) => expect(c.Config.Domainname).toBe('example.org')],
  ['mac_address', 'mac_address: 02-42-0A-C8-00-99', (c) => {
    expect(c.Config.MacAddress).toBe('02:42:0a:c8:00:99');
    expect(Object.values(c.NetworkSettings.Networks).map((n) => n.MacAddress)).toEqual(['02:42:0a:c8:00:99']);
  }],
  ['extra_hosts', 'extra_hosts:\n  db.internal: 10.1.2.3', (c) => expect(c.HostConfig.ExtraHosts).toEqual(['db.internal:10.1.2.3'])],
  ['dns', 'dns: [9.9.9.9]', (c) => expect(c.HostConfig.Dns).toEqual(['9.9.9.9'])],
  ['dns_search', 'dns_search: [corp.example]', (c) => expect(c.HostConfig.DnsSearch).toEqual(['corp.example'])],
  ['dns_opt', 'dns_opt: ["ndots:2"]', (c) => expect(c.HostConfig.DnsOptions).toEqual(['ndots:2'])],
  ['ulimits', 'ulimits:\n  nofile: {soft: 1024, hard: 2048}', (c) => expect(c.HostConfig.Ulimits).toEqual([{ Name: 'nofile', Soft: 1024, Hard: 2048 }])],
  ['logging', 'logging:\n  driver: json-file\n  options: {max-size: 1m}', (c) => expect(c.HostConfig.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-size': '1m' } })],
  ['platform', 'platform: linux/amd64', (c) => expect(c.Platform).toBe('linux')],
  ['cpus', 'cpus: 0.5', (c) => expect(c.HostConfig.NanoCpus).toBe(500_000_000)],
  ['mem_limit', 'mem_limit: 64m', (c) => expect(c.HostConfig.Memory).toBe(64 * 1024 ** 2)],
  ['mem_reservation', 'mem_reservation: 32m', (c) => expect(c.HostConfig.MemoryReservation).toBe(32 * 1024 ** 2)],
  ['memswap_limit', 'mem_limit: 64m\nmemswap_limit: 128m', (c) => expect(c.HostConfig.MemorySwap).toBe(128 * 1024 ** 2)],
  ['pids_limit', 'pids_limit: 50', (c) => expect(c.HostConfig.PidsLimit).toBe(50)],
  // compose sets deploy's pids limit only above 0: -1 is no limit (the engine keeps none, as for pids_limit: -1)
  ['deploy.resources.limits.pids -1', 'deploy:\n  resources:\n    limits: {pids: -1}', (c) => expect(c.HostConfig.PidsLimit ?? 0).toBeLessThanOrEqual(0)],
  ['shm_size', 'shm_size: 32m', (c) => expect(c.HostConfig.ShmSize).toBe(32 * 1024 ** 2)],
  ['deploy.resources', 'deploy:\n  resources:\n    limits: {cpus: "0.25", memory: 48m}\n    reservations: {memory: 16m}', (c) =>
    expect([c.HostConfig.NanoCpus, c.HostConfig.Memory, c.HostConfig.MemoryReservation]).toEqual([250_000_000, 48 * 1024 ** 2, 16 * 1024 ** 2])],
  ['read_only', 'read_only: true', (c) => expect(c.HostConfig.ReadonlyRootfs).toBe(true)],
  ['tmpfs', 'tmpfs: ["/scratch:size=8m"]', (c) => expect(c.HostConfig.Tmpfs).toEqual({ '/scratch': 'size=8m' })],
  ['sysctls', 'sysctls: {net.core.somaxconn: 1024}', (c) => expect(c.HostConfig.Sysctls).toEqual({ 'net.core.somaxconn': '1024' })],
  ['labels', 'labels: {com.example.tier: web}', (c) => expect(c.Config.Labels['com.example.tier']).toBe('web')],
  ['restart', 'restart: on-failure:3', (c) => expect(c.HostConfig.RestartPolicy).toEqual({ Name: 'on-failure', MaximumRetryCount: 3 })],
  // no restart policy, as compose's; its container shows Name "no" where berth's shows "" (the spec cannot tell a written
  // "no" from none without changing the config hash of every service that writes it); the second plan finds nothing
  ['restart "no"', 'restart: "no"', (c) => expect(c.HostConfig.RestartPolicy).toEqual({ Name: '', MaximumRetryCount: 0 })],
  ['deploy.restart_policy', 'deploy:\n  restart_policy: {condition: on-failure, max_attempts: 2}', (c) => expect(c.HostConfig.RestartPolicy).toEqual({ Name: 'on-failure', MaximumRetryCount: 2 })],
  ['security_opt', 'security_opt: [no-new-privileges:true]', (c) => expect(c.HostConfig.SecurityOpt).toEqual(['no-new-privileges:true'])],
  ['ipc', 'ipc: shareable', (c) => expect(c.HostConfig.IpcMode).toBe('shareable')],
  ['userns_mode', 'userns_mode: host', (c) => expect(c.HostConfig.UsernsMode).toBe('host')],
  ['cap_drop', 'cap_drop: [NET_RAW, SYS_CHROOT]', (c) => expect(c.HostConfig.CapDrop).toEqual(['NET_RAW', 'SYS_CHROOT'])],
  ['group_add', 'group_add: ["4242", "4343"]', (c) => expect(c.HostConfig.GroupAdd).toEqual(['4242', '4343'])],
  ['cpu_shares', 'cpu_shares: 512', (c) => expect(c.HostConfig.CpuShares).toBe(512)],
  ['cpuset', 'cpuset: "0"', (c) => expect(c.HostConfig.CpusetCpus).toBe('0')],
  ['cgroup', 'cgroup: private', (c) => expect(c.HostConfig.CgroupnsMode).toBe('private')],
  ['env_file', 'env_file: app.env', (c) => expect(c.Config.Env).toContain('FROM_FILE=yes')],
  // label_file's labels under labels:, which win
  ['label_file', 'label_file: app.labels\nlabels: {com.example.wins: compose}', (c) => expect(c.Config.Labels).toMatchObject({ 'com.example.from-file': 'yes', 'com.example.wins': 'compose' })],
  ['networks (aliases, ipv4_address)', `networks:\n  fixed:\n    aliases: [api]\n    ipv4_address: ${SUBNET}.10`, (c) => {
    const ep = c.NetworkSettings.Networks[names.network(PROJECT, ENV, 'fixed')]!;
    expect(ep.IPAddress).toBe(`${SUBNET}.10`);
    expect(ep.Aliases).toEqual(expect.arrayContaining(['api']));
  }],
  // mac_address on the network the container is created on; link-local addresses and driver options on one it joins after
  ['networks (mac_address, link_local_ips, driver_opts)', 'networks:\n  default:\n    mac_address: 02:42:0a:c8:00:98\n  fixed:\n    link_local_ips: [169.254.77.7]\n    driver_opts: {com.example.berth-test: "yes"}', (c) => {
    expect(c.NetworkSettings.Networks[names.network(PROJECT, ENV, 'default')]!.MacAddress).toBe('02:42:0a:c8:00:98');
    const fixed = c.NetworkSettings.Networks[names.network(PROJECT, ENV, 'fixed')]! as { IPAMConfig?: { LinkLocalIPs?: string[] }; DriverOpts?: Record<string, string> };
    expect(fixed.IPAMConfig?.LinkLocalIPs).toEqual(['169.254.77.7']);
    expect(fixed.DriverOpts).toEqual({ 'com.example.berth-test': 'yes' });
  }],
  ['networks (priority)', 'networks:\n  default: {}\n  fixed:\n    priority: 100', (c) =>
    expect(Object.keys(c.NetworkSettings.Networks).sort()).toEqual([names.network(PROJECT, ENV, 'default'), names.network(PROJECT, ENV, 'fixed')])],
  ['links', 'links: ["k-labels:linked"]', () => {}],
  ['volumes :z and short-syntax create', 'volumes: ["./made-by-docker:/made:z", "./ro:/ro:ro"]', (c) => {
    expect(c.HostConfig.Binds).toEqual([expect.stringMatching(/\/made-by-docker:\/made:rw,z$/), expect.stringMatching(/\/ro:\/ro:ro$/)]);
  }],
  ['volumes tmpfs size', 'volumes:\n  - type: tmpfs\n    target: /cache\n    tmpfs: {size: 4m}', (c) => expect(c.HostConfig.Mounts).toEqual([expect.objectContaining({ Type: 'tmpfs', Target: '/cache', TmpfsOptions: { SizeBytes: 4 * 1024 ** 2 } })])],
  // forms real compose files use (fixtures/corpus): each reaches Docker as docker compose sends it
  ['logging driver none', 'logging:\n  driver: none', (c) => expect(c.HostConfig.LogConfig).toEqual({ Type: 'none', Config: {} })],
  ['ulimits single value and unlimited', 'ulimits:\n  nproc: 65535\n  core: -1', (c) =>
    expect([...(c.HostConfig.Ulimits ?? [])].sort((a, b) => String(a.Name).localeCompare(String(b.Name)))).toEqual([{ Name: 'core', Soft: -1, Hard: -1 }, { Name: 'nproc', Soft: 65535, Hard: 65535 }])],
  ['healthcheck disable', 'healthcheck:\n  disable: true', (c) => expect(c.Config.Healthcheck?.Test).toEqual(['NONE'])],
  ['extra_hosts host-gateway', 'extra_hosts: ["host.docker.internal:host-gateway"]', (c) => expect(c.HostConfig.ExtraHosts).toEqual(['host.docker.internal:host-gateway'])],
  ['tmpfs as a string', 'tmpfs: /run/app', (c) => expect(c.HostConfig.Tmpfs).toEqual({ '/run/app': '' })],
  ['stop_grace_period minutes and seconds', 'stop_grace_period: 1m30s', (c) => expect(c.Config.StopTimeout).toBe(90)],
  ['environment without a value, from variables', 'environment:\n  FROM_VARS:\n  EMPTY: ""', (c) => expect(c.Config.Env).toEqual(expect.arrayContaining(['FROM_VARS=from-berth-yml', 'EMPTY=']))],
  // no variable sets it: bare, as docker compose sends it (the engine then leaves it unset, over the image's ENV too)
  ['environment without a value, unset', 'environment: [NOT_IN_VARIABLES, SET=1]', (c) => {
    expect(c.Config.Env).toEqual(expect.arrayContaining(['NOT_IN_VARIABLES', 'SET=1']));
    expect(c.Config.Env.filter((e: string) => e.startsWith('NOT_IN_VARIABLES='))).toEqual([]);
  }],
  ['security_opt seccomp under the policy', 'security_opt: ["seccomp:unconfined"]', (c) => expect(c.HostConfig.SecurityOpt).toEqual(['seccomp:unconfined'])],
  // as docker compose sends it (the engine refuses it as a security option): no masked or read-only paths
  ['security_opt systempaths=unconfined', 'security_opt: [systempaths=unconfined]', (c) => {
    expect(c.HostConfig.SecurityOpt ?? []).toEqual([]);
    expect([c.HostConfig.MaskedPaths, c.HostConfig.ReadonlyPaths]).toEqual([[], []]);
  }],
  ['byte and cpu strings', 'cpus: "0.75"\nmem_limit: 1gb\nshm_size: 33554432', (c) =>
    expect([c.HostConfig.NanoCpus, c.HostConfig.Memory, c.HostConfig.ShmSize]).toEqual([750_000_000, 1024 ** 3, 32 * 1024 ** 2])],
  ['volumes with driver_opts', 'volumes: ["opts:/data"]', (c) => expect(c.Mounts[0]!.Name).toBe(names.volume(PROJECT, ENV, 'opts'))],
  // included.yml defines this service too (stop_signal, an environment entry): the including file's keys merge over it
  [INCLUDED, 'shm_size: 24m\nenvironment: {FROM_INCLUDER: "yes", BOTH: includer}', (c) => {
    expect([c.HostConfig.ShmSize, c.Config.StopSignal]).toEqual([24 * 1024 ** 2, 'SIGUSR1']);
    expect(c.Config.Env).toEqual(expect.arrayContaining(['FROM_INCLUDED=yes', 'FROM_INCLUDER=yes', 'BOTH=includer']));
  }],
];

const serviceName = (i: number) => `k-${TABLE[i]![0].replace(/[^a-z]+/g, '-').replace(/-$/, '')}`;

const observer: Observer = async (_t, project, env) => (await observe(docker, project, env)).observed;

describeDocker('every supported compose key reaches the container (real engine)', () => {
  let ts: TestStore;
  let repo: string;
  const cleanup = () => removeProject(PROJECT);
  beforeAll(async () => {
    await cleanup();
    ts = await sqliteTestStore();
    repo = mkdtempSync(join(tmpdir(), 'berth-keys-docker-'));
    mkdirSync(join(repo, '.github'));
    mkdirSync(join(repo, 'ro'));
    const services = TABLE.map(([, lines], i) => `  ${serviceName(i)}:\n    image: ${IMAGE}\n${lines.split('\n').map((l) => `    ${l}`).join('\n')}\n`).join('');
    const included = serviceName(TABLE.findIndex(([key]) => key === INCLUDED));
    writeFileSync(join(repo, 'included.yml'), `services:\n  ${included}:\n    image: ${IMAGE}\n    stop_signal: SIGUSR1\n    environment: {FROM_INCLUDED: "yes", BOTH: included}\n`);
    writeFileSync(
      join(repo, 'compose.yml'),
      `include: [included.yml]\nservices:\n${services}networks:\n  default: {}\n  fixed:\n    driver_opts: {com.docker.network.driver.mtu: "1400"}\n    labels: {com.example.net: fixed}\n    ipam:\n      config: [{subnet: ${SUBNET}.0/24}]\nvolumes:\n  opts:\n    driver_opts: {type: tmpfs, device: tmpfs, o: size=1m}\n    labels: {com.example.vol: opts}\n`,
    );
    writeFileSync(join(repo, 'app.env'), 'FROM_FILE=yes\n');
    writeFileSync(join(repo, 'app.labels'), 'com.example.from-file=yes\ncom.example.wins=file\n');
    writeFileSync(join(repo, '.github/berth.yml'), `project: ${PROJECT}\nenvironments:\n  - name: ${ENV}\n    compose: [compose.yml]\n    variables: {FROM_VARS: from-berth-yml}\npolicy:\n  allow_host_userns: true\n  allow_security_opt: true\n  allow_network_subnets: [${SUBNET}.0/24]\n  bind_mount_allowlist: [{path: "${repo}", writable: true}]\n`);
  });
  afterAll(async () => {
    await ts?.dispose();
    await cleanup();
  });

  it('applies, inspects each key where Docker keeps it, and plans nothing the second time', async () => {
    const { desired, config } = await loadEnvironment(readFromDir(repo), ENV);
    expect(desired.services).toHaveLength(TABLE.length);
    const executor = new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 100 });
    const { applyId } = await prepareApply(ts.store, observer, {
      repo: 'acme/keys', pr: 1, environment: ENV, kind: 'apply', actor: 'alice', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt',
      // the pre-create guard enforces the policy on the target (absent: deny all binds)
      policy: config.policy,
    });
    const result = await executor.run(applyId);
    const failed = (await ts.store.listTasksForApply(applyId)).filter((t) => t.state !== 'succeeded');
    expect(failed.map((t) => `${t.kind} ${t.resource}: ${t.error ?? t.state}`)).toEqual([]);
    expect(result).toBe('completed');

    for (const [i, [key, , check]] of TABLE.entries()) {
      const s = desired.services.find((x) => x.spec.name === serviceName(i))!;
      const c = (await docker.getContainer(names.serviceContainer(PROJECT, ENV, s.spec, 1)).inspect()) as Inspect;
      try {
        check(c);
      } catch (e) {
        throw new Error(`${key}: ${(e as Error).message}`);
      }
    }
    // links: the alias answers on the linked service's network
    const linked = (await docker.getContainer(names.container(PROJECT, ENV, 'k-labels', 1)).inspect()) as Inspect;
    expect(linked.NetworkSettings.Networks[names.network(PROJECT, ENV, 'default')]!.Aliases).toEqual(expect.arrayContaining(['linked']));
    // the short syntax created the missing host directory
    expect(existsSync(join(repo, 'made-by-docker'))).toBe(true);
    // top-level network and volume options
    const net = await docker.getNetwork(names.network(PROJECT, ENV, 'fixed')).inspect();
    expect(net.Options).toEqual({ 'com.docker.network.driver.mtu': '1400' });
    expect(net.IPAM?.Config).toEqual([expect.objectContaining({ Subnet: `${SUBNET}.0/24` })]);
    expect(net.Labels?.['com.example.net']).toBe('fixed');
    const vol = await docker.getVolume(names.volume(PROJECT, ENV, 'opts')).inspect();
    expect(vol.Options).toEqual({ type: 'tmpfs', device: 'tmpfs', o: 'size=1m' });
    expect(vol.Labels[LABEL.volume]).toBe('opts');

    const [again] = await planTargets(desired, ['local'], observer);
    expect(again!.plan.nodes).toEqual([]);
  }, 180_000);

  it('deploy.replicas: 0 / scale: 0: no container, its network and volume made; scaling a running service to 0 removes its containers, keeps its volume, and plans nothing after', async () => {
    const env = 'zero';
    const text = (replicas: number) =>
      `services:\n  web:\n    image: ${IMAGE}\n  worker:\n    image: ${IMAGE}\n    deploy: {replicas: ${replicas}}\n    volumes: [data:/data]\n    networks: [back]\n  idle:\n    image: ${IMAGE}\n    scale: 0\n    volumes: [idle:/idle]\nnetworks: {back: {}}\nvolumes: {data: {}, idle: {}}\n`;
    const executor = new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 100 });
    const apply = async (replicas: number) => {
      const desired = loadCompose([{ path: 'compose.yml', text: text(replicas) }], { project: PROJECT, environment: env });
      const { applyId } = await prepareApply(ts.store, observer, { repo: 'acme/keys', pr: 1, environment: env, kind: 'apply', actor: 'alice', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt' });
      expect(await executor.run(applyId)).toBe('completed');
      return desired;
    };
    const services = async () => (await observe(docker, PROJECT, env)).observed.containers.map((c) => `${c.service}:${c.replica}`).sort();
    await apply(2);
    expect(await services()).toEqual(['web:1', 'worker:1', 'worker:2']);
    // the scaled-to-0 service's volume and the network and volume of a service scaled to 0 are made, as docker compose makes them
    await docker.getVolume(names.volume(PROJECT, env, 'idle')).inspect();
    const desired = await apply(0);
    expect(await services()).toEqual(['web:1']);
    await docker.getVolume(names.volume(PROJECT, env, 'data')).inspect();
    await docker.getNetwork(names.network(PROJECT, env, 'back')).inspect();
    const [again] = await planTargets(desired, ['local'], observer);
    expect(again!.plan.nodes).toEqual([]);
  }, 120_000);

  it('pull_policy: never with an image the engine does not have fails the apply clearly, without pulling', async () => {
    const desired = loadCompose([{ path: 'compose.yml', text: 'services:\n  web:\n    image: berth-test/absent:never\n    pull_policy: never\n' }], { project: PROJECT, environment: 'never' });
    const executor = new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 100 });
    const { applyId } = await prepareApply(ts.store, observer, {
      repo: 'acme/keys', pr: 1, environment: 'never', kind: 'apply', actor: 'alice', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt',
    });
    expect(await executor.run(applyId)).not.toBe('completed');
    const image = (await ts.store.listTasksForApply(applyId)).find((t) => t.kind === 'EnsureImage')!;
    expect(image.state).toBe('failed');
    expect(image.error).toBe('image docker.io/berth-test/absent:never is not on the engine and pull_policy: never forbids pulling it: load or pull it on the host first, or change pull_policy');
  }, 60_000);

  it('a GPU reservation reaches the engine as a device request (this host has no GPU driver, so the engine refuses it, by name)', async () => {
    const text = 'services:\n  gpu:\n    image: berth-test/app:1\n    deploy:\n      resources:\n        reservations:\n          devices:\n            - driver: nvidia\n              count: 1\n              capabilities: [gpu]\n';
    const desired = loadCompose([{ path: 'compose.yml', text }], { project: PROJECT, environment: 'gpu', policy: { ...DENY_ALL, allow_devices: true } });
    const executor = new Executor({ store: ts.store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 100 });
    const { applyId } = await prepareApply(ts.store, observer, {
      repo: 'acme/keys', pr: 1, environment: 'gpu', kind: 'apply', actor: 'alice', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt', policy: { ...DENY_ALL, allow_devices: true },
    });
    expect(await executor.run(applyId)).toBe('failed');
    const create = (await ts.store.listTasksForApply(applyId)).find((t) => t.state === 'failed')!;
    expect(create.kind).toBe('StartContainer'); // Docker keeps the request at create and selects the driver at start
    expect(create.state).toBe('failed');
    expect(create.error).toMatch(/could not select device driver "nvidia" with capabilities: \[\[gpu\]\]/);
  }, 60_000);
});
