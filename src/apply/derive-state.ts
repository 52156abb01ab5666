// Operation and apply states are derived, never set by hand: tasks →
// operation, operations → apply. Each derivation is a precedence table read
// top to bottom; the first row whose condition holds decides. The tables are
// data so tests can walk every row and the README can quote them.
import type { AggregateState, TaskState } from '../store/store.js';
import { TERMINAL_AGGREGATE_STATES } from '../store/store.js';

/** What a row looks at: which states occur among the children, and whether a stop was asked for. */
export interface Census<S extends string> {
  has(state: S): boolean;
  /** every child is in one of these states (true for no children) */
  only(...states: S[]): boolean;
  count: number;
  stopRequested: boolean;
}

export interface Rule<S extends string> {
  /** the condition, in words (the README and test names use it) */
  when: string;
  test: (c: Census<S>) => boolean;
  state: AggregateState;
}

function census<S extends string>(states: readonly S[], stopRequested: boolean): Census<S> {
  const present = new Set(states);
  return {
    has: (s) => present.has(s),
    only: (...allowed) => states.every((s) => allowed.includes(s)),
    count: states.length,
    stopRequested,
  };
}

function first<S extends string>(table: readonly Rule<S>[], c: Census<S>): AggregateState {
  for (const row of table) if (row.test(c)) return row.state;
  // The last row of each table matches everything; reaching here is a bug in the table.
  throw new Error('state table has no matching row');
}

/** Operation state from its tasks. */
export const OPERATION_TABLE: readonly Rule<TaskState>[] = [
  { when: 'no tasks', test: (c) => c.count === 0, state: 'completed' },
  { when: 'a task is running and a stop was requested', test: (c) => c.has('running') && c.stopRequested, state: 'stopping' },
  { when: 'a task is running and a task failed', test: (c) => c.has('running') && c.has('failed'), state: 'running_degraded' },
  { when: 'a task is running', test: (c) => c.has('running'), state: 'running' },
  { when: 'a task is pending and a stop was requested', test: (c) => c.has('pending') && c.stopRequested, state: 'stopping' },
  { when: 'a task is pending and a task failed', test: (c) => c.has('pending') && c.has('failed'), state: 'running_degraded' },
  { when: 'every task is pending', test: (c) => c.only('pending'), state: 'pending' },
  { when: 'a task is pending and others have finished', test: (c) => c.has('pending'), state: 'running' },
  { when: 'all finished and a task failed', test: (c) => c.has('failed'), state: 'failed' },
  { when: 'all finished and a task was cancelled', test: (c) => c.has('cancelled'), state: 'stopped' },
  { when: 'all finished, tasks skipped after a stop', test: (c) => c.has('skipped') && c.stopRequested, state: 'stopped' },
  // A skip always has a cause (a failed or cancelled dependency); without one the record is inconsistent and must not read as success.
  { when: 'all finished, tasks skipped with no recorded cause', test: (c) => c.has('skipped'), state: 'failed' },
  { when: 'every task succeeded', test: () => true, state: 'completed' },
];

/** Apply state from its operations. */
export const APPLY_TABLE: readonly Rule<AggregateState>[] = [
  { when: 'no operations', test: (c) => c.count === 0, state: 'completed' },
  { when: 'an operation is stopping', test: (c) => c.has('stopping'), state: 'stopping' },
  { when: 'an operation is running with a failure', test: (c) => c.has('running_degraded'), state: 'running_degraded' },
  { when: 'an operation is in flight and another failed', test: (c) => (c.has('running') || c.has('pending')) && c.has('failed'), state: 'running_degraded' },
  { when: 'an operation is in flight and a stop was requested', test: (c) => (c.has('running') || c.has('pending')) && c.stopRequested, state: 'stopping' },
  { when: 'an operation is running', test: (c) => c.has('running'), state: 'running' },
  { when: 'every operation is pending', test: (c) => c.only('pending'), state: 'pending' },
  { when: 'an operation is pending and others have finished', test: (c) => c.has('pending'), state: 'running' },
  { when: 'all finished and an operation failed', test: (c) => c.has('failed'), state: 'failed' },
  { when: 'all finished and an operation stopped', test: (c) => c.has('stopped'), state: 'stopped' },
  { when: 'every operation completed', test: () => true, state: 'completed' },
];

/** Index of the row that decides, for tests and explanations. */
export function decidingRow<S extends string>(table: readonly Rule<S>[], states: readonly S[], stopRequested = false): number {
  const c = census(states, stopRequested);
  return table.findIndex((row) => row.test(c));
}

export function deriveOperationState(tasks: readonly TaskState[], stopRequested = false): AggregateState {
  return first(OPERATION_TABLE, census(tasks, stopRequested));
}

export function deriveApplyState(operations: readonly AggregateState[], stopRequested = false): AggregateState {
  return first(APPLY_TABLE, census(operations, stopRequested));
}

export interface ApplyDerivationInput {
  /** the apply's state as stored now */
  stored: AggregateState;
  /** the operation whose state this driver just derived (fresher than its row may be) */
  current: { operationId: string; state: AggregateState };
  /** the apply's operation rows as read, or the error reading them */
  siblings: readonly { id: string; state: AggregateState }[] | Error;
  stopRequested?: boolean;
}

/**
 * Folds the current operation's fresh state into its siblings and derives the
 * apply. Fails closed — returns the stored state — when the siblings could not
 * be read or do not include the current operation (a partial read), and never
 * moves an apply out of a terminal state.
 */
export function deriveApplyWithSibling(input: ApplyDerivationInput): AggregateState {
  const { stored, current, siblings } = input;
  if (TERMINAL_AGGREGATE_STATES.includes(stored)) return stored;
  if (siblings instanceof Error) return stored;
  if (!siblings.some((s) => s.id === current.operationId)) return stored;
  const states = siblings.map((s) => (s.id === current.operationId ? current.state : s.state));
  return deriveApplyState(states, input.stopRequested ?? false);
}

export const isTerminal = (s: AggregateState) => TERMINAL_AGGREGATE_STATES.includes(s);
