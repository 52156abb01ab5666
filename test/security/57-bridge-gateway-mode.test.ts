// Red team: a bridge network's driver options can expose its containers past Docker's NAT as surely as
// `com.docker.network.bridge.name` attaches them to a host bridge. `gateway_mode_ipv4: routed` (and
// `_ipv6`) makes every port of every container directly reachable from anything that routes to the
// host; `nat-unprotected` (Docker 28) drops the filter that limits direct access to published ports;
// `trusted_host_interfaces` (Docker 28) lets the named host interfaces reach container addresses
// directly. Only `bridge.name` was checked: the rest passed the policy. Refused, located, unless
// policy.allow_host_network.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadCompose } from '../../src/compose/load.js';
import { parseConfig } from '../../src/config/config.js';

const policy = (lines: string[] = []) => parseConfig(['project: p', 'environments:', '  - name: staging', ...(lines.length ? ['policy:', ...lines.map((l) => `  ${l}`)] : [])].join('\n')).policy;
const compose = (net: string[]) => ['services:', '  web:', '    image: berth-test/app:1', '    networks: [lan]', 'networks:', '  lan:', ...net.map((l) => `    ${l}`), ''].join('\n');
const load = (text: string, p = policy()) => loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'staging', policy: p });

describe("a bridge network's driver options keep its containers behind Docker's NAT", () => {
  const refused: [string, string][] = [
    ['routed IPv4 gateway (every container port reachable from the LAN)', 'com.docker.network.bridge.gateway_mode_ipv4: routed'],
    ['routed IPv6 gateway', 'com.docker.network.bridge.gateway_mode_ipv6: routed'],
    ['NAT without the direct-access filter', 'com.docker.network.bridge.gateway_mode_ipv4: nat-unprotected'],
    ['a gateway mode in another case', 'com.docker.network.bridge.gateway_mode_ipv4: ROUTED'],
    ['host interfaces trusted with direct access', 'com.docker.network.bridge.trusted_host_interfaces: "eth0:wlan0"'],
  ];
  for (const [what, opt] of refused)
    it(`refused: ${what}`, () => {
      expect(() => load(compose(['driver: bridge', 'driver_opts:', `  ${opt}`]))).toThrow(
        expect.objectContaining({ code: 'policy_denied', file: 'compose.yml', line: 8, hint: expect.stringContaining('allow_host_network') }),
      );
      // without driver: too (bridge is the default)
      expect(() => load(compose(['driver_opts:', `  ${opt}`]))).toThrow(expect.objectContaining({ code: 'policy_denied' }));
    });

  it('allowed with policy.allow_host_network; NAT, isolated and ordinary options always', () => {
    expect(load(compose(['driver_opts: {com.docker.network.bridge.gateway_mode_ipv4: routed}']), policy(['allow_host_network: true'])).networks[0]!.spec.driverOpts).toEqual({
      'com.docker.network.bridge.gateway_mode_ipv4': 'routed',
    });
    for (const mode of ['nat', 'isolated'])
      expect(load(compose([`driver_opts: {com.docker.network.bridge.gateway_mode_ipv4: ${mode}, com.docker.network.bridge.gateway_mode_ipv6: ${mode}}`])).networks).toHaveLength(1);
    expect(load(compose(['driver_opts: {com.docker.network.driver.mtu: "1400", com.docker.network.bridge.enable_icc: "false"}'])).networks).toHaveLength(1);
  });

  it('the hostile corpus case is refused', () => {
    const text = readFileSync(new URL('../../fixtures/hostile/bridge-routed-gateway.compose.yml', import.meta.url), 'utf8');
    expect(() => load(text)).toThrow(expect.objectContaining({ code: 'policy_denied', problem: expect.stringContaining('gateway_mode_ipv4') }));
  });
});
