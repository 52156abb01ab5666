// A replica that drives an existing apply: argv <database url> <apply id>.
// Prints "ready" once set up, starts when a line arrives on stdin (the test
// releases all replicas at once, however long each took to start), then
// prints "driven <state>" when it drove it, "not-driven <state>" when another
// process held the apply.
import Dockerode from 'dockerode';
import { DockerEngine } from '../../src/docker/docker-engine.js';
import { Executor } from '../../src/apply/executor.js';
import { Lanes } from '../../src/apply/lanes.js';
import { openStore } from '../../src/store/open.js';

const [url, applyId] = process.argv.slice(2);
const docker = new Dockerode({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
const store = await openStore(url!);
let drove = false;
const executor = new Executor({
  store,
  engine: () => new DockerEngine(docker),
  lanes: new Lanes(),
  healthPollMs: 50,
  onProgress: () => void (drove = true),
});
// Both children start at the same instant: when the test, having seen every "ready", says go.
process.stdout.write('ready\n');
await new Promise<void>((r) => process.stdin.once('data', () => r()));
process.stdin.pause();
const state = await executor.run(applyId!);
process.stdout.write(`${drove ? 'driven' : 'not-driven'} ${state}\n`);
await store.close();
