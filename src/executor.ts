// Walks an apply's task DAG against Docker. Every task is journaled: written
// `running` before its Docker call and `succeeded`/`failed` after, so a crash
// leaves an exact record of which calls may have happened. Operation and
// apply states are derived from task rows and written compare-and-set.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { CreateExtras, Engine, EngineError } from './engine.js';
import { Masker, secretContents } from './mask.js';
import { dockerNames, LABEL } from './model.js';
import type { DesiredState, FileMount } from './model.js';
import type { PlanNode } from './plan.js';
import type { Lanes } from './lanes.js';
import { deriveApplyWithSibling, deriveOperationState } from './state.js';
import type { AggregateState, OperationRow, Store, TaskPatch, TaskRow, TaskState, TaskUpdate } from './store/store.js';
import { retryingStore } from './store/retry.js';
import { IN_FLIGHT_AGGREGATE_STATES, TERMINAL_AGGREGATE_STATES } from './store/store.js';

export type OnFailure = 'halt' | 'continue';

/** Operations of the running apply that failed under on_failure: halt. */
interface Halt {
  by: Set<string>;
}

/** What an apply row's desired_json holds: enough to run, resume or roll back without the PR. */
export interface ApplyPayload {
  desired: DesiredState;
  onFailure: OnFailure;
  parallelism?: number;
  /** keys and values that are secret besides the PASSWORD/TOKEN/KEY/… names (the environment's secret_keys, secret variables) */
  secretKeys?: string[];
  secretValues?: string[];
}

/**
 * A Docker message as it may be stored, logged and shown: Docker echoes what it
 * was given (an entrypoint, a command, a mount), so secrets of the desired
 * state in it, or `--token=…`-like text, are masked.
 */
export function redactError(message: string, payload: ApplyPayload): string {
  const m = new Masker(payload.secretKeys ?? [], [...(payload.secretValues ?? []), ...secretContents(payload.desired)]);
  m.collect(...payload.desired.services.map((s) => s.spec));
  return m.redact(m.inline(message));
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
  /** who this driver is, for the per-apply lease (default host/pid/random) */
  holder?: string;
  /** lease on an apply while driving it; renewed every third of it (default 30 s) */
  leaseTtlMs?: number;
  /** how stale a cached stop flag may be (default 100 ms) */
  stopPollMs?: number;
  now?: () => number;
}

