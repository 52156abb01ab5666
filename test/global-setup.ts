// Before any test: when a Docker engine is reachable, make sure the local test
// images exist (scripts/test-images.sh builds them from busybox, no registry),
// so `npm install && npm test` works on a fresh machine with Docker.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import Dockerode from 'dockerode';

const SOCKET = process.env.DOCKER_SOCKET ?? '/var/run/docker.sock';
const IMAGES = ['berth-test/app:1', 'berth-test/app:2'];

export default async function setup(): Promise<void> {
  if (!existsSync(SOCKET)) return; // Docker tests skip (or fail under CI=true) on their own.
  const docker = new Dockerode({ socketPath: SOCKET });
  const missing: string[] = [];
  for (const image of IMAGES) {
    try {
      await docker.getImage(image).inspect();
    } catch {
      missing.push(image);
    }
  }
  if (!missing.length) return;
  console.log(`[berth tests] building missing test images (${missing.join(', ')}) with scripts/test-images.sh`);
  const r = spawnSync('bash', ['scripts/test-images.sh'], { stdio: 'inherit' });
  if (r.status !== 0) {
    throw new Error(`could not build the test images ${missing.join(', ')}: run \`bash scripts/test-images.sh\` (needs busybox-static: apt-get install busybox-static)`);
  }
}
