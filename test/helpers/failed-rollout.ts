// A rollout of `web` (start-first, one replica a batch) that failed at its
// second replica, journaled as the executor would leave it: replica 1 took
// over, replica 2's health gate failed (steps before it succeeded, after it
// skipped), replica 3 never began, the second batch gate failed. `other`
// answers first for the nodes a test wants otherwise (a service halted
// before it ran, say). The auto-rollback decision is made from such rows.
import type { PlanNode } from '../../src/plan/plan.js';
import type { Fence, Store, TaskState } from '../../src/store/store.js';

export async function journalFailedRollout(store: Store, applyId: string, nodes: readonly PlanNode[], fence: Fence, other?: (n: PlanNode) => TaskState | undefined): Promise<void> {
  const gateOf = (group: string) => nodes.find((n) => n.group === group && n.kind === 'WaitHealthy')!.id;
  for (const t of await store.listTasksForApply(applyId)) {
    const n = nodes.find((x) => x.id === t.nodeId)!;
    let state: TaskState = other?.(n) ?? 'succeeded';
    if (n.kind === 'BatchGate') state = n.target.rollout!.batch === 1 ? 'succeeded' : 'failed';
    else if (n.group === 'start-first:web:2') state = n.id < gateOf(n.group) ? 'succeeded' : n.id === gateOf(n.group) ? 'failed' : 'skipped';
    else if (n.group === 'start-first:web:3') state = 'skipped';
    if (!(await store.updateTask(t.id, 'pending', { state, ...(state === 'failed' ? { error: 'unhealthy' } : {}) }, fence))) throw new Error(`task ${t.id} was not pending`);
  }
}
