// A named volume of Docker's `local` driver takes mount(8) options:
// `driver_opts: {type: none, o: bind, device: /}` makes a volume that IS a bind
// mount of any host path, and `type: nfs`/`cifs`/`ext4` mounts a remote share
// or a host block device. Declared by a PR, that reaches outside its
// containers past bind_mount_allowlist, allow_docker_socket and allow_devices.
// Refused, located, when a policy applies; tmpfs volumes stay allowed.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { parseConfig } from '../../src/config/config.js';

const policy = (lines: string[] = []) => parseConfig(['project: p', 'environments:', '  - name: staging', ...(lines.length ? ['policy:', ...lines.map((l) => `  ${l}`)] : [])].join('\n')).policy;
const compose = (opts: string, driver = '') =>
  ['services:', '  web:', '    image: berth-test/app:1', '    volumes: [data:/data]', 'volumes:', '  data:', ...(driver ? [`    driver: ${driver}`] : []), `    driver_opts: ${opts}`, ''].join('\n');
const load = (text: string, p = policy()) => loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'staging', policy: p });

describe("a local volume's mount options cannot reach the host", () => {
  const refused: [string, string, string?][] = [
    ['a bind of / (type none, o bind)', '{type: none, o: bind, device: /}'],
    ['an rbind among other options', '{type: none, o: "rw,rbind", device: /var/run}'],
    ['a bind with the driver named', '{type: none, o: bind, device: /etc}', 'local'],
    ['a bind without type', '{o: bind, device: /root}'],
    ['a host block device', '{type: ext4, device: /dev/sda1}'],
    ['an NFS share', '{type: nfs, o: "addr=10.0.0.1,rw", device: ":/export"}'],
    ['a tmpfs that is bound after all', '{type: tmpfs, o: "bind", device: /}'],
  ];
  for (const [what, opts, driver] of refused)
    it(`refused: ${what}`, () => {
      expect(() => load(compose(opts, driver))).toThrow(expect.objectContaining({ code: 'policy_denied', file: 'compose.yml', line: 7 + (driver ? 1 : 0) }));
    });

  it('refused even when the bind source is under bind_mount_allowlist (a volume bind is never read-only-forced nor resolved on the target)', () => {
    expect(() => load(compose('{type: none, o: bind, device: /srv/data}'), policy(['bind_mount_allowlist: [/srv/data]']))).toThrow(expect.objectContaining({ code: 'policy_denied' }));
  });

  it("allowed: options whose type and device are empty, as Docker's local driver makes a plain volume of them (Dokploy's Frappe templates leave type: \"${SITE_VOLUME_TYPE}\", o: …, device: … unset)", () => {
    const unset = ['services:', '  web:', '    image: berth-test/app:1', '    volumes: [sites:/sites]', 'volumes:', '  sites:', '    driver_opts:', '      type: "${SITE_VOLUME_TYPE}"', '      o: "${SITE_VOLUME_OPTS}"', '      device: "${SITE_VOLUME_DEV}"', ''].join('\n');
    // they reach Docker as compose passes them: no mount is made of empty ones
    expect(load(unset).volumes[0]!.spec.driverOpts).toEqual({ type: '', o: '', device: '' });
    expect(load(compose('{type: "", o: bind, device: ""}')).volumes).toHaveLength(1);
    // a value in either is judged as before; o with neither key Docker refuses, and so does berth
    expect(() => load(compose('{type: "", o: bind, device: /etc}'))).toThrow(expect.objectContaining({ code: 'policy_denied', problem: 'volume data: driver_opts make it a bind mount of the host path /etc, which is not allowed by the repository\'s policy' }));
    expect(() => load(compose('{type: "", device: /dev/sda1}'))).toThrow(expect.objectContaining({ code: 'policy_denied', problem: 'volume data: driver_opts make it a mount of an untyped device from /dev/sda1 (a host device or a remote share), which is not allowed by the repository\'s policy' }));
    expect(() => load(compose('{o: bind}'))).toThrow(expect.objectContaining({ code: 'policy_denied', line: 7 }));
  });

  it('allowed: tmpfs with size options, and no options at all', () => {
    expect(load(compose('{type: tmpfs, device: tmpfs, o: "size=1m,uid=1000"}')).volumes[0]!.spec.driverOpts).toEqual({ type: 'tmpfs', device: 'tmpfs', o: 'size=1m,uid=1000' });
    expect(load(['services:', '  web:', '    image: berth-test/app:1', '    volumes: [data:/data]', 'volumes:', '  data: {}', ''].join('\n')).volumes).toHaveLength(1);
  });
});

// Red team: a volume plugin the host has (local-persist's `mountpoint: /`, sshfs, rclone) makes of its
// options whatever it likes, and a network plugin reaches wherever it goes: only `local` volumes and
// Docker's own network drivers were checked. A plugin driver now needs the policy to name it.
describe('volume and network plugins need the policy', () => {
  const network = (driver: string) => ['services:', '  web:', '    image: berth-test/app:1', '    networks: [n]', 'networks:', '  n:', `    driver: ${driver}`, ''].join('\n');

  it('a volume driver other than local is refused at its line, whatever its options; allowed by name', () => {
    expect(() => load(compose('{mountpoint: /}', 'local-persist'))).toThrow(expect.objectContaining({ code: 'policy_denied', file: 'compose.yml', line: 7, problem: expect.stringContaining('driver local-persist (a volume plugin of the host') }));
    expect(() => load(['services:', '  web:', '    image: berth-test/app:1', '    volumes: [data:/data]', 'volumes:', '  data:', '    driver: vieux/sshfs', ''].join('\n'))).toThrow(expect.objectContaining({ code: 'policy_denied', line: 7 }));
    expect(load(compose('{mountpoint: /srv/x}', 'local-persist'), policy(['allow_volume_drivers: [local-persist]'])).volumes[0]!.spec.driver).toBe('local-persist');
    // an external volume is made by someone else (its driver is theirs): allow_shared_objects governs it
    expect(load(['services:', '  web:', '    image: berth-test/app:1', '    volumes: [data:/data]', 'volumes:', '  data:', '    external: true', ''].join('\n')).volumes).toHaveLength(1);
  });

  it('a network driver other than bridge or overlay is refused at its line, even with host networking allowed; allowed by name', () => {
    expect(() => load(network('weaveworks/net-plugin:latest'))).toThrow(expect.objectContaining({ code: 'policy_denied', file: 'compose.yml', line: 7, problem: expect.stringContaining('(a network plugin of the host)') }));
    expect(() => load(network('weave'), policy(['allow_host_network: true']))).toThrow(expect.objectContaining({ code: 'policy_denied' }));
    expect(load(network('weave'), policy(['allow_network_drivers: [weave]'])).networks[0]!.spec.driver).toBe('weave');
    expect(load(network('bridge')).networks).toHaveLength(1);
  });
});
