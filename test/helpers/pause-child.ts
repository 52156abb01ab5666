// A process that starts and drives an apply of a given desired state and
// freezes right after the first engine call matching a pattern has returned,
// printing `paused <call>`: the test then SIGKILLs it at exactly that point
// (the Docker call done, its journal row still `running`). A pattern starting
// with `before:` freezes just before the call instead (journaled, never sent).
// argv: <database url> <desired-state json file> <pattern> [<policy json file>]
import { readFileSync } from 'node:fs';
import Dockerode from 'dockerode';
import { prepareApply } from '../../src/apply/prepare-apply.js';
import { DockerEngine } from '../../src/docker/docker-engine.js';
import { observe } from '../../src/docker/observe.js';
import { Executor } from '../../src/apply/executor.js';
import { Lanes } from '../../src/apply/lanes.js';
import type { Policy } from '../../src/compose/policy.js';
import type { DesiredState } from '../../src/model/model.js';
import { openStore } from '../../src/store/open.js';
import { hookedEngine } from './hooked-engine.js';

const [url, file, pattern, policyFile] = process.argv.slice(2);
const docker = new Dockerode({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
const store = await openStore(url!);
const desired = JSON.parse(readFileSync(file!, 'utf8')) as DesiredState;
const when = pattern!.startsWith('before:') ? 'before' : 'after';
const match = new RegExp(pattern!.replace(/^before:/, ''));
const { applyId } = await prepareApply(store, async (_t, p, e) => (await observe(docker, p, e)).observed, {
  repo: 'acme/crash', pr: 7, environment: desired.environment, kind: 'apply', actor: 'child', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt',
  ...(policyFile ? { policy: JSON.parse(readFileSync(policyFile, 'utf8')) as Policy } : {}),
});
process.stdout.write(`apply ${applyId}\n`);
const freeze = async (call: string) => {
  if (!match.test(call)) return;
  process.stdout.write(`paused ${call}\n`);
  await new Promise(() => setInterval(() => {}, 60_000));
};
const engine = hookedEngine(new DockerEngine(docker), { [when]: freeze });
// A short lease so the test's recovery can take over soon after the kill.
const executor = new Executor({ store, engine: () => engine, lanes: new Lanes(), parallelism: 1, healthPollMs: 50, leaseTtlMs: 1000 });
const state = await executor.run(applyId);
process.stdout.write(`done ${state}\n`);
await store.close();
