// A bridge network's subnet becomes a route on the host (`10.0.0.4/30 dev
// br-…`), and Docker checks an explicit subnet only against its own networks,
// never against the host's routes (moby/moby#21141: a network on the LAN's
// subnet cuts the host off its LAN). A PR declaring `ipam: {config: [{subnet:
// 10.0.0.4/30, gateway: 10.0.0.6}]}` and a service with `ipv4_address:
// 10.0.0.5` therefore takes, on the host, the traffic the host and every other
// project's containers send to 10.0.0.5 (the production database on the LAN,
// say): host-network reach. Not tried on this machine (it would cut a shared
// host off its network); refused at load time, located, unless the policy
// lists the ranges (allow_network_subnets) or allows host network reach.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { parseConfig } from '../../src/config/config.js';

const policy = (lines: string[] = []) => parseConfig(['project: p', 'environments:', '  - name: staging', ...(lines.length ? ['policy:', ...lines.map((l) => `  ${l}`)] : [])].join('\n')).policy;
const compose = (pools: string[]) => ['services:', '  web:', '    image: berth-test/app:1', '    networks: [lan]', 'networks:', '  lan:', '    ipam:', '      config:', ...pools.map((p) => `        - ${p}`), ''].join('\n');
const load = (text: string, p = policy()) => loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'staging', policy: p });

describe("a declared network's subnet does not take the host's routes", () => {
  const refused: [string, string[]][] = [
    ['a /30 around a LAN address', ['{subnet: 10.0.0.4/30, gateway: 10.0.0.6}']],
    ["the host's LAN itself", ['{subnet: 192.168.1.0/24}']],
    ['an IPv6 prefix', ['{subnet: "2001:db8::/64"}']],
    ['a subnet that is not a CIDR (fails closed)', ['{subnet: "10.0.0.5"}']],
    ['only the second pool outside the allowlist', ['{subnet: 172.20.0.0/24}', '{subnet: 10.0.0.0/24}']],
  ];
  for (const [what, pools] of refused)
    it(`refused: ${what}`, () => {
      const p = what.startsWith('only') ? policy(['allow_network_subnets: [172.20.0.0/16]']) : policy();
      expect(() => load(compose(pools), p)).toThrow(expect.objectContaining({ code: 'policy_denied', file: 'compose.yml', line: 7, hint: expect.stringContaining('allow_network_subnets') }));
    });

  it('subnets inside policy.allow_network_subnets are fine (IPv4 and IPv6), and so is any with allow_host_network', () => {
    const p = policy(['allow_network_subnets: [172.20.0.0/16, "fd00:b::/48"]']);
    expect(load(compose(['{subnet: 172.20.3.0/24, ip_range: 172.20.3.128/25, gateway: 172.20.3.1}']), p).networks[0]!.spec.ipam!.config[0]!.subnet).toBe('172.20.3.0/24');
    expect(load(compose(['{subnet: "fd00:b:0:1::/64"}']), p).networks[0]!.spec.ipam!.config[0]!.subnet).toBe('fd00:b:0:1::/64');
    expect(() => load(compose(['{subnet: 172.0.0.0/8}']), p)).toThrow(expect.objectContaining({ code: 'policy_denied' }));
    expect(load(compose(['{subnet: 10.0.0.4/30}']), policy(['allow_host_network: true'])).networks).toHaveLength(1);
  });

  it('a network without a subnet (Docker picks one clear of the host routes) needs nothing', () => {
    expect(load(compose(['{}'])).networks).toHaveLength(1);
  });

  it('a network or volume no service uses is neither created nor refused, as docker compose creates only what its services use (SonarQube\'s examples declare a dual-stack network on 192.168.x.0/24 that only NETWORK_TYPE=dual selects)', () => {
    const text = [
      'services:',
      '  web:',
      '    image: berth-test/app:1',
      '    networks:',
      '      - ${NETWORK_TYPE:-ipv4}',
      'networks:',
      '  ipv4: {}',
      '  dual:',
      '    enable_ipv6: true',
      '    ipam:',
      '      config:',
      '        - {subnet: 192.168.3.0/24}',
      '  lan:',
      '    driver: macvlan',
      'volumes:',
      '  hostdir:',
      '    driver_opts: {type: none, o: bind, device: /etc}',
      '',
    ].join('\n');
    const d = load(text);
    expect(d.networks.map((n) => n.spec.name)).toEqual(['ipv4']);
    expect(d.volumes).toEqual([]);
    // used, each is refused as before, at its line
    expect(() => load(text.replace('${NETWORK_TYPE:-ipv4}', 'dual'))).toThrow(expect.objectContaining({ code: 'policy_denied', line: 10, hint: expect.stringContaining('allow_network_subnets') }));
    expect(() => load(text.replace('${NETWORK_TYPE:-ipv4}', 'lan'))).toThrow(expect.objectContaining({ code: 'policy_denied', line: 14 }));
    expect(() => load(text.replace('    networks:\n      - ${NETWORK_TYPE:-ipv4}', '    networks: [ipv4]\n    volumes: [hostdir:/data]'))).toThrow(expect.objectContaining({ code: 'policy_denied', line: 17 }));
  });

  it('the policy refuses an allowlist entry that is not a CIDR', () => {
    expect(() => policy(['allow_network_subnets: [10.0.0.5]'])).toThrow(/allow_network_subnets\[0\]: must be a subnet in CIDR form/);
  });
});
