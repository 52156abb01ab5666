// Red-team round 9. H1: Masker.text() ran inline() (`KEY=value`, `--flag value`, a URL's password) before
// redact(); inline() ends a value at a space, quote, `&`, `;` or `,` and masked only that first run, after which
// the whole secret no longer occurred and redact() could not find it: `X_PASSWORD=s3cr3t;Qz9v` showed `;Qz9v`,
// in Docker messages an apply stores (a PR writing `entrypoint: ["X_PASSWORD=${DB_PASSWORD}"]`) and in every
// outbound line. Known secrets are now redacted first. H2: a value a PR writes under a secret-looking key
// (`X_PASSWORD: app-`) could stand in for a secret: the masker skipped remembering `app-<old secret>` (a
// container name a rotated secret made), and a leftmost match of an overlapping value (`app-Tr`) took the start
// of a secret and left its end. Only the secrets berth was given let it skip a text, and every occurrence of
// every value is masked, overlapping ones as a union.
import { randomUUID } from 'node:crypto';
import type Dockerode from 'dockerode';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { redactError, type ApplyPayload } from '../../src/apply/executor.js';
import { loadCompose } from '../../src/compose/load.js';
import { DriftReconciler, type DockerLister } from '../../src/drift/drift.js';
import { LABEL } from '../../src/model/model.js';
import { Masker, MASK } from '../../src/plan/mask.js';
import { learnDesired, learnEnvironment, maskedLogger, outText } from '../../src/text/outbound.js';
import type { Store } from '../../src/store/store.js';
import { spec, state } from '../helpers/specs.js';
import { sqliteTestStore, type TestStore } from '../helpers/stores.js';

const TAIL = 'Qz9vLp2Kw';
const SECRETS = [`s3cr3t'${TAIL}`, `s3cr3t"${TAIL}`, `s3cr3t;${TAIL}`, `s3cr3t ${TAIL}`, `s3cr3t&${TAIL}`, `s3cr3t,${TAIL}`];

describe('a known secret is masked whole even after a secret-looking key', () => {
  it.each(SECRETS)('Masker.text: X_PASSWORD=%s', (S) => {
    expect(new Masker([], [S]).text(`X_PASSWORD=${S}`)).not.toContain(TAIL);
  });

  it.each(SECRETS.slice(0, 2))("a Docker message quoting the entrypoint is stored without the secret's tail (%s)", (S) => {
    const desired = loadCompose([{ path: 'compose.yml', text: 'services:\n  web:\n    image: nginx\n    entrypoint: ["X_PASSWORD=${DB_PASSWORD}"]\n' }], { project: 'shop', environment: 'staging', variables: { DB_PASSWORD: S } });
    const payload: ApplyPayload = { desired, onFailure: 'halt', secretValues: [S] };
    const docker = `failed to create task for container: OCI runtime create failed: runc create failed: unable to start container process: exec: ${JSON.stringify(`X_PASSWORD=${S}`)}: executable file not found in $PATH: unknown`;
    expect(redactError(docker, payload)).not.toContain(TAIL);
  });

  it.each(SECRETS)('outbound text (logs, comments, CLI) after learning the environment (%s)', (S) => {
    learnEnvironment({ variables: { DB_PASSWORD: S }, secret_keys: [] });
    expect(outText(`starting: X_PASSWORD=${S}`)).not.toContain(TAIL);
  });
});

const OLD = `Tr0ub4dor-and-3-${randomUUID().slice(0, 8)}`;
const NEW = 'c0rrect-h0rse-b4ttery';

async function completedApply(store: Store): Promise<string> {
  const payload: ApplyPayload = { desired: state([spec('web')], undefined, undefined, 'shop', 'staging'), onFailure: 'halt' };
  const a = await store.createApply({ repo: 'acme/shop', pr: 1, environment: 'staging', kind: 'apply', actor: 'alice', headSha: 'abc', desiredDigest: 'd', planFingerprint: null, desiredJson: JSON.stringify(payload), operations: [{ target: 'local', tasks: [] }] });
  expect(await store.casApplyState(a.id, 0, { state: 'completed', startedAt: Date.now(), finishedAt: Date.now() })).toBe(true);
  return a.id;
}

describe('a value a PR writes cannot make the masker forget a name a rotated secret made', () => {
  let ts: TestStore;
  beforeEach(async () => void (ts = await sqliteTestStore()));
  afterEach(async () => ts.dispose());

  it('drift: the vanished container named by the old secret is logged masked', async () => {
    // the environment now (secret rotated; berth restarted since the old apply, so OLD is known to no one)
    learnEnvironment({ variables: { DB_PASSWORD: NEW }, secret_keys: [] });
    // the attacker's PR is planned: a secret-looking key whose value is the name's known prefix
    learnDesired(loadCompose([{ path: 'compose.yml', text: 'services:\n  web:\n    image: nginx\n    environment:\n      X_PASSWORD: "app-"\n' }], { project: 'shop', environment: 'staging', variables: { DB_PASSWORD: NEW } }));
    const apply = await completedApply(ts.store);
    const c = {
      Id: `c${'0'.repeat(62)}1`,
      Names: [`/app-${OLD}`],
      State: 'running',
      Labels: { [LABEL.project]: 'shop', [LABEL.environment]: 'staging', [LABEL.service]: 'web', [LABEL.replica]: '1', [LABEL.configHash]: 'h', [LABEL.applyId]: apply, [LABEL.secretFields]: JSON.stringify(['container_name']) },
    } as unknown as Dockerode.ContainerInfo;
    let list = [c];
    const docker: DockerLister = { listContainers: (async () => list) as DockerLister['listContainers'] };
    const lines: string[] = [];
    const rec = { info: (o: object, m?: string) => void lines.push(JSON.stringify(o) + (m ?? '')), warn: (o: object, m?: string) => void lines.push(JSON.stringify(o) + (m ?? '')), error: (o: object, m?: string) => void lines.push(JSON.stringify(o) + (m ?? '')) };
    const r = new DriftReconciler({ store: ts.store, targets: ['local'], docker: () => docker, holder: 'r1', intervalMs: 10_000, log: maskedLogger(rec) });
    expect((await r.tick('local')).status).toBe('ok');
    list = []; // the container vanished
    expect((await r.tick('local')).status).toBe('ok');
    const vanished = lines.find((l) => l.includes('vanished'));
    expect(vanished).toBeDefined();
    expect(vanished).not.toContain(OLD);
  });
});

describe('a value a PR writes never stands in for a secret', () => {
  it('an overlapping value takes no part of a secret: the union of what occurs is masked', () => {
    const S = 'Tr0ub4dor-and-3-q7';
    const m = new Masker([], [S]);
    // the PR's guess at the secret's start, shown masked under a secret-looking key (so the masker knows it)
    expect(m.value('X_PASSWORD', 'app-Tr0u')).toBe(MASK);
    expect(m.text(`exec: app-${S}: not found`)).toBe(`exec: ${MASK}: not found`);
    expect(m.text(`${S.slice(0, 9)}|app-Tr0u|${S}`)).toBe(`${S.slice(0, 9)}|${MASK}|${MASK}`);
  });
});
