// The Docker engine taken away and brought back by a test, through
// scripts/dockerd.sh (the script .ci/run starts dockerd with): stopped by the
// PID in its pid file, checked to be the dockerd serving the socket, never by
// process name; started again with the flags and log it had.
import { execFile } from 'node:child_process';
import { DOCKER_SOCKET } from './env.js';

const SCRIPT = 'scripts/dockerd.sh';

/** How to start the engine again: what `scripts/dockerd.sh stop` printed. */
export interface Relaunch {
  log: string;
  bin: string;
  args: string[];
}

/** Runs the script without blocking the event loop: an apply in this process lives through the outage. */
function script(args: string[], env: Record<string, string> = {}): Promise<string> {
  // Stopping the engine needs root; a non-root CI user has passwordless sudo (.ci/run needs it too).
  const asRoot = process.getuid?.() === 0 ? [] : ['sudo', '-n', '--preserve-env=DOCKER_SOCK,DOCKERD_PIDFILE,DOCKERD_LOG,DOCKERD_BIN'];
  const [cmd, ...rest] = [...asRoot, 'bash', SCRIPT, ...args];
  return new Promise((resolve, reject) =>
    execFile(cmd!, rest, { encoding: 'utf8', env: { ...process.env, DOCKER_SOCK: DOCKER_SOCKET, ...env }, timeout: 180_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${SCRIPT} ${args[0]} failed (${err.code ?? err.signal}): ${stderr.trim() || err.message}`)) : resolve(stdout),
    ),
  );
}

/** The PID of the dockerd serving the test socket, verified (throws, saying why, when there is none). */
export async function dockerdPid(): Promise<number> {
  return Number((await script(['pid'])).trim());
}

/** SIGTERMs the verified dockerd and waits until it exited. */
export async function stopDockerd(): Promise<Relaunch> {
  const [log, bin, ...args] = (await script(['stop'])).replace(/\n$/, '').split('\n');
  return { log: log!, bin: bin!, args };
}

/** Starts dockerd as it was before `stopDockerd`, and waits until it answers. */
export async function startDockerd(r: Relaunch): Promise<void> {
  await script(['start', ...r.args], { DOCKERD_LOG: r.log, DOCKERD_BIN: r.bin });
}
