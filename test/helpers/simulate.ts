// Applies a plan to an observed state the way Docker would, without Docker:
// the "observedAfterApplying" of the convergence property and of golden inputs.
import type { ObservedContainer, ObservedState } from '../../src/model/model.js';
import { names } from '../../src/model/model.js';
import type { Plan } from '../../src/plan/plan.js';

export function emptyObserved(project: string, environment: string): ObservedState {
  return { project, environment, containers: [], networks: [], volumes: [] };
}

export function simulate(plan: Plan, observed: ObservedState, idPrefix = 'c'): ObservedState {
  const out: ObservedState = structuredClone(observed);
  const { project, environment } = plan;
  let n = 0;
  const find = (id?: string, name?: string): ObservedContainer => {
    const c = out.containers.find((x) => (id ? x.id === id : x.name === name));
    if (!c) throw new Error(`simulate: no container ${id ?? name}`);
    return c;
  };
  for (const node of [...plan.nodes].sort((a, b) => a.id - b.id)) {
    const t = node.target;
    switch (node.kind) {
      case 'CreateNetwork': {
        const spec = plan.desired.networks.find((x) => x.spec.name === t.network)!;
        out.networks.push({ id: `net-${t.network}-${idPrefix}${n++}`, dockerName: names.network(project, environment, t.network!), name: t.network!, configHash: spec.configHash });
        break;
      }
      case 'RemoveNetwork':
        out.networks = out.networks.filter((x) => x.id !== t.containerId);
        break;
      case 'CreateVolume': {
        const spec = plan.desired.volumes.find((x) => x.spec.name === t.volume)!;
        out.volumes.push({ dockerName: names.volume(project, environment, t.volume!), name: t.volume!, configHash: spec.configHash });
        break;
      }
      case 'EnsureImage':
      case 'WaitHealthy':
      case 'BatchGate':
        break;
      case 'WaitExited': {
        // The job ran to its end: it exited 0 (a failure would have stopped the plan).
        const c = find(undefined, t.containerName);
        c.state = 'exited';
        c.exitCode = 0;
        break;
      }
      case 'UnpauseContainer':
        find(t.containerId).state = 'running';
        break;
      case 'CreateContainer': {
        const d = plan.desired.services.find((x) => x.spec.name === t.service)!;
        if (out.containers.some((c) => c.name === t.containerName)) throw new Error(`simulate: name conflict ${t.containerName}`);
        out.containers.push({
          id: `${idPrefix}${n++}`,
          name: t.containerName!,
          service: t.service!,
          replica: t.replica!,
          configHash: d.configHash,
          config: d.spec,
          image: d.spec.image,
          state: 'created',
          networks: t.network ? [t.network] : [],
        });
        break;
      }
      case 'ConnectNetwork':
        find(t.containerId, t.containerName).networks.push(t.network!);
        break;
      case 'DisconnectNetwork': {
        const c = find(t.containerId, t.containerName);
        c.networks = c.networks.filter((x) => x !== t.network);
        break;
      }
      case 'StartContainer':
        find(t.containerId, t.containerName).state = 'running';
        break;
      case 'StopContainer':
        find(t.containerId).state = 'exited';
        break;
      case 'RemoveContainer':
        out.containers = out.containers.filter((c) => c.id !== t.containerId);
        break;
      case 'RenameContainer': {
        if (out.containers.some((c) => c.name === t.containerName)) throw new Error(`simulate: rename conflict ${t.containerName}`);
        find(undefined, t.fromName).name = t.containerName!;
        break;
      }
    }
  }
  return out;
}
