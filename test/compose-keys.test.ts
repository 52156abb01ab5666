// The compose keys of issue 11 without an engine: each one is read, merged,
// carried into the ServiceSpec (so it is hashed: changing it recreates) and
// turned into the Docker create option that applies it; env_file, .env,
// extends, include, profiles and links the way docker compose reads them.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Bot, type BotOptions } from '../src/github/bot.js';
import { loadCompose, type LoadComposeOptions } from '../src/compose/load.js';
import { parseConfig } from '../src/config/config.js';
import { PartialListing, TreeListing, type GitHubPort } from '../src/github/github.js';
import { sha256 } from '../src/model/hash.js';
import { DENY_ALL } from '../src/compose/policy.js';
import { containerCreateOptions, endpointConfig } from '../src/docker/create-options.js';
import { containerNamesOf } from '../src/compose/joins.js';
import { newerApiSettings } from '../src/docker/api-version.js';
import type { DesiredState, ServiceSpec } from '../src/model/model.js';
import { dockerNames } from '../src/model/model.js';
import type { CreateExtras } from '../src/apply/engine.js';
import { reconcile } from '../src/plan/reconcile.js';
import { formatMount, formatServiceNetwork, renderPlanMarkdown } from '../src/plan/render.js';
import { loadEnvironment, readFromDir } from '../src/config/load-environment.js';
import { errorOf } from './helpers/errors.js';
import { ComposeError } from '../src/errors.js';
import { emptyObserved, simulate } from './helpers/simulate.js';

const OPTS: LoadComposeOptions = { project: 'p', environment: 'e' };
const load = (text: string, opts: Partial<LoadComposeOptions> = {}) => loadCompose([{ path: 'compose.yml', text }], { ...OPTS, ...opts });
const svc = (body: string, extra = '') => `services:\n  web:\n${body.split('\n').map((l) => `    ${l}`).join('\n')}\n${extra}`;
const web = (d: DesiredState): ServiceSpec => d.services.find((s) => s.spec.name === 'web')!.spec;
const hashOf = (d: DesiredState) => d.services.find((s) => s.spec.name === 'web')!.configHash;
const create = (spec: ServiceSpec, extras?: CreateExtras) => containerCreateOptions('c', spec, { project: 'p', environment: 'e', replica: 1, configHash: 'h', applyId: 'a' }, spec.networks[0], extras) as Record<string, any>;

