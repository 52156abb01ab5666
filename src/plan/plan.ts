// The Plan DAG: what reconcile produces, what the renderer shows and what the
// executor runs. Every node is exactly one Docker call.
import type { DesiredState, FailureAction, ServiceSpec } from '../model/model.js';

export const NODE_KINDS = [
  'CreateNetwork',
  'RemoveNetwork',
  'ConnectNetwork',
  'DisconnectNetwork',
  'CreateVolume',
  'EnsureImage',
  'CreateContainer',
  'StartContainer',
  'UnpauseContainer',
  'StopContainer',
  'RemoveContainer',
  'RenameContainer',
  'WaitHealthy',
  'WaitExited',
  /** between two batches of a rollout (update_config): counts the failed replicas, applies failure_action, waits the delay */
  'BatchGate',
] as const;
export type NodeKind = (typeof NODE_KINDS)[number];

export interface PlanNode {
  /** 1-based, dense, stable for a given (desired, observed) */
  id: number;
  kind: NodeKind;
  /** what the node acts on: `service:web:1`, `network:default`, `volume:data`, `image:docker.io/library/nginx:latest` */
  resource: string;
  /** why: missing, config changed, image changed, stopped, scale down, orphan, network changed, ... */
  reason: string;
  /** shown in parentheses: the temporary container name of a recreate, the network of a connect, ... */
  detail?: string;
  /** nodes that together make one logical step, e.g. `recreate:web:1` */
  group?: string;
  /** ids of nodes that must succeed first, ascending */
  deps: number[];
  /** execution parameters (not part of the canonical text) */
  target: NodeTarget;
}

/**
 * start-first: how long a replaced container keeps serving, outside the service's DNS name, before it is
 * stopped. Longer than TCP's first SYN retransmission (1 s), so a client that looked up the old address
 * just before its DNS record went is still answered by it.
 */
export const DRAIN_MS = 2000;

export interface NodeTarget {
  service?: string;
  replica?: number;
  /** the docker name the node creates, renames to, or acts on */
  containerName?: string;
  /** an existing container the node acts on (observed id) */
  containerId?: string;
  /** for RenameContainer: the current (temporary) name */
  fromName?: string;
  /** compose network key */
  network?: string;
  /** compose volume key */
  volume?: string;
  image?: string;
  configHash?: string;
  /** for a recreate's CreateContainer: the old container's anonymous volumes, mounted again at the same paths */
  inheritVolumes?: { name: string; target: string }[];
  /** for a rollout's CreateContainer: the image the replaced container serves (named when a failed gate rolls back) */
  previousImage?: string;
  /** start-first: the new container is created and connected without the service's aliases (it joins DNS once healthy) */
  outsideDns?: boolean;
  /**
   * start-first, for the StopContainer of the replaced container: how long it keeps serving, back on its
   * networks outside the service's DNS name, before it is stopped (DRAIN_MS)
   */
  drainMs?: number;
  /** for a rollout gate (WaitHealthy) on a service without a healthcheck: how long the new container must keep running */
  monitorMs?: number;
  /** for a BatchGate: the rollout it guards */
  rollout?: { batch: number; batches: number; replicas: number; delayMs: number; failureAction: FailureAction; maxFailureRatio: number };
}

export type ChangeAction = 'create' | 'change' | 'remove' | 'unchanged';

/** One row of the human summary: per service, network or volume. */
export interface ResourceChange {
  kind: 'service' | 'network' | 'volume';
  name: string;
  action: ChangeAction;
  /** short reasons: "image changed", "scale 1 → 3", "2 stopped containers started" */
  reasons: string[];
  /** for services: the old and new specs to diff field by field */
  before?: ServiceSpec;
  /** the fields of `before` a secret fed when it was deployed (its containers' io.berth.secret-fields label): masked on that side */
  beforeSecretFields?: string[];
  after?: ServiceSpec;
  replicasBefore?: number;
  replicasAfter?: number;
}

export interface Plan {
  project: string;
  environment: string;
  nodes: PlanNode[];
  changes: ResourceChange[];
  desiredDigest: string;
  observedDigest: string;
  /** desiredDigest + observedDigest: an apply refuses when the world no longer matches */
  fingerprint: string;
  /** the desired state the nodes were planned from; the executor reads specs from here */
  desired: DesiredState;
  /** `rollback`: planned for a /rollback, with each service's deploy.rollback_config */
  rollout?: 'rollback';
}

export function isEmpty(plan: Plan): boolean {
  return plan.nodes.length === 0;
}

export function nodeLine(node: PlanNode): string {
  const detail = node.detail ? ` (${node.detail})` : '';
  const group = node.group ? ` [${node.group}]` : '';
  return `[${node.deps.join(',')}] -> #${node.id} ${node.resource}, ${node.kind}, ${node.reason}${detail}${group}`;
}

/** The canonical text form: one line per node, the golden-test format. */
export function planToString(plan: Plan): string {
  return plan.nodes.map(nodeLine).join('\n') + (plan.nodes.length ? '\n' : '');
}

export interface PlanSummary {
  create: number;
  change: number;
  remove: number;
  unchanged: number;
}

export function summarize(plan: Plan): PlanSummary {
  const s: PlanSummary = { create: 0, change: 0, remove: 0, unchanged: 0 };
  for (const c of plan.changes) s[c.action]++;
  return s;
}
