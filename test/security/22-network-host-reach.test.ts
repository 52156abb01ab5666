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
