// A top-level network a PR declares must not put its containers on the host's
// own networks: `driver: macvlan` / `ipvlan` with `parent: eth0` gives them an
// address on the physical LAN (past the host's firewall and Docker's NAT), and
// the bridge driver's `com.docker.network.bridge.name` attaches them to an
// existing host bridge (br0, virbr0…). That is host-network reach: refused,
// located, unless policy.allow_host_network is set.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { parseConfig } from '../../src/config/config.js';

const policy = (lines: string[] = []) => parseConfig(['project: p', 'environments:', '  - name: staging', ...(lines.length ? ['policy:', ...lines.map((l) => `  ${l}`)] : [])].join('\n')).policy;
const compose = (net: string[]) => ['services:', '  web:', '    image: berth-test/app:1', '    networks: [lan]', 'networks:', '  lan:', ...net.map((l) => `    ${l}`), ''].join('\n');
const load = (text: string, p = policy()) => loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'staging', policy: p });

describe("a declared network stays off the host's own networks", () => {
  const refused: [string, string[], number][] = [
    ['macvlan on the host interface', ['driver: macvlan', 'driver_opts: {parent: eth0}'], 7],
    ['ipvlan on the host interface', ['driver: ipvlan', 'driver_opts: {parent: eth0, ipvlan_mode: l2}'], 7],
    ['macvlan without options (Docker picks the host interface)', ['driver: macvlan'], 7],
    ['a bridge network attached to an existing host bridge', ['driver_opts: {com.docker.network.bridge.name: br0}'], 7],
  ];
  for (const [what, net, line] of refused)
    it(`refused: ${what}`, () => {
      expect(() => load(compose(net))).toThrow(expect.objectContaining({ code: 'policy_denied', file: 'compose.yml', line, hint: expect.stringContaining('allow_host_network') }));
    });

  it('allowed with policy.allow_host_network, and ordinary bridge options always', () => {
    expect(load(compose(['driver: macvlan', 'driver_opts: {parent: eth0}']), policy(['allow_host_network: true'])).networks[0]!.spec.driver).toBe('macvlan');
    expect(load(compose(['driver_opts: {com.docker.network.driver.mtu: "1400"}'])).networks[0]!.spec.driverOpts).toEqual({ 'com.docker.network.driver.mtu': '1400' });
  });
});

// Red team: `network_mode: bridge` put a PR's container on docker0 beside every `docker run` container of the
// host (which the same network named as an external one was refused for), and an IPAM plugin was not checked
// as a network plugin is.
describe("Docker's default bridge and IPAM plugins are the host's", () => {
  const service = (mode: string) => ['services:', '  spy:', '    image: berth-test/app:1', `    network_mode: ${mode}`, ''].join('\n');
  it('network_mode bridge (or default, its other name) only with policy.allow_shared_objects: [bridge]', () => {
    for (const mode of ['bridge', 'default'])
      expect(() => load(service(mode))).toThrow(
        expect.objectContaining({ code: 'policy_denied', line: 4, problem: expect.stringContaining(`network_mode ${mode} (Docker's default bridge network`), hint: expect.stringContaining('allow_shared_objects: [bridge]') }),
      );
    expect(load(service('bridge'), policy(['allow_shared_objects: [bridge]'])).services[0]!.spec.networkMode).toBe('bridge');
    expect(load(service('default'), policy(['allow_shared_objects: [bridge]'])).services[0]!.spec.networkMode).toBe('default');
    // none stays the container's own
    expect(load(service('none')).services[0]!.spec.networkMode).toBe('none');
  });

  it('an ipam driver other than Docker\'s own only when policy.allow_network_drivers names it', () => {
    expect(() => load(compose(['ipam: {driver: evil-ipam, options: {from-the-pr: x}}']))).toThrow(
      expect.objectContaining({ code: 'policy_denied', line: 7, problem: expect.stringContaining('ipam driver evil-ipam (an IPAM plugin of the host'), hint: expect.stringContaining('allow_network_drivers: [evil-ipam]') }),
    );
    expect(load(compose(['ipam: {driver: evil-ipam}']), policy(['allow_network_drivers: [evil-ipam]'])).networks[0]!.spec).toMatchObject({ ipam: { driver: 'evil-ipam' } });
    expect(load(compose(['ipam: {driver: default, config: [{subnet: 172.28.0.0/16}]}']), policy(['allow_network_subnets: [172.28.0.0/16]'])).networks).toHaveLength(1);
  });
});