const silent: ExecutorLogger = { info() {}, warn() {}, error() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const FAILED_DEP: TaskState[] = ['failed', 'skipped', 'cancelled'];

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

/** The names a create needs that differ from berth's defaults (external networks and volumes, `name:`), and what it inherits. */
function createExtras(desired: DesiredState, inheritVolumes?: { name: string; target: string }[]): CreateExtras {
  const named = dockerNames(desired);
  const networkNames = Object.fromEntries(desired.networks.map((n) => [n.spec.name, named.network(n.spec.name)]));
  const volumeNames = Object.fromEntries(desired.volumes.map((v) => [v.spec.name, named.volume(v.spec.name)]));
  return { networkNames, volumeNames, ...(inheritVolumes?.length ? { inheritVolumes } : {}) };
}

/** A service's configs and secrets with their content, as the engine puts them into the container. */
function filesFor(files: readonly FileMount[], desired: DesiredState) {
  return files.map((f) => {
    const content = desired.contents?.[`${f.kind}:${f.source}`];
    if (content === undefined) throw new Error(`${f.kind} ${f.source} has no content in the desired state`);
    return { path: f.target, content, mode: f.mode, uid: Number(f.uid ?? 0), gid: Number(f.gid ?? 0) };
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

  /** Runs (or joins the run of) an apply to a terminal state. */
  run(applyId: string, leased = false): Promise<AggregateState> {
    let p = this.running.get(applyId);
    if (!p) {
      p = this.driveLeased(applyId, leased).finally(() => this.running.delete(applyId));
      this.running.set(applyId, p);
    }
    return p;
  }

  /** Applies this process is driving now (for graceful shutdown). */
  inFlight(): string[] {
    return [...this.running.keys()];
  }

  private readonly holder: string;

  /**
   * One driver per apply across processes and replicas: the lease
   * `apply:<id>` is taken before any task moves and renewed while driving.
   * Without it, this call only reports the state another driver is making.
   */
  private async driveLeased(applyId: string, leased: boolean): Promise<AggregateState> {
    const ttl = this.o.leaseTtlMs ?? 30_000;
    const name = `apply:${applyId}`;
    if (!leased && !(await this.store.acquireLease(name, this.holder, ttl))) {
      this.log.info({ applyId, holder: (await this.store.getLease(name))?.holder }, 'apply is driven by another process');
      return (await this.store.getApply(applyId))?.state ?? 'pending';
    }
    const renew = setInterval(() => {
      this.store.acquireLease(name, this.holder, ttl).then(
        (ok) => ok || this.log.error({ applyId }, 'lost the lease on an apply being driven'),
        (err) => this.log.warn({ applyId, err: String(err) }, 'could not renew the apply lease'),
      );
    }, Math.max(50, Math.floor(ttl / 3)));
    renew.unref?.();
    try {
      return await this.drive(applyId);
    } finally {
      clearInterval(renew);
      await this.store.releaseLease(name, this.holder).catch(() => false);
    }
  }

  private async drive(applyId: string): Promise<AggregateState> {
    const apply = await this.store.getApply(applyId);
    if (!apply) throw new Error(`no apply ${applyId}`);
    if (TERMINAL_AGGREGATE_STATES.includes(apply.state)) return apply.state;
    const payload = parsePayload(apply.desiredJson);
    const ops = await this.store.listOperations(applyId);
    // on_failure: halt — a failure in one operation stops the *other* operations; the failing one
    // finishes its independent work (its dependants are skipped) and ends failed.
    const halt: Halt = { by: new Set() };
    await Promise.all(
      ops.map((op) =>
        this.o.lanes.run(op.target, () => this.runOperation(applyId, op, payload, halt)).catch(async (err) => {
          // The operation could not run at all (store down, bug): fail its open tasks so the apply still ends.
          this.log.error({ applyId, target: op.target, err: redactError(String(err), payload) }, 'operation aborted');
          await this.failOpenTasks(op.id, `operation aborted: ${redactError(String((err as Error)?.message ?? err), payload)}`);
          await this.settleOperation(applyId, op.id);
          if (payload.onFailure === 'halt') halt.by.add(op.id);
        }),
      ),
    );
    const final = await this.store.getApply(applyId);
    return final!.state;
  }

  private async runOperation(applyId: string, op: OperationRow, payload: ApplyPayload, halt: Halt): Promise<void> {
    const engine = this.o.engine(op.target);
    const tasks = await this.store.listTasks(op.id);
    const byNode = new Map(tasks.map((t) => [t.nodeId, t]));
    const limit = payload.parallelism ?? this.o.parallelism ?? 8;
    // Longest chain of work still hanging off each node: when more nodes are
    // ready than slots, the ones on the critical path go first (HLFET).
    const height = new Map<number, number>();
    for (const t of [...tasks].sort((a, b) => b.nodeId - a.nodeId)) height.set(t.nodeId, height.get(t.nodeId) ?? 1);
    for (const t of [...tasks].sort((a, b) => b.nodeId - a.nodeId)) for (const d of t.deps) height.set(d, Math.max(height.get(d) ?? 1, (height.get(t.nodeId) ?? 1) + 1));
    const byPriority = (a: TaskRow, b: TaskRow) => (height.get(b.nodeId) ?? 0) - (height.get(a.nodeId) ?? 0) || a.nodeId - b.nodeId;
    const inFlight = new Set<number>();
    let stopCache = { at: 0, value: false };
    const stopRequested = async () => {
      if (this.now() - stopCache.at >= (this.o.stopPollMs ?? 100)) {
        const a = await this.store.getApply(applyId);
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
    for (const t of tasks)
      for (const d of t.deps) {
        const list = dependants.get(d);
        if (list) list.push(t);
        else dependants.set(d, [t]);
      }
    for (const t of tasks) {
      unmet.set(t.nodeId, t.deps.filter((d) => byNode.get(d)?.state !== 'succeeded').length);
      if (t.state !== 'pending') continue;
      if (t.deps.some((d) => FAILED_DEP.includes(byNode.get(d)?.state ?? 'failed'))) toSkip.push(t);
      else if (unmet.get(t.nodeId) === 0) ready.push(t);
    }
    const finished = (t: TaskRow) => {
      for (const child of dependants.get(t.nodeId) ?? []) {
        if (child.state !== 'pending') continue;
        if (t.state === 'succeeded') {
          const left = unmet.get(child.nodeId)! - 1;
          unmet.set(child.nodeId, left);
          if (left === 0) ready.push(child);
        } else toSkip.push(child);
      }
    };
    let wake!: () => void;
    let woken = new Promise<void>((r) => (wake = r));

    let lost: unknown;
    for (;;) {
      if (lost !== undefined && inFlight.size === 0) throw lost;
      // Tasks whose dependency can no longer succeed are skipped, transitively (finished() queues their dependants).
      while (toSkip.length) {
        const t = toSkip.pop()!;
        if (t.state === 'pending' && (await this.transition(t, 'pending', { state: 'skipped', finishedAt: this.now(), error: 'a dependency did not succeed' }))) finished(t);
      }
      const stopping = lost !== undefined || [...halt.by].some((id) => id !== op.id) || (await stopRequested());
      if (stopping) {
        for (const t of byNode.values()) if (t.state === 'pending' && (await this.transition(t, 'pending', { state: 'cancelled', finishedAt: this.now() }))) finished(t);
        ready.length = 0;
      } else if (ready.length && inFlight.size < limit) {
        ready.sort(byPriority);
        while (ready.length && inFlight.size < limit) {
          const t = ready.shift()!;
          if (t.state !== 'pending' || inFlight.has(t.nodeId)) continue;
          inFlight.add(t.nodeId);
          void this.runTask(applyId, t, engine, payload, halt)
            .catch((err) => {
              // The journal could not be written even after retries: stop this operation (it is aborted and its open tasks failed).
              lost ??= err;
            })
            .finally(() => {
              inFlight.delete(t.nodeId);
              finished(t);
              wake();
            });
        }
      }
      // Derived states follow in the background: a dependant must not wait for bookkeeping to start.
      this.settleSoon(applyId, op.id, () => [...byNode.values()].map((t) => t.state));
      if (inFlight.size === 0 && !toSkip.length && !(ready.length && !stopping)) {
        if ([...byNode.values()].some((t) => t.state === 'pending' || t.state === 'running')) {
          // Nothing runnable but work remains: only possible if rows moved under us; re-read them.
          const fresh = await this.store.listTasks(op.id);
          if (fresh.some((t) => t.state === 'running')) throw new Error('tasks are running under another driver');
          if (!fresh.some((t) => t.state === 'pending')) break;
          for (const f of fresh) Object.assign(byNode.get(f.nodeId)!, f);
          for (const t of byNode.values()) {
            if (t.state !== 'pending') continue;
            if (t.deps.some((d) => FAILED_DEP.includes(byNode.get(d)?.state ?? 'failed'))) toSkip.push(t);
            else if (t.deps.every((d) => byNode.get(d)?.state === 'succeeded')) ready.push(t);
          }
          if (!toSkip.length && !ready.length) throw new Error(`operation ${op.id} has pending tasks that can never run`);
          continue;
        }
        break;
      }
      if (inFlight.size && !toSkip.length && !(ready.length && inFlight.size < limit && !stopping)) {
        await woken;
        woken = new Promise<void>((r) => (wake = r));
      }
    }
    // The operation is done: cut the coalescing wait short, then settle for good.
    this.settleNow.get(op.id)?.();
    await this.settling.get(op.id);
    await this.settleOperation(applyId, op.id);
  }

  private readonly settleNow = new Map<string, () => void>();

  private readonly settling = new Map<string, Promise<void>>();
  private readonly settleAgain = new Set<string>();

  /** Single-flight background settle per operation; a request during a run triggers one more run. */
  private settleSoon(applyId: string, opId: string, states: () => TaskState[]): void {
    if (this.settling.has(opId)) {
      this.settleAgain.add(opId);
      return;
    }
    const run = (async () => {
      // Coalesce: derived states may lag a moment, the journal never does.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.o.settleDelayMs ?? 25);
        this.settleNow.set(opId, () => {
          clearTimeout(timer);
          resolve();
        });
      });
      this.settleNow.delete(opId);
      do {
        this.settleAgain.delete(opId);
        try {
          await this.settleOperation(applyId, opId, states());
        } catch (err) {
          // The final, awaited settle of the operation reports what persists.
          this.log.warn({ applyId, operation: opId, err: String(err) }, 'background state derivation failed');
        }
      } while (this.settleAgain.has(opId));
    })().finally(() => this.settling.delete(opId));
    this.settling.set(opId, run);
  }

  /** CAS one task and mirror the new row in memory. */
  private async transition(t: TaskRow, from: TaskState, patch: TaskPatch): Promise<boolean> {
    const ok = await this.journal({ id: t.id, expected: from, patch });
    if (ok) Object.assign(t, patch);
    return ok;
  }

  private readonly journalQueue: { u: TaskUpdate; resolve: (ok: boolean) => void; reject: (err: unknown) => void }[] = [];

  /**
   * Group commit: journal writes issued in the same turn of the event loop
   * (a wave of tasks starting or finishing together) share one transaction.
   * Each caller still waits for its own write to be committed before going on.
   */
  private journal(u: TaskUpdate): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.journalQueue.push({ u, resolve, reject });
      if (this.journalQueue.length === 1) setImmediate(() => void this.flushJournal());
    });
  }

  private async flushJournal(): Promise<void> {
    const batch = this.journalQueue.splice(0);
    if (!batch.length) return;
    try {
      const results = await this.store.updateTasks(batch.map((b) => b.u));
      batch.forEach((b, i) => b.resolve(results[i] === true));
    } catch (err) {
      for (const b of batch) b.reject(err);
    }
  }

  private async runTask(applyId: string, t: TaskRow, engine: Engine, payload: ApplyPayload, halt: Halt): Promise<void> {
    if (!(await this.transition(t, 'pending', { state: 'running', startedAt: this.now() }))) return;
    this.progress(applyId);
    const node = JSON.parse(t.nodeJson) as PlanNode;
    try {
      const result = await this.call(node, engine, payload.desired, applyId);
      await this.transition(t, 'running', { state: 'succeeded', finishedAt: this.now(), result: result ?? null });
    } catch (err) {
      const message = redactError((err as Error)?.message ?? String(err), payload);
      this.log.warn({ applyId, node: node.id, kind: node.kind, resource: node.resource, error: message }, 'task failed');
      // Other operations see the halt at their next step, whatever this loop is doing.
      if (payload.onFailure === 'halt') halt.by.add(t.operationId);
      await this.transition(t, 'running', { state: 'failed', finishedAt: this.now(), error: message });
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
  private async call(node: PlanNode, engine: Engine, desired: DesiredState, applyId: string): Promise<string | undefined> {
    const t = node.target;
    const { project, environment } = desired;
    const named = dockerNames(desired);
    const netName = named.network;
    switch (node.kind) {
      case 'EnsureImage':
        await engine.ensureImage(t.image!);
        return;
      case 'CreateNetwork': {
        const spec = desired.networks.find((n) => n.spec.name === t.network);
        if (!spec) throw new Error(`network ${t.network} is not in the desired state`);
        return replayable(
          () =>
            engine.createNetwork(netName(t.network!), spec.spec, {
              [LABEL.project]: project,
              [LABEL.environment]: environment,
              [LABEL.network]: t.network!,
              [LABEL.configHash]: spec.configHash,
              [LABEL.applyId]: applyId,
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
        await engine.createVolume(named.volume(t.volume!), spec.spec, {
          [LABEL.project]: project,
          [LABEL.environment]: environment,
          [LABEL.volume]: t.volume!,
          [LABEL.configHash]: spec.configHash,
          [LABEL.applyId]: applyId,
        });
        return;
      }
      case 'CreateContainer': {
        const svc = desired.services.find((s) => s.spec.name === t.service);
        if (!svc) throw new Error(`service ${t.service} is not in the desired state`);
        const id = await replayable(
          () => engine.createContainer(t.containerName!, svc.spec, { project, environment, replica: t.replica!, configHash: svc.configHash, applyId }, t.network, createExtras(desired, t.inheritVolumes)),
          async () => {
            const c = await engine.findContainer(t.containerName!);
            return c?.labels[LABEL.applyId] === applyId ? { value: c.id } : undefined;
          },
        );
        // Configs and secrets go in before the container ever starts (and again when a replayed create is adopted).
        if (svc.spec.files?.length) await engine.putFiles(id, filesFor(svc.spec.files, desired));
        return id;
      }
      case 'ConnectNetwork':
        await engine.connectNetwork(netName(t.network!), t.containerName!, [t.service!]);
        return;
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
        await engine.stopContainer(t.containerId ?? t.containerName!);
        return;
      case 'RemoveContainer':
        await gone(() => engine.removeContainer(t.containerId ?? t.containerName!));
        return;
      case 'RenameContainer':
        await replayable(
          async () => void (await engine.renameContainer(t.fromName!, t.containerName!)),
          async () =>
            (await engine.findContainer(t.containerName!))?.labels[LABEL.applyId] === applyId && !(await engine.findContainer(t.fromName!)) ? { value: undefined } : undefined,
        );
        return;
      case 'WaitHealthy':
        await this.waitHealthy(engine, t.containerName!, desired.services.find((s) => s.spec.name === t.service)?.spec.healthcheck);
        return;
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

  private async waitHealthy(engine: Engine, container: string, hc?: { intervalMs: number; timeoutMs: number; retries: number; startPeriodMs: number }) {
    // Long enough for Docker itself to declare the container unhealthy, never unbounded.
    const natural = hc ? hc.startPeriodMs + (hc.intervalMs + hc.timeoutMs) * (hc.retries + 1) + 5_000 : 60_000;
    const deadline = this.now() + Math.min(natural, this.o.healthTimeoutMs ?? 300_000);
    const poll = this.o.healthPollMs ?? 250;
    let last = await engine.health(container);
    while (last.status !== 'healthy') {
      const log = last.lastLog ? ` Last health check output: ${last.lastLog}` : '';
      if (!last.running) throw new Error(`${container} is not running (it exited before becoming healthy).${log}`);
      if (last.status === 'unhealthy') throw new Error(`${container} is unhealthy.${log}`);
      if (last.status === 'none') throw new Error(`${container} has no healthcheck, so service_healthy can never be met`);
      if (this.now() > deadline) throw new Error(`${container} did not become healthy in time (status ${last.status}).${log}`);
      await sleep(poll);
      last = await engine.health(container);
    }
  }

  /**
   * Derives the operation's state from its tasks and the apply's from its
   * operations, writing each with compare-and-set. A lost race re-reads.
   */
  private async settleOperation(applyId: string, opId: string, taskStates?: TaskState[]): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const [apply, op] = await Promise.all([this.store.getApply(applyId), this.store.getOperation(opId)]);
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
        siblings = (await this.store.listOperations(applyId)).map((o) => ({ id: o.id, state: o.state }));
      } catch (err) {
        siblings = err as Error;
      }
      const applyState = deriveApplyWithSibling({ stored: apply.state, current: { operationId: opId, state: opState }, siblings, stopRequested: apply.stopRequested });
      if (applyState === apply.state) return;
      const patch = {
        state: applyState,
        ...(apply.startedAt === null && applyState !== 'pending' ? { startedAt: this.now() } : {}),
        ...(TERMINAL_AGGREGATE_STATES.includes(applyState) ? { finishedAt: this.now() } : {}),
      };
      if (await this.store.casApplyState(applyId, apply.version, patch)) {
        this.progress(applyId);
        return;
      }
    }
    throw new Error(`could not settle state of apply ${applyId}: too much contention`);
  }

  private async failOpenTasks(opId: string, message: string) {
    for (const t of await this.store.listTasks(opId)) {
      if (t.state === 'pending') await this.store.updateTask(t.id, 'pending', { state: 'cancelled', finishedAt: this.now(), error: message });
      if (t.state === 'running') await this.store.updateTask(t.id, 'running', { state: 'failed', finishedAt: this.now(), error: message });
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
      // A live replica driving it holds the lease: not ours to recover.
      if (!(await this.store.acquireLease(`apply:${apply.id}`, this.holder, this.o.leaseTtlMs ?? 30_000))) continue;
      const payload = parsePayload(apply.desiredJson);
      for (const op of await this.store.listOperations(apply.id)) {
        const engine = this.o.engine(op.target);
        for (const t of await this.store.listTasks(op.id)) {
          if (t.state !== 'running') continue;
          const node = JSON.parse(t.nodeJson) as PlanNode;
          let verdict: { done: boolean; result?: string } | Error;
          try {
            verdict = await this.effectPresent(node, engine, payload.desired, apply.id);
          } catch (err) {
            verdict = err as Error;
          }
          if (verdict instanceof Error) await this.store.updateTask(t.id, 'running', { state: 'failed', finishedAt: this.now(), error: `could not verify after restart: ${verdict.message}` });
          else if (verdict.done) await this.store.updateTask(t.id, 'running', { state: 'succeeded', finishedAt: this.now(), result: verdict.result ?? null });
          else await this.store.updateTask(t.id, 'running', { state: 'pending', startedAt: null });
          this.log.info({ applyId: apply.id, node: node.id, kind: node.kind, verdict: verdict instanceof Error ? 'failed' : verdict.done ? 'done' : 'redo' }, 'recovered task');
        }
      }
      out.push({ applyId: apply.id, state: await this.run(apply.id, true) });
    }
    return out;
  }

  /** Did this node's Docker call take effect? Read-only. */
  private async effectPresent(node: PlanNode, engine: Engine, desired: DesiredState, applyId: string): Promise<{ done: boolean; result?: string }> {
    const t = node.target;
    const named = dockerNames(desired);
    const netName = named.network;
    switch (node.kind) {
      case 'EnsureImage':
      case 'WaitHealthy':
      case 'WaitExited':
        // Not mutations: safe to run again.
        return { done: false };
      case 'UnpauseContainer': {
        const c = await engine.findContainer(t.containerId ?? t.containerName!);
        if (!c) throw new Error(`${t.containerId ?? t.containerName} is gone`);
        return { done: !c.paused };
      }
      case 'CreateNetwork': {
        const n = await engine.findNetwork(netName(t.network!));
        return n ? { done: true, result: n.id } : { done: false };
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
        const c = await engine.findContainer(t.containerName!);
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
        return { done: c.running };
      }
      case 'StopContainer': {
        const c = await engine.findContainer(t.containerId ?? t.containerName!);
        return { done: !c || !c.running };
      }
      case 'RemoveContainer':
        return { done: !(await engine.findContainer(t.containerId ?? t.containerName!)) };
      case 'RenameContainer': {
        const renamed = await engine.findContainer(t.containerName!);
        if (renamed && renamed.labels[LABEL.applyId] === applyId) return { done: true };
        if (await engine.findContainer(t.fromName!)) return { done: false };
        throw new Error(`neither ${t.fromName} nor ${t.containerName} (from this apply) exists`);
      }
    }
  }
}
