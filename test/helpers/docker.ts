// The Docker client the real-engine tests share, and the one way they clean up:
// everything labelled with a (test) project, containers first.
import Dockerode from 'dockerode';
import { afterAll, beforeAll } from 'vitest';
import { LABEL } from '../../src/model.js';
import { DOCKER_SOCKET } from './env.js';
import { sqliteTestStore } from './stores.js';
import type { TestStore } from './stores.js';

export const docker = new Dockerode({ socketPath: DOCKER_SOCKET });

/** Removes the project's containers, networks and volumes (label-filtered). */
export async function removeProject(project: string, client: Dockerode = docker): Promise<void> {
  const label = { label: [`${LABEL.project}=${project}`] };
  for (const c of await client.listContainers({ all: true, filters: label })) await client.getContainer(c.Id).remove({ force: true }).catch(() => {});
  for (const n of await client.listNetworks({ filters: label })) await client.getNetwork(n.Id).remove().catch(() => {});
  for (const v of (await client.listVolumes({ filters: label })).Volumes ?? []) await client.getVolume(v.Name).remove().catch(() => {});
}

/**
 * Watches Docker's live event stream for container creates of a project: the
 * engine's own record of what was created (not its history, which keeps only
 * the last 256 events and parallel tests rotate out). `stop` lets late events
 * arrive, then closes the stream.
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
  stream.on('error', () => {});
  return {
    names,
    stop: async () => {
      await new Promise((r) => setTimeout(r, 300));
      stream.destroy();
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
