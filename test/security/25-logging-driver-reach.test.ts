// A logging driver is run by the Docker daemon, on the host, in the host's
// network namespace: `driver: syslog` with `syslog-address:
// tcp://127.0.0.1:6379` (or gelf, fluentd, splunk…) makes the daemon connect
// to an address the compose file chooses — the host's own loopback services
// included, which no bridge container can reach — and write the container's
// output (the PR's bytes) there; `unix:///…` writes to a socket on the host;
// awslogs and gcplogs log in with the host's cloud credentials. Confirmed on a
// real engine (a listener on the host's 127.0.0.1 received the container's
// line). The drivers that keep logs on the host's disk (json-file, local,
// journald, none) stay allowed; any other needs policy.allow_logging_drivers,
// and so do destination options given to the engine's default driver.
import { describe, expect, it } from 'vitest';
import { loadCompose } from '../../src/compose/load.js';
import { parseConfig } from '../../src/config/config.js';

const policy = (lines: string[] = []) => parseConfig(['project: p', 'environments:', '  - name: staging', ...(lines.length ? ['policy:', ...lines.map((l) => `  ${l}`)] : [])].join('\n')).policy;
const compose = (logging: string[]) => ['services:', '  web:', '    image: berth-test/app:1', '    logging:', ...logging.map((l) => `      ${l}`), ''].join('\n');
const load = (text: string, p = policy()) => loadCompose([{ path: 'compose.yml', text }], { project: 'p', environment: 'staging', policy: p });

describe('a logging driver stays on the host unless the policy allows it', () => {
  const refused: [string, string[]][] = [
    ['syslog to the host loopback', ['driver: syslog', 'options: {syslog-address: "tcp://127.0.0.1:6379"}']],
    ['syslog to a unix socket on the host', ['driver: syslog', 'options: {syslog-address: "unix:///run/some.sock"}']],
    ['gelf', ['driver: gelf', 'options: {gelf-address: "udp://169.254.169.254:12201"}']],
    ['fluentd (localhost:24224 of the host by default)', ['driver: fluentd']],
    ['splunk', ['driver: splunk', 'options: {splunk-url: "http://127.0.0.1:8088", splunk-token: x}']],
    ['awslogs (the host credentials)', ['driver: awslogs', 'options: {awslogs-group: g}']],
    ['a logging plugin', ['driver: "grafana/loki-docker-driver:latest"']],
    ["a destination given to the engine's default driver", ['options: {syslog-address: "tcp://127.0.0.1:6379"}']],
  ];
  for (const [what, logging] of refused)
    it(`refused: ${what}`, () => {
      expect(() => load(compose(logging))).toThrow(expect.objectContaining({ code: 'policy_denied', file: 'compose.yml', line: 4, hint: expect.stringContaining('allow_logging_drivers') }));
    });

  it('local drivers and their options are always fine', () => {
    for (const logging of [['driver: json-file', 'options: {max-size: 10m, max-file: "3", tag: "{{.Name}}"}'], ['driver: local'], ['driver: journald', 'options: {tag: web}'], ['driver: none'], ['options: {max-size: 10m}']])
      expect(load(compose(logging)).services[0]!.spec.logging).toBeDefined();
  });

  it('policy.allow_logging_drivers allows the drivers it names, and only those', () => {
    const p = policy(['allow_logging_drivers: [syslog]']);
    expect(load(compose(['driver: syslog', 'options: {syslog-address: "tcp://10.0.0.9:514"}']), p).services[0]!.spec.logging).toEqual({ driver: 'syslog', options: { 'syslog-address': 'tcp://10.0.0.9:514' } });
    expect(() => load(compose(['driver: gelf', 'options: {gelf-address: "udp://10.0.0.9:12201"}']), p)).toThrow(expect.objectContaining({ code: 'policy_denied' }));
  });
});