describe('service keys reach the spec and the create options', () => {
  // [compose lines, expected spec fields, check on the create options]
  const table: [string, Partial<ServiceSpec>, (o: Record<string, any>) => void][] = [
    ['container_name: shop-web', { containerName: 'shop-web' }, (o) => expect(o.name).toBe('c')],
    ['expose: ["3000", "53/udp", "8000-8001"]', { expose: ['3000/tcp', '53/udp', '8000/tcp', '8001/tcp'] }, (o) => expect(Object.keys(o.ExposedPorts).sort()).toEqual(['3000/tcp', '53/udp', '8000/tcp', '8001/tcp'])],
    ['stop_signal: SIGQUIT', { stopSignal: 'SIGQUIT' }, (o) => expect(o.StopSignal).toBe('SIGQUIT')],
    ['stop_grace_period: 1m30s', { stopGracePeriodMs: 90_000 }, (o) => expect(o.StopTimeout).toBe(90)],
    // whole seconds, cut as compose cuts them (int of the seconds)
    ['stop_grace_period: 1500ms', { stopGracePeriodMs: 1500 }, (o) => expect(o.StopTimeout).toBe(1)],
    ['ports: ["127.0.0.1:38412:38412/sctp"]', { ports: [{ target: 38412, published: 38412, hostIp: '127.0.0.1', protocol: 'sctp' }] }, (o) => {
      expect(o.ExposedPorts).toEqual({ '38412/sctp': {} });
      expect(o.HostConfig.PortBindings).toEqual({ '38412/sctp': [{ HostIp: '127.0.0.1', HostPort: '38412' }] });
    }],
    ['init: true', { init: true }, (o) => expect(o.HostConfig.Init).toBe(true)],
    ['tty: true', { tty: true }, (o) => expect(o.Tty).toBe(true)],
    ['stdin_open: true', { stdinOpen: true }, (o) => expect(o.OpenStdin).toBe(true)],
    ['hostname: web1', { hostname: 'web1' }, (o) => expect(o.Hostname).toBe('web1')],
    // no DNS name, but Docker sets it and compose passes it (kimai's traefik stack)
    ['hostname: kimai_db', { hostname: 'kimai_db' }, (o) => expect(o.Hostname).toBe('kimai_db')],
    ['domainname: example.org', { domainname: 'example.org' }, (o) => expect(o.Domainname).toBe('example.org')],
    // Docker's dash form, written as the engine reports it; set where old engines (Config) and new ones (the endpoint) read it
    ['mac_address: 02-42-AC-11-00-99', { macAddress: '02:42:ac:11:00:99' }, (o) => {
      expect(o.MacAddress).toBe('02:42:ac:11:00:99');
      expect(o.NetworkingConfig.EndpointsConfig['p-e_default']).toEqual({ Aliases: ['web'], MacAddress: '02:42:ac:11:00:99' });
    }],
    ['extra_hosts: ["db.local:10.0.0.5", "gw=host-gateway"]', { extraHosts: ['db.local:10.0.0.5', 'gw:host-gateway'] }, (o) => expect(o.HostConfig.ExtraHosts).toEqual(['db.local:10.0.0.5', 'gw:host-gateway'])],
    ['extra_hosts:\n  db.local: 10.0.0.5\n  v6: "::1"', { extraHosts: ['db.local:10.0.0.5', 'v6:::1'] }, (o) => expect(o.HostConfig.ExtraHosts).toEqual(['db.local:10.0.0.5', 'v6:::1'])],
    // a host's addresses in the order written (/etc/hosts answers with the first), hosts by name; `host=ip1,ip2` is one line per address, as in compose
    ['extra_hosts: ["zz:10.0.0.3", "db:10.0.0.9", "db=10.0.0.1,::1", "db:10.0.0.9"]', { extraHosts: ['db:10.0.0.9', 'db:10.0.0.1', 'db:::1', 'zz:10.0.0.3'] }, (o) =>
      expect(o.HostConfig.ExtraHosts).toEqual(['db:10.0.0.9', 'db:10.0.0.1', 'db:::1', 'zz:10.0.0.3'])],
    ['dns: 1.1.1.1', { dns: ['1.1.1.1'] }, (o) => expect(o.HostConfig.Dns).toEqual(['1.1.1.1'])],
    // resolv.conf order, as written (mailcow: its own unbound first)
    ['dns: [172.22.1.254, 1.1.1.1]', { dns: ['172.22.1.254', '1.1.1.1'] }, (o) => expect(o.HostConfig.Dns).toEqual(['172.22.1.254', '1.1.1.1'])],
    ['dns_search: [a.example, b.example]', { dnsSearch: ['a.example', 'b.example'] }, (o) => expect(o.HostConfig.DnsSearch).toEqual(['a.example', 'b.example'])],
    ['dns_opt: [ndots:2]', { dnsOpt: ['ndots:2'] }, (o) => expect(o.HostConfig.DnsOptions).toEqual(['ndots:2'])],
    ['ulimits:\n  nproc: 512\n  nofile: {soft: 1024, hard: 2048}', { ulimits: { nofile: { soft: 1024, hard: 2048 }, nproc: { soft: 512, hard: 512 } } }, (o) =>
      expect(o.HostConfig.Ulimits).toEqual([{ Name: 'nofile', Soft: 1024, Hard: 2048 }, { Name: 'nproc', Soft: 512, Hard: 512 }])],
    ['logging:\n  driver: json-file\n  options: {max-size: 5m, max-file: 2}', { logging: { driver: 'json-file', options: { 'max-file': '2', 'max-size': '5m' } } }, (o) =>
      expect(o.HostConfig.LogConfig).toEqual({ Type: 'json-file', Config: { 'max-file': '2', 'max-size': '5m' } })],
    ['platform: linux/amd64', { platform: 'linux/amd64' }, (o) => expect(o.platform).toBe('linux/amd64')],
    ['cpus: 0.5', { nanoCpus: 500_000_000 }, (o) => expect(o.HostConfig.NanoCpus).toBe(500_000_000)],
    ['mem_limit: 512m', { memLimit: 512 * 1024 ** 2 }, (o) => expect(o.HostConfig.Memory).toBe(512 * 1024 ** 2)],
    ['mem_reservation: 1g', { memReservation: 1024 ** 3 }, (o) => expect(o.HostConfig.MemoryReservation).toBe(1024 ** 3)],
    ['memswap_limit: -1', { memswapLimit: -1 }, (o) => expect(o.HostConfig.MemorySwap).toBe(-1)],
    ['pids_limit: 100', { pidsLimit: 100 }, (o) => expect(o.HostConfig.PidsLimit).toBe(100)],
    ['shm_size: 64m', { shmSize: 64 * 1024 ** 2 }, (o) => expect(o.HostConfig.ShmSize).toBe(64 * 1024 ** 2)],
    ['deploy:\n  resources:\n    limits: {cpus: "1.5", memory: 256M, pids: 50}\n    reservations: {memory: 128M}', { nanoCpus: 1_500_000_000, memLimit: 256 * 1024 ** 2, pidsLimit: 50, memReservation: 128 * 1024 ** 2 }, (o) =>
      expect([o.HostConfig.NanoCpus, o.HostConfig.Memory, o.HostConfig.PidsLimit, o.HostConfig.MemoryReservation]).toEqual([1_500_000_000, 256 * 1024 ** 2, 50, 128 * 1024 ** 2])],
    ['read_only: true', { readOnly: true }, (o) => expect(o.HostConfig.ReadonlyRootfs).toBe(true)],
    ['tmpfs: ["/run:size=16M,mode=1750", /tmp]', { tmpfs: { '/run': 'size=16M,mode=1750', '/tmp': '' } }, (o) => expect(o.HostConfig.Tmpfs).toEqual({ '/run': 'size=16M,mode=1750', '/tmp': '' })],
    ['sysctls: {net.core.somaxconn: 1024}', { sysctls: { 'net.core.somaxconn': '1024' } }, (o) => expect(o.HostConfig.Sysctls).toEqual({ 'net.core.somaxconn': '1024' })],
    ['sysctls: ["net.ipv4.tcp_syncookies=0"]', { sysctls: { 'net.ipv4.tcp_syncookies': '0' } }, (o) => expect(o.HostConfig.Sysctls).toEqual({ 'net.ipv4.tcp_syncookies': '0' })],
    ['labels: {com.example.tier: web}', { labels: { 'com.example.tier': 'web' } }, (o) => expect(o.Labels['com.example.tier']).toBe('web')],
    ['restart: on-failure:3', { restart: 'on-failure', restartMaxRetries: 3 }, (o) => expect(o.HostConfig.RestartPolicy).toEqual({ Name: 'on-failure', MaximumRetryCount: 3 })],
    ['deploy:\n  restart_policy: {condition: on-failure, max_attempts: 5}', { restart: 'on-failure', restartMaxRetries: 5 }, (o) => expect(o.HostConfig.RestartPolicy).toEqual({ Name: 'on-failure', MaximumRetryCount: 5 })],
    ['deploy:\n  restart_policy: {condition: any}', { restart: 'always' }, (o) => expect(o.HostConfig.RestartPolicy).toEqual({ Name: 'always' })],
    ['healthcheck:\n  disable: false\n  interval: 10s', { healthcheck: { test: [], intervalMs: 10_000, timeoutMs: 0, retries: 0, startPeriodMs: 0 } }, (o) =>
      expect(o.Healthcheck).toEqual({ Test: [], Interval: 10_000_000_000, Timeout: 0, Retries: 0, StartPeriod: 0 })],
    // Ghost's compose.yml; an Engine 25 setting: the apply asks the target's API version before the create (api-version.test.ts)
    ['healthcheck:\n  test: [CMD, "true"]\n  start_period: 1m\n  start_interval: 2s', { healthcheck: { test: ['CMD', 'true'], intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 60_000, startIntervalMs: 2000 } }, (o) =>
      expect(o.Healthcheck).toEqual({ Test: ['CMD', 'true'], Interval: 0, Timeout: 0, Retries: 0, StartPeriod: 60_000_000_000, StartInterval: 2_000_000_000 })],
    // 0 is Docker's default, as compose sends it: the spec (and its hash) as without it
    ['healthcheck:\n  test: [CMD, "true"]\n  start_interval: 0s', { healthcheck: { test: ['CMD', 'true'], intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 0 } }, (o) =>
      expect(o.Healthcheck).toEqual({ Test: ['CMD', 'true'], Interval: 0, Timeout: 0, Retries: 0, StartPeriod: 0 })],
    ['cap_drop: [ALL, cap_net_raw]', { capDrop: ['ALL', 'NET_RAW'] }, (o) => expect(o.HostConfig.CapDrop).toEqual(['ALL', 'NET_RAW'])],
    ['group_add: [audio, 999]', { groupAdd: ['999', 'audio'] }, (o) => expect(o.HostConfig.GroupAdd).toEqual(['999', 'audio'])],
    ['cpu_shares: 512', { cpuShares: 512 }, (o) => expect(o.HostConfig.CpuShares).toBe(512)],
    ['cpuset: "0-1, 3"', { cpuset: '0-1,3' }, (o) => expect(o.HostConfig.CpusetCpus).toBe('0-1,3')],
    ['pull_policy: every_12h', { pullPolicy: 'every_12h' }, () => {}],
    ['ipc: shareable', { ipcMode: 'shareable' }, (o) => expect(o.HostConfig.IpcMode).toBe('shareable')],
    ['cgroup: private', { cgroupnsMode: 'private' }, (o) => expect(o.HostConfig.CgroupnsMode).toBe('private')],
    ['security_opt: [no-new-privileges:true]', { securityOpt: ['no-new-privileges:true'] }, (o) => expect(o.HostConfig.SecurityOpt).toEqual(['no-new-privileges:true'])],
    // as docker compose sends it: no masked or read-only paths under /proc and /sys (the engine refuses it as a security option: "invalid --security-opt")
    ['security_opt: [systempaths=unconfined, no-new-privileges:true]', { securityOpt: ['no-new-privileges:true', 'systempaths=unconfined'] }, (o) => {
      expect(o.HostConfig.SecurityOpt).toEqual(['no-new-privileges:true']);
      expect([o.HostConfig.MaskedPaths, o.HostConfig.ReadonlyPaths]).toEqual([[], []]);
    }],
  ];
  for (const [lines, fields, check] of table) {
    it(lines.split('\n')[0]!, () => {
      const d = load(svc(`image: nginx\n${lines}`));
      expect(web(d)).toMatchObject(fields);
      check(create(web(d)));
      // part of the hash: writing the key (or changing it) recreates the container; pull_policy only says
      // when to fetch the image (compose leaves it out of its config hash too)
      if (lines.startsWith('pull_policy')) expect(hashOf(d)).toBe(hashOf(load(svc('image: nginx'))));
      else expect(hashOf(d)).not.toBe(hashOf(load(svc('image: nginx'))));
    });
  }

  it('deploy.restart_policy applies as docker compose applies it: over restart:, merged key by key, Swarm-only keys refused at their line', () => {
    // condition none → no; any (also when left out) → always; it wins over restart:
    expect(web(load(svc('image: nginx\nrestart: always\ndeploy:\n  restart_policy:\n    condition: none'))).restart).toBe('no');
    expect(web(load(svc('image: nginx\ndeploy:\n  restart_policy: {}'))).restart).toBe('always');
    const overridden = web(load(svc('image: nginx\ndeploy:\n  restart_policy: {condition: on-failure, max_attempts: 2}\nrestart: on-failure:9')));
    expect([overridden.restart, overridden.restartMaxRetries]).toEqual(['on-failure', 2]);
    // an overlay changes one key and keeps the other
    const merged = loadCompose(
      [
        { path: 'compose.yml', text: svc('image: nginx\ndeploy:\n  restart_policy: {condition: any}') },
        { path: 'compose.prod.yml', text: 'services:\n  web:\n    deploy:\n      restart_policy: {condition: on-failure, max_attempts: 4}\n' },
      ],
      OPTS,
    );
    expect([web(merged).restart, web(merged).restartMaxRetries]).toEqual(['on-failure', 4]);
    // the restart policy is part of the hash: changing it recreates the container
    expect(hashOf(load(svc('image: nginx\ndeploy:\n  restart_policy: {condition: none}')))).not.toBe(hashOf(load(svc('image: nginx\ndeploy:\n  restart_policy: {condition: any}'))));
    expect(errorOf(() => load(svc('image: nginx\ndeploy:\n  restart_policy:\n    condition: on-failure\n    delay: 5s')))).toMatchObject({
      code: 'unsupported',
      message: 'compose.yml:7: services.web.deploy.restart_policy.delay: deploy.restart_policy.delay is not supported by berth — it is a Swarm setting with no container equivalent (Docker restarts a container with its own back-off): remove it',
    });
    expect(errorOf(() => load(svc('image: nginx\ndeploy:\n  restart_policy:\n    max_attempts: 3')))).toMatchObject({
      line: 6,
      message: 'compose.yml:6: services.web.deploy.restart_policy.max_attempts: service web: deploy.restart_policy.max_attempts needs condition: on-failure (Docker counts retries only for on-failure) — set condition: on-failure, or remove max_attempts',
    });
    // restart:'s words, as docker compose maps them (Dokploy's frappe blueprints write condition: always)
    expect(web(load(svc('image: nginx\ndeploy:\n  restart_policy: {condition: always}'))).restart).toBe('always');
    expect(web(load(svc('image: nginx\ndeploy:\n  restart_policy: {condition: unless-stopped}'))).restart).toBe('unless-stopped');
    expect(web(load(svc('image: nginx\nrestart: always\ndeploy:\n  restart_policy: {condition: "no"}'))).restart).toBe('no');
    expect(errorOf(() => load(svc('image: nginx\ndeploy:\n  restart_policy: {condition: sometimes}'))).message).toBe('compose.yml:5: services.web.deploy.restart_policy.condition: deploy.restart_policy.condition must be none, on-failure or any (or no, always, unless-stopped), not "sometimes"');
  });

  it('cap_drop only takes away: it needs no policy, merges across files, and sits beside a cap_add the policy allows', () => {
    const d = loadCompose(
      [
        { path: 'compose.yml', text: svc('image: nginx\ncap_drop: [ALL]\ncap_add: [NET_BIND_SERVICE]') },
        { path: 'compose.prod.yml', text: 'services:\n  web:\n    cap_drop: [SYS_CHROOT]\n' },
      ],
      { ...OPTS, policy: { ...DENY_ALL, allow_cap_add: ['NET_BIND_SERVICE'] } },
    );
    expect(web(d)).toMatchObject({ capDrop: ['ALL', 'SYS_CHROOT'], capAdd: ['NET_BIND_SERVICE'] });
    expect(create(web(d)).HostConfig).toMatchObject({ CapDrop: ['ALL', 'SYS_CHROOT'], CapAdd: ['NET_BIND_SERVICE'] });
    expect(errorOf(() => load(svc('image: nginx\ncap_drop: ["NET RAW"]')))).toMatchObject({ line: 4, problem: 'invalid capability "NET RAW"' });
    expect(errorOf(() => load(svc('image: nginx\ncpu_shares: 1')))).toMatchObject({ line: 4, problem: 'cpu_shares must be an integer from 2 to 262144, not 1' });
    expect(errorOf(() => load(svc('image: nginx\ncpuset: "0-a"')))).toMatchObject({ line: 4, problem: 'invalid cpuset "0-a"' });
  });

  it('every compose key berth refuses says why and what to do instead, at its line (never only the list of supported keys)', () => {
    const refused: [string, string][] = [
      ['oom_score_adj: -500', "it ranks the container against the host's own processes for the OOM killer, outside what the policy governs: remove it"],
      ['external_links: [redis_1]', 'it links to containers outside the project: define both services in the environment and use links:, or join a network declared external: true'],
      ['cpu_quota: 50000', 'write the CPU limit as cpus: (cpu_quota 50000 per cpu_period 100000 is cpus: 0.5)'],
      ['use_api_socket: true', 'it hands the container the Docker API and the registry credentials; mount the socket under policy.allow_docker_socket if the service drives Docker'],
      ['post_start: [{command: echo}]', "berth does not run lifecycle hooks: run the command from the image's entrypoint or command"],
    ];
    for (const [line, hint] of refused) {
      const e = errorOf(() => load(svc(`image: nginx\n${line}`)));
      expect(e, line).toMatchObject({ code: 'unsupported', line: 4, hint });
    }
    // top-level models (Docker's compose-for-agents examples): the reason and what to do, not 'not supported' three times
    const models = errorOf(() => load(`${svc('image: nginx\nmodels: [gemma]')}models:\n  gemma:\n    model: ai/gemma3\n`));
    expect(models).toMatchObject({ code: 'unsupported', line: 5 });
    expect(models.hint).toMatch(/Docker Model Runner.*remove models:.*environment variables/);
    expect(models.message.match(/not supported by berth/g)).toHaveLength(1);
    for (const key of ['annotations', 'blkio_config', 'cpu_count', 'cpu_percent', 'cpu_period', 'cpu_rt_period', 'cpu_rt_runtime', 'credential_spec', 'isolation', 'mem_swappiness', 'oom_kill_disable', 'pre_stop', 'provider', 'storage_opt', 'models']) {
      const e = errorOf(() => load(svc(`image: nginx\n${key}: x`)));
      expect(e.code, key).toBe('unsupported');
      expect(e.hint, key).not.toMatch(/^supported service keys/);
    }
  });

  it('a file that uses none of them hashes as before they existed', () => {
    expect(Object.keys(web(load(svc('image: nginx')))).sort()).toEqual(['dependsOn', 'environment', 'image', 'labels', 'name', 'networks', 'ports', 'replicas', 'restart', 'volumes']);
  });

  it('extra_hosts of an override come after the base file\'s for each host, once each (the first line for a name is the one the container resolves)', () => {
    const hosts = loadCompose([{ path: 'compose.yml', text: svc('image: nginx\nextra_hosts: ["db:10.0.0.9", "a:10.0.0.2"]') }, { path: 'over.yml', text: svc('extra_hosts: {db: ["10.0.0.1", "10.0.0.9"]}') }], OPTS);
    expect(web(hosts).extraHosts).toEqual(['a:10.0.0.2', 'db:10.0.0.9', 'db:10.0.0.1']);
  });

  it('bad values are located errors', () => {
    expect(errorOf(() => load(svc('image: nginx\nmem_limit: lots'))).message).toBe('compose.yml:4: services.web.mem_limit: mem_limit: invalid size "lots" — use a number of bytes or a size like 512m or 2g');
    expect(errorOf(() => load(svc('image: nginx\nextra_hosts: ["db:not-an-ip"]'))).problem).toBe('extra_hosts: "not-an-ip" for db is not an IP address');
    expect(errorOf(() => load(svc('image: nginx\npull_policy: sometimes'))).line).toBe(4);
    expect(errorOf(() => load(svc('image: nginx\ndeploy:\n  resources:\n    reservations:\n      devices: [{driver: nvidia}]'))).message).toMatch(/^compose\.yml:7: services\.web\.deploy\.resources\.reservations\.devices: deploy\.resources\.reservations\.devices\[0\] needs capabilities/);
    expect(errorOf(() => load(svc('image: nginx\nruntime: runc'))).code).toBe('unsupported');
    // a CDI device name is said to be one, with the form berth passes (not "use /dev/HOST")
    expect(errorOf(() => load(svc('image: nginx\ndevices: [nvidia.com/gpu=all]'), { policy: { ...DENY_ALL, allow_devices: true } }))).toMatchObject({
      code: 'unsupported',
      problem: 'device "nvidia.com/gpu=all" is a CDI device name, which berth does not pass to the engine',
    });
  });

  it('device_cgroup_rules reach Docker under allow_devices (immich\'s openvino: c 189:* rmw), refused without it; a bad rule is refused at its item', () => {
    const rules = 'device_cgroup_rules: ["c 189:* rmw", "a  1:2  r"]';
    const d = load(svc(`image: nginx\n${rules}`), { policy: { ...DENY_ALL, allow_devices: true } });
    expect(web(d).deviceCgroupRules).toEqual(['a 1:2 r', 'c 189:* rmw']);
    expect(create(web(d)).HostConfig.DeviceCgroupRules).toEqual(['a 1:2 r', 'c 189:* rmw']);
    // an override adds its rules to the base's
    const merged = loadCompose([{ path: 'compose.yml', text: svc(`image: nginx\n${rules}`) }, { path: 'over.yml', text: svc('device_cgroup_rules: ["b 8:0 r"]') }], { ...OPTS, policy: { ...DENY_ALL, allow_devices: true } });
    expect(web(merged).deviceCgroupRules).toEqual(['a 1:2 r', 'b 8:0 r', 'c 189:* rmw']);
    expect(errorOf(() => load(svc(`image: nginx\n${rules}`), { policy: DENY_ALL }))).toMatchObject({ code: 'policy_denied', line: 4, path: 'services.web.device_cgroup_rules' });
    expect(errorOf(() => load(svc(`image: nginx\n${rules}`), { policy: DENY_ALL })).problem).toContain('device_cgroup_rules a 1:2 r, c 189:* rmw (host devices by number) is not allowed');
    expect(errorOf(() => load(svc('image: nginx\ndevice_cgroup_rules: ["c 189 rmw"]'), { policy: { ...DENY_ALL, allow_devices: true } }))).toMatchObject({ code: 'invalid_value', path: 'services.web.device_cgroup_rules[0]' });
  });

  it('deploy.resources wins over cpus, mem_limit, pids_limit and mem_reservation wherever either is written, unless it is 0, as docker compose applies it', () => {
    const limits = { nanoCpus: 1e9, memLimit: 200 * 1024 ** 2, pidsLimit: 20, memReservation: 20 * 1024 ** 2 };
    const deploy = 'deploy:\n  resources:\n    limits: {memory: 200m, cpus: 1, pids: 20}\n    reservations: {memory: 20m}';
    const own = 'mem_limit: 100m\ncpus: 0.5\npids_limit: 10\nmem_reservation: 10m';
    // the order of the keys in the file decided it (the last written won)
    expect(web(load(svc(`image: nginx\n${deploy}\n${own}`)))).toMatchObject(limits);
    expect(web(load(svc(`image: nginx\n${own}\n${deploy}`)))).toMatchObject(limits);
    // an override's cpus does not undo the base file's deploy limit; its deploy limit replaces that key alone
    const files = (base: string, over: string) => web(loadCompose([{ path: 'compose.yml', text: svc(`image: nginx\n${base}`) }, { path: 'over.yml', text: svc(over) }], OPTS));
    expect(files(deploy, own)).toMatchObject(limits);
    expect(files(deploy, 'deploy: {resources: {limits: {cpus: 2}}}')).toMatchObject({ ...limits, nanoCpus: 2e9 });
    // a limit of 0 leaves the service's own in place (compose sets only limits that are not 0); alone it is no limit
    expect(web(load(svc(`image: nginx\n${own}\ndeploy: {resources: {limits: {memory: 0, cpus: 0, pids: 0}, reservations: {memory: 0}}}`)))).toMatchObject({ nanoCpus: 5e8, memLimit: 100 * 1024 ** 2, pidsLimit: 10, memReservation: 10 * 1024 ** 2 });
    expect(create(web(load(svc('image: nginx\ndeploy: {resources: {limits: {memory: 0}}}')))).HostConfig.Memory).toBe(0);
  });

  // docker compose sends RestartPolicy "no" for a written "no" and "" for none: the same on the engine. berth's spec
  // holds "no" for both (one hash), so it sends "" for both: telling them apart would change existing hashes.
  it('restart: "no", none and deploy condition none are one spec and one hash, sent as no restart policy', () => {
    const none = load(svc('image: nginx'));
    for (const body of ['restart: "no"', 'restart: none', 'deploy: {restart_policy: {condition: none}}']) {
      const d = load(svc(`image: nginx\n${body}`));
      expect(web(d).restart, body).toBe('no');
      expect(hashOf(d), body).toBe(hashOf(none));
      expect(create(web(d)).HostConfig.RestartPolicy, body).toEqual({ Name: '' });
    }
  });

  // docker compose sets deploy's pids limit only when it is above 0: -1 is no limit, as pids_limit: -1 is
  it('deploy.resources.limits.pids: -1 is no limit: the service\'s pids_limit stands, alone it is pids_limit: -1 in the spec, the hash, the plan and the create', () => {
    const minusOne = load(svc('image: nginx\ndeploy: {resources: {limits: {pids: -1}}}'));
    const own = load(svc('image: nginx\npids_limit: -1'));
    expect(web(minusOne).pidsLimit).toBe(-1);
    expect(create(web(minusOne)).HostConfig.PidsLimit).toBe(-1);
    expect(hashOf(minusOne)).toBe(hashOf(own));
    const plan = (d: DesiredState) => renderPlanMarkdown(reconcile(d, emptyObserved('p', 'e')), { environment: 'e', target: 'local', headSha: 'abc1234' });
    expect(plan(minusOne)).toContain('pids_limit: -1');
    expect(plan(minusOne)).toBe(plan(own));
    // any negative is Docker's "unlimited", held as -1; a string as YAML may quote it too
    expect(web(load(svc('image: nginx\ndeploy: {resources: {limits: {pids: -5}}}'))).pidsLimit).toBe(-1);
    expect(web(load(svc('image: nginx\ndeploy: {resources: {limits: {pids: "-1"}}}'))).pidsLimit).toBe(-1);
    // the service's own limit stands, whichever is written first and in whichever file
    expect(web(load(svc('image: nginx\ndeploy: {resources: {limits: {pids: -1}}}\npids_limit: 10'))).pidsLimit).toBe(10);
    expect(web(load(svc('image: nginx\npids_limit: 10\ndeploy: {resources: {limits: {pids: -1}}}'))).pidsLimit).toBe(10);
    expect(web(loadCompose([{ path: 'compose.yml', text: svc('image: nginx\npids_limit: 10') }, { path: 'over.yml', text: svc('deploy: {resources: {limits: {pids: -1}}}') }], OPTS)).pidsLimit).toBe(10);
    expect(errorOf(() => load(svc('image: nginx\ndeploy: {resources: {limits: {pids: lots}}}')))).toMatchObject({ code: 'invalid_value', line: 4, problem: 'deploy.resources.limits.pids must be an integer (-1 for no limit), not "lots"' });
  });

  it('deploy.resources.reservations: devices (GPUs) become Docker device requests under allow_devices, refused without it; cpus is refused with the reason', () => {
    const gpu = 'deploy:\n  resources:\n    reservations:\n      devices:\n        - driver: nvidia\n          count: 1\n          capabilities: [gpu, utility]\n        - capabilities: [gpu]\n          device_ids: ["0", "3"]';
    const d = load(svc(`image: nginx\n${gpu}`), { policy: { ...DENY_ALL, allow_devices: true } });
    expect(web(d).deviceRequests).toEqual([{ capabilities: ['gpu', 'utility'], driver: 'nvidia', count: 1 }, { capabilities: ['gpu'], deviceIds: ['0', '3'] }]);
    expect(create(web(d)).HostConfig.DeviceRequests).toEqual([
      { Driver: 'nvidia', Count: 1, DeviceIDs: [], Capabilities: [['gpu', 'utility']], Options: {} },
      { Driver: '', Count: 0, DeviceIDs: ['0', '3'], Capabilities: [['gpu']], Options: {} },
    ]);
    // without a count or device_ids compose reserves every matching device (count -1)
    expect(create(web(load(svc('image: nginx\ndeploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}'), { policy: { ...DENY_ALL, allow_devices: true } }))).HostConfig.DeviceRequests[0].Count).toBe(-1);
    const denied = errorOf(() => load(svc(`image: nginx\n${gpu}`), { policy: DENY_ALL }));
    expect(denied).toMatchObject({ line: 7, path: 'services.web.deploy.resources.reservations.devices' });
    expect(denied.problem).toBe("service web: device reservation gpu+utility, gpu (host devices such as GPUs) is not allowed by the repository's policy");
    const cpus = errorOf(() => load(svc('image: nginx\ndeploy: {resources: {reservations: {cpus: "0.5"}}}')));
    expect(cpus).toMatchObject({ code: 'unsupported', line: 4, path: 'services.web.deploy.resources.reservations.cpus' });
    expect(cpus.message).toContain('a CPU reservation is a Swarm scheduling option with no container setting (docker compose ignores it)');
    expect(errorOf(() => load(svc('image: nginx\ndeploy: {resources: {reservations: {devices: [{count: 1}]}}}'), { policy: { ...DENY_ALL, allow_devices: true } })).problem).toBe('deploy.resources.reservations.devices[0] needs capabilities');
  });

  it('gpus: is the GPU request compose makes of it: device requests with the gpu capability (all: every GPU), beside deploy\'s, under allow_devices', () => {
    const allow = { policy: { ...DENY_ALL, allow_devices: true } };
    expect(web(load(svc('image: ollama/ollama\ngpus: all'), allow)).deviceRequests).toEqual([{ capabilities: ['gpu'], count: -1 }]);
    const listed = web(load(svc('image: x\ngpus:\n  - driver: nvidia\n    count: 2\n  - device_ids: ["GPU-1"]\n    capabilities: [utility]\ndeploy: {resources: {reservations: {devices: [{capabilities: [tpu]}]}}}'), allow));
    expect(listed.deviceRequests).toEqual([{ capabilities: ['tpu'] }, { capabilities: ['gpu'], driver: 'nvidia', count: 2 }, { capabilities: ['gpu', 'utility'], deviceIds: ['GPU-1'] }]);
    expect(create(listed).HostConfig.DeviceRequests).toEqual([
      { Driver: '', Count: -1, DeviceIDs: [], Capabilities: [['tpu']], Options: {} },
      { Driver: 'nvidia', Count: 2, DeviceIDs: [], Capabilities: [['gpu']], Options: {} },
      { Driver: '', Count: 0, DeviceIDs: ['GPU-1'], Capabilities: [['gpu', 'utility']], Options: {} },
    ]);
    expect(errorOf(() => load(svc('image: x\ngpus: all'), { policy: DENY_ALL }))).toMatchObject({ code: 'policy_denied', line: 4, problem: "service web: device reservation gpu (host devices such as GPUs) is not allowed by the repository's policy" });
    expect(errorOf(() => load(svc('image: x\ngpus: some'), allow))).toMatchObject({ code: 'invalid_value', line: 4, problem: 'gpus must be all or a list' });
    expect(errorOf(() => load(svc('image: x\ngpus: [{count: 1, device_ids: ["0"]}]'), allow)).problem).toBe('gpus[0]: count and device_ids cannot both be set');
  });

  it('a service: join of a service that sets container_name names that container (gluetun\'s VPN, joined by network_mode: service:gluetun)', () => {
    const d = load('services:\n  gluetun:\n    image: qmcgaw/gluetun\n    container_name: gluetun\n  torrent:\n    image: linuxserver/qbittorrent\n    network_mode: service:gluetun\n    volumes_from: [gluetun]\n    pid: service:gluetun\n  other:\n    image: nginx\n    network_mode: service:torrent\n');
    const extras = { containerNames: containerNamesOf(d.services) };
    expect(extras.containerNames).toEqual({ gluetun: 'gluetun' });
    const spec = (name: string) => d.services.find((s) => s.spec.name === name)!.spec;
    const torrent = create(spec('torrent'), extras);
    expect([torrent.HostConfig.NetworkMode, torrent.HostConfig.PidMode, torrent.HostConfig.VolumesFrom]).toEqual(['container:gluetun', 'container:gluetun', ['gluetun:rw']]);
    // a service without container_name is still berth's replica 1
    expect(create(spec('other'), extras).HostConfig.NetworkMode).toBe('container:p-e-torrent-1');
    // the join waits for the named container, as compose orders it
    expect(spec('torrent').dependsOn.map((x) => x.service)).toEqual(['gluetun']);
  });

  it("a container: join of a service's own container_name is that service's container: joined as service:, not refused as outside the project (Haxxnet's arr-suite and guacamole behind gluetun)", () => {
    // network_mode: container:arr-suite-gluetun, where gluetun sets container_name: arr-suite-gluetun — docker compose
    // finds the project's own container by that name; no policy.allow_container_namespaces is needed
    const d = load(
      'services:\n  gluetun:\n    image: qmcgaw/gluetun\n    container_name: arr-suite-gluetun\n  qbittorrent:\n    image: linuxserver/qbittorrent\n    network_mode: container:arr-suite-gluetun\n    pid: container:arr-suite-gluetun\n    volumes_from: ["container:arr-suite-gluetun:ro"]\n',
      { policy: DENY_ALL },
    );
    const spec = (name: string) => d.services.find((s) => s.spec.name === name)!.spec;
    expect([spec('qbittorrent').networkMode, spec('qbittorrent').pid, spec('qbittorrent').volumesFrom]).toEqual(['service:gluetun', 'service:gluetun', ['service:gluetun:ro']]);
    const c = create(spec('qbittorrent'), { containerNames: containerNamesOf(d.services) });
    expect([c.HostConfig.NetworkMode, c.HostConfig.PidMode, c.HostConfig.VolumesFrom]).toEqual(['container:arr-suite-gluetun', 'container:arr-suite-gluetun', ['arr-suite-gluetun:ro']]);
    // it starts after gluetun, as service: joins do (a recreate of gluetun recreates it: reconcile's joinedServices)
    expect(spec('qbittorrent').dependsOn.map((x) => x.service)).toEqual(['gluetun']);
    expect(d.notes).toContain('service qbittorrent: network_mode container:arr-suite-gluetun (compose.yml:7) is the container of service gluetun (its container_name), joined as service:gluetun');
    // a container no service of the environment names is still someone else's: refused unless the policy names it
    expect(errorOf(() => load('services:\n  gluetun:\n    image: qmcgaw/gluetun\n    container_name: vpn\n  q:\n    image: x\n    network_mode: container:gluetun\n', { policy: DENY_ALL }))).toMatchObject({ code: 'policy_denied', line: 7 });
    // a service's own container_name is no join of itself
    expect(errorOf(() => load('services:\n  q:\n    image: x\n    container_name: q1\n    network_mode: container:q1\n', { policy: DENY_ALL }))).toMatchObject({ code: 'policy_denied', line: 5 });
  });

  it('ipc host and cgroup host are governed by the policy; ipc joins and runtime are refused with the reason; attach is noted, not deployed', () => {
    const withPolicy = (body: string, allow = {}) => load(svc(`image: nginx\n${body}`), { policy: { ...DENY_ALL, ...allow } });
    expect(errorOf(() => withPolicy('ipc: host'))).toMatchObject({ line: 4, problem: "service web: ipc host (the host's IPC namespace) is not allowed by the repository's policy" });
    expect(web(withPolicy('ipc: host', { allow_host_ipc: true })).ipcMode).toBe('host');
    expect(errorOf(() => withPolicy('cgroup: host'))).toMatchObject({ line: 4, problem: "service web: cgroup host (the host's cgroup namespace) is not allowed by the repository's policy" });
    expect(web(withPolicy('cgroup: host', { allow_host_cgroupns: true })).cgroupnsMode).toBe('host');
    // userns_mode: host (frappe_docker's Traefik overlay, for the Docker socket under userns-remap)
    expect(errorOf(() => withPolicy('userns_mode: host'))).toMatchObject({
      line: 4,
      message: "compose.yml:4: services.web.userns_mode: service web: userns_mode host (out of the engine's user-namespace remapping: root in the container is root on the host) is not allowed by the repository's policy — allow it with policy.allow_host_userns: true in .github/berth.yml on the default branch",
    });
    const userns = web(withPolicy('userns_mode: host', { allow_host_userns: true }));
    expect(userns.usernsMode).toBe('host');
    expect(create(userns).HostConfig.UsernsMode).toBe('host');
    expect(hashOf(withPolicy('userns_mode: host', { allow_host_userns: true }))).not.toBe(hashOf(load(svc('image: nginx'))));
    expect(errorOf(() => withPolicy('userns_mode: private', { allow_host_userns: true })).problem).toBe('userns_mode must be host, not "private"');
    expect(errorOf(() => load(svc('image: nginx\nipc: service:db')))).toMatchObject({ code: 'unsupported', line: 4 });
    expect(errorOf(() => load(svc('image: nginx\nruntime: io.containerd.wasmedge.v1'))).hint).toContain('berth does not let a repository choose host runtimes');
    const attached = load(svc('image: nginx\nattach: false'));
    expect(attached.notes).toEqual(['service web has attach: (compose.yml:4); it chooses which logs docker compose up shows in the foreground and has no effect on a deployment']);
    expect(hashOf(attached)).toBe(hashOf(load(svc('image: nginx'))));
    // an override file that merges into the service keeps it (and says nothing new); an override's attach: is noted too
    const over = (base: string, o: string) => loadCompose([{ path: 'compose.yml', text: svc(`image: nginx${base}`) }, { path: 'o.yml', text: `services:\n  web:\n${o}` }], OPTS);
    expect(over('\nattach: false', '    init: true\n').notes).toEqual(attached.notes);
    expect(over('', '    attach: false\n').notes).toEqual(['service web has attach: (o.yml:3); it chooses which logs docker compose up shows in the foreground and has no effect on a deployment']);
  });

  it('host-wide sysctls and loosening security options are denied unless the policy allows them', () => {
    const withPolicy = (body: string, allow = {}) => load(svc(`image: nginx\n${body}`), { policy: { ...DENY_ALL, ...allow } });
    expect(errorOf(() => withPolicy('sysctls: {vm.max_map_count: 262144}')).problem).toBe("service web: sysctl vm.max_map_count (it changes the host, not only the container) is not allowed by the repository's policy");
    expect(web(withPolicy('sysctls: {vm.max_map_count: 262144}', { allow_host_sysctls: true })).sysctls).toEqual({ 'vm.max_map_count': '262144' });
    expect(web(withPolicy('sysctls: {net.core.somaxconn: 1024, kernel.shmmax: 1, fs.mqueue.msg_max: 10}')).sysctls).toBeDefined();
    expect(errorOf(() => withPolicy('security_opt: [seccomp:unconfined]')).code).toBe('policy_denied');
    expect(web(withPolicy('security_opt: [seccomp:unconfined]', { allow_security_opt: true })).securityOpt).toEqual(['seccomp:unconfined']);
  });

  // thingsboard's docker-compose.volumes.yml: external: {name: ${TB_LOG_VOLUME}}, the variable set nowhere
  it('a value refused for being empty names the variables its file left unset', () => {
    const e = errorOf(() => load(svc('image: nginx\nvolumes: [logs:/var/log]', 'volumes:\n  logs:\n    external:\n      name: ${TB_LOG_VOLUME}\n')));
    expect(e).toMatchObject({ code: 'invalid_value', file: 'compose.yml', line: 7 });
    expect(e.problem).toContain('""');
    expect(e.hint).toMatch(/^variable TB_LOG_VOLUME, unset here, became ""/);
    // a refusal with nothing empty in it is left as it is
    expect(errorOf(() => load(svc('image: nginx\nrestart: ${MODE:-never}'))).hint).toBeUndefined();
    // a value its unset variables broke (not empty) names those of its own line: `image: ${IMAGE}:${BRANCH}-ci` is ":-ci"
    const broken = errorOf(() => load(svc('image: ${IMAGE}:${BRANCH}-ci\nenvironment: ["A=${OTHER}"]')));
    expect(broken).toMatchObject({ code: 'bad_image', line: 3 });
    expect(broken.hint).toMatch(/^variables BRANCH, IMAGE, unset here, became ""; write it as/);
    // a line that refers to no unset variable is left as it is
    expect(errorOf(() => load(svc('image: "nginx:-ci"\nenvironment: ["A=${OTHER}"]'))).hint).not.toContain('unset');
  });

  // compose-go cuts a list entry at its first "=" and trims neither side: the engine gets "A = 1" as written
  it('environment: ["A = 1"] is the variable "A " set to " 1", as docker compose sends it, and the plan notes the spaces', () => {
    const d = load(svc('image: nginx\nenvironment:\n  - B=2\n  - "A = ${SECRET_TOKEN}"'), { variables: { SECRET_TOKEN: 's3cr3t' } });
    expect(web(d).environment).toEqual({ 'A ': ' s3cr3t', B: '2' });
    expect(create(web(d)).Env).toEqual(['A = s3cr3t', 'B=2']);
    expect(d.notes).toEqual(['service web: environment "A " (compose.yml:6) has spaces around its name, which docker compose keeps, as berth does: a shell or a program looking up A will not find it; write A=… with no space around the =']);
    // written without spaces: nothing to note
    expect(load(svc('image: nginx\nenvironment: ["A=1", "B= 2"]')).notes).toBeUndefined();
  });

  // compose-go's EnforceUnicity: one entry per key of a list, the later in the earlier's place
  it('a bare environment name no variable sets reaches Docker bare, as docker compose sends it: unset in the container, the image\'s value, an env_file\'s and an earlier file\'s too', () => {
    const one = web(load(svc('image: nginx\nenvironment: [NODE_ENV, A=1]')));
    expect([one.environment, one.unsetEnvironment]).toEqual([{ A: '1' }, ['NODE_ENV']]);
    // the engine keeps the create's entry for a name over the image's ENV: a bare one leaves the name unset
    expect(create(one).Env).toEqual(['A=1', 'NODE_ENV']);
    // the plan says so, on a line of its own
    expect(renderPlanMarkdown(reconcile(load(svc('image: nginx\nenvironment: [NODE_ENV, A=1]')), emptyObserved('p', 'e')), { environment: 'e', target: 'local', headSha: 'abc1234' })).toContain('environment.NODE_ENV: (unset)');
    // a variable of that name sets it; without bare names the spec (and its hash) is as before
    const set = web(load(svc('image: nginx\nenvironment: [NODE_ENV, A=1]'), { variables: { NODE_ENV: 'production' } }));
    expect([set.environment, set.unsetEnvironment]).toEqual([{ A: '1', NODE_ENV: 'production' }, undefined]);
    expect(Object.keys(set)).not.toContain('unsetEnvironment');
    // over an env_file's value and an earlier file's; a later file's value sets it again
    const files = (...texts: string[]) => web(loadCompose(texts.map((text, i) => ({ path: i ? `over${i}.yml` : 'compose.yml', text })), { ...OPTS, sources: new Map([['a.env', 'B=file\n']]) }));
    const over = files(svc('image: nginx\nenv_file: [a.env]\nenvironment: {A: base, C: keep}'), svc('environment: [A, B]'));
    expect([over.environment, over.unsetEnvironment]).toEqual([{ C: 'keep' }, ['A', 'B']]);
    const back = files(svc('image: nginx\nenvironment: [A]'), svc('environment: {A: later}'));
    expect([back.environment, back.unsetEnvironment]).toEqual([{ A: 'later' }, undefined]);
  });

  it('the same mount target twice keeps the later entry; a later bare environment key unsets an earlier value; dns merges in order', () => {
    const twice = web(load(svc('image: nginx\nvolumes:\n  - data:/var/lib/garage\n  - other:/x\n  - meta:/var/lib/garage:ro', 'volumes:\n  data: {}\n  other: {}\n  meta: {}\n')));
    expect(twice.volumes.map((v) => `${v.source}:${v.target}:${v.readOnly}`)).toEqual(['meta:/var/lib/garage:true', 'other:/x:false']);
    // hi-events: MAIL_MAILER=array, then a bare MAIL_MAILER with the variable unset
    expect(web(load(svc('image: nginx\nenvironment:\n  - MAIL_MAILER=array\n  - MAIL_MAILER'))).environment).toEqual({});
    expect(web(load(svc('image: nginx\nenvironment:\n  - MAIL_MAILER=array\n  - MAIL_MAILER'))).unsetEnvironment).toEqual(['MAIL_MAILER']);
    expect(web(load(svc('image: nginx\nenvironment:\n  - MAIL_MAILER=array\n  - MAIL_MAILER'), { variables: { MAIL_MAILER: 'smtp' } })).environment).toEqual({ MAIL_MAILER: 'smtp' });
    const merged = loadCompose(
      [
        { path: 'compose.yml', text: svc('image: nginx\ndns: [10.0.0.2, 1.1.1.1]') },
        { path: 'override.yml', text: 'services:\n  web:\n    dns: [9.9.9.9, 1.1.1.1]\n' },
      ],
      OPTS,
    );
    expect(web(merged).dns).toEqual(['10.0.0.2', '1.1.1.1', '9.9.9.9']);
  });

  it('restart: none and any are deploy.restart_policy\'s words for no and always; docker compose maps them for restart: too', () => {
    expect(hashOf(load(svc('image: nginx\nrestart: none')))).toBe(hashOf(load(svc('image: nginx\nrestart: "no"'))));
    expect(web(load(svc('image: nginx\nrestart: any'))).restart).toBe('always');
    expect(hashOf(load(svc('image: nginx\nrestart: any')))).toBe(hashOf(load(svc('image: nginx\nrestart: always'))));
    expect(errorOf(() => load(svc('image: nginx\nrestart: never'))).problem).toBe('restart must be one of no, always, on-failure, unless-stopped or on-failure:N, not "never"');
  });

  it('healthcheck timings the engine would refuse are refused at their line: under a millisecond, or beyond Go\'s durations', () => {
    const hc = (k: string, d: string) => errorOf(() => load(svc(`image: nginx\nhealthcheck:\n  test: [CMD, "true"]\n  ${k}: ${d}`)));
    for (const k of ['interval', 'timeout', 'start_period', 'start_interval']) {
      expect(hc(k, '999us')).toMatchObject({ line: 6, problem: `healthcheck.${k} must be 0 or at least 1ms, not "999us" (Docker refuses shorter)` });
      expect(hc(k, '9999999999h')).toMatchObject({ code: 'bad_duration', problem: `healthcheck.${k}: duration "9999999999h" is longer than docker compose can hold (about 292 years)` });
    }
    expect(web(load(svc('image: nginx\nhealthcheck:\n  test: [CMD, "true"]\n  start_interval: 1ms\n  interval: 0s'))).healthcheck).toMatchObject({ intervalMs: 0, startIntervalMs: 1 });
  });

  it('security_opt seccomp:<file> (Zabbix\'s selenium service) is refused at its line: the engine takes the profile\'s JSON, not a path', () => {
    const e = errorOf(() => load(svc('image: selenium/standalone-chrome\nsecurity_opt: ["seccomp:./chrome.json"]')));
    expect(e).toMatchObject({ code: 'unsupported', line: 4, problem: 'security_opt seccomp:./chrome.json: a seccomp profile read from a file is not supported by berth' });
    expect(web(load(svc('image: x\nsecurity_opt: ["seccomp=unconfined", "no-new-privileges:true"]'))).securityOpt).toEqual(['no-new-privileges:true', 'seccomp=unconfined']);
  });

  // Docker 23 names its own default profile "builtin", and docker compose passes it as written (no file to read)
  it('security_opt seccomp=builtin is the engine\'s default profile by name: passed as written, needing API 1.42, under allow_security_opt as every seccomp option', () => {
    for (const o of ['seccomp=builtin', 'seccomp:builtin']) {
      const s = web(load(svc(`image: nginx\nsecurity_opt: ["${o}"]`)));
      expect(s.securityOpt).toEqual([o]);
      expect(create(s).HostConfig.SecurityOpt).toEqual([o]);
      expect(newerApiSettings(s)).toEqual([{ what: `security_opt ${o}`, api: '1.42', engine: 'Docker Engine 23', older: "would fail to start the container (it reads builtin as a profile's JSON)" }]);
    }
    // it overrides a stricter profile the daemon may be configured with: the policy governs it, as seccomp=unconfined
    const withPolicy = (allow = {}) => load(svc('image: nginx\nsecurity_opt: ["seccomp=builtin"]'), { policy: { ...DENY_ALL, ...allow } });
    expect(errorOf(() => withPolicy())).toMatchObject({ code: 'policy_denied', problem: "service web: security_opt seccomp=builtin is not allowed by the repository's policy" });
    expect(web(withPolicy({ allow_security_opt: true })).securityOpt).toEqual(['seccomp=builtin']);
    // only the exact name: another word is still a file's path, refused with what to write
    expect(errorOf(() => load(svc('image: nginx\nsecurity_opt: ["seccomp=default"]')))).toMatchObject({ code: 'unsupported', line: 4 });
    expect(errorOf(() => load(svc('image: nginx\nsecurity_opt: ["seccomp=default"]'))).hint).toContain('seccomp=builtin');
  });

  it('a type: image mount with its image.subpath option is refused for its type, with the reason, at the type line (it said "unknown volume key image", a key compose has)', () => {
    const e = errorOf(() => load(svc('image: nginx\nvolumes:\n  - type: image\n    source: alpine:3\n    target: /mnt/alpine\n    image:\n      subpath: etc')));
    expect(e).toMatchObject({ code: 'unsupported', line: 5 });
    expect(e.message).toContain('volume type "image"');
    expect(e.hint).toMatch(/copy the files into the service's own image/);
    expect(errorOf(() => load(svc('image: nginx\nvolumes:\n  - type: volume\n    source: data\n    target: /data\n    image:\n      subpath: etc', 'volumes:\n  data: {}\n')))).toMatchObject({ code: 'invalid_value', line: 8 });
  });

  it('volume.subpath: a directory inside a named volume, normalised, never leaving it; mounted through the Mounts API and shown in the plan', () => {
    const vols = 'volumes:\n  data: {}\n';
    const mount = (m: string) => web(load(svc(`image: nginx\nvolumes:\n  - {type: volume, source: data, target: /d, volume: ${m}}`, vols))).volumes[0]!;
    expect(mount('{subpath: "app//x/./"}')).toEqual({ type: 'volume', source: 'data', target: '/d', readOnly: false, subpath: 'app/x' });
    // empty, or the root itself, is the whole volume (and hashes as without it)
    expect(mount('{subpath: ""}')).toEqual({ type: 'volume', source: 'data', target: '/d', readOnly: false });
    expect(mount('{subpath: "a/.."}')).toEqual({ type: 'volume', source: 'data', target: '/d', readOnly: false });
    for (const bad of ['/etc', '..', '../other', 'a/../../b'])
      expect(errorOf(() => mount(`{subpath: "${bad}"}`)).problem, bad).toBe(`volume.subpath "${bad}" leaves the volume`);
    expect(errorOf(() => load(svc('image: nginx\nvolumes:\n  - {type: volume, target: /d, volume: {subpath: x}}'))).problem).toBe('volume.subpath needs a named volume: an anonymous one starts empty');
    const d = load(svc('image: nginx\nvolumes:\n  - {type: volume, source: data, target: /d, read_only: true, volume: {subpath: app, nocopy: true}}', vols));
    expect(create(web(d)).HostConfig.Mounts).toEqual([{ Type: 'volume', Target: '/d', ReadOnly: true, Source: 'p-e_data', VolumeOptions: { NoCopy: true, Subpath: 'app' } }]);
    expect(formatMount(web(d).volumes[0]!)).toBe('data:/d:ro,nocopy,subpath=app');
  });

  it('networks: link_local_ips, driver_opts and mac_address per network reach the endpoint, and the plan shows them', () => {
    const nets = 'networks:\n  front: {}\n  back: {}\n';
    const d = load(svc('image: nginx\nnetworks:\n  front:\n    priority: 10\n    mac_address: 02-42-AC-11-00-05\n  back:\n    link_local_ips: [169.254.8.8, "fe80::8", 169.254.8.8]\n    driver_opts: {zeta: "1", alpha: two}\n    aliases: [b]', nets));
    const s = web(d);
    expect(s.networks).toEqual(['front', 'back']);
    expect(s.networkOptions).toEqual({ front: { priority: 10, macAddress: '02:42:ac:11:00:05' }, back: { aliases: ['b'], linkLocalIps: ['169.254.8.8', 'fe80::8'], driverOpts: { alpha: 'two', zeta: '1' } } });
    // created on front (the MAC in Config too, for engines before API 1.44); back joined after, with its endpoint settings
    const o = create(s);
    expect(o.MacAddress).toBe('02:42:ac:11:00:05');
    expect(o.NetworkingConfig.EndpointsConfig).toEqual({ 'p-e_front': { Aliases: ['web'], MacAddress: '02:42:ac:11:00:05' } });
    expect(endpointConfig(s, 'back')).toEqual({ Aliases: ['web', 'b'], IPAMConfig: { LinkLocalIPs: ['169.254.8.8', 'fe80::8'] }, DriverOpts: { alpha: 'two', zeta: '1' } });
    expect(formatServiceNetwork('back', s.networkOptions!.back)).toBe('back (aliases: b; link_local_ips: 169.254.8.8, fe80::8; driver_opts: alpha=two, zeta=1)');
    // a MAC on a network joined after the create needs API 1.44 (checked at the apply, api-version.ts)
    expect(newerApiSettings(web(load(svc('image: nginx\nnetworks:\n  front: {priority: 10}\n  back: {mac_address: 02:42:ac:11:00:06}', nets)))).map((n) => n.what)).toEqual(['networks.back.mac_address (a network the container joins after it is created)']);
    expect(newerApiSettings(s)).toEqual([]);
    // one place for a MAC address; one container for it
    expect(errorOf(() => load(svc('image: nginx\nmac_address: 02:42:ac:11:00:07\nnetworks:\n  front: {mac_address: 02:42:ac:11:00:08}', nets))).problem).toBe('service web sets mac_address for the service and for network front');
    expect(errorOf(() => load(svc('image: nginx\ndeploy: {replicas: 3}\nnetworks:\n  front: {mac_address: 02:42:ac:11:00:08}', nets))).problem).toBe('service web has mac_address 02:42:ac:11:00:08 and 3 replicas');
    expect(errorOf(() => load(svc('image: nginx\nnetworks:\n  back: {link_local_ips: [not-an-ip]}', nets))).problem).toBe('link_local_ips entry "not-an-ip" is not an IP address');
  });

  it('mac_address: one replica, a network of its own, a MAC address; the same address in either form hashes alike', () => {
    expect(errorOf(() => load(svc('image: nginx\nmac_address: 02:42:ac:11:00:02\ndeploy: {replicas: 2}'))).message).toBe(
      'compose.yml:4: services.web.mac_address: service web has mac_address 02:42:ac:11:00:02 and 2 replicas — one MAC address fits one container: remove mac_address or scale to 1',
    );
    for (const mode of ['host', 'none', 'container:abc', 'service:db'])
      expect(errorOf(() => load(`services:\n  db: {image: nginx}\n  web:\n    image: nginx\n    network_mode: "${mode}"\n    mac_address: 02:42:ac:11:00:02\n`)).problem).toBe(`service web: mac_address cannot be combined with network_mode: ${mode}`);
    expect(web(load(svc('image: nginx\nnetwork_mode: bridge\nmac_address: 02:42:ac:11:00:02'))).macAddress).toBe('02:42:ac:11:00:02');
    for (const bad of ['02:42:ac:11:00', '02:42:ac:11:00:0g', '02:42-ac:11:00:02', '0242.ac11.0002'])
      expect(errorOf(() => load(svc(`image: nginx\nmac_address: "${bad}"`))).problem).toBe(`mac_address "${bad}" is not a MAC address`);
    expect(hashOf(load(svc('image: nginx\nmac_address: 02-42-AC-11-00-02')))).toBe(hashOf(load(svc('image: nginx\nmac_address: 02:42:ac:11:00:02'))));
    expect(hashOf(load(svc('image: nginx\nmac_address: 02:42:ac:11:00:02')))).not.toBe(hashOf(load(svc('image: nginx\nmac_address: 02:42:ac:11:00:03'))));
    // Empty is unset, as in docker compose.
    expect(hashOf(load(svc('image: nginx\nmac_address: ${MAC:-}')))).toBe(hashOf(load(svc('image: nginx'))));
    // what the engine would take and the container then fail on: a multicast address, one address twice
    expect(errorOf(() => load(svc('image: nginx\nmac_address: ff:ff:ff:ff:ff:ff'))).problem).toBe('mac_address "ff:ff:ff:ff:ff:ff" is a multicast address');
    expect(errorOf(() => load(svc('image: nginx\nmac_address: 01:00:5e:00:00:01'))).code).toBe('invalid_value');
    expect(errorOf(() => load('services:\n  a: {image: nginx, mac_address: "02:42:ac:11:00:02"}\n  b: {image: nginx, networks: {default: {mac_address: "02-42-AC-11-00-02"}}}\n')).problem).toBe('services a and b both use mac_address 02:42:ac:11:00:02');
  });

  it('container_name: one replica, one service per name, and the plan uses it', () => {
    expect(errorOf(() => load(svc('image: nginx\ncontainer_name: w\ndeploy: {replicas: 2}'))).message).toBe(
      'compose.yml:4: services.web.container_name: service web has container_name w and 2 replicas — one name fits one container: remove container_name or scale to 1',
    );
    const two = 'services:\n  a: {image: nginx, container_name: x}\n  b: {image: nginx, container_name: x}\n';
    expect(errorOf(() => load(two)).code).toBe('duplicate_container_name');
    const d = load(svc('image: nginx\ncontainer_name: shop-web'));
    const plan = reconcile(d, emptyObserved('p', 'e'));
    expect(plan.nodes.find((n) => n.kind === 'CreateContainer')!.target.containerName).toBe('shop-web');
  });

  it('an empty container_name, hostname or domainname is unset, as in docker compose; in an override file it unsets the base\'s (ToolJet)', () => {
    // ToolJet: container_name: ${REDIS_HOST}, empty in its .env.example
    const d = load(svc('image: nginx\ncontainer_name: ${REDIS_HOST}\nhostname: ""\ndomainname: ${NONE:-}'), { variables: { REDIS_HOST: '' } });
    expect([web(d).containerName, web(d).hostname, web(d).domainname]).toEqual([undefined, undefined, undefined]);
    expect(hashOf(d)).toBe(hashOf(load(svc('image: nginx'))));
    const plan = reconcile(d, emptyObserved('p', 'e'));
    expect(plan.nodes.find((n) => n.kind === 'CreateContainer')!.target.containerName).toBe('p-e-web-1');
    const over = loadCompose(
      [
        { path: 'compose.yml', text: svc('image: nginx\ncontainer_name: shop-web\nhostname: web1') },
        { path: 'compose.override.yml', text: 'services:\n  web:\n    container_name: ""\n' },
      ],
      { project: 'p', environment: 'e', policy: DENY_ALL },
    );
    expect([web(over).containerName, web(over).hostname]).toEqual([undefined, 'web1']);
  });

  it('service networks: aliases, fixed addresses, priority picks the network the container is created on', () => {
    const d = load(
      svc(
        'image: nginx\nnetworks:\n  back:\n    aliases: [api, web]\n    ipv4_address: 172.28.0.10\n  front:\n    priority: 10',
        'networks:\n  back:\n    ipam:\n      config: [{subnet: 172.28.0.0/16}]\n  front: {}\n',
      ),
    );
    const s = web(d);
    expect(s.networks).toEqual(['front', 'back']);
    expect(s.networkOptions).toEqual({ back: { aliases: ['api'], ipv4Address: '172.28.0.10' }, front: { priority: 10 } });
    const o = create(s);
    expect(Object.keys(o.NetworkingConfig.EndpointsConfig)).toEqual(['p-e_front']);
    expect(d.networks.find((n) => n.spec.name === 'back')!.spec.ipam).toEqual({ config: [{ subnet: '172.28.0.0/16' }] });
  });

  it('links add the alias on the linked service and a dependency', () => {
    const d = load('services:\n  web:\n    image: nginx\n    links: ["db:database", cache]\n  db: {image: postgres}\n  cache: {image: redis}\n');
    expect(web(d).dependsOn.map((x) => x.service)).toEqual(['cache', 'db']);
    expect(d.services.find((s) => s.spec.name === 'db')!.spec.networkOptions).toEqual({ default: { aliases: ['database'] } });
  });

  it('top-level networks and volumes: name, driver_opts, enable_ipv6, external names', () => {
    const d = load(
      svc('image: nginx\nnetworks: [n, ext]\nvolumes: [v:/v, old:/old]', 'networks:\n  n:\n    name: shared-net\n    enable_ipv6: true\n    driver_opts: {com.docker.network.bridge.name: br-x}\n  ext:\n    external: true\n    name: real-net\nvolumes:\n  v:\n    name: data\n    driver_opts: {type: tmpfs, device: tmpfs}\n  old:\n    external: {name: legacy}\n'),
    );
    expect(d.networks.map((n) => n.spec)).toEqual([
      { name: 'ext', driver: 'bridge', internal: false, attachable: false, labels: {}, external: true, dockerName: 'real-net' },
      { name: 'n', driver: 'bridge', internal: false, attachable: false, labels: {}, external: false, dockerName: 'shared-net', enableIpv6: true, driverOpts: { 'com.docker.network.bridge.name': 'br-x' } },
    ]);
    expect(d.volumes.map((v) => v.spec)).toEqual([
      { name: 'old', driver: 'local', labels: {}, external: true, dockerName: 'legacy' },
      { name: 'v', driver: 'local', labels: {}, external: false, dockerName: 'data', driverOpts: { device: 'tmpfs', type: 'tmpfs' } },
    ]);
    // name: is the object's name in Docker, as in compose (the create options use it)
    expect(d.notes).toBeUndefined();
    expect(Object.keys(create(web(d), { networkNames: { n: 'shared-net', ext: 'real-net' }, volumeNames: { v: 'data', old: 'legacy' } }).NetworkingConfig.EndpointsConfig)).toEqual(['real-net']);
    expect(dockerNames(d).network('n')).toBe('shared-net');
    expect(dockerNames(d).volume('v')).toBe('data');
    expect(dockerNames(d).volume('old')).toBe('legacy');
    // two declarations cannot share one name
    expect(errorOf(() => load(svc('image: nginx\nnetworks: [a, b]', 'networks:\n  a: {name: x}\n  b:\n    name: x\n')))).toMatchObject({ code: 'duplicate_name', line: 8, path: 'networks.b.name' });
    // an external network's other keys are ignored, as docker compose joins it as it is (Coolify's production override
    // turns its bridge network external); said in the plan. An external volume with options stays refused, as in compose.
    const coolify = loadCompose(
      [
        { path: 'compose.yml', text: svc('image: nginx\nnetworks: [coolify]', 'networks:\n  coolify:\n    name: coolify\n    driver: bridge\n    external: false\n') },
        { path: 'compose.prod.yml', text: 'networks:\n  coolify:\n    external: true\n' },
      ],
      { project: 'p', environment: 'e' },
    );
    expect(coolify.networks.map((n) => n.spec)).toEqual([{ name: 'coolify', driver: 'bridge', internal: false, attachable: false, labels: {}, external: true, dockerName: 'coolify' }]);
    expect(coolify.notes).toEqual(['network coolify is external (compose.prod.yml:3): driver is not used, as docker compose joins an external network as it is']);
    expect(errorOf(() => load(svc('image: nginx\nvolumes: [v:/v]', 'volumes:\n  v:\n    external: true\n    driver: local\n')))).toMatchObject({ code: 'invalid_value', problem: 'volume v is external: it takes no other options' });
  });

  it('mount flags: :z/:Z relabel and short binds create the host directory (legacy Binds); long binds only when asked', () => {
    const d = load(svc('image: nginx\nvolumes:\n  - ./a:/a:Z\n  - ./b:/b:ro,z\n  - ./c:/c:cached\n  - type: bind\n    source: ./d\n    target: /d\n  - type: bind\n    source: ./e\n    target: /e\n    bind: {create_host_path: true}'), { repoRoot: '/r' });
    const o = create(web(d));
    expect(o.HostConfig.Binds).toEqual(['/r/a:/a:rw,Z', '/r/b:/b:ro,z', '/r/c:/c:rw', '/r/e:/e:rw']);
    expect(o.HostConfig.Mounts).toEqual([{ Type: 'bind', Target: '/d', ReadOnly: false, Source: '/r/d' }]);
    // zabbix-docker's `:roz` is no mode (docker compose ignores it and mounts read-write): refused, saying what was meant
    expect(errorOf(() => load(svc('image: nginx\nvolumes:\n  - snmp:/var/lib/snmp:roz', 'volumes:\n  snmp: {}\n')))).toMatchObject({
      code: 'unsupported',
      line: 5,
      problem: 'invalid volume "snmp:/var/lib/snmp:roz": mode "roz" is not one mode',
      hint: 'write the modes comma-separated, "ro,z" (docker compose ignores "roz" and mounts the volume read-write, unlabelled)',
    });
  });
});

describe('files the compose way', () => {
  const repo = (files: Record<string, string>, config: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-keys-'));
    for (const [p, text] of Object.entries({ ...files, '.github/berth.yml': config })) {
      mkdirSync(dirname(join(dir, p)), { recursive: true });
      writeFileSync(join(dir, p), text);
    }
    return readFromDir(dir);
  };
  const cfg = (extra = '') => `project: p\nenvironments:\n  - name: e\n    compose: [deploy/compose.yml]\n${extra}`;
  /** The environment as the app loads it: each file read at the PR head through GitHub (`reads` records them), only paths the head has. */
  /** `listing`: the head's listing as GitHub gives it (default: every path of `files`, all mode 100644). */
  const viaApp = (files: Record<string, string>, config: string, reads: string[] = [], listing: Set<string> = new Set(Object.keys(files)), binaries: Record<string, Buffer> = {}) => {
    const gh = {
      readFile: async (_r: unknown, path: string, ref: string) => (reads.push(`${path}@${ref}`), files[path]),
      readFileBytes: async (_r: unknown, path: string, ref: string) => (reads.push(`${path}@${ref} (bytes)`), binaries[path] ?? (files[path] === undefined ? undefined : Buffer.from(files[path]!))),
    } as unknown as GitHubPort;
    const parsed = parseConfig(config, '.github/berth.yml');
    return new Bot({} as BotOptions).desiredAt(gh, { owner: 'acme', name: 'shop' }, parsed, parsed.environments[0]!, 'head1', listing);
  };

  it('home: gives ~ and ${HOME} their meaning the same way in the CLI and the app; a PR\'s .env does not decide HOME', async () => {
    const files = { 'deploy/compose.yml': svc('image: nginx\nvolumes: ["~/data:/data", "${HOME}/cfg:/cfg"]'), 'deploy/.env': 'HOME=/srv\n' };
    const config = cfg('    home: /home/deploy\npolicy:\n  bind_mount_allowlist: [/home/deploy]\n');
    for (const desired of [(await loadEnvironment(repo(files, config), 'e')).desired, await viaApp(files, config)])
      expect(web(desired).volumes.map((v) => v.source).sort()).toEqual(['/home/deploy/cfg', '/home/deploy/data']);
  });

  it('an environment that lists no compose file gets what docker compose finds in the root: the first of its names, then its override file', async () => {
    const bare = 'project: p\nenvironments:\n  - name: e\n';
    const modern = { 'compose.yaml': svc('image: nginx'), 'docker-compose.yml': svc('image: httpd') };
    const classic = { 'docker-compose.yml': svc('image: nginx'), 'docker-compose.override.yml': svc('ports: ["8080:80"]'), 'compose.override.yaml': svc('ports: ["9090:80"]') };
    for (const load of [(f: Record<string, string>) => loadEnvironment(repo(f, bare), 'e').then((l) => l.desired), (f: Record<string, string>) => viaApp(f, bare)]) {
      // compose.yaml first (the docker-compose.yml beside it is not read)
      expect(web(await load(modern)).image).toBe('docker.io/library/nginx:latest');
      // the override merges in, the first of compose.override.yml, compose.override.yaml, docker-compose.override.yml, …
      expect(web(await load(classic)).ports).toEqual([{ target: 80, published: 9090, protocol: 'tcp' }]);
      const { 'compose.override.yaml': _, ...plain } = classic;
      expect(web(await load(plain)).ports).toEqual([{ target: 80, published: 8080, protocol: 'tcp' }]);
      // none there: said at the environment, with what to do
      await expect(load({ 'deploy/compose.yml': svc('image: nginx') })).rejects.toMatchObject({
        code: 'missing_file',
        file: '.github/berth.yml',
        problem: "environment e lists no compose file, and the repository's root holds none of compose.yaml, compose.yml, docker-compose.yml, docker-compose.yaml",
      });
    }
    // COMPOSE_FILE, as compose reads it without -f: the root .env's (paths joined by :), or the environment's variable
    const ports = { ...modern, 'deploy/ports.yml': svc('ports: ["7070:80"]') };
    for (const [files, config] of [
      [{ ...ports, '.env': 'COMPOSE_FILE=docker-compose.yml:./deploy/ports.yml\n' }, bare],
      [ports, `${bare}    variables: {COMPOSE_FILE: "docker-compose.yml;deploy/ports.yml", COMPOSE_PATH_SEPARATOR: ";"}\n`],
    ] as const) {
      for (const desired of [(await loadEnvironment(repo(files, config), 'e')).desired, await viaApp(files, config)])
        expect(web(desired)).toMatchObject({ image: 'docker.io/library/httpd:latest', ports: [{ target: 80, published: 7070, protocol: 'tcp' }] });
    }
    // a listed file is read as listed, and nothing else
    const reads: string[] = [];
    expect(web(await viaApp(modern, `${bare}    compose: [docker-compose.yml]\n`, reads)).image).toBe('docker.io/library/httpd:latest');
    expect(reads).toEqual(['docker-compose.yml@head1']);
  });

  it('env_file: relative to the compose file, later files and environment: win, required: false, format: raw, secrets masked', async () => {
    const read = repo(
      {
        'deploy/compose.yml': svc('image: nginx\nenv_file:\n  - app.env\n  - path: ./override.env\n  - path: missing.env\n    required: false\n  - path: raw.env\n    format: raw\nenvironment:\n  B: from-compose'),
        'deploy/app.env': '# comment\nA=1\nB=from-file\nexport DB_PASSWORD="s3cr3t value"\nURL=http://${HOST}/x\n',
        'deploy/override.env': "A='2'\n",
        'deploy/raw.env': 'RAW=${NOT_INTERPOLATED}\n',
      },
      cfg('    variables: {HOST: example.org}\n'),
    );
    const { desired } = await loadEnvironment(read, 'e');
    expect(web(desired).environment).toEqual({ A: '2', B: 'from-compose', DB_PASSWORD: 's3cr3t value', RAW: '${NOT_INTERPOLATED}', URL: 'http://example.org/x' });
    const md = renderPlanMarkdown(reconcile(desired, emptyObserved('p', 'e')), { environment: 'e', target: 'local', headSha: 'abc1234' });
    expect(md).toContain('DB_PASSWORD');
    expect(md).not.toContain('s3cr3t');
  });

  it('the app reads env_file, .env and included files at the PR head through GitHub, only paths the head has', async () => {
    const files: Record<string, string> = {
      'deploy/compose.yml': `include: [db.yml]\n${svc('image: nginx:${TAG}\nenv_file: app.env')}`,
      'deploy/db.yml': 'services:\n  db: {image: postgres}\n',
      'deploy/app.env': 'API_TOKEN=t0ps3cret\n',
      'deploy/.env': 'TAG=1.27\n',
    };
    const reads: string[] = [];
    const desired = await viaApp(files, cfg(), reads);
    expect(web(desired).image).toBe('docker.io/library/nginx:1.27');
    expect(web(desired).environment).toEqual({ API_TOKEN: 't0ps3cret' });
    expect(desired.services.map((s) => s.spec.name)).toEqual(['db', 'web']);
    expect(reads.sort()).toEqual(['deploy/.env@head1', 'deploy/app.env@head1', 'deploy/compose.yml@head1', 'deploy/db.yml@head1']);
  });

  it('the PR comment section and check run of an environment warn about its unset variables, escaped', async () => {
    const files: Record<string, string> = {
      'deploy/compose.yml': svc('image: nginx:${TAG:-1}\nenvironment:\n  DB_HOST: ${DB_HOST}\n  SMTP_USER: $SMTP_USER\n  API_TOKEN: ${API_TOKEN}'),
    };
    const gh = { readFile: async (_r: unknown, path: string) => files[path] } as unknown as GitHubPort;
    const config = parseConfig(cfg('    variables: {API_TOKEN: t0ps3cret-value}\n'), '.github/berth.yml');
    const bot = new Bot({
      targets: { has: () => true, names: () => ['local'] },
      store: { projectOwner: async () => undefined },
      observe: async (_t: string, project: string, environment: string) => emptyObserved(project, environment),
      log: { error: () => {}, info: () => {}, warn: () => {} },
    } as unknown as BotOptions);
    const r = await bot.planEnvironment(gh, { owner: 'acme', name: 'shop' }, { config, files: new Set(Object.keys(files)) }, config.environments[0]!, 'head1');
    expect(r.ok).toBe(true);
    // what planPullRequest puts in the comment and passes as the check run's summary
    expect(r.markdown).toContain('> ⚠️ <code>deploy&#47;compose&#46;yml</code> uses 2 variables that are not set: <code>DB&#95;HOST</code>, <code>SMTP&#95;USER</code>; each became an empty string');
    expect(r.markdown).not.toContain('t0ps3cret-value');
    if (r.ok) expect(web(r.desired).environment).toEqual({ DB_HOST: '', SMTP_USER: '', API_TOKEN: 't0ps3cret-value' });
  });

  it('a missing env_file names the file and line; one outside the repository is refused', async () => {
    await expect(loadEnvironment(repo({ 'deploy/compose.yml': svc('image: nginx\nenv_file: nope.env') }, cfg()), 'e')).rejects.toThrow(
      'deploy/compose.yml:4: services.web.env_file: env_file nope.env not found (looked for deploy/nope.env in the repository)',
    );
    await expect(loadEnvironment(repo({ 'deploy/compose.yml': svc('image: nginx\nenv_file: ../../etc/passwd') }, cfg()), 'e')).rejects.toThrow('env_file ../../etc/passwd is outside the repository');
  });

  it('.env next to the first compose file gives defaults; berth.yml variables override it', async () => {
    const read = repo({ 'deploy/compose.yml': svc('image: nginx:${TAG}\nenvironment: {MODE: "${MODE}"}'), 'deploy/.env': 'TAG=1.25\nMODE=dev\n' }, cfg('    variables: {MODE: prod}\n'));
    const s = web((await loadEnvironment(read, 'e')).desired);
    expect([s.image, s.environment.MODE]).toEqual(['docker.io/library/nginx:1.25', 'prod']);
  });

  it('a ${VAR} inside .env or an env_file finds the berth.yml variable before the file’s own key, as compose-go’s dotenv does (Plane: WEB_URL=http://${APP_DOMAIN})', async () => {
    const read = repo(
      {
        'deploy/compose.yml': svc('image: nginx\nenv_file: [app.env, more.env]\nenvironment: {WEB_URL: "${WEB_URL}", PLAIN: "${PLAIN}"}'),
        'deploy/.env': 'APP_DOMAIN=localhost\nWEB_URL=http://${APP_DOMAIN}\nPLAIN=${UNSET_HERE:-x}-${APP_DOMAIN}\n',
        // the file's own key still serves a name no variable has; a later file finds an earlier file's keys
        'deploy/app.env': 'APP_DOMAIN=localhost\nCORS=http://${APP_DOMAIN}\nPORT=8080\nSELF=${PORT}\n',
        'deploy/more.env': 'LISTEN=0.0.0.0:${PORT}\n',
      },
      cfg('    variables: {APP_DOMAIN: plane.example.com}\n'),
    );
    const env = web((await loadEnvironment(read, 'e')).desired).environment;
    expect(env).toEqual({
      WEB_URL: 'http://plane.example.com',
      PLAIN: 'x-plane.example.com',
      APP_DOMAIN: 'localhost',
      CORS: 'http://plane.example.com',
      PORT: '8080',
      SELF: '8080',
      LISTEN: '0.0.0.0:8080',
    });
  });

  // compose-go since 2025 (WithServicesEnvironmentResolved): the variables, then the service's own environment:,
  // then the keys read so far; the service resolved as merged (an override file's environment: counts)
  it('a ${VAR} in an env_file finds the service\'s own environment: after the variables, merged from every file, as compose-go does', async () => {
    const files = {
      'deploy/compose.yml': svc('image: nginx\nenv_file: app.env\nenvironment: {APP_DOMAIN: from-environment, PORT: "9000"}'),
      'deploy/override.yml': 'services:\n  web:\n    environment: {EXTRA: from-override}\n',
      'deploy/app.env': 'PORT=8080\nURL=https://${APP_DOMAIN}:${PORT}/\nMORE=${EXTRA:-none}\nSELF=${OWN:-x}\nOWN=1\nAFTER=${OWN}\nEXTRA\n',
    };
    const config = (extra = '') => `project: p\nenvironments:\n  - name: e\n    compose: [deploy/compose.yml, deploy/override.yml]\n${extra}`;
    const env = async (extra = '') => web((await loadEnvironment(repo(files, config(extra)), 'e')).desired).environment;
    // environment: wins over the file's keys in the container, and is what the file's ${VAR}s find before its own keys
    expect(await env()).toEqual({ APP_DOMAIN: 'from-environment', PORT: '9000', URL: 'https://from-environment:9000/', MORE: 'from-override', SELF: 'x', OWN: '1', AFTER: '1', EXTRA: 'from-override' });
    // the environment's variables come first
    expect((await env('    variables: {APP_DOMAIN: from-variables}\n')).URL).toBe('https://from-variables:9000/');
  });

  it('a value an env_file builds from a secret variable is masked, and one built from the file’s own key that shadows nothing is not', async () => {
    const read = repo(
      {
        'deploy/compose.yml': svc('image: nginx\nenv_file: app.env'),
        'deploy/app.env': 'DB_PASS=fallback-not-used\nDSN=postgres://u:${DB_PASS}@db/app\nHOSTNAME_X=plain-host\nURL=http://${HOSTNAME_X}/\n',
      },
      cfg('    variables: {DB_PASS: hunter2-secret}\n    secret_keys: [DB_PASS]\n'),
    );
    const { desired } = await loadEnvironment(read, 'e');
    expect(web(desired).environment.DSN).toBe('postgres://u:hunter2-secret@db/app');
    const md = renderPlanMarkdown(reconcile(desired, emptyObserved('p', 'e')), { environment: 'e', target: 'local', headSha: 'abc1234' });
    expect(md).not.toContain('hunter2-secret');
    expect(md).toContain('http://plain-host/');
  });

  it('COMPOSE_PROFILES from the .env (interpolated) or berth.yml variables enables profiles when berth.yml lists none, as in docker compose', async () => {
    const compose = 'services:\n  es:\n    image: nginx\n    profiles: [elasticsearch]\n  cpu:\n    image: nginx\n    profiles: [cpu]\n  gpu:\n    image: nginx\n    profiles: [gpu]\n  always:\n    image: nginx\n';
    const names = async (env: string, extra = '') => {
      const { desired } = await loadEnvironment(repo({ 'deploy/compose.yml': compose, 'deploy/.env': env }, cfg(extra)), 'e');
      return [desired.services.map((s) => s.spec.name).sort(), desired.notes ?? []] as const;
    };
    // the .env interpolates itself, as RAGFlow's does: COMPOSE_PROFILES=${DOC_ENGINE},${DEVICE}
    const [fromDotenv, notes] = await names('DOC_ENGINE=${DOC_ENGINE:-elasticsearch}\nDEVICE=cpu\nCOMPOSE_PROFILES=${DOC_ENGINE}, ${DEVICE},\n');
    expect(fromDotenv).toEqual(['always', 'cpu', 'es']);
    expect(notes).toContain('profiles elasticsearch, cpu are enabled by COMPOSE_PROFILES, as docker compose enables them (list profiles: under the environment in .github/berth.yml to choose others)');
    // berth.yml variables override the .env; `*` enables every profile
    expect((await names('COMPOSE_PROFILES=cpu\n', '    variables: {COMPOSE_PROFILES: gpu}\n'))[0]).toEqual(['always', 'gpu']);
    expect((await names('COMPOSE_PROFILES=*\n'))[0]).toEqual(['always', 'cpu', 'es', 'gpu']);
    // profiles: in berth.yml win over COMPOSE_PROFILES (compose: --profile over the variable), with no note
    const [listed, listedNotes] = await names('COMPOSE_PROFILES=cpu\n', '    profiles: [gpu]\n');
    expect(listed).toEqual(['always', 'gpu']);
    expect(listedNotes.filter((n) => n.includes('COMPOSE_PROFILES'))).toEqual([]);
    // unset or empty: only the services without profiles
    expect((await names('OTHER=1\n'))[0]).toEqual(['always']);
    expect((await names('COMPOSE_PROFILES=\n'))[0]).toEqual(['always']);
  });

  // pixelfed: every service has `profiles: [${DOCKER_<X>_PROFILE:-}]`, on by default, off when the variable names a profile left off
  it('a profile that interpolates to "" is on while no profile is chosen, as docker compose reads an unset COMPOSE_PROFILES', async () => {
    const compose = 'services:\n  proxy:\n    image: nginx\n    profiles: ["${DOCKER_PROXY_PROFILE:-}"]\n  web:\n    image: nginx\n    profiles: ["${DOCKER_WEB_PROFILE:-}"]\n';
    const names = async (env: string, extra = '') =>
      (await loadEnvironment(repo({ 'deploy/compose.yml': compose, 'deploy/.env': env }, cfg(extra)), 'e')).desired.services.map((s) => s.spec.name).sort();
    expect(await names('')).toEqual(['proxy', 'web']);
    expect(await names('DOCKER_PROXY_PROFILE=disabled\n')).toEqual(['web']);
    // a profile chosen (COMPOSE_PROFILES, or berth.yml profiles:) leaves "" off, unless COMPOSE_PROFILES lists an empty one too
    expect(await names('DOCKER_PROXY_PROFILE=proxy\nCOMPOSE_PROFILES=proxy\n')).toEqual(['proxy']);
    expect(await names('DOCKER_PROXY_PROFILE=proxy\nCOMPOSE_PROFILES=proxy,\n')).toEqual(['proxy', 'web']);
    expect(await names('DOCKER_PROXY_PROFILE=proxy\n', '    profiles: [proxy]\n')).toEqual(['proxy']);
  });

  it('what berth cannot honour refuses only services that will run: docker compose never creates one whose profiles are off (zabbix)', () => {
    const compose = [
      'services:',
      '  web:',
      '    image: nginx',
      '  debug:',
      '    image: busybox',
      '    profiles: [debug]',
      '    deploy: {resources: {reservations: {cpus: "0.5"}}}',
      '    security_opt: ["seccomp:./chrome.json"]',
      '    post_start: [{command: x}]',
      '',
    ].join('\n');
    const load = (profiles?: string[]) => loadCompose([{ path: 'compose.yml', text: compose }], { project: 'p', environment: 'e', variables: {}, ...(profiles ? { profiles } : {}) });
    expect(load().services.map((s) => s.spec.name)).toEqual(['web']);
    // enabled, it is refused at the first such key, as before
    expect(errorOf(() => load(['debug']))).toMatchObject({ code: 'unsupported', line: 7, message: expect.stringContaining('reservations.cpus cannot be honoured') });
    // an override enabling nothing new keeps the refusal with the service it came from; a key compose does not know is refused anyway
    const typo = compose.replace('    post_start: [{command: x}]', '    imagee: busybox');
    expect(errorOf(() => loadCompose([{ path: 'compose.yml', text: typo }], { project: 'p', environment: 'e', variables: {} }))).toMatchObject({ code: 'unknown_key', line: 9 });
    // a service that extends a refused one inherits the refusal
    const extended = `${compose}  other:\n    extends: debug\n    profiles: !reset []\n`;
    expect(errorOf(() => loadCompose([{ path: 'compose.yml', text: extended }], { project: 'p', environment: 'e', variables: {} }))).toMatchObject({ code: 'unsupported', line: 7 });
  });

  it('every service in a profile the environment does not enable is refused at its profiles, as docker compose refuses (no service selected); no services at all still plans (a teardown)', () => {
    const load = (text: string, profiles?: string[]) => loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'e', variables: {}, ...(profiles ? { profiles } : {}) });
    const all = 'services:\n  web:\n    image: nginx\n    profiles: [default]\n  db:\n    image: postgres\n    profiles: [default, db]\n';
    expect(errorOf(() => load(all))).toMatchObject({ code: 'no_service', line: 4, message: expect.stringContaining('every service is in a profile this environment does not enable (db, default)') });
    expect(load(all, ['db']).services.map((s) => s.spec.name)).toEqual(['db']);
    expect(load('services: {}\n').services).toEqual([]);
  });

  it('an included file interpolates with the .env next to it, below the including side (its .env, berth.yml variables), as docker compose does', async () => {
    const files = {
      'deploy/compose.yml': 'include:\n  - ../db/db.yml\nservices:\n  web:\n    image: nginx:${WEB_TAG:-1}\n    depends_on: [db]\n',
      'db/db.yml': 'services:\n  db:\n    image: postgres:${PGV:-15}\n    environment: {OWN: "${OWN}", PARENT: "${WEB_TAG:-none}"}\n',
      'db/.env': 'PGV=16\nOWN=from-db-env\nWEB_TAG=from-db-env\n',
    };
    const db = async (extra: Record<string, string> = {}, cfgExtra = '') =>
      (await loadEnvironment(repo({ ...files, ...extra }, cfg(cfgExtra)), 'e')).desired.services.map((s) => s.spec).find((s) => s.name === 'db')!;
    // the included file's own .env fills what the including side leaves unset
    expect([(await db()).image, (await db()).environment]).toEqual(['docker.io/library/postgres:16', { OWN: 'from-db-env', PARENT: 'from-db-env' }]);
    // the including file's .env and berth.yml variables win over it
    expect((await db({ 'deploy/.env': 'PGV=14\n' })).image).toBe('docker.io/library/postgres:14');
    expect((await db({ 'deploy/.env': 'PGV=14\n' }, '    variables: {PGV: "13"}\n')).image).toBe('docker.io/library/postgres:13');
    // and the including file itself never reads the included file's .env
    const web = (await loadEnvironment(repo(files, cfg()), 'e')).desired.services.find((s) => s.spec.name === 'web')!.spec;
    expect(web.image).toBe('docker.io/library/nginx:1');
    // a bad line in it is located in it
    await expect(loadEnvironment(repo({ ...files, 'db/.env': 'PGV=16\nnot a line\n' }, cfg()), 'e')).rejects.toMatchObject({ file: 'db/.env', line: 2 });
  });

  // zabbix-docker: `env_file: ${ENV_VARS_DIRECTORY}/.env_db_mysql` and `extends: {file: …}` with the
  // directory set in the .env. The files named that way must be found (and read at the PR head) too.
  it('paths of env_file, extends.file and include interpolate with the .env, as the rest of the file does (zabbix-docker)', async () => {
    const files = {
      'deploy/.env': 'ENV_DIR=./env_vars\nPARTS=parts\n',
      'deploy/env_vars/.env_db': 'DB_NAME=zabbix\n',
      'deploy/parts/base.yml': 'services:\n  base: {image: busybox, environment: {FROM_BASE: "1"}}\n',
      'deploy/parts/db.yml': 'services:\n  db:\n    image: postgres\n    env_file: ${SUB:-sub}/db.env\n',
      'deploy/parts/.env': 'SUB=inner\n',
      'deploy/parts/inner/db.env': 'INNER=yes\n',
      'deploy/compose.yml': [
        'include:',
        '  - ${PARTS}/db.yml',
        'services:',
        '  web:',
        '    image: nginx',
        '    env_file: ${ENV_DIR}/.env_db',
        '  job:',
        '    extends: {file: "${PARTS}/base.yml", service: base}',
        '',
      ].join('\n'),
    };
    const spec = (d: DesiredState, name: string) => d.services.find((s) => s.spec.name === name)!.spec;
    const { desired } = await loadEnvironment(repo(files, cfg()), 'e');
    expect(spec(desired, 'web').environment).toEqual({ DB_NAME: 'zabbix' });
    expect(spec(desired, 'job').environment).toEqual({ FROM_BASE: '1' });
    // the included file's paths take the .env next to it
    expect(spec(desired, 'db').environment).toEqual({ INNER: 'yes' });
    // berth.yml variables still win over the .env
    await expect(loadEnvironment(repo(files, cfg('    variables: {ENV_DIR: elsewhere}\n')), 'e')).rejects.toMatchObject({ code: 'missing_file', file: 'deploy/compose.yml', line: 6 });
    // the app reads them at the PR head through GitHub: each file once, only paths the head has
    const reads: string[] = [];
    const viaGitHub = await viaApp(files, cfg(), reads);
    expect(spec(viaGitHub, 'web').environment).toEqual({ DB_NAME: 'zabbix' });
    expect(spec(viaGitHub, 'db').environment).toEqual({ INNER: 'yes' });
    expect(reads.sort()).toEqual(Object.keys(files).map((p) => `${p}@head1`).sort());
  });

  // docker compose resolves every relative path of the files it is given after merging them, from the first
  // file's directory (trigger.dev's webapp/docker-compose.yml + ../docker-compose.traefik.yml is such a pair)
  it('an override file in another directory: its env_file, include and extends.file resolve from the first file\'s directory, as its binds do', async () => {
    const files = {
      'a/compose.yml': 'services:\n  s: {image: nginx}\n',
      'a/e.env': 'A=from-a\n',
      'b/e.env': 'A=from-b\n',
      'a/parts/db.yml': 'services:\n  db:\n    image: postgres\n    env_file: db.env\n',
      'a/parts/db.env': 'DB=own-dir\n',
      'a/base.yml': 'services:\n  base: {image: busybox, environment: {BASE: a}}\n',
      'b/over.yml': 'include: [parts/db.yml]\nservices:\n  s:\n    env_file: e.env\n    volumes: [./data:/data]\n  job:\n    extends: {file: base.yml, service: base}\n',
    };
    const config = 'project: p\nenvironments:\n  - name: e\n    compose: [a/compose.yml, b/over.yml]\npolicy:\n  bind_mount_allowlist: [{path: a, writable: true}]\n';
    const read = repo(files, config);
    const { desired } = await loadEnvironment(read, 'e');
    const spec = (name: string) => desired.services.find((x) => x.spec.name === name)!.spec;
    expect(spec('s').environment).toEqual({ A: 'from-a' });
    expect(spec('s').volumes[0]!.source).toBe(join(read.root!, 'a/data'));
    // an included file's own paths stay its own
    expect(spec('db').environment).toEqual({ DB: 'own-dir' });
    expect(spec('job').environment).toEqual({ BASE: 'a' });
    // the app reads the same files at the PR head (and, with no checkout on the target, keeps a repository path
    // the commit does not hold in a volume: compose would create it on the host, for data)
    const viaGitHub = (over: string) => viaApp({ ...files, 'b/over.yml': over }, config);
    const app = await viaGitHub(files['b/over.yml'].replace('    volumes: [./data:/data]\n', ''));
    expect(app.services.find((x) => x.spec.name === 's')!.spec.environment).toEqual({ A: 'from-a' });
    expect(app.services.find((x) => x.spec.name === 'db')!.spec.environment).toEqual({ DB: 'own-dir' });
    const kept = await viaGitHub(files['b/over.yml']);
    expect(kept.services.find((x) => x.spec.name === 's')!.spec.volumes).toEqual([{ type: 'volume', source: 'a_data', target: '/data', readOnly: false, noCopy: true }]);
    expect(kept.volumes.map((v) => v.spec.name)).toEqual(['a_data']);
    // …and copies one it holds, from the first file's directory as docker compose binds it
    const copied = await viaApp({ ...files, 'a/data/seed.sql': 'select 1;\n' }, config);
    expect(copied.services.find((x) => x.spec.name === 's')!.spec.files).toMatchObject([{ kind: 'file', source: 'a/data/seed.sql', target: '/data/seed.sql' }]);
  });

  it('the app copies a bound repository file or directory into the container (its bytes at the head, its git mode); absolute host paths go to the policy', async () => {
    const files: Record<string, string> = {
      'deploy/compose.yml': svc(
        'image: nginx\nvolumes:\n  - /srv/shop/static:/static:ro\n  - type: bind\n    source: ./nginx.conf\n    target: /etc/nginx/nginx.conf\n    read_only: true\n  - ./html:/usr/share/nginx/html\n  - ./40-hello.sh:/docker-entrypoint.d/40-hello.sh:ro\n  - cache:/var/cache/nginx',
        'volumes:\n  cache: {}\n',
      ),
      'deploy/nginx.conf': 'events {}\n',
      'deploy/html/index.html': '<h1>hi</h1>\n',
      'deploy/html/css/site.css': 'h1 { color: red }\n',
      'deploy/html-old/index.html': 'not under html/\n',
      'deploy/40-hello.sh': '#!/bin/sh\necho hello\n',
    };
    const reads: string[] = [];
    const listing = new TreeListing(new Map(Object.keys(files).map((p) => [p, `blob-${p}`])), new Map([['deploy/40-hello.sh', '100755']]));
    const desired = await viaApp(files, cfg('policy:\n  bind_mount_allowlist: [/srv/shop]\n'), reads, listing);
    const spec = web(desired);
    // the binds of repository paths are gone from the mounts: what reaches the container is the copy
    expect(spec.volumes.map((v) => `${v.type} ${v.source}:${v.target}`)).toEqual(['bind /srv/shop/static:/static', 'volume cache:/var/cache/nginx']);
    expect(spec.files).toEqual([
      { kind: 'file', source: 'deploy/40-hello.sh', target: '/docker-entrypoint.d/40-hello.sh', mode: 0o555, digest: sha256(files['deploy/40-hello.sh']!) },
      { kind: 'file', source: 'deploy/nginx.conf', target: '/etc/nginx/nginx.conf', mode: 0o444, digest: sha256(files['deploy/nginx.conf']!) },
      { kind: 'file', source: 'deploy/html/css/site.css', target: '/usr/share/nginx/html/css/site.css', mode: 0o644, digest: sha256(files['deploy/html/css/site.css']!) },
      { kind: 'file', source: 'deploy/html/index.html', target: '/usr/share/nginx/html/index.html', mode: 0o644, digest: sha256(files['deploy/html/index.html']!) },
    ]);
    // kept byte for byte (base64: a copied file need not be text)
    const b64 = (t: string) => Buffer.from(t).toString('base64');
    expect(desired.contents).toEqual({
      'file:deploy/nginx.conf': b64('events {}\n'),
      'file:deploy/html/index.html': b64('<h1>hi</h1>\n'),
      'file:deploy/html/css/site.css': b64('h1 { color: red }\n'),
      'file:deploy/40-hello.sh': b64('#!/bin/sh\necho hello\n'),
    });
    expect(reads.filter((r) => !r.startsWith('deploy/compose.yml')).sort()).toEqual(['deploy/40-hello.sh@head1 (bytes)', 'deploy/html/css/site.css@head1 (bytes)', 'deploy/html/index.html@head1 (bytes)', 'deploy/nginx.conf@head1 (bytes)']);
    expect(desired.notes).toContainEqual(
      'service web: copied from the repository at this commit into the container before it starts (the app has no checkout on the target to bind): ./nginx.conf → /etc/nginx/nginx.conf, ./html → /usr/share/nginx/html (2 files, added to what the image has there), ./40-hello.sh → /docker-entrypoint.d/40-hello.sh; what the container writes there is not kept when it is recreated',
    );
    // the plan's diff lists the copies (path, target, mode)
    const md = renderPlanMarkdown(reconcile(desired, emptyObserved('p', 'e')), { environment: 'e', target: 'local', headSha: 'abc1234' });
    expect(md).toContain('+ copied: deploy/nginx.conf → /etc/nginx/nginx.conf (0444)\n');
    expect(md).toContain('+ copied: deploy/40-hello.sh → /docker-entrypoint.d/40-hello.sh (0555)\n');
    // the container is created without them as mounts; the executor puts them in before the start (executor.ts)
    expect(create(spec).HostConfig.Binds).toEqual(['/srv/shop/static:/static:ro']);
    // a changed file is a changed config hash, and the plan says which file
    const changed = await viaApp({ ...files, 'deploy/html/index.html': '<h1>bye</h1>\n' }, cfg('policy:\n  bind_mount_allowlist: [/srv/shop]\n'), [], listing);
    expect(web(changed).files).not.toEqual(spec.files);
    expect(hashOf(changed)).not.toBe(hashOf(desired));
    // from a checkout (the CLI), the same files are bind-mounted, as docker compose does
    const read = repo(files, cfg('policy:\n  bind_mount_allowlist: [/srv/shop, deploy]\n'));
    const local = web((await loadEnvironment(read, 'e')).desired);
    expect(local.volumes.filter((v) => v.type === 'bind').map((v) => v.source).sort()).toEqual(['/srv/shop/static', join(read.root!, 'deploy/40-hello.sh'), join(read.root!, 'deploy/html'), join(read.root!, 'deploy/nginx.conf')].sort());
    expect(local.files).toBeUndefined();
  });

  it('the app refuses, at its line, a bound repository path it cannot copy faithfully', async () => {
    const base = { 'deploy/nginx.conf': 'events {}\n', 'deploy/data/.gitkeep': '', 'deploy/link.conf': 'nginx.conf', 'deploy/blob.bin': 'PNG\uFFFD\uFFFD' };
    const bind = (entry: string) => ({ ...base, 'deploy/compose.yml': svc(`image: nginx\nvolumes:\n  - ${entry}`) });
    const listing = (files: Record<string, string>) => new TreeListing(new Map(Object.keys(files).map((p) => [p, `b-${p}`])), new Map([['deploy/link.conf', '120000']]));
    const refusal = async (entry: string, extra = '') => {
      const files = bind(entry);
      return viaApp(files, cfg(extra), [], listing(files)).then(
        () => undefined,
        (e: unknown) => e as { code: string; line: number; message: string; hint: string },
      );
    };
    // not in the repository, read-only (a directory not committed, which the container could not fill either)
    expect(await refusal('./pgdata:/var/lib/postgresql/data:ro')).toMatchObject({ code: 'repository_bind_missing', line: 5, hint: expect.stringContaining('named volume') });
    // not in the repository and named like a file: a file not committed (compose would make a directory of it)
    expect(await refusal('./nginx.local.conf:/etc/nginx/nginx.conf')).toMatchObject({ code: 'repository_bind_missing', line: 5, message: expect.stringContaining("its name is a file's"), hint: 'commit the file, or fix the path; for data, keep data in a named volume (volumes: [data:/path] under the service, and data: under the top-level volumes:)' });
    // a file a typo away from one the directory holds (FreshRSS binds traefik/tls.yaml, the repository holds tls.yml)
    expect(await refusal('./nginx.cnf:/etc/nginx/nginx.conf:ro')).toMatchObject({ code: 'repository_bind_missing', line: 5, hint: 'did you mean deploy/nginx.conf? commit the file, or fix the path' });
    expect(await refusal('../../outside:/run/x')).toMatchObject({ code: 'repository_bind', line: 5, message: expect.stringContaining('leaves the repository') });
    expect(await refusal('./link.conf:/etc/nginx/nginx.conf')).toMatchObject({ code: 'repository_bind', line: 5, message: expect.stringContaining('is a symbolic link') });
    // not text: copied byte for byte all the same (a favicon, a GeoIP database)
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0x00, 0xfe]);
    const withPng = bind('./blob.bin:/x');
    const copiedPng = await viaApp(withPng, cfg(), [], listing(withPng), { 'deploy/blob.bin': png });
    expect(web(copiedPng).files).toMatchObject([{ source: 'deploy/blob.bin', digest: sha256(png) }]);
    expect(Buffer.from(copiedPng.contents!['file:deploy/blob.bin']!, 'base64').equals(png)).toBe(true);
    // a config and a copied file at one target
    const both = { ...base, 'deploy/compose.yml': svc('image: nginx\nvolumes:\n  - ./nginx.conf:/etc/nginx/nginx.conf\nconfigs:\n  - source: c\n    target: /etc/nginx/nginx.conf', 'configs:\n  c: {content: "events {}"}\n') };
    expect(await viaApp(both, cfg(), [], listing(both)).catch((e: unknown) => e)).toMatchObject({ code: 'duplicate_target', line: 7, message: expect.stringContaining('deploy/nginx.conf, copied from the repository by a bind mount, lands at /etc/nginx/nginx.conf') });
    // a listing (GitHub's word) naming a path that climbs out of the directory is refused, never followed
    const climbing = { ...bind('./html:/usr/share/nginx/html'), 'deploy/html/../../../etc/passwd': 'root:x:0:0\n' };
    expect(await viaApp(climbing, cfg(), [], listing(climbing)).catch((e: unknown) => e)).toMatchObject({ code: 'repository_bind', line: 5, message: expect.stringContaining('unusable path') });
    // GitHub cut the listing short: a file is read, a directory cannot be listed
    const files = bind('./html:/usr/share/nginx/html');
    const partial = await viaApp({ ...files, 'deploy/html/index.html': 'x' }, cfg(), [], new PartialListing(['deploy/compose.yml'])).catch((e: unknown) => e);
    expect(partial).toMatchObject({ code: 'repository_bind_missing', line: 5, message: expect.stringContaining('GitHub listed the repository only in part') });
    const single = await viaApp(bind('./nginx.conf:/etc/nginx/nginx.conf'), cfg(), [], new PartialListing(['deploy/compose.yml']));
    expect(web(single).files).toMatchObject([{ kind: 'file', source: 'deploy/nginx.conf', mode: 0o644 }]);
  });

  it('a writable bind of a directory the commit does not hold (or holds only a .gitkeep of) is kept in a volume of the environment, as docker compose keeps data in the directory it creates', async () => {
    const files = {
      'deploy/data/.gitkeep': '',
      'deploy/compose.yml': [
        'services:',
        '  db:',
        '    image: postgres',
        '    volumes: ["./pgdata:/var/lib/postgresql/data", "./data:/var/lib/mysql:z"]',
        '  backup:',
        '    image: busybox',
        '    volumes: ["./pgdata/:/backup/src:ro", "./dumps/:/dumps", "./meili_data_v1.35.1:/meili"]',
        '',
      ].join('\n'),
    };
    const d = await viaApp(files, cfg());
    const db = d.services.find((s) => s.spec.name === 'db')!.spec;
    expect(db.volumes).toEqual([
      { type: 'volume', source: 'deploy_data', target: '/var/lib/mysql', readOnly: false, noCopy: true },
      { type: 'volume', source: 'deploy_pgdata', target: '/var/lib/postgresql/data', readOnly: false, noCopy: true },
    ]);
    // the same path is the same volume, as it would be the same host directory
    // (read-only too, when a service writes it: one container writes certificates, others read them); a
    // version-numbered directory is a directory, not a file named `….1`
    expect(d.services.find((s) => s.spec.name === 'backup')!.spec.volumes.map((v) => `${v.source}:${v.target}${v.readOnly ? ':ro' : ''}`).sort()).toEqual(['deploy_dumps:/dumps', 'deploy_meili_data_v1.35.1:/meili', 'deploy_pgdata:/backup/src:ro']);
    expect(d.volumes.map((v) => v.spec.name).sort()).toEqual(['deploy_data', 'deploy_dumps', 'deploy_meili_data_v1.35.1', 'deploy_pgdata']);
    expect(db.files).toBeUndefined();
    expect(d.notes!.join('\n')).toContain('service db: ./pgdata → volume deploy_pgdata at /var/lib/postgresql/data, ./data → volume deploy_data at /var/lib/mysql: directories the repository does not hold at this commit');
    // the plan creates the volumes (never removed by berth) and mounts them without the image's content
    const plan = reconcile(d, { project: 'p', environment: 'e', containers: [], networks: [], volumes: [] });
    expect(plan.nodes.filter((n) => n.kind === 'CreateVolume').map((n) => n.target.volume).sort()).toEqual(['deploy_data', 'deploy_dumps', 'deploy_meili_data_v1.35.1', 'deploy_pgdata']);
    const created = create(db);
    expect(created.HostConfig.Mounts).toContainEqual({ Type: 'volume', Target: '/var/lib/postgresql/data', ReadOnly: false, Source: 'p-e_deploy_pgdata', VolumeOptions: { NoCopy: true } });
    // one inside another would not nest as host directories do; a declared volume of that name is not taken over
    const nested = { 'deploy/compose.yml': svc('image: nginx\nvolumes: ["./data:/data", "./data/cache:/cache"]') };
    expect(await viaApp(nested, cfg()).catch((e: unknown) => e)).toMatchObject({ code: "repository_bind_missing", line: 4, message: expect.stringContaining('one inside the other') });
    // nested across services and levels, found by each path's parents; a sibling sharing a prefix is no parent
    const deep = { 'deploy/compose.yml': 'services:\n  a:\n    image: nginx\n    volumes: ["./x/y/z/data:/d"]\n  b:\n    image: nginx\n    volumes: ["./x:/x", "./x2:/x2"]\n' };
    expect(await viaApp(deep, cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'repository_bind_missing', line: 4, message: expect.stringContaining('deploy/x/y/z/data and deploy/x are both directories') });
    const siblings = { 'deploy/compose.yml': 'services:\n  a:\n    image: nginx\n    volumes: ["./data:/d", "./data2:/d2", "./data-old/x:/d3"]\n' };
    expect((await viaApp(siblings, cfg())).volumes.map((v) => v.spec.name).sort()).toEqual(['deploy_data', 'deploy_data-old_x', 'deploy_data2']);
    const declared = { 'deploy/compose.yml': svc('image: nginx\nvolumes: ["./pgdata:/data"]', 'volumes:\n  deploy_pgdata: {}\n') };
    expect(await viaApp(declared, cfg()).catch((e: unknown) => e)).toMatchObject({ code: "repository_bind_missing", line: 4, message: expect.stringContaining('is already declared under volumes:') });
  });

  it('build_image names what a service with build: and no image: deploys: the commit planned ({sha}) in the app and in the CLI\'s checkout', async () => {
    const files = { 'deploy/compose.yml': 'services:\n  server:\n    build: .\n  worker:\n    build: ./w\n    image: ghcr.io/acme/w:1\n' };
    const config = cfg('    build_image: ghcr.io/acme/{project}-{service}:{sha}\n');
    const app = await viaApp(files, config);
    expect(app.services.map((x) => x.spec.image)).toEqual(['ghcr.io/acme/p-server:head1', 'ghcr.io/acme/w:1']);
    expect(app.notes!.join('\n')).toContain('service server has build: (deploy/compose.yml:3); berth does not build images, it deploys ghcr.io/acme/p-server:head1');
    // the CLI: the checkout's commit; no checkout, no {sha}
    const dir = repo(files, config);
    expect(await loadEnvironment(dir, 'e').catch((e: unknown) => e)).toMatchObject({ code: 'missing_image', line: 3, message: expect.stringContaining('build_image names {sha}, which this load has no commit for') });
    const git = (...args: string[]) => execFileSync('git', ['-C', dir.root!, '-c', 'user.email=t@t', '-c', 'user.name=t', ...args], { encoding: 'utf8' }).trim();
    git('init', '-q');
    git('add', '.');
    git('commit', '-qm', 'x');
    const head = git('rev-parse', 'HEAD');
    expect((await loadEnvironment(dir, 'e')).desired.services[0]!.spec.image).toBe(`ghcr.io/acme/p-server:${head}`);
    // {environment} and {project} need no commit; without build_image build: alone is refused as before
    expect((await viaApp(files, cfg('    build_image: ghcr.io/acme/{service}:{environment}\n'))).services[0]!.spec.image).toBe('ghcr.io/acme/server:e');
    expect(await viaApp(files, cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'missing_image', line: 3 });
    // the policy judges the image it makes, as any other
    const denied = await viaApp(files, cfg('    build_image: 10.0.0.5:5000/{service}:{sha}\n')).catch((e: unknown) => e);
    expect(denied).toMatchObject({ code: 'policy_denied', line: 3 });
    expect(() => parseConfig(cfg('    build_image: ghcr.io/acme/{service}:${TAG}\n'), '.github/berth.yml')).toThrow(/build_image.*only \{service\}, \{project\}, \{environment\} and \{sha\}/s);
  });

  it('a secret read from a file takes the environment\'s secret of the same name in its place; the file is never read', async () => {
    const files = { 'deploy/compose.yml': svc('image: nginx\nsecrets: [db_password, other]', 'secrets:\n  db_password:\n    file: ./secrets/db_password.txt\n  other:\n    file: ./secrets/other.txt\n'), 'deploy/secrets/db_password.txt': 'from-the-repo' };
    const reads: string[] = [];
    const refused = await viaApp(files, cfg('    variables: {db_password: "s3cret-from-berth"}\n'), reads).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'secret_in_repository', line: 9, message: expect.stringContaining('secret other reads a file from the repository') });
    const d = await viaApp({ ...files, 'deploy/compose.yml': svc('image: nginx\nsecrets: [db_password]', 'secrets:\n  db_password:\n    file: ./secrets/db_password.txt\n') }, cfg('    variables: {db_password: "s3cret-from-berth"}\n'), reads);
    expect(d.contents!['secret:db_password']).toBe('s3cret-from-berth');
    expect(web(d).files).toMatchObject([{ kind: 'secret', source: 'db_password', target: '/run/secrets/db_password' }]);
    expect(d.notes!.join('\n')).toContain("secret db_password: its file: (deploy/compose.yml:7) is not read, as secrets never live in the repository; the environment's secret db_password takes its place");
    expect(reads.filter((r) => r.includes('secrets/'))).toEqual([]);
  });

  it('copies as docker compose mounts: a deeper bind wins its files, a mount inside a copied directory hides that part, files counted once per environment', async () => {
    const tree = (files: Record<string, string>) => new TreeListing(new Map(Object.keys(files).map((p) => [p, `b-${p}`])));
    const files: Record<string, string> = {
      'deploy/compose.yml': [
        'x-app: &app',
        '  image: nginx',
        '  volumes: [./conf:/etc/app]',
        'services:',
        ...Array.from({ length: 30 }, (_, i) => `  s${i}: *app`),
        '  web:',
        '    image: nginx',
        '    volumes:',
        '      - ./other.conf:/etc/nginx/conf.d/default.conf',
        '      - ./nginx:/etc/nginx/conf.d',
        '      - ./html:/var/www/html',
        '      - uploads:/var/www/html/uploads',
        '      - ./certs:/usr/local/share/ca-certificates:ro',
        'volumes:',
        '  uploads: {}',
        '',
      ].join('\n'),
      ...Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`deploy/conf/c${i}.conf`, `c${i}\n`])),
      'deploy/other.conf': 'other\n',
      'deploy/nginx/default.conf': 'default\n',
      'deploy/nginx/api.conf': 'api\n',
      'deploy/html/index.html': 'hi\n',
      'deploy/html/uploads/README': 'user uploads land here\n',
      // sentry's certificates/: only a .gitignore, mounted read-only (the operator's certificates would go there)
      'deploy/certs/.gitignore': '*\n!.gitignore\n',
    };
    const d = await viaApp(files, cfg(), [], tree(files));
    // 30 services copy the same 5 files: 5 files of the repository, not 150
    expect(d.services.find((x) => x.spec.name === 's29')!.spec.files!.map((f) => f.target)).toEqual(['/etc/app/c0.conf', '/etc/app/c1.conf', '/etc/app/c2.conf', '/etc/app/c3.conf', '/etc/app/c4.conf']);
    expect(web(d).files!.map((f) => `${f.source} → ${f.target} ${f.mode.toString(8)}`)).toEqual([
      'deploy/nginx/api.conf → /etc/nginx/conf.d/api.conf 644',
      'deploy/other.conf → /etc/nginx/conf.d/default.conf 644',
      'deploy/certs/.gitignore → /usr/local/share/ca-certificates/.gitignore 444',
      'deploy/html/index.html → /var/www/html/index.html 644',
    ]);
    expect(web(d).volumes.map((v) => `${v.source}:${v.target}`)).toEqual(['uploads:/var/www/html/uploads']);
  });

  it('a copy that would land inside another mount, or of a submodule, is refused at its line', async () => {
    const files: Record<string, string> = {
      'deploy/compose.yml': svc('image: wordpress\nvolumes:\n  - wp:/var/www/html\n  - ./uploads.ini:/var/www/html/uploads.ini', 'volumes:\n  wp: {}\n'),
      'deploy/uploads.ini': 'upload_max_filesize = 64M\n',
    };
    // the service's own writable volume around it is written into, and the plan says so (grafana's dashboards under its data volume)
    const into = await viaApp(files, cfg());
    expect(web(into).files).toMatchObject([{ source: 'deploy/uploads.ini', target: '/var/www/html/uploads.ini' }]);
    expect(into.notes!.join('\n')).toContain('./uploads.ini → /var/www/html/uploads.ini; written into volume wp (mounted at /var/www/html) at each create, where docker compose would mount it on top');
    // read-only, the upload would fail: refused
    const ro = { ...files, 'deploy/compose.yml': files['deploy/compose.yml']!.replace('wp:/var/www/html\n', 'wp:/var/www/html:ro\n') };
    expect(await viaApp(ro, cfg()).catch((e: unknown) => e)).toMatchObject({
      code: 'repository_bind',
      line: 6,
      message: expect.stringContaining('lies inside the read-only volume wp mounted at /var/www/html'),
      hint: 'give the file a target outside /var/www/html',
    });
    // a missing file is said first, whatever mount it lies in (wazuh's certificates)
    const missing = { 'deploy/compose.yml': files['deploy/compose.yml']!.replace('wp:/var/www/html\n', 'wp:/var/www/html:ro\n') };
    expect(await viaApp(missing, cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'repository_bind_missing', line: 6 });
    // a tmpfs: (mounted at the start, over what was copied there at the create)
    const tmp = { ...files, 'deploy/compose.yml': svc('image: nginx\ntmpfs: [/run]\nvolumes:\n  - ./uploads.ini:/run/php/uploads.ini') };
    expect(await viaApp(tmp, cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'repository_bind', line: 6, message: expect.stringContaining('lies inside the tmpfs mounted at /run') });
    // volumes_from: the mounts of a service of the project are known (a copy into them is refused); another container's are not
    const shared = (from: string) => ({
      ...files,
      'deploy/compose.yml': `services:\n  data:\n    image: busybox\n    volumes: [wp:/var/www]\n  web:\n    image: nginx\n    volumes_from: [${from}]\n    volumes: [./uploads.ini:/var/www/uploads.ini]\nvolumes:\n  wp: {}\n`,
    });
    expect(await viaApp(shared('data'), cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'repository_bind', line: 8, message: expect.stringContaining('lies inside the volume wp that volumes_from gives it mounted at /var/www') });
    expect(await viaApp(shared('container:legacy'), cfg('policy:\n  allow_container_namespaces: [legacy]\n')).catch((e: unknown) => e)).toMatchObject({
      code: 'repository_bind',
      line: 7,
      message: expect.stringContaining('cannot be combined with volumes_from: container:legacy'),
    });
    // volumes_from (or tmpfs:) at the copy's very target: a file untarred over a mount point empties it
    const sameTarget = { ...files, 'deploy/compose.yml': 'services:\n  a:\n    image: busybox\n    volumes: [data:/data]\n  web:\n    image: nginx\n    volumes_from: [a]\n    volumes: [./uploads.ini:/data]\nvolumes:\n  data: {}\n' };
    expect(await viaApp(sameTarget, cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'repository_bind', line: 8, message: expect.stringContaining('lies at the volume data that volumes_from gives it mounted at /data') });
    const tmpSame = { ...files, 'deploy/compose.yml': svc('image: nginx\ntmpfs: [/data/]\nvolumes:\n  - ./uploads.ini:/data/php.ini') };
    expect(await viaApp(tmpSame, cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'repository_bind', message: expect.stringContaining('lies inside the tmpfs mounted at /data') });
    // nothing goes over the container's root; a file where another file needs a directory cannot be uploaded
    expect(await viaApp({ ...files, 'deploy/compose.yml': svc('image: nginx\nvolumes:\n  - ./uploads.ini:/') }, cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'repository_bind', line: 5, message: expect.stringContaining('at /: nothing can be mounted') });
    const overSecrets = { ...files, 'deploy/compose.yml': svc('image: nginx\nvolumes:\n  - ./uploads.ini:/run/secrets\nconfigs: [c]', 'configs:\n  c: {content: x}\n') };
    const parentOf = await viaApp({ ...overSecrets, 'deploy/compose.yml': overSecrets['deploy/compose.yml']!.replace('configs: [c]', 'configs: [{source: c, target: /run/secrets/c}]') }, cfg()).catch((e: unknown) => e);
    expect(parentOf).toMatchObject({ code: 'duplicate_target', message: expect.stringContaining('a file lands at /run/secrets, and another at /run/secrets/c') });
    // …and a service taking the mounts of one whose binds are copies would not see the files
    const fpm = { ...files, 'deploy/compose.yml': 'services:\n  web:\n    image: nginx\n    volumes: [./uploads.ini:/etc/php/uploads.ini]\n  php:\n    image: php\n    volumes_from: [web]\n' };
    expect(await viaApp(fpm, cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'repository_bind', line: 7, message: expect.stringContaining("shares web's mounts, but web's binds of repository paths are copies") });
    const sub = { 'deploy/compose.yml': svc('image: nginx\nvolumes:\n  - ./themes/dark:/usr/share/nginx/html') };
    const listing = new TreeListing(new Map([['deploy/compose.yml', 'b']]), new Map([['deploy/themes/dark', '160000']]));
    expect(await viaApp(sub, cfg(), [], listing).catch((e: unknown) => e)).toMatchObject({ code: 'repository_bind', line: 5, message: expect.stringContaining('is a git submodule') });
  });

  it('what is uploaded is bounded, not only what is read: one file bound at many targets, services and replicas', async () => {
    const mb = 'x'.repeat(1024 * 1024 - 1) + '\n';
    const manyTargets = (n: number, services = 1, replicas = 1) => ({
      'deploy/big.bin': mb,
      'deploy/compose.yml':
        'services:\n' +
        Array.from({ length: services }, (_, k) => `  s${k}:\n    image: nginx\n    deploy: {replicas: ${replicas}}\n    volumes:\n${Array.from({ length: n }, (_, i) => `      - ./big.bin:/t/${i}`).join('\n')}\n`).join(''),
    });
    // one container: 9 copies of a 1 MiB file is more than 8 MiB in it
    expect(await viaApp(manyTargets(9), cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'too_large', message: expect.stringContaining('service s0: the files copied into its container from the repository are more than 8388608 bytes') });
    // every container of the environment: 33 services × 8 MiB (or fewer services, more replicas) is more than 256 MiB
    expect(await viaApp(manyTargets(8, 33), cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'too_large', message: expect.stringContaining('(every service and replica) are more than') });
    expect(await viaApp(manyTargets(8, 2, 17), cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'too_large', message: expect.stringContaining('(every service and replica)') });
    expect((await viaApp(manyTargets(8, 2, 16), cfg())).services).toHaveLength(2);
    // and copies per container
    const tiny = { 'deploy/a.txt': 'a', 'deploy/compose.yml': svc(`image: nginx\nvolumes:\n${Array.from({ length: 257 }, (_, i) => `  - ./a.txt:/t/${i}`).join('\n')}`) };
    expect(await viaApp(tiny, cfg()).catch((e: unknown) => e)).toMatchObject({ code: 'too_large', message: expect.stringContaining('257 files into its container, more than 256') });
    // within the bounds it loads
    expect(web(await viaApp({ ...tiny, 'deploy/compose.yml': tiny['deploy/compose.yml'].replace('  - ./a.txt:/t/256\n', '').replace(/\n  - \.\/a\.txt:\/t\/256$/, '') }, cfg())).files).toHaveLength(256);
  });

  it('a GitHub failure reading a file the compose file names is the plan\'s error, never a missing file; so is a file over what berth reads', async () => {
    const files = { 'deploy/compose.yml': svc('image: nginx\nenv_file: app.env'), 'deploy/app.env': 'A=1\n' };
    const failing = (err: Error) =>
      ({
        readFile: async (_r: unknown, path: string) => {
          if (path === 'deploy/app.env') throw err;
          return files[path as keyof typeof files];
        },
      }) as unknown as GitHubPort;
    const parsed = parseConfig(cfg(), '.github/berth.yml');
    const load = (gh: GitHubPort) => new Bot({} as BotOptions).desiredAt(gh, { owner: 'acme', name: 'shop' }, parsed, parsed.environments[0]!, 'head1', new Set(Object.keys(files))).catch((e: unknown) => e);
    expect(await load(failing(Object.assign(new Error('Server Error'), { status: 502 })))).toMatchObject({ status: 502, message: 'Server Error' });
    expect(await load(failing(new ComposeError('too_large', 'file is 5000000 bytes, more than the 1048576 bytes berth reads', { file: 'deploy/app.env' })))).toMatchObject({ code: 'too_large', file: 'deploy/app.env' });
  });

  it('what the desired state carries is bounded before it is read: the listing\'s sizes refuse copies and configs\' files at their line, with no read made', async () => {
    const sized = (files: Record<string, string>, sizes: Record<string, number>) => new TreeListing(new Map(Object.keys(files).map((p) => [p, `b-${p}`])), new Map(), new Map(Object.entries(sizes)));
    const html = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`deploy/html/${i}.jpg`, 'x']));
    const dir = { ...html, 'deploy/compose.yml': svc('image: nginx\nvolumes:\n  - ./html:/usr/share/nginx/html:ro') };
    // nine files the listing says are 1,000,000 bytes each: over 8 MiB together, refused before any of them is read
    const reads: string[] = [];
    const nine = await viaApp(dir, cfg(), reads, sized(dir, Object.fromEntries(Object.keys(html).map((p) => [p, 1_000_000])))).catch((e: unknown) => e);
    expect(nine).toMatchObject({ code: 'too_large', line: 5, message: expect.stringContaining('are more than 8388608 bytes together (deploy/html/8.jpg, copied into service web, makes 9000000)') });
    expect(reads.filter((r) => r.endsWith('(bytes)'))).toEqual([]);
    // one file over what berth reads of a file (GitHub serves content up to 1 MB): named, at its line, not read
    const one: string[] = [];
    const big = await viaApp(dir, cfg(), one, sized(dir, { 'deploy/html/3.jpg': 3 * 1024 * 1024 })).catch((e: unknown) => e);
    expect(big).toMatchObject({ code: 'too_large', line: 5, message: expect.stringContaining('deploy/html/3.jpg (copied into service web) is 3145728 bytes, more than the 1048576 bytes berth reads of one repository file') });
    expect(one.filter((r) => r.endsWith('(bytes)'))).toEqual([]);
    // configs' files count with the copies: five 1 MB configs, then four 1 MB copies (the last at line 8 goes over)
    const conf = {
      ...Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`deploy/f${i}`, 'x'])),
      'deploy/compose.yml': svc(
        `image: nginx\nvolumes:\n${[0, 1, 2, 3].map((i) => `  - ./f${i}:/copy/${i}`).join('\n')}\nconfigs:\n${[4, 5, 6, 7, 8].map((i) => `  - {source: c${i}, target: /conf/${i}}`).join('\n')}`,
        `configs:\n${[4, 5, 6, 7, 8].map((i) => `  c${i}: {file: ./f${i}}`).join('\n')}\n`,
      ),
    };
    const confReads: string[] = [];
    const mixed = await viaApp(conf, cfg(), confReads, sized(conf, Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`deploy/f${i}`, 1_000_000])))).catch((e: unknown) => e);
    expect(mixed).toMatchObject({ code: 'too_large', line: 8, message: expect.stringContaining('(deploy/f3, copied into service web, makes 9000000)') });
    expect(confReads.filter((r) => !r.startsWith('deploy/compose.yml') && !r.startsWith('deploy/.env'))).toEqual([]);
    // within the bounds (sizes as listed) it loads, each file read once
    const fits = await viaApp(conf, cfg(), [], sized(conf, Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`deploy/f${i}`, 1])))).catch((e: unknown) => e);
    expect(web(fits as DesiredState).files).toHaveLength(9);
  });

  it('a bound path from a secret-looking variable is refused at its own line, the other binds copied (mattermost\'s KEY_PATH)', async () => {
    const files = {
      'deploy/compose.yml': svc('image: nginx\nvolumes:\n  - ${CONF_PATH}:/etc/nginx/conf.d:ro\n  - ${KEY_PATH}:/key.pem:ro'),
      'deploy/.env': 'CONF_PATH=./conf\nKEY_PATH=./key.pem\n',
      'deploy/conf/app.conf': 'server {}\n',
      'deploy/key.pem': '-----BEGIN PRIVATE KEY-----\n',
    };
    const err = await viaApp(files, cfg()).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'repository_bind_secret', line: 6, path: 'services.web.volumes[1]', message: expect.stringContaining('built from a secret variable cannot be copied') });
    expect((err as { hint: string }).hint).toContain('KEY_PATH');
    const ok = await viaApp({ ...files, 'deploy/compose.yml': svc('image: nginx\nvolumes:\n  - ${CONF_PATH}:/etc/nginx/conf.d:ro') }, cfg());
    expect(web(ok).files).toMatchObject([{ source: 'deploy/conf/app.conf' }]);
  });

  it('build: without image: is said as it is although a build arg uses a secret (calcom\'s DATABASE_URL)', () => {
    const err = errorOf(() => load(svc('build:\n  context: .\n  args: {DATABASE_URL: "postgres://u:${POSTGRES_PASSWORD}@db/x"}'), { variables: { POSTGRES_PASSWORD: 'pg-s3cret-value' } }));
    expect(err).toMatchObject({ code: 'missing_image', line: 3 });
    expect(err.message).toContain('has build: but no image:');
    expect(JSON.stringify(err) + err.message).not.toContain('pg-s3cret-value');
  });

  it('a bound repository path built from a secret variable is refused without quoting it', async () => {
    const files = { 'deploy/compose.yml': svc('image: nginx\nvolumes:\n  - ./${DB_PASSWORD}.conf:/etc/x.conf'), 'deploy/hunter2.conf': 'x\n' };
    const err = await viaApp(files, cfg('    variables: {DB_PASSWORD: hunter2}\n')).catch((e: unknown) => e);
    expect(err).toMatchObject({ line: 5 });
    expect(JSON.stringify(err) + String(err) + (err as Error).message).not.toContain('hunter2');
  });

  it('extends of another file takes the service alone: the file\'s other services are not checked (immich\'s hwaccel files)', async () => {
    const files = {
      'deploy/compose.yml': 'services:\n  ml:\n    image: ghcr.io/immich-app/immich-machine-learning:release\n    extends:\n      file: hwaccel.ml.yml\n      service: cpu\n',
      // openvino opens host devices (the policy denies them), rocm is build-only; neither is what ml extends
      'deploy/hwaccel.ml.yml': 'services:\n  base: {environment: {A: "1"}}\n  cpu:\n    extends: base\n    environment: {B: "2"}\n  openvino:\n    device_cgroup_rules: ["c 189:* rmw"]\n  rocm:\n    build: .\nnetworks:\n  bogus: {driver: 42}\n',
    };
    const { desired } = await loadEnvironment(repo(files, cfg()), 'e');
    expect(desired.services.map((s) => [s.spec.name, s.spec.environment])).toEqual([['ml', { A: '1', B: '2' }]]);
    // the service extended is checked, merged, as compose validates the result
    const bad = { ...files, 'deploy/compose.yml': files['deploy/compose.yml'].replace('service: cpu', 'service: openvino') };
    expect(await loadEnvironment(repo(bad, cfg()), 'e').catch((e: unknown) => e)).toMatchObject({ code: 'policy_denied', file: 'deploy/hwaccel.ml.yml', line: 7 });
  });

  // compose 2.32+: label_file (a path or a list, relative as env_file's, each required) read as env files, a later
  // file over an earlier one, labels: over them all; a ${VAR} there finds only the labels read before it.
  it('label_file: labels from repository files, merged under labels:, read as the app and the CLI read env_file', async () => {
    const files = {
      'deploy/compose.yml': 'services:\n  web:\n    image: nginx\n    label_file: [labels/base.labels, labels/web.labels]\n    labels: {com.example.tier: front}\n',
      'deploy/labels/base.labels': '# traefik\ntraefik.enable=true\ncom.example.tier=back\ncom.example.team=shop\nteam=shop\n',
      'deploy/labels/web.labels': 'traefik.http.routers.web.rule="Host(`shop.example`)"\ncom.example.team=web\nteam=web\ncom.example.owner=${team}-owners\ncom.example.env=${TAG}\n',
      'deploy/.env': 'TAG=1.27\n',
    };
    const expected = {
      'com.example.env': '',
      'com.example.owner': 'shop-owners',
      'com.example.team': 'web',
      'com.example.tier': 'front',
      team: 'web',
      'traefik.enable': 'true',
      'traefik.http.routers.web.rule': 'Host(`shop.example`)',
    };
    const reads: string[] = [];
    const viaCli = await loadEnvironment(repo(files, cfg()), 'e');
    for (const desired of [viaCli.desired, await viaApp(files, cfg(), reads)]) {
      expect(web(desired).labels).toEqual(expected);
      // compose does not look the compose file's variables up in a label file: TAG is unset there, and said so
      expect(desired.unsetVariables).toEqual([{ file: 'deploy/labels/web.labels', names: ['TAG'] }]);
    }
    expect(reads.sort()).toEqual(['deploy/.env@head1', 'deploy/compose.yml@head1', 'deploy/labels/base.labels@head1', 'deploy/labels/web.labels@head1']);
    // they reach the container's create, and a changed file is a changed config (recreate) shown as a field diff
    const spec = web(viaCli.desired);
    expect(create(spec).Labels).toMatchObject({ 'traefik.enable': 'true', 'com.example.owner': 'shop-owners' });
    const changed = await loadEnvironment(repo({ ...files, 'deploy/labels/base.labels': files['deploy/labels/base.labels'].replace('traefik.enable=true', 'traefik.enable=false') }, cfg()), 'e');
    expect(hashOf(changed.desired)).not.toBe(hashOf(viaCli.desired));
    // a string is one file; an override file's entries are added after the base's
    const one = { ...files, 'deploy/compose.yml': 'services:\n  web:\n    image: nginx\n    label_file: labels/base.labels\n' };
    expect(web((await loadEnvironment(repo(one, cfg()), 'e')).desired).labels).toEqual({ 'com.example.team': 'shop', 'com.example.tier': 'back', team: 'shop', 'traefik.enable': 'true' });
    const over = { ...one, 'deploy/over.yml': 'services:\n  web:\n    label_file: labels/web.labels\n' };
    const merged = (await loadEnvironment(repo(over, cfg().replace('[deploy/compose.yml]', '[deploy/compose.yml, deploy/over.yml]')), 'e')).desired;
    expect(web(merged).labels).toMatchObject({ 'com.example.team': 'web', 'com.example.owner': 'shop-owners', 'traefik.enable': 'true' });
    // a missing file refuses a deployed service at its line (compose refuses it too), and only a deployed one
    const missing = { ...files, 'deploy/compose.yml': files['deploy/compose.yml'].replace('labels/web.labels', 'labels/nope.labels') };
    for (const load of [() => loadEnvironment(repo(missing, cfg()), 'e'), () => viaApp(missing, cfg())])
      await expect(load()).rejects.toMatchObject({ code: 'missing_file', file: 'deploy/compose.yml', line: 4, message: expect.stringContaining('label_file labels/nope.labels not found (looked for deploy/labels/nope.labels') });
    const off = { 'deploy/compose.yml': 'services:\n  web: {image: nginx}\n  tools: {image: alpine, profiles: [tools], label_file: nope.labels}\n' };
    expect((await loadEnvironment(repo(off, cfg()), 'e')).desired.services.map((s) => s.spec.name)).toEqual(['web']);
    // outside the repository, at its line; berth's own labels, at the label file's line; a bad line, located
    for (const bad of ['../../x.labels', '/etc/labels'])
      await expect(loadEnvironment(repo({ ...files, 'deploy/compose.yml': files['deploy/compose.yml'].replace('labels/web.labels', bad) }, cfg()), 'e')).rejects.toMatchObject({ code: 'path_escapes_repo', file: 'deploy/compose.yml', line: 4 });
    await expect(loadEnvironment(repo({ ...files, 'deploy/labels/web.labels': 'a=1\nio.berth.apply=forged\n' }, cfg()), 'e')).rejects.toMatchObject({ code: 'invalid_value', file: 'deploy/labels/web.labels', line: 2 });
    await expect(loadEnvironment(repo({ ...files, 'deploy/labels/web.labels': 'a=1\nnot a line\n' }, cfg()), 'e')).rejects.toMatchObject({ file: 'deploy/labels/web.labels', line: 2 });
    // the plan shows them as labels
    const md = renderPlanMarkdown(reconcile(viaCli.desired, emptyObserved('p', 'e')), { environment: 'e', target: 'local', headSha: 'abc1234' });
    expect(md).toContain('traefik.enable');
  });

  it('env_file of a service whose profile is off is not read: a missing one is an error only for a service deployed', async () => {
    const files = { 'deploy/compose.yml': 'services:\n  web: {image: nginx}\n  tools:\n    image: alpine\n    profiles: [tools]\n    env_file: .env.tools\n' };
    const { desired } = await loadEnvironment(repo(files, cfg()), 'e');
    expect(desired.services.map((s) => s.spec.name)).toEqual(['web']);
    expect(await loadEnvironment(repo(files, cfg('    profiles: [tools]\n')), 'e').catch((e: unknown) => e)).toMatchObject({ code: 'missing_file', file: 'deploy/compose.yml', line: 6 });
  });

  it('extends: same file and another file, with compose merge rules; paths of the other file resolve from it', async () => {
    const read = repo(
      {
        'deploy/compose.yml': 'services:\n  base:\n    image: nginx\n    environment: {A: "1"}\n  web:\n    extends: base\n    environment: {B: "2"}\n  worker:\n    extends:\n      file: ../common/svc.yml\n      service: job\n    command: ["run"]\n',
        'common/svc.yml': 'services:\n  job:\n    image: busybox\n    environment: {J: "1"}\n    volumes: ["./data:/data"]\n',
      },
      cfg('policy:\n  bind_mount_allowlist: [common]\n'),
    );
    const { desired } = await loadEnvironment(read, 'e');
    expect(web(desired).environment).toEqual({ A: '1', B: '2' });
    const worker = desired.services.find((s) => s.spec.name === 'worker')!.spec;
    expect([worker.image, worker.command, worker.environment, worker.volumes[0]!.source]).toEqual(['docker.io/library/busybox:latest', ['run'], { J: '1' }, join(read.root!, 'common/data')]);
    expect(errorOf(() => load('services:\n  a: {image: x, extends: b}\n  b: {image: x, extends: a}\n')).code).toBe('extends_cycle');
  });

  it('include: paths relative to the including file, inside the repository', async () => {
    const read = repo({ 'deploy/compose.yml': `include: [parts/db.yml]\n${svc('image: nginx\ndepends_on: [db]')}`, 'deploy/parts/db.yml': 'services:\n  db:\n    image: postgres\n' }, cfg());
    expect((await loadEnvironment(read, 'e')).desired.services.map((s) => s.spec.name)).toEqual(['db', 'web']);
    const escape = repo({ 'deploy/compose.yml': `include: [../../outside.yml]\n${svc('image: nginx')}` }, cfg());
    await expect(loadEnvironment(escape, 'e')).rejects.toThrow('include ../../outside.yml is outside the repository');
  });

  // compose-go's include long syntax: `env_file` (relative to the including file's directory) replaces the included
  // project's .env, a later file over an earlier one, the including side's variables over them all; `/dev/null`
  // reads none. `project_directory` (relative to the including file's directory) is where every relative path of
  // the entry's files resolves, and whose .env interpolates them; `path` may list a file and its overrides.
  it('include: env_file interpolates the included files instead of their .env, as docker compose reads it', async () => {
    const files = {
      'deploy/compose.yml': 'include:\n  - path: ../db/db.yml\n    env_file: [db.env, db.local.env]\nservices:\n  web: {image: nginx, depends_on: [db]}\n',
      'db/db.yml': 'services:\n  db:\n    image: postgres:${PGV:-15}\n    environment: {X: "${X}", Y: "${Y}", FROM_DOTENV: "${OWN:-no}"}\n',
      'db/.env': 'PGV=99\nOWN=yes\n',
      'deploy/db.env': 'PGV=16\nX=a\n',
      'deploy/db.local.env': 'X=b\nY=${PGV}-y\n',
    };
    const db = (d: DesiredState) => d.services.find((s) => s.spec.name === 'db')!.spec;
    for (const desired of [(await loadEnvironment(repo(files, cfg()), 'e')).desired, await viaApp(files, cfg())])
      expect([db(desired).image, db(desired).environment]).toEqual(['docker.io/library/postgres:16', { X: 'b', Y: '16-y', FROM_DOTENV: 'no' }]);
    // the including side's variables win over the entry's env files
    expect(db((await loadEnvironment(repo(files, cfg('    variables: {PGV: "13"}\n')), 'e')).desired).environment).toMatchObject({ Y: '13-y' });
    // a string is one file; /dev/null reads nothing, not even the project's .env
    const one = { ...files, 'deploy/compose.yml': files['deploy/compose.yml'].replace('[db.env, db.local.env]', 'db.env') };
    expect(db((await loadEnvironment(repo(one, cfg()), 'e')).desired).environment).toEqual({ X: 'a', Y: '', FROM_DOTENV: 'no' });
    const none = { ...files, 'deploy/compose.yml': files['deploy/compose.yml'].replace('[db.env, db.local.env]', '/dev/null') };
    expect(db((await loadEnvironment(repo(none, cfg()), 'e')).desired).image).toBe('docker.io/library/postgres:15');
    // without env_file, the project's .env as before
    const plain = { ...files, 'deploy/compose.yml': 'include: [../db/db.yml]\nservices:\n  web: {image: nginx}\n' };
    expect(db((await loadEnvironment(repo(plain, cfg()), 'e')).desired).environment).toMatchObject({ FROM_DOTENV: 'yes' });
    // the app reads exactly the files named (not db/.env), at the PR head
    const reads: string[] = [];
    await viaApp(files, cfg(), reads);
    expect(reads.sort()).toEqual(['db/db.yml@head1', 'deploy/compose.yml@head1', 'deploy/db.env@head1', 'deploy/db.local.env@head1']);
    // a missing file is refused at its line (compose refuses it too); a path outside the repository at its line
    const missing = { ...files, 'deploy/compose.yml': files['deploy/compose.yml'].replace('db.local.env', 'nope.env') };
    for (const load of [() => loadEnvironment(repo(missing, cfg()), 'e'), () => viaApp(missing, cfg())])
      await expect(load()).rejects.toMatchObject({ code: 'missing_file', file: 'deploy/compose.yml', line: 3, message: expect.stringContaining('include env_file nope.env not found (looked for deploy/nope.env') });
    for (const bad of ['../../x.env', '/etc/environment'])
      await expect(loadEnvironment(repo({ ...files, 'deploy/compose.yml': files['deploy/compose.yml'].replace('db.local.env', bad) }, cfg()), 'e')).rejects.toMatchObject({ code: 'path_escapes_repo', file: 'deploy/compose.yml', line: 3 });
    // a bad line is located in the env file
    await expect(loadEnvironment(repo({ ...files, 'deploy/db.local.env': 'X=b\nnot a line\n' }, cfg()), 'e')).rejects.toMatchObject({ file: 'deploy/db.local.env', line: 2 });
  });

  it("include: project_directory is where the included files' relative paths resolve, and its .env interpolates them; path lists a file and its overrides", async () => {
    const files = {
      'deploy/compose.yml': 'include:\n  - path: [../stacks/db/compose.yml, ../stacks/db/override/extra.yml]\n    project_directory: ../shared\nservices:\n  web: {image: nginx}\n',
      'stacks/db/compose.yml': 'services:\n  db:\n    image: postgres:${PGV:-15}\n    env_file: db.env\n    volumes: [./init:/docker-entrypoint-initdb.d:ro]\n',
      'stacks/db/override/extra.yml': 'services:\n  db:\n    env_file: [db.env, extra.env]\n',
      'stacks/db/.env': 'PGV=99\n',
      'stacks/db/db.env': 'FROM=stacks\n',
      'shared/.env': 'PGV=16\n',
      'shared/db.env': 'FROM=shared\n',
      'shared/extra.env': 'EXTRA=1\n',
      'shared/init/01.sql': 'select 1;\n',
    };
    const config = cfg('policy:\n  bind_mount_allowlist: [shared]\n');
    const read = repo(files, config);
    const db = (await loadEnvironment(read, 'e')).desired.services.find((s) => s.spec.name === 'db')!.spec;
    expect([db.image, db.environment, db.volumes.map((v) => v.source)]).toEqual(['docker.io/library/postgres:16', { FROM: 'shared', EXTRA: '1' }, [join(read.root!, 'shared/init')]]);
    // the app copies the bound directory from the project directory too
    const app = (await viaApp(files, config)).services.find((s) => s.spec.name === 'db')!.spec;
    expect([app.image, app.environment, app.files?.map((f) => f.source)]).toEqual(['docker.io/library/postgres:16', { FROM: 'shared', EXTRA: '1' }, ['shared/init/01.sql']]);
    // env_file with project_directory: the env file is still relative to the including file
    const both = { ...files, 'deploy/compose.yml': files['deploy/compose.yml'].replace('    project_directory', '    env_file: pg.env\n    project_directory'), 'deploy/pg.env': 'PGV=14\n' };
    expect((await loadEnvironment(repo(both, config), 'e')).desired.services.find((s) => s.spec.name === 'db')!.spec.image).toBe('docker.io/library/postgres:14');
    // the repository's root is a directory like any other; outside it is refused at its line
    const root = { ...files, 'deploy/compose.yml': files['deploy/compose.yml'].replace('../shared', '..'), 'db.env': 'FROM=root\n', 'extra.env': 'EXTRA=2\n', '.env': 'PGV=12\n', 'init/01.sql': 'select 2;\n' };
    const rooted = (await loadEnvironment(repo(root, cfg('policy:\n  bind_mount_allowlist: [init]\n')), 'e')).desired.services.find((s) => s.spec.name === 'db')!.spec;
    expect([rooted.image, rooted.environment]).toEqual(['docker.io/library/postgres:12', { FROM: 'root', EXTRA: '2' }]);
    for (const bad of ['../..', '/srv/stack'])
      await expect(loadEnvironment(repo({ ...files, 'deploy/compose.yml': files['deploy/compose.yml'].replace('../shared', bad) }, config), 'e')).rejects.toMatchObject({ code: 'path_escapes_repo', file: 'deploy/compose.yml', line: 3 });
    // an unknown key of an entry is refused at its line, with a suggestion
    await expect(loadEnvironment(repo({ ...files, 'deploy/compose.yml': files['deploy/compose.yml'].replace('project_directory', 'project_dir') }, config), 'e')).rejects.toMatchObject({ code: 'unknown_key', line: 3, hint: expect.stringContaining('project_directory') });
  });

  // compose-go's "Allow importing compose file to override resource definition" (docker compose since
  // late 2025): a service (network, volume) the including file defines too is merged with the included
  // one under the override-file rules, the including file winning; of two included files the earlier wins.
  it('include: the including file overrides what it includes, merged as an override file is (wger\'s docker-compose.yml)', async () => {
    const db = 'services:\n  db:\n    image: postgres:15\n    environment: {A: "1", B: "1"}\n    volumes: [data:/var/lib/postgresql/data]\n    command: [postgres, -c, max_connections=30]\nvolumes:\n  data: {}\n';
    // a partial service (no image) adds keys to the included one and overrides some
    const partial = repo({ 'deploy/compose.yml': `include: [parts/db.yml]\n${svc('image: nginx\ndepends_on: [db]')}\n  db:\n    shm_size: 256mb\n    environment: {B: "2", C: "3"}\n`, 'deploy/parts/db.yml': db }, cfg());
    const d = (await loadEnvironment(partial, 'e')).desired;
    const spec = d.services.find((s) => s.spec.name === 'db')!.spec;
    expect([spec.image, spec.environment, spec.shmSize, spec.command, spec.volumes.map((v) => v.target)]).toEqual(['docker.io/library/postgres:15', { A: '1', B: '2', C: '3' }, 256 * 1024 ** 2, ['postgres', '-c', 'max_connections=30'], ['/var/lib/postgresql/data']]);
    // what the override reaches the container
    const o = create(spec);
    expect([o.Image, o.HostConfig.ShmSize, [...o.Env].sort()]).toEqual(['docker.io/library/postgres:15', 256 * 1024 ** 2, ['A=1', 'B=2', 'C=3']]);
    // a full redefinition replaces the image; !override replaces a mapping instead of merging it
    const full = repo({ 'deploy/compose.yml': 'include: [db.yml]\nservices:\n  db:\n    image: mysql:8\n    environment: !override {M: "1"}\n', 'deploy/db.yml': db }, cfg());
    const fullDb = (await loadEnvironment(full, 'e')).desired.services.find((s) => s.spec.name === 'db')!.spec;
    expect([fullDb.image, fullDb.environment]).toEqual(['docker.io/library/mysql:8', { M: '1' }]);
    // !reset drops what the included file set
    const reset = repo({ 'deploy/compose.yml': 'include: [db.yml]\nservices:\n  db:\n    command: !reset null\n    volumes: !reset []\n', 'deploy/db.yml': db }, cfg());
    const resetDb = (await loadEnvironment(reset, 'e')).desired.services.find((s) => s.spec.name === 'db')!.spec;
    expect([resetDb.image, resetDb.command, resetDb.volumes]).toEqual(['docker.io/library/postgres:15', undefined, []]);
    // two included files defining one service: the earlier include wins (each included model is imported in turn)
    const two = repo({ 'deploy/compose.yml': 'include: [a.yml, b.yml]\n', 'deploy/a.yml': 'services:\n  db: {image: "postgres:16", environment: {FROM: a}}\n', 'deploy/b.yml': 'services:\n  db: {image: "postgres:14", environment: {FROM: b, ONLY_B: "1"}}\n' }, cfg());
    const twoDb = (await loadEnvironment(two, 'e')).desired.services.find((s) => s.spec.name === 'db')!.spec;
    expect([twoDb.image, twoDb.environment]).toEqual(['docker.io/library/postgres:16', { FROM: 'a', ONLY_B: '1' }]);
    // an include nested in an included file sits below the file that includes it
    const nested = repo({ 'deploy/compose.yml': 'include: [a.yml, c.yml]\n', 'deploy/a.yml': 'include: [b.yml]\nservices:\n  db: {image: "postgres:16"}\n', 'deploy/b.yml': 'services:\n  db: {image: "postgres:12", shm_size: 1g}\n', 'deploy/c.yml': 'services:\n  db: {image: "postgres:10"}\n' }, cfg());
    const nestedDb = (await loadEnvironment(nested, 'e')).desired.services.find((s) => s.spec.name === 'db')!.spec;
    expect([nestedDb.image, nestedDb.shmSize]).toEqual(['docker.io/library/postgres:16', 1024 ** 3]);
  });

  it('profiles: services without profiles always run, others when the environment enables one', async () => {
    const text = 'services:\n  web: {image: nginx}\n  debug: {image: busybox, profiles: [debug]}\n  tools: {image: busybox, profiles: [tools, ops]}\n';
    expect(load(text).services.map((s) => s.spec.name)).toEqual(['web']);
    expect(load(text, { profiles: ['ops'] }).services.map((s) => s.spec.name)).toEqual(['tools', 'web']);
    const read = repo({ 'deploy/compose.yml': text }, cfg('    profiles: [debug]\n'));
    expect((await loadEnvironment(read, 'e')).desired.services.map((s) => s.spec.name)).toEqual(['debug', 'web']);
    expect(errorOf(() => load('services:\n  web: {image: nginx, depends_on: [debug]}\n  debug: {image: busybox, profiles: [debug]}\n')).problem).toBe('service web depends on "debug", which is not enabled in this environment');
  });

  it('build: with image: deploys the image and the plan says building is not berth\'s job; a project name that differs is noted', () => {
    const d = load(`name: other\n${svc('image: ghcr.io/acme/web:1\nbuild: .')}`, { project: 'p' });
    expect(d.notes).toEqual([
      'the compose project name "other" (compose.yml:1) is not used: berth names this project "p" (from .github/berth.yml)',
      'service web has build: (compose.yml:5); berth does not build images, it deploys ghcr.io/acme/web:1 (build and push it in CI)',
    ]);
    expect(load(`name: p\n${svc('image: nginx')}`).notes).toBeUndefined();
    const md = renderPlanMarkdown(reconcile(d, emptyObserved('p', 'e')), { environment: 'e', notes: d.notes! });
    expect(md).toMatch(/^> ℹ️ service web has build.*berth does not build images/m);
  });

  it('an unset ${COMPOSE_PROJECT_NAME} is the name the environment\'s objects start with, as docker compose sets it before interpolating (citus, Rocket.Chat)', async () => {
    const compose = svc('image: citusdata/citus\ncontainer_name: "${COMPOSE_PROJECT_NAME:-citus}_master"\nlabels: {tag: "${COMPOSE_PROJECT_NAME}#db"}');
    const d = (await loadEnvironment(repo({ 'deploy/compose.yml': compose }, cfg()), 'e')).desired;
    expect(web(d)).toMatchObject({ containerName: 'p-e_master', labels: { tag: 'p-e#db' } });
    expect(d.unsetVariables).toBeUndefined();
    expect(d.notes).toBeUndefined();
    // set by the environment or the .env: that value, as before (and noted when it is not the project's)
    expect(web((await loadEnvironment(repo({ 'deploy/compose.yml': compose, 'deploy/.env': 'COMPOSE_PROJECT_NAME=p\n' }, cfg()), 'e')).desired).containerName).toBe('p_master');
    expect(web((await loadEnvironment(repo({ 'deploy/compose.yml': compose }, cfg('    variables: {COMPOSE_PROJECT_NAME: other}\n')), 'e')).desired).containerName).toBe('other_master');
  });

  it('COMPOSE_PROJECT_NAME set to another name is noted: a stack that finds its containers by the compose label would find none (mailcow)', async () => {
    const compose = svc('image: mcuadros/ofelia\ncommand: daemon --docker -f label=com.docker.compose.project=${COMPOSE_PROJECT_NAME}');
    const fromDotenv = (await loadEnvironment(repo({ 'deploy/compose.yml': compose, 'deploy/.env': 'COMPOSE_PROJECT_NAME=mailcowdockerized\n' }, cfg()), 'e')).desired;
    expect(fromDotenv.notes).toEqual([
      'COMPOSE_PROJECT_NAME "mailcowdockerized" (deploy/.env) is not the project\'s name: berth names this project "p" (from .github/berth.yml), and its containers carry io.berth.* labels, not docker compose\'s com.docker.compose.* ones (a service that finds containers by com.docker.compose.project finds none)',
    ]);
    const fromVariables = (await loadEnvironment(repo({ 'deploy/compose.yml': compose }, cfg('    variables: {COMPOSE_PROJECT_NAME: other}\n')), 'e')).desired;
    expect(fromVariables.notes?.[0]).toContain('COMPOSE_PROJECT_NAME "other" (the environment\'s variables)');
    // the same name as berth's project: nothing to say
    const same = (await loadEnvironment(repo({ 'deploy/compose.yml': compose, 'deploy/.env': 'COMPOSE_PROJECT_NAME=p\n' }, cfg()), 'e')).desired;
    expect(same.notes).toBeUndefined();
    // the PR writes the .env: its value renders inert in the PR comment
    // (the command as a list: in a string, the "<" would be refused as shell syntax)
    const listed = svc('image: mcuadros/ofelia\ncommand: [daemon, --docker, -f, "label=com.docker.compose.project=${COMPOSE_PROJECT_NAME}"]');
    const hostile = (await loadEnvironment(repo({ 'deploy/compose.yml': listed, 'deploy/.env': 'COMPOSE_PROJECT_NAME=<img src=x>[a](http://evil.example)@admin\n' }, cfg()), 'e')).desired;
    const md = renderPlanMarkdown(reconcile(hostile, emptyObserved('p', 'e')), { environment: 'e', notes: hostile.notes! });
    const note = md.split('\n').find((l) => l.includes('COMPOSE'))!;
    expect(note).toMatch(/^> ℹ️ /);
    for (const live of ['<img', '](', '@admin', 'http://']) expect(note).not.toContain(live);
  });

  it('depends_on long form: required: false to a missing service is skipped, restart: true is carried', () => {
    const d = load('services:\n  web:\n    image: nginx\n    depends_on:\n      db: {condition: service_started, restart: true}\n      gone: {condition: service_started, required: false}\n  db: {image: postgres}\n');
    expect(web(d).dependsOn).toEqual([{ service: 'db', condition: 'service_started', restart: true }]);
  });
});

