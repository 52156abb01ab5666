// A separate process that starts and drives an apply, for the crash-recovery
// test to SIGKILL at an arbitrary point. argv: <database url> <project> <environment> [lease ttl ms, default 1000]
import Dockerode from 'dockerode';
import { prepareApply } from '../../src/apply/prepare-apply.js';
import { DockerEngine } from '../../src/docker/docker-engine.js';
import { observe } from '../../src/docker/observe.js';
import { Executor } from '../../src/apply/executor.js';
import { Lanes } from '../../src/apply/lanes.js';
import { openStore } from '../../src/store/open.js';
import { crashStack } from './crash-stack.js';

const [url, project, environment, leaseMs] = process.argv.slice(2);
const docker = new Dockerode({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
const store = await openStore(url!);
const desired = crashStack(project!, environment!);
const { applyId } = await prepareApply(store, async (_t, p, e) => (await observe(docker, p, e)).observed, {
  repo: 'acme/crash', pr: 7, environment: environment!, kind: 'apply', actor: 'child', headSha: 'abc', desired, targets: ['local'], onFailure: 'halt',
});
process.stdout.write(`apply ${applyId}\n`);
// By default a short lease, so the test's recovery can take over soon after the kill.
const executor = new Executor({ store, engine: () => new DockerEngine(docker), lanes: new Lanes(), parallelism: 3, healthPollMs: 50, leaseTtlMs: Number(leaseMs ?? 1000) });
const state = await executor.run(applyId);
process.stdout.write(`done ${state}\n`);
await store.close();
