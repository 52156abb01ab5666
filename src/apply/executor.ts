// Walks an apply's task DAG against Docker. Every task is journaled: written
// `running` before its Docker call and `succeeded`/`failed` after, so a crash
// leaves an exact record of which calls may have happened. Operation and
// apply states are derived from task rows and written compare-and-set.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { DENY_ALL, type Policy } from '../compose/policy.js';
import type { CreateExtras, Engine, EngineError } from './engine.js';
import { guardContainer, guardImage } from '../docker/guard.js';
import { requireApiFor } from '../docker/api-version.js';
import type { RegistryLookup } from '../compose/registries.js';
import { secretContents, type Masker } from '../plan/mask.js';
import { maskerForSpecs } from '../plan/render.js';
import { dockerNames, LABEL } from '../model/model.js';
import { endpointConfig } from '../docker/create-options.js';
import { containerNamesOf, type ContainerNames } from '../compose/joins.js';
import type { DesiredState, FileMount } from '../model/model.js';
import type { PlanNode } from '../plan/plan.js';
import type { Lanes } from './lanes.js';
import { JournalQueue } from './journal-queue.js';
import { HeldLease, LeaseLostError } from './lease.js';
import { deriveApplyWithSibling, deriveOperationState } from './derive-state.js';
import { noKeyError } from '../secrets/keyring.js';
import { jsonMayHoldPlaceholders, placeholdersIn, revealIn } from '../secrets/placeholder.js';
import type { SecretRevealer } from '../secrets/vault.js';
import type { AggregateState, ApplyRow, Fence, OperationRow, Store, TaskPatch, TaskRow, TaskState, TaskUpdate } from '../store/store.js';
import { retryingStore } from '../store/retry.js';
import { IN_FLIGHT_AGGREGATE_STATES, TERMINAL_AGGREGATE_STATES } from '../store/store.js';

export type OnFailure = 'halt' | 'continue';

/** Operations of the running apply that failed under on_failure: halt. */
interface Halt {
  by: Set<string>;
}

/** What one drive of an apply works under: its lease (fence for journal writes, liveness before Docker calls). */
interface Drive {
  lease: HeldLease;
  /** false once any lease this work depends on is lost: no new Docker call may start */
  live(): boolean;
}

/** What an apply's stored desired state (apply_payloads) holds: enough to run, resume or roll back without the PR. */
export interface ApplyPayload {
  desired: DesiredState;
  onFailure: OnFailure;
  parallelism?: number;
  /** keys and values that are secret besides the PASSWORD/TOKEN/KEY/… names (the environment's secret_keys, secret variables) */
  secretKeys?: string[];
  secretValues?: string[];
  /** the default branch's policy when the apply was made; the pre-create guard enforces it on the target (absent: deny all) */
  policy?: Policy;
  /** an automatic rollback (issue 13): the services it returns (its plan touches only them) and the failed apply it follows */
  services?: string[];
  rollbackOf?: string;
}

/**
 * What the process that stored an apply gives the driver it starts at once:
 * the lease startApply took with the apply, and the rows it wrote. Nothing
 * has touched them yet (the lease is this process's), so the drive starts
 * from them instead of reading back what was just written; every write it
 * makes is still a fenced compare-and-set, so rows that did move (a /stop
 * cancelling pending tasks) are found at the first refused write. The drive
 * it is given to takes its rows and updates them in place.
 */
export interface Handover {
  fence: Fence;
  repo: string;
  environment: string;
  /** the stored payload, as text (placeholders of server-side secrets are searched in it) */
  desiredJson: string;
  payload: ApplyPayload;
  /** each operation's rows; `nodes[i]`, when given, is the plan node `tasks[i].nodeJson` was written from (not parsed again) */
  operations: { row: OperationRow; tasks: TaskRow[]; nodes?: readonly PlanNode[] }[];
}

const isHandover = (x: Fence | Handover | boolean): x is Handover => typeof x === 'object' && 'operations' in x;
/** Handovers a drive has taken (and changed): one given again is read from the store instead. */
const handedOver = new WeakSet<Handover>();

/**
 * A payload as one drive runs it: with the values of the server-side secrets
 * its desired state names (issue 18), decrypted for this drive only. Never
 * serialised: the stored payload keeps the placeholders.
 */
type RunPayload = ApplyPayload & { revealed?: ReadonlyMap<string, string> };

/**
 * How EnsureImage makes an image present for the services that use it: by their pull_policy, once per
 * `platform:` they name (docker compose pulls each service's platform; the pinned digest is the image's index,
 * so the engine would otherwise pull the host's platform, and creating the container for the service's
 * platform would fail).
 */
export function imagePulls(users: readonly { spec: Pick<DesiredState['services'][number]['spec'], 'pullPolicy' | 'platform'> }[]): { pull: boolean; always: boolean; platform?: string }[] {
  const pull = !users.length || users.some((s) => s.spec.pullPolicy !== 'never');
  const always = users.some((s) => s.spec.pullPolicy === 'always');
  const platforms = [...new Set(users.map((s) => s.spec.platform).filter((p): p is string => !!p))].sort();
  // a user without platform: takes the host's, as before (when every user names one, only theirs are pulled)
  const hostToo = !users.length || users.some((s) => !s.spec.platform);
  return [...(hostToo ? [{ pull, always }] : []), ...platforms.map((platform) => ({ pull, always, platform }))];
}

/** Everything secret an apply knows of: keys, variable values, and the shown forms of the fields a secret fed. */
export function payloadMasker(payload: ApplyPayload): Masker {
  return maskerForSpecs(
    payload.desired.services.map((s) => s.spec),
    payload.desired.secretFields,
    payload.secretKeys,
    [...(payload.secretValues ?? []), ...secretContents(payload.desired)],
  );
}

/**
 * A Docker message as it may be stored, logged and shown: Docker echoes what it
 * was given (an entrypoint, a command, a mount), so secrets of the desired
 * state in it, or `--token=…`-like text, are masked, whole or by the pieces Docker quotes.
 */
export function redactError(message: string, payload: ApplyPayload): string {
  return payloadMasker(payload).withPieces().text(message);
}

export interface ExecutorLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ExecutorOptions {
  store: Store;
  engine: (target: string) => Engine;
  lanes: Lanes;
  /** tasks in flight per operation (default 8) */
  parallelism?: number;
  log?: ExecutorLogger;
  /** called after every task transition; reporting must never break the apply */
  onProgress?: (applyId: string) => void;
  healthPollMs?: number;
  /** upper bound for one WaitHealthy (default 5 min) */
  healthTimeoutMs?: number;
  /** upper bound for one WaitExited: how long a one-shot job (a migration) may run (default 30 min) */
  exitTimeoutMs?: number;
  /** how long operation/apply state derivation may lag the journal while tasks run (default 25 ms) */
  settleDelayMs?: number;
  /** who this driver is, for the per-apply and per-target leases (default host/pid/random) */
  holder?: string;
  /**
   * lease on an apply while driving it, and on a target while mutating it;
   * renewed every third of it, and work stops when a renewal fails (default 30 s)
   */
  leaseTtlMs?: number;
  /** how often a driver waiting for a target held by another process asks again (default 100 ms) */
  targetPollMs?: number;
  /** the berth server's resolver for registry names (policy.allow_registries); absent: a reference's form is checked, not its DNS */
  registryLookup?: RegistryLookup;
  /** how stale a cached stop flag may be (default 100 ms) */
  stopPollMs?: number;
  now?: () => number;
  /** how long a replaced start-first container drains before its stop; default: what the plan says (tests shorten it) */
  drainMs?: number;
  /** decrypts server-side secrets when an apply runs (issue 18); absent: an apply that names one fails with a clear message */
  secrets?: SecretRevealer;
}

