// The Docker client the real-engine tests share, and the one way they clean up:
// everything labelled with a (test) project, containers first.
import Dockerode from 'dockerode';
import { LABEL } from '../../src/model.js';
import { DOCKER_SOCKET } from './env.js';

export const docker = new Dockerode({ socketPath: DOCKER_SOCKET });

/** Removes the project's containers, networks and volumes (label-filtered). */
export async function removeProject(project: string, client: Dockerode = docker): Promise<void> {
  const label = { label: [`${LABEL.project}=${project}`] };
  for (const c of await client.listContainers({ all: true, filters: label })) await client.getContainer(c.Id).remove({ force: true }).catch(() => {});
  for (const n of await client.listNetworks({ filters: label })) await client.getNetwork(n.Id).remove().catch(() => {});
  for (const v of (await client.listVolumes({ filters: label })).Volumes ?? []) await client.getVolume(v.Name).remove().catch(() => {});
}