describe('a service scaled to 0, as docker compose runs it', () => {
  const text = [
    'services:',
    '  web:',
    '    image: nginx',
    '    depends_on: {worker: {condition: service_healthy}, job: {condition: service_completed_successfully}}',
    '    networks: [front]',
    '  worker:',
    '    image: busybox',
    '    deploy: {replicas: 0}',
    '    healthcheck: {test: [CMD, "true"]}',
    '    volumes: [data:/data]',
    '    networks: [back]',
    '  job:',
    '    image: busybox',
    '    scale: 0',
    'networks: {front: {}, back: {}}',
    'volumes: {data: {}}',
    '',
  ].join('\n');

  it('has no container, while the networks and volumes it names are made and no one waits for it; the plan says so', () => {
    const d = load(text);
    expect(d.services.map((s) => [s.spec.name, s.spec.replicas])).toEqual([['job', 0], ['web', 1], ['worker', 0]]);
    // compose-go keeps a scaled-to-0 service in the project, so what it names is still required (and created)
    expect([d.networks.map((n) => n.spec.name), d.volumes.map((v) => v.spec.name)]).toEqual([['back', 'default', 'front'], ['data']]);
    const plan = reconcile(d, emptyObserved('p', 'e'));
    expect(plan.nodes.map((n) => `${n.kind} ${n.resource}`)).toEqual([
      'CreateNetwork network:back',
      'CreateNetwork network:default',
      'CreateNetwork network:front',
      'CreateVolume volume:data',
      'EnsureImage image:docker.io/library/nginx:latest',
      'CreateContainer service:web:1',
      'StartContainer service:web:1',
    ]);
    expect(d.notes).toEqual([
      'service worker is scaled to 0 (compose.yml:8): it has no container (any it had is removed), its networks and volumes are still created, and services that depend on it do not wait for it, as docker compose does',
      'service job is scaled to 0 (compose.yml:14): it has no container (any it had is removed), its networks and volumes are still created, and services that depend on it do not wait for it, as docker compose does',
    ]);
  });

  it('scaling a running service to 0 removes its containers (a scale down), and a new plan after that finds nothing to do', () => {
    const before = load(text.replace('deploy: {replicas: 0}', 'deploy: {replicas: 2}').replace('scale: 0', 'scale: 1'));
    const running = simulate(reconcile(before, emptyObserved('p', 'e')), emptyObserved('p', 'e'));
    expect(running.containers.map((c) => `${c.service}:${c.replica}`).sort()).toEqual(['job:1', 'web:1', 'worker:1', 'worker:2']);
    const zero = load(text);
    const plan = reconcile(zero, running);
    expect(plan.nodes.map((n) => `${n.kind} ${n.resource} ${n.reason}`).sort()).toEqual([
      'RemoveContainer service:job:1 scale down',
      'RemoveContainer service:worker:1 scale down',
      'RemoveContainer service:worker:2 scale down',
      'StopContainer service:worker:1 scale down',
      'StopContainer service:worker:2 scale down',
    ]);
    // (the one-shot job had exited: removed without a stop) the volume stays (berth never removes one implicitly), and the next plan is empty
    const after = simulate(plan, running);
    expect(after.containers.map((c) => c.service)).toEqual(['web']);
    expect(after.volumes.map((v) => v.name)).toEqual(['data']);
    expect(reconcile(zero, after).nodes).toEqual([]);
  });

  it('a join of a service scaled to 0 is refused at its line, as docker compose fails the create ("container missing")', () => {
    for (const join of ['network_mode: "service:worker"', 'volumes_from: [worker]', 'pid: "service:worker"']) {
      const e = errorOf(() => load(`services:\n  web:\n    image: nginx\n    ${join}\n  worker:\n    image: busybox\n    scale: 0\n`, { policy: { ...DENY_ALL, allow_host_pid: true } as never }));
      expect(e, join).toMatchObject({ code: 'invalid_value', line: 4, hint: 'scale worker to at least 1 (compose.yml:7), scale web to 0 too, or remove the join' });
      expect(e.problem, join).toMatch(/^service web: (network_mode|volumes_from|pid) joins service worker, which has 0 replicas: there is no container to join$/);
    }
    // a joiner scaled to 0 creates nothing, so joins nothing; and links to it are only aliases no container carries
    expect(load('services:\n  web: {image: nginx, network_mode: "service:worker", scale: 0}\n  worker: {image: busybox, scale: 0}\n').services).toHaveLength(2);
    expect(load('services:\n  web: {image: nginx, links: [worker]}\n  worker: {image: busybox, scale: 0}\n').services).toHaveLength(2);
  });
});