const silent: ExecutorLogger = { info() {}, warn() {}, error() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FAILED_DEP: TaskState[] = ['failed', 'skipped', 'cancelled'];
/** A BatchGate runs once its batch has ended however it ended: it is the one that judges the failures. */
const TERMINAL: TaskState[] = ['succeeded', ...FAILED_DEP];
const isGate = (t: TaskRow) => t.kind === 'BatchGate';
/** whether `dep` (in `state`) no longer holds `t` back */
const depMet = (t: TaskRow, state: TaskState | undefined) => state === 'succeeded' || (isGate(t) && state !== undefined && state !== 'cancelled' && TERMINAL.includes(state));
const depBroken = (t: TaskRow, state: TaskState | undefined) => (isGate(t) ? state === 'cancelled' || state === undefined : FAILED_DEP.includes(state ?? 'failed'));

export function parsePayload(json: string): ApplyPayload {
  const p = JSON.parse(json) as ApplyPayload;
  if (!p?.desired?.services) throw new Error('apply payload has no desired state');
  return p;
}

/**
 * A create or rename that collides may be the same call replayed: after a
 * crash the engine can still be finishing a request the dead process sent,
 * so recovery found nothing yet. When the object in the way carries this
 * apply's id it is ours: adopt it instead of failing (the call ran once).
 * `adopt` returns `{ value }` to adopt, or undefined when the object is not ours.
 */
async function replayable<T>(call: () => Promise<T>, adopt: () => Promise<{ value: T } | undefined>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const status = (err as EngineError).statusCode;
    if (status !== 409 && status !== 404) throw err;
    const mine = await adopt().catch(() => undefined);
    if (!mine) throw err;
    return mine.value;
  }
}

/** The fields of `service` a secret fed, as the create labels them (the plan masks them on the deployed side later). */
function secretFieldsOfService(desired: DesiredState, service: string): { secretFields?: readonly string[] } {
  const fields = desired.secretFields && Object.hasOwn(desired.secretFields, service) ? desired.secretFields[service] : undefined;
  return fields?.length ? { secretFields: fields } : {};
}

/** The names a create needs that differ from berth's defaults (external networks and volumes, `name:`), and what it inherits. */
function createExtras(desired: DesiredState, inheritVolumes?: { name: string; target: string }[], outsideDns?: boolean): CreateExtras {
  const { networkNames, volumeNames, containerNames } = indexOf(desired);
  return { networkNames, volumeNames, containerNames, ...(inheritVolumes?.length ? { inheritVolumes } : {}), ...(outsideDns ? { outsideDns } : {}) };
}

/** What the calls of one apply look up in its desired state, by name. */
interface DesiredIndex {
  named: ReturnType<typeof dockerNames>;
  services: ReadonlyMap<string, DesiredState['services'][number]>;
  networkNames: Record<string, string>;
  volumeNames: Record<string, string>;
  /** services that set container_name: what a `service:` join of theirs names */
  containerNames: ContainerNames;
}

/**
 * Built once per desired state, not per call: a 200-service wave would
 * otherwise scan the services and build the name maps 200 times over, on
 * the critical path. A desired state is never changed once made.
 */
const indexes = new WeakMap<DesiredState, DesiredIndex>();
function indexOf(desired: DesiredState): DesiredIndex {
  let x = indexes.get(desired);
  if (!x) {
    const named = dockerNames(desired);
    const services = new Map<string, DesiredState['services'][number]>();
    // The first service of a name wins, as `find` did.
    for (const s of desired.services) if (!services.has(s.spec.name)) services.set(s.spec.name, s);
    x = {
      named,
      services,
      networkNames: Object.fromEntries(desired.networks.map((n) => [n.spec.name, named.network(n.spec.name)])),
      volumeNames: Object.fromEntries(desired.volumes.map((v) => [v.spec.name, named.volume(v.spec.name)])),
      containerNames: containerNamesOf(desired.services),
    };
    indexes.set(desired, x);
  }
  return x;
}

/** A service's configs and secrets with their content, as the engine puts them into the container. */
function filesFor(files: readonly FileMount[], desired: DesiredState) {
  return files.map((f) => {
    const content = desired.contents?.[`${f.kind}:${f.source}`];
    if (content === undefined) throw new Error(`${f.kind} ${f.source} has no content in the desired state`);
    // A copied repository file is kept as base64 (its bytes may not be text); configs and secrets are text.
    return { path: f.target, content: f.kind === 'file' ? Buffer.from(content, 'base64') : content, mode: f.mode, uid: Number(f.uid ?? 0), gid: Number(f.gid ?? 0) };
  });
}

/** Removing what is already gone has the effect we wanted. */
async function gone(call: () => Promise<void>): Promise<void> {
  try {
    await call();
  } catch (err) {
    if ((err as EngineError).statusCode !== 404) throw err;
  }
}

/** Kinds that change or take away something already there: once one has begun, its group is committed. */
const DESTRUCTIVE: ReadonlySet<string> = new Set(['StopContainer', 'RemoveContainer', 'RenameContainer', 'DisconnectNetwork', 'RemoveNetwork']);

/** A `succeeded` write nothing waits for yet (journal-queue.ts): one options object for every such write. */
const LAZY = { lazy: true } as const;

/** Tasks launched in one turn of the event loop at most (the journal's batch size). */
const LAUNCH_TURN = 32;

const nodes = new WeakMap<TaskRow, PlanNode>();
/** A task's plan node, parsed once per row object. */
function nodeOf(t: TaskRow): PlanNode {
  let n = nodes.get(t);
  if (!n) nodes.set(t, (n = JSON.parse(t.nodeJson) as PlanNode));
  return n;
}

/** A task's plan group. */
function groupName(t: TaskRow): string | undefined {
  return nodeOf(t).group;
}

/** The plan nodes of the task's group (empty when it has none). */
function groupOf(byNode: ReadonlyMap<number, TaskRow>, t: TaskRow): PlanNode[] {
  const g = groupName(t);
  if (!g) return [];
  return [...byNode.values()].map(nodeOf).filter((n) => n.group === g);
}

/**
 * Every group's plan nodes, in plan order, indexed in one pass the first time
 * a task with a group launches: launching a task then costs no scan of the
 * operation, and a plan without groups (a first deploy) parses no node early.
 */
function groupsOf(byNode: ReadonlyMap<number, TaskRow>): (t: TaskRow) => PlanNode[] {
  let groups: Map<string, PlanNode[]> | undefined;
  return (t) => {
    const g = groupName(t);
    if (!g) return [];
    if (!groups) {
      groups = new Map();
      for (const x of [...byNode.values()].sort((a, b) => a.nodeId - b.nodeId)) {
        const n = nodeOf(x);
        if (n.group) (groups.get(n.group) ?? groups.set(n.group, []).get(n.group)!).push(n);
      }
    }
    return groups.get(g) ?? [];
  };
}

/**
 * Per task, the longest chain of tasks from it to the end of the operation
 * (itself included). A plan numbers a node after its dependencies, so one
 * pass from the last node back suffices (tasks come in node order; sorted if not).
 */
function chainHeights(tasks: readonly TaskRow[]): Map<number, number> {
  let inOrder = true;
  for (let i = 1; i < tasks.length && inOrder; i++) if (tasks[i]!.nodeId < tasks[i - 1]!.nodeId) inOrder = false;
  const order = inOrder ? tasks : [...tasks].sort((a, b) => a.nodeId - b.nodeId);
  const height = new Map<number, number>();
  for (let i = order.length - 1; i >= 0; i--) {
    const t = order[i]!;
    const h = height.get(t.nodeId) ?? 1;
    height.set(t.nodeId, h);
    for (const d of t.deps) if ((height.get(d) ?? 0) < h + 1) height.set(d, h + 1);
  }
  return height;
}

/**
 * Pending tasks a stop must not cancel: every task of a group that has begun
 * a destructive step, and (transitively) the pending tasks they wait for,
 * with those tasks' own groups. Planning makes the outside waits succeed
 * before a group's first destructive step, so this is normally the begun
 * groups alone; the closure keeps the rule safe for any plan shape.
 */
function mustFinish(byNode: ReadonlyMap<number, TaskRow>): Set<number> {
  const members = new Map<string, TaskRow[]>();
  for (const t of byNode.values()) {
    const g = groupName(t);
    if (g) (members.get(g) ?? members.set(g, []).get(g)!).push(t);
  }
  const queue: TaskRow[] = [];
  // A start-first group is begun from its first step: a stop finishes the batch in flight (its new
  // container then serves), it never leaves a half-started replacement behind.
  for (const [g, ts] of members) if (ts.some((t) => (DESTRUCTIVE.has(t.kind) || g.startsWith('start-first:')) && t.state !== 'pending')) queue.push(...ts);
  const keep = new Set<number>();
  const groupsIn = new Set<string>();
  while (queue.length) {
    const t = queue.pop()!;
    if (t.state !== 'pending' || keep.has(t.nodeId)) continue;
    keep.add(t.nodeId);
    const g = groupName(t);
    if (g && !groupsIn.has(g)) {
      groupsIn.add(g);
      queue.push(...members.get(g)!);
    }
    for (const d of t.deps) {
      const dep = byNode.get(d);
      if (dep) queue.push(dep);
    }
  }
  return keep;
}

