// Drives an apply in a child process (pause-child.ts), SIGKILLs it right after
// a chosen Docker call, and recovers the apply in this process once the dead
// driver's lease has expired: a crash at an exact point, on the real engine.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerEngine } from '../../src/docker/docker-engine.js';
import { Executor } from '../../src/apply/executor.js';
import { Lanes } from '../../src/apply/lanes.js';
import type { DesiredState } from '../../src/model/model.js';
import type { AggregateState, Store } from '../../src/store/store.js';
import { docker } from './docker.js';
import type { Policy } from '../../src/compose/policy.js';

/**
 * Starts the apply, waits until the child froze after the call matching
 * `pattern`, then until `ready()` holds (e.g. a job exited), and kills it.
 * Returns the apply id.
 */
export async function crashAt(url: string, desired: DesiredState, pattern: string, ready: () => Promise<boolean> = async () => true, policy?: Policy): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-crash-'));
  const file = join(dir, 'desired.json');
  writeFileSync(file, JSON.stringify(desired));
  // The apply's policy (the pre-create guard denies every bind mount without one).
  const policyFile = join(dir, 'policy.json');
  if (policy) writeFileSync(policyFile, JSON.stringify(policy));
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/pause-child.ts', url, file, pattern, ...(policy ? [policyFile] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  try {
    const deadline = Date.now() + 60_000;
    while (!out.includes('paused') || !(await ready())) {
      if (child.exitCode !== null) throw new Error(`child ended before the crash point ${pattern}: ${out}\n${err}`);
      if (Date.now() > deadline) throw new Error(`child never reached ${pattern}: ${out}\n${err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    await exited;
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  const applyId = /apply (\S+)/.exec(out)?.[1];
  if (!applyId) throw new Error(`child printed no apply id: ${out}\n${err}`);
  return applyId;
}

/** Recovers with a fresh executor as soon as the killed driver's lease lets it. */
export async function recoverAfterCrash(store: Store, applyId: string): Promise<AggregateState> {
  const executor = new Executor({ store, engine: () => new DockerEngine(docker), lanes: new Lanes(), healthPollMs: 50 });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const found = (await executor.recover()).find((r) => r.applyId === applyId);
    if (found) return found.state;
    if (Date.now() > deadline) throw new Error(`apply ${applyId} was never recovered`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