describe('loader limits', () => {
  it('a few characters cannot ask for a huge plan: replicas, published and exposed ports are bounded per service and per environment, counted before they expand', () => {
    expect(errorOf(() => load(svc('image: nginx\ndeploy: {replicas: 100000000}')))).toMatchObject({ code: 'bad_replicas', line: 4, problem: 'deploy.replicas 100000000 is more than the 1000 containers berth runs in one environment' });
    expect(errorOf(() => load('services:\n  a: {image: nginx, scale: 600}\n  b: {image: nginx, scale: 600}\n'))).toMatchObject({ code: 'too_large', line: 3, problem: expect.stringContaining('more than 1000 containers together (service b makes 1200)') });
    expect(errorOf(() => load(svc(`image: nginx\nexpose:\n${'  - "1-65535"\n'.repeat(2000)}`)))).toMatchObject({ code: 'too_large', line: 6, problem: 'expose: more than 65536 ports in one service' });
    expect(errorOf(() => load(svc(`image: nginx\nports:\n${'  - "1-65535:1-65535"\n'.repeat(2000)}`)))).toMatchObject({ code: 'too_large', line: 6, problem: 'ports: more than 65536 port bindings in one service' });
    const three = 'services:\n' + [0, 1, 2].map((i) => `  s${i}:\n    image: nginx\n    ports: ["1-40000:1-40000"]\n`).join('');
    expect(errorOf(() => load(three))).toMatchObject({ code: 'too_large', line: 7, problem: expect.stringContaining('publish more than 65536 ports together (service s1 makes 80000)') });
    // what real stacks write loads: coturn's relay range, a thousand containers
    expect(web(load(svc('image: coturn/coturn\nports: ["49152-65535:49152-65535/udp"]'))).ports).toHaveLength(16384);
    expect(load('services:\n  a: {image: nginx, scale: 500}\n  b: {image: nginx, deploy: {replicas: 500}}\n').services).toHaveLength(2);
  });

  it('a real-sized file with well over a hundred aliases loads', () => {
    const anchors = 'x-logging: &logging\n  driver: json-file\n  options: {max-size: 5m}\nx-restart: &restart unless-stopped\nx-env: &env\n  TZ: UTC\n';
    const services = Array.from({ length: 45 }, (_, i) => `  s${i}:\n    image: nginx\n    logging: *logging\n    restart: *restart\n    environment:\n      <<: *env\n      N: "${i}"\n`).join('');
    const d = load(`${anchors}services:\n${services}`);
    expect(d.services).toHaveLength(45);
    expect(d.services[0]!.spec.logging).toEqual({ driver: 'json-file', options: { 'max-size': '5m' } });
  });
});