export class Executor {
  private readonly log: ExecutorLogger;
  private readonly now: () => number;
  private readonly running = new Map<string, Promise<AggregateState>>();

  /** the store behind a retry on transient errors (a killed connection, a deadlock, a busy file) */
  private readonly store: Store;

  constructor(private readonly o: ExecutorOptions) {
    this.log = o.log ?? silent;
    this.store = retryingStore(o.store, { onRetry: (method, attempt, err) => this.log.warn({ method, attempt, err: String(err) }, 'store call failed; retrying') });
    this.now = o.now ?? Date.now;
    this.holder = o.holder ?? `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
  }

  /**
   * Runs (or joins the run of) an apply to a terminal state. `held`: the
   * lease startApply gave this driver with the apply (its fence, or the
   * whole handover with the rows it wrote), or true when recovery already
   * took it. `ready`: work waits for it (the caller's start report), while
   * the apply already counts as driven here.
   */
  run(applyId: string, held: Fence | Handover | boolean = false, ready?: Promise<unknown>): Promise<AggregateState> {
    let p = this.running.get(applyId);
    if (!p) {
      p = this.driveLeased(applyId, held, ready).finally(() => this.running.delete(applyId));
      this.running.set(applyId, p);
    }
    return p;
  }

  /** Applies this process is driving now (for graceful shutdown). */
  inFlight(): string[] {
    return [...this.running.keys()];
  }

  /** who this driver is: startApply gives the new apply's lease to this holder */
  readonly holder: string;

  get leaseTtlMs(): number {
    return this.o.leaseTtlMs ?? 30_000;
  }

  /**
   * One driver per apply across processes and replicas: the lease
   * `apply:<id>` (taken with the apply, by recovery, or here) is held while
   * driving, renewed, and its loss stops the drive (fencing). Without it,
   * this call only reports the state another driver is making.
   */
  private async driveLeased(applyId: string, held: Fence | Handover | boolean, ready?: Promise<unknown>): Promise<AggregateState> {
    const name = `apply:${applyId}`;
    // A handover is the rows as just stored: good for one drive (it updates them). Given again, only its fence counts.
    const handover = isHandover(held) && !handedOver.has(held) ? held : undefined;
    if (handover) handedOver.add(handover);
    // When the stored apply reached its driver: its stop flag (unset at creation) counts as read then.
    const handedAt = handover ? this.now() : undefined;
    const fence = typeof held === 'object' ? (isHandover(held) ? held.fence : held) : undefined;
    const lease = handover
      ? HeldLease.adopt(this.store, handover.fence, this.leaseTtlMs, this.now, this.log)
      : fence
        ? await HeldLease.resume(this.store, fence, this.leaseTtlMs, this.now, this.log)
        : await HeldLease.take(this.store, name, this.holder, this.leaseTtlMs, this.now, this.log);
    if (!lease) {
      this.log.info({ applyId, holder: (await this.store.getLease(name))?.holder }, 'apply is driven by another process');
      return (await this.store.getApplyStatus(applyId))?.state ?? 'pending';
    }
    try {
      await ready?.catch(() => undefined);
      return await this.drive(applyId, lease, handover && { ...handover, at: handedAt! });
    } finally {
      await lease.release();
    }
  }

  private async drive(applyId: string, lease: HeldLease, handover?: Handover & { at: number }): Promise<AggregateState> {
    let apply: Pick<ApplyRow, 'repo' | 'environment' | 'desiredJson'>;
    let payload: ApplyPayload;
    let ops: OperationRow[];
    // The rows of a handover are the apply as just stored (pending). The drive owns a handover's rows (it was given once, see driveLeased) and updates them in place.
    const handed = new Map(
      handover?.operations.map((o) => {
        // The node each row's nodeJson was made from: a wave of launches parses no JSON.
        o.tasks.forEach((t, i) => {
          const node = o.nodes?.[i];
          if (node?.id === t.nodeId) nodes.set(t, node);
        });
        return [o.row.id, o.tasks];
      }),
    );
    if (handover) {
      apply = handover;
      payload = handover.payload;
      ops = handover.operations.map((o) => ({ ...o.row }));
    } else {
      const row = await this.store.getApply(applyId);
      if (!row) throw new Error(`no apply ${applyId}`);
      if (TERMINAL_AGGREGATE_STATES.includes(row.state)) return row.state;
      apply = row;
      payload = parsePayload(row.desiredJson);
      ops = await this.store.listOperations(applyId);
    }
    // Server-side secrets are decrypted once per drive, when the first operation starts: a failure
    // (key missing, value changed since the plan) fails each operation with the reason.
    let revealing: Promise<RunPayload> | undefined;
    // A payload whose stored text cannot hold a placeholder names no secret: not searched (the search walks all of it).
    const withSecrets = () => (revealing ??= jsonMayHoldPlaceholders(apply.desiredJson) ? this.reveal(apply.repo, apply.environment, payload) : Promise.resolve(payload));
    // on_failure: halt — a failure in one operation stops the *other* operations; the failing one
    // finishes its independent work (its dependants are skipped) and ends failed.
    const halt: Halt = { by: new Set() };
    if (ops.length === 1) this.sole.add(ops[0]!.id);
    const ending = Promise.all(
      ops.map((op) =>
        this.o.lanes.run(op.target, () => this.onTarget(op.target, lease, async (d) => {
          let run: RunPayload;
          try {
            run = await withSecrets();
          } catch (err) {
            // Refused before any Docker call (no key, a value changed since the plan): the operation fails with the reason.
            await this.refuseOperation(op.id, redactError(String((err as Error)?.message ?? err), payload), d);
            await this.settleOperation(applyId, op.id);
            if (payload.onFailure === 'halt') halt.by.add(op.id);
            return;
          }
          return this.runOperation(applyId, op, run, halt, d, handover && { tasks: handed.get(op.id)!, at: handover.at });
        })).catch(async (err) => {
          if (err instanceof LeaseLostError) {
            // Not ours any more: what is open stays open for whoever holds the lease now (or recovery).
            this.log.warn({ applyId, target: op.target, lease: err.lease }, 'operation stopped: lease lost');
            return;
          }
          // The operation could not run at all (store down, bug): fail its open tasks so the apply still ends.
          this.log.error({ applyId, target: op.target, err: redactError(String(err), payload) }, 'operation aborted');
          await this.failOpenTasks(op.id, `operation aborted: ${redactError(String((err as Error)?.message ?? err), payload)}`, lease.fence);
          await this.settleOperation(applyId, op.id);
          if (payload.onFailure === 'halt') halt.by.add(op.id);
        }),
      ),
    );
    let ended: Awaited<typeof ending>;
    try {
      ended = await ending;
    } finally {
      for (const op of ops) {
        this.settled.delete(op.id);
        this.sole.delete(op.id);
      }
    }
    // One operation that settled for good left the apply's state in hand; otherwise (several, or an aborted one) it is read.
    if (ops.length === 1 && ended[0]) return ended[0];
    const final = await this.store.getApplyStatus(applyId);
    return final!.state;
  }

  /**
   * Docker work on one target is serialised across processes, not only by the
   * in-process lane: the operation holds the lease `target:<name>` while it
   * mutates, and stops when that lease or the apply's is lost.
   */
  private async onTarget<T>(target: string, lease: HeldLease, fn: (d: Drive) => Promise<T>): Promise<T> {
    const held = await HeldLease.wait(this.store, `target:${target}`, this.holder, this.leaseTtlMs, this.now, this.log, () => lease.live(), this.o.targetPollMs ?? 100);
    try {
      return await fn({ lease, live: () => lease.live() && held.live() });
    } finally {
      await held.release();
    }
  }

  /** The payload with the values of the secrets its desired state names; masked everywhere from now on (vault.ts). */
  private async reveal(repo: string, environment: string, payload: ApplyPayload): Promise<RunPayload> {
    const d = payload.desired;
    const expected = placeholdersIn([d.services.map((s) => s.spec), d.contents ?? {}, d.networks.map((n) => n.spec), d.volumes.map((v) => v.spec)]);
    if (!expected.size) return payload;
    if (!this.o.secrets) throw noKeyError();
    const revealed = await this.o.secrets.reveal(repo, environment, expected);
    return { ...payload, secretValues: [...(payload.secretValues ?? []), ...revealed.values()], revealed };
  }

  /** Runs one operation's tasks to their end; answers the apply's state as its final settle left it. */
  private async runOperation(applyId: string, op: OperationRow, payload: RunPayload, halt: Halt, d: Drive, handed?: { tasks: TaskRow[]; at: number }): Promise<AggregateState | undefined> {
    const engine = this.o.engine(op.target);
    const tasks = handed?.tasks ?? (await this.store.listTasks(op.id));
    const byNode = new Map(tasks.map((t) => [t.nodeId, t]));
    const groupFor = groupsOf(byNode);
    const limit = payload.parallelism ?? this.o.parallelism ?? 8;
    // Longest chain of work still hanging off each node: when more nodes are ready than can launch in a
    // turn, the ones on the critical path go first (HLFET). Made when an order first matters, or once the
    // first wave's calls are under way (a first wave of a few roots launches without it).
    let height: Map<number, number> | undefined;
    const heights = () => (height ??= chainHeights(tasks));
    const byPriority = (a: TaskRow, b: TaskRow) => (heights().get(b.nodeId) ?? 0) - (heights().get(a.nodeId) ?? 0) || a.nodeId - b.nodeId;
    const inFlight = new Set<number>();
    // A handed-over apply was stored (not stopped) a moment ago: its flag counts as read then, so the
    // first wave does not wait for a read; a /stop since is seen within stopPollMs, as during the run.
    // An operation that waited longer than that for its target (another apply on it) reads the flag first.
    let stopCache = { at: handed?.at ?? 0, value: false };
    const stopPollMs = this.o.stopPollMs ?? 100;
    const stopRequested = async () => {
      if (this.now() - stopCache.at >= stopPollMs) {
        const a = await this.store.getApplyStatus(applyId);
        stopCache = { at: this.now(), value: !!a?.stopRequested };
      }
      return stopCache.value;
    };

    // Readiness is tracked incrementally (unmet dependency counts, a queue of
    // tasks to skip) so each completion costs O(its dependants), not a scan.
    const dependants = new Map<number, TaskRow[]>();
    const unmet = new Map<number, number>();
    const ready: TaskRow[] = [];
    const toSkip: TaskRow[] = [];
    // One pass, plain loops: this runs before the first Docker call of every operation.
    for (const t of tasks) {
      let left = 0;
      let broken = false;
      const deps = t.deps;
      for (let i = 0; i < deps.length; i++) {
        const d = deps[i]!;
        const list = dependants.get(d);
        if (list) list.push(t);
        else dependants.set(d, [t]);
        const state = byNode.get(d)?.state;
        if (!depMet(t, state)) left++;
        if (!broken && depBroken(t, state)) broken = true;
      }
      unmet.set(t.nodeId, left);
      if (t.state !== 'pending') continue;
      if (broken) toSkip.push(t);
      else if (left === 0) ready.push(t);
    }
    const finished = (t: TaskRow) => {
      for (const child of dependants.get(t.nodeId) ?? []) {
        if (child.state !== 'pending') continue;
        if (depMet(child, t.state)) {
          const left = unmet.get(child.nodeId)! - 1;
          unmet.set(child.nodeId, left);
          if (left === 0) ready.push(child);
        } else toSkip.push(child);
      }
    };
    let wake!: () => void;
    let woken = new Promise<void>((r) => (wake = r));
    // What a background settle derives from (made once: the loop asks for a settle at every turn).
    const taskStates = () => [...byNode.values()].map((t) => t.state);
    const stopFlag = () => stopCache.value;
    let lost: unknown;
    for (;;) {
      // Fenced: start nothing more; once the calls in flight returned, hand the operation over as it is.
      if (lost === undefined && !d.live()) lost = new LeaseLostError(d.lease.fence.lease);
      if (lost !== undefined && inFlight.size === 0) throw lost;
      // Tasks whose dependency can no longer succeed are skipped, transitively (finished() queues their dependants).
      while (toSkip.length) {
        const t = toSkip.pop()!;
        if (t.state === 'pending' && (await this.transition(t, 'pending', { state: 'skipped', finishedAt: this.now(), error: 'a dependency did not succeed' }, d))) finished(t);
      }
      // Another operation halted the apply, or /stop (the flag as last read, when read recently enough: no await then).
      const haltedElsewhere = halt.by.size > (halt.by.has(op.id) ? 1 : 0);
      const stopping = lost !== undefined || haltedElsewhere || (this.now() - stopCache.at < stopPollMs ? stopCache.value : await stopRequested());
      if (lost instanceof LeaseLostError) ready.length = 0;
      else if (stopping) {
        // A stop or halt cancels what has not begun, never the rest of a begun group (a recreate cut
        // after its old container was stopped would leave the service down): those run to their end.
        const finishing = lost === undefined ? mustFinish(byNode) : new Set<number>();
        for (const t of byNode.values()) if (t.state === 'pending' && !finishing.has(t.nodeId) && (await this.transition(t, 'pending', { state: 'cancelled', finishedAt: this.now() }, d))) finished(t);
        for (let i = ready.length - 1; i >= 0; i--) if (ready[i]!.state !== 'pending') ready.splice(i, 1);
      }
      let launched = 0;
      if (ready.length && inFlight.size < limit) {
        if (ready.length > Math.min(limit - inFlight.size, LAUNCH_TURN)) ready.sort(byPriority);
        else if (!height) setImmediate(heights);
        // At most a journal batch's worth of launches a turn: the first (critical-path) tasks of a wide
        // wave get their `running` commit and their call before the rest of the wave is even queued.
        while (ready.length && inFlight.size < limit && launched < LAUNCH_TURN) {
          const t = ready.shift()!;
          if (t.state !== 'pending' || inFlight.has(t.nodeId)) continue;
          inFlight.add(t.nodeId);
          launched++;
          // Dependants are released once: as soon as the call succeeded (runTask), or when the task is over.
          let released = false;
          const release = () => {
            if (released) return;
            released = true;
            finished(t);
            wake();
          };
          void this.runTask(applyId, t, engine, payload, halt, groupFor(t), d, byNode, release)
            .catch((err) => {
              // The journal could not be written even after retries: stop this operation (it is aborted and its open tasks failed).
              lost ??= err;
            })
            .finally(() => {
              inFlight.delete(t.nodeId);
              release();
              wake();
            });
        }
      }
      // Derived states follow in the background: a dependant must not wait for bookkeeping to start.
      this.settleSoon(applyId, op.id, taskStates, stopFlag);
      if (inFlight.size === 0 && !toSkip.length && !ready.length) {
        if ([...byNode.values()].some((t) => t.state === 'pending' || t.state === 'running')) {
          // Nothing runnable but work remains: only possible if rows moved under us; re-read them.
          const fresh = await this.store.listTasks(op.id);
          if (fresh.some((t) => t.state === 'running')) throw new Error('tasks are running under another driver');
          if (!fresh.some((t) => t.state === 'pending')) break;
          for (const f of fresh) Object.assign(byNode.get(f.nodeId)!, f);
          for (const t of byNode.values()) {
            if (t.state !== 'pending') continue;
            if (t.deps.some((d) => depBroken(t, byNode.get(d)?.state))) toSkip.push(t);
            else if (t.deps.every((d) => depMet(t, byNode.get(d)?.state))) ready.push(t);
          }
          if (!toSkip.length && !ready.length) throw new Error(`operation ${op.id} has pending tasks that can never run`);
          continue;
        }
        break;
      }
      if (inFlight.size && !toSkip.length && !(ready.length && inFlight.size < limit)) {
        await woken;
        woken = new Promise<void>((r) => (wake = r));
      } else if (launched >= LAUNCH_TURN && ready.length) await new Promise((r) => setImmediate(r));
    }
    // A recreate group cut by a stop or a halt before it touched the old container leaves its new,
    // temporary container behind: remove it (a failed step already restored its group; this is a no-op then).
    const cut = new Map<string, TaskRow>();
    for (const t of [...byNode.values()].filter((x) => x.state !== 'succeeded').sort((a, b) => a.nodeId - b.nodeId)) {
      const g = groupName(t);
      if ((g?.startsWith('recreate:') || g?.startsWith('start-first:')) && !cut.has(g)) cut.set(g, t);
    }
    for (const t of cut.values()) await this.restoreAfterFailure(nodeOf(t), groupOf(byNode, t), engine, applyId);
    // The operation is done: a background settle still waiting is dropped and one under way finishes; then
    // the states are settled for good, once. Every task at rest in memory is what the journal holds (each
    // got there by this drive's compare-and-set, or was re-read above); otherwise the journal is read.
    this.settleCancel.get(op.id)?.();
    this.settleAgain.delete(op.id);
    await this.settling.get(op.id);
    const states = [...byNode.values()].map((t) => t.state);
    try {
      return await this.settleOperation(applyId, op.id, states.every((s) => TERMINAL.includes(s)) ? states : undefined);
    } finally {
      this.settled.delete(op.id);
    }
  }

  private readonly settleCancel = new Map<string, () => void>();

  private readonly settling = new Map<string, Promise<void>>();
  private readonly settleAgain = new Set<string>();

  /** Operations this process drives that are their apply's only one (settling them reads no siblings). */
  private readonly sole = new Set<string>();

  /** The operation state this driver last wrote or found stored, per operation (only the driver writes it). */
  private readonly settled = new Map<string, AggregateState>();

  /**
   * Single-flight background settle per operation; a request during a run
   * triggers one more run. When the tasks (and the stop flag as last read)
   * derive the state already stored, there is nothing to write and the
   * store is not asked: most turns of a long wave change no derived state.
   */
  private settleSoon(applyId: string, opId: string, states: () => TaskState[], stopRequested: () => boolean): void {
    if (this.settling.has(opId)) {
      this.settleAgain.add(opId);
      return;
    }
    const run = (async () => {
      // Coalesce: derived states may lag a moment, the journal never does.
      const go = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(true), this.o.settleDelayMs ?? 25);
        this.settleCancel.set(opId, () => {
          clearTimeout(timer);
          resolve(false);
        });
      });
      this.settleCancel.delete(opId);
      // The operation ended meanwhile: its final settle does this one's work.
      if (!go) return;
      do {
        this.settleAgain.delete(opId);
        try {
          const now = states();
          if (deriveOperationState(now, stopRequested()) !== this.settled.get(opId)) await this.settleOperation(applyId, opId, now);
        } catch (err) {
          // The final, awaited settle of the operation reports what persists.
          this.log.warn({ applyId, operation: opId, err: String(err) }, 'background state derivation failed');
        }
      } while (this.settleAgain.has(opId));
    })().finally(() => this.settling.delete(opId));
    this.settling.set(opId, run);
  }

  /** CAS one task, fenced by the drive's lease, and mirror the new row in memory. */
  private async transition(t: TaskRow, from: TaskState, patch: TaskPatch, d: Drive): Promise<boolean> {
    const ok = (await this.journal({ id: t.id, expected: from, patch }, d.lease.fence)) || (await this.landedAnyway(t, patch));
    if (ok) Object.assign(t, patch);
    return ok;
  }

  /**
   * A refused CAS after a retried batch may be our own write: the first try
   * committed and only its answer was lost (a connection killed after COMMIT).
   * The row then holds exactly our patch, down to the millisecond we stamped;
   * no other driver can have written that (the apply lease), so it landed.
   */
  private async landedAnyway(t: TaskRow, patch: TaskPatch): Promise<boolean> {
    const row = (await this.store.listTasks(t.operationId)).find((r) => r.id === t.id);
    if (!row) return false;
    return (Object.keys(patch) as (keyof TaskPatch)[]).every((k) => (row as unknown as Record<string, unknown>)[k] === (patch as unknown as Record<string, unknown>)[k]);
  }

  /** Group commit of task transitions (journal-queue.ts): a write resolves once committed. */
  private readonly journalQueue = new JournalQueue((updates, fence) => this.store.updateTasks(updates, fence));

  private journal(u: TaskUpdate, fence: Fence, opts?: { lazy?: boolean }): Promise<boolean> {
    return this.journalQueue.write(u, fence, opts);
  }

  /**
   * One task: journaled `running`, its call, journaled `succeeded` or `failed`.
   * `release` lets the dependants go as soon as the call succeeded: their
   * `running` writes are queued behind this task's `succeeded` in the journal,
   * so they commit with it or after it (one commit per DAG level, not two),
   * and none of their calls begins before that commit.
   */
  private async runTask(applyId: string, t: TaskRow, engine: Engine, payload: RunPayload, halt: Halt, group: PlanNode[], d: Drive, byNode: ReadonlyMap<number, TaskRow>, release: () => void): Promise<void> {
    if (!d.live()) return;
    // Its dependencies' `succeeded` writes commit with this `running` write or before it.
    for (const n of t.deps) this.journalQueue.promote(byNode.get(n)?.id);
    if (!(await this.transition(t, 'pending', { state: 'running', startedAt: this.now() }, d))) return;
    this.progress(applyId);
    const node = nodeOf(t);
    // Fencing: the journal write may have taken long enough for the lease to go. No Docker call then;
    // the task stays `running` and whoever drives next checks whether its effect is there (it is not).
    if (!d.live()) return;
    let result: string | undefined;
    try {
      result = node.kind === 'BatchGate' ? await this.batchGate(node, byNode) : await this.call(node, engine, payload.desired, applyId, payload.policy ?? DENY_ALL, payload.revealed);
    } catch (err) {
      // The old container is back before the failure is journaled: a crash in between leaves the task
      // `running`, so recovery looks at it (and restores) again instead of reading a settled failure.
      const restored = await this.restoreAfterFailure(node, group, engine, applyId);
      const what = (err as Error)?.message ?? String(err);
      // What still serves leads, so the check run's shortened failure line always says it.
      const message = redactError(restored.startsWith('; rolled back') ? `${restored.slice(2)}: ${what}` : what + restored, payload);
      this.log.warn({ applyId, node: node.id, kind: node.kind, resource: node.resource, error: message }, 'task failed');
      // Other operations see the halt at their next step, whatever this loop is doing.
      if (payload.onFailure === 'halt') halt.by.add(t.operationId);
      await this.transition(t, 'running', { state: 'failed', finishedAt: this.now(), error: message }, d);
      this.progress(applyId);
      return;
    }
    const patch: TaskPatch = { state: 'succeeded', finishedAt: this.now(), result: result ?? null };
    // Lazy: nothing waits for this write until a dependant starts, which promotes it first (journal-queue.ts).
    const written = this.journal({ id: t.id, expected: 'running', patch }, d.lease.fence, LAZY);
    // The call succeeded, so the dependants may go now: their `running` writes commit with this one or after
    // it, and none of their calls begins before its own commit. A crash before this commit leaves the task
    // `running`, and recovery finds its effect on the target.
    Object.assign(t, patch);
    release();
    if (!((await written) || (await this.landedAnyway(t, patch)))) {
      // Refused: this driver lost its lease (the dependants' writes, fenced alike, were refused too).
      t.state = 'running';
      throw new LeaseLostError(d.lease.fence.lease);
    }
    this.progress(applyId);
  }

  private progress(applyId: string) {
    try {
      this.o.onProgress?.(applyId);
    } catch (err) {
      this.log.warn({ applyId, err: String(err) }, 'progress reporter failed');
    }
  }

  /** The one Docker call of a node. Returns what the journal should remember (e.g. a new container id). */
  private async call(node: PlanNode, engine: Engine, desired: DesiredState, applyId: string, policy: Policy, revealed?: ReadonlyMap<string, string>): Promise<string | undefined> {
    const t = node.target;
    // Server-side secrets: values only in what this Docker call is given; labels keep the placeholders.
    const reveal = <T>(x: T): T => (revealed?.size ? revealIn(x, revealed) : x);
    const { project, environment } = desired;
    const index = indexOf(desired);
    const named = index.named;
    const netName = named.network;
    // Made only by the calls that label what they create (a wave of starts makes none).
    const repoLabel = (): Record<string, string> => (desired.repository ? { [LABEL.repository]: desired.repository } : {});
    switch (node.kind) {
      case 'EnsureImage': {
        // pull_policy at apply time (the plan already pinned the digest): never on every service using the image
        // forbids pulling it, always on one pulls it even when present, the rest pull it when missing.
        const users = desired.services.filter((s) => s.spec.image === t.image);
        // The registry policy again, on what this apply would pull (a stale plan, the CLI, a payload from before the policy).
        await guardImage(t.image!, policy, this.o.registryLookup);
        for (const opts of imagePulls(users)) await engine.ensureImage(t.image!, opts);
        return;
      }
      case 'CreateNetwork': {
        const spec = desired.networks.find((n) => n.spec.name === t.network);
        if (!spec) throw new Error(`network ${t.network} is not in the desired state`);
        return replayable(
          () =>
            engine.createNetwork(netName(t.network!), reveal(spec.spec), {
              [LABEL.project]: project,
              [LABEL.environment]: environment,
              [LABEL.network]: t.network!,
              [LABEL.configHash]: spec.configHash,
              [LABEL.applyId]: applyId,
              ...repoLabel(),
            }),
          async () => {
            const n = await engine.findNetwork(netName(t.network!));
            return n?.labels[LABEL.applyId] === applyId ? { value: n.id } : undefined;
          },
        );
      }
      case 'RemoveNetwork':
        await gone(() => engine.removeNetwork(t.containerId ?? netName(t.network!)));
        return;
      case 'CreateVolume': {
        const spec = desired.volumes.find((v) => v.spec.name === t.volume);
        if (!spec) throw new Error(`volume ${t.volume} is not in the desired state`);
        await engine.createVolume(named.volume(t.volume!), reveal(spec.spec), {
          [LABEL.project]: project,
          [LABEL.environment]: environment,
          [LABEL.volume]: t.volume!,
          [LABEL.configHash]: spec.configHash,
          [LABEL.applyId]: applyId,
          ...repoLabel(),
        });
        return;
      }
      case 'CreateContainer': {
        const svc = index.services.get(t.service!);
        if (!svc) throw new Error(`service ${t.service} is not in the desired state`);
        // Immediately before the create: bind sources resolved and joins inspected on the target.
        const spec = await guardContainer(engine, svc.spec, policy, { project, environment, containerNames: index.containerNames });
        await requireApiFor(engine, svc.spec.name, spec);
        const id = await replayable(
          () => engine.createContainer(t.containerName!, reveal(spec), { project, environment, replica: t.replica!, configHash: svc.configHash, applyId, configSpec: spec, ...secretFieldsOfService(desired, spec.name), ...(desired.repository ? { repository: desired.repository } : {}) }, t.network, createExtras(desired, t.inheritVolumes, t.outsideDns)),
          async () => {
            const c = await engine.findContainer(t.containerName!);
            return c?.labels[LABEL.applyId] === applyId ? { value: c.id } : undefined;
          },
        );
        // Configs and secrets go in before the container ever starts (and again when a replayed create is adopted).
        if (svc.spec.files?.length) await engine.putFiles(id, filesFor(svc.spec.files, { ...desired, ...(desired.contents ? { contents: reveal(desired.contents) } : {}) }));
        return id;
      }
      case 'ConnectNetwork': {
        // The same endpoint (aliases, fixed address) as a container created on this network would get.
        const svc = index.services.get(t.service!);
        const ep = t.outsideDns ? { Aliases: [] } : svc ? endpointConfig(svc.spec, t.network!) : { Aliases: [t.service!] };
        if (t.containerId) {
          // start-first: the replaced container, out of the DNS name, comes back to drain (reconcile.ts). Best
          // effort: it is stopped next either way, so a refusal here must not fail a rollout that already serves.
          await engine.connectNetwork(netName(t.network!), t.containerId, { Aliases: [] }).catch((err: unknown) => this.log.warn({ applyId, container: t.containerName, err: String(err) }, 'the replaced container could not rejoin to drain; it is stopped anyway'));
          return;
        }
        await engine.connectNetwork(netName(t.network!), t.containerName!, ep);
        return;
      }
      case 'DisconnectNetwork':
        await engine.disconnectNetwork(netName(t.network!), t.containerId ?? t.containerName!);
        return;
      case 'StartContainer':
        await engine.startContainer(t.containerId ?? t.containerName!);
        return;
      case 'UnpauseContainer':
        await engine.unpauseContainer(t.containerId ?? t.containerName!);
        return;
      case 'StopContainer':
        // start-first: the replaced container, already outside the service's DNS name, drains first.
        if (t.drainMs) await sleep(this.o.drainMs ?? t.drainMs);
        await engine.stopContainer(t.containerId ?? t.containerName!);
        return;
      case 'RemoveContainer':
        await gone(() => engine.removeContainer(t.containerId ?? t.containerName!));
        return;
      case 'RenameContainer':
        if (t.containerId) {
          // The old container of a recreate, parked aside: it is known by id (it carries an older apply's labels).
          await replayable(
            async () => void (await engine.renameContainer(t.containerId!, t.containerName!)),
            async () => ((await engine.findContainer(t.containerId!))?.name === t.containerName ? { value: undefined } : undefined),
          );
          return;
        }
        await replayable(
          async () => void (await engine.renameContainer(t.fromName!, t.containerName!)),
          async () =>
            (await engine.findContainer(t.containerName!))?.labels[LABEL.applyId] === applyId && !(await engine.findContainer(t.fromName!)) ? { value: undefined } : undefined,
        );
        return;
      case 'WaitHealthy':
        if (t.monitorMs !== undefined) await this.monitorRunning(engine, t.containerName!, t.monitorMs);
        else {
          // an empty test is the image's HEALTHCHECK, whose timings are not known here
          const hc = index.services.get(t.service!)?.spec.healthcheck;
          await this.waitHealthy(engine, t.containerName!, hc?.test.length ? hc : undefined);
        }
        return;
      case 'BatchGate':
        throw new Error('internal: a BatchGate is judged by the executor, not called');
      case 'WaitExited':
        await this.waitExited(engine, t.containerName!);
        return;
    }
  }

  /** service_completed_successfully: the job must run to its end and exit 0; any other code fails the node (and skips dependants). */
  private async waitExited(engine: Engine, container: string) {
    const deadline = this.now() + (this.o.exitTimeoutMs ?? 30 * 60_000);
    const poll = this.o.healthPollMs ?? 250;
    for (;;) {
      const c = await engine.findContainer(container);
      if (!c) throw new Error(`${container} is gone before it completed`);
      if (!c.running && c.exitCode !== undefined) {
        if (c.exitCode === 0) return;
        throw new Error(`${container} exited with code ${c.exitCode}; service_completed_successfully needs exit code 0`);
      }
      if (this.now() > deadline) throw new Error(`${container} did not complete in time (still ${c.running ? 'running' : 'not started'})`);
      await sleep(poll);
    }
  }

  /**
   * A step of a recreate group failed: put the old container back as it was
   * (under its name, running if it ran), removing the new one. Skipped when
   * the failed step is the last one (removing the parked old container): the
   * new container is already serving then. Works from what Docker shows, so
   * running it again (after a crash during it) is harmless. Returns a note for
   * the task's error.
   */
  private async restoreAfterFailure(node: PlanNode, group: PlanNode[], engine: Engine, applyId: string): Promise<string> {
    if (node.group?.startsWith('start-first:')) return this.rollBackStartFirst(node, group, engine, applyId);
    if (!node.group?.startsWith('recreate:') || node.kind === 'RemoveContainer') return '';
    const aside = group.find((n) => n.kind === 'RenameContainer' && n.target.containerId);
    const create = group.find((n) => n.kind === 'CreateContainer');
    if (!aside || !create) return '';
    const oldId = aside.target.containerId!;
    const canonical = aside.target.fromName!;
    try {
      // The new container (temporary or already renamed) goes first: it may hold the name and the ports.
      for (const name of [create.target.containerName!, canonical]) {
        const c = await engine.findContainer(name);
        if (c && c.id !== oldId && c.labels[LABEL.applyId] === applyId) await gone(() => engine.removeContainer(c.id));
      }
      const old = await engine.findContainer(oldId);
      if (!old) throw new Error(`the old container ${canonical} (${oldId.slice(0, 12)}) is gone`);
      if (old.name !== canonical) await engine.renameContainer(oldId, canonical);
      // Started again only if the plan had stopped it (it was running or paused before the apply).
      if (group.some((n) => n.kind === 'StopContainer') && !old.running) await engine.startContainer(oldId);
      this.log.info({ applyId, group: node.group, container: canonical }, 'recreate group did not finish; old container kept or restored');
      // A rollout (update_config) says what is serving: the failure report names the version that stayed.
      return create.target.previousImage ? `; rolled back — still serving ${create.target.previousImage}` : `; the old container ${canonical} was restored`;
    } catch (err) {
      this.log.error({ applyId, group: node.group, err: String(err) }, 'could not restore the old container');
      return `; restoring the old container ${canonical} failed: ${(err as Error)?.message ?? String(err)}`;
    }
  }

  /**
   * A start-first step failed. Up to its gate the old container was never touched and still serves:
   * the new one is removed. From the gate on, the new container passed it and serves (the old one is
   * leaving): nothing is undone, the failure is reported. Idempotent, like restoreAfterFailure.
   */
  private async rollBackStartFirst(node: PlanNode, group: PlanNode[], engine: Engine, applyId: string): Promise<string> {
    const create = group.find((n) => n.kind === 'CreateContainer');
    if (!create) return '';
    const tmp = create.target.containerName!;
    // Steps on the old container (known by id) and the final rename come after the new one joined DNS healthy.
    const oldTouched = node.kind === 'RenameContainer' || node.target.containerId !== undefined;
    if (oldTouched) return `; the new container ${tmp} passed its gate and serves`;
    try {
      const c = await engine.findContainer(tmp);
      if (c && c.labels[LABEL.applyId] === applyId) await gone(() => engine.removeContainer(c.id));
      this.log.info({ applyId, group: node.group, container: tmp }, 'start-first replacement did not pass its gate; removed, the old container kept serving');
      return `; rolled back — still serving ${create.target.previousImage ?? 'the old container'}`;
    } catch (err) {
      this.log.error({ applyId, group: node.group, err: String(err) }, 'could not remove the failed replacement');
      return `; the old container still serves, but removing the failed ${tmp} failed: ${(err as Error)?.message ?? String(err)}`;
    }
  }

  /**
   * The BatchGate between two batches of a rollout: the failed replicas of the service so far
   * against max_failure_ratio decide; over it, failure_action rollback or pause fails the gate (so
   * no later batch starts), continue lets the rollout go on. Then the delay.
   */
  private async batchGate(node: PlanNode, byNode: ReadonlyMap<number, TaskRow>): Promise<undefined> {
    const r = node.target.rollout!;
    const service = node.target.service!;
    const failedGroups = new Set<string>();
    const seen = new Set<string>();
    const errors: string[] = [];
    for (const t of byNode.values()) {
      const g = groupName(t);
      if (!g || !(g.startsWith(`recreate:${service}:`) || g.startsWith(`start-first:${service}:`))) continue;
      seen.add(g);
      if (t.state === 'failed' || t.state === 'skipped') failedGroups.add(g);
      if (t.state === 'failed' && t.error) errors.push(t.error);
    }
    const ratio = failedGroups.size / Math.max(1, r.replicas);
    if (failedGroups.size && ratio > r.maxFailureRatio && r.failureAction !== 'continue') {
      const what = `${failedGroups.size} of ${r.replicas} replicas failed their gate after batch ${r.batch}/${r.batches} (max_failure_ratio ${r.maxFailureRatio})`;
      const verb = r.failureAction === 'rollback' ? 'rolled back' : 'paused';
      // The replicas of earlier batches that passed run the new version: said, so "rolled back" is not read as the whole service.
      const updated = [...seen].filter((g) => !failedGroups.has(g) && [...byNode.values()].every((t) => groupName(t) !== g || t.state === 'succeeded')).map((g) => g.split(':').pop());
      const mixed = updated.length ? `; replica${updated.length === 1 ? '' : 's'} ${updated.join(', ')} already run${updated.length === 1 ? 's' : ''} the new version` : '';
      throw new Error(`rollout of ${service} ${verb}: ${what}; later batches were not started${mixed}. ${errors.join(' | ')}`);
    }
    if (r.delayMs) await sleep(r.delayMs);
    return undefined;
  }

  /** A rollout gate without a healthcheck: the new container must keep running through `monitor`. */
  private async monitorRunning(engine: Engine, container: string, monitorMs: number) {
    const deadline = this.now() + monitorMs;
    const poll = this.o.healthPollMs ?? 250;
    for (;;) {
      const c = await engine.findContainer(container);
      if (!c) throw new Error(`${container} is gone before its gate`);
      if (!c.running) throw new Error(`${container} stopped during its ${monitorMs} ms monitor${c.exitCode !== undefined ? ` (exit code ${c.exitCode})` : ''}`);
      if (this.now() >= deadline) return;
      await sleep(Math.min(poll, Math.max(1, deadline - this.now())));
    }
  }

  private async waitHealthy(engine: Engine, container: string, hc?: { intervalMs: number; timeoutMs: number; retries: number; startPeriodMs: number }) {
    // Long enough for Docker itself to declare the container unhealthy, never unbounded.
    // Without one in the compose files, or with a timing left out (0: the image's, unknown here), up to the bound.
    const natural = hc && hc.intervalMs && hc.timeoutMs && hc.retries ? hc.startPeriodMs + (hc.intervalMs + hc.timeoutMs) * (hc.retries + 1) + 5_000 : Infinity;
    const deadline = this.now() + Math.min(natural, this.o.healthTimeoutMs ?? 300_000);
    const poll = this.o.healthPollMs ?? 250;
    let last = await engine.health(container);
    while (last.status !== 'healthy') {
      const log = last.lastLog ? ` Last health check output: ${last.lastLog}` : last.exitCode !== undefined ? ` Last health check exited ${last.exitCode} with no output.` : '';
      if (!last.running) throw new Error(`${container} is not running (it exited before becoming healthy).${log}`);
      if (last.status === 'unhealthy') throw new Error(`${container} is unhealthy.${log}`);
      if (last.status === 'none') throw new Error(`${container} has no healthcheck (none in the compose files, none in its image), so service_healthy can never be met: add a healthcheck to the service, or use condition: service_started`);
      if (this.now() > deadline) throw new Error(`${container} did not become healthy in time (status ${last.status}).${log}`);
      await sleep(poll);
      last = await engine.health(container);
    }
  }

  /**
   * Derives the operation's state from its tasks and the apply's from its
   * operations, writing each with compare-and-set. A lost race re-reads.
   * Answers the apply's state as it now stands (undefined: no such rows).
   */
  private async settleOperation(applyId: string, opId: string, taskStates?: TaskState[]): Promise<AggregateState | undefined> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const [apply, op] = await Promise.all([this.store.getApplyStatus(applyId), this.store.getOperation(opId)]);
      if (!apply || !op) return;
      const states = taskStates ?? (await this.store.listTasks(opId)).map((t) => t.state);
      const opState = deriveOperationState(states, apply.stopRequested);
      if (opState !== op.state) {
        const patch = {
          state: opState,
          ...(op.startedAt === null && opState !== 'pending' ? { startedAt: this.now() } : {}),
          ...(TERMINAL_AGGREGATE_STATES.includes(opState) ? { finishedAt: this.now() } : {}),
        };
        if (!(await this.store.casOperationState(opId, op.version, patch))) continue;
      }
      let siblings: { id: string; state: AggregateState }[] | Error;
      try {
        // An apply's operations are fixed when it is made: the sole one has no sibling to read.
        siblings = this.sole.has(opId) ? [{ id: opId, state: opState }] : (await this.store.listOperations(applyId)).map((o) => ({ id: o.id, state: o.state }));
      } catch (err) {
        siblings = err as Error;
      }
      const applyState = deriveApplyWithSibling({ stored: apply.state, current: { operationId: opId, state: opState }, siblings, stopRequested: apply.stopRequested });
      if (applyState === apply.state) {
        this.settled.set(opId, opState);
        return applyState;
      }
      const patch = {
        state: applyState,
        ...(apply.startedAt === null && applyState !== 'pending' ? { startedAt: this.now() } : {}),
        ...(TERMINAL_AGGREGATE_STATES.includes(applyState) ? { finishedAt: this.now() } : {}),
      };
      if (await this.store.casApplyState(applyId, apply.version, patch)) {
        this.settled.set(opId, opState);
        this.progress(applyId);
        return applyState;
      }
    }
    throw new Error(`could not settle state of apply ${applyId}: too much contention`);
  }

  /** An operation that cannot start: its first pending task fails with the reason, the others are cancelled. */
  private async refuseOperation(opId: string, message: string, d: Drive): Promise<void> {
    const pending = (await this.store.listTasks(opId)).filter((t) => t.state === 'pending');
    await this.store.updateTasks(
      pending.map((t, i) => ({ id: t.id, expected: 'pending' as const, patch: { state: i === 0 ? ('failed' as const) : ('cancelled' as const), finishedAt: this.now(), error: message } })),
      d.lease.fence,
    );
  }

  private async failOpenTasks(opId: string, message: string, fence: Fence) {
    for (const t of await this.store.listTasks(opId)) {
      if (t.state === 'pending') await this.store.updateTask(t.id, 'pending', { state: 'cancelled', finishedAt: this.now(), error: message }, fence);
      if (t.state === 'running') await this.store.updateTask(t.id, 'running', { state: 'failed', finishedAt: this.now(), error: message }, fence);
    }
  }

  /**
   * After a restart: every task left `running` is checked against Docker. Its
   * effect present → succeeded; absent → back to pending (its call never
   * landed, so running it now is its first and only run); unverifiable →
   * failed. Then each apply is driven to a terminal state.
   */
  async recover(): Promise<{ applyId: string; state: AggregateState }[]> {
    const applies = await this.store.listApplies({ states: IN_FLIGHT_AGGREGATE_STATES });
    const out: { applyId: string; state: AggregateState }[] = [];
    for (const apply of applies.reverse()) {
      if (this.running.has(apply.id)) continue;
      // A live lease means a live driver, this process included (an apply is leased from the moment it is
      // stored, before its driver starts): not ours to recover. Only a lapsed or absent lease is taken.
      const current = await this.store.getLease(`apply:${apply.id}`);
      if (current && current.expiresAt > this.now()) continue;
      const lease = await HeldLease.take(this.store, `apply:${apply.id}`, this.holder, this.leaseTtlMs, this.now, this.log);
      if (!lease) continue;
      const fence = lease.fence;
      const payload = parsePayload(apply.desiredJson);
      for (const op of await this.store.listOperations(apply.id)) {
        const engine = this.o.engine(op.target);
        const tasks = await this.store.listTasks(op.id);
        for (const t of tasks) {
          if (t.state !== 'running') continue;
          const node = JSON.parse(t.nodeJson) as PlanNode;
          let verdict: { done: boolean; result?: string } | Error;
          try {
            verdict = await this.effectPresent(node, engine, payload.desired, apply.id, t.startedAt);
          } catch (err) {
            verdict = err as Error;
          }
          if (verdict instanceof Error) {
            const restored = await this.restoreAfterFailure(node, groupOf(new Map(tasks.map((x) => [x.nodeId, x])), t), engine, apply.id);
            await this.store.updateTask(t.id, 'running', { state: 'failed', finishedAt: this.now(), error: redactError(`could not verify after restart: ${verdict.message}${restored}`, payload) }, fence);
          }
          else if (verdict.done) await this.store.updateTask(t.id, 'running', { state: 'succeeded', finishedAt: this.now(), result: verdict.result ?? null }, fence);
          else await this.store.updateTask(t.id, 'running', { state: 'pending', startedAt: null }, fence);
          this.log.info({ applyId: apply.id, node: node.id, kind: node.kind, verdict: verdict instanceof Error ? 'failed' : verdict.done ? 'done' : 'redo' }, 'recovered task');
        }
      }
      lease.detach();
      out.push({ applyId: apply.id, state: await this.run(apply.id, fence) });
    }
    return out;
  }

  /**
   * Did this node's Docker call take effect? Read-only. `journaledAt` is when
   * the task was written `running`, just before its call was sent.
   */
  private async effectPresent(node: PlanNode, engine: Engine, desired: DesiredState, applyId: string, journaledAt: number | null): Promise<{ done: boolean; result?: string }> {
    const t = node.target;
    const named = dockerNames(desired);
    const netName = named.network;
    switch (node.kind) {
      case 'EnsureImage':
      case 'WaitHealthy':
      case 'WaitExited':
      case 'BatchGate':
        // Not mutations: safe to run again.
        return { done: false };
      case 'UnpauseContainer': {
        const c = await engine.findContainer(t.containerId ?? t.containerName!);
        if (!c) throw new Error(`${t.containerId ?? t.containerName} is gone`);
        return { done: !c.paused };
      }
      case 'CreateNetwork': {
        // Like a replayed create: only a network carrying this apply's id is ours; one of the same
        // name made by someone else meanwhile must not be adopted (containers would join it).
        const n = await engine.findNetwork(netName(t.network!));
        if (!n) return { done: false };
        if (n.labels[LABEL.applyId] !== applyId) throw new Error(`${netName(t.network!)} exists but was not created by this apply`);
        return { done: true, result: n.id };
      }
      case 'RemoveNetwork':
        return { done: !(await engine.findNetwork(t.containerId ?? netName(t.network!))) };
      case 'CreateVolume':
        return { done: !!(await engine.findVolume(named.volume(t.volume!))) };
      case 'CreateContainer': {
        const c = await engine.findContainer(t.containerName!);
        if (!c) return { done: false };
        if (c.labels[LABEL.applyId] !== applyId) throw new Error(`${t.containerName} exists but was not created by this apply`);
        // Its files may not have been put in yet: run it again (the create is adopted, the upload repeated).
        if (desired.services.find((s) => s.spec.name === t.service)?.spec.files?.length) return { done: false };
        return { done: true, result: c.id };
      }
      case 'ConnectNetwork': {
        const c = await engine.findContainer(t.containerId ?? t.containerName!);
        if (!c) throw new Error(`${t.containerName} is gone`);
        return { done: c.networks.includes(netName(t.network!)) };
      }
      case 'DisconnectNetwork': {
        const c = await engine.findContainer(t.containerId ?? t.containerName!);
        return { done: !c || !c.networks.includes(netName(t.network!)) };
      }
      case 'StartContainer': {
        const c = await engine.findContainer(t.containerId ?? t.containerName!);
        if (!c) throw new Error(`${t.containerId ?? t.containerName} is gone`);
        if (c.running) return { done: true };
        // Not running is not "never started": a one-shot job (a migration) may have started and
        // exited already, and starting it again would run it twice. Docker's StartedAt decides.
        if (c.startedAt === undefined) return { done: false };
        // A container this apply created is started by this task alone: any start was ours (no clock involved).
        if (c.labels[LABEL.applyId] === applyId) return { done: true };
        // An older container (the plan's "start" of a stopped one) also started in earlier lives: only a start
        // after this task was journaled is ours. Engine and berth share a clock on a local socket; a remote
        // engine's clock skew larger than the gap between the plan (which saw it stopped) and this task could misjudge.
        return { done: journaledAt !== null && c.startedAt >= journaledAt };
      }
      case 'StopContainer': {
        const c = await engine.findContainer(t.containerId ?? t.containerName!);
        return { done: !c || !c.running };
      }
      case 'RemoveContainer':
        return { done: !(await engine.findContainer(t.containerId ?? t.containerName!)) };
      case 'RenameContainer': {
        if (t.containerId) {
          const c = await engine.findContainer(t.containerId);
          if (!c) throw new Error(`${t.fromName} (${t.containerId.slice(0, 12)}) is gone`);
          return { done: c.name === t.containerName };
        }
        const renamed = await engine.findContainer(t.containerName!);
        if (renamed && renamed.labels[LABEL.applyId] === applyId) return { done: true };
        if (await engine.findContainer(t.fromName!)) return { done: false };
        throw new Error(`neither ${t.fromName} nor ${t.containerName} (from this apply) exists`);
      }
    }
  }
}
