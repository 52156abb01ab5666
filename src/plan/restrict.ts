// A plan cut down to some services: what an automatic rollback (issue 13) runs
// when it returns the services whose rollout failed to their earlier state and
// must leave every other service exactly as it runs now. Pure.
import type { Plan, PlanNode } from './plan.js';

/** Kinds that only add what the kept nodes need (an image, a network, a volume): kept when a kept node waits for them. */
const SUPPORT: ReadonlySet<string> = new Set(['EnsureImage', 'CreateNetwork', 'CreateVolume']);

/**
 * The nodes acting on `services`, plus the images, networks and volumes they
 * wait for (transitively), renumbered densely; their waits on other services'
 * nodes are dropped (those services stay as they run). Refused (a string
 * saying why) when a kept node needs some other change first, such as a
 * network being replaced: the cut would then not be the whole story.
 */
export function restrictPlan(plan: Plan, services: ReadonlySet<string>): Plan | string {
  const byId = new Map(plan.nodes.map((n) => [n.id, n]));
  const keep = new Set<number>();
  const queue = plan.nodes.filter((n) => n.target.service !== undefined && services.has(n.target.service));
  while (queue.length) {
    const n = queue.pop()!;
    if (keep.has(n.id)) continue;
    keep.add(n.id);
    for (const d of n.deps) {
      const dep = byId.get(d)!;
      if (dep.target.service !== undefined && services.has(dep.target.service)) queue.push(dep);
      else if (SUPPORT.has(dep.kind)) {
        // A support node that itself waits for something (a network replaced: its removal) is more than support.
        if (dep.deps.some((x) => !SUPPORT.has(byId.get(x)!.kind))) return `${dep.kind} ${dep.resource} needs other changes first (${dep.reason})`;
        queue.push(dep);
      } else if (dep.target.service === undefined) return `${n.kind} ${n.resource} needs ${dep.kind} ${dep.resource} (${dep.reason}) first`;
      // A wait on another service's step: that service keeps running as it is, so there is nothing to wait for.
    }
  }
  const ids = [...keep].sort((a, b) => a - b);
  const renumber = new Map(ids.map((id, i) => [id, i + 1]));
  const nodes: PlanNode[] = ids.map((id) => {
    const n = byId.get(id)!;
    return { ...n, id: renumber.get(id)!, deps: n.deps.filter((d) => renumber.has(d)).map((d) => renumber.get(d)!).sort((a, b) => a - b) };
  });
  const touched = new Set(nodes.map((n) => n.resource.split(':').slice(0, 2).join(':')));
  const changes = plan.changes.filter((c) => (c.kind === 'service' ? services.has(c.name) : touched.has(`${c.kind}:${c.name}`)));
  return { ...plan, nodes, changes };
}