// JavaScript's plain objects read `__proto__` as their prototype: assigned as a key, it is dropped (a label, a
// variable, a whole service gone without a word), where docker compose keeps it. berth refuses it at its line.
describe('keys named like Object.prototype members', () => {
  it('__proto__ is refused at its line as a mapping key anywhere, a list entry\'s name or an env_file / label_file name; no prototype is polluted', () => {
    const mapKey: [string, string, number][] = [
      ['labels', svc('image: nginx\nlabels:\n  a: b\n  __proto__: x'), 6],
      ['environment', svc('image: nginx\nenvironment:\n  __proto__: {polluted: 1}'), 5],
      ['sysctls', svc('image: nginx\nsysctls:\n  __proto__: 1'), 5],
      ['extra_hosts', svc('image: nginx\nextra_hosts:\n  __proto__: 10.0.0.1'), 5],
      ['ulimits', svc('image: nginx\nulimits:\n  __proto__: 10'), 5],
      ['service networks', svc('image: nginx\nnetworks:\n  __proto__: {}'), 5],
      ['depends_on', svc('image: nginx\ndepends_on:\n  __proto__: {condition: service_started}'), 5],
      ['healthcheck', svc('image: nginx\nhealthcheck:\n  __proto__: {}'), 5],
      ['service key', svc('image: nginx\n__proto__: {image: evil}'), 4],
      ['x- extension', svc('image: nginx\nx-meta:\n  __proto__: 1'), 5],
      ['top-level x-', `x-base:\n  __proto__: 1\n${svc('image: nginx')}`, 2],
      ['services', 'services:\n  __proto__:\n    image: nginx\n  web:\n    image: nginx\n', 2],
      ['networks', svc('image: nginx', 'networks:\n  __proto__: {}\n'), 5],
      ['driver_opts', svc('image: nginx', 'networks:\n  default:\n    driver_opts:\n      __proto__: 1\n'), 7],
      ['volumes', svc('image: nginx', 'volumes:\n  __proto__: {}\n'), 5],
      ['configs', svc('image: nginx', 'configs:\n  __proto__: {environment: X}\n'), 5],
      ['secrets', svc('image: nginx', 'secrets:\n  __proto__: {environment: X}\n'), 5],
      ['top level', `__proto__: {}\n${svc('image: nginx')}`, 1],
    ];
    for (const [what, text, line] of mapKey) {
      const e = errorOf(() => load(text));
      expect(e, what).toMatchObject({ code: 'bad_yaml', problem: 'a mapping key named "__proto__" is not accepted', line });
      expect(e.hint, what).toMatch(/^rename it/);
    }
    const listed: [string, string, number, string][] = [
      ['environment', svc('image: nginx\nenvironment:\n  - A=1\n  - __proto__=x'), 6, 'services.web.environment[1]'],
      ['labels', svc('image: nginx\nlabels: ["__proto__"]'), 4, 'services.web.labels[0]'],
      ['sysctls', svc('image: nginx\nsysctls: ["__proto__=1"]'), 4, 'services.web.sysctls[0]'],
    ];
    for (const [what, text, line, path] of listed) expect(errorOf(() => load(text)), what).toMatchObject({ code: 'invalid_value', line, path });
    const files = (text: string, file: string) => errorOf(() => loadCompose([{ path: 'compose.yml', text }], { ...OPTS, sources: new Map([[file, 'A=1\n__proto__=x\n']]) }));
    expect(files(svc('image: nginx\nenv_file: [a.env]'), 'a.env')).toMatchObject({ code: 'invalid_value', file: 'a.env', line: 2 });
    expect(files(svc('image: nginx\nlabel_file: [a.labels]'), 'a.labels')).toMatchObject({ code: 'invalid_value', file: 'a.labels', line: 2 });
    expect(Object.keys(Object.prototype)).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const hostile = new URL('../fixtures/hostile/proto-key.compose.yml', import.meta.url);
    expect(errorOf(() => loadCompose([{ path: 'compose.yml', text: readFileSync(hostile, 'utf8') }], OPTS))).toMatchObject({ code: 'bad_yaml', line: 9 });
  });

  it('constructor, prototype and toString are keys like any other: the literal key in the spec, the hash and the create options', () => {
    const d = load(svc('image: nginx\nlabels:\n  constructor: a\n  prototype: b\nenvironment: ["toString=c", "constructor=d"]\nsysctls:\n  net.core.somaxconn: 1\nulimits:\n  nofile: 10', '  constructor:\n    image: nginx\n'));
    const s = web(d);
    expect(s.labels).toEqual({ constructor: 'a', prototype: 'b' });
    expect(s.environment).toEqual({ constructor: 'd', toString: 'c' });
    const o = create(s);
    expect(o.Labels).toMatchObject({ constructor: 'a', prototype: 'b' });
    expect(o.Env).toEqual(['constructor=d', 'toString=c']);
    expect(d.services.map((x) => x.spec.name).sort()).toEqual(['constructor', 'web']);
    // the hash sees them: a changed value is a changed hash
    expect(hashOf(load(svc('image: nginx\nlabels:\n  constructor: z\n  prototype: b\nenvironment: ["toString=c", "constructor=d"]\nsysctls:\n  net.core.somaxconn: 1\nulimits:\n  nofile: 10')))).not.toBe(hashOf(d));
    // a service key named like a prototype member is an unknown key, not "not supported" with a function for a hint
    expect(errorOf(() => load(svc('image: nginx\nconstructor: 1')))).toMatchObject({ code: 'unknown_key', line: 4 });
    expect(errorOf(() => load(`toString: 1\n${svc('image: nginx')}`))).toMatchObject({ code: 'unknown_key', line: 1 });
  });
});
