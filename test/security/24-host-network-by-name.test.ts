// Docker's host network is a network like any other in the API: a service
// whose first network is the Docker network named `host` is created with
// NetworkMode "host" — the host's network namespace, as network_mode: host.
// A PR reached it by naming it as a top-level network: `external: true` with
// `name: host` (or the key `host`, or the legacy `external: {name: host}`), or
// a declared `name: host` with `driver: host` that berth adopted as "what it
// would create". On a real engine the temporary container of a start-first
// rollout (created without DNS aliases) started there and ran the PR's command
// in the host's network namespace before the rollout failed. Refused, located,
// unless policy.allow_host_network.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { parseConfig } from '../../src/config/config.js';

const policy = (lines: string[] = []) => parseConfig(['project: p', 'environments:', '  - name: staging', ...(lines.length ? ['policy:', ...lines.map((l) => `  ${l}`)] : [])].join('\n')).policy;
const compose = (key: string, net: string[]) => ['services:', '  web:', '    image: berth-test/app:1', `    networks: [${key}]`, 'networks:', `  ${key}:`, ...net.map((l) => `    ${l}`), ''].join('\n');
const load = (text: string, p = policy(), variables: Record<string, string> = {}) => loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'staging', policy: p, variables });

describe("the Docker network named host is the host's network namespace", () => {
  const refused: [string, string, string[], number][] = [
    ['external: true with name: host', 'h', ['external: true', 'name: host'], 8],
    ['external: true under the key host', 'host', ['external: true'], 7],
    ['the legacy external: {name: host}', 'h', ['external: {name: host}'], 7],
    ['a declared name: host with driver: host (adopted as it is)', 'h', ['name: host', 'driver: host'], 7],
    ['a name interpolated to host', 'h', ['external: true', 'name: ${NET:-host}'], 8],
  ];
  for (const [what, key, net, line] of refused)
    it(`refused: ${what}`, () => {
      expect(() => load(compose(key, net))).toThrow(
        expect.objectContaining({ code: 'policy_denied', file: 'compose.yml', line, message: expect.stringContaining('host'), hint: expect.stringContaining('allow_host_network') }),
      );
    });

  it('allowed with policy.allow_host_network; other external names (and a key that is only called host) are not touched', () => {
    expect(load(compose('h', ['external: true', 'name: host']), policy(['allow_host_network: true'])).networks[0]!.spec.dockerName).toBe('host');
    expect(load(compose('h', ['external: true', 'name: shared-edge'])).networks[0]!.spec.dockerName).toBe('shared-edge');
    expect(load(compose('host', [])).networks[0]!.spec.name).toBe('host');
  });
});
