// A replica that drives an existing apply: argv <database url> <apply id>.
// Prints "driven <state>" when it drove it, "not-driven <state>" when another process held the apply.
import Dockerode from 'dockerode';
import { DockerEngine } from '../../src/docker/engine.js';
import { Executor } from '../../src/executor.js';
import { Lanes } from '../../src/lanes.js';
import { openStore } from '../../src/store/open.js';

const [url, applyId, barrier] = process.argv.slice(2);
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
// Both children start at the same instant.
while (Date.now() < Number(barrier)) await new Promise((r) => setTimeout(r, 1));
const state = await executor.run(applyId!);
process.stdout.write(`${drove ? 'driven' : 'not-driven'} ${state}\n`);
await store.close();
