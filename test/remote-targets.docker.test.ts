// Remote engines (issue 12): the same apply converges over SSH (host key
// checked against known_hosts) and over mutual TLS (DOCKER_CERT_PATH layout),
// against the real sshd and TLS endpoint scripts/ci-services.sh starts; an
// unknown or changed host key and a client certificate from another CA are
// refused with messages naming the setting; bad settings fail at start.
import { createHmac } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Observer } from '../src/apply/prepare-apply.js';
import { planTargets, prepareApply } from '../src/apply/prepare-apply.js';
import { main } from '../src/cli/main.js';
import { observe } from '../src/docker/observe.js';
import { Executor } from '../src/apply/executor.js';
import { Lanes } from '../src/apply/lanes.js';
import type { ServiceSpec } from '../src/model/model.js';
import { knownHostKeys, parseTargets, Targets } from '../src/docker/targets.js';
import { docker, removeProject } from './helpers/docker.js';
import { CI_SERVICES_DIR, CI_SSH_PORT, CI_TLS_PORT, describeRemoteEngines } from './helpers/env.js';
import { spec, state } from './helpers/specs.js';
import { sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

const PROJECT = `t-remote-${process.pid}`;
const SSH = `${CI_SERVICES_DIR}/ssh`;
const TLS = `${CI_SERVICES_DIR}/tls`;
const sshUrl = (knownHosts = `${SSH}/known_hosts`) => `ssh://root@127.0.0.1:${CI_SSH_PORT}?identity=${SSH}/id_ed25519&known_hosts=${knownHosts}`;
const tlsUrl = (dir = `${TLS}/client`) => `tcp://127.0.0.1:${CI_TLS_PORT}?cert_path=${dir}`;

function svc(name: string, over: Partial<ServiceSpec> = {}): ServiceSpec {
  const s = spec(name, over);
  if (!over.command) delete s.command;
  return s;
}

describe('BERTH_TARGETS settings fail at start naming the target and the problem', () => {
  it('a missing SSH key, a missing known_hosts, a missing certificate directory, an unknown setting', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-targets-'));
    writeFileSync(join(dir, 'known_hosts'), '');
    expect(() => parseTargets(`edge=ssh://root@10.0.0.5?identity=${dir}/nope&known_hosts=${dir}/known_hosts`)).toThrow(
      `BERTH_TARGETS: target "edge" (ssh://root@10.0.0.5): cannot read the SSH private key (identity=) ${dir}/nope: ENOENT`,
    );
    writeFileSync(join(dir, 'id'), 'not a key');
    expect(() => parseTargets(`edge=ssh://root@10.0.0.5?identity=${dir}/id&known_hosts=${dir}/known_hosts`)).toThrow(/target "edge" .*the SSH private key .*\/id cannot be used/);
    expect(() => parseTargets(`prod=tcp://10.0.0.6:2376?cert_path=${dir}`)).toThrow(`BERTH_TARGETS: target "prod" (tcp://10.0.0.6:2376): cannot read the CA certificate ${dir}/ca.pem: ENOENT`);
    expect(() => parseTargets('prod=tcp://10.0.0.6:2376?certs=/x')).toThrow('BERTH_TARGETS: target "prod" (tcp://10.0.0.6:2376): unknown setting "certs" (known: cert_path)');
  });

  it('known_hosts: plain and hashed entries, [host]:port form, @revoked', () => {
    const key = Buffer.from('key-one');
    const b64 = key.toString('base64');
    expect(knownHostKeys(`[10.0.0.5]:2222 ssh-ed25519 ${b64}\n`, '10.0.0.5', 2222).keys).toEqual([key]);
    expect(knownHostKeys(`10.0.0.5 ssh-ed25519 ${b64}\n`, '10.0.0.5', 2222).keys).toEqual([]);
    // `ssh-keygen -H` form: |1|base64(salt)|base64(HMAC-SHA1(salt, host))
    const salt = Buffer.from('0123456789abcdef0123');
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('edge.example').digest('base64')}`;
    expect(knownHostKeys(`${hashed} ssh-ed25519 ${b64}`, 'edge.example', 22).keys).toEqual([key]);
    expect(knownHostKeys(`@revoked edge.example ssh-ed25519 ${b64}`, 'edge.example', 22)).toEqual({ keys: [], revoked: [key] });
  });
});

describeRemoteEngines('remote engines over SSH and mutual TLS (real sshd, real TLS endpoint)', () => {
  let ts: TestStore;
  const cleanup = () => removeProject(PROJECT);
  beforeAll(cleanup);
  afterAll(cleanup);
  afterEach(async () => {
    await ts?.dispose();
    await cleanup();
  });

  async function converge(url: string) {
    const targets = new Targets(new Map([['remote', url]]));
    const observer: Observer = async (t, project, env) => (await observe(targets.docker(t), project, env)).observed;
    ts = await sqliteTestStore();
    const executor = new Executor({ store: ts.store, engine: (t) => targets.engine(t), lanes: new Lanes(), healthPollMs: 100 });
    const d = state([svc('db', { image: 'docker.io/berth-test/app:1' }), svc('api', { image: 'docker.io/berth-test/app:1', dependsOn: [{ service: 'db', condition: 'service_started' }] })], undefined, [], PROJECT);
    const { applyId } = await prepareApply(ts.store, observer, {
      repo: 'acme/shop', pr: 1, environment: d.environment, kind: 'apply', actor: 'alice', headSha: 'abc', desired: d, targets: ['remote'], onFailure: 'halt',
    });
    expect(await executor.run(applyId)).toBe('completed');
    // The containers run on the engine behind the transport (the local one).
    const running = await docker.listContainers({ filters: { label: [`io.berth.project=${PROJECT}`] } });
    expect(running.map((c) => c.Labels['io.berth.service']).sort()).toEqual(['api', 'db']);
    // And the next plan through the same transport has nothing to do.
    const [again] = await planTargets(d, ['remote'], observer);
    expect(again!.plan.nodes).toEqual([]);
    return targets;
  }

  it('an apply over SSH converges; the target describes itself as ssh with the engine version', async () => {
    const targets = await converge(sshUrl());
    const d = await targets.describe('remote');
    expect(d.transport).toBe('ssh');
    expect(d.version).toBe(((await docker.version()) as { Version: string }).Version);
  }, 120_000);

  it('an apply over mutual TLS converges; the target describes itself as mtls', async () => {
    const targets = await converge(tlsUrl());
    expect((await targets.describe('remote')).transport).toBe('mtls');
  }, 120_000);

  it('a changed host key is refused, naming known_hosts; so is an unknown host', async () => {
    const changed = new Targets(new Map([['remote', sshUrl(`${SSH}/known_hosts.wrong`)]]));
    await expect(changed.docker('remote').ping()).rejects.toThrow(new RegExp(`host key of \\[127\\.0\\.0\\.1\\]:${CI_SSH_PORT} CHANGED: it offered SHA256:\\S+, which ${SSH}/known_hosts.wrong does not list`));
    const empty = join(mkdtempSync(join(tmpdir(), 'berth-kh-')), 'known_hosts');
    writeFileSync(empty, '');
    const unknown = new Targets(new Map([['remote', sshUrl(empty)]]));
    await expect(unknown.engine('remote').ensureImage('berth-test/app:1')).rejects.toThrow(/is unknown: .*known_hosts has no entry for \[127\.0\.0\.1\]:\d+/);
    const described = await unknown.describeAll();
    expect(described.remote).toMatchObject({ transport: 'ssh', error: expect.stringMatching(/refused: the host key SHA256:\S+ of \[127\.0\.0\.1\]:\d+ is unknown/) });
  }, 60_000);

  it('berth status --targets shows transport, endpoint and engine version; exit 1 when one is refused', async () => {
    const out: string[] = [];
    const io = { out: (x: string) => out.push(x), err: (x: string) => out.push(x) };
    const version = ((await docker.version()) as { Version: string }).Version;
    const saved = process.env.BERTH_TARGETS;
    try {
      process.env.BERTH_TARGETS = `over-ssh=${sshUrl()};over-tls=${tlsUrl()}`;
      expect(await main(['status', '--targets'], io)).toBe(0);
      const lines = out.join('\n').split('\n');
      expect(lines[0]).toMatch(/^TARGET\s+TRANSPORT\s+ENDPOINT\s+ENGINE\s+API\s+ERROR$/);
      expect(lines.find((l) => l.startsWith('over-ssh'))).toMatch(new RegExp(`^over-ssh\\s+ssh\\s+ssh://root@127\\.0\\.0\\.1:${CI_SSH_PORT}\\s+${version.replace(/[.+]/g, '\\$&')}\\s+\\d`));
      expect(lines.find((l) => l.startsWith('over-tls'))).toMatch(/^over-tls\s+mtls\s+tcp:\/\/127\.0\.0\.1:2376\s+\S+\s+\d/);
      out.length = 0;
      process.env.BERTH_TARGETS = `over-tls=${tlsUrl(`${TLS}/rogue/client`)}`;
      expect(await main(['status', '--targets'], io)).toBe(1);
      expect(out.join('\n')).toContain("the engine refused berth's client certificate");
    } finally {
      if (saved === undefined) delete process.env.BERTH_TARGETS;
      else process.env.BERTH_TARGETS = saved;
    }
  }, 60_000);

  it('a client certificate from a CA the endpoint does not trust is refused, naming the certificate', async () => {
    const rogue = new Targets(new Map([['remote', tlsUrl(`${TLS}/rogue/client`)]]));
    await expect(rogue.docker('remote').ping()).rejects.toThrow(`tcp://127.0.0.1:${CI_TLS_PORT}: the engine refused berth's client certificate ${TLS}/rogue/client/cert.pem`);
  }, 60_000);
});
