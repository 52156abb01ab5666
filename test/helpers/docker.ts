// The Docker client the real-engine tests share, and the one way they clean up:
// everything labelled with a (test) project, containers first.
import { randomBytes } from 'node:crypto';
import Dockerode from 'dockerode';
import { afterAll, beforeAll } from 'vitest';
import { LABEL } from '../../src/model/model.js';
import { DOCKER_SOCKET } from './env.js';
import { sqliteTestStore } from './stores.js';
import type { TestStore } from './stores.js';
import { until } from './wait.js';

export const docker = new Dockerode({ socketPath: DOCKER_SOCKET });

/** stdout and stderr of a shell command run in a running container */
export async function execIn(container: string, cmd: string): Promise<string> {
  const e = await docker.getContainer(container).exec({ Cmd: ['sh', '-c', cmd], AttachStdout: true, AttachStderr: true });
  const stream = await e.start({ hijack: true, stdin: false });
  const out: Buffer[] = [];
  const sink = { write: (b: Buffer) => out.push(b) };
  docker.modem.demuxStream(stream, sink as unknown as NodeJS.WritableStream, sink as unknown as NodeJS.WritableStream);
  await new Promise((r) => stream.on('end', r));
  return Buffer.concat(out).toString();
}

/**
 * Removes a test project's containers, networks and volumes (label-filtered;
 * only one environment's with `environment`), containers first since a
 * network or volume in use cannot go. Tests call it as they go (per test, or
 * per environment once it is checked), not only at the end of a file: every
 * network left behind holds one of the engine's few default address pools.
 * Something already gone is fine; any other failure is reported after
 * everything else was tried.
 */
export async function removeProject(project: string, opts: { environment?: string; client?: Dockerode } = {}): Promise<void> {
  if (!project.startsWith('t-')) throw new Error(`test projects start with t- (scripts/cleanup-docker.sh relies on it): ${project}`);
  const client = opts.client ?? docker;
  const filters = { label: [`${LABEL.project}=${project}`, ...(opts.environment ? [`${LABEL.environment}=${opts.environment}`] : [])] };
  const problems: string[] = [];
  const attempt = (what: string, p: Promise<unknown>) =>
    p.catch((err: { statusCode?: number; message?: string }) => {
      if (err?.statusCode !== 404) problems.push(`${what}: ${err?.message ?? String(err)}`);
    });
  // A removal the engine is already making (an earlier cleanup's, or the app's own, still under way) answers 409:
  // that container goes, so it is waited for rather than reported (a network it is on could not go before it).
  const removeContainer = (id: string) =>
    client
      .getContainer(id)
      .remove({ force: true, v: true })
      .catch(async (err: { statusCode?: number; message?: string }) => {
        if (err?.statusCode !== 409 || !/already in progress/.test(err.message ?? '')) throw err;
        await until(`container ${id} removed`, () => client.getContainer(id).inspect().then(() => false, (e: { statusCode?: number }) => (e?.statusCode === 404 ? true : Promise.reject(e))), { timeoutMs: 30_000, intervalMs: 100 });
      });
  for (const c of await client.listContainers({ all: true, filters })) await attempt(`remove container ${c.Names[0]}`, removeContainer(c.Id));
  for (const n of await client.listNetworks({ filters })) await attempt(`remove network ${n.Name}`, client.getNetwork(n.Id).remove());
  for (const v of (await client.listVolumes({ filters })).Volumes ?? []) await attempt(`remove volume ${v.Name}`, client.getVolume(v.Name).remove({ force: true }));
  if (problems.length) throw new Error(`could not clean up test project ${project}: ${problems.join('; ')}`);
}

/**
 * Watches Docker's live event stream for container creates of a project: the
 * engine's own record of what was created (not its history, which keeps only
 * the last 256 events and parallel tests rotate out). `stop` waits until the
 * stream has caught up, by creating a sentinel container of the project and
 * waiting for its own create event (the engine publishes events in order), so
 * no create is missed however late a loaded engine delivers it; then it closes
 * the stream and removes the sentinel, which `names` never lists.
 */
export async function watchCreates(project: string, client: Dockerode = docker): Promise<{ names: string[]; stop: () => Promise<void> }> {
  const stream = (await client.getEvents({ filters: { type: ['container'], event: ['create'], label: [`${LABEL.project}=${project}`] } })) as unknown as NodeJS.ReadableStream & { destroy(): void };
  const names: string[] = [];
  let buf = '';
  stream.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim()) names.push((JSON.parse(line) as { Actor: { Attributes: { name: string } } }).Actor.Attributes.name);
    }
  });
  let failed: Error | undefined;
  stream.on('error', (err: Error) => (failed = err));
  return {
    names,
    stop: async () => {
      const sentinel = `${project}-watch-sentinel-${randomBytes(4).toString('hex')}`;
      const c = await client.createContainer({ name: sentinel, Image: 'berth-test/app:1', Labels: { [LABEL.project]: project, 'io.berth.test': '1' } });
      try {
        await until(`the create event of ${sentinel} (the event stream caught up)`, () => {
          if (failed) throw new Error(`the Docker event stream failed: ${failed.message}`);
          return names.includes(sentinel);
        });
      } finally {
        stream.destroy();
        await c.remove({ force: true });
      }
      names.splice(names.indexOf(sentinel), 1);
    },
  };
}

/**
 * The usual frame of a real-engine test file: the project is removed before
 * and after, and a fresh SQLite store lives for the file. Call inside describe.
 */
export function projectWithStore(project: string): { readonly ts: TestStore } {
  const box: { ts?: TestStore } = {};
  beforeAll(async () => {
    await removeProject(project);
    box.ts = await sqliteTestStore();
  });
  afterAll(async () => {
    await box.ts?.dispose();
    await removeProject(project);
  });
  return {
    get ts() {
      if (!box.ts) throw new Error('the store exists only while the tests run');
      return box.ts;
    },
  };
}
